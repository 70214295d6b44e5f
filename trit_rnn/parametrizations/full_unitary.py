"""The full-capacity unitary matrix (Wisdom et al. 2016): W is any element of U(n), stored as a
complex parameter and kept on the group by a Riemannian Cayley step instead of a gradient step."""

import torch
from torch import nn

from .unitary import COMPLEX_OF, Unitary, check_real_dtype, haar_unitary


class FullUnitary(Unitary):
    """W = `weight` [n, n] (complex parameter, Haar-random at init). An ordinary optimizer step would
    leave U(n): update it with `cayley_step` (trit_rnn.unitary_optim does, for whole models)."""

    def __init__(self, size: int, *, generator: torch.Generator | None = None, device=None, dtype=None):
        super().__init__(size)
        complex_dtype = COMPLEX_OF[check_real_dtype(dtype)]
        self.weight = nn.Parameter(torch.empty(size, size, device=device, dtype=complex_dtype))
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.weight.copy_(haar_unitary(self.size, generator))

    @property
    def state_dtype(self) -> torch.dtype:
        return self.weight.dtype

    def forward(self) -> torch.Tensor:
        return self.weight


@torch.no_grad()
def cayley_step(weight: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
    """In place: W <- (I + lr/2 A)^{-1} (I - lr/2 A) W with A = G W^H - W G^H (skew-Hermitian).

    G is PyTorch's gradient of a real loss, dL/dRe W + i dL/dIm W (the steepest-ascent direction);
    to first order the step is W - lr (G - W G^H W), whose change of the loss is
    -lr/2 |X - X^H|_F^2 <= 0 with X = W^H G. Computed in complex128 and polished by one
    Newton-Schulz step, W (3I - W^H W) / 2, so that a float32 W stays at rounding distance from
    U(n) however many steps it takes."""
    w = weight.to(torch.complex128)
    g = grad.to(torch.complex128)
    a = g @ w.mH - w @ g.mH
    eye = torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
    w = torch.linalg.solve(eye + (lr / 2) * a, (eye - (lr / 2) * a) @ w)
    w = 1.5 * w - 0.5 * (w @ (w.mH @ w))
    weight.copy_(w)
