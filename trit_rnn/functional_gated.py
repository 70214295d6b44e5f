"""The gated and deep-transition recurrences as functional ops: validate, explain errors, pick a
backend, call the custom ops (trit_rnn/autograd/gated.py, deep.py). Equations and layouts:
trit_rnn/backends/torch_gated.py and torch_deep.py."""

import torch

from . import dispatch
from .autograd import deep as _deep_ops
from .autograd import gated as _gated_ops
from .backends.torch_deep import DEEP_NONLINEARITIES
from .nonlinearity import Nonlinearity
from .validation import check_same, check_shape, check_tensor
from .varlen import check_lengths, run_segments

GATES = {"lstm": 4, "gru": 3}


def _gated_supports(cell: str, hidden_size: int, dtype: torch.dtype, device: torch.device, **shape):
    """The kernel family's verdict; `shape` carries the deep transition's depth and shortcut."""
    if cell == "deep_transition":
        from .kernels.deep import launch

        return launch.supports(hidden_size, dtype, device, **shape)
    from .kernels.gated import launch

    return launch.supports(hidden_size, dtype, device, cell)


def _check_gated(cell: str, pre, weight_hh, states: dict) -> int:
    """Checks pre [T, B, G*H], weight_hh [G*H, H] and the [B, H] states; returns H."""
    gates = GATES[cell]
    check_tensor(pre, "pre", ndim=3)
    T, B, width = pre.shape
    if T < 1 or B < 1 or width < gates or width % gates:
        raise ValueError(
            f"pre must be [T, B, {gates}*H] ({cell}: {gates} gate blocks of H columns) with T, B, H >= 1; "
            f"got shape {tuple(pre.shape)}"
        )
    H = width // gates
    reference = f"pre [T, B, {gates}*H]"
    check_tensor(weight_hh, "weight_hh", ndim=2)
    check_shape(
        weight_hh,
        "weight_hh",
        (gates * H, H),
        f"{gates} gate blocks by the hidden size taken from {reference}",
    )
    check_same(weight_hh, "weight_hh", pre, reference)
    for name, state in states.items():
        if state is not None:
            check_tensor(state, name, ndim=2)
            check_shape(state, name, (B, H), f"batch and hidden size taken from {reference}")
            check_same(state, name, pre, reference)
    return H


def _check_bias(bias, name: str, cell: str, pre, H: int) -> None:
    """A [G*H] bias (or None) on pre's device and dtype."""
    if bias is None:
        return
    gates = GATES[cell]
    reference = f"pre [T, B, {gates}*H]"
    check_tensor(bias, name, ndim=1)
    check_shape(bias, name, (gates * H,), f"{gates} gate blocks of the hidden size taken from {reference}")
    check_same(bias, name, pre, reference)


def _choose_backend(cell: str, backend: str, pre: torch.Tensor, H: int, **shape) -> str:
    dispatch.parse_backend(backend)
    chosen, reason = dispatch.resolve_backend(
        backend, pre.device, lambda: _gated_supports(cell, H, pre.dtype, pre.device, **shape)
    )
    dispatch.log_choice(f"{cell}_recurrence", backend, chosen, reason)
    return chosen


def _ragged(lengths, pre: torch.Tensor, chosen: str):
    """(checked lengths or None, whether they run in segments): the kernels take them, the torch
    backend runs segments of plain calls (trit_rnn.varlen)."""
    lengths = check_lengths(lengths, pre.shape[0], pre.shape[1])
    if lengths is None:
        return None, False
    if chosen == "triton":
        return lengths.to(pre.device), False
    return lengths, True


def lstm_recurrence(pre, weight_hh, h0=None, c0=None, *, bias=None, backend="auto", lengths=None):
    """The LSTM recurrence, gate order (i, f, g, o) as torch.nn.LSTM:
    a_t = pre_t + h_{t-1} @ weight_hh^T + bias; c_t = f c_{t-1} + i g; h_t = o tanh(c_t).

    Args:
        pre: [T, B, 4H] input projection of every step (x W_ih^T, and the biases unless given as bias).
        weight_hh: [4H, H]. h0, c0: [B, H] initial states, zeros when None.
        bias: None or [4H] (b_ih + b_hh), added at every step. Equal to folding it into pre; on the
            CPU the compiled loop adds it in its pass and sums its gradient there, which saves two
            passes over the [T, B, 4H] pre-activations.
        backend: "auto", "torch" or "triton" (see trit_rnn.dispatch).
        lengths: None or one length per sequence in [1, T]: a padded batch, as in
            functional.dense_recurrence (both states stay unchanged past a sequence's end).

    Returns:
        (outputs [T, B, H], h_n [B, H], c_n [B, H]) in pre's dtype.
    """
    H = _check_gated("lstm", pre, weight_hh, {"h0": h0, "c0": c0})
    _check_bias(bias, "bias", "lstm", pre, H)
    chosen = _choose_backend("lstm", backend, pre, H)
    lengths, by_segments = _ragged(lengths, pre, chosen)

    def run(chunk, states, lengths=None):
        outputs, h_n, c_n, _, _ = _gated_ops.lstm_recurrence(chunk, weight_hh, *states, bias, lengths, chosen)
        return outputs, (h_n, c_n)

    if by_segments:
        outputs, (h_n, c_n) = run_segments(run, pre, (h0, c0), lengths)
    else:
        outputs, (h_n, c_n) = run(pre, (h0, c0), lengths)
    return outputs, h_n, c_n


def gru_recurrence(
    pre, weight_hh, bias_hh=None, h0=None, *, nonlinearity="tanh", act_bias=None, backend="auto", lengths=None
):
    """The GRU recurrence, gate order (r, z, n) as torch.nn.GRU (reset after the recurrent product):
    q_t = h_{t-1} @ weight_hh^T + bias_hh; r, z = sigmoid(pre + q); n = f(pre_n + r q_n);
    h_t = (1 - z) n + z h_{t-1}. With f = modReLU and an orthogonal candidate block of weight_hh it
    is GORU's recurrence.

    Args:
        pre: [T, B, 3H] input projection of every step (x W_ih^T + b_ih).
        weight_hh: [3H, H]. bias_hh: [3H] or None. h0: [B, H], zeros when None.
        nonlinearity: the candidate's f: "tanh" (GRU), "modrelu" (GORU: sign(a) relu(|a| + act_bias)),
            "relu" or "identity".
        act_bias: [H] modReLU bias; required for "modrelu", rejected otherwise.
        backend: "auto", "torch" or "triton" (see trit_rnn.dispatch).
        lengths: None or one length per sequence in [1, T]: a padded batch, as in
            functional.dense_recurrence.

    Returns:
        (outputs [T, B, H], h_n [B, H]) in pre's dtype.
    """
    H = _check_gated("gru", pre, weight_hh, {"h0": h0})
    _check_bias(bias_hh, "bias_hh", "gru", pre, H)
    nl = Nonlinearity.parse(nonlinearity)
    if nl is Nonlinearity.MODRELU:
        if act_bias is None:
            raise ValueError('act_bias [H] is required with nonlinearity="modrelu"; got None')
        check_tensor(act_bias, "act_bias", ndim=1)
        check_shape(act_bias, "act_bias", (H,), "one modReLU bias per hidden unit")
        check_same(act_bias, "act_bias", pre, "pre [T, B, 3*H]")
    elif act_bias is not None:
        raise ValueError(f'act_bias is used only with nonlinearity="modrelu"; got nonlinearity={nl.value!r}')
    chosen = _choose_backend("gru", backend, pre, H)
    lengths, by_segments = _ragged(lengths, pre, chosen)

    def run(chunk, states, lengths=None):
        outputs, h_n, _, _ = _gated_ops.gru_recurrence_op(
            chunk, weight_hh, bias_hh, states[0], act_bias, lengths, nl.value, chosen
        )
        return outputs, (h_n,)

    if by_segments:
        outputs, (h_n,) = run_segments(run, pre, (h0,), lengths)
    else:
        outputs, (h_n,) = run(pre, (h0,), lengths)
    return outputs, h_n


def deep_transition_recurrence(
    pre, weight_hh, weights_deep, biases_deep, h0=None, *, nonlinearity="tanh", backend="auto", lengths=None
):
    """The deep-transition recurrence (Pascanu et al. 2013): D = len(weights_deep) + 1 layers between
    h_{t-1} and h_t, with a shortcut from h_{t-1} and x_t to the top layer when pre is [T, B, 2H]:

        s^1 = f(pre[..., :H] + h_{t-1} W_1^T),  s^k = f(s^{k-1} W_k^T + b_k [+ pre[..., H:] + h_{t-1} S^T]),
        h_t = s^D   (the bracket on the top layer with the shortcut)

    Args:
        pre: [T, B, H], or [T, B, 2H] with the shortcut (its second half is the top layer's input term).
        weight_hh: [H, H] = W_1, or [2H, H] = [W_1; S] with the shortcut.
        weights_deep: [D-1, H, H] = W_2..W_D; biases_deep: [D-1, H] = b_2..b_D.
        h0: [B, H], zeros when None.
        nonlinearity: "tanh", "relu" or "identity".
        backend: "auto", "torch" or "triton" (see trit_rnn.dispatch).
        lengths: None or one length per sequence in [1, T]: a padded batch, as in
            functional.dense_recurrence.

    Returns:
        (outputs [T, B, H], h_n [B, H]) in pre's dtype.
    """
    check_tensor(pre, "pre", ndim=3)
    check_tensor(weight_hh, "weight_hh", ndim=2)
    T, B, width = pre.shape
    H = weight_hh.shape[1]
    if T < 1 or B < 1 or H < 1 or width not in (H, 2 * H):
        raise ValueError(
            f"pre must be [T, B, H] or [T, B, 2H] (with the shortcut), H = weight_hh's columns ({H}), "
            f"T, B >= 1; got shape {tuple(pre.shape)}"
        )
    reference = "pre [T, B, H or 2H]"
    check_shape(weight_hh, "weight_hh", (width, H), f"[W_1] or [W_1; S] for {reference}")
    check_same(weight_hh, "weight_hh", pre, reference)
    check_tensor(weights_deep, "weights_deep", ndim=3)
    depth_minus_one = weights_deep.shape[0]
    check_shape(weights_deep, "weights_deep", (depth_minus_one, H, H), "[D-1, H, H], W_2..W_D")
    check_same(weights_deep, "weights_deep", pre, reference)
    check_tensor(biases_deep, "biases_deep", ndim=2)
    check_shape(biases_deep, "biases_deep", (depth_minus_one, H), "[D-1, H], b_2..b_D")
    check_same(biases_deep, "biases_deep", pre, reference)
    if h0 is not None:
        check_tensor(h0, "h0", ndim=2)
        check_shape(h0, "h0", (B, H), f"batch and hidden size taken from {reference} and weight_hh")
        check_same(h0, "h0", pre, reference)
    nl = Nonlinearity.parse(nonlinearity)
    if nl not in DEEP_NONLINEARITIES:
        allowed = ", ".join(repr(n.value) for n in DEEP_NONLINEARITIES)
        raise ValueError(f"nonlinearity must be one of {allowed} for the deep transition; got {nl.value!r}")
    chosen = _choose_backend(
        "deep_transition", backend, pre, H, depth=depth_minus_one + 1, shortcut=width == 2 * H
    )
    lengths, by_segments = _ragged(lengths, pre, chosen)

    def run(chunk, states, lengths=None):
        outputs, h_n, _ = _deep_ops.deep_recurrence_op(
            chunk, weight_hh, weights_deep, biases_deep, states[0], lengths, nl.value, chosen
        )
        return outputs, (h_n,)

    if by_segments:
        outputs, (h_n,) = run_segments(run, pre, (h0,), lengths)
    else:
        outputs, (h_n,) = run(pre, (h0,), lengths)
    return outputs, h_n
