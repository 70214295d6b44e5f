"""The gated recurrences (LSTM, GRU) as torch.library custom ops, with autograd and fake kernels.

Forward ops: the backend's forward (trit_rnn/backends/torch_gated.py states the contract); the
activations the backward reads (gates, cells / the recurrent candidate part) are extra outputs,
marked non-differentiable. Backward ops: the sequential reverse loop only. lengths ([B] or None)
reaches the Triton kernels only (see trit_rnn/varlen.py); the per-step gradients are zero past each
sequence's end, so the bulk sums below need no lengths. The weight and bias
gradients are GEMMs and sums over all steps at once, done here in PyTorch:
    d weight_hh = sum_t d_t^T h_{t-1}     (d = d_gates for LSTM, d_hidden for GRU)
    d bias_hh   = sum_{t,b} d_hidden      (GRU; the LSTM's bias = b_ih + b_hh: the backend's
                                           d_bias, summed in the torch backend's loop)
    d act_bias  = sum_{t,b} d a_n sign(n)  (GORU's modReLU candidate)
"""

import torch

from ..backends import cpu_gemm, torch_gated
from ..backends.torch_dense import compute_dtype
from ..varlen import lengths_keyword
from . import eager


def backend_impl(backend: str):
    """The module holding lstm_forward/lstm_backward/gru_forward/gru_backward for a backend."""
    if backend == "triton":
        from ..kernels.gated import launch

        return launch
    return torch_gated


def _states_before(
    outputs: torch.Tensor, h0: torch.Tensor | None, dtype
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(h_1..h_{T-1} [T-1, B, H], h0 or None) in `dtype`: the states each step's GEMM reads."""
    return outputs[:-1].to(dtype), (h0.to(dtype) if h0 is not None else None)


def _weight_grad(d: torch.Tensor, outputs: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    """sum_t d_t^T h_{t-1} [G*H, H] in one GEMM over all (t, b) rows, plus the h0 term."""
    states, h0 = _states_before(outputs, h0, d.dtype)
    grad = cpu_gemm.linear_weight_grad(d[1:].flatten(0, 1), states.flatten(0, 1))
    if h0 is not None:
        grad = grad.addmm_(d[0].T, h0)
    return grad


def _state_grad(grad: torch.Tensor, state: torch.Tensor | None, needed: bool):
    return grad.to(state.dtype) if (state is not None and needed) else None


# --------------------------------------------------------------------------------------------
# LSTM


def _lstm_recurrence(
    pre: torch.Tensor,
    weight_hh: torch.Tensor,
    h0: torch.Tensor | None,
    c0: torch.Tensor | None,
    bias: torch.Tensor | None,
    lengths: torch.Tensor | None,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return backend_impl(backend).lstm_forward(pre, weight_hh, h0, c0, bias, **lengths_keyword(lengths))


lstm_recurrence_op = torch.library.custom_op("trit_rnn::lstm_recurrence", mutates_args=())(_lstm_recurrence)


@lstm_recurrence_op.register_fake
def _lstm_fake(pre, weight_hh, h0, c0, bias, lengths, backend):
    T, B, G = pre.shape
    H = G // 4
    dtype = compute_dtype(pre.dtype)
    return (
        pre.new_empty((T, B, H)),
        pre.new_empty((B, H)),
        pre.new_empty((B, H)),
        pre.new_empty((T, B, G), dtype=dtype),
        pre.new_empty((T, B, H), dtype=dtype),
    )


def _lstm_recurrence_backward(
    grad_out: torch.Tensor,
    grad_hn: torch.Tensor | None,
    grad_cn: torch.Tensor | None,
    outputs: torch.Tensor,
    gates: torch.Tensor,
    cells: torch.Tensor,
    h0: torch.Tensor | None,
    c0: torch.Tensor | None,
    weight_hh: torch.Tensor,
    bias_grad: bool,
    lengths: torch.Tensor | None,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(d_gates, dh0, dc0, d_bias): d_bias [4H] when bias_grad, else empty [0] (an op returns tensors)."""
    d_gates, dh0, dc0, d_bias = backend_impl(backend).lstm_backward(
        grad_out, grad_hn, grad_cn, outputs, gates, cells, h0, c0, weight_hh, bias_grad, **lengths_keyword(lengths)
    )  # fmt: skip
    return d_gates, dh0, dc0, d_bias if d_bias is not None else d_gates.new_empty(0)


lstm_recurrence_backward_op = torch.library.custom_op("trit_rnn::lstm_recurrence_backward", mutates_args=())(
    _lstm_recurrence_backward
)


@lstm_recurrence_backward_op.register_fake
def _lstm_backward_fake(
    grad_out, grad_hn, grad_cn, outputs, gates, cells, h0, c0, weight_hh, bias_grad, lengths, backend
):
    T, B, H = outputs.shape
    new = gates.new_empty
    return new((T, B, 4 * H)), new((B, H)), new((B, H)), new((4 * H if bias_grad else 0,))


def _lstm_setup_context(ctx, inputs, output):
    pre, weight_hh, h0, c0, bias, lengths, backend = inputs
    outputs, _, _, gates, cells = output
    ctx.mark_non_differentiable(gates, cells)
    ctx.set_materialize_grads(False)  # no [T, B, 4H] zeros for the saved activations' gradients
    ctx.save_for_backward(outputs, gates, cells, h0, c0, weight_hh, lengths)
    ctx.backend = backend
    ctx.pre_dtype = pre.dtype
    ctx.bias_dtype = bias.dtype if bias is not None else None


def _lstm_backward(ctx, grad_out, grad_hn, grad_cn, _grad_gates, _grad_cells):
    outputs, gates, cells, h0, c0, weight_hh, lengths = ctx.saved_tensors
    needs_pre, needs_weight, needs_h0, needs_c0, needs_bias = ctx.needs_input_grad[:5]
    bias_grad = ctx.bias_dtype is not None and needs_bias
    if grad_out is None:
        grad_out = torch.zeros_like(outputs)
    d_gates, dh0, dc0, d_bias = eager.call(
        lstm_recurrence_backward_op, _lstm_recurrence_backward,
        grad_out, grad_hn, grad_cn, outputs, gates, cells, h0, c0, weight_hh, bias_grad, lengths, ctx.backend,
    )  # fmt: skip
    d_pre = d_gates.to(ctx.pre_dtype) if needs_pre else None
    d_weight = _weight_grad(d_gates, outputs, h0).to(weight_hh.dtype) if needs_weight else None
    d_bias = d_bias.to(ctx.bias_dtype) if bias_grad else None
    d_h0, d_c0 = _state_grad(dh0, h0, needs_h0), _state_grad(dc0, c0, needs_c0)
    return d_pre, d_weight, d_h0, d_c0, d_bias, None, None


lstm_recurrence_op.register_autograd(_lstm_backward, setup_context=_lstm_setup_context)
LstmRecurrence = eager.eager_function("LstmRecurrence", _lstm_recurrence, _lstm_setup_context, _lstm_backward)


def lstm_recurrence(pre, weight_hh, h0, c0, bias, lengths, backend: str):
    """The op while torch.compile traces, else its eager twin (autograd/eager.py)."""
    return eager.call(lstm_recurrence_op, LstmRecurrence, pre, weight_hh, h0, c0, bias, lengths, backend)


# --------------------------------------------------------------------------------------------
# GRU


@torch.library.custom_op("trit_rnn::gru_recurrence", mutates_args=())
def gru_recurrence_op(
    pre: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_hh: torch.Tensor | None,
    h0: torch.Tensor | None,
    act_bias: torch.Tensor | None,
    lengths: torch.Tensor | None,
    nonlinearity: str,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return backend_impl(backend).gru_forward(
        pre, weight_hh, bias_hh, h0, act_bias, nonlinearity, **lengths_keyword(lengths)
    )


@gru_recurrence_op.register_fake
def _gru_fake(pre, weight_hh, bias_hh, h0, act_bias, lengths, nonlinearity, backend):
    T, B, G = pre.shape
    H = G // 3
    dtype = compute_dtype(pre.dtype)
    return (
        pre.new_empty((T, B, H)),
        pre.new_empty((B, H)),
        pre.new_empty((T, B, G), dtype=dtype),
        pre.new_empty((T, B, H), dtype=dtype),
    )


@torch.library.custom_op("trit_rnn::gru_recurrence_backward", mutates_args=())
def gru_recurrence_backward_op(
    grad_out: torch.Tensor,
    grad_hn: torch.Tensor | None,
    outputs: torch.Tensor,
    gates: torch.Tensor,
    hidden_n: torch.Tensor,
    h0: torch.Tensor | None,
    weight_hh: torch.Tensor,
    lengths: torch.Tensor | None,
    nonlinearity: str,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return backend_impl(backend).gru_backward(
        grad_out, grad_hn, outputs, gates, hidden_n, h0, weight_hh, nonlinearity, **lengths_keyword(lengths)
    )


@gru_recurrence_backward_op.register_fake
def _gru_backward_fake(
    grad_out, grad_hn, outputs, gates, hidden_n, h0, weight_hh, lengths, nonlinearity, backend
):
    T, B, H = outputs.shape
    return gates.new_empty((T, B, 3 * H)), gates.new_empty((T, B, 3 * H)), gates.new_empty((B, H))


def _gru_setup_context(ctx, inputs, output):
    pre, weight_hh, bias_hh, h0, act_bias, lengths, nonlinearity, backend = inputs
    outputs, _, gates, hidden_n = output
    ctx.mark_non_differentiable(gates, hidden_n)
    ctx.set_materialize_grads(False)  # no [T, B, 3H] zeros for the saved activations' gradients
    ctx.save_for_backward(outputs, gates, hidden_n, h0, weight_hh, bias_hh, act_bias, lengths)
    ctx.nonlinearity = nonlinearity
    ctx.backend = backend
    ctx.pre_dtype = pre.dtype


def _gru_backward(ctx, grad_out, grad_hn, _grad_gates, _grad_hidden):
    outputs, gates, hidden_n, h0, weight_hh, bias_hh, act_bias, lengths = ctx.saved_tensors
    needs_pre, needs_weight, needs_bias, needs_h0, needs_act_bias = ctx.needs_input_grad[:5]
    if grad_out is None:
        grad_out = torch.zeros_like(outputs)
    d_pre, d_hidden, dh0 = gru_recurrence_backward_op(
        grad_out, grad_hn, outputs, gates, hidden_n, h0, weight_hh, lengths, ctx.nonlinearity, ctx.backend
    )
    d_weight = _weight_grad(d_hidden, outputs, h0).to(weight_hh.dtype) if needs_weight else None
    d_bias = None
    if bias_hh is not None and needs_bias:
        d_bias = d_hidden.sum((0, 1)).to(bias_hh.dtype)
    d_act_bias = None
    if act_bias is not None and needs_act_bias:
        H = outputs.shape[-1]
        candidate = gates[..., 2 * H :]
        d_act_bias = (d_pre[..., 2 * H :] * torch.sign(candidate)).sum((0, 1)).to(act_bias.dtype)
    d_pre = d_pre.to(ctx.pre_dtype) if needs_pre else None
    return d_pre, d_weight, d_bias, _state_grad(dh0, h0, needs_h0), d_act_bias, None, None, None


gru_recurrence_op.register_autograd(_gru_backward, setup_context=_gru_setup_context)
