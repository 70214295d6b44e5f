"""Variable-length (per-row lengths) LSTM, GRU and GORU kernels against a float64 reference, under
the Triton interpreter.

The reference runs each sequence alone through the torch backend (trit_rnn/backends/torch_gated.py)
in float64: pre[:len_b, b:b+1] with the row's initial states for the forward, and for the backward
grad_out[:len_b, b:b+1] with the row's final-state gradients, fed the float64 forward's results.
Past a row's end every per-step tensor the kernels write (outputs, gates, cells / hidden_n, d_gates,
d_pre, d_hidden) must be exactly 0; the final states are the states after the row's last step and
the final-state gradients enter there. pre and grad_out hold NaN past each row's end: the kernels
must not read them.

Cases: T = 1 and odd T, H = 12, 20, 33 (non-powers of two), B = 5 in one program and B = 18 in two
(BLOCK_B = 16), lengths including 1 and T, initial states and final-state gradients given and
absent, float32 and float64, one bfloat16 case, the GRU's tanh candidate and the GORU's modReLU.
"""

import pytest
import torch
from trit_rnn.kernels.gated.launch import gru_backward, gru_forward, lstm_backward, lstm_forward
from trit_rnn.kernels.specs import Config

from tests.kernels.test_gated_kernels import _compute, _maybe, _weight
from tests.tolerances import assert_close
from trit_rnn.backends import torch_gated

F64 = torch.float64
BLOCK16 = Config(block_b=16)


def _lengths(T: int, B: int) -> torch.Tensor:
    """B lengths in [1, T], 1 and T among them (for B >= 2), in a mixed order, as int64."""
    lengths = torch.randint(1, T + 1, (B,))
    if B >= 2:
        lengths[B // 2] = 1
        lengths[-1] = T
    return lengths


def _pad_nan(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x [T, B, ...] with NaN past each row's end (what the kernels must never read)."""
    x = x.clone()
    for b, length in enumerate(lengths.tolist()):
        x[length:, b] = float("nan")
    return x


def _assemble(parts, T: int, lengths) -> torch.Tensor:
    """The per-row sequences [len_b, 1, ...] stacked into [T, B, ...], zero past each row's end."""
    full = parts[0].new_zeros((T, len(parts), *parts[0].shape[2:]))
    for b, (part, length) in enumerate(zip(parts, lengths.tolist(), strict=True)):
        full[:length, b] = part[:, 0]
    return full


def _assert_zero_past_end(x: torch.Tensor, lengths, what: str) -> None:
    for b, length in enumerate(lengths.tolist()):
        assert (x[length:, b] == 0).all(), f"{what}: row {b} is not exactly 0 past its end {length}"


def _row(x, b):
    return x[b : b + 1].to(F64) if x is not None else None


def _check_all(names, actual, expected, dtype, lengths, sequences):
    for name, a, e in zip(names, actual, expected, strict=True):
        assert a.shape == e.shape, f"{name}: shape {tuple(a.shape)} != {tuple(e.shape)}"
        assert_close(a, e, dtype, name)
        if name in sequences:
            _assert_zero_past_end(a, lengths, name)


# (dtype, T, B, H, has_h0, has_c0, has_grad_hn, has_grad_cn)
LSTM_CASES = [
    (torch.float32, 7, 18, 20, True, True, True, True),
    (torch.float32, 5, 5, 33, False, True, True, False),
    (F64, 1, 3, 12, True, True, True, True),
    (F64, 6, 5, 20, True, False, False, True),
    (torch.bfloat16, 5, 5, 20, True, True, True, True),
]


def _lstm_id(case):
    dtype, T, B, H, h0, c0, ghn, gcn = case
    return f"{str(dtype)[6:]}-T{T}-B{B}-H{H}-h0{int(h0)}-c0{int(c0)}-ghn{int(ghn)}-gcn{int(gcn)}"


@pytest.mark.parametrize("case", LSTM_CASES, ids=[_lstm_id(c) for c in LSTM_CASES])
def test_varlen_lstm_matches_each_sequence_alone(case):
    dtype, T, B, H, has_h0, has_c0, has_grad_hn, has_grad_cn = case
    lengths = _lengths(T, B)
    pre = torch.randn(T, B, 4 * H, dtype=F64).to(dtype)
    weight = _weight(4, H, dtype, "row")
    h0, c0 = _maybe(has_h0, B, H, dtype=dtype), _maybe(has_c0, B, H, dtype=dtype)
    grad_out = torch.randn(T, B, H, dtype=F64).to(dtype)
    grad_hn, grad_cn = _maybe(has_grad_hn, B, H, dtype=dtype), _maybe(has_grad_cn, B, H, dtype=dtype)

    fwd_parts, bwd_parts = [], []
    for b, length in enumerate(lengths.tolist()):
        p = pre[:length, b : b + 1].to(F64)
        ref = torch_gated.lstm_forward(p, weight.to(F64), _row(h0, b), _row(c0, b))
        fwd_parts.append(ref)
        bwd_parts.append(
            torch_gated.lstm_backward(
                grad_out[:length, b : b + 1].to(F64), _row(grad_hn, b), _row(grad_cn, b),
                ref[0], ref[3], ref[4], _row(h0, b), _row(c0, b), weight.to(F64),
            )
        )  # fmt: skip
    expected = (
        _assemble([r[0] for r in fwd_parts], T, lengths),
        torch.cat([r[1] for r in fwd_parts]),
        torch.cat([r[2] for r in fwd_parts]),
        _assemble([r[3] for r in fwd_parts], T, lengths),
        _assemble([r[4] for r in fwd_parts], T, lengths),
    )

    forward = lstm_forward(_pad_nan(pre, lengths), weight, h0, c0, lengths=lengths, config=BLOCK16)
    compute = _compute(dtype)
    assert forward[0].dtype == forward[1].dtype == forward[2].dtype == dtype
    assert forward[3].dtype == forward[4].dtype == compute
    names = ("outputs", "h_n", "c_n", "gates", "cells")
    _check_all(names, forward, expected, dtype, lengths, {"outputs", "gates", "cells"})

    outputs, _, _, gates, cells = forward
    backward = lstm_backward(
        _pad_nan(grad_out, lengths), grad_hn, grad_cn, outputs, gates, cells, h0, c0, weight,
        lengths=lengths.to(torch.int32), config=BLOCK16,
    )[:3]  # fmt: skip
    expected = (
        _assemble([r[0] for r in bwd_parts], T, lengths),
        torch.cat([r[1] for r in bwd_parts]),
        torch.cat([r[2] for r in bwd_parts]),
    )
    assert all(x.dtype == compute for x in backward)
    _check_all(("d_gates", "dh0", "dc0"), backward, expected, dtype, lengths, {"d_gates"})


# (nonlinearity, dtype, T, B, H, has_bias, has_h0, has_grad_hn). 16-bit storage with the smooth
# candidate only (see test_gated_kernels.py).
GRU_CASES = [
    ("tanh", torch.float32, 7, 18, 20, True, True, True),
    ("tanh", F64, 1, 3, 12, True, False, True),
    ("tanh", torch.float32, 5, 5, 33, False, True, False),
    ("modrelu", torch.float32, 7, 5, 20, True, True, True),
    ("modrelu", F64, 5, 18, 33, False, True, True),
]


def _gru_id(case):
    nl, dtype, T, B, H, bias, h0, ghn = case
    return f"{nl}-{str(dtype)[6:]}-T{T}-B{B}-H{H}-bias{int(bias)}-h0{int(h0)}-ghn{int(ghn)}"


@pytest.mark.parametrize("case", GRU_CASES, ids=[_gru_id(c) for c in GRU_CASES])
def test_varlen_gru_and_goru_match_each_sequence_alone(case):
    nonlinearity, dtype, T, B, H, has_bias, has_h0, has_grad_hn = case
    lengths = _lengths(T, B)
    pre = torch.randn(T, B, 3 * H, dtype=F64).to(dtype)
    weight = _weight(3, H, dtype, "row")
    bias = _maybe(has_bias, 3 * H, dtype=dtype)
    h0 = _maybe(has_h0, B, H, dtype=dtype)
    grad_out = torch.randn(T, B, H, dtype=F64).to(dtype)
    grad_hn = _maybe(has_grad_hn, B, H, dtype=dtype)
    act_bias = -torch.linspace(0.05, 0.9, H, dtype=F64).to(dtype) if nonlinearity == "modrelu" else None
    wide = lambda x: x.to(F64) if x is not None else None  # noqa: E731

    fwd_parts, bwd_parts = [], []
    for b, length in enumerate(lengths.tolist()):
        p = pre[:length, b : b + 1].to(F64)
        ref = torch_gated.gru_forward(
            p, weight.to(F64), wide(bias), _row(h0, b), wide(act_bias), nonlinearity
        )
        fwd_parts.append(ref)
        bwd_parts.append(
            torch_gated.gru_backward(
                grad_out[:length, b : b + 1].to(F64), _row(grad_hn, b), ref[0], ref[2], ref[3],
                _row(h0, b), weight.to(F64), nonlinearity,
            )
        )  # fmt: skip
    expected = (
        _assemble([r[0] for r in fwd_parts], T, lengths),
        torch.cat([r[1] for r in fwd_parts]),
        _assemble([r[2] for r in fwd_parts], T, lengths),
        _assemble([r[3] for r in fwd_parts], T, lengths),
    )
    if nonlinearity == "modrelu":
        candidate = expected[2][..., 2 * H :]
        inactive = float(sum((candidate[:length, b] == 0).sum() for b, length in enumerate(lengths.tolist())))
        inactive /= float(lengths.sum()) * H
        assert 0.05 < inactive < 0.95, f"test data should mix active and inactive units ({inactive:.2f})"

    forward = gru_forward(
        _pad_nan(pre, lengths), weight, bias, h0, act_bias, nonlinearity, lengths=lengths, config=BLOCK16
    )
    compute = _compute(dtype)
    assert forward[0].dtype == forward[1].dtype == dtype and forward[2].dtype == forward[3].dtype == compute
    names = ("outputs", "h_n", "gates", "hidden_n")
    _check_all(names, forward, expected, dtype, lengths, {"outputs", "gates", "hidden_n"})

    outputs, _, gates, hidden_n = forward
    backward = gru_backward(
        _pad_nan(grad_out, lengths), grad_hn, outputs, gates, hidden_n, h0, weight, nonlinearity,
        lengths=lengths, config=BLOCK16,
    )  # fmt: skip
    expected = tuple(
        _assemble([r[i] for r in bwd_parts], T, lengths) if i < 2 else torch.cat([r[i] for r in bwd_parts])
        for i in range(3)
    )
    assert all(x.dtype == compute for x in backward)
    _check_all(("d_pre", "d_hidden", "dh0"), backward, expected, dtype, lengths, {"d_pre", "d_hidden"})


def test_full_lengths_are_bit_identical_to_no_lengths():
    """lengths all equal to T: the masked kernels give exactly the unmasked results (int64 and int32
    lengths), forward and backward, LSTM and GORU."""
    T, B, H = 5, 18, 20
    full = torch.full((B,), T, dtype=torch.int64)
    pre, weight = torch.randn(T, B, 4 * H), torch.randn(4 * H, H) / H**0.5
    h0, c0 = torch.randn(B, H), torch.randn(B, H)
    grad_out, grad_hn, grad_cn = torch.randn(T, B, H), torch.randn(B, H), torch.randn(B, H)
    plain = lstm_forward(pre, weight, h0, c0, config=BLOCK16)
    masked = lstm_forward(pre, weight, h0, c0, lengths=full, config=BLOCK16)
    for a, b in zip(plain, masked, strict=True):
        assert torch.equal(a, b)
    plain = lstm_backward(
        grad_out, grad_hn, grad_cn, plain[0], *plain[3:], h0, c0, weight, True, config=BLOCK16
    )
    masked = lstm_backward(
        grad_out, grad_hn, grad_cn, masked[0], *masked[3:], h0, c0, weight, True,
        lengths=full.to(torch.int32), config=BLOCK16,
    )  # fmt: skip
    for a, b in zip(plain, masked, strict=True):
        assert torch.equal(a, b)

    pre, weight, bias = torch.randn(T, B, 3 * H), torch.randn(3 * H, H) / H**0.5, torch.randn(3 * H)
    act_bias = -torch.linspace(0.05, 0.9, H)
    plain = gru_forward(pre, weight, bias, h0, act_bias, "modrelu", config=BLOCK16)
    masked = gru_forward(pre, weight, bias, h0, act_bias, "modrelu", lengths=full, config=BLOCK16)
    for a, b in zip(plain, masked, strict=True):
        assert torch.equal(a, b)
    plain = gru_backward(grad_out, grad_hn, plain[0], *plain[2:], h0, weight, "modrelu", config=BLOCK16)
    masked = gru_backward(
        grad_out, grad_hn, masked[0], *masked[2:], h0, weight, "modrelu", lengths=full, config=BLOCK16
    )
    for a, b in zip(plain, masked, strict=True):
        assert torch.equal(a, b)


def test_bad_lengths_raise_value_errors_naming_lengths():
    T, B, H = 2, 3, 8
    pre = torch.randn(T, B, 4 * H)
    weight = torch.randn(4 * H, H)
    outputs, _, _, gates, cells = lstm_forward(pre, weight, None, None, config=BLOCK16)
    gru_outputs, _, gru_gates, hidden_n = gru_forward(pre[..., : 3 * H], weight[: 3 * H], None, None)
    bad = [
        torch.full((B + 1,), T),  # one per row
        torch.full((B, 1), T),  # 1-D
        torch.full((B,), float(T)),  # integer dtype
        torch.ones(B, dtype=torch.bool),
        torch.full((B,), T, device="meta"),  # the data's device
        [T] * B,  # a tensor
    ]
    for lengths in bad:
        with pytest.raises(ValueError, match="lengths"):
            lstm_forward(pre, weight, None, None, lengths=lengths, config=BLOCK16)
        with pytest.raises(ValueError, match="lengths"):
            gru_forward(pre[..., : 3 * H], weight[: 3 * H], None, None, lengths=lengths, config=BLOCK16)
        with pytest.raises(ValueError, match="lengths"):
            lstm_backward(
                outputs, None, None, outputs, gates, cells, None, None, weight,
                lengths=lengths, config=BLOCK16,
            )  # fmt: skip
        with pytest.raises(ValueError, match="lengths"):
            gru_backward(
                gru_outputs, None, gru_outputs, gru_gates, hidden_n, None, weight[: 3 * H],
                lengths=lengths, config=BLOCK16,
            )  # fmt: skip
