"""Complex dense kernel family (persistent forward and backward on real and imaginary planes) against
a complex128 torch-autograd reference, under the Triton interpreter.

Gradients are PyTorch's complex convention (grad = dL/dRe + i dL/dIm): the loss is the real inner
product sum(Re(out) Re(g) + Im(out) Im(g)), whose gradient with respect to out is g.

The cases cover complex64 and complex128, identity and modrelu, T = 1 and odd T, H = 20, 40 and 70
(non-powers of two; 40 and 70 also exercise the K-chunked fp32 dots), B = 3 (one program, mostly
masked) and B = 19 (two programs), h0 and grad_hn None / given, a column-major weight, a
batch-first pre, a lazily conjugated grad_out, and pre-activations with exact zeros.
"""

import json

import pytest
import torch
from trit_rnn.kernels import aot
from trit_rnn.kernels.dense_complex.launch import (
    NONLINEARITIES,
    candidate_configs,
    compile_specs,
    complex_backward,
    complex_forward,
    supports,
)
from trit_rnn.kernels.specs import Config

from tests.reference import complex_activation, complex_dense_recurrence_reference
from tests.tolerances import assert_close

BLOCK16 = Config(block_b=16)
WIDE = torch.complex128

# (nonlinearity, dtype, T, B, H, has_h0, has_grad_hn, layout, eps)
CASES = [
    ("modrelu", torch.complex64, 7, 3, 20, True, True, "plain", 1e-3),
    ("modrelu", torch.complex128, 1, 3, 20, False, False, "plain", 1e-3),
    ("identity", torch.complex64, 1, 3, 20, False, True, "strided", 0.0),
    ("identity", torch.complex128, 7, 19, 20, True, False, "plain", 0.0),
    ("modrelu", torch.complex128, 5, 19, 40, True, True, "strided", 0.3),
    ("modrelu", torch.complex64, 3, 3, 70, False, True, "strided", 1e-3),
]


def _case_id(case):
    nl, dtype, T, B, H, h0, ghn, layout, eps = case
    return f"{nl}-{str(dtype)[6:]}-T{T}-B{B}-H{H}-h0{int(h0)}-ghn{int(ghn)}-{layout}-eps{eps:g}"


def _crandn(*shape) -> torch.Tensor:
    return torch.randn(*shape, dtype=WIDE)


def _inner(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Real inner product: its PyTorch gradient with respect to x is g."""
    return (torch.view_as_real(x) * torch.view_as_real(g)).sum()


def _column_major(w: torch.Tensor) -> torch.Tensor:
    return w.t().contiguous().t()


def _batch_first(x: torch.Tensor) -> torch.Tensor:
    """The same values as x [T, B, H], stored as a [B, T, H] buffer."""
    return x.transpose(0, 1).contiguous().transpose(0, 1)


def _lazy_conj(x: torch.Tensor) -> torch.Tensor:
    """The same values as x, as a conjugate view (conj bit set)."""
    out = x.conj().resolve_conj().conj()
    assert out.is_conj()
    return out


def _act_bias(H: int, eps: float) -> torch.Tensor:
    # Mostly negative: units with |z| below -b are inactive. With a larger eps, some positive ones.
    low, high = (-0.9, -0.05) if eps < 0.1 else (-0.6, 0.3)
    return torch.linspace(low, high, H, dtype=torch.float64)


def _inputs(dtype, T, B, H, has_h0):
    """Random inputs rounded to dtype (complex128 copies feed the reference). pre_1 has exact zeros
    where h_0 is zero (row 0 of h0 when given), so z_1 has exact zeros there."""
    pre = _crandn(T, B, H).to(dtype)
    pre[0, 0, ::3] = 0
    weight = (_crandn(H, H) / (2 * H) ** 0.5).to(dtype)
    h0 = None
    if has_h0:
        h0 = _crandn(B, H).to(dtype)
        h0[0] = 0
    return pre, weight, h0


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_complex_forward_backward_match_complex128_reference(case):
    nonlinearity, dtype, T, B, H, has_h0, has_grad_hn, layout, eps = case
    pre, weight, h0 = _inputs(dtype, T, B, H, has_h0)
    act_bias = _act_bias(H, eps) if nonlinearity == "modrelu" else None
    w_ref = weight.to(WIDE)

    pre_ref = pre.to(WIDE).requires_grad_()
    h0_ref = h0.to(WIDE).requires_grad_() if has_h0 else None
    ref_out, ref_hn = complex_dense_recurrence_reference(pre_ref, w_ref, h0_ref, nonlinearity, act_bias, eps)
    grad_out = _crandn(T, B, H).to(dtype)
    grad_hn = _crandn(B, H).to(dtype) if has_grad_hn else None
    loss = _inner(ref_out, grad_out.to(WIDE))
    if has_grad_hn:
        loss = loss + _inner(ref_hn, grad_hn.to(WIDE))
    ref_grads = torch.autograd.grad(loss, (pre_ref, h0_ref) if has_h0 else (pre_ref,))
    ref_dz = ref_grads[0]  # z_t = pre_t + ..., so dL/dz_t = dL/dpre_t
    # dh0 = dz_1 @ conj(W) whether or not h0 was given (the reference needs an h0 to differentiate).
    ref_dh0 = ref_grads[1] if has_h0 else ref_dz[0] @ w_ref.conj()

    strided = layout == "strided"
    outputs, h_n = complex_forward(
        _batch_first(pre) if strided else pre,
        _column_major(weight) if strided else weight,
        h0,
        act_bias,
        nonlinearity,
        eps,
        config=BLOCK16,
    )
    assert outputs.dtype == dtype and h_n.dtype == dtype and outputs.is_contiguous()
    assert_close(outputs, ref_out, dtype, "outputs")
    assert_close(h_n, ref_hn, dtype, "h_n")
    if nonlinearity == "modrelu":
        inactive = float((ref_out == 0).to(torch.float64).mean())
        assert 0.05 < inactive < 0.95, f"test data should mix active and inactive units ({inactive:.2f})"

    # z in bulk, as the host computes it: pre + [h0, h_1..h_{T-1}] @ W^T.
    h_start = h0.to(WIDE) if has_h0 else torch.zeros(B, H, dtype=WIDE)
    states = torch.cat([h_start[None], ref_out.detach()[:-1]])
    z = (pre.to(WIDE) + states @ w_ref.T).to(dtype)
    assert bool((z[0, 0, ::3] == 0).all())
    dz, dh0 = complex_backward(
        _lazy_conj(grad_out) if strided else grad_out,
        grad_hn,
        z,
        _column_major(weight) if strided else weight,
        act_bias,
        nonlinearity,
        eps,
        config=BLOCK16,
    )
    assert dz.dtype == dtype and dh0.dtype == dtype and dz.is_contiguous()
    assert_close(dz, ref_dz, dtype, "dz")
    assert_close(dh0, ref_dh0, dtype, "dh0")


def _pinned_reference(z, weight, act_bias, eps, nonlinearity, grad_out, grad_hn):
    """(dz, dh0) by torch autograd through the recurrence's graph evaluated at the given
    pre-activations z [T, B, H] (complex128): each z_t is z[t] exactly, with the gradient paths to
    pre_t and h_{t-1} of z_t = pre_t + h_{t-1} @ W^T (x - x.detach() is exactly 0)."""
    T, B, H = z.shape
    pre = torch.zeros_like(z, requires_grad=True)
    h0 = torch.zeros(B, H, dtype=z.dtype, requires_grad=True)
    h, loss = h0, 0
    for t in range(T):
        hw = h @ weight.T
        z_t = z[t] + (hw - hw.detach()) + (pre[t] - pre[t].detach())
        h = complex_activation(z_t, nonlinearity, act_bias, eps)
        loss = loss + _inner(h, grad_out[t])
    loss = loss + _inner(h, grad_hn)
    return torch.autograd.grad(loss, (pre, h0))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=["c64", "c128"])
def test_modrelu_vjp_at_exact_zeros_matches_autograd(dtype):
    """z = 0 exactly in a third of the units at every step, with active (b > 0) and inactive (b < 0)
    units there: dz = s(0) g, finite, as torch's autograd (|z| has gradient 0 at 0)."""
    T, B, H, eps = 3, 3, 20, 0.25
    z = _crandn(T, B, H)
    z[:, :, ::3] = 0
    z[:, 1, 1::3] = 1e-30  # tiny but nonzero: |z|^2 underflows in fp32
    z = z.to(dtype)
    weight = (_crandn(H, H) / (2 * H) ** 0.5).to(dtype)
    act_bias = torch.linspace(-0.5, 0.5, H, dtype=torch.float64)
    grad_out, grad_hn = _crandn(T, B, H).to(dtype), _crandn(B, H).to(dtype)

    ref_dz, ref_dh0 = _pinned_reference(
        z.to(WIDE), weight.to(WIDE), act_bias, eps, "modrelu", grad_out.to(WIDE), grad_hn.to(WIDE)
    )
    assert torch.isfinite(torch.view_as_real(ref_dz)).all()
    dz, dh0 = complex_backward(grad_out, grad_hn, z, weight, act_bias, "modrelu", eps, config=BLOCK16)
    assert torch.isfinite(torch.view_as_real(dz)).all() and torch.isfinite(torch.view_as_real(dh0)).all()
    assert_close(dz, ref_dz, dtype, "dz")
    assert_close(dh0, ref_dh0, dtype, "dh0")
    zero = z == 0
    active = (act_bias > 0).expand_as(z)
    assert bool((zero & active).any()) and bool((zero & ~active).any())


def test_modrelu_with_zero_eps_stays_finite_at_zero():
    """eps = 0 makes the reference 0/0 at z = 0; the kernels guard the denominator: h(0) = 0 and
    finite gradients."""
    B, H = 3, 20
    pre = _crandn(1, B, H).to(torch.complex64)
    pre[0, :, ::2] = 0
    weight = torch.eye(H, dtype=torch.complex64)
    act_bias = torch.linspace(-0.5, 0.5, H, dtype=torch.float64)
    outputs, _ = complex_forward(pre, weight, None, act_bias, "modrelu", 0.0, config=BLOCK16)
    assert torch.isfinite(torch.view_as_real(outputs)).all()
    assert bool((outputs[0, :, ::2] == 0).all())
    dz, dh0 = complex_backward(
        torch.ones_like(pre), None, pre, weight, act_bias, "modrelu", 0.0, config=BLOCK16
    )
    assert torch.isfinite(torch.view_as_real(dz)).all() and torch.isfinite(torch.view_as_real(dh0)).all()


def test_autotuned_launch_matches_explicit_config(tmp_path, monkeypatch):
    """config=None goes through the autotune helper (cache in a tmp dir) and launches the config it
    chose and cached: the same bits as an explicit launch with that config."""
    monkeypatch.setenv("TRIT_RNN_CACHE_DIR", str(tmp_path))
    pre, weight, h0 = _inputs(torch.complex64, 2, 19, 20, True)
    act_bias = _act_bias(20, 1e-3)
    outputs, h_n = complex_forward(pre, weight, h0, act_bias, "modrelu", 1e-3)
    ((key, entry),) = json.loads((tmp_path / "autotune.json").read_text()).items()
    assert "dense_complex_fwd" in key and "complex64" in key
    chosen = Config(**entry)
    assert chosen.block_b in (16, 32)  # BLOCK_B=64 is pruned for B=19
    expected, expected_hn = complex_forward(pre, weight, h0, act_bias, "modrelu", 1e-3, config=chosen)
    torch.testing.assert_close(outputs, expected, rtol=0, atol=0)
    torch.testing.assert_close(h_n, expected_hn, rtol=0, atol=0)


def test_empty_sequence_returns_initial_state():
    h0 = _crandn(3, 20).to(torch.complex64)
    weight = torch.eye(20, dtype=torch.complex64)
    outputs, h_n = complex_forward(
        torch.empty(0, 3, 20, dtype=torch.complex64), weight, h0, None, "identity", 0.0
    )
    assert outputs.shape == (0, 3, 20)
    torch.testing.assert_close(h_n, h0, rtol=0, atol=0)
    empty = torch.empty(0, 3, 20, dtype=torch.complex64)
    dz, dh0 = complex_backward(empty, h0, empty, weight, None, "identity", 0.0)
    assert dz.shape == (0, 3, 20)
    torch.testing.assert_close(dh0, h0, rtol=0, atol=0)


def test_launcher_rejects_bad_arguments():
    pre = torch.zeros(2, 3, 20, dtype=torch.complex64)
    eye = torch.eye(20, dtype=torch.complex64)
    with pytest.raises(ValueError, match="nonlinearity"):
        complex_forward(pre, eye, None, None, "tanh", 0.0)
    with pytest.raises(TypeError, match="complex64 or complex128"):
        complex_forward(pre.real, eye.real, None, None, "identity", 0.0)
    with pytest.raises(ValueError, match="weight"):
        complex_forward(pre, eye.to(torch.complex128), None, None, "identity", 0.0)
    with pytest.raises(ValueError, match="act_bias"):
        complex_forward(pre, eye, None, None, "modrelu", 1e-3)
    with pytest.raises(ValueError, match="act_bias"):
        complex_forward(pre, eye, None, torch.zeros(20, dtype=torch.complex64), "modrelu", 1e-3)
    with pytest.raises(ValueError, match="BLOCK_B"):
        complex_forward(pre, eye, None, None, "identity", 0.0, config=Config(block_b=8))
    with pytest.raises(ValueError, match="z must be"):
        complex_backward(pre, None, pre[:1], eye, None, "identity", 0.0)


def test_supports_complex_dtypes_only():
    assert supports(4096, torch.complex64, "cpu")[0]
    assert supports(20, torch.complex128, "cpu")[0]
    ok, reason = supports(128, torch.float32, "cpu")
    assert not ok and "dtype" in reason


def test_nonlinearity_codes_are_the_shared_ones():
    assert NONLINEARITIES == {"identity": 0, "modrelu": 3}


def test_compile_specs_name_every_kernel_argument():
    config = candidate_configs()[0]
    for dtype, plane in [(torch.complex64, "*fp32"), (torch.complex128, "*fp64")]:
        specs = compile_specs(70, dtype, config)
        assert [s.name for s in specs] == ["dense_complex_fwd", "dense_complex_bwd"]
        for spec in specs:
            assert set(spec.signature) | set(spec.constexprs) == set(spec.fn.arg_names)
            assert not set(spec.signature) & set(spec.constexprs)
            assert spec.signature["w_ptr"] == plane and spec.signature["eps"] == "fp64"
            assert spec.constexprs["BLOCK_H"] == 128 and spec.constexprs["BLOCK_B"] == config.block_b
            assert spec.constexprs["ACTIVATION"] == NONLINEARITIES["modrelu"]
    # fp32 FMA dots walk K in chunks of 16 (128 = 2**3 chunks); fp64 dots are tensor-core dots.
    assert compile_specs(70, torch.complex64, config)[0].constexprs["SPLIT_K_LEVELS"] == 3
    assert compile_specs(70, torch.complex128, config)[0].constexprs["SPLIT_K_LEVELS"] == 0


def test_family_is_registered_for_complex_dtypes_only():
    assert ("dense_complex", ".dense_complex.launch") in aot.families()
    assert aot.family_supports_dtype(".dense_complex.launch", "complex64")
    assert not aot.family_supports_dtype(".dense_complex.launch", "float32")
    assert not aot.family_supports_dtype(".dense.launch", "complex64")
    assert aot.family_supports_dtype(".dense.launch", "bfloat16")
