"""The adding problem (Hochreiter & Schmidhuber 1997; as in the uRNN paper).

Each step carries two features: a value ~ U(0, 1) and a marker; exactly two steps are marked, one
in the first half and one in the second, and the target is the sum of their values. Loss: the MSE
of the last step's output. Predicting the constant 1 (the mean of the sum) gives the baseline MSE
Var(U1 + U2) = 2/12 = 1/6. No accuracy.
"""

import torch

from .base import LastStepTask, check_positive_int, make_generator

ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_batch(
    batch: int,
    seq_len: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
):
    """Returns (inputs [seq_len, batch, 2], targets [batch]). Random draws come from `generator`,
    or from a generator seeded with `seed`."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 2:
        raise ValueError(f"seq_len must be at least 2 for the adding problem; got {seq_len!r}")
    check_positive_int(batch, "batch")
    generator = make_generator(generator, seed)
    values = torch.rand(seq_len, batch, generator=generator)
    half = seq_len // 2
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, seq_len, (batch,), generator=generator)
    markers = torch.zeros(seq_len, batch)
    rows = torch.arange(batch)
    markers[first, rows] = 1.0
    markers[second, rows] = 1.0
    targets = values[first, rows] + values[second, rows]
    inputs = torch.stack([values, markers], dim=-1)
    return inputs.to(device=device, dtype=dtype), targets.to(device=device, dtype=dtype)


class AddingTask(LastStepTask):
    """adding_batch as a Task: T' = seq_len steps, 2 inputs, 1 output (the sum) at the last step."""

    name = "adding"
    input_size = 2
    output_size = 1
    has_accuracy = False
    loss_name = "MSE"
    baseline_loss = ADDING_BASELINE_MSE

    def __init__(self, seq_len: int):
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 2:
            raise ValueError(f"seq_len must be at least 2 for the adding problem; got {seq_len!r}")
        self.seq_len = seq_len

    def batch(self, batch, generator=None):
        return adding_batch(batch, self.seq_len, generator=generator)

    def _terms(self, last, targets):
        return (last[:, 0].float() - targets.float()).square().sum()

    def baseline_outputs(self, targets):
        """The constant 1 at every step."""
        return torch.ones(self.seq_len, targets.shape[0], 1)
