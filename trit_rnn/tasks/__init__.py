"""Benchmark tasks of the orthogonal/unitary RNN papers: seeded batch generators (time-major
inputs [T', B, features] and targets) and Task objects with a loss, a metric and a baseline.

    task = make_task("copying", seq_len=100)
    x, y = task.batch(64, torch.Generator().manual_seed(0))
    loss = task.loss(readout(model(x)[0]), y)      # task.baseline_loss: the input-blind baseline

Tasks (TASKS): copying, adding, denoise, parenthesis, digits (sequential), pdigits (permuted).
"""

from .adding import ADDING_BASELINE_MSE, AddingTask, adding_batch
from .base import Task
from .copying import COPY_CLASSES, COPY_INPUT_SIZE, CopyingTask, copying_baseline, copying_batch
from .denoise import DENOISE_CLASSES, DENOISE_INPUT_SIZE, DenoiseTask, denoise_baseline, denoise_batch
from .digits import DigitsTask, load_digits_split
from .parenthesis import ParenthesisTask, parenthesis_baseline, parenthesis_batch

# name -> (constructor, whether it takes seq_len)
TASKS = {
    "copying": (CopyingTask, True),
    "adding": (AddingTask, True),
    "denoise": (DenoiseTask, True),
    "parenthesis": (ParenthesisTask, True),
    "digits": (lambda: DigitsTask(permuted=False), False),
    "pdigits": (lambda: DigitsTask(permuted=True), False),
}


def make_task(name: str, seq_len: int | None = None) -> Task:
    """The task `name` at sequence length `seq_len` (the delay T for copying/denoise; the digits
    tasks have a fixed length of 64 and take none)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    build, takes_seq_len = TASKS[name]
    if not takes_seq_len:
        if seq_len is not None:
            raise ValueError(f"task {name!r} has a fixed length of 64 steps: leave out seq_len")
        return build()
    if seq_len is None:
        raise ValueError(f"task {name!r} needs seq_len")
    return build(seq_len)


__all__ = [
    "ADDING_BASELINE_MSE",
    "AddingTask",
    "COPY_CLASSES",
    "COPY_INPUT_SIZE",
    "CopyingTask",
    "DENOISE_CLASSES",
    "DENOISE_INPUT_SIZE",
    "DenoiseTask",
    "DigitsTask",
    "ParenthesisTask",
    "TASKS",
    "Task",
    "adding_batch",
    "copying_baseline",
    "copying_batch",
    "denoise_baseline",
    "denoise_batch",
    "load_digits_split",
    "make_task",
    "parenthesis_baseline",
    "parenthesis_batch",
]
