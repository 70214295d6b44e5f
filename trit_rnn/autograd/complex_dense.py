"""The complex dense recurrence as torch.library custom ops, with autograd and fake (meta) kernels.

Forward op:  (pre, weight_hh, h0, act_bias, lengths) -> (outputs, h_n), by the chosen backend
(lengths [B] or None, for the Triton kernels only: see trit_rnn/varlen.py).
Backward op: the sequential reverse loop only -> (dz, dh0) (the contract: backends/torch_complex.py).
The rest of the backward is bulk PyTorch here (complex_gradients.py), so that torch.compile sees it:
    z          = pre + [h0, h_1..h_{T-1}] @ weight^T    (modReLU only; identity: z = outputs)
    d pre      = dz
    d weight   = sum_t dz_t^T conj(h_{t-1})
    d act_bias = from z and dz
"""

import torch

from ..backends import torch_complex
from ..varlen import lengths_keyword
from . import complex_gradients


def backend_impl(backend: str):
    """(forward, backward) of a backend, both as in the contract of backends/torch_complex.py."""
    if backend == "triton":
        from ..kernels.dense_complex import launch

        return launch.complex_forward, launch.complex_backward
    return torch_complex.complex_forward, torch_complex.complex_backward


@torch.library.custom_op("trit_rnn::complex_dense_recurrence", mutates_args=())
def complex_dense_recurrence_op(
    pre: torch.Tensor,
    weight_hh: torch.Tensor,
    h0: torch.Tensor | None,
    act_bias: torch.Tensor | None,
    lengths: torch.Tensor | None,
    nonlinearity: str,
    eps: float,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    forward, _ = backend_impl(backend)
    return forward(pre, weight_hh, h0, act_bias, nonlinearity, eps, **lengths_keyword(lengths))


@complex_dense_recurrence_op.register_fake
def _complex_dense_recurrence_fake(pre, weight_hh, h0, act_bias, lengths, nonlinearity, eps, backend):
    T, B, H = pre.shape
    return pre.new_empty((T, B, H)), pre.new_empty((B, H))


@torch.library.custom_op("trit_rnn::complex_dense_recurrence_backward", mutates_args=())
def complex_dense_recurrence_backward_op(
    grad_out: torch.Tensor,
    grad_hn: torch.Tensor | None,
    z: torch.Tensor,
    weight_hh: torch.Tensor,
    act_bias: torch.Tensor | None,
    lengths: torch.Tensor | None,
    nonlinearity: str,
    eps: float,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    _, backward = backend_impl(backend)
    return backward(grad_out, grad_hn, z, weight_hh, act_bias, nonlinearity, eps, **lengths_keyword(lengths))


@complex_dense_recurrence_backward_op.register_fake
def _complex_dense_recurrence_backward_fake(
    grad_out, grad_hn, z, weight_hh, act_bias, lengths, nonlinearity, eps, backend
):
    T, B, H = grad_out.shape
    return grad_out.new_empty((T, B, H)), grad_out.new_empty((B, H))


def _setup_context(ctx, inputs, output):
    pre, weight_hh, h0, act_bias, lengths, nonlinearity, eps, backend = inputs
    outputs, _ = output
    # pre is kept only to recompute z (identity needs no z: it is the outputs).
    keep_pre = pre if act_bias is not None else None
    ctx.save_for_backward(keep_pre, outputs, weight_hh, h0, act_bias, lengths)
    ctx.nonlinearity = nonlinearity
    ctx.eps = eps
    ctx.backend = backend


def _backward(ctx, grad_out, grad_hn):
    pre, outputs, weight_hh, h0, act_bias, lengths = ctx.saved_tensors
    needs_pre, needs_weight, needs_h0, needs_bias = ctx.needs_input_grad[:4]
    if grad_out is None:
        grad_out = torch.zeros_like(outputs)
    # z past a sequence's end is not a pre-activation (the kernels do not read it there), and dz
    # is zero there, so the bulk gradients below need no lengths
    z = complex_gradients.preactivations(pre, outputs, h0, weight_hh, ctx.nonlinearity)  # [T, B, H]
    dz, dh0 = complex_dense_recurrence_backward_op(
        grad_out, grad_hn, z, weight_hh, act_bias, lengths, ctx.nonlinearity, ctx.eps, ctx.backend
    )
    d_pre = dz if needs_pre else None
    d_weight = complex_gradients.weight_grad(dz, outputs, h0) if needs_weight else None
    d_h0 = dh0 if (h0 is not None and needs_h0) else None
    d_bias = None
    if act_bias is not None and needs_bias:
        d_bias = complex_gradients.act_bias_grad(z, dz, act_bias, ctx.eps)
    return d_pre, d_weight, d_h0, d_bias, None, None, None, None


complex_dense_recurrence_op.register_autograd(_backward, setup_context=_setup_context)
