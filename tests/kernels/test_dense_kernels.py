"""Dense kernel family (persistent forward and backward) against the float64 autograd reference,
under the Triton interpreter.

Each case runs one forward and one backward launch. The parametrisation covers every
nonlinearity, every storage dtype, T = 1 and odd T, H = 20 and 190 (non-powers of two), B = 1 and
B = 19 with BLOCK_B = 16 (two programs, the second mostly masked), a column-major weight, a
non-contiguous pre, h0 None / given and grad_hn None / given, without the full cross product.

16-bit storage is checked with the smooth nonlinearities (identity, tanh): relu and modrelu have a
kink, and a state that differs from the float64 one by a bf16 rounding flips the derivative mask
of the units sitting near it, so their max-norm error is not bounded by the rounding at all.
"""

import json

import pytest
import torch
from trit_rnn.kernels.dense.launch import (
    NONLINEARITIES,
    candidate_configs,
    compile_specs,
    dense_backward,
    dense_forward,
    supports,
)
from trit_rnn.kernels.specs import Config

from tests.reference import dense_recurrence_reference
from tests.tolerances import assert_close

BLOCK16 = Config(block_b=16)

# (nonlinearity, dtype, T, B, H, weight_layout, pre_layout, has_h0, has_grad_hn, config)
CASES = [
    ("tanh", torch.float32, 7, 19, 20, "row", "contiguous", True, True, BLOCK16),
    ("tanh", torch.float64, 1, 1, 20, "column", "contiguous", False, False, BLOCK16),
    ("identity", torch.float32, 1, 19, 20, "column", "batch_first", False, True, BLOCK16),
    ("identity", torch.float64, 7, 19, 190, "row", "contiguous", True, False, BLOCK16),
    ("relu", torch.float32, 7, 19, 190, "column", "batch_first", True, True, BLOCK16),
    ("relu", torch.float64, 6, 1, 20, "row", "strided", False, True, Config(block_b=32)),
    ("modrelu", torch.float32, 7, 19, 20, "row", "strided", True, False, BLOCK16),
    ("modrelu", torch.float64, 7, 19, 190, "column", "contiguous", False, True, BLOCK16),
    ("tanh", torch.bfloat16, 7, 19, 190, "column", "contiguous", True, True, BLOCK16),
    ("identity", torch.bfloat16, 1, 1, 20, "row", "batch_first", False, True, BLOCK16),
    ("tanh", torch.float16, 7, 19, 20, "row", "strided", True, False, BLOCK16),
]


def _case_id(case):
    nl, dtype, T, B, H, w, p, h0, ghn, cfg = case
    return f"{nl}-{str(dtype)[6:]}-T{T}-B{B}-H{H}-W{w}-pre_{p}-h0{int(h0)}-ghn{int(ghn)}-bb{cfg.block_b}"


def _layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as x [T, B, H], stored with another memory layout."""
    if layout == "contiguous":
        return x.contiguous()
    if layout == "batch_first":  # a [B, T, H] buffer viewed as [T, B, H]
        return x.transpose(0, 1).contiguous().transpose(0, 1)
    if layout == "strided":  # every other element of a wider buffer along H
        wide = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    raise ValueError(layout)


def _inputs(nonlinearity, dtype, T, B, H, weight_layout, has_h0):
    """Random inputs rounded to the storage dtype, and their float64 copies for the reference."""
    pre = torch.randn(T, B, H, dtype=torch.float64).to(dtype)
    weight = (torch.randn(H, H, dtype=torch.float64) / H**0.5).to(dtype)
    if weight_layout == "column":
        weight = weight.t().contiguous().t()
        assert weight.stride() == (1, H)
    h0 = torch.randn(B, H, dtype=torch.float64).to(dtype) if has_h0 else None
    # Negative biases: units with |z| below -act_bias are inactive, the others active. (A positive
    # bias would make modrelu jump by 2 * act_bias at z = 0.)
    act_bias = -torch.linspace(0.05, 0.9, H, dtype=torch.float64) if nonlinearity == "modrelu" else None
    return pre, weight, h0, act_bias


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_dense_forward_backward_match_float64_reference(case):
    nonlinearity, dtype, T, B, H, weight_layout, pre_layout, has_h0, has_grad_hn, config = case
    pre, weight, h0, act_bias = _inputs(nonlinearity, dtype, T, B, H, weight_layout, has_h0)

    pre_ref = pre.to(torch.float64).requires_grad_()
    h0_ref = h0.to(torch.float64).requires_grad_() if has_h0 else None
    ref_out, ref_hn = dense_recurrence_reference(
        pre_ref, weight.to(torch.float64), h0_ref, nonlinearity, act_bias
    )
    grad_out = torch.randn(T, B, H, dtype=torch.float64).to(dtype)
    grad_hn = torch.randn(B, H, dtype=torch.float64).to(dtype) if has_grad_hn else None
    loss = (ref_out * grad_out.to(torch.float64)).sum()
    if has_grad_hn:
        loss = loss + (ref_hn * grad_hn.to(torch.float64)).sum()
    wrt = (pre_ref, h0_ref) if has_h0 else (pre_ref,)
    ref_grads = torch.autograd.grad(loss, wrt)
    ref_dz = ref_grads[0]  # z_t = pre_t + ..., so dL/dz_t = dL/dpre_t
    # dh0 = dz_1 @ W whether or not h0 was given (the reference needs an h0 to differentiate).
    ref_dh0 = ref_grads[1] if has_h0 else ref_dz[0] @ weight.to(torch.float64)

    outputs, h_n = dense_forward(_layout(pre, pre_layout), weight, h0, act_bias, nonlinearity, config=config)
    assert outputs.dtype == dtype and h_n.dtype == dtype and outputs.is_contiguous()
    assert_close(outputs, ref_out, dtype, "outputs")
    assert_close(h_n, ref_hn, dtype, "h_n")
    if nonlinearity in ("relu", "modrelu"):
        inactive = float((ref_out == 0).to(torch.float64).mean())
        assert 0.05 < inactive < 0.95, f"test data should mix active and inactive units ({inactive:.2f})"

    dz, dh0 = dense_backward(
        _layout(grad_out, pre_layout), grad_hn, outputs, weight, nonlinearity, config=config
    )
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    assert dz.dtype == compute and dh0.dtype == compute and dz.is_contiguous()
    assert_close(dz, ref_dz, dtype, "dz")
    assert_close(dh0, ref_dh0, dtype, "dh0")


def test_autotuned_launch_matches_explicit_config(tmp_path, monkeypatch):
    """config=None goes through the autotune helper (cache in a tmp dir) and launches the config it
    chose and cached: the same bits as an explicit launch with that config."""
    monkeypatch.setenv("TRIT_RNN_CACHE_DIR", str(tmp_path))
    pre, weight, h0, _ = _inputs("tanh", torch.float32, 3, 19, 20, "row", True)
    outputs, h_n = dense_forward(pre, weight, h0, None, "tanh")
    (entry,) = json.loads((tmp_path / "autotune.json").read_text()).values()
    chosen = Config(**entry)
    assert chosen.block_b in (16, 32)  # BLOCK_B=64 is pruned for B=19
    expected, expected_hn = dense_forward(pre, weight, h0, None, "tanh", config=chosen)
    torch.testing.assert_close(outputs, expected, rtol=0, atol=0)
    torch.testing.assert_close(h_n, expected_hn, rtol=0, atol=0)


def test_empty_sequence_returns_initial_state():
    h0 = torch.randn(3, 20)
    outputs, h_n = dense_forward(torch.empty(0, 3, 20), torch.eye(20), h0, None, "tanh")
    assert outputs.shape == (0, 3, 20)
    torch.testing.assert_close(h_n, h0, rtol=0, atol=0)


def test_launcher_rejects_bad_arguments():
    pre = torch.randn(2, 3, 20)
    with pytest.raises(ValueError, match="nonlinearity"):
        dense_forward(pre, torch.eye(20), None, None, "sigmoid")
    with pytest.raises(ValueError, match="weight"):
        dense_forward(pre, torch.eye(19), None, None, "tanh")
    with pytest.raises(ValueError, match="act_bias"):
        dense_forward(pre, torch.eye(20), None, None, "modrelu")
    with pytest.raises(ValueError, match="BLOCK_B"):
        dense_forward(pre, torch.eye(20), None, None, "tanh", config=Config(block_b=8))


def test_supports_every_hidden_size_under_the_interpreter():
    assert supports(4096, torch.float32, "cpu")[0]
    ok, reason = supports(128, torch.int32, "cpu")
    assert not ok and "dtype" in reason


def test_nonlinearity_codes_are_stable():
    assert NONLINEARITIES == {"identity": 0, "tanh": 1, "relu": 2, "modrelu": 3}


def test_compile_specs_name_every_kernel_argument():
    config = candidate_configs()[0]
    specs = compile_specs(190, torch.bfloat16, config)
    assert [s.name for s in specs] == ["dense_fwd", "dense_bwd"]
    for spec in specs:
        arg_names = spec.fn.arg_names
        assert set(spec.signature) | set(spec.constexprs) == set(arg_names)
        assert not set(spec.signature) & set(spec.constexprs)
        assert spec.constexprs["BLOCK_H"] == 256 and spec.constexprs["BLOCK_B"] == config.block_b
        assert (spec.num_warps, spec.num_stages) == (config.num_warps, config.num_stages)
    assert specs[0].signature["pre_ptr"] == "*bf16" and specs[0].signature["h0_ptr"] == "*fp32"
    assert specs[1].signature["dz_ptr"] == "*fp32"


def test_compile_specs_stage_w_in_halves_for_tensor_core_dots_only():
    """16-bit and fp64 dots stage W as two K halves (the bf16 H=256 sm_90 build spills otherwise);
    fp32 "ieee" dots split K themselves and keep W whole; BLOCK_H=16 cannot be halved."""
    config = candidate_configs()[0]
    for dtype, hidden, halves in [
        (torch.bfloat16, 256, True),
        (torch.float16, 20, True),
        (torch.float64, 190, True),
        (torch.float32, 128, False),
        (torch.bfloat16, 16, False),
    ]:
        for spec in compile_specs(hidden, dtype, config):
            assert spec.constexprs["W_HALVES"] is halves, (spec.name, dtype, hidden)
