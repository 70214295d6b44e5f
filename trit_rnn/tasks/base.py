"""What every benchmark task shares: seeding, argument checks, and the Task objects the training
command drives (one batch generator, one loss, one metric, one baseline per task).

A Task's loss is always a mean over its target terms (per step and sample for the per-step tasks,
per sample for the last-step tasks). `loss_terms(outputs, targets, start)` returns the *sum* of the
terms that fall into outputs' steps [start, start + len(outputs)) and their count, so that
truncated BPTT can back-propagate each chunk's share `sum / task.target_count(batch)` and the chunks
add up to the full-sequence loss.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return value


def make_generator(generator: torch.Generator | None, seed: int | None) -> torch.Generator | None:
    """The generator a task draws from: `generator`, or a fresh one seeded with `seed` (not both)."""
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer; got {seed!r}")
        return torch.Generator().manual_seed(seed)
    return generator


class Task:
    """One benchmark task at fixed settings.

    Attributes: name, seq_len (steps of an input sequence, T'), input_size, output_size (features
    the readout produces per step), baseline_loss (the loss of the stated input-blind predictor),
    has_accuracy, loss_name ("cross-entropy" or "MSE"), accuracy_name (what accuracy counts).
    Methods: batch(batch, generator) -> (inputs [T', B, input_size], targets); eval_set(size, seed);
    loss_terms / accuracy_terms (sums and counts over a chunk of steps); loss / accuracy (whole
    sequences); baseline_outputs(targets): the baseline predictor's outputs, whose loss is
    baseline_loss in expectation.
    """

    name: str
    seq_len: int
    input_size: int
    output_size: int
    baseline_loss: float
    has_accuracy: bool = True
    loss_name: str = "cross-entropy"
    accuracy_name: str = ""

    def batch(self, batch: int, generator: torch.Generator | None = None):
        raise NotImplementedError

    def eval_set(self, size: int, seed: int):
        """A fixed evaluation set: a batch of `size` drawn from its own generator seeded `seed`."""
        return self.batch(size, torch.Generator().manual_seed(seed))

    def target_count(self, targets) -> int:
        raise NotImplementedError

    def loss_terms(self, outputs: torch.Tensor, targets, start: int = 0):
        raise NotImplementedError

    def accuracy_terms(self, outputs: torch.Tensor, targets, start: int = 0):
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, targets) -> torch.Tensor:
        total, count = self.loss_terms(outputs, targets, 0)
        return total / count

    def accuracy(self, outputs: torch.Tensor, targets) -> float | None:
        if not self.has_accuracy:
            return None
        correct, count = self.accuracy_terms(outputs, targets, 0)
        return float(correct) / count

    def baseline_outputs(self, targets) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} (T'={self.seq_len}, baseline {self.loss_name} {self.baseline_loss:.5f})"


class PerStepClassification(Task):
    """A class per step: targets [T', B] long, outputs [T', B, classes]; the loss is the
    cross-entropy averaged over every step and sample. `recall_steps`: the accuracy counts the
    last `recall_steps` steps only (where the data is recalled), or every step when None."""

    recall_steps: int | None = None

    def target_count(self, targets) -> int:
        return targets.numel()

    def loss_terms(self, outputs, targets, start=0):
        steps = outputs.shape[0]
        chunk = targets[start : start + steps]
        total = F.cross_entropy(
            outputs.reshape(-1, outputs.shape[-1]).float(), chunk.reshape(-1), reduction="sum"
        )
        return total, chunk.numel()

    def accuracy_terms(self, outputs, targets, start=0):
        steps = outputs.shape[0]
        first = 0 if self.recall_steps is None else self.seq_len - self.recall_steps
        lo, hi = max(start, first), start + steps
        if hi <= lo:
            return 0, 0
        predicted = outputs[lo - start : hi - start].argmax(-1)
        return int((predicted == targets[lo:hi]).sum()), predicted.numel()


class LastStepTask(Task):
    """One target per sequence, read from the output of the last step."""

    def target_count(self, targets) -> int:
        return targets.shape[0]

    def _last(self, outputs, start):
        steps = outputs.shape[0]
        if start + steps < self.seq_len:
            return None
        return outputs[self.seq_len - 1 - start]

    def _terms(self, last, targets):
        raise NotImplementedError

    def loss_terms(self, outputs, targets, start=0):
        last = self._last(outputs, start)
        if last is None:
            return outputs.new_zeros(()), 0
        return self._terms(last, targets), targets.shape[0]


def per_step_log_probs(probabilities: torch.Tensor) -> torch.Tensor:
    """log of a probability table, with log 0 as a large negative number (finite for softmax)."""
    return torch.where(
        probabilities > 0, probabilities.clamp_min(1e-30).log(), torch.full_like(probabilities, -1e4)
    )


class DelayedRecallTask(PerStepClassification):
    """Copying and denoise as Tasks: T' = delay + 2 * recall_steps steps; the last recall_steps
    targets are data symbols 1..output_size-1, every other target is the blank 0. Subclasses set
    name, input_size, output_size, recall_steps and make_batch(batch, delay, generator=)."""

    accuracy_name = "recalled symbols right (last 10 steps)"
    recall_steps = 10

    def __init__(self, delay: int):
        self.delay = check_positive_int(delay, f"seq_len (the {self.name} delay T)")
        self.seq_len = delay + 2 * self.recall_steps
        self.baseline_loss = self.recall_steps * math.log(self.output_size - 1) / self.seq_len

    def make_batch(self, batch, delay, generator=None):
        raise NotImplementedError

    def batch(self, batch, generator=None):
        return self.make_batch(batch, self.delay, generator=generator)

    def baseline_outputs(self, targets):
        """Blank with certainty until the recall, then uniform over the data symbols."""
        probabilities = torch.zeros(self.seq_len, targets.shape[1], self.output_size)
        probabilities[: -self.recall_steps, :, 0] = 1.0
        probabilities[-self.recall_steps :, :, 1:] = 1.0 / (self.output_size - 1)
        return per_step_log_probs(probabilities)
