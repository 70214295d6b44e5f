"""Synthetic benchmark tasks of the orthogonal/unitary RNN papers."""

from .adding import ADDING_BASELINE_MSE, adding_batch

__all__ = ["ADDING_BASELINE_MSE", "adding_batch"]
