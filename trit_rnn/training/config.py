"""The training recipe: one set of settings for every cell of a run, its defaults per task, and the
checks that name the offending argument.

One recipe for every cell (RMSprop, the same steps, batch, hidden size and learning rates); the
per-cell practice (LSTM forget bias 1, orthogonal/unitary parameters at orth_lr, full-capacity
unitary matrices by a Cayley step, gradient clipping for all) lives in model.py and optimizer.py.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

# Defaults per task; anything the command line gives wins. `seq_len` is the delay T for copying
# and denoise (sequences of T + 20 steps) and the length for adding and parenthesis; the digits
# tasks have 64 steps.
COMMON = {"hidden": 128, "batch": 128, "steps": 1500, "lr": 1e-3, "clip": 1.0, "eval_batch": 500}
RECIPES = {
    "copying": {**COMMON, "seq_len": 100},
    "adding": {**COMMON, "seq_len": 100},
    "denoise": {**COMMON, "seq_len": 100},
    "parenthesis": {**COMMON, "seq_len": 100},
    "digits": {**COMMON, "seq_len": None},
    "pdigits": {**COMMON, "seq_len": None},
}
DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}

# Settings that must match a checkpoint for --resume (steps may grow; the rest only changes
# bookkeeping).
RESUME_KEYS = ("task", "seq_len", "hidden", "batch", "lr", "orth_lr", "clip", "tbptt", "seed", "backend",
               "dtype", "eval_every", "eval_batch", "checkpoint_every", "unitarity_penalty", "threads")  # fmt: skip


@dataclass
class TrainConfig:
    """Settings of one `trit-rnn train` run (every cell gets the same)."""

    task: str
    cells: list[str]
    seq_len: int | None = None
    hidden: int | None = None
    batch: int | None = None
    steps: int | None = None
    lr: float | None = None
    orth_lr: float | None = None  # default lr / 10
    clip: float | None = None  # max gradient norm; 0 turns clipping off
    tbptt: int | None = None  # chunk length K of truncated BPTT; None: full BPTT
    seed: int = 0
    backend: str | None = None  # None: the cell's first backend that runs on the device
    dtype: str = "float32"
    device: str = "cpu"
    eval_every: int | None = None  # default steps / 20
    eval_batch: int | None = None  # sequences in the fixed evaluation set (synthetic tasks)
    checkpoint_every: int | None = None  # default: at every evaluation
    unitarity_penalty: float = 0.0  # KRU's soft constraint weight (cells with unitarity_penalty())
    # CPU threads of torch's pool during the run. 1 by default: on a shared 2-core machine a
    # 2-thread pool measured 10-60x slower per step whenever the other core was busy (every small
    # per-step op waits for a descheduled worker); 1 thread is within ~1.3x of 2 on an idle one.
    threads: int | None = 1
    out: Path = field(default_factory=lambda: Path("plots"))
    resume: bool = False
    progress: bool = True

    def resolved(self) -> TrainConfig:
        """A copy with every default filled in from the task's recipe, checked."""
        if self.task not in RECIPES:
            raise ValueError(f"task: unknown task {self.task!r}; tasks: {', '.join(RECIPES)}")
        values = asdict(self)
        values["out"] = Path(self.out)
        for key, default in RECIPES[self.task].items():
            if values.get(key) is None:
                values[key] = default
        config = TrainConfig(**values)
        config.check()
        if config.orth_lr is None:
            config.orth_lr = config.lr / 10
        if config.eval_every is None:
            config.eval_every = max(1, config.steps // 20)
        if config.checkpoint_every is None:
            config.checkpoint_every = config.eval_every
        return config

    def check(self) -> None:
        if not self.cells:
            raise ValueError("--cell: give one or more cell names")
        if len(set(self.cells)) != len(self.cells):
            raise ValueError(f"--cell: a cell is named twice in {','.join(self.cells)}")
        takes_seq_len = RECIPES[self.task]["seq_len"] is not None
        if not takes_seq_len and self.seq_len is not None:
            raise ValueError(f"--seq-len: task {self.task!r} has a fixed length of 64 steps; leave it out")
        if takes_seq_len:
            minimum = 2 if self.task == "adding" else 1
            _positive_int(self.seq_len, "--seq-len", minimum)
        for name in ("hidden", "batch", "steps"):
            _positive_int(getattr(self, name), f"--{name}")
        for name in ("eval_every", "eval_batch", "checkpoint_every", "tbptt", "threads"):
            if getattr(self, name) is not None:
                _positive_int(getattr(self, name), "--" + name.replace("_", "-"))
        _positive_float(self.lr, "--lr")
        if self.orth_lr is not None:
            _positive_float(self.orth_lr, "--orth-lr")
        _finite_float(self.clip, "--clip", minimum=0.0)
        _finite_float(self.unitarity_penalty, "--unitarity-penalty", minimum=0.0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer; got {self.seed!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise ValueError(f"--device: not a device: {self.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available here")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def run_name(self) -> str:
        """The stem of the run's files: train_copying_T100, train_digits, ..."""
        return f"train_{self.task}" + (f"_T{self.seq_len}" if self.seq_len is not None else "")

    def resume_view(self) -> dict:
        return {key: getattr(self, key) for key in RESUME_KEYS}

    def to_json(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["out"] = str(self.out)
        return values


def _positive_int(value, argument: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{argument} must be an integer >= {minimum}; got {value!r}")


def _positive_float(value, argument: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{argument} must be a positive number; got {value!r}")


def _finite_float(value, argument: str, minimum: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < minimum
    ):
        raise ValueError(f"{argument} must be a number >= {minimum}; got {value!r}")
