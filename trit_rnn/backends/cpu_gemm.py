"""The CPU GEMMs of the torch backends' time loops, through oneDNN where it runs them.

Why: torch's CPU addmm goes to MKL, which on this project's AMD EPYC (AVX-512) machines takes its
AVX2 path: 85 GFLOP/s on one core for [32, 128] x [128, 512] and for [6400, 128] x [128, 512],
where oneDNN's linear reaches 136 (with the weight pre-packed) and 204 GFLOP/s. torch.nn.LSTM's
CPU path is oneDNN's fused LSTM, so a recurrence on MKL GEMMs starts 1.6-2.4x behind it.

`StepGemm(weight, batch, bias)` packs a weight [N, K] once per call of a backend; calling it with
x [B, K] returns x @ weight^T + bias + other ([B, N], a new tensor). `linear`,
`linear_input_grad` and `linear_weight_grad` are the bulk GEMMs around the loops. The oneDNN op is torch's own
(torch.ops.mkldnn._linear_pointwise, what inductor's CPU backend emits); where it is missing, or
for float64 / non-CPU tensors, plain torch.addmm is used, so results never depend on its presence.
"""

import torch


def onednn_runs(x: torch.Tensor) -> bool:
    """Whether oneDNN's linear handles x's device and dtype here. Not while torch.compile traces
    (the autograd formulas that call these are traced): inductor picks its own GEMMs, and its
    lowering of this op rejects transposed operands."""
    return (
        not torch.compiler.is_compiling()
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    )


class StepGemm:
    """x [B, K] -> x @ weight^T + bias (+ other [B, N]) for one fixed weight [N, K], bias [N] or None."""

    def __init__(self, weight: torch.Tensor, batch: int, bias: torch.Tensor | None = None):
        self.onednn = onednn_runs(weight)
        self.bias = bias
        if self.onednn:
            self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), batch)
        else:
            self.weight_t = weight.t()  # [K, N] view: addmm reads it without a copy

    def __call__(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        if self.onednn:
            if other is None:
                return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
            return torch.ops.mkldnn._linear_pointwise.binary(x, other, self.weight, self.bias, "add")
        out = x @ self.weight_t if other is None else torch.addmm(other, x, self.weight_t)
        return out if self.bias is None else out.add_(self.bias)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [M, K] @ weight^T [K, N] + bias [N] (2.3x MKL's speed at [6400, 128] x [128, 512] here)."""
    if onednn_runs(x) and x.numel() and weight.numel():
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return torch.nn.functional.linear(x, weight, bias)


def linear_input_grad(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """grad [M, N] @ weight [N, K]: oneDNN takes the transposed weight contiguous (2.5x MKL)."""
    if onednn_runs(grad) and grad.numel() and weight.numel():
        return torch.ops.mkldnn._linear_pointwise(grad, weight.t().contiguous(), None, "none", [], "")
    return grad @ weight


def linear_weight_grad(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """grad^T [N, M] @ x [M, K], a long reduction over M (the weight gradient of x W^T, and of
    every time loop's weight: sum_t d_t^T h_{t-1}), contiguous.

    oneDNN's linear copies its input operand contiguous (a transposed [*, M] copy, slow: 30 ms
    for [384, 32000]), so the narrower of the two goes there: for N > K it computes
    (x^T grad)^T. At M = 32000 on one core (wall time): [N, K] = [384, 128] (a GRU's weight_hh)
    55.5 -> 22.6 ms, [512, 128] (an LSTM's) 69.3 -> 28.4 ms, [128, 2] (an input size-2
    projection's) 5.6 -> 0.5 ms; MKL's grad.t() @ x takes 35.8, 48.4 and 6.9 ms."""
    if onednn_runs(grad) and x.dtype == grad.dtype and grad.numel() and x.numel():
        linear = torch.ops.mkldnn._linear_pointwise
        if grad.shape[1] > x.shape[1]:
            return linear(x.t().contiguous(), grad.t(), None, "none", [], "").t().contiguous()
        return linear(grad.t().contiguous(), x.t(), None, "none", [], "")
    return grad.t() @ x  # also the empty reductions (T = 1) oneDNN has no primitive for
