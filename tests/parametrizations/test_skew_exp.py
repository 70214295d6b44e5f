"""The eigendecomposition exp map of a skew matrix equals torch.matrix_exp, value and gradient, in
float64, including the degenerate spectra every block initialisation produces, tiny and large
angles. The map is defined on skew matrices, so the gradients compared are their skew parts."""

import pytest
import torch

from tests.cpu_loops import PYTHON_LOOPS, select_backend
from tests.tolerances import assert_close
from trit_rnn.backends import compiled_loops
from trit_rnn.parametrizations import ExpOrthogonal, skew_exp
from trit_rnn.parametrizations.orthogonal import polish_orthogonal
from trit_rnn.parametrizations.skew_exp import skew_matrix_exp, triangle_matrix_exp

F64 = torch.float64


def skew_part(m: torch.Tensor) -> torch.Tensor:
    return (m - m.T) / 2


def skew_of(kind: str, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    scales = {"random": 1.0, "large_angles": 4.0, "tiny_angles": 1e-5, "mixed_scales": None}
    if kind in scales:
        a = torch.randn(n, n, generator=g, dtype=F64)
        # mixed: rows of very different sizes, so tiny and large angles meet in one spectrum
        a = a * (scales[kind] if scales[kind] else torch.logspace(-6, 0.5, n, dtype=F64)[:, None])
    elif kind == "zero":
        a = torch.zeros(n, n, dtype=F64)
    else:  # equal 2x2 rotation blocks: every eigenvalue +-0.7i is repeated n/2 times
        a = torch.zeros(n, n, dtype=F64)
        a[torch.arange(0, n - 1, 2), torch.arange(1, n, 2)] = 0.7
    a = a.triu(1)
    return a - a.T


@pytest.mark.parametrize(
    "kind", ["random", "large_angles", "tiny_angles", "mixed_scales", "zero", "repeated_blocks"]
)
@pytest.mark.parametrize("n", [1, 5, 64])
@pytest.mark.parametrize("backend", ["torch", PYTHON_LOOPS])
def test_matches_matrix_exp_value_and_gradient(kind, n, backend, monkeypatch):
    """On the compiled divided differences (backends/compiled_loops.py) and on the PyTorch ops."""
    select_backend(backend, monkeypatch)
    skew = skew_of(kind, n).requires_grad_()
    upstream = torch.randn(n, n, dtype=F64)
    ours = skew_matrix_exp(skew)
    (grad,) = torch.autograd.grad((ours * upstream).sum(), skew)
    reference = torch.matrix_exp(skew)
    (ref_grad,) = torch.autograd.grad((reference * upstream).sum(), skew)
    assert_close(ours, reference, F64, "exp(S)")
    assert_close(grad, skew_part(ref_grad), F64, "gradient")


def test_gradient_is_skew():
    skew = skew_of("random", 6).requires_grad_()
    (grad,) = torch.autograd.grad((skew_matrix_exp(skew) * torch.randn(6, 6, dtype=F64)).sum(), skew)
    assert torch.equal(grad, -grad.T)


def test_gradcheck():
    a = torch.randn(4, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: skew_matrix_exp(x.triu(1) - x.triu(1).T), (a,))


@pytest.mark.parametrize("kind", ["random", "tiny_angles", "repeated_blocks"])
@pytest.mark.parametrize("backend", ["torch", PYTHON_LOOPS])
def test_the_map_from_the_triangle_equals_the_map_of_its_skew_matrix(kind, backend, monkeypatch):
    """triangle_matrix_exp(weight) builds S = A - A^T, A = triu(weight, 1), inside the op: value
    and gradient those of skew_matrix_exp through the autograd of triu and the subtraction,
    including a zero gradient on the diagonal and lower triangle."""
    select_backend(backend, monkeypatch)
    g = torch.Generator().manual_seed(11)
    weight = (skew_of(kind, 12) + torch.randn(12, 12, generator=g, dtype=F64).tril()).requires_grad_()
    upstream = torch.randn(12, 12, generator=g, dtype=F64)
    ours = triangle_matrix_exp(weight)
    (grad,) = torch.autograd.grad((ours * upstream).sum(), weight)
    upper = weight.triu(1)
    reference = skew_matrix_exp(upper - upper.T)
    (ref_grad,) = torch.autograd.grad((reference * upstream).sum(), weight)
    assert_close(ours, reference, F64, "exp(A - A^T)")
    assert_close(grad, ref_grad, F64, "gradient")
    assert torch.equal(grad.tril(), torch.zeros_like(grad))
    assert torch.autograd.gradcheck(triangle_matrix_exp, (weight.detach()[:4, :4].clone().requires_grad_(),))


def test_polish_backward_equals_the_gradient_through_its_formula():
    """The polish step's identity backward (orthogonal._PolishOrthogonal) is the exact gradient at
    an orthogonal W for any parameter that moves W along the orthogonal group: here the weight of
    exp(A - A^T), against autograd through W (3I - W^T W) / 2 itself, in float64."""
    g = torch.Generator().manual_seed(12)
    weight = (torch.randn(16, 16, generator=g, dtype=F64) * 0.5).requires_grad_()
    upstream = torch.randn(16, 16, generator=g, dtype=F64)
    (ours,) = torch.autograd.grad((polish_orthogonal(triangle_matrix_exp(weight)) * upstream).sum(), weight)
    w = triangle_matrix_exp(weight)
    (reference,) = torch.autograd.grad(((1.5 * w - 0.5 * (w @ (w.T @ w))) * upstream).sum(), weight)
    assert_close(ours, reference, F64, "gradient through the polish step")


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("backend", ["torch", PYTHON_LOOPS])
def test_the_polish_inside_the_map_equals_the_polish_step_after_it(dtype, backend, monkeypatch):
    """triangle_matrix_exp(weight, polish=True) (the polish inside the op, compiled or PyTorch) is
    polish_orthogonal(triangle_matrix_exp(weight)): value, and gradient through the identity."""
    select_backend(backend, monkeypatch)
    g = torch.Generator().manual_seed(13)
    weight = (torch.randn(24, 24, generator=g, dtype=F64) * 0.4).to(dtype)
    upstream = torch.randn(24, 24, generator=g, dtype=F64).to(dtype)
    results = []
    for inside in (True, False):
        leaf = weight.clone().requires_grad_()
        w = triangle_matrix_exp(leaf, polish=True) if inside else polish_orthogonal(triangle_matrix_exp(leaf))
        (w * upstream).sum().backward()
        results.append((w, leaf.grad))
    (w_inside, grad_inside), (w_after, grad_after) = results
    assert_close(w_inside, w_after, dtype, "polished W")
    assert_close(grad_inside, grad_after, dtype, "gradient")


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_both_methods_of_the_parametrisation_agree(dtype):
    eigh = ExpOrthogonal(20, init="random", dtype=dtype, method="eigh")
    pade = ExpOrthogonal(20, init="random", dtype=dtype, method="matrix_exp")
    pade.load_state_dict(eigh.state_dict())
    w_eigh, w_pade = eigh(), pade()
    w_eigh.sum().backward()
    w_pade.sum().backward()
    assert_close(w_eigh, w_pade, dtype, "W")
    assert_close(eigh.weight.grad, pade.weight.grad, dtype, "gradient")


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="method"):
        ExpOrthogonal(4, method="pade")


def test_compiled_divided_differences_equal_the_pytorch_ops():
    """Every branch: tiny pairs, tiny single angles, close and far-apart pairs, repeated angles."""
    theta = torch.tensor(
        [0.0, 1e-9, 5e-5, 2e-4, 9e-4, 0.3, 0.3, 0.3000001, 1.0, 2.5, 3.1, 3.14159], dtype=F64
    )
    compiled = compiled_loops.loops().skew_exp_divided_differences(
        theta, skew_exp._TINY_ANGLE, skew_exp._TINY_PAIR
    )
    for ours, theirs, name in zip(
        compiled, skew_exp.divided_differences(theta), ["cos", "sinc"], strict=True
    ):
        assert_close(ours, theirs, F64, f"divided differences of {name}")
