"""The uRNN matrix (Arjovsky, Shah & Bengio 2016): W = D3 R2 F^-1 D2 Pi R1 F D1 (column form).

D_k = diag(exp(i theta_k)), R_k = I - 2 v_k v_k^H / |v_k|^2 with v_k complex, F the unitary DFT
(torch.fft with norm="ortho"), Pi a fixed permutation, (Pi x)_j = x_{permutation[j]}.
7n real parameters: `phases` [3, n] (theta_1..3) and `reflections` [2, 2, n] (v_k = re + i im).
"""

import math

import torch
from torch import nn

from .unitary import COMPLEX_OF, Unitary, check_real_dtype


def reflect(h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(I - 2 v v^H / |v|^2) applied to each row of h [N, n] as a column vector."""
    coefficient = (h @ v.conj()) * (2 / (v.abs() ** 2).sum())  # v^H x for every row x: [N]
    return h - coefficient.unsqueeze(-1) * v


class URNNUnitary(Unitary):
    """W = D3 R2 F^-1 D2 Pi R1 F D1 [n, n], complex, from 7n real parameters.

    Init (as the uRNN reference code): phases ~ U(-pi, pi), reflection entries
    ~ U(-sqrt(6 / (2 + 2n)), +sqrt(6 / (2 + 2n))), a uniformly random permutation (a buffer, saved
    in the state_dict)."""

    def __init__(self, size: int, *, generator: torch.Generator | None = None, device=None, dtype=None):
        super().__init__(size)
        dtype = check_real_dtype(dtype)
        factory = {"device": device, "dtype": dtype}
        self.phases = nn.Parameter(torch.empty(3, size, **factory))
        self.reflections = nn.Parameter(torch.empty(2, 2, size, **factory))
        self.register_buffer("permutation", torch.empty(size, dtype=torch.long, device=device))
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        n = self.size
        bound = math.sqrt(6 / (2 + 2 * n))
        self.phases.copy_((torch.rand(3, n, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi)
        self.reflections.copy_(
            (torch.rand(2, 2, n, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        )
        self.permutation.copy_(torch.randperm(n, generator=generator))

    @property
    def state_dtype(self) -> torch.dtype:
        return COMPLEX_OF[self.phases.dtype]

    def diagonals(self) -> torch.Tensor:
        """exp(i theta_k) [3, n]: the diagonals of D1, D2, D3."""
        return torch.polar(torch.ones_like(self.phases), self.phases)

    def reflection_vectors(self) -> torch.Tensor:
        """v_1, v_2 [2, n] complex."""
        return torch.complex(self.reflections[:, 0], self.reflections[:, 1])

    def transform(self, h: torch.Tensor) -> torch.Tensor:
        d1, d2, d3 = self.diagonals()
        v1, v2 = self.reflection_vectors()
        h = torch.fft.fft(h * d1, dim=-1, norm="ortho")
        h = reflect(h, v1)[..., self.permutation] * d2
        h = torch.fft.ifft(h, dim=-1, norm="ortho")
        return reflect(h, v2) * d3
