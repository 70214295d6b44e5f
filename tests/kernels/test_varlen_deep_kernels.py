"""Variable-length (per-row lengths) deep-transition kernels against a float64 reference, under the
Triton interpreter.

The reference runs each sequence alone through the torch backend (trit_rnn/backends/torch_deep.py)
in float64: pre[:len_b, b:b+1] with the row's h0 for the forward, and for the backward
grad_out[:len_b, b:b+1] with the row's grad_hn, fed the float64 forward's results. Past a row's end
outputs, layers, d_pre and d_layers must be exactly 0; h_n is the state after the row's last step
and grad_hn enters there. pre and grad_out hold NaN past each row's end.

Cases: depth 1..3 with and without the shortcut, T = 1 and odd T, H = 12, 17, 20, 24, B = 4, 5 in
one program and B = 18 in two (BLOCK_B = 16), lengths including 1 and T, h0 and grad_hn given and
absent, tanh / relu / identity, float32 and float64, one bfloat16 case.
"""

import pytest
import torch
from trit_rnn.kernels.deep.launch import deep_backward, deep_forward
from trit_rnn.kernels.specs import Config

from tests.kernels.test_deep_kernels import _f64, _inputs
from tests.kernels.test_varlen_gated_kernels import _assemble, _check_all, _lengths, _pad_nan
from tests.tolerances import assert_close
from trit_rnn.backends import torch_deep

F64 = torch.float64
BLOCK16 = Config(block_b=16)

# (nonlinearity, dtype, T, B, H, depth, shortcut, has_h0, has_grad_hn)
CASES = [
    ("tanh", torch.float32, 7, 18, 20, 2, True, True, True),
    ("tanh", F64, 1, 3, 12, 1, False, True, True),
    ("relu", torch.float32, 5, 5, 24, 3, True, True, True),
    ("identity", F64, 5, 4, 17, 3, False, False, True),
    ("tanh", torch.float32, 6, 5, 20, 1, True, False, False),
    ("tanh", F64, 3, 18, 12, 2, False, True, True),
    ("tanh", torch.bfloat16, 5, 5, 20, 2, True, True, True),
]


def _case_id(case):
    nl, dtype, T, B, H, depth, shortcut, h0, ghn = case
    return f"{nl}-{str(dtype)[6:]}-T{T}-B{B}-H{H}-D{depth}-sc{int(shortcut)}-h0{int(h0)}-ghn{int(ghn)}"


def _row(x, b):
    return x[b : b + 1].to(F64) if x is not None else None


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_varlen_deep_matches_each_sequence_alone(case):
    nonlinearity, dtype, T, B, H, depth, shortcut, has_h0, has_grad_hn = case
    lengths = _lengths(T, B)
    pre, weight_hh, weights_deep, biases_deep, h0 = _inputs(dtype, T, B, H, depth, shortcut, has_h0)
    grad_out = torch.randn(T, B, H, dtype=F64).to(dtype)
    grad_hn = torch.randn(B, H, dtype=F64).to(dtype) if has_grad_hn else None
    weights = (_f64(weight_hh), _f64(weights_deep), _f64(biases_deep))

    fwd_parts, bwd_parts = [], []
    for b, length in enumerate(lengths.tolist()):
        ref = torch_deep.deep_forward(
            pre[:length, b : b + 1].to(F64), *weights, _row(h0, b), nonlinearity
        )  # outputs [L, 1, H], h_n [1, H], layers [D-1, L, 1, H]
        fwd_parts.append(ref)
        bwd_parts.append(
            torch_deep.deep_backward(
                grad_out[:length, b : b + 1].to(F64), _row(grad_hn, b), ref[0], ref[2], _row(h0, b),
                weights[0], weights[1], nonlinearity,
            )
        )  # fmt: skip

    def by_step(parts):  # [D', L, 1, H] per row -> [T, B, D', H] (zero past each row's end)
        return _assemble([p.permute(1, 2, 0, 3) for p in parts], T, lengths)

    expected = (
        _assemble([r[0] for r in fwd_parts], T, lengths),
        torch.cat([r[1] for r in fwd_parts]),
        by_step([r[2] for r in fwd_parts]),
    )
    if nonlinearity == "relu":
        inactive = float(sum((expected[0][:n, b] == 0).sum() for b, n in enumerate(lengths.tolist())))
        inactive /= float(lengths.sum()) * H
        assert 0.05 < inactive < 0.95, f"test data should mix active and inactive units ({inactive:.2f})"

    outputs, h_n, layers = deep_forward(
        _pad_nan(pre, lengths), weight_hh, weights_deep, biases_deep, h0, nonlinearity,
        lengths=lengths, config=BLOCK16,
    )  # fmt: skip
    compute = F64 if dtype == F64 else torch.float32
    assert outputs.dtype == h_n.dtype == dtype and layers.dtype == compute
    _check_all(("outputs", "h_n"), (outputs, h_n), expected[:2], dtype, lengths, {"outputs"})
    # layers [D-1, T, B, H]: checked as [T, B, D-1, H] so that "past the end" is along dim 0.
    _check_all(("layers",), (layers.permute(1, 2, 0, 3),), expected[2:], dtype, lengths, {"layers"})

    d_pre, d_layers, dh0 = deep_backward(
        _pad_nan(grad_out, lengths), grad_hn, outputs, layers, h0, weight_hh, weights_deep, nonlinearity,
        lengths=lengths.to(torch.int32), config=BLOCK16,
    )  # fmt: skip
    assert d_pre.dtype == d_layers.dtype == dh0.dtype == compute
    ref_d_pre = _assemble([r[0] for r in bwd_parts], T, lengths)
    ref_d_layers = by_step([r[1] for r in bwd_parts])
    ref_dh0 = torch.cat([r[2] for r in bwd_parts])
    _check_all(("d_pre", "dh0"), (d_pre, dh0), (ref_d_pre, ref_dh0), dtype, lengths, {"d_pre"})
    _check_all(("d_layers",), (d_layers.permute(1, 2, 0, 3),), (ref_d_layers,), dtype, lengths, {"d_layers"})
    assert_close(d_layers[0], d_pre[..., :H], dtype, "d_layers[0] = d_pre[..., :H]")


@pytest.mark.parametrize("shortcut", [True, False], ids=["sc1", "sc0"])
def test_full_lengths_are_bit_identical_to_no_lengths(shortcut):
    T, B, H, depth = 5, 18, 20, 3
    pre, weight_hh, weights_deep, biases_deep, h0 = _inputs(torch.float32, T, B, H, depth, shortcut, True)
    full = torch.full((B,), T, dtype=torch.int64)
    plain = deep_forward(pre, weight_hh, weights_deep, biases_deep, h0, "tanh", config=BLOCK16)
    masked = deep_forward(pre, weight_hh, weights_deep, biases_deep, h0, "tanh", lengths=full, config=BLOCK16)
    for a, b in zip(plain, masked, strict=True):
        assert torch.equal(a, b)
    grad_out, grad_hn = torch.randn(T, B, H), torch.randn(B, H)
    args = (grad_out, grad_hn, plain[0], plain[2], h0, weight_hh, weights_deep, "tanh")
    for a, b in zip(
        deep_backward(*args, config=BLOCK16),
        deep_backward(*args, lengths=full.to(torch.int32), config=BLOCK16),
        strict=True,
    ):
        assert torch.equal(a, b)


def test_bad_lengths_raise_value_errors_naming_lengths():
    T, B, H = 2, 3, 8
    pre, weight_hh, weights_deep, biases_deep, _ = _inputs(torch.float32, T, B, H, 2, True, False)
    outputs, _, layers = deep_forward(pre, weight_hh, weights_deep, biases_deep, None, "tanh", config=BLOCK16)
    bad = [
        torch.full((B + 1,), T),
        torch.full((B, 1), T),
        torch.full((B,), float(T)),
        torch.ones(B, dtype=torch.bool),
        torch.full((B,), T, device="meta"),
        [T] * B,
    ]
    for lengths in bad:
        with pytest.raises(ValueError, match="lengths"):
            deep_forward(
                pre, weight_hh, weights_deep, biases_deep, None, "tanh", lengths=lengths, config=BLOCK16
            )
        with pytest.raises(ValueError, match="lengths"):
            deep_backward(
                outputs, None, outputs, layers, None, weight_hh, weights_deep, "tanh",
                lengths=lengths, config=BLOCK16,
            )  # fmt: skip
