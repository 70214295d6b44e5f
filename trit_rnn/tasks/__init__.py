"""Synthetic benchmark tasks of the orthogonal/unitary RNN papers."""

from .adding import ADDING_BASELINE_MSE, adding_batch
from .copying import COPY_CLASSES, COPY_INPUT_SIZE, copying_baseline, copying_batch

__all__ = [
    "ADDING_BASELINE_MSE",
    "adding_batch",
    "COPY_CLASSES",
    "COPY_INPUT_SIZE",
    "copying_baseline",
    "copying_batch",
]
