"""The dense recurrence as torch.library custom ops, with autograd and fake (meta) kernels.

Forward op:  (pre, weight_hh, h0, act_bias, lengths) -> (outputs, h_n), by the chosen backend.
Backward op: the sequential reverse loop only -> (dz, dh0). lengths ([B] or None, trit_rnn.varlen)
reaches the Triton kernels only: the torch backend runs ragged batches in segments of plain calls. Everything else in the backward is a
GEMM or a reduction over all steps at once, done here in PyTorch so that torch.compile sees it:
    d pre      = dz
    d weight   = sum_t dz_t^T h_{t-1}
    d act_bias = sum_{t,b} dz_t * sign(h_t)      (modReLU: d h/d b = sign(z) where active)
Outside torch.compile both ops run through their eager twin (autograd/eager.py): `dense_recurrence`;
there the torch backend's compiled loop also sums d act_bias inside its reverse pass, saving two
passes over [T, B, H] (torch_dense.dense_backward_fused).
"""

import torch

from ..backends import cpu_gemm, torch_dense
from ..varlen import lengths_keyword
from . import eager


def backend_impl(backend: str):
    """(forward, backward) of a backend; both take the nonlinearity by name."""
    if backend == "triton":
        from ..kernels.dense import launch

        return launch.dense_forward, launch.dense_backward
    return torch_dense.dense_forward, torch_dense.dense_backward


def _dense_recurrence(
    pre: torch.Tensor,
    weight_hh: torch.Tensor,
    h0: torch.Tensor | None,
    act_bias: torch.Tensor | None,
    lengths: torch.Tensor | None,
    nonlinearity: str,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    forward, _ = backend_impl(backend)
    return forward(pre, weight_hh, h0, act_bias, nonlinearity, **lengths_keyword(lengths))


dense_recurrence_op = torch.library.custom_op("trit_rnn::dense_recurrence", mutates_args=())(
    _dense_recurrence
)


@dense_recurrence_op.register_fake
def _dense_recurrence_fake(pre, weight_hh, h0, act_bias, lengths, nonlinearity, backend):
    T, B, H = pre.shape
    return pre.new_empty((T, B, H)), pre.new_empty((B, H))


def _dense_recurrence_backward(
    grad_out: torch.Tensor,
    grad_hn: torch.Tensor | None,
    outputs: torch.Tensor,
    weight_hh: torch.Tensor,
    lengths: torch.Tensor | None,
    nonlinearity: str,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    _, backward = backend_impl(backend)
    return backward(grad_out, grad_hn, outputs, weight_hh, nonlinearity, **lengths_keyword(lengths))


dense_recurrence_backward_op = torch.library.custom_op(
    "trit_rnn::dense_recurrence_backward", mutates_args=()
)(_dense_recurrence_backward)


@dense_recurrence_backward_op.register_fake
def _dense_recurrence_backward_fake(grad_out, grad_hn, outputs, weight_hh, lengths, nonlinearity, backend):
    T, B, H = outputs.shape
    dtype = torch_dense.compute_dtype(outputs.dtype)
    return outputs.new_empty((T, B, H), dtype=dtype), outputs.new_empty((B, H), dtype=dtype)


def act_bias_grad(dz: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """modReLU's act_bias gradient [H]: sum_{t,b} dz_t * sign(h_t) over dz, states [T, B, H]."""
    return (dz * torch.sign(states)).sum((0, 1))


def _setup_context(ctx, inputs, output):
    pre, weight_hh, h0, act_bias, lengths, nonlinearity, backend = inputs
    outputs, _ = output
    ctx.save_for_backward(outputs, weight_hh, h0, act_bias, lengths)
    ctx.nonlinearity = nonlinearity
    ctx.backend = backend
    ctx.pre_dtype = pre.dtype


def _backward(ctx, grad_out, grad_hn):
    outputs, weight_hh, h0, act_bias, lengths = ctx.saved_tensors
    needs_pre, needs_weight, needs_h0, needs_bias = ctx.needs_input_grad[:4]
    if grad_out is None:
        grad_out = torch.zeros_like(outputs)
    wants_bias = act_bias is not None and needs_bias
    d_bias = None
    if (
        ctx.backend == "torch"
        and lengths is None
        and eager.runs_eagerly(grad_out, grad_hn, outputs, weight_hh)
    ):
        # the compiled loop sums the act_bias gradient in its own pass (torch_dense.py)
        dz, dh0, d_bias = torch_dense.dense_backward_fused(
            grad_out, grad_hn, outputs, weight_hh, ctx.nonlinearity, act_bias_grad=wants_bias
        )
    else:
        # dz is zero past each sequence's end, so the bulk GEMMs below need no lengths
        dz, dh0 = eager.call(
            dense_recurrence_backward_op, _dense_recurrence_backward,
            grad_out, grad_hn, outputs, weight_hh, lengths, ctx.nonlinearity, ctx.backend,
        )  # fmt: skip
    d_pre = dz.to(ctx.pre_dtype) if needs_pre else None
    d_weight = None
    if needs_weight:
        # [H, H] = dz[1:]^T @ h[:-1] over all (t, b) rows in one GEMM, plus the h0 term.
        if dz.shape[0] > 1:
            states = outputs[:-1].to(dz.dtype)
            d_weight = cpu_gemm.linear_weight_grad(dz[1:].flatten(0, 1), states.flatten(0, 1))
            if h0 is not None:
                d_weight = d_weight.addmm_(dz[0].T, h0.to(dz.dtype))
        elif h0 is not None:
            d_weight = dz[0].T @ h0.to(dz.dtype)
        else:
            d_weight = dz.new_zeros(weight_hh.shape)
        d_weight = d_weight.to(weight_hh.dtype)
    d_h0 = dh0.to(h0.dtype) if (h0 is not None and needs_h0) else None
    if wants_bias:
        if d_bias is None:
            d_bias = act_bias_grad(dz, outputs.to(dz.dtype))
        d_bias = d_bias.to(act_bias.dtype)
    return d_pre, d_weight, d_h0, d_bias, None, None, None


dense_recurrence_op.register_autograd(_backward, setup_context=_setup_context)
DenseRecurrence = eager.eager_function("DenseRecurrence", _dense_recurrence, _setup_context, _backward)


def dense_recurrence(pre, weight_hh, h0, act_bias, lengths, nonlinearity: str, backend: str):
    """(outputs, h_n): the op while torch.compile traces, else its eager twin (autograd/eager.py)."""
    return eager.call(
        dense_recurrence_op, DenseRecurrence, pre, weight_hh, h0, act_bias, lengths, nonlinearity, backend
    )
