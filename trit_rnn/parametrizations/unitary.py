"""What the unitary parametrisations share: the base class, the real -> complex dtype map, a
Haar-random unitary initialiser and the count of real degrees of freedom.

Convention (as torch.nn.RNN's weight_hh): `forward()` returns the paper's column-form matrix W
[n, n], and the recurrence applies it to row states as h_{t-1} @ W^T (= W h_{t-1} for a column h).
"""

import torch
from torch import nn

from ..amp import autocast_off
from ..validation import check_positive_int

COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def check_real_dtype(dtype, argument: str = "dtype") -> torch.dtype:
    """None -> torch's default dtype; float32 or float64 pass (their complex states are complex64 and
    complex128); anything else is a ValueError."""
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if dtype not in COMPLEX_OF:
        raise ValueError(
            f"{argument} must be torch.float32 or torch.float64 (complex64 / complex128 states); got {dtype!r}"
        )
    return dtype


def haar_unitary(
    n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.complex128
) -> torch.Tensor:
    """A Haar-random unitary [n, n]: QR of a complex Gaussian with R's diagonal phases moved into Q
    (Mezzadri 2007; without the fix QR's phase convention biases Q). Drawn in complex128 on the CPU."""
    n = check_positive_int(n, "n")
    shape = (n, n, 2)
    gaussian = torch.view_as_complex(torch.randn(shape, generator=generator, dtype=torch.float64))
    q, r = torch.linalg.qr(gaussian)
    return (q * torch.sgn(torch.diagonal(r))).to(dtype)


def real_parameter_count(parameters) -> int:
    """Real degrees of freedom of `parameters` (a module or an iterable of tensors): a complex entry
    counts two."""
    if isinstance(parameters, nn.Module):
        parameters = parameters.parameters()
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in parameters)


def unitarity_error(w: torch.Tensor) -> float:
    """max |W^H W - I| (W^T W for a real W)."""
    w = w.detach()
    eye = torch.eye(w.shape[-1], dtype=w.dtype, device=w.device)
    return float((w.mH @ w - eye).abs().max())


class Unitary(nn.Module):
    """Base class: `forward() -> W [size, size]`, unitary (complex) or orthogonal (real).

    Structured subclasses implement `transform(h)` = h @ W^T, W applied to each row of h [N, size]
    as a column vector; W itself is then read off the identity, W = transform(I)^T (a plain
    transpose, not the conjugate one). Others override `forward`."""

    def __init__(self, size: int):
        super().__init__()
        self.size = check_positive_int(size, "size")

    @property
    def state_dtype(self) -> torch.dtype:
        """The dtype of W and of the states it acts on."""
        raise NotImplementedError

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def transform(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        device = self._device()
        eye = torch.eye(self.size, dtype=self.state_dtype, device=device)
        with autocast_off(device):  # W in the state dtype, even in an autocast region
            return self.transform(eye).transpose(0, 1)

    def extra_repr(self) -> str:
        return f"size={self.size}"
