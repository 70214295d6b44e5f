"""exp(S) of a real skew-symmetric S [n, n] through a real symmetric eigendecomposition, with a
closed-form backward.

Why: torch.matrix_exp's backward exponentiates a [2n, 2n] block matrix (8.5 ms forward + backward
at n = 128 on a 2-core CPU), and a complex `eigh` of iS with complex GEMMs still costs 2.9 ms.
Every RNN forward pays this once, so at T = 100 it is a third of a training step.

M = S^T S = -S^2 is symmetric positive semi-definite with eigenvalues lam = theta^2 (the squared
rotation angles of S, each twice), M = V diag(lam) V^T with V real orthogonal. Since
exp(S) = cos(sqrt(-S^2)) + sinc(sqrt(-S^2)) S, with f(l) = cos(sqrt l) and g(l) = sin(sqrt l)/sqrt l
(both entire in l, so any eigenbasis of a repeated eigenvalue works):
    W = f(M) + g(M) S = V diag(cos theta) V^T + [V diag(sinc theta) V^T] S.
With U = V^T S this is W = V (diag(cos theta) V^T + diag(sinc theta) U): one real `eigh` and
three GEMMs forward, six backward. Forward + backward on a 2-core Xeon VM, compiled
(backends/csrc/skew_exp.cpp): 0.8 ms at n = 128 and 3.3 ms at n = 256 from the block-diagonal
initialisations, 1.3 and 4.8 ms from a Haar-random one, whose eigh is slower (the PyTorch-op
path: 2.0-2.2 and 6.6-10.1 ms; a complex eigh of iS: 2.9 ms at n = 128).

Backward: for a symmetric M and an entire f, the adjoint of the Frechet derivative is
V (F o (V^T G V)) V^T with the divided differences F_jk = f[lam_j, lam_k] (Daleckii-Krein). With
a = (theta_j + theta_k)/2, b = (theta_j - theta_k)/2 and sinc x = sin x / x:
    f[lam_j, lam_k] = -sinc(a) sinc(b) / 2,                          (no cancellation anywhere)
    g[lam_j, lam_k] = (cos a sinc b - sinc a cos b) / (2 theta_j theta_k)   when a >= 3|b|,
                    = (sinc theta_j - sinc theta_k) / (lam_j - lam_k)        when a < 3|b|,
                    = its Taylor series -1/6 + (lam_j + lam_k)/120 - ...   when both are tiny;
each branch is used where it does not cancel. They are evaluated in float64 on [n, n].
The gradient returned is the skew-symmetric part: the map is only defined on skew matrices, and
its symmetric part would be that of f(S^T S) + g(S^T S) S, not of exp.
"""

import torch

from ..backends import compiled_loops

_TINY_ANGLE = 1e-4  # below it sin(x)/x is replaced by 1 - x^2/6 (exact to float64 there)
_TINY_PAIR = 1e-3  # both angles below it: the Taylor series of g's divided difference


def _sinc(x: torch.Tensor) -> torch.Tensor:
    """sin(x) / x, elementwise (torch.sinc is normalised and not vectorised on the CPU)."""
    return torch.where(x.abs() < _TINY_ANGLE, 1 - x * x / 6, torch.sin(x) / x)


def divided_differences(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(f[lam_j, lam_k], g[lam_j, lam_k]) [n, n] for f = cos(sqrt l), g = sinc(sqrt l) at
    lam = theta^2, theta >= 0 [n]; see the module docstring for the branches."""
    half = theta / 2  # [n]
    sin_h, cos_h = half.sin(), half.cos()  # [n]
    # angle-addition from the [n] half angles: a and b need no [n, n] transcendental calls.
    sc = torch.outer(sin_h, cos_h)  # [n, n]
    cc = torch.outer(cos_h, cos_h)  # [n, n]
    ss = torch.outer(sin_h, sin_h)  # [n, n]
    a = half[:, None] + half[None, :]  # [n, n], >= 0
    b = half[:, None] - half[None, :]  # [n, n]
    sinc_a = torch.where(a < _TINY_ANGLE, 1 - a * a / 6, (sc + sc.T) / a)
    sinc_b = torch.where(b.abs() < _TINY_ANGLE, 1 - b * b / 6, (sc - sc.T) / b)
    dd_cos = -0.5 * sinc_a * sinc_b

    lam = theta * theta  # [n]
    lam_j, lam_k = lam[:, None], lam[None, :]  # [n, 1], [1, n]
    close = ((cc - ss) * sinc_b - sinc_a * (cc + ss)) / (2 * torch.outer(theta, theta))
    sinc_theta = _sinc(theta)  # [n]
    apart = (sinc_theta[:, None] - sinc_theta[None, :]) / (lam_j - lam_k)
    tiny = -1 / 6 + (lam_j + lam_k) / 120 - (lam_j * lam_j + lam_j * lam_k + lam_k * lam_k) / 5040
    dd_sinc = torch.where(a >= 3 * b.abs(), close, apart)
    dd_sinc = torch.where(a + b.abs() < _TINY_PAIR, tiny, dd_sinc)
    return dd_cos, dd_sinc


def _forward(source: torch.Tensor, from_triangle: bool, polish: bool):
    """(W, theta, V, U) with U = V^T S: W = V (diag(cos theta) V^T + diag(sinc theta) U), three
    GEMMs, then W (3I - W^T W) / 2 when `polish`."""
    if compiled_loops.applies(source):
        w, theta, v, u = compiled_loops.loops().skew_exp_forward(
            source.contiguous(), from_triangle, polish, _TINY_ANGLE
        )
        return w, theta, v, u
    if from_triangle:
        upper = torch.triu(source, 1)
        skew = upper - upper.T
    else:
        skew = source
    lam, v = torch.linalg.eigh(skew.T @ skew)  # [n], [n, n]
    theta = lam.clamp_min(0).sqrt()  # [n]
    u = v.T @ skew  # [n, n]
    w = v @ (theta.cos()[:, None] * v.T + _sinc(theta)[:, None] * u)
    if polish:
        w = torch.addmm(w, w, w.T @ w, beta=1.5, alpha=-0.5)
    return w, theta, v, u


def _backward(grad_w, theta, v, u, from_triangle: bool) -> torch.Tensor:
    """dL/dS = -U^T (X + X^T) V^T + V (sinc(theta) o V^T G) with X = F_f o (V^T G V) + F_g o
    (V^T G U^T): the Daleckii-Krein formula of the module docstring, using S V = -U^T."""
    if compiled_loops.applies(grad_w):
        return compiled_loops.loops().skew_exp_backward(
            grad_w.contiguous(), theta, v, u, from_triangle, _TINY_ANGLE, _TINY_PAIR
        )
    dd_cos, dd_sinc = (d.to(grad_w.dtype) for d in divided_differences(theta.double()))
    g_v = v.T @ grad_w  # V^T G [n, n]
    inner = dd_cos * (g_v @ v) + dd_sinc * (g_v @ u.T)  # [n, n]
    grad = torch.addmm(v @ (_sinc(theta)[:, None] * g_v), u.T @ (inner + inner.T), v.T, alpha=-1)
    if from_triangle:  # through S = A - A^T, A = triu(source, 1): triu(K - K^T, 1)
        return torch.triu(grad - grad.T, 1)
    return (grad - grad.T) / 2


class _SkewMatrixExp(torch.autograd.Function):
    """exp(S) from S itself (from_triangle False) or from a square matrix whose strict upper
    triangle A gives S = A - A^T (from_triangle True: the skew built inside, so that a training
    step does not pay the autograd nodes of triu, the transpose and the subtraction). With
    `polish`, the orthogonality polish of parametrizations/orthogonal.py is applied inside, with
    the identity as its backward (exact on the tangent space; see _PolishOrthogonal there)."""

    @staticmethod
    def forward(ctx, source, from_triangle: bool, polish: bool):
        w, theta, v, u = _forward(source, from_triangle, polish)
        ctx.save_for_backward(theta, v, u)
        ctx.from_triangle = from_triangle
        return w

    @staticmethod
    def backward(ctx, grad_w):
        theta, v, u = ctx.saved_tensors
        return _backward(grad_w, theta, v, u, ctx.from_triangle), None, None


def skew_matrix_exp(skew: torch.Tensor) -> torch.Tensor:
    """exp(skew) [n, n] for a real skew-symmetric float32/float64 skew [n, n], differentiable
    (the gradient is the skew-symmetric part; see the module docstring)."""
    return _SkewMatrixExp.apply(skew, False, False)


def triangle_matrix_exp(weight: torch.Tensor, polish: bool = False) -> torch.Tensor:
    """exp(A - A^T) [n, n] with A = triu(weight, 1), differentiable in weight (whose diagonal and
    lower triangle get zero gradient); the same map as skew_matrix_exp of that skew matrix. With
    `polish`, one orthogonality polish step W (3I - W^T W) / 2 follows, inside the same op."""
    return _SkewMatrixExp.apply(weight, True, polish)
