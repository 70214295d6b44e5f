"""CPU speed of the dense recurrence, forward + backward, side by side in one process.

Contestants at B=32, T=1000, input size = H (tokens/s = B*T / seconds per forward+backward):
  OrthogonalRNN(tanh, default "exp" parametrisation, torch backend) — this library
  torch.nn.RNN(tanh)                                                — PyTorch's fused CPU RNN
  naive loop: W = matrix_exp(A - A^T) each forward, autograd through a loop over X.unbind(0)

    python perf/bench_cpu_dense.py [--hidden 128 256] [--seq-len 1000] [--batch 32] [--rounds 7]
"""

import argparse
import json
import sys

import torch
from timing import time_interleaved
from torch import nn

from trit_rnn import OrthogonalRNN


class NaiveOrthogonalRNN(nn.Module):
    """The loop a user would write: exp-map orthogonal W, autograd through every step."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input = nn.Linear(input_size, hidden_size)
        self.skew = nn.Parameter(torch.randn(hidden_size, hidden_size) * 0.01)

    def forward(self, x):
        a = self.skew.triu(1)
        w = torch.matrix_exp(a - a.T)
        pre = self.input(x)
        h = pre.new_zeros(pre.shape[1], pre.shape[2])
        outs = []
        for p in pre.unbind(0):
            h = torch.tanh(p + h @ w.T)
            outs.append(h)
        return torch.stack(outs), h


def train_step(model, x):
    def step():
        model.zero_grad(set_to_none=True)
        out, _ = model(x)
        out.sum().backward()

    return step


def run(hidden_sizes, seq_len, batch, rounds):
    rows = []
    for H in hidden_sizes:
        x = torch.randn(seq_len, batch, H)
        contestants = {
            "trit_rnn OrthogonalRNN (torch backend)": train_step(
                OrthogonalRNN(H, H, nonlinearity="tanh", backend="torch"), x
            ),
            "torch.nn.RNN(tanh)": train_step(nn.RNN(H, H, nonlinearity="tanh"), x),
            "naive Python loop (orthogonal, exp map)": train_step(NaiveOrthogonalRNN(H, H), x),
        }
        timings = time_interleaved(contestants, rounds=rounds)
        tokens = batch * seq_len
        ours = timings["trit_rnn OrthogonalRNN (torch backend)"].median
        for name, t in timings.items():
            rows.append(
                {
                    "hidden": H,
                    "seq_len": seq_len,
                    "batch": batch,
                    "contestant": name,
                    "tokens_per_s": tokens / t.median,
                    "tokens_per_s_p20": tokens / t.p80,
                    "tokens_per_s_p80": tokens / t.p20,
                    "ours_speedup": t.median / ours,
                }
            )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--seq-len", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON list")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = run(args.hidden, args.seq_len, args.batch, args.rounds)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(
        f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}, forward+backward, B={args.batch}, T={args.seq_len}"
    )
    print(f"{'H':>5}  {'contestant':<42} {'tokens/s':>10} {'p20-p80':>19} {'ours / it':>9}")
    for r in rows:
        band = f"{r['tokens_per_s_p20']:,.0f}-{r['tokens_per_s_p80']:,.0f}"
        print(
            f"{r['hidden']:>5}  {r['contestant']:<42} {r['tokens_per_s']:>10,.0f} {band:>19} {r['ours_speedup']:>8.2f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
