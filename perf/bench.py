"""`trit-rnn bench`: run the sweep, print the summary, write the CSV and the two charts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..memory import retain_freed_memory
from .charts import throughput_charts
from .device import DeviceInfo
from .results import write_csv
from .summary import format_summary
from .sweep import SweepResult, SweepSpec, run_sweep

CSV_NAME = "throughput.csv"


@dataclass
class BenchOutput:
    result: SweepResult
    csv_path: Path
    charts: list[Path]
    seconds: float


def run_bench(
    spec: SweepSpec, device: DeviceInfo, out_dir: Path | str, *, timer=None, progress: bool = True, echo=print
) -> BenchOutput:
    start = time.perf_counter()
    retain_freed_memory()
    result = run_sweep(spec, device, timer=timer, progress=progress)
    if not result.rows:
        raise RuntimeError(
            "bench measured nothing: "
            + "; ".join(f"{k}: {v}" for k, v in {**result.skipped, **result.failed}.items())
        )
    out_dir = Path(out_dir)
    csv_path = write_csv(result.rows, out_dir / CSV_NAME)
    charts = throughput_charts(result.rows, out_dir)
    seconds = time.perf_counter() - start
    echo(
        f"bench on {device.type} ({device.name}, {device.threads} threads), {len(result.rows)} measurements:"
    )
    echo(format_summary(result.rows))
    for key, reason in sorted(result.skipped.items()):
        echo(f"skipped {key}: {reason}")
    for key, reason in sorted(result.failed.items()):
        echo(f"FAILED {key}: {reason}")
    echo(f"wrote {csv_path} and {', '.join(str(p) for p in charts)} in {seconds:.0f} s")
    return BenchOutput(result, csv_path, charts, seconds)
