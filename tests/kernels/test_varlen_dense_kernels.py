"""Per-row variable lengths in the dense and complex dense kernels (HAS_LENGTHS), under the Triton
interpreter.

Row b is active at step t (0-based) iff t < lengths[b]: an inactive row keeps its state and writes
an output of exactly 0, h_n is the state after the row's last active step; in the backward,
grad_out (and, for the complex family, z) at inactive steps is ignored, grad_hn enters at the
row's last active step and dz is exactly 0 at inactive steps.

The reference runs each sequence alone, pre[:len_b, b:b+1] with h0[b:b+1], through the torch
backend (trit_rnn/backends/torch_dense.py, torch_complex.py) in float64 / complex128; the kernels
get the whole batch in one launch, with NaN in grad_out (and z) wherever a row is inactive.

Shapes: T = 1 and odd T, non-power-of-two H, B = 19 with BLOCK_B = 16 (the second program mostly
masked), lengths that include 1 and T (in both programs), int32 and int64 lengths.
"""

import pytest
import torch
from trit_rnn.kernels.dense import launch as dense_launch
from trit_rnn.kernels.dense.launch import dense_backward, dense_forward
from trit_rnn.kernels.dense_complex import launch as complex_launch
from trit_rnn.kernels.dense_complex.launch import complex_backward, complex_forward
from trit_rnn.kernels.specs import Config

from tests.tolerances import assert_close
from trit_rnn.backends import torch_complex, torch_dense

BLOCK16 = Config(block_b=16)
WIDE = torch.complex128


def _lengths(T: int, B: int, dtype: torch.dtype) -> torch.Tensor:
    """Random lengths in [1, T] with T and 1 in the first program's rows and 1 and T in the last
    ones (rows 16.. form the second program at BLOCK_B = 16)."""
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    lengths[B // 2] = 1
    lengths[-1] = 1
    if B > 17:
        lengths[16] = T
    return lengths.to(dtype)


def _inactive(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """[T, B] True where row b is inactive at step t."""
    return torch.arange(T)[:, None] >= lengths.to(torch.int64)[None, :]


def _poison(x: torch.Tensor, inactive: torch.Tensor) -> torch.Tensor:
    """x [T, B, H] with NaN (NaN + i NaN) at the inactive steps: the kernels must not read them."""
    x = x.clone()
    nan = float("nan")
    x[inactive] = complex(nan, nan) if x.is_complex() else nan
    return x


def _assert_zero_where_inactive(x: torch.Tensor, inactive: torch.Tensor, what: str) -> None:
    assert bool((x[inactive] == 0).all()), f"{what}: not exactly 0 at inactive steps"


# ---------------------------------------------------------------------------------------------
# real dense family

# (nonlinearity, dtype, T, B, H, has_h0, has_grad_hn, lengths dtype)
DENSE_CASES = [
    ("tanh", torch.float32, 7, 19, 20, True, True, torch.int64),
    ("tanh", torch.float64, 1, 3, 20, False, True, torch.int32),
    ("identity", torch.float32, 5, 19, 37, False, True, torch.int32),
    ("identity", torch.float64, 7, 5, 20, True, False, torch.int64),
    ("relu", torch.float32, 6, 19, 20, True, False, torch.int64),
    ("relu", torch.float64, 7, 19, 40, False, True, torch.int32),
    ("modrelu", torch.float32, 7, 19, 37, True, True, torch.int32),
    ("modrelu", torch.float64, 5, 19, 20, True, True, torch.int64),
    ("tanh", torch.bfloat16, 7, 19, 40, True, True, torch.int64),
]


def _dense_id(case):
    nl, dtype, T, B, H, h0, ghn, ldt = case
    return f"{nl}-{str(dtype)[6:]}-T{T}-B{B}-H{H}-h0{int(h0)}-ghn{int(ghn)}-{str(ldt)[6:]}"


def _dense_inputs(nonlinearity, dtype, T, B, H, has_h0, has_grad_hn):
    pre = torch.randn(T, B, H, dtype=torch.float64).to(dtype)
    weight = (torch.randn(H, H, dtype=torch.float64) / H**0.5).to(dtype)
    h0 = torch.randn(B, H, dtype=torch.float64).to(dtype) if has_h0 else None
    # Negative biases (see test_dense_kernels.py): a mix of active and inactive modrelu units.
    act_bias = -torch.linspace(0.05, 0.9, H, dtype=torch.float64) if nonlinearity == "modrelu" else None
    grad_out = torch.randn(T, B, H, dtype=torch.float64).to(dtype)
    grad_hn = torch.randn(B, H, dtype=torch.float64).to(dtype) if has_grad_hn else None
    return pre, weight, h0, act_bias, grad_out, grad_hn


def _dense_reference(pre, weight, h0, act_bias, nonlinearity, grad_out, grad_hn, lengths):
    """(outputs, h_n, dz, dh0) in float64, each row run alone through the torch backend for its
    own length; outputs and dz are 0 past a row's end."""
    T, B, H = pre.shape
    wide = torch.float64
    w = weight.to(wide)
    bias = act_bias.to(wide) if act_bias is not None else None
    outputs = torch.zeros(T, B, H, dtype=wide)
    dz = torch.zeros(T, B, H, dtype=wide)
    h_n = torch.empty(B, H, dtype=wide)
    dh0 = torch.empty(B, H, dtype=wide)
    for b in range(B):
        n = int(lengths[b])
        rows = slice(b, b + 1)
        h0_b = h0[rows].to(wide) if h0 is not None else None
        out_b, hn_b = torch_dense.dense_forward(pre[:n, rows].to(wide), w, h0_b, bias, nonlinearity)
        ghn_b = grad_hn[rows].to(wide) if grad_hn is not None else None
        dz_b, dh0_b = torch_dense.dense_backward(grad_out[:n, rows].to(wide), ghn_b, out_b, w, nonlinearity)
        outputs[:n, rows], h_n[rows], dz[:n, rows], dh0[rows] = out_b, hn_b, dz_b, dh0_b
    return outputs, h_n, dz, dh0


@pytest.mark.parametrize("case", DENSE_CASES, ids=[_dense_id(c) for c in DENSE_CASES])
def test_dense_varlen_matches_per_sequence_reference(case):
    nonlinearity, dtype, T, B, H, has_h0, has_grad_hn, lengths_dtype = case
    pre, weight, h0, act_bias, grad_out, grad_hn = _dense_inputs(
        nonlinearity, dtype, T, B, H, has_h0, has_grad_hn
    )
    lengths = _lengths(T, B, lengths_dtype)
    inactive = _inactive(lengths, T)
    ref_out, ref_hn, ref_dz, ref_dh0 = _dense_reference(
        pre, weight, h0, act_bias, nonlinearity, grad_out, grad_hn, lengths
    )

    outputs, h_n = dense_forward(pre, weight, h0, act_bias, nonlinearity, lengths=lengths, config=BLOCK16)
    assert outputs.dtype == dtype and h_n.dtype == dtype
    _assert_zero_where_inactive(outputs, inactive, "outputs")
    assert_close(outputs, ref_out, dtype, "outputs")
    assert_close(h_n, ref_hn, dtype, "h_n")

    dz, dh0 = dense_backward(
        _poison(grad_out, inactive), grad_hn, outputs, weight, nonlinearity, lengths=lengths, config=BLOCK16
    )
    _assert_zero_where_inactive(dz, inactive, "dz")
    assert_close(dz, ref_dz, dtype, "dz")
    assert_close(dh0, ref_dh0, dtype, "dh0")


@pytest.mark.parametrize("nonlinearity", ["tanh", "modrelu"])
def test_dense_full_lengths_are_bit_identical_to_none(nonlinearity):
    T, B, H = 5, 19, 20
    pre, weight, h0, act_bias, grad_out, grad_hn = _dense_inputs(
        nonlinearity, torch.float32, T, B, H, True, True
    )
    full = torch.full((B,), T, dtype=torch.int64)
    plain = dense_forward(pre, weight, h0, act_bias, nonlinearity, config=BLOCK16)
    masked = dense_forward(pre, weight, h0, act_bias, nonlinearity, lengths=full, config=BLOCK16)
    for a, b in zip(plain, masked, strict=True):
        assert torch.equal(a, b)
    plain = dense_backward(grad_out, grad_hn, plain[0], weight, nonlinearity, config=BLOCK16)
    masked = dense_backward(grad_out, grad_hn, masked[0], weight, nonlinearity, lengths=full, config=BLOCK16)
    for a, b in zip(plain, masked, strict=True):
        assert torch.equal(a, b)


def _bad_lengths(B: int, T: int):
    return [
        torch.full((B + 1,), T),  # wrong length
        torch.full((B, 1), T),  # wrong rank
        torch.full((B,), float(T)),  # float dtype
        torch.full((B,), True),  # bool is not an integer length
        torch.full((B,), T, device="meta"),  # another device
        [T] * B,  # not a tensor
    ]


def test_dense_launchers_reject_bad_lengths():
    T, B, H = 3, 4, 20
    pre, weight = torch.randn(T, B, H), torch.eye(H)
    outputs, _ = dense_forward(pre, weight, None, None, "tanh", config=BLOCK16)
    for bad in _bad_lengths(B, T):
        with pytest.raises(ValueError, match="lengths"):
            dense_forward(pre, weight, None, None, "tanh", lengths=bad, config=BLOCK16)
        with pytest.raises(ValueError, match="lengths"):
            dense_backward(pre, None, outputs, weight, "tanh", lengths=bad, config=BLOCK16)


def test_dense_compile_specs_lengths_variant():
    config = Config(16, 8, 1)
    for lengths in (False, True):
        specs = dense_launch.compile_specs(128, torch.float32, config, lengths=lengths)
        assert [s.name for s in specs] == ["dense_fwd", "dense_bwd"]
        for spec in specs:
            assert set(spec.signature) | set(spec.constexprs) == set(spec.fn.arg_names)
            assert spec.signature["lengths_ptr"] == "*i32"
            assert spec.constexprs["HAS_LENGTHS"] is lengths and spec.meta["lengths"] is lengths
    assert dense_launch.compile_specs(128, torch.float32, config)[0].constexprs["HAS_LENGTHS"] is False


# ---------------------------------------------------------------------------------------------
# complex dense family

# (nonlinearity, dtype, T, B, H, has_h0, has_grad_hn, eps, lengths dtype)
COMPLEX_CASES = [
    ("modrelu", torch.complex64, 7, 19, 20, True, True, 1e-3, torch.int64),
    ("modrelu", torch.complex128, 1, 3, 20, False, True, 1e-3, torch.int32),
    ("modrelu", torch.complex128, 5, 19, 40, False, True, 0.3, torch.int32),
    ("identity", torch.complex64, 6, 5, 37, True, False, 0.0, torch.int64),
    ("identity", torch.complex128, 7, 19, 20, True, True, 0.0, torch.int32),
]


def _complex_id(case):
    nl, dtype, T, B, H, h0, ghn, eps, ldt = case
    return f"{nl}-{str(dtype)[6:]}-T{T}-B{B}-H{H}-h0{int(h0)}-ghn{int(ghn)}-eps{eps:g}-{str(ldt)[6:]}"


def _crandn(*shape) -> torch.Tensor:
    return torch.randn(*shape, dtype=WIDE)


def _act_bias(H: int, eps: float) -> torch.Tensor:
    low, high = (-0.9, -0.05) if eps < 0.1 else (-0.6, 0.3)
    return torch.linspace(low, high, H, dtype=torch.float64)


def _bulk_z(pre, weight, h0, outputs):
    """z = pre + [h0, h_1..h_{T-1}] @ W^T in bulk, as the host computes it (garbage where inactive)."""
    T, B, H = pre.shape
    h_start = h0 if h0 is not None else torch.zeros(B, H, dtype=pre.dtype)
    return pre + torch.cat([h_start[None], outputs[:-1]]) @ weight.T


def _complex_reference(pre, weight, h0, act_bias, nonlinearity, eps, grad_out, grad_hn, lengths):
    """(outputs, h_n, dz, dh0) in complex128, each row run alone through the torch backend."""
    T, B, H = pre.shape
    w = weight.to(WIDE)
    outputs = torch.zeros(T, B, H, dtype=WIDE)
    dz = torch.zeros(T, B, H, dtype=WIDE)
    h_n = torch.empty(B, H, dtype=WIDE)
    dh0 = torch.empty(B, H, dtype=WIDE)
    for b in range(B):
        n = int(lengths[b])
        rows = slice(b, b + 1)
        pre_b = pre[:n, rows].to(WIDE)
        h0_b = h0[rows].to(WIDE) if h0 is not None else None
        out_b, hn_b = torch_complex.complex_forward(pre_b, w, h0_b, act_bias, nonlinearity, eps)
        z_b = _bulk_z(pre_b, w, h0_b, out_b)
        ghn_b = grad_hn[rows].to(WIDE) if grad_hn is not None else None
        dz_b, dh0_b = torch_complex.complex_backward(
            grad_out[:n, rows].to(WIDE), ghn_b, z_b, w, act_bias, nonlinearity, eps
        )
        outputs[:n, rows], h_n[rows], dz[:n, rows], dh0[rows] = out_b, hn_b, dz_b, dh0_b
    return outputs, h_n, dz, dh0


@pytest.mark.parametrize("case", COMPLEX_CASES, ids=[_complex_id(c) for c in COMPLEX_CASES])
def test_complex_varlen_matches_per_sequence_reference(case):
    nonlinearity, dtype, T, B, H, has_h0, has_grad_hn, eps, lengths_dtype = case
    pre = _crandn(T, B, H).to(dtype)
    weight = (_crandn(H, H) / (2 * H) ** 0.5).to(dtype)
    h0 = _crandn(B, H).to(dtype) if has_h0 else None
    act_bias = _act_bias(H, eps) if nonlinearity == "modrelu" else None
    grad_out = _crandn(T, B, H).to(dtype)
    grad_hn = _crandn(B, H).to(dtype) if has_grad_hn else None
    lengths = _lengths(T, B, lengths_dtype)
    inactive = _inactive(lengths, T)
    ref_out, ref_hn, ref_dz, ref_dh0 = _complex_reference(
        pre, weight, h0, act_bias, nonlinearity, eps, grad_out, grad_hn, lengths
    )

    outputs, h_n = complex_forward(
        pre, weight, h0, act_bias, nonlinearity, eps, lengths=lengths, config=BLOCK16
    )
    assert outputs.dtype == dtype and h_n.dtype == dtype
    _assert_zero_where_inactive(outputs, inactive, "outputs")
    assert_close(outputs, ref_out, dtype, "outputs")
    assert_close(h_n, ref_hn, dtype, "h_n")
    if nonlinearity == "modrelu":
        active_out = ref_out[~inactive]
        dead = float((active_out == 0).to(torch.float64).mean())
        assert 0.05 < dead < 0.95, f"test data should mix active and inactive units ({dead:.2f})"

    # z in bulk from the kernel's outputs, then NaN wherever a row is inactive (never read).
    z = _poison(_bulk_z(pre, weight, h0, outputs), inactive)
    dz, dh0 = complex_backward(
        _poison(grad_out, inactive),
        grad_hn,
        z,
        weight,
        act_bias,
        nonlinearity,
        eps,
        lengths=lengths,
        config=BLOCK16,
    )
    _assert_zero_where_inactive(dz, inactive, "dz")
    assert_close(dz, ref_dz, dtype, "dz")
    assert_close(dh0, ref_dh0, dtype, "dh0")


@pytest.mark.parametrize("nonlinearity", ["identity", "modrelu"])
def test_complex_full_lengths_are_bit_identical_to_none(nonlinearity):
    T, B, H, eps = 5, 19, 20, 1e-3
    dtype = torch.complex64
    pre = _crandn(T, B, H).to(dtype)
    weight = (_crandn(H, H) / (2 * H) ** 0.5).to(dtype)
    h0 = _crandn(B, H).to(dtype)
    act_bias = _act_bias(H, eps) if nonlinearity == "modrelu" else None
    grad_out, grad_hn = _crandn(T, B, H).to(dtype), _crandn(B, H).to(dtype)
    full = torch.full((B,), T, dtype=torch.int32)
    plain = complex_forward(pre, weight, h0, act_bias, nonlinearity, eps, config=BLOCK16)
    masked = complex_forward(pre, weight, h0, act_bias, nonlinearity, eps, lengths=full, config=BLOCK16)
    for a, b in zip(plain, masked, strict=True):
        assert torch.equal(a, b)
    z = _bulk_z(pre, weight, h0, plain[0])
    plain = complex_backward(grad_out, grad_hn, z, weight, act_bias, nonlinearity, eps, config=BLOCK16)
    masked = complex_backward(
        grad_out, grad_hn, z, weight, act_bias, nonlinearity, eps, lengths=full, config=BLOCK16
    )
    for a, b in zip(plain, masked, strict=True):
        assert torch.equal(a, b)


def test_complex_launchers_reject_bad_lengths():
    T, B, H = 3, 4, 20
    pre = _crandn(T, B, H).to(torch.complex64)
    weight = torch.eye(H, dtype=torch.complex64)
    for bad in _bad_lengths(B, T):
        with pytest.raises(ValueError, match="lengths"):
            complex_forward(pre, weight, None, None, "identity", 0.0, lengths=bad, config=BLOCK16)
        with pytest.raises(ValueError, match="lengths"):
            complex_backward(pre, None, pre, weight, None, "identity", 0.0, lengths=bad, config=BLOCK16)


def test_complex_compile_specs_lengths_variant():
    config = Config(16, 8, 1)
    for lengths in (False, True):
        specs = complex_launch.compile_specs(128, torch.complex64, config, lengths=lengths)
        assert [s.name for s in specs] == ["dense_complex_fwd", "dense_complex_bwd"]
        for spec in specs:
            assert set(spec.signature) | set(spec.constexprs) == set(spec.fn.arg_names)
            assert spec.signature["lengths_ptr"] == "*i32"
            assert spec.constexprs["HAS_LENGTHS"] is lengths and spec.meta["lengths"] is lengths
    assert complex_launch.compile_specs(128, torch.complex64, config)[0].constexprs["HAS_LENGTHS"] is False


def test_ragged_launches_are_tuned_under_their_own_cache_name(monkeypatch):
    """The HAS_LENGTHS variant compiles to other registers and spills than the plain kernel, so
    every family's launcher asks the autotuner under "<kernel>+lengths" for a ragged launch."""
    from trit_rnn.kernels import autotune
    from trit_rnn.kernels.deep import launch as deep_launch
    from trit_rnn.kernels.gated import launch as gated_launch

    names = []

    def record(kernel_name, *args, **kwargs):
        names.append(kernel_name)
        return BLOCK16

    monkeypatch.setattr(autotune, "choose_for_launch", record)
    T, B, H = 3, 2, 8
    lengths = torch.tensor([3, 1])
    for ragged in (None, lengths):
        kw = {"lengths": ragged}
        out, _ = dense_forward(torch.randn(T, B, H), torch.eye(H), None, None, "tanh", **kw)
        dense_backward(torch.randn(T, B, H), None, out, torch.eye(H), "tanh", **kw)
        c = torch.randn(T, B, H, dtype=torch.complex64)
        complex_forward(c, torch.eye(H, dtype=torch.complex64), None, None, "identity", 1e-5, **kw)
        complex_backward(c, None, c, torch.eye(H, dtype=torch.complex64), None, "identity", 1e-5, **kw)
        out, _, _, gates, cells = gated_launch.lstm_forward(
            torch.randn(T, B, 4 * H), torch.randn(4 * H, H), None, None, **kw
        )
        gated_launch.lstm_backward(
            torch.randn(T, B, H), None, None, out, gates, cells, None, None, torch.randn(4 * H, H), **kw
        )
        deep_launch.deep_forward(
            torch.randn(T, B, H),
            torch.randn(H, H),
            torch.randn(1, H, H),
            torch.randn(1, H),
            None,
            "tanh",
            **kw,
        )
    plain = [
        "dense_fwd",
        "dense_bwd",
        "dense_complex_fwd",
        "dense_complex_bwd",
        "lstm_fwd",
        "lstm_bwd",
        "deep_fwd",
    ]
    assert names == plain + [f"{name}+lengths" for name in plain]
