"""The gated ops (lstm_recurrence, gru_recurrence with every candidate activation) on each backend
against the float64 references: outputs, final states and every gradient, at awkward shapes
(T=1, odd T, odd H, no initial states), and their argument errors."""

import functools

import pytest
import torch

from tests.cpu_loops import PYTHON_LOOPS, select_backend
from tests.reference import gru_reference, lstm_reference
from tests.tolerances import assert_close
from trit_rnn.functional import gru_recurrence, lstm_recurrence

F64 = torch.float64
BACKENDS = ["torch", PYTHON_LOOPS, "triton"]  # triton under the interpreter (tests/conftest.py)
SHAPES = [(1, 2, 3), (7, 3, 5), (4, 1, 8)]  # (T, B, H)


def make_leaves(cell, T, B, H, *, with_states, nonlinearity="tanh", seed=0):
    """float64 leaves in the op's argument order (None where absent)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=g, dtype=F64) * scale

    gates = 4 if cell == "lstm" else 3
    pre = randn(T, B, gates * H)
    weight = randn(gates * H, H, scale=0.6 / H**0.5)
    h0 = randn(B, H, scale=0.5) if with_states else None
    if cell == "lstm":
        return [pre, weight, h0, randn(B, H, scale=0.5) if with_states else None]
    bias = randn(3 * H, scale=0.2) if with_states else None
    # modReLU biases of both signs, so that active and inactive units both occur
    act_bias = (torch.rand(H, generator=g, dtype=F64) - 0.6) * 0.4 if nonlinearity == "modrelu" else None
    return [pre, weight, bias, h0, act_bias]


def run(fn, leaves, seed=1):
    """Values (outputs and final states) and the gradients of every present leaf under one random
    upstream gradient per value."""
    leaves = [x.detach().clone().requires_grad_() if x is not None else None for x in leaves]
    values = fn(*leaves)
    g = torch.Generator().manual_seed(seed)
    loss = sum((v.double() * torch.randn(v.shape, generator=g, dtype=F64)).sum() for v in values)
    grads = torch.autograd.grad(loss, [x for x in leaves if x is not None])
    return values, grads


def cast(leaves, dtype):
    return [x.to(dtype) if x is not None else None for x in leaves]


def check(cell, backend, dtype, leaves, nonlinearity="tanh"):
    if cell == "lstm":
        reference = lstm_reference

        def ours(pre, w, h0, c0):
            return lstm_recurrence(*cast([pre, w, h0, c0], dtype), backend=backend)
    else:
        reference = functools.partial(_gru_reference, nonlinearity=nonlinearity)

        def ours(pre, w, b, h0, act_bias):
            pre, w, b, h0, act_bias = cast([pre, w, b, h0, act_bias], dtype)
            return gru_recurrence(
                pre, w, b, h0, nonlinearity=nonlinearity, act_bias=act_bias, backend=backend
            )

    ref_values, ref_grads = run(reference, leaves)
    values, grads = run(ours, leaves)
    for k, (a, b) in enumerate(zip(values, ref_values, strict=True)):
        assert a.dtype == dtype
        assert_close(a, b, dtype, f"{cell} value {k}")
    for k, (a, b) in enumerate(zip(grads, ref_grads, strict=True)):
        assert_close(a, b, dtype, f"{cell} gradient {k}")


def _gru_reference(pre, w, b, h0, act_bias, nonlinearity):
    return gru_reference(pre, w, b, h0, nonlinearity, act_bias)


@pytest.mark.parametrize("with_states", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_matches_reference(backend, dtype, shape, with_states, monkeypatch):
    backend = select_backend(backend, monkeypatch)
    check("lstm", backend, dtype, make_leaves("lstm", *shape, with_states=with_states))


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_bias_equals_folding_it_into_pre(backend, dtype, monkeypatch):
    """lstm_recurrence(..., bias=b) against the float64 reference run on pre + b: values, and the
    gradients of every leaf, b's included (the torch backend sums it inside its loop)."""
    backend = select_backend(backend, monkeypatch)
    pre, w, h0, c0 = make_leaves("lstm", 5, 3, 6, with_states=True)
    bias = torch.randn(4 * 6, generator=torch.Generator().manual_seed(5), dtype=F64)

    def ours(pre, w, h0, c0, bias):
        pre, w, h0, c0, bias = cast([pre, w, h0, c0, bias], dtype)
        return lstm_recurrence(pre, w, h0, c0, bias=bias, backend=backend)

    ref_values, ref_grads = run(
        lambda pre, w, h0, c0, b: lstm_reference(pre + b, w, h0, c0), [pre, w, h0, c0, bias]
    )
    values, grads = run(ours, [pre, w, h0, c0, bias])
    for k, (a, b) in enumerate(zip([*values, *grads], [*ref_values, *ref_grads], strict=True)):
        assert_close(a, b, dtype, f"lstm with bias, value or gradient {k}")


@pytest.mark.parametrize("nonlinearity", ["tanh", "modrelu", "relu", "identity"])
@pytest.mark.parametrize("with_states", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_matches_reference(backend, dtype, shape, with_states, nonlinearity, monkeypatch):
    backend = select_backend(backend, monkeypatch)
    leaves = make_leaves("gru", *shape, with_states=with_states, nonlinearity=nonlinearity)
    check("gru", backend, dtype, leaves, nonlinearity)


@pytest.mark.parametrize("backend", ["torch", PYTHON_LOOPS])
def test_long_sequence_uses_several_backward_chunks(backend, monkeypatch):
    """T * B * H beyond one backward chunk of the Python loops (2^17 elements): the chunk seams
    are exact; the same long case on the compiled loops."""
    backend = select_backend(backend, monkeypatch)
    for cell in ("lstm", "gru"):
        check(cell, backend, F64, make_leaves(cell, 300, 30, 16, with_states=True))


def test_explicit_triton_runs_the_kernels(monkeypatch):
    """backend="triton" on CPU tensors under the interpreter reaches kernels/gated, not a fallback."""
    from trit_rnn.kernels.gated import launch

    calls = []
    original = launch.lstm_forward
    monkeypatch.setattr(launch, "lstm_forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    pre, w, h0, c0 = (x.float() for x in make_leaves("lstm", 2, 2, 3, with_states=True))
    lstm_recurrence(pre, w, h0, c0, backend="triton")
    assert calls == [1]


def test_gated_ops_pass_opcheck():
    pre, w, h0, c0 = (x.float() for x in make_leaves("lstm", 3, 2, 4, with_states=True))
    torch.library.opcheck(torch.ops.trit_rnn.lstm_recurrence, (pre, w, h0, c0, None, None, "torch"))
    bias = torch.randn(w.shape[0])
    torch.library.opcheck(torch.ops.trit_rnn.lstm_recurrence, (pre, w, h0, c0, bias, None, "torch"))
    pre, w, b, h0, act = (
        x.float() for x in make_leaves("gru", 3, 2, 4, with_states=True, nonlinearity="modrelu")
    )
    torch.library.opcheck(torch.ops.trit_rnn.gru_recurrence, (pre, w, b, h0, act, None, "modrelu", "torch"))


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: lstm_recurrence(torch.zeros(2, 3, 10), torch.zeros(8, 2)), ValueError, ["pre", "4*H"]),
        (
            lambda: lstm_recurrence(torch.zeros(2, 3, 8), torch.zeros(8, 3)),
            ValueError,
            ["weight_hh", "(8, 2)"],
        ),
        (
            lambda: lstm_recurrence(torch.zeros(2, 3, 8), torch.zeros(8, 2), c0=torch.zeros(3, 3)),
            ValueError,
            ["c0", "(3, 2)"],
        ),
        (
            lambda: lstm_recurrence(torch.zeros(2, 3, 8), torch.zeros(8, 2, dtype=F64)),
            TypeError,
            ["weight_hh", "dtype"],
        ),
        (
            lambda: lstm_recurrence(torch.zeros(2, 3, 8), torch.zeros(8, 2), bias=torch.zeros(6)),
            ValueError,
            ["bias", "(8,)"],
        ),
        (
            lambda: lstm_recurrence(torch.zeros(2, 3, 8), torch.zeros(8, 2), bias=torch.zeros(8, dtype=F64)),
            TypeError,
            ["bias", "dtype"],
        ),
        (
            lambda: gru_recurrence(torch.zeros(2, 3, 6), torch.zeros(6, 2), torch.zeros(5)),
            ValueError,
            ["bias_hh", "(6,)"],
        ),
        (
            lambda: gru_recurrence(torch.zeros(2, 3, 6), torch.zeros(6, 2), nonlinearity="modrelu"),
            ValueError,
            ["act_bias", "required"],
        ),
        (
            lambda: gru_recurrence(torch.zeros(2, 3, 6), torch.zeros(6, 2), act_bias=torch.zeros(2)),
            ValueError,
            ["act_bias", "modrelu"],
        ),
        (
            lambda: gru_recurrence(torch.zeros(2, 3, 6), torch.zeros(6, 2), nonlinearity="gelu"),
            ValueError,
            ["nonlinearity", "gelu"],
        ),
        (
            lambda: gru_recurrence(torch.zeros(2, 3, 6, dtype=torch.complex64), torch.zeros(6, 2)),
            TypeError,
            ["pre", "floating"],
        ),
    ],
)
def test_bad_arguments_are_named(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value)
