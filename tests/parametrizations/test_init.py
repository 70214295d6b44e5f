"""Initialisers: block structure, the rotation angles each one gives under each map (cells.md
pitfall 3), and the Haar-random starts."""

import math

import pytest
import torch

from tests.tolerances import assert_close
from trit_rnn.parametrizations import CayleyOrthogonal, ExpOrthogonal, HouseholderOrthogonal
from trit_rnn.parametrizations.init import (
    cayley_inverse,
    cayley_skew,
    haar_cayley_skew,
    haar_exp_skew,
    haar_householder_reflectors,
    haar_special_orthogonal,
    henaff_skew,
    identity_skew,
    log_special_orthogonal,
)

F64 = torch.float64


def block_values(skew: torch.Tensor) -> torch.Tensor:
    """s_i = K[2i, 2i+1] of a block-diagonal skew matrix."""
    first = torch.arange(0, skew.shape[0] - 1, 2)
    return skew[first, first + 1]


def rotation_angles(w: torch.Tensor) -> torch.Tensor:
    """Sorted |arg lambda| over the eigenvalues of W (each pair's angle appears twice)."""
    return torch.linalg.eigvals(w.to(F64)).angle().abs().sort().values


def expected_angles(block_angles: torch.Tensor, n: int) -> torch.Tensor:
    """Each block contributes +-angle; an unpaired unit contributes eigenvalue 1 (angle 0)."""
    angles = block_angles.abs().repeat_interleave(2)
    if n % 2:
        angles = torch.cat([angles, angles.new_zeros(1)])
    return angles.sort().values


def cayley_map(skew: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(skew.shape[0], dtype=skew.dtype)
    return torch.linalg.solve(eye + skew, eye - skew)


@pytest.mark.parametrize("skew_of", [henaff_skew, cayley_skew])
@pytest.mark.parametrize("n", [1, 2, 7, 10])
def test_block_skew_structure(skew_of, n):
    skew = skew_of(n)
    assert skew.shape == (n, n) and skew.dtype == F64
    assert torch.equal(skew, -skew.T)
    expected = torch.zeros(n, n, dtype=F64)
    s = block_values(skew)
    for i, value in enumerate(s):
        expected[2 * i, 2 * i + 1], expected[2 * i + 1, 2 * i] = value, -value
    assert torch.equal(skew, expected)  # nothing outside the 2x2 blocks; unpaired unit all zero
    if n >= 2:
        assert torch.all(s != 0)


def test_henaff_values_cover_minus_pi_to_pi():
    s = block_values(henaff_skew(2000))
    assert s.min() >= -math.pi and s.max() <= math.pi
    assert s.min() < -3.0 and s.max() > 3.0 and (s < 0).float().mean().sub(0.5).abs() < 0.05


def test_cayley_values_are_minus_tan_half_u():
    s = block_values(cayley_skew(2000))
    u = -2 * torch.atan(s)
    assert torch.all(s < 0) and u.min() >= 0 and u.max() <= math.pi / 2
    assert u.min() < 0.01 and u.max() > math.pi / 2 - 0.01  # u spans (0, pi/2)


def test_henaff_fed_to_exp_map_rotates_by_abs_s():
    n = 11
    module = ExpOrthogonal(n, init="henaff", dtype=F64)
    s = block_values(module.skew().detach())
    assert_close(rotation_angles(module()), expected_angles(s, n), F64, "exp(henaff) angles")
    # Orientation too: each block of exp(K) is [[cos s, sin s], [-sin s, cos s]].
    w = module().detach()
    assert_close(w[0:2, 0:2], torch.tensor([[s[0].cos(), s[0].sin()], [-s[0].sin(), s[0].cos()]]), F64)


def test_cayley_init_fed_to_cayley_map_rotates_by_u():
    n = 11
    module = CayleyOrthogonal(n, init="cayley", dtype=F64)
    s = block_values(module.skew().detach())
    u = -2 * torch.atan(s)  # s = -tan(u/2)
    w = module().detach()
    assert_close(rotation_angles(w), expected_angles(u, n), F64, "cayley(cayley init) angles")
    # Exactly the rotation exp would give with angle u: Cayley(S) = exp(-2 atan(S)) blockwise.
    k = torch.zeros(n, n, dtype=F64)
    first = torch.arange(0, n - 1, 2)
    k[first, first + 1], k[first + 1, first] = u, -u
    assert_close(w, torch.matrix_exp(k), F64, "cayley(cayley init) = exp(blocks of angle u)")


def test_cayley_init_fed_to_exp_map_rotates_by_tan_half_u_not_u():
    n = 10
    module = ExpOrthogonal(n, init="cayley", dtype=F64)
    s = block_values(module.skew().detach())
    u = -2 * torch.atan(s)
    angles = rotation_angles(module())
    assert_close(angles, expected_angles(torch.tan(u / 2), n), F64, "exp(cayley init) angles")
    assert (angles - expected_angles(u, n)).abs().max() > 0.01


def test_henaff_fed_to_cayley_map_rotates_by_two_atan_abs_s():
    n = 10
    skew = henaff_skew(n)
    s = block_values(skew)
    assert_close(rotation_angles(cayley_map(skew)), expected_angles(2 * torch.atan(s.abs()), n), F64)


@pytest.mark.parametrize("cls", [ExpOrthogonal, CayleyOrthogonal])
def test_identity_init_gives_identity(cls):
    assert torch.equal(identity_skew(5), torch.zeros(5, 5, dtype=F64))
    assert torch.equal(cls(5, init="identity", dtype=F64)(), torch.eye(5, dtype=F64))


@pytest.mark.parametrize("n", [1, 2, 9, 40])
def test_log_and_cayley_inverse_invert_their_maps(n):
    q = haar_special_orthogonal(n)
    assert abs(float(torch.linalg.det(q)) - 1) < 1e-12
    log_q = log_special_orthogonal(q)
    assert torch.equal(log_q, -log_q.T)
    assert_close(torch.matrix_exp(log_q), q, F64, "exp(log Q)")
    s = cayley_inverse(q)
    assert torch.equal(s, -s.T)
    assert_close(cayley_map(s), q, F64, "cayley(cayley_inverse(Q))")


def test_haar_skews_map_to_the_same_haar_sample():
    q = haar_special_orthogonal(12, torch.Generator().manual_seed(5))
    exp_start = torch.matrix_exp(haar_exp_skew(12, torch.Generator().manual_seed(5)))
    cayley_start = cayley_map(haar_cayley_skew(12, torch.Generator().manual_seed(5)))
    assert_close(exp_start, q, F64, "exp(haar_exp_skew)")
    assert_close(cayley_start, q, F64, "cayley(haar_cayley_skew)")


def mean_squared_trace(sample, count=300) -> float:
    with torch.no_grad():
        return sum(float(torch.trace(sample())) ** 2 for _ in range(count)) / count


@pytest.mark.parametrize(
    "sample",
    [
        lambda: haar_special_orthogonal(8),
        lambda: ExpOrthogonal(8, init="random", dtype=F64)(),
        lambda: CayleyOrthogonal(8, init="random", num_negative=3, dtype=F64)(),
        lambda: HouseholderOrthogonal(8, dtype=F64)(),
        lambda: HouseholderOrthogonal(8, num_reflections=10, dtype=F64)(),
    ],
)
def test_random_init_has_haar_trace_moments(sample):
    # For Haar W on either component of O(n), n >= 3: E (tr W)^2 = 1 (std of the mean over 300
    # draws ~0.08). Henaff's independent uniform angles give E (tr W)^2 = n instead.
    assert 0.7 < mean_squared_trace(sample) < 1.4


def test_henaff_is_not_haar():  # the moment test above can fail
    assert mean_squared_trace(lambda: ExpOrthogonal(8, init="henaff", dtype=F64)()) > 5


def test_haar_householder_reflectors_layout():
    n = 6
    reflectors = haar_householder_reflectors(n, n)
    assert torch.all(torch.tril(reflectors, -1) == 0)  # u_k lives on coordinates k..n-1
    assert torch.equal(reflectors[n - 1], torch.eye(n, dtype=F64)[n - 1])
    fewer = haar_householder_reflectors(n, 3)
    assert fewer.shape == (3, n) and torch.all(fewer != 0)  # m < n: Gaussian, dense


@pytest.mark.parametrize(
    "skew_of", [henaff_skew, cayley_skew, identity_skew, haar_exp_skew, haar_cayley_skew]
)
def test_skew_generators_check_n_and_honour_dtype(skew_of):
    with pytest.raises(ValueError, match="n must be"):
        skew_of(0)
    assert skew_of(4, dtype=torch.float32).dtype == torch.float32
