"""Throughput charts drawn from bench rows (fresh, or read back from the CSV):

    throughput_vs_seq_len.png   tokens/s against T at the sweep's base hidden size
    throughput_vs_hidden.png    tokens/s against H at the sweep's base sequence length

Log axes, one panel per mode (forward, forward+backward), one line per cell and backend (and
dtype/batch when the data has several); this library's cells solid, peers dashed; the p20-p80 band
shaded.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

MODE_TITLES = {"forward": "forward (inference)", "train": "forward + backward (training)"}
AXES = {
    "seq_len": ("seq_len", "sequence length T (steps)", "hidden_size", "H"),
    "hidden": ("hidden_size", "hidden size H", "seq_len", "T"),
}


def _device_label(rows: list[dict]) -> str:
    row = rows[0]
    kind = "GPU" if row.get("device") == "cuda" else "CPU"
    threads = f", {row['threads']} threads" if kind == "CPU" and row.get("threads") else ""
    return f"{kind} results: {row.get('device_name', '?')}{threads}"


def _line_key(row: dict, several_dtypes: bool, several_batches: bool) -> str:
    key = row["label"]
    if several_dtypes:
        key += f" {row['dtype']}"
    if several_batches:
        key += f" B={row['batch']}"
    return key


def throughput_chart(rows: list[dict], axis: str, path: Path | str) -> Path | None:
    """One chart of tokens/s against `axis` ("seq_len" or "hidden"); None when no row belongs to
    that sweep."""
    x_column, x_label, fixed_column, fixed_name = AXES[axis]
    rows = [r for r in rows if axis in str(r.get("sweep", "")).split("+")]
    if not rows:
        return None
    modes = [m for m in MODE_TITLES if any(r["mode"] == m for r in rows)]
    several_dtypes = len({r["dtype"] for r in rows}) > 1
    several_batches = len({r["batch"] for r in rows}) > 1
    labels = sorted({_line_key(r, several_dtypes, several_batches) for r in rows})
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    colors = {label: cmap(i % cmap.N) for i, label in enumerate(labels)}

    fig, axes = plt.subplots(1, len(modes), figsize=(6.5 * len(modes), 4.8), squeeze=False, sharey=True)
    for ax, mode in zip(axes[0], modes, strict=True):
        lines = defaultdict(list)
        for r in rows:
            if r["mode"] == mode:
                lines[(_line_key(r, several_dtypes, several_batches), r["kind"])].append(r)
        for (label, kind), points in sorted(lines.items(), key=lambda kv: (kv[0][1] != "ours", kv[0][0])):
            points.sort(key=lambda r: r[x_column])
            xs = [r[x_column] for r in points]
            style = "-" if kind == "ours" else "--"
            ax.plot(xs, [r["tokens_per_s"] for r in points], style, marker="o", ms=4,
                    color=colors[label], label=label + ("" if kind == "ours" else " (peer)"))  # fmt: skip
            ax.fill_between(xs, [r["tokens_per_s_p20"] for r in points], [r["tokens_per_s_p80"] for r in points],
                            color=colors[label], alpha=0.15, lw=0)  # fmt: skip
        fixed = sorted({r[fixed_column] for r in rows if r["mode"] == mode})
        batch = sorted({r["batch"] for r in rows})
        ax.set_xscale("log", base=2 if axis == "hidden" else 10)
        ax.set_yscale("log")
        ticks = sorted({r[x_column] for r in rows})
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(x_label)
        ax.set_title(
            f"{MODE_TITLES[mode]}, {fixed_name}={'/'.join(map(str, fixed))}, B={'/'.join(map(str, batch))}"
        )
        ax.grid(True, which="both", alpha=0.3)
    # One legend beside the panels: with a dozen contestants a legend inside covers the lines.
    handles, names = {}, []
    for ax in axes[0]:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            if name not in handles:
                handles[name] = handle
                names.append(name)
    fig.legend([handles[n] for n in names], names, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    axes[0][0].set_ylabel("throughput (tokens/s = B*T / seconds, median)")
    fig.suptitle(f"trit_rnn throughput vs {x_label.split(' (')[0]} ({_device_label(rows)})", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def throughput_charts(rows: list[dict], out_dir: Path | str) -> list[Path]:
    out_dir = Path(out_dir)
    written = [
        throughput_chart(rows, "seq_len", out_dir / "throughput_vs_seq_len.png"),
        throughput_chart(rows, "hidden", out_dir / "throughput_vs_hidden.png"),
    ]
    return [p for p in written if p is not None]


def profile_chart(records: list[dict], path: Path | str) -> Path:
    """Peak memory of the recurrence and seconds per step against T, with and without
    checkpointing (records from perf.profile.run_profile)."""
    first = records[0]
    memory_label = {
        "saved_for_backward": "bytes saved for backward (MiB)",
        "max_allocated": "peak GPU memory allocated (MiB)",
    }[first["memory_kind"]]
    fig, (ax_mem, ax_time) = plt.subplots(1, 2, figsize=(12, 4.6))
    lines = defaultdict(list)
    for r in records:
        lines["checkpointed (K = ceil(sqrt(T)))" if r["checkpoint"] else "no checkpointing"].append(r)
    for label, points in sorted(lines.items(), reverse=True):
        points.sort(key=lambda r: r["seq_len"])
        xs = [r["seq_len"] for r in points]
        style = "--" if "checkpointed" in label else "-"
        ax_mem.plot(xs, [r["peak_bytes"] / 2**20 for r in points], style, marker="o", label=label)
        ax_time.plot(xs, [r["seconds_per_step"] * 1e6 for r in points], style, marker="o", label=label)
        ax_time.fill_between(xs, [r["seconds_per_step_p20"] * 1e6 for r in points],
                             [r["seconds_per_step_p80"] * 1e6 for r in points], alpha=0.15, lw=0)  # fmt: skip
    ticks = sorted({r["seq_len"] for r in records})
    for ax in (ax_mem, ax_time):
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("sequence length T (steps)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax_mem.set_yscale("log")
    ax_mem.set_ylabel(memory_label)
    ax_mem.set_title("memory of the recurrence")
    ax_time.set_ylabel("microseconds per step (forward + backward, median)")
    ax_time.set_ylim(bottom=0)
    ax_time.set_title("time per step")
    kind = "GPU" if first["device"] == "cuda" else "CPU"
    fig.suptitle(
        f"{first['cell']}[{first['backend']}] {first.get('scope', 'module')} H={first['hidden_size']} B={first['batch']} "
        f"I={first['input_size']} {first['dtype']} ({kind} results: {first['device_name']})",
        fontsize=11,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
