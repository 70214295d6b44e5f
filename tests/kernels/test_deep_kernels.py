"""Deep-transition kernel family (persistent forward and backward, Pascanu et al.'s DT(S)-RNN)
against float64 references, under the Triton interpreter.

The forward is checked against tests/reference.py's deep_transition_reference (outputs, h_n) and
the torch backend run in float64 (every output, layers included); the backward against the torch
backend in float64 fed the same float64 forward results (d_pre, d_layers, dh0). The cases cover
every nonlinearity, depth 1..4, with and without the shortcut, T = 1 and odd T, non-power-of-2 H,
B below and beyond one BLOCK_B = 16 tile, h0 and grad_hn given or not, float64 and float32, and
one bfloat16 case (tanh: relu's kink flips derivative masks under bf16 rounding, see
tests/kernels/test_dense_kernels.py).
"""

import pytest
import torch
from trit_rnn.kernels.deep import launch
from trit_rnn.kernels.deep.launch import (
    KERNELS,
    MAX_DEPTH,
    NONLINEARITIES,
    candidate_configs,
    compile_specs,
    deep_backward,
    deep_forward,
    estimate_budget,
    estimate_shared_bytes,
    supports,
)
from trit_rnn.kernels.specs import Config

from tests.kernels.varlen_specs import assert_lengths_variant
from tests.reference import deep_transition_reference
from tests.tolerances import assert_close
from trit_rnn.backends import torch_deep

F64 = torch.float64
BLOCK16 = Config(block_b=16)
SM90_SHARED = 232448  # kernels/aot.py TARGETS["sm_90"]

# (nonlinearity, dtype, T, B, H, depth, shortcut, has_h0, has_grad_hn)
CASES = [
    ("tanh", torch.float32, 7, 19, 20, 2, True, True, True),
    ("tanh", torch.float32, 1, 3, 20, 1, False, False, False),
    ("tanh", torch.float32, 3, 4, 12, 4, True, False, True),
    ("relu", torch.float32, 5, 19, 24, 3, True, True, False),
    ("relu", torch.float32, 6, 4, 20, 2, False, False, True),
    ("identity", torch.float32, 7, 19, 20, 3, False, True, True),
    ("identity", torch.float32, 1, 4, 17, 1, True, False, True),
    ("tanh", F64, 5, 19, 20, 3, True, True, True),
    ("relu", F64, 3, 2, 24, 1, False, True, False),
    ("tanh", torch.bfloat16, 7, 19, 20, 2, True, True, True),
]


def _case_id(case):
    nl, dtype, T, B, H, depth, shortcut, h0, ghn = case
    return f"{nl}-{str(dtype)[6:]}-T{T}-B{B}-H{H}-D{depth}-sc{int(shortcut)}-h0{int(h0)}-ghn{int(ghn)}"


def _inputs(dtype, T, B, H, depth, shortcut, has_h0):
    """Random inputs rounded to the storage dtype (pre, weight_hh, weights_deep, biases_deep, h0)."""
    width = 2 * H if shortcut else H

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, dtype=F64) * scale).to(dtype)

    return (
        randn(T, B, width),
        randn(width, H, scale=0.8 / H**0.5),
        randn(depth - 1, H, H, scale=1.2 / H**0.5),
        randn(depth - 1, H, scale=0.3),
        randn(B, H, scale=0.5) if has_h0 else None,
    )


def _f64(x):
    return x.to(F64) if x is not None else None


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_deep_forward_backward_match_float64_reference(case):
    nonlinearity, dtype, T, B, H, depth, shortcut, has_h0, has_grad_hn = case
    inputs = _inputs(dtype, T, B, H, depth, shortcut, has_h0)
    wide = [_f64(x) for x in inputs]
    ref_out, ref_hn, ref_layers = torch_deep.deep_forward(*wide, nonlinearity)
    loop_out, loop_hn = deep_transition_reference(*wide, nonlinearity=nonlinearity)
    torch.testing.assert_close(ref_out, loop_out, rtol=1e-12, atol=1e-12)  # the two references agree

    outputs, h_n, layers = deep_forward(*inputs, nonlinearity, config=BLOCK16)
    compute = F64 if dtype == F64 else torch.float32
    assert outputs.dtype == dtype and h_n.dtype == dtype and layers.dtype == compute
    assert outputs.shape == (T, B, H) and h_n.shape == (B, H) and layers.shape == (depth - 1, T, B, H)
    assert_close(outputs, ref_out, dtype, "outputs")
    assert_close(h_n, ref_hn, dtype, "h_n")
    assert_close(layers, ref_layers, dtype, "layers")
    if nonlinearity == "relu":
        inactive = float((ref_out == 0).to(F64).mean())
        assert 0.05 < inactive < 0.95, f"test data should mix active and inactive units ({inactive:.2f})"

    grad_out = torch.randn(T, B, H, dtype=F64).to(dtype)
    grad_hn = torch.randn(B, H, dtype=F64).to(dtype) if has_grad_hn else None
    weight_hh, weights_deep, h0 = inputs[1], inputs[2], inputs[4]
    # The float64 backward runs on the float64 forward's results.
    ref_d_pre, ref_d_layers, ref_dh0 = torch_deep.deep_backward(
        _f64(grad_out), _f64(grad_hn), ref_out, ref_layers, _f64(h0), wide[1], wide[2], nonlinearity
    )
    d_pre, d_layers, dh0 = deep_backward(
        grad_out, grad_hn, outputs, layers, h0, weight_hh, weights_deep, nonlinearity, config=BLOCK16
    )
    assert d_pre.dtype == compute and d_layers.dtype == compute and dh0.dtype == compute
    assert_close(d_pre, ref_d_pre, dtype, "d_pre")
    assert_close(d_layers, ref_d_layers, dtype, "d_layers")
    assert_close(dh0, ref_dh0, dtype, "dh0")


def test_backward_matches_autograd_of_the_reference():
    """The contract's backward (torch backend) is itself checked against autograd of the loop
    reference elsewhere; here the kernels' d_pre and dh0 are checked against autograd directly,
    with the shortcut at depth 3."""
    T, B, H, depth = 4, 3, 12, 3
    pre, weight_hh, weights_deep, biases_deep, h0 = _inputs(torch.float32, T, B, H, depth, True, True)
    pre_ref, h0_ref = _f64(pre).requires_grad_(), _f64(h0).requires_grad_()
    out_ref, hn_ref = deep_transition_reference(
        pre_ref, _f64(weight_hh), _f64(weights_deep), _f64(biases_deep), h0_ref, nonlinearity="tanh"
    )
    grad_out, grad_hn = torch.randn(T, B, H), torch.randn(B, H)
    loss = (out_ref * _f64(grad_out)).sum() + (hn_ref * _f64(grad_hn)).sum()
    ref_d_pre, ref_dh0 = torch.autograd.grad(loss, (pre_ref, h0_ref))

    outputs, _, layers = deep_forward(pre, weight_hh, weights_deep, biases_deep, h0, "tanh", config=BLOCK16)
    d_pre, _, dh0 = deep_backward(grad_out, grad_hn, outputs, layers, h0, weight_hh, weights_deep, "tanh")
    assert_close(d_pre, ref_d_pre, torch.float32, "d_pre")
    assert_close(dh0, ref_dh0, torch.float32, "dh0")


def test_end_to_end_through_the_functional_op_on_the_triton_backend(monkeypatch):
    """deep_transition_recurrence(..., backend="triton") on CPU tensors runs these kernels (under the
    interpreter the dispatcher honours an explicit "triton") forward and backward, and matches the
    float64 reference in every output and gradient."""
    from trit_rnn.functional import deep_transition_recurrence

    calls = []
    for name in ("deep_forward", "deep_backward"):
        original = getattr(launch, name)
        monkeypatch.setattr(
            launch, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k)
        )
    T, B, H, depth = 5, 3, 20, 2
    leaves = [x for x in _inputs(F64, T, B, H, depth, True, True)]
    grad_out, grad_hn = torch.randn(T, B, H, dtype=F64), torch.randn(B, H, dtype=F64)

    def run(fn, dtype):
        xs = [x.detach().to(dtype).requires_grad_() for x in leaves]
        outputs, h_n = fn(*xs)
        loss = (outputs.to(F64) * grad_out).sum() + (h_n.to(F64) * grad_hn).sum()
        return (outputs, h_n), torch.autograd.grad(loss, xs)

    values, grads = run(
        lambda *xs: deep_transition_recurrence(*xs, nonlinearity="tanh", backend="triton"), torch.float32
    )
    ref_values, ref_grads = run(lambda *xs: deep_transition_reference(*xs, nonlinearity="tanh"), F64)
    assert calls == ["deep_forward", "deep_backward"]
    names = ["pre", "weight_hh", "weights_deep", "biases_deep", "h0"]
    for what, a, b in zip(["outputs", "h_n"], values, ref_values, strict=True):
        assert a.dtype == torch.float32
        assert_close(a, b, torch.float32, what)
    for what, a, b in zip(names, grads, ref_grads, strict=True):
        assert_close(a, b, torch.float32, f"d {what}")


def test_empty_sequence_returns_initial_state():
    pre, weight_hh, weights_deep, biases_deep, h0 = _inputs(torch.float32, 0, 3, 20, 2, True, True)
    outputs, h_n, layers = deep_forward(pre, weight_hh, weights_deep, biases_deep, h0, "tanh")
    assert outputs.shape == (0, 3, 20) and layers.shape == (1, 0, 3, 20)
    torch.testing.assert_close(h_n, h0, rtol=0, atol=0)
    grad_hn = torch.randn(3, 20)
    d_pre, d_layers, dh0 = deep_backward(
        torch.empty(0, 3, 20), grad_hn, outputs, layers, h0, weight_hh, weights_deep, "tanh"
    )
    assert d_pre.shape == (0, 3, 40) and d_layers.shape == (2, 0, 3, 20)
    torch.testing.assert_close(dh0, grad_hn, rtol=0, atol=0)


def test_launcher_rejects_bad_arguments():
    pre, weight_hh, weights_deep, biases_deep, _ = _inputs(torch.float32, 2, 3, 8, 2, False, False)
    with pytest.raises(ValueError, match="nonlinearity"):
        deep_forward(pre, weight_hh, weights_deep, biases_deep, None, "modrelu")
    with pytest.raises(ValueError, match="weights_deep"):
        deep_forward(pre, weight_hh, weights_deep[:, :7], biases_deep, None, "tanh")
    with pytest.raises(ValueError, match="biases_deep"):
        deep_forward(pre, weight_hh, weights_deep, biases_deep[:, :7], None, "tanh")
    with pytest.raises(ValueError, match="pre"):
        deep_forward(pre[..., :7], weight_hh, weights_deep, biases_deep, None, "tanh")
    with pytest.raises(ValueError, match="depth 1..4"):
        deep_forward(pre, weight_hh, torch.zeros(4, 8, 8), torch.zeros(4, 8), None, "tanh")
    with pytest.raises(ValueError, match="BLOCK_B"):
        deep_forward(pre, weight_hh, weights_deep, biases_deep, None, "tanh", config=Config(block_b=8))


def test_supports_rejects_what_it_cannot_run_with_the_limit_named():
    assert supports(4096, torch.float32, "cpu")[0]  # the interpreter runs every hidden size
    ok, reason = supports(128, torch.int32, "cpu")
    assert not ok and "dtype" in reason
    ok, reason = supports(64, torch.float32, "cpu", depth=MAX_DEPTH + 1)
    assert not ok and f"1..{MAX_DEPTH}" in reason
    ok, reason = supports(64, torch.float32, "meta")
    assert not ok and "meta" in reason
    # The on-chip budget a GPU is checked against: every matrix stays in shared memory.
    config = Config(16, 8, 1)
    ok, reason = estimate_budget(256, torch.bfloat16, config, SM90_SHARED, depth=2, shortcut=False)
    assert not ok and "227 KiB" in reason and "2 matrices" in reason
    assert estimate_budget(128, torch.bfloat16, config, SM90_SHARED, depth=2, shortcut=True)[0]
    ok, reason = estimate_budget(128, torch.float32, config, SM90_SHARED, depth=MAX_DEPTH, shortcut=True)
    assert not ok and "5 matrices" in reason and "227 KiB" in reason
    assert estimate_budget(4096, torch.float32, config, None, depth=MAX_DEPTH)[0]  # no limit: fits


def test_supports_without_the_interpreter_budgets_the_largest_depth(monkeypatch):
    """On a GPU (faked: the interpreter switched off in the launcher, an H100's limit), H=128 fp32
    fits depth 2 but not the largest depth, which supports() assumes when no depth is given."""
    monkeypatch.setattr(launch, "_interpreted", lambda: False)
    monkeypatch.setattr(launch, "_shared_memory_limit", lambda device: SM90_SHARED)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "H100 (fake)")
    ok, reason = supports(128, torch.float32, "cuda")
    assert not ok and "227 KiB" in reason and f"depth {MAX_DEPTH}" in reason and "H100 (fake)" in reason
    assert supports(128, torch.float32, "cuda", depth=2, shortcut=False)[0]
    assert supports(64, torch.float32, "cuda")[0]
    ok, reason = supports(64, torch.float32, "cpu")
    assert not ok and "TRITON_INTERPRET" in reason


def test_shared_estimate_counts_every_matrix():
    config = Config(16, 4, 1)
    assert (
        estimate_shared_bytes(64, torch.float32, config, depth=3, shortcut=True)
        == 4 * 64 * 64 * 4 + 16 * 64 * 4
    )
    assert (
        estimate_shared_bytes(100, torch.bfloat16, config, depth=1, shortcut=False)
        == 128 * 128 * 2 + 16 * 128 * 4
    )
    # The default describes the registered cell: depth 2 with the shortcut.
    assert estimate_shared_bytes(64, torch.float32, config) == estimate_shared_bytes(
        64, torch.float32, config, depth=2, shortcut=True
    )


def test_nonlinearity_codes_match_the_shared_activations():
    assert NONLINEARITIES == {"identity": 0, "tanh": 1, "relu": 2}


def test_compile_specs_name_every_kernel_argument():
    config = candidate_configs()[0]
    for depth, shortcut in [(1, False), (2, True), (4, True)]:
        specs = compile_specs(100, torch.bfloat16, config, depth=depth, shortcut=shortcut)
        assert [s.name for s in specs] == ["deep_fwd", "deep_bwd"] == list(KERNELS)
        for spec in specs:
            assert set(spec.signature) | set(spec.constexprs) == set(spec.fn.arg_names)
            assert not set(spec.signature) & set(spec.constexprs)
            assert spec.constexprs["DEPTH"] == depth and spec.constexprs["SHORTCUT"] is shortcut
            assert spec.constexprs["BLOCK_H"] == 128 and spec.constexprs["BLOCK_B"] == config.block_b
            assert spec.fn is KERNELS[spec.name]
    assert specs[0].signature["pre_ptr"] == "*bf16" and specs[0].signature["layers_ptr"] == "*fp32"
    assert specs[1].signature["d_layers_ptr"] == "*fp32"
    # The variable-length variants: the same kernels and arguments, HAS_LENGTHS on (int32 lengths).
    varlen = compile_specs(100, torch.bfloat16, config, depth=4, shortcut=True, lengths=True)
    assert_lengths_variant(specs, varlen)
    default = compile_specs(64, torch.float32, config)
    assert default[0].constexprs["DEPTH"] == 2 and default[0].constexprs["SHORTCUT"] is True
    with pytest.raises(ValueError, match="depth"):
        compile_specs(64, torch.float32, config, depth=MAX_DEPTH + 1)


def test_deep_family_is_registered_for_aot():
    from trit_rnn.kernels import aot

    assert ("deep", ".deep.launch") in aot.families()
    assert aot.family_supports_dtype(".deep.launch", "bfloat16")
    assert not aot.family_supports_dtype(".deep.launch", "complex64")
    config = Config(16, 8, 1)
    assert aot._over_budget(".deep.launch", "sm_90", "bfloat16", 256, config)
    assert aot._over_budget(".deep.launch", "sm_90", "bfloat16", 128, config) is None


COMPILE_DEPTH_2 = r"""
import json, torch
from trit_rnn.kernels import aot
from trit_rnn.kernels.deep import launch
from trit_rnn.kernels.specs import Config
records = []
for dtype, hidden, config in [(torch.bfloat16, 128, Config(16, 4, 1)), (torch.float32, 64, Config(16, 8, 1))]:
    for shortcut, lengths in [(True, False), (False, False), (True, True), (False, True)]:
        for spec in launch.compile_specs(hidden, dtype, config, depth=2, shortcut=shortcut, lengths=lengths):
            r = aot.compile_resources(spec, "sm_90")
            records.append({"kernel": spec.name, "dtype": str(dtype), "hidden": hidden, "shortcut": shortcut,
                            "lengths": spec.constexprs["HAS_LENGTHS"],
                            "config": config.label(), "estimate": launch.estimate_shared_bytes(
                                hidden, dtype, config, depth=2, shortcut=shortcut),
                            **{k: r[k] for k in ("fits", "registers", "spill_bytes", "spill_loads",
                                                 "shared_bytes", "shared_limit", "mma_sync", "wgmma")}})
print(json.dumps(records))
"""


@pytest.mark.slow
def test_depth_2_kernels_fit_sm90_without_spills():
    """The depth-2 kernels, with and without the shortcut, and their variable-length variants
    (HAS_LENGTHS), compile for sm_90 (in a subprocess without the interpreter) with no spills and
    every matrix in shared memory within the 227 KiB limit: bfloat16 H=128 (BLOCK_B=16, 4 warps) and
    float32 H=64 (BLOCK_B=16, 8 warps). The launcher's shared-memory estimate is what triton
    allocates (the lengths mask adds none)."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    done = subprocess.run(
        [sys.executable, "-c", COMPILE_DEPTH_2], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = json.loads(done.stdout.strip().splitlines()[-1])
    for r in records:
        print(r)
    assert len(records) == 16
    assert sorted(r["lengths"] for r in records) == [False] * 8 + [True] * 8
    for r in records:
        assert r["fits"] and r["spill_bytes"] == 0 and r["spill_loads"] == 0 and 0 < r["registers"] <= 255, r
        assert r["shared_bytes"] <= r["shared_limit"] == SM90_SHARED, r
        assert r["shared_bytes"] == r["estimate"], r
    # 16-bit dots go to tensor cores; fp32 "ieee" dots stay FMA loops.
    assert all(r["mma_sync"] + r["wgmma"] > 0 for r in records if "bfloat16" in r["dtype"])
    assert all(r["mma_sync"] + r["wgmma"] == 0 for r in records if "float32" in r["dtype"])
