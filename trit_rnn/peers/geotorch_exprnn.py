"""expRNN as geotorch users write it: a recurrent nn.Linear whose weight geotorch constrains to be
orthogonal through the exponential map, modReLU, autograd through a Python loop over steps."""

import torch
from torch import nn
from torch.nn.utils import parametrize

from .external import require_api


class GeotorchExpRNN(nn.Module):
    """h_t = modReLU(x_t U^T + b + h_{t-1} W^T), W = B exp(A) kept orthogonal by
    geotorch.orthogonal(..., triv="expm") (expRNN's parametrisation; geotorch's base B stays at its
    initial value unless the user calls geotorch.update_base)."""

    def __init__(self, input_size, hidden_size, *, device=None, dtype=None):
        super().__init__()
        orthogonal = require_api("geotorch", "orthogonal", distribution="geotorch", tested="0.4.0")
        self.hidden_size = hidden_size
        self.input = nn.Linear(input_size, hidden_size, device=device, dtype=dtype)
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False, device=device, dtype=dtype)
        orthogonal(self.recurrent, "weight", triv="expm")
        self.act_bias = nn.Parameter(
            torch.empty(hidden_size, device=device, dtype=dtype).uniform_(-0.01, 0.01)
        )

    @property
    def recurrent_matrix(self) -> torch.Tensor:
        return self.recurrent.weight

    def forward(self, x, hx=None):
        pre = self.input(x)
        h = pre.new_zeros(pre.shape[1], self.hidden_size) if hx is None else hx
        outs = []
        # cached(): exp(A) is computed once per forward, not once per step.
        with parametrize.cached():
            for p in pre.unbind(0):
                z = p + self.recurrent(h)
                h = torch.sign(z) * torch.relu(z.abs() + self.act_bias)
                outs.append(h)
        return torch.stack(outs), h
