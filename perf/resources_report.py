"""`trit-rnn resources`: static resources of the kernels compiled for a GPU target without a GPU
(kernels/aot.py), each record with the GPU time model's estimate (perf/gpu_model.py), as a table or
JSON, and optionally the max-hidden-size chart with its records (perf/resource_chart.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from trit_rnn.kernels import aot
from trit_rnn.kernels.specs import Config

from . import gpu_model

# Bracket the limits: one SM holds a dense W up to H~256 bf16 / ~180 fp32 (reference/gpu.md). Sizes
# that pad to the same block (192 and 256, 320 and 384) compile once.
DEFAULT_HIDDEN = (64, 128, 192, 256, 320, 384)
# The configs that matter at these sizes: 8 warps (4 spill at fp32 H=128), one stage, BLOCK_B 16
# and 32 (--all-configs: every autotune candidate, several times longer).
DEFAULT_CONFIGS = (Config(16, 8, 1), Config(32, 8, 1))


def collect(
    target: str,
    hidden_sizes=DEFAULT_HIDDEN,
    dtypes=("float32", "bfloat16"),
    configs=DEFAULT_CONFIGS,
    batch: int = 16,
    records_file: Path | str | None = None,
    compile_over_budget: bool = False,
    compile_records: Callable[..., list[dict]] = aot.collect_in_subprocess,
    lengths: bool = False,
) -> list[dict]:
    """AOT records for target (or the records saved in records_file), each with
    model_us_per_step at `batch` (None where the model does not apply). lengths: the kernels'
    variable-length variants (names ending in +lengths) instead of the plain ones.

    Configs whose static shared-memory estimate exceeds the target's limit (W alone is over it at
    fp32 H>128 and at H>256) are reported as not fitting without being compiled, unless
    compile_over_budget: those kernels take minutes each to compile, and cannot fit anyway."""
    if records_file is not None:
        records = json.loads(Path(records_file).read_text())
    else:
        records = compile_records(
            target, hidden_sizes=list(hidden_sizes), dtypes=list(dtypes),
            configs=None if configs is None else list(configs), skip_over_budget=not compile_over_budget,
            **({"lengths": True} if lengths else {}),
        )  # fmt: skip
    for r in records:
        r["model_us_per_step"] = gpu_model.step_microseconds(r, batch)
        r["model_batch"] = batch
    return records


def format_resources(records: list[dict], target: str, batch: int) -> str:
    column = (gpu_model.column_header(batch), lambda r: gpu_model.format_us(r.get("model_us_per_step")))
    return "\n".join(
        [
            f"static resources for {target}, compiled without a GPU (not timings)",
            aot.format_table(records, [column]),
            f"'{column[0]}': {gpu_model.LABEL}: an estimate from these resources (perf/gpu_model.py); "
            f"'-' where it does not apply (no fit, not {gpu_model.MODEL_TARGET}, float64)",
        ]
    )


def write_chart(records: list[dict], target: str, out_dir: Path | str) -> tuple[Path, Path]:
    from . import resource_chart  # matplotlib (the `perf` extra) only when a chart is asked for

    return resource_chart.write_chart_and_records(records, target, out_dir)
