"""Complex dense_recurrence through the public op against torch autograd of the complex128 reference
loop: outputs, h_n and every gradient (pre, weight_hh, h0, act_bias) at awkward shapes, modReLU at
z = 0, gradient checkpointing, the custom-op registration, torch.compile and bad inputs."""

import logging

import pytest
import torch

from tests.cpu_loops import PYTHON_LOOPS, select_backend
from tests.reference import complex_dense_recurrence_reference
from tests.tolerances import assert_close
from trit_rnn.functional import dense_recurrence
from trit_rnn.validation import REAL_DTYPE_OF_COMPLEX

NONLINEARITIES = ["identity", "modrelu"]
EPS = 1e-5
SHAPES = [(1, 3, 5), (7, 3, 20), (5, 3, 33), (9, 2, 17)]
SHAPE_IDS = ["T1-B3-H5", "T7-B3-H20", "T5-B3-H33", "T9-B2-H17"]


def complex_randn(*shape, generator):
    """Standard complex normal: E|x|^2 = 1."""
    parts = torch.randn(2, *shape, generator=generator, dtype=torch.float64)
    return torch.complex(parts[0], parts[1]) / 2**0.5


def make_case(T, B, H, nonlinearity, *, with_h0=True, seed=0):
    """complex128 leaf tensors (act_bias float64); W a scaled unitary matrix.

    modReLU's gain (|z| + b) / (|z| + eps) and its derivative grow like b / |z| for |z| << b, which
    amplifies any rounding of z: biases in [-0.3, 0.05] give both active and inactive units with a
    moderate gain, so that complex64 can be held to the float32 tolerance (b up to 0.16 costs
    torch's own complex64 autograd of the reference 2.5e-5)."""
    g = torch.Generator().manual_seed(seed)
    pre = complex_randn(T, B, H, generator=g) * 0.5
    weight = torch.linalg.qr(complex_randn(H, H, generator=g))[0] * 0.95
    h0 = complex_randn(B, H, generator=g) * 0.5 if with_h0 else None
    act_bias = (
        torch.rand(H, generator=g, dtype=torch.float64) * 0.35 - 0.3 if nonlinearity == "modrelu" else None
    )
    grad_out = complex_randn(T, B, H, generator=g)
    grad_hn = complex_randn(B, H, generator=g)
    return pre, weight, h0, act_bias, grad_out, grad_hn


def cast(x, dtype):
    """A complex leaf to dtype, a real one (act_bias) to dtype's real counterpart."""
    if x is None:
        return None
    return x.to(dtype) if x.is_complex() else x.to(REAL_DTYPE_OF_COMPLEX[dtype])


def run_and_grad(fn, leaves, grad_out, grad_hn):
    """Outputs and the gradients of the real loss Re<grad_out, out> + Re<grad_hn, h_n>, whose
    gradients with respect to out and h_n are grad_out and grad_hn in PyTorch's convention."""
    leaves = [x.detach().clone().requires_grad_() if x is not None else None for x in leaves]
    out, h_n = fn(*leaves)
    loss = (out.to(torch.complex128).conj() * grad_out).real.sum()
    loss = loss + (h_n.to(torch.complex128).conj() * grad_hn).real.sum()
    grads = torch.autograd.grad(loss, [x for x in leaves if x is not None])
    return out.detach(), h_n.detach(), grads


def check_against_reference(dtype, case, nonlinearity, *, backend="torch", checkpoint_every=None):
    pre, weight, h0, act_bias, grad_out, grad_hn = case

    def reference(p, w, h, b):
        return complex_dense_recurrence_reference(p, w, h, nonlinearity, b, EPS)

    def ours(p, w, h, b):
        return dense_recurrence(
            p, w, h, nonlinearity=nonlinearity, act_bias=b, eps=EPS,
            backend=backend, checkpoint_every=checkpoint_every,
        )  # fmt: skip

    leaves = [pre, weight, h0, act_bias]
    ref_out, ref_hn, ref_grads = run_and_grad(reference, leaves, grad_out, grad_hn)
    out, h_n, grads = run_and_grad(ours, [cast(x, dtype) for x in leaves], grad_out, grad_hn)
    assert out.dtype == dtype and h_n.dtype == dtype
    assert_close(out, ref_out, dtype, "outputs")
    assert_close(h_n, ref_hn, dtype, "h_n")
    present = [
        (n, x) for n, x in zip(["pre", "weight_hh", "h0", "act_bias"], leaves, strict=True) if x is not None
    ]
    for (name, leaf), grad, ref_grad in zip(present, grads, ref_grads, strict=True):
        assert grad.dtype == cast(leaf, dtype).dtype, f"grad {name}: dtype {grad.dtype}"
        assert_close(grad, ref_grad, dtype, f"grad {name}")


@pytest.mark.parametrize("backend", ["torch", PYTHON_LOOPS])
@pytest.mark.parametrize("with_h0", [True, False], ids=["h0", "no-h0"])
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("T,B,H", SHAPES, ids=SHAPE_IDS)
def test_complex64_matches_complex128_reference(T, B, H, nonlinearity, with_h0, backend, monkeypatch):
    case = make_case(T, B, H, nonlinearity, with_h0=with_h0)
    check_against_reference(torch.complex64, case, nonlinearity, backend=select_backend(backend, monkeypatch))


@pytest.mark.parametrize("backend", ["torch", PYTHON_LOOPS])
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_complex128(nonlinearity, backend, monkeypatch):
    backend = select_backend(backend, monkeypatch)
    check_against_reference(
        torch.complex128, make_case(6, 5, 33, nonlinearity), nonlinearity, backend=backend
    )


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_backends_match_reference(backend, nonlinearity, caplog):
    """The same check through each backend; a triton call must not fall back to torch."""
    with caplog.at_level(logging.WARNING, logger="trit_rnn"):
        check_against_reference(
            torch.complex64, make_case(5, 3, 20, nonlinearity), nonlinearity, backend=backend
        )
    assert not caplog.records, [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("backend", ["torch", PYTHON_LOOPS])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_no_nan_at_zero_preactivation(dtype, backend, monkeypatch):
    """Batch row 0 has pre = 0 and h0 = 0, so z = 0 exactly at every step, with modReLU biases of
    both signs (b > 0: active at z = 0, gain b / eps; b < 0: inactive). Gradients stay finite and
    equal torch autograd of the reference (where |z| has gradient 0 at z = 0)."""
    select_backend(backend, monkeypatch)
    T, B, H = 4, 3, 6
    pre, weight, _, _, grad_out, grad_hn = make_case(T, B, H, "modrelu")
    pre[:, 0] = 0
    act_bias = torch.tensor([0.2, -0.2, 0.05, -0.05, 1e-3, -1e-3], dtype=torch.float64)
    case = (pre, weight, None, act_bias, grad_out, grad_hn)
    out, _, grads = run_and_grad(
        lambda p, w, b: dense_recurrence(p, w, nonlinearity="modrelu", act_bias=b, eps=EPS),
        [cast(x, dtype) for x in (pre, weight, act_bias)],
        grad_out,
        grad_hn,
    )
    assert torch.all(out[:, 0] == 0)
    for grad in grads:
        assert torch.isfinite(torch.view_as_real(grad) if grad.is_complex() else grad).all()
    assert torch.all(grads[0][:, 0, 1::2] == 0), "inactive units (b < 0) pass no gradient at z = 0"
    check_against_reference(dtype, case, "modrelu")


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("checkpoint_every", [1, 3, 9])
def test_checkpointing_matches_reference(nonlinearity, checkpoint_every):
    """K = 3 at T = 7: two full segments and a short one; K = 9 > T: one segment."""
    case = make_case(7, 3, 12, nonlinearity)
    check_against_reference(torch.complex64, case, nonlinearity, checkpoint_every=checkpoint_every)


def test_gradcheck_complex128():
    pre, weight, h0, act_bias, _, _ = make_case(3, 2, 4, "modrelu")
    leaves = [x.requires_grad_() for x in (pre, weight, h0, act_bias)]

    def fn(p, w, h, b):
        return dense_recurrence(p, w, h, nonlinearity="modrelu", act_bias=b, backend="torch")

    assert torch.autograd.gradcheck(fn, leaves)


def test_custom_op_registration_is_consistent():
    """Fake kernels, schema and autograd registration agree with the real kernels."""
    from trit_rnn.autograd.complex_checkpointed import complex_dense_recurrence_checkpointed_op
    from trit_rnn.autograd.complex_dense import complex_dense_recurrence_op

    pre, weight, h0, act_bias, _, _ = make_case(3, 2, 8, "modrelu")
    leaves = (pre.to(torch.complex64).requires_grad_(), weight.to(torch.complex64).requires_grad_())
    states = (h0.to(torch.complex64), act_bias.float())
    options = ("modrelu", EPS, "torch")
    torch.library.opcheck(complex_dense_recurrence_op, (*leaves, *states, None, *options))
    torch.library.opcheck(complex_dense_recurrence_checkpointed_op, (*leaves, *states, *options, 2))


def test_torch_compile_fullgraph_matches_eager():
    """Inductor generates no code for complex ops (it warns and falls back to eager kernels), but the
    graph traces through the custom ops without a break and gives eager's values and gradients."""
    pre, weight, h0, act_bias, _, _ = make_case(5, 3, 8, "modrelu")
    leaves = [cast(x, torch.complex64) for x in (pre, weight, h0, act_bias)]

    def loss_fn(p, w, h, b):
        out, h_n = dense_recurrence(p, w, h, nonlinearity="modrelu", act_bias=b, backend="torch")
        return out.abs().square().sum() + h_n.real.sum()

    def run(fn):
        inputs = [x.detach().clone().requires_grad_() for x in leaves]
        loss = fn(*inputs)
        return [loss.detach(), *torch.autograd.grad(loss, inputs)]

    compiled = torch.compile(loss_fn, fullgraph=True, dynamic=False)
    for name, a, b in zip(
        ["loss", "pre", "weight_hh", "h0", "act_bias"], run(compiled), run(loss_fn), strict=True
    ):
        assert_close(a, b, torch.complex64 if a.is_complex() else torch.float32, name)


def _good_args(dtype=torch.complex64):
    return {
        "pre": torch.zeros(2, 1, 3, dtype=dtype),
        "weight_hh": torch.eye(3, dtype=dtype),
        "nonlinearity": "modrelu",
        "act_bias": torch.zeros(3, dtype=REAL_DTYPE_OF_COMPLEX[dtype]),
    }


@pytest.mark.parametrize(
    "changes,exception,words",
    [
        (
            {"weight_hh": torch.eye(3)},
            TypeError,
            r"weight_hh is real \(torch.float32\) but pre .* is complex",
        ),
        (
            {"pre": torch.zeros(2, 1, 3)},
            TypeError,
            r"weight_hh is complex \(torch.complex64\) but pre .* is real",
        ),
        ({"h0": torch.zeros(1, 3)}, TypeError, "h0 is real .* all real or all complex"),
        (
            {"weight_hh": torch.eye(3, dtype=torch.complex128)},
            TypeError,
            "weight_hh must have the dtype of pre",
        ),
        ({"h0": torch.zeros(2, 3, dtype=torch.complex64)}, ValueError, r"h0 must have shape \(1, 3\)"),
        (
            {"act_bias": torch.zeros(3, dtype=torch.complex64)},
            TypeError,
            "act_bias must be real with dtype torch.float32",
        ),
        (
            {"act_bias": torch.zeros(3, dtype=torch.float64)},
            TypeError,
            r"act_bias must be real with dtype torch.float32 .*; got torch.float64",
        ),
        ({"act_bias": torch.zeros(4)}, ValueError, r"act_bias must have shape \(3,\)"),
        ({"act_bias": None}, ValueError, "act_bias .* is required"),
        (
            {"nonlinearity": "tanh", "act_bias": None},
            ValueError,
            "nonlinearity must be 'identity' or 'modrelu'",
        ),
        ({"nonlinearity": "identity"}, ValueError, "act_bias is used only with"),
        ({"eps": 0.0}, ValueError, "eps must be a positive finite float; got 0.0"),
        ({"eps": -1e-3}, ValueError, "eps must be a positive finite float"),
        ({"eps": float("nan")}, ValueError, "eps must be a positive finite float"),
        ({"eps": True}, ValueError, "eps must be a positive finite float"),
        ({"checkpoint_every": 0}, ValueError, "checkpoint_every must be None or a positive integer"),
        ({"backend": "cuda"}, ValueError, "backend must be one of"),
    ],
)
def test_bad_arguments_are_named(changes, exception, words):
    args = {**_good_args(), **changes}
    pre, weight = args.pop("pre"), args.pop("weight_hh")
    with pytest.raises(exception, match=words):
        dense_recurrence(pre, weight, **args)


def test_eps_is_validated_for_real_inputs_too():
    with pytest.raises(ValueError, match="eps must be a positive finite float"):
        dense_recurrence(torch.zeros(2, 1, 3), torch.eye(3), eps=0)
