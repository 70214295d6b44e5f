"""The pure-PyTorch backend of the dense recurrence: the CPU product and the GPU fallback.

On a CPU the compiled time loop runs it (compiled_loops.py, csrc/time_loops.cpp's dense_forward
and dense_backward: one step GEMM and one fused pass per step, none of the Python loop's per-op
dispatch); the Python loop below is its fallback and the GPU path. Not autograd over a loop: the forward writes each state in place into one preallocated
[T, B, H] buffer (one step GEMM, cpu_gemm.StepGemm, and one in-place activation per step), the
backward walks the steps in reverse with one fused activation-backward and one step GEMM per step, and everything that is not
sequential (weight and bias gradients) is done by the caller as GEMMs over all steps at once.
"""

import torch

from ..nonlinearity import Nonlinearity
from . import compiled_loops
from .cpu_gemm import StepGemm


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision of the state and the accumulation: float64 stays, everything else is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _modrelu_(z: torch.Tensor, act_bias: torch.Tensor, scratch: torch.Tensor) -> None:
    """z <- sign(z) * relu(|z| + act_bias), in place, with one [B, H] scratch buffer."""
    torch.abs(z, out=scratch)
    scratch.add_(act_bias).relu_()
    z.sign_().mul_(scratch)


def dense_forward(pre, weight, h0, act_bias, nonlinearity: str):
    """h_t = f(pre_t + h_{t-1} @ weight.T) for t = 1..T.

    pre [T, B, H], weight [H, H], h0 [B, H] or None, act_bias [H] or None.
    Returns (outputs [T, B, H], h_n [B, H]) in pre's dtype; the state is kept in compute_dtype.
    """
    nonlinearity = Nonlinearity(nonlinearity)
    T, B, H = pre.shape
    dtype = compute_dtype(pre.dtype)
    if T > 0 and compiled_loops.applies(pre, weight):
        h = h0.to(dtype) if h0 is not None else torch.zeros((B, H), dtype=dtype)
        bias = act_bias.to(dtype).contiguous() if act_bias is not None else None
        outputs = compiled_loops.loops().dense_forward(
            pre.to(dtype).contiguous(), weight.to(dtype).t().contiguous(), h.contiguous(), bias,
            compiled_loops.ACTIVATION_CODES[nonlinearity],
        )  # fmt: skip
        return outputs.to(pre.dtype), outputs[T - 1].to(pre.dtype, copy=True)
    weight_c = weight.to(dtype)
    # float32 tanh on the CPU costs 2-3x a sigmoid: compute 2z (scaling by 2 is exact) and take
    # tanh(z) = 2 sigmoid(2z) - 1, absolute error ~1 ulp. float64 keeps the exact tanh.
    fast_tanh = nonlinearity is Nonlinearity.TANH and dtype == torch.float32 and pre.device.type == "cpu"
    # The outputs buffer starts as a copy of pre (one bulk copy): each step then accumulates
    # h_{t-1} W^T into its own slot in place, with no per-step copy of pre_t.
    if fast_tanh:
        outputs = torch.mul(pre, 2).to(dtype, memory_format=torch.contiguous_format)
        weight_c = weight_c * 2
        minus_one = torch.tensor(-1.0, dtype=dtype)
    else:
        outputs = pre.to(dtype, memory_format=torch.contiguous_format, copy=True)
    h = h0.to(dtype) if h0 is not None else torch.zeros((B, H), dtype=dtype, device=pre.device)
    bias = act_bias.to(dtype) if act_bias is not None else None
    scratch = (
        torch.empty((B, H), dtype=dtype, device=pre.device) if nonlinearity is Nonlinearity.MODRELU else None
    )
    gemm = StepGemm(weight_c, B)
    for h_t in outputs.unbind(0):
        gemm.accumulate_(h_t, h)
        if fast_tanh:
            torch.add(minus_one, h_t.sigmoid_(), alpha=2, out=h_t)
        elif nonlinearity is Nonlinearity.TANH:
            h_t.tanh_()
        elif nonlinearity is Nonlinearity.RELU:
            h_t.relu_()
        elif nonlinearity is Nonlinearity.MODRELU:
            _modrelu_(h_t, bias, scratch)
        h = h_t
    return outputs.to(pre.dtype), h.to(pre.dtype, copy=True)


def _activation_backward_(dh, h, nonlinearity: Nonlinearity, scratch):
    """dh <- dh * f'(z) in place, written from the output h = f(z) alone."""
    if nonlinearity is Nonlinearity.TANH:
        torch.ops.aten.tanh_backward.grad_input(dh, h, grad_input=dh)
    elif nonlinearity is Nonlinearity.RELU:
        torch.ops.aten.threshold_backward.grad_input(dh, h, 0, grad_input=dh)
    elif nonlinearity is Nonlinearity.MODRELU:
        # d modReLU/dz is 1 where the unit is active (|h| > 0) and 0 elsewhere: a threshold on
        # |h| in a reused buffer (a boolean mask would cost a conversion per step).
        torch.abs(h, out=scratch)
        torch.ops.aten.threshold_backward.grad_input(dh, scratch, 0, grad_input=dh)


def dense_backward(grad_out, grad_hn, outputs, weight, nonlinearity: str):
    """The reverse loop: dz_t = dh_t * f'(h_t), dh_{t-1} = grad_out_{t-1} + dz_t @ weight.

    Returns (dz [T, B, H], dh0 [B, H]) in compute_dtype; dz is the gradient of pre.
    """
    dz, dh0, _ = dense_backward_fused(grad_out, grad_hn, outputs, weight, nonlinearity, act_bias_grad=False)
    return dz, dh0


def dense_backward_fused(grad_out, grad_hn, outputs, weight, nonlinearity: str, *, act_bias_grad: bool):
    """dense_backward plus, where the compiled loop runs and act_bias_grad asks for it, modReLU's
    act_bias gradient sum_{t,b} dz_t sign(h_t) [H], summed inside the loop's pass (else None: the
    caller sums it). Returns (dz, dh0, d_act_bias or None)."""
    nonlinearity = Nonlinearity(nonlinearity)
    T, B, H = outputs.shape
    dtype = compute_dtype(outputs.dtype)
    w = weight.to(dtype)
    if T > 0 and compiled_loops.applies(outputs, w):
        grad = compiled_loops.contiguous_in_workspace(grad_out, dtype)
        dh_last = grad[T - 1] if grad_hn is None else grad[T - 1] + grad_hn.to(dtype)
        dz, dh0, d_act_bias = compiled_loops.loops().dense_backward(
            grad, dh_last.contiguous(), outputs.to(dtype).contiguous(), w.contiguous(),
            compiled_loops.ACTIVATION_CODES[nonlinearity], act_bias_grad,
        )  # fmt: skip
        return dz, dh0, d_act_bias if act_bias_grad else None
    outs = outputs.to(dtype).unbind(0)
    # dz starts as a copy of grad_out (one bulk copy); slot t then gathers dh_t in place
    # (grad_out_t + dz_{t+1} @ W) and is turned into dz_t in place.
    dz = grad_out.to(dtype, memory_format=torch.contiguous_format, copy=True)
    dzs = dz.unbind(0)
    if grad_hn is not None:
        dzs[T - 1].add_(grad_hn.to(dtype))
    scratch = (
        torch.empty((B, H), dtype=dtype, device=outputs.device)
        if nonlinearity is Nonlinearity.MODRELU
        else None
    )
    gemm = StepGemm(w.t(), B)  # dz_t @ W
    for t in range(T - 1, 0, -1):
        _activation_backward_(dzs[t], outs[t], nonlinearity, scratch)
        gemm.accumulate_(dzs[t - 1], dzs[t])
    _activation_backward_(dzs[0], outs[0], nonlinearity, scratch)
    return dz, dzs[0] @ w, None
