"""`trit-rnn train TASK --cell NAME[,NAME...] ...`: the arguments and what the command prints.

With --json the last line of stdout is one JSON object for a single cell, or a JSON list of them
(one per cell, in the order given) for several cells. Each has at least task, cell, final_loss
(the last evaluation's loss), baseline_loss, steps, seconds, and accuracy where the task has one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import RECIPES, TrainConfig

DESCRIPTION = """Train registered cells (ours and peers) on a benchmark task with one recipe for
all: RMSprop at --lr, orthogonal/unitary parameters at --orth-lr (default lr/10; FullCapacityURNN
takes a Cayley step at that rate), gradient clipping, LSTM forget-gate bias 1, a linear readout.
Writes OUT/train_<task>[_T<seq-len>].{csv,jsonl,png}, OUT/..._results.json and checkpoints in
OUT/checkpoints/. Defaults per task: """ + "; ".join(
    f"{task}: " + ", ".join(f"{k}={v}" for k, v in recipe.items() if v is not None)
    for task, recipe in RECIPES.items()
)


def _cells(text: str) -> list[str]:
    from .. import registry

    try:
        return registry.parse_names(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=list(RECIPES), help="the benchmark task")
    parser.add_argument("--cell", dest="cells", type=_cells, required=True,
                        help="registry names separated by commas (e.g. orthogonal,goru,lstm), or 'all'")  # fmt: skip
    parser.add_argument("--hidden", type=int, default=None, help="hidden size of every cell")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="copying/denoise: the delay T (sequences of T+20 steps); adding/parenthesis: T")  # fmt: skip
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="training batches")
    parser.add_argument("--lr", type=float, default=None, help="RMSprop learning rate")
    parser.add_argument(
        "--orth-lr", type=float, default=None, help="orthogonal/unitary parameters (default lr/10)"
    )
    parser.add_argument("--clip", type=float, default=None, help="max gradient norm (0: no clipping)")
    parser.add_argument(
        "--tbptt", type=int, default=None, help="truncated BPTT: chunks of K steps, state carried"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default=None, help="default: the cell's first backend that runs here")
    parser.add_argument("--dtype", default="float32", help="float32 (default), float64, bfloat16, float16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--eval-every", type=int, default=None, help="steps between evaluations (default steps/20)"
    )
    parser.add_argument("--eval-batch", type=int, default=None, help="size of the fixed evaluation set")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="default: at every evaluation")
    parser.add_argument("--unitarity-penalty", type=float, default=0.0,
                        help="weight of KRU's soft unitarity penalty in the loss (default 0)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of torch (default 1: see TrainConfig.threads)")  # fmt: skip
    parser.add_argument("--resume", action="store_true",
                        help="continue each cell from its checkpoint in OUT/checkpoints (a cell without one starts afresh)")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=Path("plots"), help="directory of the outputs (default plots)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--json",
        action="store_true",
        help="last line of stdout: one JSON object per cell; a JSON list of them when several cells are given",
    )


def config_from_args(args) -> TrainConfig:
    return TrainConfig(
        task=args.task, cells=args.cells, seq_len=args.seq_len, hidden=args.hidden, batch=args.batch,
        steps=args.steps, lr=args.lr, orth_lr=args.orth_lr, clip=args.clip, tbptt=args.tbptt, seed=args.seed,
        backend=args.backend, dtype=args.dtype, device=args.device, eval_every=args.eval_every,
        eval_batch=args.eval_batch, checkpoint_every=args.checkpoint_every,
        unitarity_penalty=args.unitarity_penalty, threads=args.threads, out=args.out, resume=args.resume,
        progress=not args.no_progress,
    ).resolved()  # fmt: skip


def _summary(result: dict) -> str:
    text = (f"{result['task']} {result['cell']:>12}: {result['loss']} {result['final_loss']:.5g} "
            f"(baseline {result['baseline_loss']:.5g}, ratio {result['loss_ratio']:.3g})") if result["final_loss"] is not None \
        else f"{result['task']} {result['cell']:>12}: diverged"  # fmt: skip
    if "accuracy" in result and result["accuracy"] is not None:
        text += f", accuracy {result['accuracy']:.4f}"
    return text + f", {result['steps']} steps in {result['seconds']:.1f} s"


def run(args) -> int:
    from .loop import train

    try:
        config = config_from_args(args)
        results = train(config)
    except (ValueError, ImportError) as exc:
        print(f"trit-rnn train: error: {exc}", file=sys.stderr)
        return 2
    for result in results:
        print(_summary(result), file=sys.stderr if args.json else sys.stdout)
    if results:
        print(f"wrote {results[-1]['chart']}, {results[-1]['csv']}, {results[-1]['jsonl']}",
              file=sys.stderr if args.json else sys.stdout)  # fmt: skip
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results))
    return 0
