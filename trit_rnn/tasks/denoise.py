"""The denoise task (GORU: Jing, Gulcehre et al.), with a fixed alphabet and distinct positions.

Symbols: 0 blank, 1..9 data, 10 marker; inputs one-hot over the 11 symbols (the reference encodes
the marker as an all-zero vector; here it has its own channel). A sequence of length T + 20 holds
10 data symbols (uniform over 1..9) at 10 distinct random positions among its first T + 9 steps
(blanks elsewhere), the marker at step T + 9, then 10 blanks. The target is T + 10 blanks, then
the 10 data symbols in the order they appeared. With the data at the first 10 steps this is the
copying task (whose alphabet has 8 data symbols); scattering them means the network must both
filter the noise (blanks) and count.

Loss: cross-entropy over the 10 classes 0..9, averaged over every step. Baseline (blanks, then a
uniform guess over the 9 data symbols): 10 ln 9 / (T + 20). Accuracy: the fraction of the 10
recalled symbols right.
"""

import math

import torch

from .base import DelayedRecallTask, check_positive_int, make_generator

DENOISE_INPUT_SIZE = 11
DENOISE_CLASSES = 10
DENOISE_LENGTH = 10
DENOISE_MARKER = 10


def denoise_baseline(delay: int) -> float:
    """The memoryless baseline's cross-entropy, 10 ln 9 / (delay + 20)."""
    return DENOISE_LENGTH * math.log(9) / (delay + 2 * DENOISE_LENGTH)


def denoise_batch(
    batch: int,
    delay: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
):
    """Returns (inputs [delay + 20, batch, 11] one-hot in dtype, targets [delay + 20, batch] long in
    0..9). Random draws come from `generator`, or from a generator seeded with `seed`."""
    check_positive_int(delay, "delay")
    check_positive_int(batch, "batch")
    generator = make_generator(generator, seed)
    length = delay + 2 * DENOISE_LENGTH
    span = delay + DENOISE_LENGTH - 1  # steps before the marker
    data = torch.randint(1, 10, (DENOISE_LENGTH, batch), generator=generator)
    # 10 distinct positions per sequence, in increasing order: the smallest of random keys.
    keys = torch.rand(span, batch, generator=generator)
    positions = keys.argsort(dim=0)[:DENOISE_LENGTH].sort(dim=0).values
    symbols = torch.zeros(length, batch, dtype=torch.long)
    symbols.scatter_(0, positions, data)
    symbols[span] = DENOISE_MARKER
    targets = torch.zeros(length, batch, dtype=torch.long)
    targets[-DENOISE_LENGTH:] = data
    inputs = torch.nn.functional.one_hot(symbols, DENOISE_INPUT_SIZE).to(dtype or torch.get_default_dtype())
    return inputs.to(device), targets.to(device)


class DenoiseTask(DelayedRecallTask):
    """denoise_batch as a Task: T' = delay + 20 steps, 11 inputs, 10 output classes per step."""

    name = "denoise"
    input_size = DENOISE_INPUT_SIZE
    output_size = DENOISE_CLASSES
    recall_steps = DENOISE_LENGTH
    make_batch = staticmethod(denoise_batch)
