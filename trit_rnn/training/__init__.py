"""Training on the benchmark tasks (`trit-rnn train`): one recipe for every registered cell.

config.py      TrainConfig, the per-task default recipes, argument checks
model.py       cell + linear readout, per-cell practice (LSTM forget bias)
optimizer.py   RMSprop with orthogonal/unitary parameters at their own rate
loop.py        the training step (full or truncated BPTT), evaluation, the run over cells
checkpoint.py  save/restore of model, optimizer, RNG states and progress
records.py     metrics as CSV/JSONL, final results as JSON
chart.py       the learning-curve chart
command.py     the command line
"""

from .config import RECIPES, TrainConfig

# The rest loads on first use (the chart pulls in matplotlib; `trit-rnn --help` should not).
_LAZY = {
    "evaluate": "loop", "train": "loop", "train_cell": "loop", "train_step": "loop",
    "SequenceModel": "model", "build_model": "model", "make_optimizer": "optimizer",
}  # fmt: skip


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RECIPES",
    "SequenceModel",
    "TrainConfig",
    "build_model",
    "evaluate",
    "make_optimizer",
    "train",
    "train_cell",
    "train_step",
]
