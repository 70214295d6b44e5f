"""Variable-length batches: a padded batch [T, B, ...] with one length per sequence.

Row b is active at the steps t < lengths[b]. Past its end a row's state stays as it was and its
outputs are zero, so its final state is its state at its own last step, and its gradients are those
of running the sequence alone. Where this is done:
  - the Triton kernels mask per row inside their time loop (one launch for the whole batch);
  - the torch backend runs the batch, sorted by length, in time segments between consecutive
    distinct lengths, each on the rows still active (a prefix once sorted), so finished rows cost
    nothing (`run_segments`: one call of the op per distinct length);
  - a reverse direction starts at each sequence's own end (`reverse_padded`).
Row permutations go through `_Permute`, whose backward is the inverse permutation (a gather): the
index_select backward would be an index_add, whose CUDA kernel uses atomics.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def check_lengths(lengths, T: int, B: int, argument: str = "lengths") -> torch.Tensor | None:
    """None, or lengths as a CPU int64 tensor [B] checked to lie in [1, T]; None also when every
    length is T (the batch is not ragged, and the plain path runs). Accepts a 1-D integer tensor on
    any device or a list/tuple of ints."""
    if lengths is None:
        return None
    if isinstance(lengths, (list, tuple)):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in lengths):
            raise TypeError(f"{argument} must hold ints; got {lengths!r}")
        lengths = torch.tensor(lengths, dtype=torch.int64)
    if not isinstance(lengths, torch.Tensor):
        raise TypeError(
            f"{argument} must be None, a 1-D integer tensor or a list of ints; got {type(lengths).__name__}"
        )
    if lengths.dtype.is_floating_point or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"{argument} must have an integer dtype; got {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != B:
        raise ValueError(
            f"{argument} must be 1-D with one length per sequence ({B}); got shape {tuple(lengths.shape)}"
        )
    lengths = lengths.to("cpu", torch.int64)
    low, high = int(lengths.min()), int(lengths.max())
    if low < 1 or high > T:
        raise ValueError(
            f"{argument} must lie in [1, {T}] (1 up to the padded length T); got min {low}, max {high}"
        )
    return None if low == T else lengths


class _Permute(torch.autograd.Function):
    """x.index_select(dim, index) whose backward gathers with the inverse permutation."""

    @staticmethod
    def forward(ctx, x, dim: int, index, inverse):
        ctx.dim = dim
        ctx.save_for_backward(inverse)
        return x.index_select(dim, index)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        return grad.index_select(ctx.dim, inverse), None, None, None


def permute(x: torch.Tensor | None, dim: int, index: torch.Tensor, inverse: torch.Tensor):
    """x with its slices along dim reordered by the permutation index (inverse: its inverse)."""
    if x is None:
        return None
    return _Permute.apply(x, dim, index.to(x.device), inverse.to(x.device))


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x [T, B, ...] with each sequence's first lengths[b] steps reversed and its padding left in
    place: the input of a reverse direction, and (applied again, it is its own inverse) the way
    back for its outputs."""
    T, B = x.shape[:2]
    t = torch.arange(T).unsqueeze(1)  # [T, 1]
    source = torch.where(t < lengths, lengths - 1 - t, t)  # [T, B]: the step each slot reads
    flat = (source * B + torch.arange(B)).flatten()  # [T * B] rows of x.flatten(0, 1)
    rows = permute(x.flatten(0, 1), 0, flat, flat)
    return rows.view(x.shape)


def run_segments(
    run: Callable,
    sequence: torch.Tensor,
    states: tuple,
    lengths: torch.Tensor,
    *per_step: torch.Tensor,
):
    """A ragged batch through an op that knows no lengths.

    run(chunk, states, *per_step_chunks) -> (outputs [L, n, ...], finals tuple of [n, ...]) runs
    the op over L steps of n rows; chunk is sequence[t0:t1, :n] (the op's per-step input, e.g.
    pre [T, B, F] or the layer input x), states a tuple of [n, H] (None entries: zeros) and
    per_step extra [T, B, ...] inputs chunked the same way. lengths: the CPU int64 [B] of
    check_lengths. Returns (outputs [T, B, ...], finals tuple of [B, ...]) in the caller's row
    order, outputs zero past each end.
    """
    T, B = sequence.shape[:2]
    order = torch.sort(lengths, descending=True, stable=True)
    sorted_lengths = order.values.tolist()
    if order.indices.tolist() != list(range(B)):
        index, inverse = order.indices, torch.argsort(order.indices)
        sequence = permute(sequence, 1, index, inverse)
        per_step = tuple(permute(x, 1, index, inverse) for x in per_step)
        states = tuple(permute(s, 0, index, inverse) for s in states)
    else:
        index = None
    stops = sorted(set(sorted_lengths))  # each distinct length ends a segment
    sizes = [stop - start for start, stop in zip([0, *stops[:-1]], stops, strict=True)]
    chunks = zip(sequence.split(sizes), *(x.split(sizes) for x in per_step), strict=True)
    pieces = []
    for stop, (chunk, *extra) in zip(stops, chunks, strict=True):
        active = sum(1 for length in sorted_lengths if length >= stop)  # a prefix once sorted
        if active < B:
            chunk, extra = chunk[:, :active], [x[:, :active] for x in extra]
        outputs, finals = run(chunk, tuple(s[:active] if s is not None else None for s in states), *extra)
        if active < B:
            padding = outputs.new_zeros((outputs.shape[0], B - active, *outputs.shape[2:]))
            outputs = torch.cat([outputs, padding], dim=1)
            # the finished rows (active:) keep the states they ended with; an earlier segment had
            # all B rows, so they are tensors here
            finals = tuple(torch.cat([f, s[active:]]) for f, s in zip(finals, states, strict=True))
        pieces.append(outputs)
        states = finals
    outputs = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
    if index is not None:
        outputs = permute(outputs, 1, inverse, index)
        states = tuple(permute(s, 0, inverse, index) for s in states)
    return outputs, states


def lengths_keyword(lengths: torch.Tensor | None) -> dict:
    """The keyword a kernel launcher takes lengths by, or none: the torch backend's functions have
    no lengths argument (they never see a ragged batch, see run_segments)."""
    return {} if lengths is None else {"lengths": lengths}
