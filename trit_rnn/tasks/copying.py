"""The copying memory task in the uRNN layout (Arjovsky et al. 2016; also EUNN, GORU, scoRNN).

Symbols: 0 blank, 1..8 data, 9 marker; inputs one-hot over the 10 symbols. A sequence of
length delay + 20 holds 10 data symbols, delay - 1 blanks, the marker, then 10 blanks; its target
is delay + 10 blanks, then the 10 data symbols (the first recall is due the step after the marker;
expRNN/geotorch put the marker one step later). Loss: cross-entropy over the 9 classes 0..8,
averaged over every step. Predicting blanks, then a uniform guess over the 8 data symbols, scores
the baseline 10 ln 8 / (delay + 20). Accuracy: the fraction of the 10 recalled symbols right.
"""

import math

import torch

from .base import DelayedRecallTask, check_positive_int, make_generator

COPY_INPUT_SIZE = 10
COPY_CLASSES = 9
COPY_LENGTH = 10
COPY_MARKER = 9


def copying_baseline(delay: int) -> float:
    """The memoryless baseline's cross-entropy, 10 ln 8 / (delay + 20)."""
    return COPY_LENGTH * math.log(8) / (delay + 2 * COPY_LENGTH)


def copying_batch(
    batch: int,
    delay: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
):
    """Returns (inputs [delay + 20, batch, 10] one-hot in dtype, targets [delay + 20, batch] long in
    0..8). Random draws come from `generator`, or from a generator seeded with `seed`."""
    if isinstance(delay, bool) or not isinstance(delay, int) or delay < 1:
        raise ValueError(
            f"delay must be a positive integer (blanks between data and marker + 1); got {delay!r}"
        )
    check_positive_int(batch, "batch")
    generator = make_generator(generator, seed)
    length = delay + 2 * COPY_LENGTH
    data = torch.randint(1, 9, (COPY_LENGTH, batch), generator=generator)
    symbols = torch.zeros(length, batch, dtype=torch.long)
    symbols[:COPY_LENGTH] = data
    symbols[delay + COPY_LENGTH - 1] = COPY_MARKER
    targets = torch.zeros(length, batch, dtype=torch.long)
    targets[-COPY_LENGTH:] = data
    inputs = torch.nn.functional.one_hot(symbols, COPY_INPUT_SIZE).to(dtype or torch.get_default_dtype())
    return inputs.to(device), targets.to(device)


class CopyingTask(DelayedRecallTask):
    """copying_batch as a Task: T' = delay + 20 steps, 10 inputs, 9 output classes per step."""

    name = "copying"
    input_size = COPY_INPUT_SIZE
    output_size = COPY_CLASSES
    recall_steps = COPY_LENGTH
    make_batch = staticmethod(copying_batch)
