"""Gradient checkpointing of an Elman layer as torch.library custom ops.

Forward op:  (x, weight_ih, bias_ih, weight_hh, h0, act_bias) -> (outputs, h_n, checkpoints).
    pre = x @ weight_ih^T + bias_ih, then one backend forward over all T steps. checkpoints
    [S - 1, B, H] are the states that start segments 1..S-1 of K = checkpoint_every steps
    (segment 0 starts from h0). For backward it keeps the inputs and the checkpoints only: not the
    outputs [T, B, H], not pre.
Backward op: the segments from last to first. Each one recomputes its pre from x, re-runs the
    backend forward from its checkpoint, runs the backend backward with the dh carried in from the
    segment after it (as grad_hn), and adds its share of every gradient with GEMMs. Peak extra
    memory is one segment's pre, outputs and dz.

Without weight_ih (and bias_ih) x is pre itself: dense_recurrence's checkpointed path, which must
keep pre for the recomputation and so saves only the outputs-versus-checkpoints difference.
"""

import torch

from ..backends import cpu_gemm, torch_dense
from ..backends.torch_dense import compute_dtype
from .dense import act_bias_grad, backend_impl
from .projection import project


def _project(x, weight_ih, bias_ih):
    """pre [L, B, H] of x [L, B, I] on the CPU's fastest GEMM (F.linear's MKL addmm first copies the
    bias into a fresh [L * B, H] output); x itself without an input projection."""
    return x if weight_ih is None else project(x, weight_ih, bias_ih)


def num_checkpoints(steps, checkpoint_every: int):
    """Segments of checkpoint_every steps that do not start at t = 0: ceil(T / K) - 1."""
    return (steps - 1) // checkpoint_every


@torch.library.custom_op("trit_rnn::dense_rnn_checkpointed", mutates_args=())
def dense_rnn_checkpointed_op(
    x: torch.Tensor,
    weight_ih: torch.Tensor | None,
    bias_ih: torch.Tensor | None,
    weight_hh: torch.Tensor,
    h0: torch.Tensor | None,
    act_bias: torch.Tensor | None,
    nonlinearity: str,
    backend: str,
    checkpoint_every: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    forward, _ = backend_impl(backend)
    outputs, h_n = forward(_project(x, weight_ih, bias_ih), weight_hh, h0, act_bias, nonlinearity)
    T = outputs.shape[0]
    # h_K, h_2K, ...: a copy, so that the outputs' storage is not kept alive by the checkpoints.
    checkpoints = outputs[checkpoint_every - 1 : T - 1 : checkpoint_every].clone()  # [S - 1, B, H]
    return outputs, h_n, checkpoints


@dense_rnn_checkpointed_op.register_fake
def _dense_rnn_checkpointed_fake(
    x, weight_ih, bias_ih, weight_hh, h0, act_bias, nonlinearity, backend, checkpoint_every
):
    T, B, _ = x.shape
    H = weight_hh.shape[0]
    return (
        x.new_empty((T, B, H)),
        x.new_empty((B, H)),
        x.new_empty((num_checkpoints(T, checkpoint_every), B, H)),
    )


def _empty_like_optional(t, like):
    """The gradient slot of an optional input: t's shape and dtype, or a [0] tensor when absent."""
    return like.new_empty(0) if t is None else torch.empty_like(t)


@torch.library.custom_op("trit_rnn::dense_rnn_checkpointed_backward", mutates_args=())
def dense_rnn_checkpointed_backward_op(
    grad_out: torch.Tensor,
    grad_hn: torch.Tensor | None,
    x: torch.Tensor,
    weight_ih: torch.Tensor | None,
    bias_ih: torch.Tensor | None,
    weight_hh: torch.Tensor,
    h0: torch.Tensor | None,
    act_bias: torch.Tensor | None,
    checkpoints: torch.Tensor,
    nonlinearity: str,
    backend: str,
    checkpoint_every: int,
    needs_dx: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, d weight_ih, d bias_ih, d weight_hh, d h0, d act_bias), each in its input's dtype; the
    gradient of an absent optional input is a [0] tensor, and so is dx unless needs_dx."""
    forward, backward = backend_impl(backend)
    T, B, _ = x.shape
    H = weight_hh.shape[0]
    dtype = compute_dtype(x.dtype)
    projected = weight_ih is not None
    # Accumulators in the compute dtype; dx is written segment by segment.
    d_weight_hh = weight_hh.new_zeros((H, H), dtype=dtype)
    d_act_bias = act_bias.new_zeros(H, dtype=dtype) if act_bias is not None else None
    d_weight_ih = weight_ih.new_zeros(weight_ih.shape, dtype=dtype) if projected else None
    d_bias_ih = bias_ih.new_zeros(H, dtype=dtype) if bias_ih is not None else None
    w_ih = weight_ih.to(dtype) if projected else None  # [H, I]
    # [T, B, I] (I = H without weight_ih)
    dx = torch.empty_like(x, memory_format=torch.contiguous_format) if needs_dx else x.new_empty(0)
    dh = grad_hn  # [B, H]: dL/dh at the end of the segment being walked
    for start in reversed(range(0, T, checkpoint_every)):
        stop = min(start + checkpoint_every, T)
        h_start = checkpoints[start // checkpoint_every - 1] if start else h0  # [B, H] or None (zeros)
        x_seg = x[start:stop]  # [L, B, I]
        outputs, _ = forward(_project(x_seg, weight_ih, bias_ih), weight_hh, h_start, act_bias, nonlinearity)
        if backend == "torch":  # the compiled loop sums the segment's d act_bias in its pass
            dz, dh, d_act_bias_seg = torch_dense.dense_backward_fused(
                grad_out[start:stop],
                dh,
                outputs,
                weight_hh,
                nonlinearity,
                act_bias_grad=d_act_bias is not None,
            )
        else:
            dz, dh = backward(grad_out[start:stop], dh, outputs, weight_hh, nonlinearity)  # [L, B, H], [B, H]
            d_act_bias_seg = None
        states = outputs.to(dtype)  # [L, B, H]
        dz_rows = dz.flatten(0, 1)  # [L * B, H]
        # dz_t^T h_{t-1} summed over the segment: its own states, then the state it started from.
        if stop - start > 1:
            d_weight_hh.add_(cpu_gemm.linear_weight_grad(dz[1:].flatten(0, 1), states[:-1].flatten(0, 1)))
        if h_start is not None:
            d_weight_hh.addmm_(dz[0].T, h_start.to(dtype))
        if d_act_bias is not None:
            d_act_bias.add_(d_act_bias_seg if d_act_bias_seg is not None else act_bias_grad(dz, states))
        if projected:
            d_weight_ih.add_(cpu_gemm.linear_weight_grad(dz_rows, x_seg.to(dtype).flatten(0, 1)))
            if d_bias_ih is not None:
                d_bias_ih.add_(dz_rows.sum(0))
            if needs_dx:
                dx[start:stop] = cpu_gemm.linear_input_grad(dz_rows, w_ih).view(stop - start, B, -1)
        elif needs_dx:
            dx[start:stop] = dz
    return (
        dx,
        d_weight_ih.to(weight_ih.dtype) if projected else x.new_empty(0),
        d_bias_ih.to(bias_ih.dtype) if d_bias_ih is not None else x.new_empty(0),
        d_weight_hh.to(weight_hh.dtype),
        dh.to(h0.dtype) if h0 is not None else x.new_empty(0),
        d_act_bias.to(act_bias.dtype) if d_act_bias is not None else x.new_empty(0),
    )


@dense_rnn_checkpointed_backward_op.register_fake
def _dense_rnn_checkpointed_backward_fake(
    grad_out, grad_hn, x, weight_ih, bias_ih, weight_hh, h0, act_bias, checkpoints,
    nonlinearity, backend, checkpoint_every, needs_dx,
):  # fmt: skip
    return (
        torch.empty_like(x, memory_format=torch.contiguous_format) if needs_dx else x.new_empty(0),
        _empty_like_optional(weight_ih, x),
        _empty_like_optional(bias_ih, x),
        torch.empty_like(weight_hh),
        _empty_like_optional(h0, x),
        _empty_like_optional(act_bias, x),
    )


def _setup_context(ctx, inputs, output):
    x, weight_ih, bias_ih, weight_hh, h0, act_bias, nonlinearity, backend, checkpoint_every = inputs
    _, _, checkpoints = output
    ctx.mark_non_differentiable(checkpoints)
    ctx.save_for_backward(x, weight_ih, bias_ih, weight_hh, h0, act_bias, checkpoints)
    ctx.nonlinearity = nonlinearity
    ctx.backend = backend
    ctx.checkpoint_every = checkpoint_every


def _backward(ctx, grad_out, grad_hn, _grad_checkpoints):
    x, weight_ih, bias_ih, weight_hh, h0, act_bias, checkpoints = ctx.saved_tensors
    if grad_out is None:
        grad_out = x.new_zeros((x.shape[0], x.shape[1], weight_hh.shape[0]))
    grads = dense_rnn_checkpointed_backward_op(
        grad_out, grad_hn, x, weight_ih, bias_ih, weight_hh, h0, act_bias, checkpoints,
        ctx.nonlinearity, ctx.backend, ctx.checkpoint_every, ctx.needs_input_grad[0],
    )  # fmt: skip
    inputs = (x, weight_ih, bias_ih, weight_hh, h0, act_bias)
    wanted = [
        grad if (given is not None and needed) else None
        for grad, given, needed in zip(grads, inputs, ctx.needs_input_grad[:6], strict=True)
    ]
    return (*wanted, None, None, None)


dense_rnn_checkpointed_op.register_autograd(_backward, setup_context=_setup_context)
