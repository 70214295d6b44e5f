"""Gradient checkpointing of the complex dense recurrence as torch.library custom ops (the approach
of checkpointed.py, for complex pre without an input projection).

Forward op:  (pre, weight_hh, h0, act_bias) -> (outputs, h_n, checkpoints). checkpoints
    [S - 1, B, H] are the states that start segments 1..S-1 of K = checkpoint_every steps. For the
    backward it keeps pre, the weights, h0 and the checkpoints: not the outputs [T, B, H].
Backward op: the segments from last to first. Each one re-runs the backend forward from its
    checkpoint, recomputes its z in one GEMM, runs the backend backward with the gradient carried in
    from the segment after it (as grad_hn) and adds its share of every gradient.
"""

import torch

from ..validation import REAL_DTYPE_OF_COMPLEX
from . import complex_gradients
from .checkpointed import num_checkpoints
from .complex_dense import backend_impl


@torch.library.custom_op("trit_rnn::complex_dense_recurrence_checkpointed", mutates_args=())
def complex_dense_recurrence_checkpointed_op(
    pre: torch.Tensor,
    weight_hh: torch.Tensor,
    h0: torch.Tensor | None,
    act_bias: torch.Tensor | None,
    nonlinearity: str,
    eps: float,
    backend: str,
    checkpoint_every: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    forward, _ = backend_impl(backend)
    outputs, h_n = forward(pre, weight_hh, h0, act_bias, nonlinearity, eps)
    T = outputs.shape[0]
    # h_K, h_2K, ...: a copy, so that the outputs' storage is not kept alive by the checkpoints.
    checkpoints = outputs[checkpoint_every - 1 : T - 1 : checkpoint_every].clone()  # [S - 1, B, H]
    return outputs, h_n, checkpoints


@complex_dense_recurrence_checkpointed_op.register_fake
def _checkpointed_fake(pre, weight_hh, h0, act_bias, nonlinearity, eps, backend, checkpoint_every):
    T, B, H = pre.shape
    return (
        pre.new_empty((T, B, H)),
        pre.new_empty((B, H)),
        pre.new_empty((num_checkpoints(T, checkpoint_every), B, H)),
    )


def _absent_bias_grad(pre: torch.Tensor) -> torch.Tensor:
    """The gradient slot of an absent act_bias: a [0] tensor of pre's real dtype."""
    return pre.new_empty(0, dtype=REAL_DTYPE_OF_COMPLEX[pre.dtype])


@torch.library.custom_op("trit_rnn::complex_dense_recurrence_checkpointed_backward", mutates_args=())
def complex_dense_recurrence_checkpointed_backward_op(
    grad_out: torch.Tensor,
    grad_hn: torch.Tensor | None,
    pre: torch.Tensor,
    weight_hh: torch.Tensor,
    h0: torch.Tensor | None,
    act_bias: torch.Tensor | None,
    checkpoints: torch.Tensor,
    nonlinearity: str,
    eps: float,
    backend: str,
    checkpoint_every: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(d pre, d weight_hh, d h0, d act_bias); the gradient of an absent h0 or act_bias is a [0] tensor."""
    forward, backward = backend_impl(backend)
    T = pre.shape[0]
    d_pre = torch.empty_like(pre, memory_format=torch.contiguous_format)  # [T, B, H]
    d_weight = torch.zeros_like(weight_hh, memory_format=torch.contiguous_format)  # [H, H]
    d_bias = torch.zeros_like(act_bias) if act_bias is not None else None  # [H] real
    dh = grad_hn  # [B, H]: the gradient at the end of the segment being walked
    for start in reversed(range(0, T, checkpoint_every)):
        stop = min(start + checkpoint_every, T)
        h_start = checkpoints[start // checkpoint_every - 1] if start else h0  # [B, H] or None (zeros)
        pre_seg = pre[start:stop]  # [L, B, H]
        outputs, _ = forward(pre_seg, weight_hh, h_start, act_bias, nonlinearity, eps)
        z = complex_gradients.preactivations(pre_seg, outputs, h_start, weight_hh, nonlinearity)
        dz, dh = backward(grad_out[start:stop], dh, z, weight_hh, act_bias, nonlinearity, eps)
        d_pre[start:stop] = dz
        d_weight += complex_gradients.weight_grad(dz, outputs, h_start)
        if d_bias is not None:
            d_bias += complex_gradients.act_bias_grad(z, dz, act_bias, eps)
    return (
        d_pre,
        d_weight,
        dh if h0 is not None else pre.new_empty(0),
        d_bias if d_bias is not None else _absent_bias_grad(pre),
    )


@complex_dense_recurrence_checkpointed_backward_op.register_fake
def _checkpointed_backward_fake(grad_out, grad_hn, pre, weight_hh, h0, act_bias, *_):
    return (
        torch.empty_like(pre, memory_format=torch.contiguous_format),
        torch.empty_like(weight_hh, memory_format=torch.contiguous_format),
        torch.empty_like(h0) if h0 is not None else pre.new_empty(0),
        torch.empty_like(act_bias) if act_bias is not None else _absent_bias_grad(pre),
    )


def _setup_context(ctx, inputs, output):
    pre, weight_hh, h0, act_bias, nonlinearity, eps, backend, checkpoint_every = inputs
    _, _, checkpoints = output
    ctx.mark_non_differentiable(checkpoints)
    ctx.save_for_backward(pre, weight_hh, h0, act_bias, checkpoints)
    ctx.nonlinearity = nonlinearity
    ctx.eps = eps
    ctx.backend = backend
    ctx.checkpoint_every = checkpoint_every


def _backward(ctx, grad_out, grad_hn, _grad_checkpoints):
    pre, weight_hh, h0, act_bias, checkpoints = ctx.saved_tensors
    if grad_out is None:
        grad_out = torch.zeros_like(pre, memory_format=torch.contiguous_format)
    grads = complex_dense_recurrence_checkpointed_backward_op(
        grad_out, grad_hn, pre, weight_hh, h0, act_bias, checkpoints,
        ctx.nonlinearity, ctx.eps, ctx.backend, ctx.checkpoint_every,
    )  # fmt: skip
    inputs = (pre, weight_hh, h0, act_bias)
    wanted = [
        grad if (given is not None and needed) else None
        for grad, given, needed in zip(grads, inputs, ctx.needs_input_grad[:4], strict=True)
    ]
    return (*wanted, None, None, None, None)


complex_dense_recurrence_checkpointed_op.register_autograd(_backward, setup_context=_setup_context)
