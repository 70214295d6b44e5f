"""The KRU matrix (Jose, Cisse & Fleuret 2018): W = W_1 (x) W_2 (x) ... (x) W_F, a Kronecker
product of small complex factors. W is unitary exactly when every factor is; KRU keeps them close
to unitary with a soft penalty added to the loss, not by construction."""

import math

import torch
from torch import nn

from ..validation import check_positive_int
from .unitary import COMPLEX_OF, Unitary, check_real_dtype, haar_unitary


def default_factors(size: int) -> tuple[int, ...]:
    """2x2 factors for a power-of-two size ((1,) for size 1); other sizes must name their factors."""
    if size & (size - 1):
        raise ValueError(
            f"KRU's default factors are 2x2, which needs a power-of-two hidden size; got {size}: "
            f"pass factors whose product is {size} (e.g. factors=(3, 4) for 12)"
        )
    return (2,) * (size.bit_length() - 1) or (1,)


def check_factors(size: int, factors) -> tuple[int, ...]:
    if factors is None:
        return default_factors(size)
    if isinstance(factors, int) or not all(isinstance(f, int) for f in factors):
        raise ValueError(f"factors must be a sequence of positive ints; got {factors!r}")
    factors = tuple(check_positive_int(f, "each factor") for f in factors)
    if not factors or math.prod(factors) != size:
        raise ValueError(f"factors must multiply to the hidden size {size}; got {factors!r}")
    return factors


class KroneckerUnitary(Unitary):
    """W = W_1 (x) ... (x) W_F [n, n]; `factors` lists the sizes f_i of the complex parameters
    `factors_weight[i]` [f_i, f_i] (2 f_i^2 real parameters each: 8 log2 n for 2x2 factors).

    Init: each factor Haar-random unitary, so W starts unitary and the penalty at zero.
    `unitarity_penalty()` = sum_i |W_i^H W_i - I|_F^2 (real, >= 0, zero iff every factor is unitary)."""

    def __init__(
        self,
        size: int,
        factors=None,
        *,
        generator: torch.Generator | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__(size)
        self.factors = check_factors(self.size, factors)
        complex_dtype = COMPLEX_OF[check_real_dtype(dtype)]
        self.factors_weight = nn.ParameterList(
            nn.Parameter(torch.empty(f, f, device=device, dtype=complex_dtype)) for f in self.factors
        )
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for weight in self.factors_weight:
            weight.copy_(haar_unitary(weight.shape[0], generator))

    @property
    def state_dtype(self) -> torch.dtype:
        return self.factors_weight[0].dtype

    def forward(self) -> torch.Tensor:
        w = self.factors_weight[0]
        for factor in self.factors_weight[1:]:
            w = torch.kron(w, factor)
        return w

    def unitarity_penalty(self) -> torch.Tensor:
        total = self.factors_weight[0].real.new_zeros(())
        for weight in self.factors_weight:
            eye = torch.eye(weight.shape[0], dtype=weight.dtype, device=weight.device)
            deviation = weight.mH @ weight - eye
            total = total + (deviation.real**2 + deviation.imag**2).sum()
        return total

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, factors={self.factors}"
