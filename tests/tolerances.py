"""The one tolerance table for every test: relative error allowed against a float64 (complex128)
reference, by the storage dtype of the computation under test."""

import torch

RELATIVE = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    # bf16/fp16 storage: the state is fp32, but inputs, weights and stored states round to 8 or 11
    # mantissa bits, and the error grows along the recurrence.
    torch.float16: 2e-2,
    torch.bfloat16: 6e-2,
    # Complex dtypes have the precision of their real and imaginary planes.
    torch.complex128: 1e-10,
    torch.complex64: 1e-5,
}


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected|, in float64 or complex128 (a max-norm relative error)."""
    wide = torch.complex128 if (actual.is_complex() or expected.is_complex()) else torch.float64
    if expected.numel() == 0:  # same shape (checked by the callers): nothing can differ
        return 0.0
    actual = actual.detach().to(wide)
    expected = expected.detach().to(wide)
    scale = expected.abs().max().clamp_min(1e-30)
    return float((actual - expected).abs().max() / scale)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str = ""):
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    err = relative_error(actual, expected)
    tol = RELATIVE[dtype]
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.1e} ({dtype})"
