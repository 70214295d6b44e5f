"""Orthogonal parametrisations: orthogonality (before and after training), each map against its
explicit formula and oracle, gradients, determinants, argument checks."""

import pytest
import torch

from tests.tolerances import RELATIVE, assert_close, relative_error
from trit_rnn.parametrizations import (
    PARAMETRIZATIONS,
    CayleyOrthogonal,
    ExpOrthogonal,
    HouseholderOrthogonal,
    Orthogonal,
    make_orthogonal,
)

F64 = torch.float64


def orthogonality_error(w: torch.Tensor) -> float:
    """max |W^T W - I|."""
    eye = torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
    w = w.detach()
    return float((w.T @ w - eye).abs().max())


def orthogonality_bound(size: int, dtype: torch.dtype) -> float:
    # The spec's bound: 10 * H * eps.
    return 10 * size * torch.finfo(dtype).eps


def inits_of(parametrization: str):
    return ("random",) if parametrization == "householder" else ("henaff", "cayley", "identity", "random")


@pytest.mark.parametrize("parametrization", sorted(PARAMETRIZATIONS))
@pytest.mark.parametrize("size", [20, 190])
def test_orthogonal_before_and_after_adam_float32(parametrization, size):
    module = make_orthogonal(parametrization, size, dtype=torch.float32)
    bound = orthogonality_bound(size, torch.float32)
    w0 = module()
    assert w0.shape == (size, size) and w0.dtype == torch.float32
    assert orthogonality_error(w0) < bound

    target = torch.randn(size, size)  # not orthogonal: the loss keeps pulling W off the manifold
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    for _ in range(20):
        optimizer.zero_grad()
        loss = (module() - target).pow(2).sum()
        loss.backward()
        optimizer.step()
    w = module()
    assert (w - w0).abs().max() > 0.1, "the parameters did not move: the check after training is vacuous"
    assert orthogonality_error(w) < bound


@pytest.mark.parametrize("parametrization", sorted(PARAMETRIZATIONS))
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_every_init_orthogonal_in_dtype(parametrization, dtype):
    size = 33  # odd: one unpaired unit in the block inits
    for init in inits_of(parametrization):
        module = make_orthogonal(parametrization, size, init=init, dtype=dtype)
        assert all(p.dtype == dtype for p in module.parameters())
        w = module()
        assert w.dtype == dtype
        assert orthogonality_error(w) < orthogonality_bound(size, dtype), init


@pytest.mark.parametrize("parametrization", sorted(PARAMETRIZATIONS))
def test_gradients_reach_raw_parameters(parametrization):
    module = make_orthogonal(parametrization, 6, dtype=F64)
    module().sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name


def test_exp_map_value_and_gradient_match_matrix_exp():
    module = ExpOrthogonal(7, init="random", dtype=F64)
    with torch.no_grad():
        module.weight.add_(0.3 * torch.randn(7, 7, dtype=F64))  # lower triangle non-zero too
    upstream = torch.randn(7, 7, dtype=F64)

    w = module()
    (w * upstream).sum().backward()

    weight = module.weight.detach().clone().requires_grad_()
    upper = torch.triu(weight, 1)
    expected = torch.matrix_exp(upper - upper.T)
    (expected * upstream).sum().backward()

    assert_close(w, expected, F64, "exp map value")
    assert_close(module.weight.grad, weight.grad, F64, "exp map gradient")
    # Only the strict upper triangle is a parameter of W.
    assert torch.all(torch.tril(module.weight.grad) == 0)
    assert torch.triu(module.weight.grad, 1).abs().max() > 0


@pytest.mark.parametrize("parametrization", sorted(PARAMETRIZATIONS))
def test_gradcheck(parametrization):
    module = make_orthogonal(parametrization, 5, dtype=F64)
    names = [name for name, _ in module.named_parameters()]

    def w_of(*values):
        return torch.func.functional_call(module, dict(zip(names, values, strict=True)), ())

    inputs = tuple(p.detach().clone().requires_grad_() for p in module.parameters())
    assert torch.autograd.gradcheck(w_of, inputs)


def test_cayley_matches_explicit_inverse_formula_and_geotorch_convention():
    size, num_negative = 9, 4
    module = CayleyOrthogonal(size, init="random", num_negative=num_negative, dtype=F64)
    with torch.no_grad():
        module.weight.add_(0.5 * torch.randn(size, size, dtype=F64))
    upper = torch.triu(module.weight.detach(), 1)
    s = upper - upper.T
    eye = torch.eye(size, dtype=F64)
    d = torch.diag(torch.tensor([1.0] * (size - num_negative) + [-1.0] * num_negative, dtype=F64))

    w = module()
    assert_close(w, torch.linalg.inv(eye + s) @ (eye - s) @ d, F64, "(I + S)^-1 (I - S) D")

    def geotorch_cayley(b):  # PyTorch / geotorch convention
        return torch.linalg.inv(eye - b / 2) @ (eye + b / 2)

    assert_close(w, geotorch_cayley(-2 * s) @ d, F64, "geotorch map at B = -2S")
    # Pitfall 3: the same skew matrix in the other convention is a different rotation.
    assert (w - geotorch_cayley(s) @ d).abs().max() > 0.1


def test_cayley_determinant_follows_num_negative():
    for num_negative in range(5):
        module = CayleyOrthogonal(6, init="random", num_negative=num_negative, dtype=F64)
        assert int(module.diagonal.eq(-1).sum()) == num_negative
        assert "diagonal" in dict(module.named_buffers())
        assert len(list(module.parameters())) == 1  # D is fixed, not trained
        det = torch.linalg.det(module().detach())
        assert abs(float(det) - (-1) ** num_negative) < 1e-12


def test_cayley_reaches_eigenvalue_minus_one_only_with_negative_diagonal():
    # Identity init: W = D, so the -1 entries are exactly eigenvalues -1.
    plain = CayleyOrthogonal(4, init="identity", dtype=F64)()
    flipped = CayleyOrthogonal(4, init="identity", num_negative=2, dtype=F64)()
    assert torch.equal(plain, torch.eye(4, dtype=F64))
    assert torch.equal(flipped, torch.diag(torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=F64)))


def explicit_householder_product(reflectors: torch.Tensor) -> torch.Tensor:
    n = reflectors.shape[1]
    w = torch.eye(n, dtype=reflectors.dtype)
    for u in reflectors:
        w = w @ (torch.eye(n, dtype=reflectors.dtype) - 2 * torch.outer(u, u) / u.dot(u))
    return w


@pytest.mark.parametrize("num_reflections", [1, 3, 8, 11])
def test_householder_matches_explicit_product(num_reflections):
    size = 8
    module = HouseholderOrthogonal(size, num_reflections=num_reflections, dtype=F64)
    with torch.no_grad():
        module.reflectors.add_(torch.randn(num_reflections, size, dtype=F64))  # dense reflectors
    upstream = torch.randn(size, size, dtype=F64)
    w = module()
    (w * upstream).sum().backward()

    reflectors = module.reflectors.detach().clone().requires_grad_()
    expected = explicit_householder_product(reflectors)
    (expected * upstream).sum().backward()

    assert_close(w, expected, F64, "compact WY vs explicit product")
    assert_close(module.reflectors.grad, reflectors.grad, F64, "Householder gradient")
    assert abs(float(torch.linalg.det(w.detach())) - (-1) ** num_reflections) < 1e-12


def test_householder_default_has_size_reflections():
    module = HouseholderOrthogonal(5)
    assert module.num_reflections == 5 and module.reflectors.shape == (5, 5)
    assert HouseholderOrthogonal(5, num_reflections=2).reflectors.shape == (2, 5)


def test_skew_maps_ignore_the_lower_triangle():
    for cls in (ExpOrthogonal, CayleyOrthogonal):
        module = cls(6, dtype=F64)
        w = module()
        with torch.no_grad():
            module.weight.add_(torch.tril(torch.randn(6, 6, dtype=F64)))
        assert torch.equal(module(), w), cls.__name__


def test_make_orthogonal_builds_the_named_class_with_its_init():
    assert type(make_orthogonal("exp", 4)) is ExpOrthogonal
    assert make_orthogonal("exp", 4).init == "henaff"
    assert make_orthogonal("exp", 4, init="cayley").init == "cayley"
    cayley = make_orthogonal("cayley", 4, num_negative=1)
    assert type(cayley) is CayleyOrthogonal and cayley.init == "cayley" and cayley.num_negative == 1
    householder = make_orthogonal("householder", 4, num_reflections=2)
    assert type(householder) is HouseholderOrthogonal and householder.num_reflections == 2
    assert all(isinstance(make_orthogonal(name, 3), Orthogonal) for name in PARAMETRIZATIONS)
    assert all(make_orthogonal(name, 3).size == 3 for name in PARAMETRIZATIONS)


def test_generator_makes_init_reproducible():
    for name in PARAMETRIZATIONS:
        a = make_orthogonal(name, 6, init="random", generator=torch.Generator().manual_seed(3))()
        b = make_orthogonal(name, 6, init="random", generator=torch.Generator().manual_seed(3))()
        c = make_orthogonal(name, 6, init="random", generator=torch.Generator().manual_seed(4))()
        assert torch.equal(a, b) and not torch.equal(a, c), name


@pytest.mark.parametrize(
    "build, argument",
    [
        (lambda: make_orthogonal("givens", 4), "parametrization"),
        (lambda: make_orthogonal("exp", 0), "size"),
        (lambda: make_orthogonal("exp", 4.0), "size"),
        (lambda: make_orthogonal("exp", True), "size"),
        (lambda: make_orthogonal("exp", 4, init="orthogonal"), "init"),
        (lambda: make_orthogonal("cayley", 4, init="nope"), "init"),
        (lambda: make_orthogonal("householder", 4, init="henaff"), "init"),
        (lambda: CayleyOrthogonal(4, num_negative=5), "num_negative"),
        (lambda: CayleyOrthogonal(4, num_negative=-1), "num_negative"),
        (lambda: CayleyOrthogonal(0), "size"),
        (lambda: HouseholderOrthogonal(4, num_reflections=0), "num_reflections"),
        (lambda: HouseholderOrthogonal(-2), "size"),
        (lambda: ExpOrthogonal(4, dtype=torch.int64), "dtype"),
        (lambda: CayleyOrthogonal(4, compute_dtype=torch.int32), "compute_dtype"),
        (lambda: HouseholderOrthogonal(4, compute_dtype="float64"), "compute_dtype"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(build, argument):
    with pytest.raises(ValueError, match=argument) as raised:
        build()
    assert "got" in str(raised.value)


def test_unknown_parametrization_message_lists_allowed_values():
    with pytest.raises(ValueError) as raised:
        make_orthogonal("givens", 4)
    message = str(raised.value)
    assert "parametrization" in message and "'givens'" in message
    assert all(name in message for name in PARAMETRIZATIONS)


def float64_orthogonality_error(w: torch.Tensor) -> float:
    """max |W^T W - I| with the product taken in float64: the error of W itself, not of the check."""
    return orthogonality_error(w.detach().to(F64))


@pytest.mark.parametrize("parametrization", sorted(PARAMETRIZATIONS))
@pytest.mark.parametrize("size", [20, 64, 190])
def test_float32_matrix_is_polished_to_rounding_level(parametrization, size):
    """The default float32 W: the map in float32 plus one Newton-Schulz step. It must be as
    orthogonal as float32 rounding allows (length-H dot products: ~sqrt(H) ulps), better than the
    raw float32 map, and equal, value and gradient, to the float64 map within float32 tolerance."""
    module = make_orthogonal(parametrization, size, init="random", dtype=torch.float32)
    wide = make_orthogonal(parametrization, size, init="random", dtype=F64)
    wide.load_state_dict({k: v.to(F64) for k, v in module.state_dict().items()})
    upstream = torch.randn(size, size, dtype=F64)

    w = module()
    (w * upstream.float()).sum().backward()
    w_wide = wide()
    (w_wide * upstream).sum().backward()

    assert w.dtype == torch.float32
    eps = torch.finfo(torch.float32).eps
    assert float64_orthogonality_error(w) < size**0.5 * eps
    assert float64_orthogonality_error(w) < float64_orthogonality_error(
        module._matrix(torch.float32, polish=False)
    )
    assert_close(w, w_wide, torch.float32, "polished float32 map")
    # Gradients: the float32 Frechet derivative of a Haar-random exp map at H=190 is itself only
    # ~1e-4 accurate, so the polished map must be within the float32 tolerance or no worse than
    # the raw float32 map.
    raw = make_orthogonal(parametrization, size, init="random", dtype=torch.float32)
    raw.load_state_dict(module.state_dict())
    (raw._matrix(torch.float32, polish=False) * upstream.float()).sum().backward()
    for p, p_raw, p_wide in zip(module.parameters(), raw.parameters(), wide.parameters(), strict=True):
        assert p.grad.dtype == torch.float32
        allowed = max(RELATIVE[torch.float32], relative_error(p_raw.grad, p_wide.grad))
        assert relative_error(p.grad, p_wide.grad) <= allowed


@pytest.mark.parametrize("parametrization", sorted(PARAMETRIZATIONS))
def test_compute_dtype_float64_rounds_the_float64_map_once(parametrization):
    size = 64
    module = make_orthogonal(parametrization, size, init="random", compute_dtype=F64)
    wide = make_orthogonal(parametrization, size, init="random", dtype=F64)
    wide.load_state_dict({k: v.to(F64) for k, v in module.state_dict().items()})
    w = module()
    assert w.dtype == torch.float32
    assert torch.equal(w, wide().detach().float())
    assert float64_orthogonality_error(w) < 2 * torch.finfo(torch.float32).eps
    w.sum().backward()
    assert all(p.grad is not None and p.grad.abs().max() > 0 for p in module.parameters())
