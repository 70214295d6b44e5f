"""The CPU GEMMs of the torch backends (oneDNN where it runs, torch otherwise) equal the plain
products: step GEMM with bias and addend, the bulk linear and both of its gradients, empty shapes,
and the input projection built on them."""

import pytest
import torch

from tests.tolerances import assert_close
from trit_rnn import functional
from trit_rnn.autograd import eager, projection
from trit_rnn.backends import cpu_gemm

F64 = torch.float64


@pytest.fixture(params=["onednn", "addmm", "packed", "fallback"])
def path(request, monkeypatch):
    """Forced to oneDNN; to addmm; to the compiled loops' packed kernel (bulk GEMMs only: the
    Python loops' steps take addmm); no oneDNN at all."""
    if request.param == "packed":
        assert cpu_gemm.packed_runs(torch.zeros(1)), "the packed kernel is not built here (x86 with AVX2)"
    if request.param == "fallback":
        monkeypatch.setattr(cpu_gemm, "onednn_runs", lambda x: False)
    else:
        assert cpu_gemm.onednn_runs(torch.zeros(1)), "this CPU build of torch has no oneDNN linear"
        monkeypatch.setenv("TRIT_RNN_CPU_GEMM", request.param)
    return request.param


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
def test_step_gemm(path, dtype):
    g = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(12, 5, generator=g, dtype=F64), torch.randn(12, generator=g, dtype=F64)
    x, other = torch.randn(3, 5, generator=g, dtype=F64), torch.randn(3, 12, generator=g, dtype=F64)
    plain = cpu_gemm.StepGemm(weight.to(dtype), 3)
    with_bias = cpu_gemm.StepGemm(weight.to(dtype), 3, bias.to(dtype))
    expected_kind = path if (path in ("onednn", "addmm") and dtype == torch.float32) else "addmm"
    assert plain.kind == with_bias.kind == expected_kind
    assert_close(plain(x.to(dtype)), x @ weight.T, dtype, "x W^T")
    assert_close(plain(x.to(dtype), other.to(dtype)), x @ weight.T + other, dtype, "x W^T + other")
    assert_close(with_bias(x.to(dtype), other.to(dtype)), x @ weight.T + bias + other, dtype, "with bias")
    for gemm, added in ((plain, 0), (with_bias, bias)):
        out = other.to(dtype).clone()
        assert gemm.accumulate_(out, x.to(dtype)) is out
        assert_close(out, other + x @ weight.T + added, dtype, "accumulate_ in place")
    strided = torch.randn(3, 10, generator=g, dtype=F64)[:, ::2]
    assert_close(plain(strided.to(dtype)), strided @ weight.T, dtype, "strided x")


@pytest.mark.parametrize("rows", [0, 1, 37])
def test_bulk_linear_and_gradients(path, rows):
    g = torch.Generator().manual_seed(1)
    x, weight = torch.randn(rows, 6, generator=g, dtype=F64), torch.randn(9, 6, generator=g, dtype=F64)
    bias, grad = torch.randn(9, generator=g, dtype=F64), torch.randn(rows, 9, generator=g, dtype=F64)
    f32 = torch.float32
    assert_close(cpu_gemm.linear(x.float(), weight.float(), bias.float()), x @ weight.T + bias, f32, "linear")
    assert_close(cpu_gemm.linear_input_grad(grad.float(), weight.float()), grad @ weight, f32, "input grad")
    assert_close(cpu_gemm.linear_weight_grad(grad.float(), x.float()), grad.T @ x, f32, "weight grad")


WIDTHS = [(9, 6), (6, 9), (7, 7), (64, 2), (2, 64), (40, 20)]


@pytest.mark.parametrize(
    "widths", WIDTHS, ids=["wider grad", "wider x", "equal", "narrow x", "narrow grad", "wide"]
)
def test_weight_grad_either_operand_wider(path, widths):
    """grad^T x for grad [M, N], x [M, K] with N > K (computed as (x^T grad)^T, also on MKL for a
    narrow x), N < K and N = K: the value, and a contiguous result that in-place accumulation can
    follow."""
    n, k = widths
    g = torch.Generator().manual_seed(2)
    grad, x = torch.randn(50, n, generator=g, dtype=F64), torch.randn(50, k, generator=g, dtype=F64)
    result = cpu_gemm.linear_weight_grad(grad.float(), x.float())
    assert result.shape == (n, k) and result.is_contiguous()
    assert_close(result, grad.T @ x, torch.float32, "weight grad")


def test_step_kind_is_timed_once_per_shape_and_kept(monkeypatch):
    """Automatic choice: one of the two kinds, timed at the first use of a shape and then reused."""
    monkeypatch.delenv("TRIT_RNN_CPU_GEMM", raising=False)
    monkeypatch.setattr(cpu_gemm, "_step_kinds", {})
    timed = []
    real = cpu_gemm._time_step_kinds
    monkeypatch.setattr(cpu_gemm, "_time_step_kinds", lambda *a: timed.append(a) or real(*a))
    like = torch.zeros(1)
    first = cpu_gemm.step_kind(32, 128, 64, like, False)
    assert first in ("addmm", "onednn")
    assert cpu_gemm.step_kind(32, 128, 64, like, False) == first
    assert len(timed) == 1
    cpu_gemm.step_kind(32, 128, 64, like, True)
    assert len(timed) == 2, "a bias is part of the shape's key"
    assert cpu_gemm.step_kind(4, 24, 8, like, False) == "addmm" and len(timed) == 2, (
        "tiny steps: addmm, untimed"
    )


def test_step_kind_deterministic_mode_and_float64_never_time(monkeypatch):
    monkeypatch.delenv("TRIT_RNN_CPU_GEMM", raising=False)
    monkeypatch.setattr(cpu_gemm, "_time_step_kinds", lambda *a: pytest.fail("timed"))
    assert cpu_gemm.step_kind(4, 24, 8, torch.zeros(1, dtype=F64), False) == "addmm"
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        assert cpu_gemm.step_kind(5, 24, 8, torch.zeros(1), False) == "addmm"
    finally:
        torch.use_deterministic_algorithms(previous)


def test_step_kind_rejects_an_unknown_forced_kind(monkeypatch):
    monkeypatch.setenv("TRIT_RNN_CPU_GEMM", "mkl")
    with pytest.raises(
        ValueError, match="TRIT_RNN_CPU_GEMM must be auto, addmm, onednn or packed; got 'mkl'"
    ):
        cpu_gemm.StepGemm(torch.zeros(3, 2), 4)


def test_bulk_gemms_time_both_kinds_once_per_shape_and_keep_the_choice(monkeypatch):
    monkeypatch.delenv("TRIT_RNN_CPU_GEMM", raising=False)
    monkeypatch.setattr(cpu_gemm, "packed_runs", lambda x: False)  # a fixed rule where it runs, untimed
    monkeypatch.setattr(cpu_gemm, "_bulk_kinds", {})
    g = torch.Generator().manual_seed(3)
    x, weight = torch.randn(600, 64, generator=g, dtype=F64), torch.randn(72, 64, generator=g, dtype=F64)
    grad = torch.randn(600, 72, generator=g, dtype=F64)
    f32 = torch.float32
    for _ in range(2):
        assert_close(cpu_gemm.linear(x.float(), weight.float(), None), x @ weight.T, f32, "linear")
        assert_close(
            cpu_gemm.linear_input_grad(grad.float(), weight.float()), grad @ weight, f32, "input grad"
        )
        assert_close(cpu_gemm.linear_weight_grad(grad.float(), x.float()), grad.T @ x, f32, "weight grad")
    kinds = cpu_gemm._bulk_kinds
    assert sorted(key[0] for key in kinds) == ["input_grad", "linear", "weight_grad"], (
        "one entry per op and shape"
    )
    assert set(kinds.values()) <= {"addmm", "onednn"}


def test_bulk_gemm_choices_are_shared_across_nearby_row_counts(monkeypatch):
    """Ragged segments and batches of varying length give a new M nearly every call: M is keyed
    rounded up to a power of two, so 2100, 3000 and 4096 rows share one timed entry and 4100 gets
    another."""
    monkeypatch.delenv("TRIT_RNN_CPU_GEMM", raising=False)
    monkeypatch.setattr(cpu_gemm, "packed_runs", lambda x: False)  # a fixed rule where it runs, untimed
    monkeypatch.setattr(cpu_gemm, "_bulk_kinds", {})
    weight = torch.randn(96, 64)
    for rows in (2100, 3000, 4096, 4100):
        grad, x = torch.randn(rows, 96), torch.randn(rows, 64)
        assert_close(
            cpu_gemm.linear_weight_grad(grad, x), grad.double().T @ x.double(), torch.float32, f"M={rows}"
        )
        assert_close(
            cpu_gemm.linear(x, weight, None), x.double() @ weight.double().T, torch.float32, f"M={rows}"
        )
    assert sorted((key[0], key[1]) for key in cpu_gemm._bulk_kinds) == [
        ("linear", 4096),
        ("linear", 8192),
        ("weight_grad", 4096),
        ("weight_grad", 8192),
    ]
    assert cpu_gemm.next_pow2(1) == 1 and cpu_gemm.next_pow2(64) == 64 and cpu_gemm.next_pow2(65) == 128


def test_packed_kernel_is_the_untimed_default_for_the_projection_where_preferred(monkeypatch):
    """Where csrc/step_gemm.cpp's rule prefers the packed kernel (x86 with AVX2, not Intel), the
    projection and its input gradient run on it without timing; elsewhere they are timed as before.
    The weight gradient is timed between addmm and oneDNN on every CPU."""
    from trit_rnn.backends import compiled_loops

    monkeypatch.delenv("TRIT_RNN_CPU_GEMM", raising=False)
    monkeypatch.setattr(cpu_gemm, "_bulk_kinds", {})
    x, weight, grad = torch.randn(600, 64), torch.randn(72, 64), torch.randn(600, 72)
    cpu_gemm.linear(x, weight, None)
    cpu_gemm.linear_input_grad(grad, weight)
    cpu_gemm.linear_weight_grad(grad, x)
    preferred = cpu_gemm.packed_runs(x) and compiled_loops.loops().packed_gemm_preferred()
    timed = sorted(key[0] for key in cpu_gemm._bulk_kinds)
    assert timed == (["weight_grad"] if preferred else ["input_grad", "linear", "weight_grad"])


def test_a_near_tie_keeps_addmm():
    """Another kind must beat addmm by the margin: a near tie keeps addmm in every process."""
    assert cpu_gemm._winner({"addmm": 1.0, "onednn": 0.95, "packed": 0.99}) == "addmm"
    assert cpu_gemm._winner({"addmm": 1.0, "onednn": 0.5, "packed": 0.8}) == "onednn"


def test_tiny_bulk_gemms_take_addmm_untimed(monkeypatch):
    monkeypatch.delenv("TRIT_RNN_CPU_GEMM", raising=False)
    monkeypatch.setattr(cpu_gemm, "packed_runs", lambda x: False)
    monkeypatch.setattr(cpu_gemm, "_bulk_kinds", {})
    x, weight = torch.randn(40, 6), torch.randn(9, 6)
    assert_close(cpu_gemm.linear(x, weight, None), x.double() @ weight.double().T, torch.float32, "linear")
    assert cpu_gemm._bulk_kinds == {}


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no bias"])
def test_input_projection_matches_float64_linear(path, with_bias):
    """functional.input_projection (its eager twin outside torch.compile) against float64 F.linear:
    the output and the gradients of x, weight and bias."""
    g = torch.Generator().manual_seed(3)
    leaves = [torch.randn(7, 5, 6, generator=g, dtype=F64), torch.randn(9, 6, generator=g, dtype=F64)]
    leaves += [torch.randn(9, generator=g, dtype=F64)] if with_bias else []
    grad = torch.randn(7, 5, 9, generator=g, dtype=F64)
    results = []
    for fn, dtype in ((functional.input_projection, torch.float32), (torch.nn.functional.linear, F64)):
        inputs = [leaf.to(dtype).requires_grad_() for leaf in leaves]
        out = fn(*inputs) if with_bias else fn(*inputs, None)
        out.backward(grad.to(dtype))
        results.append([out.detach(), *(leaf.grad for leaf in inputs)])
    for name, actual, expected in zip(["output", "dx", "d weight", "d bias"], *results, strict=False):
        assert_close(actual, expected, torch.float32, name)


def test_input_projection_op_registration_is_consistent():
    g = torch.Generator().manual_seed(4)
    x, weight, bias = (
        torch.randn(*shape, generator=g).requires_grad_() for shape in ((4, 3, 5), (6, 5), (6,))
    )
    torch.library.opcheck(projection.input_projection_op, (x, weight, bias))


def test_only_plain_tensors_outside_dispatch_modes_are_timed_or_given_to_the_kernels():
    """Fake tensors (a trace's) and any active dispatch mode (a tracer, a FLOP counter) keep the
    GEMMs off the timing and the compiled kernels, which read data and have no fake kernels."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils._python_dispatch import TorchDispatchMode

    plain = torch.zeros(4, 4)
    assert eager.runs_eagerly(plain, torch.nn.Parameter(torch.zeros(2)))
    assert cpu_gemm.packed_runs(plain)
    with FakeTensorMode():
        fake = torch.zeros(4, 4)
    assert not eager.runs_eagerly(fake) and not cpu_gemm.packed_runs(fake)

    class Passthrough(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    with Passthrough():
        assert not eager.runs_eagerly(plain) and not cpu_gemm.packed_runs(plain)
