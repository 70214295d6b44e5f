"""The bench's summary table on stdout: per shape, every contestant's tokens/s with its p20-p80
band and its ratio to torch.nn.RNN measured in the same interleaved rounds."""

from __future__ import annotations

from collections import defaultdict

REFERENCE_CELL = "torch_rnn"


def _shape_key(row: dict) -> tuple:
    return (row["mode"], row["dtype"], row["batch"], row["hidden_size"], row["seq_len"])


def format_summary(rows: list[dict]) -> str:
    groups = defaultdict(list)
    for row in rows:
        groups[_shape_key(row)].append(row)
    width = max((len(r["label"]) for r in rows), default=10) + 2
    lines = [f"{'mode':<8}{'dtype':<9}{'B':>4}{'H':>6}{'T':>7}  {'contestant':<{width}}"
             f"{'tokens/s':>12} {'p20-p80':>23} {'x torch_rnn':>12}"]  # fmt: skip
    for key in sorted(groups):
        mode, dtype, batch, hidden, seq_len = key
        group = sorted(groups[key], key=lambda r: -r["tokens_per_s"])
        reference = next((r["tokens_per_s"] for r in group if r["cell"] == REFERENCE_CELL), None)
        for row in group:
            band = f"{row['tokens_per_s_p20']:,.0f}-{row['tokens_per_s_p80']:,.0f}"
            ratio = f"{row['tokens_per_s'] / reference:.2f}x" if reference else "-"
            lines.append(
                f"{mode:<8}{dtype:<9}{batch:>4}{hidden:>6}{seq_len:>7}  {row['label']:<{width}}"
                f"{row['tokens_per_s']:>12,.0f} {band:>23} {ratio:>12}"
            )
    return "\n".join(lines)
