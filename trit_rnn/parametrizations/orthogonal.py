"""Orthogonal matrices from unconstrained parameters: exp map, Cayley map, Householder product.

Each module's `forward()` takes no input and returns W [n, n] with W^T W = I, computed once per
call from its raw parameters (the RNN module calls it once per forward, then runs the recurrence
with that W). Gradients flow to the raw parameters through ordinary autograd.

Precision: W is returned in the parameters' dtype. A float32 (or half) W is computed in float32
and then polished by one Newton-Schulz step towards the nearest orthogonal matrix,
W <- W (3I - W^T W) / 2. The float32 maps alone are 6-70 ulps off orthogonal, a systematic error
that compounds along the recurrence (|h_T| drifts ~1e-3 over 1e4 steps at H = 64); the step
squares that error away, leaving float32 rounding (drift ~1e-4), at 2 GEMMs instead of a float64
map (2.5x slower at H = 256). `compute_dtype=torch.float64` computes the map in float64 instead.
"""

import torch
from torch import nn

from ..amp import autocast_off
from ..validation import check_positive_int
from . import init as inits
from .skew_exp import triangle_matrix_exp


def _check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")


def _check_dtype(name: str, dtype) -> None:
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"{name} must be a floating-point torch.dtype, got {dtype!r}")


_HALF = (torch.float16, torch.bfloat16)


class _PolishOrthogonal(torch.autograd.Function):
    """P(W) = W (3I - W^T W) / 2 with the identity as its backward.

    Why the identity is the gradient: at an orthogonal W the Jacobian of P is
    dW -> (dW - W dW^T W) / 2, which is the identity on the tangent space {W A : A skew}, and
    every parametrisation here maps its parameters into that space. So for a parameter p,
    d<G, P(W(p))>/dp = <G, dW/dp> exactly at orthogonal W, and to O(e) for a W that is e off
    (e ~ 1e-6 in float32: below the float32 rounding of the gradient itself). It saves the four
    [n, n] GEMMs of P's backward in every training step."""

    @staticmethod
    def forward(w):
        return 1.5 * w - 0.5 * (w @ (w.T @ w))

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad


def polish_orthogonal(w: torch.Tensor) -> torch.Tensor:
    """One Newton-Schulz step of the polar iteration, W (3I - W^T W) / 2 [n, n]: an orthogonality
    error e of W becomes ~1.5 e^2, so a float32 W that is 1e-6 off comes out at rounding level.
    Its backward is the identity (see _PolishOrthogonal)."""
    return _PolishOrthogonal.apply(w)


def _polished(w: torch.Tensor, polish: bool) -> torch.Tensor:
    return polish_orthogonal(w) if polish else w


class Orthogonal(nn.Module):
    """Base class: `forward() -> W [size, size]`, orthogonal, in the parameters' dtype. `size` is n.

    Subclasses implement `_raw()` (their main parameter: device and dtype) and
    `_matrix(dtype, polish) -> W` computed in `dtype`, followed by polish_orthogonal when `polish`
    (a map may do it inside its own op); see the module docstring for `compute_dtype`."""

    def __init__(self, size: int, compute_dtype: torch.dtype | None = None):
        super().__init__()
        self.size = check_positive_int(size, "size")
        _check_dtype("compute_dtype", compute_dtype)
        self.compute_dtype = compute_dtype

    def forward(self) -> torch.Tensor:
        raw = self._raw()
        compute_dtype = self.compute_dtype
        if compute_dtype is None:
            compute_dtype = torch.float32 if raw.dtype in _HALF else raw.dtype
        with autocast_off(raw.device):  # the map in compute_dtype, even in an autocast region
            w = self._matrix(compute_dtype, polish=compute_dtype != torch.float64)
        return w.to(raw.dtype)

    def _raw(self) -> torch.Tensor:
        raise NotImplementedError

    def _matrix(self, dtype: torch.dtype, polish: bool) -> torch.Tensor:
        raise NotImplementedError

    def _eye(self, like: torch.Tensor) -> torch.Tensor:
        return torch.eye(self.size, device=like.device, dtype=like.dtype)

    def extra_repr(self) -> str:
        compute = "" if self.compute_dtype is None else f", compute_dtype={self.compute_dtype}"
        return f"size={self.size}{compute}"


class _SkewOrthogonal(Orthogonal):
    """Shared by the exp and Cayley maps: a free `weight` [n, n] of which only the strict upper
    triangle A = triu(weight, 1) is used, through the skew matrix A - A^T."""

    # init name -> generator of the skew matrix K; "random" is map-specific (set by subclasses).
    _haar_skew = None

    def __init__(self, size, init, device=None, dtype=None, generator=None, compute_dtype=None):
        super().__init__(size, compute_dtype)
        _check_dtype("dtype", dtype)
        self._skew_inits = {**inits.SKEW_INITS, "random": type(self)._haar_skew}
        _check_choice("init", init, self._skew_inits)
        self.init = init
        self.weight = nn.Parameter(torch.empty(size, size, device=device, dtype=dtype))
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-draw `weight` from `self.init` (computed in float64 on the CPU, then copied)."""
        skew = self._skew_inits[self.init](self.size, generator=generator)
        self.weight.copy_(torch.triu(skew, 1))

    def skew(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """A - A^T [n, n] with A = triu(weight, 1), in `dtype` (default: the weight's)."""
        upper = torch.triu(self.weight, 1).to(dtype or self.weight.dtype)
        return upper - upper.T

    def _raw(self) -> torch.Tensor:
        return self.weight

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, init={self.init!r}"


class ExpOrthogonal(_SkewOrthogonal):
    """W = exp(A - A^T) [n, n] (expRNN, Lezcano-Casado & Martinez-Rubio 2019); W in SO(n).

    init: "henaff" (angles |s|, s ~ U(-pi, pi)), "cayley" (angles tan(u/2), u ~ U(0, pi/2): the
    expRNN default, note the angles are not u), "identity", "random" (Haar on SO(n)).

    method: "eigh" (a real eigendecomposition of S^T S with a closed-form backward; 4x faster
    than torch.matrix_exp's forward + backward on a CPU), "matrix_exp" (torch.matrix_exp, GEMM
    based: the faster one on a GPU, where small eigendecompositions are slow), or "auto" (eigh on
    the CPU, matrix_exp elsewhere)."""

    _haar_skew = staticmethod(inits.haar_exp_skew)
    METHODS = ("auto", "eigh", "matrix_exp")

    def __init__(
        self,
        size: int,
        init: str = "henaff",
        device=None,
        dtype=None,
        generator=None,
        compute_dtype=None,
        method: str = "auto",
    ):
        _check_choice("method", method, self.METHODS)
        super().__init__(
            size, init, device=device, dtype=dtype, generator=generator, compute_dtype=compute_dtype
        )
        self.method = method

    def _matrix(self, dtype: torch.dtype, polish: bool) -> torch.Tensor:
        method = self.method
        if method == "auto":
            method = "eigh" if self.weight.device.type == "cpu" else "matrix_exp"
        if method == "eigh":
            return triangle_matrix_exp(self.weight.to(dtype), polish=polish)
        return _polished(torch.matrix_exp(self.skew(dtype)), polish)


class CayleyOrthogonal(_SkewOrthogonal):
    """W = (I + S)^{-1} (I - S) D [n, n] (scoRNN, Helfrich et al. 2018), S = A - A^T skew.

    D = diag(`diagonal`) is a fixed buffer [n] of +-1 whose last `num_negative` entries are -1, so
    det W = (-1)^num_negative and eigenvalues near -1 are reachable (the Cayley map alone never
    reaches -1). PyTorch/geotorch write the map as (I - B/2)^{-1} (I + B/2); it is the same
    matrix at B = -2S.

    init: "cayley" (angles exactly u ~ U(0, pi/2) when D = I), "henaff" (angles 2 atan |s|),
    "identity", "random" ((I + S)^{-1}(I - S) Haar on SO(n); W Haar on {det = (-1)^num_negative})."""

    _haar_skew = staticmethod(inits.haar_cayley_skew)

    def __init__(
        self,
        size: int,
        init: str = "cayley",
        num_negative: int = 0,
        device=None,
        dtype=None,
        generator=None,
        compute_dtype=None,
    ):
        size = check_positive_int(size, "size")
        is_int = isinstance(num_negative, int) and not isinstance(num_negative, bool)
        if not is_int or not 0 <= num_negative <= size:
            raise ValueError(f"num_negative must be an int in [0, size={size}], got {num_negative!r}")
        super().__init__(
            size, init, device=device, dtype=dtype, generator=generator, compute_dtype=compute_dtype
        )
        self.num_negative = num_negative
        signs = torch.ones(size, device=device, dtype=self.weight.dtype)
        signs[size - num_negative :] = -1
        self.register_buffer("diagonal", signs)

    def _matrix(self, dtype: torch.dtype, polish: bool) -> torch.Tensor:
        skew = self.skew(dtype)
        eye = self._eye(skew)
        # (I - S) D scales the columns of I - S; solve, never invert (I + S is well conditioned:
        # its singular values are sqrt(1 + sigma_i(S)^2) >= 1).
        return _polished(torch.linalg.solve(eye + skew, (eye - skew) * self.diagonal.to(dtype)), polish)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_negative={self.num_negative}"


class HouseholderOrthogonal(Orthogonal):
    """W = H_1 H_2 ... H_m [n, n], H_k = I - 2 u_k u_k^T / |u_k|^2, `reflectors` [m, n] (row k is
    u_{k+1}); det W = (-1)^m. Default m = n, which reaches all of that component of O(n).

    Computed in compact WY form, W = I - U T^{-1} U^T with U = reflectors^T [n, m] and T [m, m]
    upper triangular: strict upper part of U^T U, diagonal |u_k|^2 / 2 (Joffrain et al. 2006).
    One GEMM-sized triangular solve instead of m rank-1 updates; exact, and differentiable.
    (torch.linalg.householder_product needs LAPACK's unit-lower-triangular vectors, not free ones.)

    init: "random" (Haar on {det = (-1)^m} when m >= n, Gaussian reflectors when m < n)."""

    INITS = ("random",)

    def __init__(
        self,
        size: int,
        num_reflections: int | None = None,
        init: str = "random",
        device=None,
        dtype=None,
        generator=None,
        compute_dtype=None,
    ):
        super().__init__(size, compute_dtype)
        _check_dtype("dtype", dtype)
        num_reflections = size if num_reflections is None else num_reflections
        self.num_reflections = check_positive_int(num_reflections, "num_reflections")
        _check_choice("init", init, self.INITS)
        self.init = init
        self.reflectors = nn.Parameter(torch.empty(num_reflections, size, device=device, dtype=dtype))
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.reflectors.copy_(inits.haar_householder_reflectors(self.size, self.num_reflections, generator))

    def _raw(self) -> torch.Tensor:
        return self.reflectors

    def _matrix(self, dtype: torch.dtype, polish: bool) -> torch.Tensor:
        u = self.reflectors.T.to(dtype)  # [n, m]
        gram = u.T @ u
        t = torch.triu(gram, 1) + torch.diag(gram.diagonal() / 2)
        return _polished(self._eye(u) - u @ torch.linalg.solve_triangular(t, u.T, upper=True), polish)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_reflections={self.num_reflections}, init={self.init!r}"


PARAMETRIZATIONS = {
    "exp": ExpOrthogonal,
    "cayley": CayleyOrthogonal,
    "householder": HouseholderOrthogonal,
}


def make_orthogonal(parametrization: str, size: int, init: str | None = None, **kw) -> Orthogonal:
    """Build an Orthogonal module by name: "exp", "cayley" or "householder". `init=None` keeps the
    parametrisation's default; other keywords go to its constructor."""
    _check_choice("parametrization", parametrization, PARAMETRIZATIONS)
    if init is not None:
        kw["init"] = init
    return PARAMETRIZATIONS[parametrization](size, **kw)
