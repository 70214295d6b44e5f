"""Initialisers for the orthogonal parametrisations.

Skew generators return a skew-symmetric K [n, n] (float64 unless told otherwise); a module stores
its strict upper triangle, so that A - A^T = K. Which map K is fed to decides the angles of W:

    exp map     W = exp(K):                a block [[0, s], [-s, 0]] rotates by angle |s|
    Cayley map  W = (I + K)^{-1} (I - K):  the same block rotates by angle 2 atan(|s|)

- `henaff_skew`: s ~ U(-pi, pi), meant for the exp map (angles |s|, uniform on [0, pi)).
- `cayley_skew`: s = -tan(u/2), u ~ U(0, pi/2), meant for the Cayley map (angles exactly u).
  Fed to the exp map instead (as expRNN does) the angles are |s| = tan(u/2), not u.
- `identity_skew`: K = 0, W = I under both maps.
- `haar_exp_skew` / `haar_cayley_skew`: K whose image under the exp / Cayley map is a
  Haar-random element of SO(n).
- `haar_householder_reflectors`: reflectors whose product is Haar-random on the component of
  O(n) with det (-1)^m (when m >= n; a product of m < n reflections cannot be Haar).
"""

import math

import torch

FLOAT = torch.float64


def _check_size(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return n


def _block_skew(s: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """Block-diagonal skew [n, n] with blocks [[0, s_i], [-s_i, 0]] on units (2i, 2i+1); an
    unpaired last unit (odd n) gets a zero row and column."""
    skew = torch.zeros(n, n, dtype=FLOAT)
    first = torch.arange(0, 2 * s.numel(), 2)
    skew[first, first + 1] = s
    skew[first + 1, first] = -s
    return skew.to(dtype)


def henaff_skew(n: int, generator: torch.Generator | None = None, dtype: torch.dtype = FLOAT) -> torch.Tensor:
    """Henaff et al. (2016) init: 2x2 blocks with s ~ U(-pi, pi). Returns K [n, n]."""
    n = _check_size(n)
    s = (torch.rand(n // 2, generator=generator, dtype=FLOAT) * 2 - 1) * math.pi
    return _block_skew(s, n, dtype)


def cayley_skew(n: int, generator: torch.Generator | None = None, dtype: torch.dtype = FLOAT) -> torch.Tensor:
    """Helfrich et al. (scoRNN) "Cayley init": s = -tan(u/2), u ~ U(0, pi/2). Returns K [n, n].

    Under W = (I + K)^{-1} (I - K) the blocks rotate by exactly u."""
    n = _check_size(n)
    u = torch.rand(n // 2, generator=generator, dtype=FLOAT) * (math.pi / 2)
    return _block_skew(-torch.tan(u / 2), n, dtype)


def identity_skew(
    n: int, generator: torch.Generator | None = None, dtype: torch.dtype = FLOAT
) -> torch.Tensor:
    """K = 0 [n, n]: W = I under the exp and the Cayley map. (`generator` is accepted and unused so
    that every skew generator has one signature.)"""
    n = _check_size(n)
    return torch.zeros(n, n, dtype=dtype)


def haar_special_orthogonal(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Haar-random Q in SO(n) [n, n], float64 (QR of a Gaussian with the sign fix of Mezzadri)."""
    n = _check_size(n)
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=FLOAT))
    q = q * torch.sgn(torch.diagonal(r))  # without this, QR's sign convention biases Q
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]  # right-multiplying by a fixed reflection maps Haar O^- onto Haar SO
    return q


def log_special_orthogonal(q: torch.Tensor) -> torch.Tensor:
    """Principal logarithm of Q in SO(n): skew K [n, n] with exp(K) = Q, angles in (-pi, pi].

    Q is normal, so for distinct eigenvalues (a Haar sample has them almost surely) the
    eigenvector matrix V is unitary and log Q = V diag(i theta) V^H. Ill-defined when Q has an
    eigenvalue -1 of multiplicity > 1."""
    eigenvalues, vectors = torch.linalg.eig(q.to(FLOAT))
    log_q = (vectors * (1j * torch.angle(eigenvalues))) @ vectors.conj().T
    skew = log_q.real
    return (skew - skew.T) / 2


def cayley_inverse(q: torch.Tensor) -> torch.Tensor:
    """Skew S [n, n] with (I + S)^{-1} (I - S) = Q (the map is an involution); Q must not have
    eigenvalue -1."""
    q = q.to(FLOAT)
    eye = torch.eye(q.shape[0], dtype=FLOAT)
    skew = torch.linalg.solve(eye + q, eye - q)
    return (skew - skew.T) / 2


def haar_exp_skew(
    n: int, generator: torch.Generator | None = None, dtype: torch.dtype = FLOAT
) -> torch.Tensor:
    """K [n, n] with exp(K) Haar-random in SO(n)."""
    return log_special_orthogonal(haar_special_orthogonal(n, generator)).to(dtype)


def haar_cayley_skew(
    n: int, generator: torch.Generator | None = None, dtype: torch.dtype = FLOAT
) -> torch.Tensor:
    """K [n, n] with (I + K)^{-1} (I - K) Haar-random in SO(n)."""
    return cayley_inverse(haar_special_orthogonal(n, generator)).to(dtype)


def haar_householder_reflectors(
    n: int, m: int, generator: torch.Generator | None = None, dtype: torch.dtype = FLOAT
) -> torch.Tensor:
    """Reflectors u_1..u_m [m, n] for W = H_1 ... H_m, H_k = I - 2 u_k u_k^T / |u_k|^2.

    m >= n: Stewart's construction. u_k (k < n) lives on coordinates k..n-1 and maps e_k to a
    uniform direction there, u_n = e_n, so H_1 ... H_n is Haar on {det = (-1)^n}; the m - n extra
    Gaussian reflectors keep it Haar (right-invariance), now on {det = (-1)^m}.
    m < n: Gaussian reflectors (a product of m < n reflections fixes an (n - m)-dim subspace, so
    nothing is Haar there)."""
    n = _check_size(n)
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be a positive int, got {m!r}")
    reflectors = torch.randn(m, n, generator=generator, dtype=FLOAT)
    if m >= n:
        for k in range(n - 1):
            x = reflectors[k, k:].clone()
            # H(x + |x| e_k) e_k = -x/|x|: uniform on the sphere since x is symmetric.
            x[0] += torch.linalg.vector_norm(x)
            reflectors[k] = 0
            reflectors[k, k:] = x
        reflectors[n - 1] = 0
        reflectors[n - 1, n - 1] = 1  # H_n = diag(1, ..., 1, -1)
    return reflectors.to(dtype)


SKEW_INITS = {
    "henaff": henaff_skew,
    "cayley": cayley_skew,
    "identity": identity_skew,
}
