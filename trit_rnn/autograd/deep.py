"""The deep-transition recurrence as torch.library custom ops, with autograd and fake kernels.

Forward op: the backend's forward (trit_rnn/backends/torch_deep.py states the contract); the
intermediate layers' states are an extra output, marked non-differentiable. Backward op: the
sequential reverse loop only. lengths ([B] or None) reaches the Triton kernels only (see
trit_rnn/varlen.py). The weight and bias gradients are GEMMs and sums over all steps (the per-step
gradients are zero past each sequence's end):
    d weight_hh = sum_t d_pre_t^T h_{t-1},  d W_k = sum_t d a^k_t^T s^{k-1}_t,  d b_k = sum d a^k
"""

import torch

from ..backends import torch_deep
from ..backends.torch_dense import compute_dtype
from ..varlen import lengths_keyword
from .gated import _state_grad, _weight_grad


def backend_impl(backend: str):
    """The module holding deep_forward/deep_backward for a backend."""
    if backend == "triton":
        from ..kernels.deep import launch

        return launch
    return torch_deep


@torch.library.custom_op("trit_rnn::deep_recurrence", mutates_args=())
def deep_recurrence_op(
    pre: torch.Tensor,
    weight_hh: torch.Tensor,
    weights_deep: torch.Tensor,
    biases_deep: torch.Tensor,
    h0: torch.Tensor | None,
    lengths: torch.Tensor | None,
    nonlinearity: str,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return backend_impl(backend).deep_forward(
        pre, weight_hh, weights_deep, biases_deep, h0, nonlinearity, **lengths_keyword(lengths)
    )


@deep_recurrence_op.register_fake
def _deep_fake(pre, weight_hh, weights_deep, biases_deep, h0, lengths, nonlinearity, backend):
    T, B, _ = pre.shape
    H = weight_hh.shape[1]
    depth = weights_deep.shape[0] + 1
    dtype = compute_dtype(pre.dtype)
    return pre.new_empty((T, B, H)), pre.new_empty((B, H)), pre.new_empty((depth - 1, T, B, H), dtype=dtype)


@torch.library.custom_op("trit_rnn::deep_recurrence_backward", mutates_args=())
def deep_recurrence_backward_op(
    grad_out: torch.Tensor,
    grad_hn: torch.Tensor | None,
    outputs: torch.Tensor,
    layers: torch.Tensor,
    h0: torch.Tensor | None,
    weight_hh: torch.Tensor,
    weights_deep: torch.Tensor,
    lengths: torch.Tensor | None,
    nonlinearity: str,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return backend_impl(backend).deep_backward(
        grad_out, grad_hn, outputs, layers, h0, weight_hh, weights_deep, nonlinearity,
        **lengths_keyword(lengths),
    )  # fmt: skip


@deep_recurrence_backward_op.register_fake
def _deep_backward_fake(
    grad_out, grad_hn, outputs, layers, h0, weight_hh, weights_deep, lengths, nonlinearity, backend
):
    T, B, H = outputs.shape
    depth = weights_deep.shape[0] + 1
    return (
        layers.new_empty((T, B, weight_hh.shape[0])),
        layers.new_empty((depth, T, B, H)),
        layers.new_empty((B, H)),
    )


def _setup_context(ctx, inputs, output):
    pre, weight_hh, weights_deep, biases_deep, h0, lengths, nonlinearity, backend = inputs
    outputs, _, layers = output
    ctx.mark_non_differentiable(layers)
    ctx.set_materialize_grads(False)  # no [D-1, T, B, H] zeros for the layers' gradients
    ctx.save_for_backward(outputs, layers, h0, weight_hh, weights_deep, biases_deep, lengths)
    ctx.nonlinearity = nonlinearity
    ctx.backend = backend
    ctx.pre_dtype = pre.dtype


def _backward(ctx, grad_out, grad_hn, _grad_layers):
    outputs, layers, h0, weight_hh, weights_deep, biases_deep, lengths = ctx.saved_tensors
    needs_pre, needs_weight, needs_deep, needs_biases, needs_h0 = ctx.needs_input_grad[:5]
    if grad_out is None:
        grad_out = torch.zeros_like(outputs)
    d_pre, d_layers, dh0 = deep_recurrence_backward_op(
        grad_out, grad_hn, outputs, layers, h0, weight_hh, weights_deep, lengths, ctx.nonlinearity,
        ctx.backend,
    )  # fmt: skip
    d_weight = _weight_grad(d_pre, outputs, h0).to(weight_hh.dtype) if needs_weight else None
    d_deep = None
    if needs_deep:
        # d W_k = sum over (t, b) rows of d a^k^T s^{k-1}: one batched GEMM over the D-1 layers
        d_deep = torch.bmm(d_layers[1:].flatten(1, 2).transpose(1, 2), layers.flatten(1, 2))
        d_deep = d_deep.to(weights_deep.dtype)
    d_biases = d_layers[1:].sum((1, 2)).to(biases_deep.dtype) if needs_biases else None
    d_pre = d_pre.to(ctx.pre_dtype) if needs_pre else None
    return d_pre, d_weight, d_deep, d_biases, _state_grad(dh0, h0, needs_h0), None, None, None


deep_recurrence_op.register_autograd(_backward, setup_context=_setup_context)
