"""The compiled loops' packed AVX2 GEMM (csrc/step_gemm.cpp): the step GEMM of the time loops
and the bulk `packed_matmul` (and the narrow weight gradient of csrc/narrow_grad.cpp), against float64 products at shapes that exercise every row-block
remainder (1-6 rows), column-panel tail (16 columns a panel) and K chunk (256 a chunk); which
kernel runs where, and how it is forced. The loops themselves run on both kinds in test_compiled_loops.py."""

import pytest
import torch

from tests.tolerances import assert_close
from trit_rnn.backends import compiled_loops

F32, F64 = torch.float32, torch.float64


@pytest.fixture
def ops():
    ops = compiled_loops.loops()
    assert ops is not None, "the compiled CPU loops did not build here"
    assert ops.packed_gemm_available(), "the packed kernel is not built here (x86 with AVX2 and FMA)"
    return ops


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 6, 7, 13])
@pytest.mark.parametrize(("k", "n"), [(1, 1), (37, 16), (37, 45), (130, 111)])
def test_step_gemm_equals_the_product(ops, rows, k, n, monkeypatch):
    monkeypatch.setenv("TRIT_RNN_LOOP_GEMM", "packed")
    g = torch.Generator().manual_seed(rows * 1000 + n)
    wide = torch.randn(rows, k + 3, generator=g, dtype=F64)
    b = torch.randn(k, n, generator=g, dtype=F64)
    for a in (wide[:, :k].contiguous(), wide[:, 3:]):  # rows contiguous; a row stride of k + 3
        assert ops.step_gemm_kind(F32) == "packed"
        assert_close(ops.step_gemm_matmul(a.float(), b.float()), a @ b, F32, f"[{rows}, {k}] x [{k}, {n}]")


@pytest.mark.parametrize(("m", "k", "n"), [(100, 6, 9), (47, 600, 33), (5, 0, 20), (49, 257, 16)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_packed_matmul_equals_the_product(ops, m, k, n, with_bias):
    """The three bulk forms: x W^T + b (b transposed), grad @ W (both contiguous) and grad^T x (a
    transposed, a long reduction in chunks)."""
    g = torch.Generator().manual_seed(m + k + n)
    x, weight = torch.randn(m, k, generator=g, dtype=F64), torch.randn(n, k, generator=g, dtype=F64)
    bias = torch.randn(n, generator=g, dtype=F64) if with_bias else None
    expected = x @ weight.T + (bias if with_bias else 0)
    result = ops.packed_matmul(x.float(), weight.float().t(), bias.float() if with_bias else None)
    assert result.shape == (m, n) and result.is_contiguous()
    assert_close(result, expected, F32, "x W^T + b")
    grad = torch.randn(m, n, generator=g, dtype=F64)
    assert_close(ops.packed_matmul(grad.float(), weight.float(), None), grad @ weight, F32, "grad W")
    assert_close(ops.packed_matmul(grad.float().t(), x.float(), None), grad.T @ x, F32, "grad^T x")


def test_packed_matmul_rejects_bad_operands(ops):
    with pytest.raises(RuntimeError, match=r"a \[M, K\] and b \[K, N\] expected"):
        ops.packed_matmul(torch.zeros(3, 4), torch.zeros(5, 2), None)
    with pytest.raises(RuntimeError, match="float32 operands expected"):
        ops.packed_matmul(torch.zeros(3, 4, dtype=F64), torch.zeros(4, 2, dtype=F64), None)
    with pytest.raises(RuntimeError, match=r"bias \[N\] float32 expected"):
        ops.packed_matmul(torch.zeros(3, 4), torch.zeros(4, 2), torch.zeros(3))


def test_step_gemm_kind_is_a_fixed_rule_and_can_be_forced(ops, monkeypatch):
    """Not Intel's x86 CPU: the packed kernel; Intel's: MKL (both deterministic run to run, and
    the same in every process on one machine). float64 is always MKL's."""
    monkeypatch.setenv("TRIT_RNN_LOOP_GEMM", "mkl")
    assert ops.step_gemm_kind(F32) == "mkl"
    monkeypatch.setenv("TRIT_RNN_LOOP_GEMM", "packed")
    assert ops.step_gemm_kind(F32) == "packed"
    assert ops.step_gemm_kind(F64) == "mkl", "float64 always runs on MKL"
    monkeypatch.delenv("TRIT_RNN_LOOP_GEMM")
    intel = "GenuineIntel" in open("/proc/cpuinfo").read()
    assert ops.packed_gemm_preferred() == (not intel)
    assert ops.step_gemm_kind(F32) == ("mkl" if intel else "packed")
    monkeypatch.setenv("TRIT_RNN_LOOP_GEMM", "fast")
    with pytest.raises(RuntimeError, match="TRIT_RNN_LOOP_GEMM must be auto, mkl or packed; got 'fast'"):
        ops.step_gemm_kind(F32)


def test_packed_results_do_not_depend_on_the_thread_count(ops, monkeypatch):
    """Each element is summed by one thread in a fixed order: 1 and 2 threads agree bit for bit."""
    monkeypatch.setenv("TRIT_RNN_LOOP_GEMM", "packed")
    g = torch.Generator().manual_seed(7)
    a, b = torch.randn(300, 70, generator=g), torch.randn(70, 50, generator=g)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append((ops.packed_matmul(a, b, None), ops.packed_matmul(a.t().contiguous().t(), b, None),
                            ops.step_gemm_matmul(a, b)))  # fmt: skip
    finally:
        torch.set_num_threads(before)
    for one, two in zip(*results, strict=True):
        assert torch.equal(one, two)


NARROW_SHAPES = [(0, 1, 9), (1, 2, 1), (300, 1, 37), (600, 2, 128), (257, 4, 16), (300, 5, 15), (40, 8, 24)]


@pytest.mark.parametrize(("m", "k", "n"), NARROW_SHAPES, ids=[f"M{m}-K{k}-N{n}" for m, k, n in NARROW_SHAPES])
def test_narrow_weight_grad_equals_the_product(ops, m, k, n):
    """grad^T x for an x of 1-8 columns (csrc/narrow_grad.cpp) against float64, at shapes that
    exercise its 16-, 8- and 1-column groups and its 256-row blocks, with grad's rows strided
    (a view with a row stride of n + 3) and contiguous."""
    g = torch.Generator().manual_seed(m + 10 * k + n)
    wide = torch.randn(m, n + 3, generator=g, dtype=F64)
    x = torch.randn(m, k, generator=g, dtype=F64)
    for grad in (wide[:, :n].contiguous(), wide[:, 3:]):
        result = ops.narrow_weight_grad(grad.float(), x.float())
        assert result.shape == (n, k) and result.is_contiguous()
        assert_close(result, grad.T @ x, F32, f"[{n}, {m}] x [{m}, {k}]")


def test_narrow_weight_grad_rejects_bad_operands_and_is_thread_count_independent(ops):
    with pytest.raises(RuntimeError, match="x must have 1 to 8 columns, got 9"):
        ops.narrow_weight_grad(torch.zeros(3, 4), torch.zeros(3, 9))
    with pytest.raises(RuntimeError, match="float32 operands expected"):
        ops.narrow_weight_grad(torch.zeros(3, 4, dtype=F64), torch.zeros(3, 2, dtype=F64))
    with pytest.raises(RuntimeError, match=r"grad \[M, N\] and x \[M, K\] expected"):
        ops.narrow_weight_grad(torch.zeros(3, 4), torch.zeros(5, 2))
    g = torch.Generator().manual_seed(8)
    grad, x = torch.randn(700, 100, generator=g), torch.randn(700, 3, generator=g)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(ops.narrow_weight_grad(grad, x))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])
