"""Gated kernel family (LSTM and GRU, persistent forward and backward) against a float64 autograd
reference, under the Triton interpreter.

The reference (below) is a plain Python loop over the contract's equations
(trit_rnn/backends/torch_gated.py) differentiated by autograd: d_gates / d_pre are the gradients of
pre, and the GRU's d_hidden the gradient of a zero tensor added to q_t. It is itself checked against
torch.nn.LSTM / torch.nn.GRU in float64 with the same weights.

Each case runs one forward and one backward launch and checks every returned tensor. The cases
cover T = 1 and odd T, H = 20, 33 and 100 (non-powers of two; 100 pads to 128, where 16-bit W
blocks are staged in K halves), B = 5 in one program with
BLOCK_B = 16 and B = 18 in two programs (the second mostly masked), h0 / c0 / bias_hh / grad_hn /
grad_cn each given and absent, a column-major weight and a batch-first pre, float32 / float64 /
float16 / bfloat16 storage, and the GRU's candidate nonlinearities (tanh; modReLU, the GORU; relu,
identity), without the full cross product.
"""

import pytest
import torch
from trit_rnn.kernels.gated.launch import (
    CELLS,
    GATES,
    KERNELS,
    compile_specs,
    estimate_budget,
    estimate_shared_bytes,
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    supports,
)
from trit_rnn.kernels.specs import Config

from tests.kernels.varlen_specs import assert_lengths_variant
from tests.tolerances import assert_close

F64 = torch.float64
BLOCK16 = Config(block_b=16)

# --------------------------------------------------------------------------------------------
# float64 references


def lstm_reference(pre, weight_hh, h0, c0, d_pre_probe=None):
    """(outputs, h_n, c_n, gates, cells) of the contract's LSTM equations, differentiable."""
    T, B, G = pre.shape
    H = G // 4
    h = h0 if h0 is not None else pre.new_zeros(B, H)
    c = c0 if c0 is not None else pre.new_zeros(B, H)
    outputs, gates, cells = [], [], []
    for p in pre.unbind(0):
        a = p + h @ weight_hh.T
        a_i, a_f, a_g, a_o = a.split(H, dim=1)
        i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
        c = f * c + i * g
        h = o * torch.tanh(c)
        outputs.append(h)
        gates.append(torch.cat([i, f, g, o], dim=1))
        cells.append(c)
    return torch.stack(outputs), h, c, torch.stack(gates), torch.stack(cells)


def candidate(a, nonlinearity, act_bias):
    if nonlinearity == "tanh":
        return torch.tanh(a)
    if nonlinearity == "relu":
        return torch.relu(a)
    if nonlinearity == "identity":
        return a
    if nonlinearity == "modrelu":
        return torch.sign(a) * torch.relu(a.abs() + act_bias)
    raise ValueError(nonlinearity)


def gru_reference(pre, weight_hh, bias_hh, h0, q_probe, nonlinearity="tanh", act_bias=None):
    """(outputs, h_n, gates, hidden_n) of the contract's GRU equations (GORU: a modReLU
    candidate), differentiable; q_probe [T, B, 3H] is a zero tensor added to q_t, so that its
    gradient is d_hidden."""
    T, B, G = pre.shape
    H = G // 3
    h = h0 if h0 is not None else pre.new_zeros(B, H)
    outputs, gates, hidden_n = [], [], []
    for p, probe in zip(pre.unbind(0), q_probe.unbind(0), strict=True):
        q = h @ weight_hh.T + probe
        if bias_hh is not None:
            q = q + bias_hh
        p_r, p_z, p_n = p.split(H, dim=1)
        q_r, q_z, q_n = q.split(H, dim=1)
        r, z = torch.sigmoid(p_r + q_r), torch.sigmoid(p_z + q_z)
        n = candidate(p_n + r * q_n, nonlinearity, act_bias)
        h = (1 - z) * n + z * h
        outputs.append(h)
        gates.append(torch.cat([r, z, n], dim=1))
        hidden_n.append(q_n)
    return torch.stack(outputs), h, torch.stack(gates), torch.stack(hidden_n)


def test_references_match_torch_nn_in_float64():
    """The references above are torch.nn.LSTM / torch.nn.GRU (LSTM: both biases inside pre; GRU:
    b_hh outside, reset applied after the recurrent product)."""
    T, B, inputs, H = 4, 3, 6, 5
    x = torch.randn(T, B, inputs, dtype=F64)
    h0, c0 = torch.randn(1, B, H, dtype=F64), torch.randn(1, B, H, dtype=F64)
    lstm = torch.nn.LSTM(inputs, H).double()
    expected, (h_n, c_n) = lstm(x, (h0, c0))
    pre = x @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + lstm.bias_hh_l0
    out, hn, cn, _, _ = lstm_reference(pre, lstm.weight_hh_l0, h0[0], c0[0])
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hn, h_n[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(cn, c_n[0], rtol=1e-12, atol=1e-12)

    gru = torch.nn.GRU(inputs, H).double()
    expected, h_n = gru(x, h0)
    pre = x @ gru.weight_ih_l0.T + gru.bias_ih_l0
    out, hn, _, _ = gru_reference(
        pre, gru.weight_hh_l0, gru.bias_hh_l0, h0[0], torch.zeros(T, B, 3 * H, dtype=F64)
    )
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hn, h_n[0], rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# the kernels against the references


def _layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "contiguous":
        return x.contiguous()
    if layout == "batch_first":  # a [B, T, G*H] buffer viewed as [T, B, G*H]
        return x.transpose(0, 1).contiguous().transpose(0, 1)
    raise ValueError(layout)


def _weight(G, H, dtype, layout):
    weight = (torch.randn(G * H, H, dtype=F64) / H**0.5).to(dtype)
    if layout == "column":
        weight = weight.t().contiguous().t()
        assert weight.stride() == (1, G * H)
    return weight


def _maybe(flag, *shape, dtype):
    return torch.randn(*shape, dtype=F64).to(dtype) if flag else None


def _wide(x):
    return x.to(F64).requires_grad_() if x is not None else None


def _compute(dtype):
    return F64 if dtype == F64 else torch.float32


# (dtype, T, B, H, weight_layout, pre_layout, has_h0, has_c0, has_grad_hn, has_grad_cn, config)
LSTM_CASES = [
    (torch.float32, 7, 5, 20, "row", "contiguous", True, True, True, True, BLOCK16),
    (torch.float32, 1, 1, 20, "column", "contiguous", False, False, False, False, BLOCK16),
    (torch.float32, 3, 18, 33, "row", "batch_first", True, False, False, True, BLOCK16),
    (torch.float32, 5, 3, 12, "row", "contiguous", False, True, True, False, None),
    (torch.float64, 5, 5, 20, "column", "batch_first", True, True, False, True, BLOCK16),
    (torch.bfloat16, 7, 5, 20, "row", "contiguous", True, True, True, True, BLOCK16),
    (torch.bfloat16, 3, 2, 100, "row", "batch_first", True, False, True, False, BLOCK16),
    (torch.float16, 3, 5, 33, "column", "contiguous", False, True, True, False, BLOCK16),
]


def _lstm_id(case):
    dtype, T, B, H, w, p, h0, c0, ghn, gcn, cfg = case
    block = cfg.block_b if cfg else "auto"
    return f"{str(dtype)[6:]}-T{T}-B{B}-H{H}-W{w}-{p}-h0{int(h0)}-c0{int(c0)}-ghn{int(ghn)}-gcn{int(gcn)}-bb{block}"


@pytest.mark.parametrize("case", LSTM_CASES, ids=[_lstm_id(c) for c in LSTM_CASES])
def test_lstm_forward_backward_match_float64_reference(case):
    dtype, T, B, H, weight_layout, pre_layout, has_h0, has_c0, has_grad_hn, has_grad_cn, config = case
    pre = torch.randn(T, B, 4 * H, dtype=F64).to(dtype)
    weight = _weight(4, H, dtype, weight_layout)
    h0, c0 = _maybe(has_h0, B, H, dtype=dtype), _maybe(has_c0, B, H, dtype=dtype)
    grad_out = torch.randn(T, B, H, dtype=F64).to(dtype)
    grad_hn, grad_cn = _maybe(has_grad_hn, B, H, dtype=dtype), _maybe(has_grad_cn, B, H, dtype=dtype)

    # The reference differentiates with respect to h0 and c0 even when they are absent (zeros):
    # the contract's dh0 = d_gates_1 @ weight_hh and dc0 = dc_1 f_1 hold either way.
    pre_ref = pre.to(F64).requires_grad_()
    h0_ref = _wide(h0) if has_h0 else torch.zeros(B, H, dtype=F64, requires_grad=True)
    c0_ref = _wide(c0) if has_c0 else torch.zeros(B, H, dtype=F64, requires_grad=True)
    ref = lstm_reference(pre_ref, weight.to(F64), h0_ref, c0_ref)
    loss = (ref[0] * grad_out.to(F64)).sum()
    if has_grad_hn:
        loss = loss + (ref[1] * grad_hn.to(F64)).sum()
    if has_grad_cn:
        loss = loss + (ref[2] * grad_cn.to(F64)).sum()
    ref_d_gates, ref_dh0, ref_dc0 = torch.autograd.grad(loss, (pre_ref, h0_ref, c0_ref))

    kwargs = {"config": config} if config is not None else {}
    outputs, h_n, c_n, gates, cells = lstm_forward(_layout(pre, pre_layout), weight, h0, c0, **kwargs)
    compute = _compute(dtype)
    assert outputs.dtype == h_n.dtype == c_n.dtype == dtype
    assert gates.dtype == cells.dtype == compute
    for name, actual, expected in zip(("outputs", "h_n", "c_n", "gates", "cells"), (outputs, h_n, c_n, gates, cells), ref, strict=True):  # fmt: skip
        assert_close(actual, expected, dtype, name)

    d_gates, dh0, dc0, _ = lstm_backward(
        _layout(grad_out, pre_layout), grad_hn, grad_cn, outputs, gates, cells, h0, c0, weight, **kwargs
    )
    assert d_gates.dtype == dh0.dtype == dc0.dtype == compute
    assert_close(d_gates, ref_d_gates, dtype, "d_gates")
    assert_close(dh0, ref_dh0, dtype, "dh0")
    assert_close(dc0, ref_dc0, dtype, "dc0")


# (nonlinearity, dtype, T, B, H, weight_layout, pre_layout, has_bias, has_h0, has_grad_hn, config).
# 16-bit storage with the smooth candidate only: relu and modReLU have a kink, and a state one
# rounding away from the float64 one flips the derivative mask of the units near it (see
# tests/kernels/test_dense_kernels.py).
GRU_CASES = [
    ("tanh", torch.float32, 7, 5, 20, "row", "contiguous", True, True, True, BLOCK16),
    ("tanh", torch.float32, 1, 1, 20, "column", "contiguous", False, False, False, BLOCK16),
    ("tanh", torch.float32, 3, 18, 33, "row", "batch_first", True, False, True, BLOCK16),
    ("tanh", torch.float32, 5, 3, 12, "row", "contiguous", False, True, False, None),
    ("tanh", torch.float64, 5, 5, 20, "column", "batch_first", True, True, False, BLOCK16),
    ("tanh", torch.bfloat16, 7, 5, 20, "row", "contiguous", True, True, True, BLOCK16),
    ("tanh", torch.bfloat16, 3, 2, 100, "column", "contiguous", False, True, True, BLOCK16),
    ("tanh", torch.float16, 3, 5, 33, "column", "contiguous", True, False, True, BLOCK16),
    ("modrelu", torch.float32, 7, 5, 20, "row", "contiguous", True, True, True, BLOCK16),
    ("modrelu", torch.float64, 5, 3, 33, "column", "batch_first", False, True, False, BLOCK16),
    ("relu", torch.float32, 5, 5, 20, "row", "contiguous", True, False, True, BLOCK16),
    ("identity", torch.float64, 3, 2, 12, "row", "contiguous", True, True, True, BLOCK16),
]


def _gru_id(case):
    nl, dtype, T, B, H, w, p, bias, h0, ghn, cfg = case
    block = cfg.block_b if cfg else "auto"
    return (
        f"{nl}-{str(dtype)[6:]}-T{T}-B{B}-H{H}-W{w}-{p}-bias{int(bias)}-h0{int(h0)}-ghn{int(ghn)}-bb{block}"
    )


@pytest.mark.parametrize("case", GRU_CASES, ids=[_gru_id(c) for c in GRU_CASES])
def test_gru_forward_backward_match_float64_reference(case):
    nonlinearity, dtype, T, B, H, weight_layout, pre_layout, has_bias, has_h0, has_grad_hn, config = case
    pre = torch.randn(T, B, 3 * H, dtype=F64).to(dtype)
    weight = _weight(3, H, dtype, weight_layout)
    bias = _maybe(has_bias, 3 * H, dtype=dtype)
    h0 = _maybe(has_h0, B, H, dtype=dtype)
    grad_out = torch.randn(T, B, H, dtype=F64).to(dtype)
    grad_hn = _maybe(has_grad_hn, B, H, dtype=dtype)
    # Negative modReLU biases: units with |a| below -act_bias are inactive, the others active.
    act_bias = -torch.linspace(0.05, 0.9, H, dtype=F64).to(dtype) if nonlinearity == "modrelu" else None

    pre_ref = pre.to(F64).requires_grad_()
    h0_ref = _wide(h0) if has_h0 else torch.zeros(B, H, dtype=F64, requires_grad=True)
    probe = torch.zeros(T, B, 3 * H, dtype=F64, requires_grad=True)
    ref = gru_reference(
        pre_ref,
        weight.to(F64),
        _wide(bias),
        h0_ref,
        probe,
        nonlinearity,
        act_bias.to(F64) if act_bias is not None else None,
    )
    loss = (ref[0] * grad_out.to(F64)).sum()
    if has_grad_hn:
        loss = loss + (ref[1] * grad_hn.to(F64)).sum()
    if nonlinearity in ("relu", "modrelu"):
        inactive = float((ref[2][..., 2 * H :] == 0).to(F64).mean())
        assert 0.05 < inactive < 0.95, f"test data should mix active and inactive units ({inactive:.2f})"
    ref_d_pre, ref_dh0, ref_d_hidden = torch.autograd.grad(loss, (pre_ref, h0_ref, probe))

    kwargs = {"config": config} if config is not None else {}
    outputs, h_n, gates, hidden_n = gru_forward(
        _layout(pre, pre_layout), weight, bias, h0, act_bias, nonlinearity, **kwargs
    )
    compute = _compute(dtype)
    assert outputs.dtype == h_n.dtype == dtype and gates.dtype == hidden_n.dtype == compute
    for name, actual, expected in zip(("outputs", "h_n", "gates", "hidden_n"), (outputs, h_n, gates, hidden_n), ref, strict=True):  # fmt: skip
        assert_close(actual, expected, dtype, name)

    d_pre, d_hidden, dh0 = gru_backward(
        _layout(grad_out, pre_layout), grad_hn, outputs, gates, hidden_n, h0, weight, nonlinearity, **kwargs
    )
    assert d_pre.dtype == d_hidden.dtype == dh0.dtype == compute
    assert_close(d_pre, ref_d_pre, dtype, "d_pre")
    assert_close(d_hidden, ref_d_hidden, dtype, "d_hidden")
    assert_close(dh0, ref_dh0, dtype, "dh0")


def test_kernels_match_the_torch_backend():
    """The same contract as trit_rnn/backends/torch_gated.py, tensor for tensor (float32)."""
    from trit_rnn.backends import torch_gated

    T, B, H = 4, 3, 12
    h0, c0 = torch.randn(B, H), torch.randn(B, H)
    grad_out, grad_hn, grad_cn = torch.randn(T, B, H), torch.randn(B, H), torch.randn(B, H)
    pre, weight, bias = torch.randn(T, B, 4 * H), torch.randn(4 * H, H) / H**0.5, torch.randn(4 * H)
    fwd = lstm_forward(pre, weight, h0, c0, bias, config=BLOCK16)
    ref = torch_gated.lstm_forward(pre, weight, h0, c0, bias)
    for actual, expected in zip(fwd, ref, strict=True):
        assert_close(actual, expected, torch.float32, "lstm forward")
    bwd = lstm_backward(grad_out, grad_hn, grad_cn, *fwd[:1], *fwd[3:], h0, c0, weight, True, config=BLOCK16)
    ref = torch_gated.lstm_backward(grad_out, grad_hn, grad_cn, ref[0], ref[3], ref[4], h0, c0, weight, True)
    for actual, expected in zip(bwd, ref, strict=True):
        assert_close(actual, expected, torch.float32, "lstm backward")

    pre, weight, bias = torch.randn(T, B, 3 * H), torch.randn(3 * H, H) / H**0.5, torch.randn(3 * H)
    act_bias = -torch.linspace(0.05, 0.9, H)
    for nonlinearity in ("tanh", "modrelu"):
        fwd = gru_forward(pre, weight, bias, h0, act_bias, nonlinearity, config=BLOCK16)
        ref = torch_gated.gru_forward(pre, weight, bias, h0, act_bias, nonlinearity)
        for actual, expected in zip(fwd, ref, strict=True):
            assert_close(actual, expected, torch.float32, f"gru forward ({nonlinearity})")
        bwd = gru_backward(
            grad_out, grad_hn, fwd[0], fwd[2], fwd[3], h0, weight, nonlinearity, config=BLOCK16
        )
        ref = torch_gated.gru_backward(grad_out, grad_hn, ref[0], ref[2], ref[3], h0, weight, nonlinearity)
        for actual, expected in zip(bwd, ref, strict=True):
            assert_close(actual, expected, torch.float32, f"gru backward ({nonlinearity})")


# --------------------------------------------------------------------------------------------
# launcher edges, budget and specs


def test_empty_sequence_returns_initial_states():
    h0, c0 = torch.randn(3, 20), torch.randn(3, 20)
    outputs, h_n, c_n, gates, cells = lstm_forward(torch.empty(0, 3, 80), torch.randn(80, 20), h0, c0)
    assert outputs.shape == (0, 3, 20) and gates.shape == (0, 3, 80) and cells.shape == (0, 3, 20)
    torch.testing.assert_close(h_n, h0, rtol=0, atol=0)
    torch.testing.assert_close(c_n, c0, rtol=0, atol=0)
    outputs, h_n, gates, hidden_n = gru_forward(torch.empty(0, 3, 60), torch.randn(60, 20), None, None)
    assert outputs.shape == (0, 3, 20) and gates.shape == (0, 3, 60) and hidden_n.shape == (0, 3, 20)
    assert not h_n.any()


def test_launchers_reject_bad_arguments():
    pre = torch.randn(2, 3, 80)
    with pytest.raises(ValueError, match="weight_hh"):
        lstm_forward(pre, torch.randn(60, 20), None, None)
    with pytest.raises(ValueError, match="pre"):
        gru_forward(pre[..., :79], torch.randn(78, 26), None, None)
    with pytest.raises(ValueError, match="c0"):
        lstm_forward(pre, torch.randn(80, 20), None, torch.randn(3, 19))
    with pytest.raises(ValueError, match="bias_hh"):
        gru_forward(pre[..., :60], torch.randn(60, 20), torch.randn(59), None)
    with pytest.raises(ValueError, match="act_bias"):
        gru_forward(pre[..., :60], torch.randn(60, 20), None, None, None, "modrelu")
    with pytest.raises(ValueError, match="nonlinearity"):
        gru_forward(pre[..., :60], torch.randn(60, 20), None, None, None, "sigmoid")
    with pytest.raises(ValueError, match="BLOCK_B"):
        lstm_forward(pre, torch.randn(80, 20), None, None, config=Config(block_b=8))
    with pytest.raises(TypeError, match="dtype"):
        lstm_forward(pre.to(torch.int32), torch.randn(80, 20).to(torch.int32), None, None)


def test_supports_runs_everything_under_the_interpreter_and_names_what_it_rejects():
    for cell in ("lstm", "gru"):
        ok, reason = supports(4096, torch.float32, "cpu", cell)
        assert ok and "interpreter" in reason
        ok, reason = supports(128, torch.int32, "cpu", cell)
        assert not ok and "dtype" in reason
        ok, reason = supports(128, torch.complex64, "cpu", cell)
        assert not ok and "dtype" in reason
    ok, reason = supports(128, torch.float32, "cpu", "rnn")
    assert not ok and "cell" in reason and "lstm" in reason


def test_budget_names_the_shared_memory_limit_per_cell():
    """On a GPU target the budget rejects what does not fit on chip, and says why: the G weight
    blocks against the shared-memory limit (sm_90: 227 KiB per block)."""
    sm90 = 232448
    config = Config(16, 8, 1)
    # fp32 H=128: the LSTM's 4 blocks are 256 KiB (over), the GRU's 3 are 192 KiB (under).
    ok, reason = estimate_budget(128, torch.float32, config, sm90, "lstm_fwd")
    assert not ok and "shared memory" in reason and "227 KiB" in reason and "4 W blocks" in reason
    assert estimate_budget(128, torch.float32, config, sm90, "gru_bwd")[0]
    # bf16 H=256: over for both cells; H=128 fits both.
    for kernel in KERNELS:
        ok, reason = estimate_budget(256, torch.bfloat16, config, sm90, kernel)
        assert not ok and "227 KiB" in reason
        assert estimate_budget(128, torch.bfloat16, config, sm90, kernel)[0]
    # No limit (the interpreter): everything fits; no kernel named: the family's smallest (GRU).
    assert estimate_budget(4096, torch.float32, config, None, "lstm_fwd")[0]
    assert estimate_shared_bytes(64, torch.float32, config) == estimate_shared_bytes(
        64, torch.float32, config, "gru"
    )
    assert estimate_shared_bytes(64, torch.float32, config, "lstm_fwd") == 4 * 64 * 64 * 4 + 16 * 64 * 4
    with pytest.raises(ValueError, match="gated"):
        estimate_shared_bytes(64, torch.float32, config, "dense_fwd")


def test_compile_specs_name_every_kernel_argument():
    config = Config(16, 8, 1)
    specs = compile_specs(100, torch.bfloat16, config)
    assert [s.name for s in specs] == ["lstm_fwd", "lstm_bwd", "gru_fwd", "gru_bwd"]
    assert set(KERNELS) == {s.name for s in specs}
    for spec in specs:
        cell = spec.name.split("_")[0]
        assert set(spec.signature) | set(spec.constexprs) == set(spec.fn.arg_names)
        assert not set(spec.signature) & set(spec.constexprs)
        assert spec.constexprs["CELL"] == CELLS[cell] and spec.meta["gates"] == GATES[cell]
        assert spec.constexprs["BLOCK_H"] == 128 and spec.constexprs["BLOCK_B"] == 16
        assert spec.constexprs["W_HALVES"] is True and spec.constexprs["SPLIT_K_LEVELS"] == 0
        assert spec.fn is KERNELS[spec.name]
    # The variable-length variants: the same kernels and arguments, HAS_LENGTHS on (int32 lengths).
    varlen = compile_specs(100, torch.bfloat16, config, lengths=True)
    assert_lengths_variant(specs, varlen)
    # 16-bit W blocks are staged in K halves from BLOCK_H = 128 only (see launch._w_halves).
    assert all(s.constexprs["W_HALVES"] is False for s in compile_specs(64, torch.bfloat16, config))
    assert specs[0].signature["pre_ptr"] == "*bf16" and specs[0].signature["gates_ptr"] == "*fp32"
    assert specs[3].signature["seq_ptr"] == "*bf16" and specs[1].signature["seq_ptr"] == "*fp32"
    # fp32 dots are chunked along K; the forward more finely (its G dots share their left operand).
    fp32 = {s.name: s.constexprs for s in compile_specs(64, torch.float32, config)}
    assert fp32["lstm_fwd"]["SPLIT_K_LEVELS"] == 2 and fp32["lstm_bwd"]["SPLIT_K_LEVELS"] == 1
    assert fp32["lstm_fwd"]["W_HALVES"] is False


def test_gated_family_is_registered_for_aot():
    from trit_rnn.kernels import aot

    assert ("gated", ".gated.launch") in aot.families()
    assert aot.family_supports_dtype(".gated.launch", "bfloat16")
    assert not aot.family_supports_dtype(".gated.launch", "complex64")
    # The over-budget skip is decided per kernel: at fp32 H=128 the LSTM is over, the GRU is not.
    config = Config(16, 8, 1)
    assert aot._over_budget(".gated.launch", "sm_90", "float32", 128, config, "lstm_fwd")
    assert aot._over_budget(".gated.launch", "sm_90", "float32", 128, config, "gru_fwd") is None
    assert aot._over_budget(".gated.launch", "sm_90", "float32", 128, config) is None
