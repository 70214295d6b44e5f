"""Side-by-side timing on the CPU: every contestant warmed up, then timed in interleaved rounds so
that the machine's noise hits all of them alike; medians with 20th/80th percentiles."""

import time
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


def time_interleaved(contestants: dict, rounds: int = 7, warmup: int = 1) -> dict:
    """contestants: name -> zero-argument callable (one full measured unit of work)."""
    for fn in contestants.values():
        for _ in range(warmup):
            fn()
    results = {name: Timing(name, []) for name in contestants}
    for _ in range(rounds):
        for name, fn in contestants.items():
            start = time.perf_counter()
            fn()
            results[name].seconds.append(time.perf_counter() - start)
    return results
