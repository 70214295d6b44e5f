"""The learning-curve chart of a training run: evaluation loss against step, one line per cell
(this library's cells solid, peers dashed, as the throughput charts), the task's baseline drawn
as a horizontal line; a second panel with the accuracy when the task has one."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .. import registry  # noqa: E402


def _kind(cell: str) -> str:
    try:
        return registry.get(cell).kind
    except ValueError:
        return "ours"


def learning_curve_chart(rows: list[dict], path: Path, *, title: str, baseline: float, loss_name: str,
                         accuracy_name: str | None = None) -> Path:  # fmt: skip
    lines = defaultdict(list)
    for row in rows:
        if row.get("eval_loss") is not None:
            lines[row["cell"]].append(row)
    panels = 2 if accuracy_name and any(r.get("accuracy") is not None for r in rows) else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.6), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(lines) <= 10 else "tab20")
    ax = axes[0][0]
    for k, (cell, points) in enumerate(sorted(lines.items(), key=lambda kv: (_kind(kv[0]) != "ours", kv[0]))):
        points.sort(key=lambda r: r["step"])
        style = "-" if _kind(cell) == "ours" else "--"
        label = cell + ("" if _kind(cell) == "ours" else " (peer)")
        color = cmap(k % cmap.N)
        ax.plot(
            [r["step"] for r in points], [r["eval_loss"] for r in points], style, color=color, label=label
        )
        if panels == 2:
            acc = [(r["step"], r["accuracy"]) for r in points if r.get("accuracy") is not None]
            axes[0][1].plot([s for s, _ in acc], [a for _, a in acc], style, color=color, label=label)
    ax.axhline(baseline, color="black", lw=1, ls=":", label=f"baseline {baseline:.4g}")
    ax.set_yscale("log")
    ax.set_xlabel("training step (batches)")
    ax.set_ylabel(f"evaluation {loss_name}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if panels == 2:
        axes[0][1].set_xlabel("training step (batches)")
        axes[0][1].set_ylabel(f"accuracy: {accuracy_name}")
        axes[0][1].set_ylim(0, 1.02)
        axes[0][1].grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
