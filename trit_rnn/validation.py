"""Argument checks shared by the functional ops and the modules. Every error names the argument,
what was expected and what was received."""

import math

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
COMPLEX_DTYPES = (torch.complex64, torch.complex128)
# The dtype of a complex dtype's planes (torch.dtype.to_real does not trace under torch.compile).
REAL_DTYPE_OF_COMPLEX = {torch.complex64: torch.float32, torch.complex128: torch.float64}


def describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {t.dtype}, device {t.device}"


def check_tensor(value, argument: str, *, ndim: int | None = None, dtypes=FLOAT_DTYPES) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor; got {type(value).__name__}")
    if dtypes is not None and value.dtype not in dtypes:
        names = ", ".join(str(d) for d in dtypes)
        kind = "complex" if all(d.is_complex for d in dtypes) else "floating"
        raise TypeError(f"{argument} must have a {kind} dtype ({names}); got {value.dtype}")
    if ndim is not None and value.dim() != ndim:
        raise ValueError(f"{argument} must be {ndim}-D; got {describe(value)}")
    return value


def check_shape(value: torch.Tensor, argument: str, expected: tuple, meaning: str) -> None:
    if tuple(value.shape) != tuple(expected):
        raise ValueError(f"{argument} must have shape {tuple(expected)} ({meaning}); got {describe(value)}")


def check_same(value: torch.Tensor, argument: str, reference: torch.Tensor, reference_name: str) -> None:
    if value.device != reference.device:
        raise ValueError(
            f"{argument} must be on the same device as {reference_name} ({reference.device}); got {value.device}"
        )
    if value.dtype != reference.dtype:
        raise TypeError(
            f"{argument} must have the dtype of {reference_name} ({reference.dtype}); got {value.dtype}"
        )


def check_positive_int(value, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument} must be a positive integer; got {value!r}")
    return value


def check_checkpoint_every(value, argument: str = "checkpoint_every"):
    """None (no checkpointing) or the number of steps per recomputed segment, an int >= 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(
            f"{argument} must be None or a positive integer (steps per checkpointed segment); got {value!r}"
        )
    return value


def check_same_kind(value, argument: str, reference: torch.Tensor, reference_name: str) -> None:
    """Real and complex tensors do not mix in one recurrence: say so before any dtype list does."""
    if isinstance(value, torch.Tensor) and value.is_complex() != reference.is_complex():
        kind = "complex" if value.is_complex() else "real"
        reference_kind = "complex" if reference.is_complex() else "real"
        raise TypeError(
            f"{argument} is {kind} ({value.dtype}) but {reference_name} is {reference_kind} "
            f"({reference.dtype}); a recurrence is either all real or all complex"
        )


def check_eps(value, argument: str = "eps") -> float:
    """A positive, finite float (an int is accepted and converted)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{argument} must be a positive finite float; got {value!r}")
    return float(value)
