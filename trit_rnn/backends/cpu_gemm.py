"""The CPU GEMMs of the torch backends' time loops: oneDNN's, torch.addmm (MKL) or, for the bulk
GEMMs around the loops, the compiled loops' packed AVX2 kernel (`packed_matmul`,
csrc/step_gemm.cpp): whichever is fastest here.

Why: on this project's AMD EPYC (AVX-512) machines MKL's addmm takes its AVX2 path: 85 GFLOP/s on
one core for [32, 128] x [128, 512] and for [6400, 128] x [128, 512], where oneDNN's linear
reaches 136 (with the weight pre-packed) and 204 GFLOP/s. On its Intel Xeon machines it is the
other way round for the time loops' small steps (addmm 104 against oneDNN's 53 GFLOP/s at
[32, 128] x [128, 512]; 9.2 against 44 us at [32, 128] x [128, 128]), so every GEMM is chosen
by timing: the step GEMMs at a shape's first loop (`step_kind`), the bulk GEMMs around the loops
at a shape's first call, on its real operands (`_faster`); see _winner for what keeps two
processes on the same kinds.

`linear_weight_grad` of an input of at most 8 features runs on the compiled loops' one-pass
kernel (csrc/narrow_grad.cpp), which MKL is 2-3x slower than at that shape.

`StepGemm(weight, batch, bias)` prepares a weight [N, K] once per call of a backend; calling it
with x [B, K] returns x @ weight^T + bias + other ([B, N], a new tensor). `linear`,
`linear_input_grad` and `linear_weight_grad` are the bulk GEMMs around the loops. The oneDNN op is torch's own
(torch.ops.mkldnn._linear_pointwise, what inductor's CPU backend emits); where it is missing, or
for float64 / non-CPU tensors, plain torch.addmm is used, so results never depend on its presence.
"""

import os
import time
from collections.abc import Callable
from functools import cache

import torch

from ..autograd import eager
from . import compiled_loops


def onednn_runs(x: torch.Tensor) -> bool:
    """Whether oneDNN's linear handles x's device and dtype here. Not while torch.compile traces
    (the autograd formulas that call these are traced): inductor picks its own GEMMs, and its
    lowering of this op rejects transposed operands."""
    return (
        not torch.compiler.is_compiling()
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and _onednn_built()
    )


@cache
def _onednn_built() -> bool:
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    )


class StepGemm:
    """x [B, K] -> x @ weight^T + bias (+ other [B, N]) for one fixed weight [N, K], bias [N] or None,
    on whichever of torch.addmm and oneDNN's linear is faster for this shape here (`step_kind`)."""

    def __init__(
        self, weight: torch.Tensor, batch: int, bias: torch.Tensor | None = None, kind: str | None = None
    ):
        self.bias = bias
        self.kind = kind or step_kind(batch, weight.shape[0], weight.shape[1], weight, bias is not None)
        if self.kind == "onednn":
            self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), batch)
        else:
            # contiguous [K, N]: addmm on the transposed view of [N, K] is 1.3-1.6x slower at B = 32
            self.weight_t = weight.t().contiguous()

    def __call__(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        if self.kind == "onednn":
            if other is None:
                return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
            return torch.ops.mkldnn._linear_pointwise.binary(x, other, self.weight, self.bias, "add")
        out = x @ self.weight_t if other is None else torch.addmm(other, x, self.weight_t)
        return out if self.bias is None else out.add_(self.bias)

    def accumulate_(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """out += x @ weight^T (+ bias) in place; out [B, N]."""
        if self.kind == "onednn":
            return out.copy_(self(x, out))
        out.addmm_(x, self.weight_t)
        return out if self.bias is None else out.add_(self.bias)


# (batch, N, K, dtype, bias, threads) -> "addmm" or "onednn"
_step_kinds: dict[tuple, str] = {}


def step_kind(batch: int, n: int, k: int, like: torch.Tensor, with_bias: bool) -> str:
    """Which GEMM a time loop's [batch, K] x [K, N] step runs on: "onednn" or "addmm".

    Neither wins everywhere: on an AMD EPYC (AVX-512) machine MKL's addmm took its AVX2 path and
    oneDNN's linear was 1.6x faster at [32, 128] x [128, 512]; on an Intel Xeon (Sapphire Rapids
    class) addmm was 1.3-2x faster than oneDNN at every step shape of the dense and gated cells.
    So the first loop of each shape times both (a few ms) and the choice is kept for the process.
    TRIT_RNN_CPU_GEMM=addmm|onednn forces one; under torch.use_deterministic_algorithms(True) it
    is addmm without timing, so that two processes cannot pick differently."""
    if not onednn_runs(like):
        return "addmm"
    forced = _forced_kind()
    if forced is not None:
        return "addmm" if forced == "packed" else forced  # the Python loops have no packed kernel
    if torch.are_deterministic_algorithms_enabled():
        return "addmm"
    if 2 * batch * n * k < _MIN_TIMED_STEP_FLOPS:
        return "addmm"
    key = (batch, n, k, like.dtype, with_bias, torch.get_num_threads())
    if key not in _step_kinds:
        _step_kinds[key] = _time_step_kinds(batch, n, k, like.dtype, with_bias)
    return _step_kinds[key]


def _time_step_kinds(batch: int, n: int, k: int, dtype: torch.dtype, with_bias: bool) -> str:
    """The faster kind at this shape: best of 3 rounds of 8 calls each, the kinds interleaved."""
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(n, k, generator=g).to(dtype)
    bias = torch.randn(n, generator=g).to(dtype) if with_bias else None
    x, other = torch.randn(batch, k, generator=g).to(dtype), torch.randn(batch, n, generator=g).to(dtype)
    candidates = {kind: StepGemm(weight, batch, bias, kind) for kind in ("addmm", "onednn")}
    for gemm in candidates.values():
        gemm(x, other)  # warm-up: oneDNN builds its primitive on the first call
    best = {kind: float("inf") for kind in candidates}
    for _ in range(3):
        for kind, gemm in candidates.items():
            start = time.perf_counter()
            for _ in range(8):
                gemm(x, other)
            best[kind] = min(best[kind], time.perf_counter() - start)
    return _winner(best)


# Timed choices and two processes. A timing can pick differently in two processes, and the kinds
# round differently, so two runs of one script would differ in the last bits. Three rules keep
# that to near ties of real work (deterministic mode rules it out): GEMMs below these sizes, where
# a few microseconds of noise decide and nothing is gained, take addmm untimed; another kind must
# beat addmm by _MARGIN; and a fixed rule, not a timing, picks the packed kernel (_with_packed).
_MIN_TIMED_STEP_FLOPS = 1 << 18  # [32, 64] x [64, 64]
_MIN_TIMED_BULK_FLOPS = 1 << 22
_MARGIN = 1.15


def _winner(seconds: dict[str, float]) -> str:
    """addmm unless another kind took under 1 / _MARGIN of its time (then the fastest)."""
    fastest = min(seconds, key=seconds.get)
    return fastest if seconds[fastest] * _MARGIN < seconds["addmm"] else "addmm"


# (op, operand shapes, dtype, threads) -> "addmm" or "onednn", for the bulk GEMMs around the loops
_bulk_kinds: dict[tuple, str] = {}


def next_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _forced_kind() -> str | None:
    forced = os.environ.get("TRIT_RNN_CPU_GEMM", "auto")
    if forced not in ("auto", "addmm", "onednn", "packed"):
        raise ValueError(f"TRIT_RNN_CPU_GEMM must be auto, addmm, onednn or packed; got {forced!r}")
    return None if forced == "auto" else forced


def packed_runs(x: torch.Tensor) -> bool:
    """Whether the compiled loops' packed AVX2 kernel (csrc/step_gemm.cpp, `packed_matmul`) can
    run this bulk GEMM: float32 CPU tensors, the loops built, x86 with AVX2 and FMA."""
    return (
        x.dtype == torch.float32
        and eager.runs_eagerly(x)  # plain tensors with data: a C++ op with no fake kernel
        and compiled_loops.applies(x)
        and _packed_built()
    )


@cache
def _packed_built() -> bool:
    return bool(compiled_loops.loops().packed_gemm_available())


def _with_packed(
    runs: dict, operand: torch.Tensor, packed: Callable[[], torch.Tensor], default: bool
) -> dict:
    """runs plus the packed kernel where it can run, as the only one where it is the default
    (`default` for this op, and csrc/step_gemm.cpp's rule for this CPU: not Intel's)."""
    if not packed_runs(operand):
        return runs
    if default and _forced_kind() is None and compiled_loops.loops().packed_gemm_preferred():
        return {"packed": packed}
    return {**runs, "packed": packed}


def _faster(op: str, operands: tuple[torch.Tensor, ...], runs: dict[str, Callable[[], torch.Tensor]]):
    """The result of the fastest of `runs` (kind -> the GEMM) for this op and shape. The first call
    of a shape times every kind on the real operands (twice each, interleaved) and keeps the
    choice; TRIT_RNN_CPU_GEMM forces one, and deterministic mode takes addmm (see step_kind)
    unless the packed kernel is the only one (`_with_packed`).

    A shape is keyed with its long dimension M (rows: steps x batch) rounded up to a power of two,
    so that batches of varying length or ragged segments (a new M nearly every call) share a few
    timed entries instead of timing every call."""
    forced = _forced_kind()
    if forced is not None:
        return runs.get(forced, runs["addmm"])()  # "packed" where it cannot run: addmm
    if len(runs) == 1:  # the packed kernel where it is the default: a fixed rule, deterministic
        return next(iter(runs.values()))()
    if torch.are_deterministic_algorithms_enabled():
        return runs["addmm"]()
    if not eager.runs_eagerly(*operands):
        return runs["onednn"]()  # traced (aot_autograd, opcheck): symbolic shapes, nothing to time
    rows, *rest = operands[0].shape  # M, then N or K
    other = operands[1].shape[1:] if op == "weight_grad" else operands[1].shape  # without M
    flops = 2 * operands[0].numel() * (operands[1].shape[0] if op == "linear" else operands[1].shape[-1])
    if flops < _MIN_TIMED_BULK_FLOPS:
        return runs["addmm"]()
    key = (op, next_pow2(rows), *rest, *other, operands[0].dtype, torch.get_num_threads())
    if key in _bulk_kinds:
        return runs[_bulk_kinds[key]]()
    seconds, results = {}, {}
    for _ in range(2):
        for kind, run in runs.items():
            results.pop(kind, None)  # so that a reused buffer is free again, as in later calls
            start = time.perf_counter()
            results[kind] = run()
            seconds[kind] = min(seconds.get(kind, float("inf")), time.perf_counter() - start)
    _bulk_kinds[key] = _winner(seconds)
    return results[_bulk_kinds[key]]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [M, K] @ weight^T [K, N] + bias [N]."""
    if not (onednn_runs(x) and x.numel() and weight.numel()):
        return torch.nn.functional.linear(x, weight, bias)
    return _faster("linear", (x, weight), _with_packed({
        "onednn": lambda: torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], ""),
        "addmm": lambda: _addmm_into_workspace(x, weight, bias),
    }, x, lambda: compiled_loops.loops().packed_matmul(x, weight.t(), bias), default=True))  # fmt: skip


def _addmm_into_workspace(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ weight^T + bias into one of the compiled loops' reused buffers: the projection of a
    whole sequence is tens of MB, and a fresh tensor that size pays its page faults."""
    out = compiled_loops.workspace_empty((x.shape[0], weight.shape[0]), x.dtype)
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


def linear_input_grad(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """grad [M, N] @ weight [N, K] (oneDNN takes the transposed weight, contiguous)."""
    if not (onednn_runs(grad) and grad.numel() and weight.numel()):
        return grad @ weight
    return _faster("input_grad", (grad, weight), _with_packed({
        "onednn": lambda: torch.ops.mkldnn._linear_pointwise(grad, weight.t().contiguous(), None, "none", [], ""),
        "addmm": lambda: grad @ weight,
    }, grad, lambda: compiled_loops.loops().packed_matmul(grad, weight, None), default=True))  # fmt: skip


def linear_weight_grad(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """grad^T [N, M] @ x [M, K], a long reduction over M (the weight gradient of x W^T, and of
    every time loop's weight: sum_t d_t^T h_{t-1}), contiguous.

    oneDNN's linear copies its input operand contiguous (a transposed [*, M] copy, slow: 30 ms
    for [384, 32000]), so the narrower of the two goes there: for N > K it computes
    (x^T grad)^T. At M = 32000 on one core of the AMD machine (wall time): [N, K] = [384, 128] (a
    GRU's weight_hh) 55.5 -> 22.6 ms, [512, 128] (an LSTM's) 69.3 -> 28.4 ms, [128, 2] (an input
    size-2 projection's) 5.6 -> 0.5 ms; MKL's grad.t() @ x took 35.8, 48.4 and 6.9 ms there, but
    17.9 against oneDNN's 27.7 ms for the LSTM's on the Intel machine (2 threads)."""
    if _narrow_kernel_runs(grad, x):
        return compiled_loops.loops().narrow_weight_grad(grad, x)
    if not (onednn_runs(grad) and x.dtype == grad.dtype and grad.numel() and x.numel()):
        return _mkl_weight_grad(grad, x)  # also the empty reductions (T = 1) oneDNN has no primitive for
    linear = torch.ops.mkldnn._linear_pointwise

    def onednn():
        if grad.shape[1] > x.shape[1]:
            return linear(x.t().contiguous(), grad.t(), None, "none", [], "").t().contiguous()
        return linear(grad.t().contiguous(), x.t(), None, "none", [], "")

    # not the packed kernel unless forced: MKL's was faster at this long reduction on the AMD machine
    runs = {"onednn": onednn, "addmm": lambda: _mkl_weight_grad(grad, x)}
    packed = lambda: compiled_loops.loops().packed_matmul(grad.t(), x, None)  # noqa: E731
    return _faster("weight_grad", (grad, x), _with_packed(runs, grad, packed, default=False))


_NARROW = 16  # below this many columns of x, MKL's grad^T @ x is the slow orientation
_NARROW_KERNEL_COLUMNS = 8  # the widest x of the compiled loops' narrow_weight_grad


def _narrow_kernel_runs(grad: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether grad^T x goes to the compiled loops' kernel for an x of at most 8 columns
    (csrc/narrow_grad.cpp: one pass over grad, deterministic): float32 operands where the packed
    kernel runs, unless TRIT_RNN_CPU_GEMM forces addmm or onednn. At M = 3200, N = 128 on the AMD
    VM it took 30-73 us for K = 1..8 against 67-205 us for MKL's faster orientation; at M = 320,000
    and K = 2 both it and oneDNN read grad at memory speed (13.8 and 12.6 ms)."""
    return (
        1 <= x.shape[1] <= _NARROW_KERNEL_COLUMNS
        and grad.dtype == x.dtype
        and (grad.stride(1) == 1 or grad.shape[1] == 1)
        and _forced_kind() in (None, "packed")
        and packed_runs(grad)
    )


def _mkl_weight_grad(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """grad^T @ x on MKL, for a narrow x (K < _NARROW) as (x^T grad)^T: MKL's [N, M] x [M, 2]
    ran at 5.6 GFLOP/s on the AMD machine (577 against 99 us at M = 3200, N = 128; 12.2 against
    5.4 ms at M = 32000), while for K >= 128 the two orientations were within 10%."""
    if x.shape[1] < _NARROW and grad.shape[1] > x.shape[1]:
        return (x.t() @ grad).t().contiguous()
    return grad.t() @ x
