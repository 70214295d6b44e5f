"""The throughput sweep: every registered cell and backend against its peers, over sequence length
and hidden size (and batch, dtype, forward vs forward+backward), timed side by side.

One *shape* (batch, seq_len, hidden_size, dtype, mode) is one interleaved timing of every
contestant that can run it. The sweep over sequence length runs at `base_hidden`, the sweep over
hidden size at `base_seq_len`; each row says which sweep(s) its shape belongs to.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from .. import registry
from .device import DeviceInfo
from .timing import Timing, time_interleaved, time_interleaved_gpu

log = logging.getLogger(__name__)

MODES = ("forward", "train")
DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


@dataclass(frozen=True)
class Shape:
    batch: int
    seq_len: int
    hidden_size: int
    input_size: int
    dtype: str
    mode: str
    sweep: str  # "seq_len", "hidden" or "seq_len+hidden"

    @property
    def tokens(self) -> int:
        return self.batch * self.seq_len


@dataclass(frozen=True)
class Contestant:
    cell: str
    backend: str

    @property
    def label(self) -> str:
        return f"{self.cell}[{self.backend}]"


@dataclass
class SweepSpec:
    cells: list[str]
    seq_lens: list[int]
    hidden_sizes: list[int]
    base_seq_len: int
    base_hidden: int
    batches: list[int]
    dtypes: list[str]
    modes: list[str]
    rounds: int = 5
    input_size: int | None = None  # None: the hidden size
    # A contestant whose warmed-up call takes longer than this is left out of this shape and of
    # every costlier one (same mode, dtype and batch): the sweep's time stays bounded when a slow
    # peer is installed.
    max_call_seconds: float = 2.0

    def shapes(self) -> list[Shape]:
        points: dict[tuple[int, int], set[str]] = {}
        for seq_len in self.seq_lens:
            points.setdefault((seq_len, self.base_hidden), set()).add("seq_len")
        for hidden in self.hidden_sizes:
            points.setdefault((self.base_seq_len, hidden), set()).add("hidden")
        shapes = []
        for (seq_len, hidden), sweeps in sorted(points.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            for batch in self.batches:
                for dtype in self.dtypes:
                    for mode in self.modes:
                        shapes.append(
                            Shape(
                                batch,
                                seq_len,
                                hidden,
                                self.input_size or hidden,
                                dtype,
                                mode,
                                "+".join(sorted(sweeps, reverse=True)),
                            )
                        )
        return shapes


def default_spec(device: DeviceInfo, cells: list[str] | None = None) -> SweepSpec:
    """The README's main job: on the 2-core CPU it finishes in a few minutes. On a GPU, longer
    sequences, larger hidden sizes and float16 (where cuDNN runs its persistent kernels)."""
    cells = cells or registry.names()
    if device.is_gpu:
        return SweepSpec(
            cells,
            seq_lens=[256, 1024, 4096, 16384],
            hidden_sizes=[64, 128, 256, 512, 1024],
            base_seq_len=1024,
            base_hidden=256,
            batches=[32],
            dtypes=["float32", "float16"],
            modes=list(MODES),
            rounds=7,
        )
    return SweepSpec(
        cells,
        # T=3000 and a hidden sweep at T=200 took the main job to 6 min 37 s from a fresh clone on
        # an AMD EPYC VM (its bench 296 s; T=3000 alone 65 s of timed calls)
        seq_lens=[100, 300, 1000],
        hidden_sizes=[32, 64, 128, 256, 512],
        base_seq_len=100,
        base_hidden=128,
        batches=[32],
        dtypes=["float32"],
        modes=list(MODES),
        rounds=3,  # 4 rounds took 3 min 50 s with the gated cells: over the main job's 5 minutes
        max_call_seconds=1.5,
    )


def contestants_for(
    cells: Iterable[str], device: DeviceInfo, dtype: str, skipped: dict[str, str] | None = None
) -> list[Contestant]:
    """Every (cell, backend) that can run on device in dtype; the others go to `skipped` with why."""
    chosen = []
    for name in cells:
        spec = registry.get(name)
        for backend in spec.backends:
            ok, reason = spec.availability(backend, device.type, DTYPES[dtype])
            if ok:
                chosen.append(Contestant(name, backend))
            elif skipped is not None:
                skipped[f"{Contestant(name, backend).label} {dtype}"] = reason
    return chosen


def _workload(model: torch.nn.Module, x: torch.Tensor, mode: str) -> Callable[[], None]:
    if mode == "forward":

        def forward():
            with torch.no_grad():
                model(x)

        return forward

    def train_step():
        model.zero_grad(set_to_none=True)
        out, _ = model(x)
        out.float().sum().backward()

    return train_step


@dataclass
class SweepResult:
    rows: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    # (label, mode, dtype, batch) -> cost (T * H^2) of the shape where it exceeded max_call_seconds
    too_slow: dict[tuple, int] = field(default_factory=dict)
    # (label, mode, dtype, batch) -> seconds per unit of cost at the costliest shape measured so far
    rate: dict[tuple, float] = field(default_factory=dict)
    # (label, mode, dtype, batch) -> the hidden size of that shape
    rate_hidden: dict[tuple, int] = field(default_factory=dict)


# T * H^2 overstates what doubling H costs a CPU time loop (1.9-2.6x measured for the gated cells
# at H 128 -> 256, not 4x), so a prediction across hidden sizes leaves a contestant out only when
# it exceeds the budget by this factor (nearer the budget, one real call decides); across sequence
# lengths, where time is linear in T, the budget itself.
_PREDICTION_MARGIN = 2.0


def _cost(shape: Shape) -> int:
    return shape.seq_len * shape.hidden_size**2


def _seconds(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _row(shape: Shape, contestant: Contestant, timing: Timing, device: DeviceInfo) -> dict:
    spec = registry.get(contestant.cell)
    return {
        "cell": contestant.cell,
        "backend": contestant.backend,
        "label": contestant.label,
        "kind": spec.kind,
        "device": device.type,
        "device_name": device.name,
        "threads": device.threads,
        "dtype": shape.dtype,
        "mode": shape.mode,
        "batch": shape.batch,
        "seq_len": shape.seq_len,
        "hidden_size": shape.hidden_size,
        "input_size": shape.input_size,
        "sweep": shape.sweep,
        "rounds": len(timing.seconds),
        "median_s": timing.median,
        "p20_s": timing.p20,
        "p80_s": timing.p80,
        "tokens_per_s": shape.tokens / timing.median,
        # the slow end of the band is the 80th percentile of time
        "tokens_per_s_p20": shape.tokens / timing.p80,
        "tokens_per_s_p80": shape.tokens / timing.p20,
        "samples_s": ";".join(f"{s:.6g}" for s in timing.seconds),
    }


def run_shape(
    shape: Shape,
    contestants: list[Contestant],
    device: DeviceInfo,
    rounds: int,
    timer: Callable[..., dict[str, Timing]],
    result: SweepResult,
    seed: int = 0,
    max_call_seconds: float = float("inf"),
) -> None:
    """Build every contestant for one shape and run it once (a contestant that raises is reported
    in result.failed and left out, one slower than max_call_seconds in result.skipped), then time
    the rest interleaved."""
    dtype = DTYPES[shape.dtype]
    torch.manual_seed(seed)
    x = torch.randn(shape.seq_len, shape.batch, shape.input_size, device=device.torch_device, dtype=dtype)
    work = {}
    for contestant in contestants:
        spec = registry.get(contestant.cell)
        slow_key = (contestant.label, shape.mode, shape.dtype, shape.batch)
        where = f"{contestant.label} {shape.dtype} {shape.mode} B={shape.batch} T={shape.seq_len} H={shape.hidden_size}"
        if slow_key in result.too_slow and _cost(shape) >= result.too_slow[slow_key]:
            result.skipped[where] = "too slow at a cheaper shape"
            continue
        predicted = result.rate.get(slow_key, 0.0) * _cost(shape)
        margin = (
            _PREDICTION_MARGIN
            if result.rate_hidden.get(slow_key, shape.hidden_size) != shape.hidden_size
            else 1.0
        )
        if predicted > margin * max_call_seconds:
            result.too_slow[slow_key] = _cost(shape)
            result.skipped[where] = (
                f"too slow: ~{predicted:.1f} s per call predicted from a cheaper shape > max_call_seconds={max_call_seconds:g}"
            )
            continue
        try:
            torch.manual_seed(seed)
            model = spec.build(
                shape.input_size,
                shape.hidden_size,
                backend=contestant.backend,
                device=device.torch_device,
                dtype=dtype,
            )
            fn = _workload(model, x, shape.mode)
            # The first call may compile: a slow first call is checked once more.
            seconds = _seconds(fn)
            if seconds > max_call_seconds:
                seconds = _seconds(fn)
        except (AssertionError, NotImplementedError, RuntimeError, TypeError, ValueError) as exc:
            result.failed[where] = f"{type(exc).__name__}: {exc}"
            log.warning("bench: %s failed: %s", where, exc)
            continue
        if seconds > max_call_seconds:
            result.too_slow[slow_key] = _cost(shape)
            result.skipped[where] = (
                f"too slow: {seconds:.1f} s per call > max_call_seconds={max_call_seconds:g}"
            )
            continue
        work[contestant] = fn
    if not work:
        return
    # each contestant's probe call above was its warm-up (a fifth of a CPU shape's time at 3 rounds)
    timings = timer({c.label: fn for c, fn in work.items()}, rounds=rounds, warmup=0)
    for contestant in work:
        timing = timings[contestant.label]
        result.rows.append(_row(shape, contestant, timing, device))
        key = (contestant.label, shape.mode, shape.dtype, shape.batch)
        result.rate[key] = timing.median / _cost(shape)
        result.rate_hidden[key] = shape.hidden_size
    del work
    gc.collect()


def timer_for(device: DeviceInfo, bench: Callable | None = None) -> Callable[..., dict[str, Timing]]:
    """perf_counter rounds on a CPU; do_bench rounds on a GPU (`bench` replaces do_bench in tests)."""
    if not device.is_gpu:
        return time_interleaved
    if bench is None:
        return time_interleaved_gpu
    return lambda contestants, rounds, warmup=1: time_interleaved_gpu(
        contestants, rounds=rounds, warmup=warmup, bench=bench
    )


def run_sweep(
    spec: SweepSpec,
    device: DeviceInfo,
    *,
    timer: Callable[..., dict[str, Timing]] | None = None,
    progress: bool = True,
) -> SweepResult:
    result = SweepResult()
    timer = timer or timer_for(device)
    shapes = spec.shapes()
    for shape in tqdm(shapes, desc="bench", unit="shape", disable=not progress):
        contestants = contestants_for(spec.cells, device, shape.dtype, result.skipped)
        run_shape(
            shape, contestants, device, spec.rounds, timer, result, max_call_seconds=spec.max_call_seconds
        )
    return result
