"""Side-by-side timing. Every contestant is warmed up, then timed in interleaved rounds so that the
machine's noise hits all of them alike; results are medians with 20th/80th percentiles.

On a CPU one sample is one call timed with perf_counter. On a GPU one sample is the median of
triton.testing.do_bench over a short window (it synchronises and flushes the L2 between calls).
`bench` is injectable so the GPU path runs in tests on a CPU-only machine.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Timing:
    name: str
    seconds: list

    @property
    def median(self) -> float:
        return float(np.median(self.seconds))

    @property
    def p20(self) -> float:
        return float(np.percentile(self.seconds, 20))

    @property
    def p80(self) -> float:
        return float(np.percentile(self.seconds, 80))


def time_interleaved(contestants: dict, rounds: int = 7, warmup: int = 1) -> dict[str, Timing]:
    """CPU: contestants maps name -> zero-argument callable (one full unit of work).

    Python's garbage collector runs once before the warm-up and is paused until the last round (as
    timeit does): otherwise a collection triggered by one contestant's garbage lands in whichever
    call happens to be running. Not once per round: a full collection walks every Python object
    (0.16 s here with torch imported), and the call right after it ran 2x slower (23 against 11 ms
    for an OrthogonalRNN step at T=100), a penalty that always fell on the round's first contestant."""
    results = {name: Timing(name, []) for name in contestants}
    gc.collect()
    gc.disable()
    try:
        for fn in contestants.values():
            for _ in range(warmup):
                fn()
        for _ in range(rounds):
            for name, fn in contestants.items():
                start = time.perf_counter()
                fn()
                results[name].seconds.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return results


def triton_do_bench(fn: Callable[[], object]) -> float:
    """Median milliseconds of fn on the current GPU (triton.testing.do_bench)."""
    import triton.testing

    return triton.testing.do_bench(fn, warmup=5, rep=20, return_mode="median")


def time_interleaved_gpu(
    contestants: dict,
    rounds: int = 7,
    warmup: int = 1,
    bench: Callable[[Callable[[], object]], float] = triton_do_bench,
) -> dict[str, Timing]:
    """GPU: like time_interleaved, each sample a do_bench median (milliseconds -> seconds)."""
    for fn in contestants.values():
        for _ in range(warmup):
            fn()
    results = {name: Timing(name, []) for name in contestants}
    for _ in range(rounds):
        for name, fn in contestants.items():
            results[name].seconds.append(bench(fn) * 1e-3)
    return results
