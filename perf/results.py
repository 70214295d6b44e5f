"""Results files: a long-format CSV, one row per measurement (one contestant at one shape), each
row carrying the device, the library versions and the git revision it was measured with."""

from __future__ import annotations

import csv
import datetime
import platform
import subprocess
from pathlib import Path

import torch

INT_COLUMNS = ("threads", "batch", "seq_len", "hidden_size", "input_size", "rounds")
FLOAT_COLUMNS = ("median_s", "p20_s", "p80_s", "tokens_per_s", "tokens_per_s_p20", "tokens_per_s_p80")


def git_revision(path: Path | None = None) -> str:
    """Short revision of the checkout holding this package, "+dirty" when it has local changes;
    "unknown" outside a git checkout."""
    cwd = path or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def environment() -> dict:
    """The columns every row gets: versions, git revision, time of the run."""
    import triton

    from .. import __version__

    return {
        "trit_rnn": __version__,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "git_rev": git_revision(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_csv(rows: list[dict], path: Path | str, env: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = environment() if env is None else env
    full = [{**row, **env} for row in rows]
    columns = list(dict.fromkeys(key for row in full for key in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(full)
    return path


def read_csv(path: Path | str) -> list[dict]:
    """Rows as dicts, numeric columns converted back to numbers."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"results file {path} does not exist")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"results file {path} has no rows")
    missing = [
        c for c in ("label", "kind", "mode", "seq_len", "hidden_size", "tokens_per_s") if c not in rows[0]
    ]
    if missing:
        raise ValueError(f"results file {path} is not a trit-rnn bench CSV: missing columns {missing}")
    for row in rows:
        for column in INT_COLUMNS:
            if row.get(column) not in (None, ""):
                row[column] = int(row[column])
        for column in FLOAT_COLUMNS:
            if row.get(column) not in (None, ""):
                row[column] = float(row[column])
    return rows
