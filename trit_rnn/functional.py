"""Functional ops: validate inputs, explain errors, pick a backend, call the custom op."""

import torch

from . import dispatch
from .autograd import dense as _dense_ops
from .nonlinearity import Nonlinearity
from .validation import check_same, check_shape, check_tensor


def _dense_supports(hidden_size: int, dtype: torch.dtype, device: torch.device):
    from .kernels.dense import launch

    return launch.supports(hidden_size, dtype, device)


def dense_recurrence(pre, weight_hh, h0=None, *, nonlinearity="tanh", act_bias=None, backend="auto"):
    """The dense recurrence z_t = pre_t + h_{t-1} @ weight_hh.T, h_t = f(z_t), t = 1..T.

    Args:
        pre: [T, B, H] input projection for every step, biases included.
        weight_hh: [H, H] recurrent matrix, applied as in torch.nn.RNN.
        h0: [B, H] initial state; zeros when None.
        nonlinearity: "tanh", "relu", "identity" or "modrelu" (sign(z) * relu(|z| + act_bias)).
        act_bias: [H] modReLU bias; required for "modrelu", rejected otherwise.
        backend: "auto", "torch" or "triton" (see trit_rnn.dispatch).

    Returns:
        (outputs [T, B, H] = h_1..h_T, h_n [B, H] = h_T), in pre's dtype. bfloat16/float16 inputs
        are stored in that dtype while the state and accumulation stay float32.
    """
    check_tensor(pre, "pre", ndim=3)
    T, B, H = pre.shape
    if T < 1 or B < 1 or H < 1:
        raise ValueError(f"pre must be [T, B, H] with T, B, H >= 1; got shape {tuple(pre.shape)}")
    check_tensor(weight_hh, "weight_hh", ndim=2)
    check_shape(weight_hh, "weight_hh", (H, H), "hidden size taken from pre [T, B, H]")
    check_same(weight_hh, "weight_hh", pre, "pre")
    if h0 is not None:
        check_tensor(h0, "h0", ndim=2)
        check_shape(h0, "h0", (B, H), "batch and hidden size taken from pre [T, B, H]")
        check_same(h0, "h0", pre, "pre")
    nl = Nonlinearity.parse(nonlinearity)
    if nl is Nonlinearity.MODRELU:
        if act_bias is None:
            raise ValueError('act_bias [H] is required with nonlinearity="modrelu"; got None')
        check_tensor(act_bias, "act_bias", ndim=1)
        check_shape(act_bias, "act_bias", (H,), "one modReLU bias per hidden unit")
        check_same(act_bias, "act_bias", pre, "pre")
    elif act_bias is not None:
        raise ValueError(f'act_bias is used only with nonlinearity="modrelu"; got nonlinearity={nl.value!r}')
    dispatch.parse_backend(backend)
    chosen, reason = dispatch.resolve_backend(
        backend, pre.device, lambda: _dense_supports(H, pre.dtype, pre.device)
    )
    dispatch.log_choice("dense_recurrence", backend, chosen, reason)
    return _dense_ops.dense_recurrence_op(pre, weight_hh, h0, act_bias, nl.value, chosen)
