"""Variable lengths in every kernel family: what the launchers check and pass as lengths_ptr, and
the per-row lengths each kernel loads once before its time loop (HAS_LENGTHS).

Row b is active at step t (0-based) while t < lengths[b]: past its end a row keeps its state and
writes zeros (see each family's forward.py and backward.py)."""

import torch
import triton
import triton.language as tl


def check_lengths(lengths, batch: int, device: torch.device) -> None:
    """lengths: None, or an integer tensor [batch] on device (each value in [1, T], validated
    upstream; the kernels treat a value <= 0 as a row that is never active and one >= T as a full
    row)."""
    if lengths is None:
        return
    if not isinstance(lengths, torch.Tensor):
        raise ValueError(f"lengths must be an integer tensor [{batch}] or None, got {type(lengths).__name__}")
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must be [{batch}] (one length per batch row), got {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be an integer tensor (int32 or int64), got {lengths.dtype}")
    if lengths.device != device:
        raise ValueError(f"lengths must be on {device} (the data's device), got {lengths.device}")


def lengths_arg(lengths, device: torch.device) -> torch.Tensor:
    """What the kernels' lengths_ptr gets: lengths as contiguous int32 (values never exceed T, an
    int32 runtime argument), or a 1-element dummy that HAS_LENGTHS=False never reads."""
    if lengths is None:
        return torch.empty(1, dtype=torch.int32, device=device)
    return lengths.to(torch.int32).contiguous()


@triton.jit
def row_lengths(lengths_ptr, rows, B):
    """The program's lengths as a [BLOCK_B, 1] column; padded rows get 0 (never active)."""
    lengths = tl.load(lengths_ptr + rows, mask=rows < B, other=0)  # [BLOCK_B]
    return lengths[:, None]  # [BLOCK_B, 1]
