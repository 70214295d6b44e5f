"""Metrics on disk: one row per evaluation per cell, in OUT/<run>.jsonl and OUT/<run>.csv, and the
final result per cell in OUT/<run>_results.json.

Rows of cells that are not part of the current run are kept (cells trained one command at a time
share one file and one chart); rerunning a cell replaces its rows.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

COLUMNS = ("task", "cell", "step", "seconds", "train_loss", "eval_loss", "accuracy", "baseline_loss")


def clean(value):
    """JSON-safe: non-finite floats become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_rows(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _merge(existing: list[dict], ours: dict[str, list[dict]]) -> list[dict]:
    kept = [row for row in existing if row.get("cell") not in ours]
    return kept + [row for cell in ours for row in ours[cell]]


def write_rows(
    out: Path, run_name: str, rows_by_cell: dict[str, list[dict]]
) -> tuple[Path, Path, list[dict]]:
    """Merges this run's rows into OUT/<run>.jsonl and rewrites OUT/<run>.csv; returns the paths and
    every row now in the file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jsonl, csv_path = out / f"{run_name}.jsonl", out / f"{run_name}.csv"
    rows = _merge(read_rows(jsonl), rows_by_cell)
    jsonl.write_text("".join(json.dumps({k: clean(v) for k, v in row.items()}) + "\n" for row in rows))
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})
    return jsonl, csv_path, rows


def write_results(out: Path, run_name: str, results: list[dict]) -> Path:
    """Merges this run's final results (one dict per cell) into OUT/<run>_results.json."""
    path = Path(out) / f"{run_name}_results.json"
    existing = json.loads(path.read_text()) if path.exists() else []
    cells = {r["cell"] for r in results}
    merged = [r for r in existing if r.get("cell") not in cells] + results
    path.write_text(json.dumps(merged, indent=1) + "\n")
    return path
