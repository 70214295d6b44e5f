"""Functional ops: validate inputs, explain errors, pick a backend, call the custom op."""

import torch

from . import dispatch
from .autograd import checkpointed as _checkpointed_ops
from .autograd import dense as _dense_ops
from .autograd import projection as _projection_ops
from .functional_complex import complex_dense_recurrence
from .functional_gated import deep_transition_recurrence, gru_recurrence, lstm_recurrence  # noqa: F401 (re-exported)
from .nonlinearity import Nonlinearity
from .validation import (
    COMPLEX_DTYPES,
    FLOAT_DTYPES,
    check_checkpoint_every,
    check_eps,
    check_same,
    check_same_kind,
    check_shape,
    check_tensor,
)
from .varlen import check_lengths, run_segments


def _dense_supports(hidden_size: int, dtype: torch.dtype, device: torch.device):
    from .kernels.dense import launch

    return launch.supports(hidden_size, dtype, device)


def _check_recurrent_args(reference, reference_name, B, H, weight_hh, h0, nonlinearity, act_bias):
    """Checks what the recurrence shares between the ops (weight_hh, h0, nonlinearity, act_bias)
    against the batch B and hidden size H; returns the parsed Nonlinearity."""
    where = f"taken from {reference_name}"
    check_tensor(weight_hh, "weight_hh", ndim=2)
    check_shape(weight_hh, "weight_hh", (H, H), f"hidden size {where}")
    check_same(weight_hh, "weight_hh", reference, reference_name)
    if h0 is not None:
        check_tensor(h0, "h0", ndim=2)
        check_shape(h0, "h0", (B, H), f"batch and hidden size {where}")
        check_same(h0, "h0", reference, reference_name)
    nl = Nonlinearity.parse(nonlinearity)
    if nl is Nonlinearity.MODRELU:
        if act_bias is None:
            raise ValueError('act_bias [H] is required with nonlinearity="modrelu"; got None')
        check_tensor(act_bias, "act_bias", ndim=1)
        check_shape(act_bias, "act_bias", (H,), "one modReLU bias per hidden unit")
        check_same(act_bias, "act_bias", reference, reference_name)
    elif act_bias is not None:
        raise ValueError(f'act_bias is used only with nonlinearity="modrelu"; got nonlinearity={nl.value!r}')
    return nl


def ragged_by_segments(chosen: str, lengths, checkpoint_every) -> bool:
    """Whether a ragged batch runs in segments of plain calls (trit_rnn.varlen.run_segments): on the
    torch backend, and with checkpointing on either; else lengths go to the Triton kernels."""
    return lengths is not None and (chosen != "triton" or checkpoint_every is not None)


def _choose_backend(op: str, backend: str, reference: torch.Tensor, H: int) -> str:
    dispatch.parse_backend(backend)
    chosen, reason = dispatch.resolve_backend(
        backend, reference.device, lambda: _dense_supports(H, reference.dtype, reference.device)
    )
    dispatch.log_choice(op, backend, chosen, reason)
    return chosen


def dense_recurrence(
    pre,
    weight_hh,
    h0=None,
    *,
    nonlinearity="tanh",
    act_bias=None,
    eps=1e-5,
    backend="auto",
    checkpoint_every=None,
    lengths=None,
):
    """The dense recurrence z_t = pre_t + h_{t-1} @ weight_hh.T, h_t = f(z_t), t = 1..T, real or complex.

    Args:
        pre: [T, B, H] input projection for every step, biases included. A complex pre
            (complex64/complex128) makes the recurrence complex: weight_hh and h0 then have pre's
            complex dtype, and gradients follow PyTorch's complex autograd convention.
        weight_hh: [H, H] recurrent matrix, applied as in torch.nn.RNN.
        h0: [B, H] initial state; zeros when None.
        nonlinearity: "tanh", "relu", "identity" or "modrelu". Real modReLU is
            sign(z) * relu(|z| + act_bias); complex modReLU is z * relu(|z| + act_bias) / (|z| + eps).
            Complex inputs take "identity" or "modrelu" only.
        act_bias: [H] modReLU bias; required for "modrelu", rejected otherwise. Always real: for a
            complex pre it has the matching real dtype (float32 for complex64, float64 for complex128).
        eps: the complex modReLU's positive denominator offset (uRNN: 1e-5; EUNN raised it to 1e-2
            against NaNs). Must be a positive float; real inputs do not use it.
        backend: "auto", "torch" or "triton" (see trit_rnn.dispatch).
        checkpoint_every: None, or K >= 1: keep every K-th state instead of the outputs for the
            backward, which recomputes each segment of K steps. pre itself is kept (it is needed for
            the recomputation), so the saving is [T, B, H] outputs against [ceil(T/K) - 1, B, H]
            states; to avoid keeping pre as well, use dense_rnn or the modules, which recompute
            pre from the layer input. Complex inputs support it the same way (the complex modReLU
            backward keeps pre anyway, to recompute the pre-activations).
        lengths: None, or one length per sequence in [1, T] (a 1-D integer tensor on any device,
            or a list of ints): a padded batch. Past its end a sequence's state stays unchanged and
            its outputs are zero; h_n holds each sequence's state at its own last step, and
            gradients are those of running each sequence alone (see trit_rnn.varlen).

    Returns:
        (outputs [T, B, H] = h_1..h_T, h_n [B, H] = h_T), in pre's dtype. bfloat16/float16 inputs
        are stored in that dtype while the state and accumulation stay float32.
    """
    check_tensor(pre, "pre", ndim=3, dtypes=FLOAT_DTYPES + COMPLEX_DTYPES)
    T, B, H = pre.shape
    if T < 1 or B < 1 or H < 1:
        raise ValueError(f"pre must be [T, B, H] with T, B, H >= 1; got shape {tuple(pre.shape)}")
    if pre.is_complex():
        return complex_dense_recurrence(
            pre,
            weight_hh,
            h0,
            nonlinearity=nonlinearity,
            act_bias=act_bias,
            eps=eps,
            backend=backend,
            checkpoint_every=checkpoint_every,
            lengths=lengths,
        )
    for value, argument in ((weight_hh, "weight_hh"), (h0, "h0"), (act_bias, "act_bias")):
        check_same_kind(value, argument, pre, "pre [T, B, H]")
    nl = _check_recurrent_args(pre, "pre [T, B, H]", B, H, weight_hh, h0, nonlinearity, act_bias)
    check_eps(eps)
    check_checkpoint_every(checkpoint_every)
    lengths = check_lengths(lengths, T, B)
    chosen = _choose_backend("dense_recurrence", backend, pre, H)
    if ragged_by_segments(chosen, lengths, checkpoint_every):
        return _dense_by_segments(
            pre, None, None, weight_hh, h0, act_bias, nl, chosen, checkpoint_every, lengths
        )
    return _dense_call(pre, None, None, weight_hh, h0, act_bias, nl, chosen, checkpoint_every, lengths)


def _dense_call(x, weight_ih, bias_ih, weight_hh, h0, act_bias, nl, chosen, checkpoint_every, lengths):
    """One Elman layer's op call (x is pre itself without weight_ih); lengths for the kernels only."""
    if checkpoint_every is None:
        # under autocast input_projection's F.linear fallback is the autocast dtype: the recurrence keeps x's
        pre = x if weight_ih is None else _projection_ops.input_projection(x, weight_ih, bias_ih).to(x.dtype)
        lengths = lengths.to(pre.device) if lengths is not None else None
        return _dense_ops.dense_recurrence(pre, weight_hh, h0, act_bias, lengths, nl.value, chosen)
    outputs, h_n, _ = _checkpointed_ops.dense_rnn_checkpointed_op(
        x, weight_ih, bias_ih, weight_hh, h0, act_bias, nl.value, chosen, checkpoint_every
    )
    return outputs, h_n


def _dense_by_segments(x, weight_ih, bias_ih, weight_hh, h0, act_bias, nl, chosen, checkpoint_every, lengths):
    def run(chunk, states):
        outputs, h_n = _dense_call(
            chunk, weight_ih, bias_ih, weight_hh, states[0], act_bias, nl, chosen, checkpoint_every, None
        )
        return outputs, (h_n,)

    if checkpoint_every is None and weight_ih is not None:
        x, weight_ih, bias_ih = (
            _projection_ops.input_projection(x, weight_ih, bias_ih).to(x.dtype),
            None,
            None,
        )
    outputs, (h_n,) = run_segments(run, x, (h0,), lengths)
    return outputs, h_n


def input_projection(x, weight, bias=None):
    """x [..., I] @ weight^T + bias: a layer's input projection for all steps at once, [..., N].

    Equal to torch.nn.functional.linear; on a CPU whose oneDNN runs the dtype (float32, bfloat16)
    its forward and both gradients are oneDNN GEMMs (trit_rnn/backends/cpu_gemm.py), else it is
    F.linear itself."""
    check_tensor(x, "x")
    check_tensor(weight, "weight", ndim=2)
    if x.dim() < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"x's last dimension must be weight's input size {weight.shape[1]}; got shape {tuple(x.shape)}"
        )
    check_same(weight, "weight", x, "x")
    if bias is not None:
        check_tensor(bias, "bias", ndim=1)
        check_shape(bias, "bias", (weight.shape[0],), "one per output feature of weight [N, I]")
        check_same(bias, "bias", x, "x")
    return _projection_ops.input_projection(x, weight, bias)


def dense_rnn(
    x,
    weight_ih,
    bias_ih,
    weight_hh,
    h0=None,
    *,
    nonlinearity="tanh",
    act_bias=None,
    backend="auto",
    checkpoint_every=None,
    lengths=None,
):
    """One Elman layer: pre_t = x_t @ weight_ih.T + bias_ih, then dense_recurrence(pre, ...).

    Args:
        x: [T, B, I] layer input.
        weight_ih: [H, I] input weights; bias_ih: [H] or None.
        weight_hh, h0, nonlinearity, act_bias, backend, lengths: as in dense_recurrence.
        checkpoint_every: None, or K >= 1: gradient checkpointing. The forward keeps x, the weights,
            h0 and every K-th state for the backward (not the outputs, not pre); the backward
            recomputes each segment of K steps (pre and states) from its saved state, which costs
            one more forward pass. Saved memory per layer: [T, B, I] + [ceil(T/K) - 1, B, H]
            instead of [T, B, I] + [T, B, H].

    Returns:
        (outputs [T, B, H], h_n [B, H]) in x's dtype.
    """
    check_tensor(x, "x", ndim=3)
    T, B, input_size = x.shape
    if T < 1 or B < 1 or input_size < 1:
        raise ValueError(f"x must be [T, B, I] with T, B, I >= 1; got shape {tuple(x.shape)}")
    check_tensor(weight_ih, "weight_ih", ndim=2)
    H = weight_ih.shape[0]
    if H < 1:
        raise ValueError(f"weight_ih must be [H, I] with H >= 1; got shape {tuple(weight_ih.shape)}")
    check_shape(
        weight_ih, "weight_ih", (H, input_size), "hidden size by the input size taken from x [T, B, I]"
    )
    check_same(weight_ih, "weight_ih", x, "x")
    if bias_ih is not None:
        check_tensor(bias_ih, "bias_ih", ndim=1)
        check_shape(bias_ih, "bias_ih", (H,), "hidden size taken from weight_ih [H, I]")
        check_same(bias_ih, "bias_ih", x, "x")
    nl = _check_recurrent_args(
        x, "x [T, B, I] and weight_ih [H, I]", B, H, weight_hh, h0, nonlinearity, act_bias
    )
    check_checkpoint_every(checkpoint_every)
    lengths = check_lengths(lengths, T, B)
    chosen = _choose_backend("dense_rnn", backend, x, H)
    call = _dense_by_segments if ragged_by_segments(chosen, lengths, checkpoint_every) else _dense_call
    return call(x, weight_ih, bias_ih, weight_hh, h0, act_bias, nl, chosen, checkpoint_every, lengths)
