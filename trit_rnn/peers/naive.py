"""The loop a user writes by hand: an exp-map orthogonal W and autograd through every step."""

import torch
from torch import nn


def _tanh_step(p, h, w):
    return torch.tanh(p + h @ w.T)


class NaiveOrthogonalRNN(nn.Module):
    """h_t = tanh(x_t U^T + b + h_{t-1} W^T), W = exp(A - A^T) recomputed each forward, one Python
    iteration per step (autograd records every step).

    compile_step: torch.compile the step function (what a GPU user tries first; compiling the
    whole loop would unroll all T steps into one graph)."""

    def __init__(self, input_size, hidden_size, *, compile_step=False, device=None, dtype=None):
        super().__init__()
        self.input = nn.Linear(input_size, hidden_size, device=device, dtype=dtype)
        self.skew = nn.Parameter(torch.randn(hidden_size, hidden_size, device=device, dtype=dtype) * 0.01)
        self.step = torch.compile(_tanh_step, dynamic=False) if compile_step else _tanh_step

    def forward(self, x, hx=None):
        a = self.skew.triu(1)
        w = torch.matrix_exp(a - a.T)
        pre = self.input(x)
        h = pre.new_zeros(pre.shape[1], pre.shape[2]) if hx is None else hx
        outs = []
        for p in pre.unbind(0):
            h = self.step(p, h, w)
            outs.append(h)
        return torch.stack(outs), h
