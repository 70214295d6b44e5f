"""The adding problem (Hochreiter & Schmidhuber 1997; as in the uRNN paper).

Each step carries two features: a value ~ U(0, 1) and a marker; exactly two steps are marked, one
in the first half and one in the second, and the target is the sum of their values. Predicting the
constant 1 (the mean of the sum) gives the baseline MSE Var(U1 + U2) = 2/12 = 1/6.
"""

import torch

ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_batch(
    batch: int, seq_len: int, *, generator: torch.Generator | None = None, device=None, dtype=None
):
    """Returns (inputs [seq_len, batch, 2], targets [batch])."""
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2 for the adding problem; got {seq_len}")
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
