"""The chart of `trit-rnn resources --chart`: the largest hidden size whose compiled kernel fits
(no register spills, shared memory within the limit) per kernel and dtype, from static AOT records
(kernels/aot.py) compiled without a GPU. The records are written as JSON beside the chart so that
it can be redrawn (`trit-rnn resources --records FILE --chart`)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def chart_path(out_dir: Path | str, target: str) -> Path:
    return Path(out_dir) / f"resources_max_hidden_{target}.png"


def records_path(out_dir: Path | str, target: str) -> Path:
    return Path(out_dir) / f"resources_{target}.json"


def _kernel_records(records: list[dict]):
    # "family:compile_specs"-style names are records of a step that failed before any kernel.
    return [r for r in records if ":" not in str(r.get("kernel", ":"))]


def max_fitting_hidden(records: list[dict]) -> dict[tuple[str, str], tuple[int | None, list[str]]]:
    """{(kernel, dtype): (largest hidden size with a fitting config, the configs that fit there)};
    (None, []) when no compiled config of that kernel and dtype fits."""
    result: dict[tuple[str, str], tuple[int | None, list[str]]] = {}
    for r in _kernel_records(records):
        group = (r["kernel"], r["dtype"])
        best, configs = result.setdefault(group, (None, []))
        if r.get("error") or not r.get("fits"):
            continue
        hidden = int(r["hidden_size"])
        if best is None or hidden > best:
            result[group] = (hidden, [r["config"]])
        elif hidden == best and r["config"] not in configs:
            configs.append(r["config"])
    return result


def _ordered(values):
    return list(dict.fromkeys(values))


def draw_max_hidden_chart(records: list[dict], target: str, path: Path | str) -> Path:
    """Grouped bars: one group per kernel, one bar per dtype, height = largest fitting H."""
    path = Path(path)
    found = max_fitting_hidden(records)
    kernel_records = _kernel_records(records)
    kernels = _ordered(r["kernel"] for r in kernel_records)
    dtypes = _ordered(r["dtype"] for r in kernel_records)
    swept = sorted({int(r["hidden_size"]) for r in kernel_records if "hidden_size" in r})
    configs = _ordered(r["config"] for r in kernel_records if "config" in r)

    fig, ax = plt.subplots(figsize=(8, 5))
    width = 0.8 / max(1, len(dtypes))
    for d, dtype in enumerate(dtypes):
        xs, heights = [], []
        for k, kernel in enumerate(kernels):
            xs.append(k + (d - (len(dtypes) - 1) / 2) * width)
            heights.append(found.get((kernel, dtype), (None, []))[0] or 0)
        bars = ax.bar(xs, heights, width, label=dtype)
        for bar, height in zip(bars, heights, strict=True):
            text = f"H={height}" if height else "nothing fits"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, height), ha="center", va="bottom",
                        xytext=(0, 2), textcoords="offset points", fontsize=8)  # fmt: skip
    ax.set_xticks(range(len(kernels)), kernels)
    if swept:
        ax.set_yticks(swept)
        ax.set_ylim(0, max(swept) * 1.12)
    ax.set_xlabel("kernel")
    ax.set_ylabel("largest hidden size H that fits")
    ax.set_title(
        f"Largest fitting hidden size per kernel, {target}\n"
        f"static ptxas data compiled without a GPU for {target} (not timings)",
        fontsize=10,
    )
    ax.legend(title="dtype")
    notes = [
        "fits: no register spills and shared memory within the limit, for at least one config",
        f"hidden sizes: {', '.join(map(str, swept))}; configs: {'; '.join(configs)}",
    ]
    if any(r.get("skipped") for r in kernel_records):
        notes.append("sizes whose static shared-memory estimate exceeds the limit were not compiled")
    fig.text(0.01, 0.01, "\n".join(notes), fontsize=7)
    fig.tight_layout(rect=(0, 0.02 + 0.025 * len(notes), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_records(records: list[dict], path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1))
    return path


def read_records(path: Path | str) -> list[dict]:
    return json.loads(Path(path).read_text())


def write_chart_and_records(records: list[dict], target: str, out_dir: Path | str) -> tuple[Path, Path]:
    """plots/resources_max_hidden_<target>.png and plots/resources_<target>.json in out_dir."""
    records = [r for r in records if r.get("target", target) == target]
    chart = draw_max_hidden_chart(records, target, chart_path(out_dir, target))
    data = write_records(records, records_path(out_dir, target))
    return chart, data
