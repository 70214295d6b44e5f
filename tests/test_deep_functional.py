"""deep_transition_recurrence on each backend against the float64 reference: outputs, h_n and every
gradient, for depths 1-3, with and without the shortcut, each activation, at awkward shapes; and its
argument errors."""

import pytest
import torch

from tests.reference import deep_transition_reference
from tests.tolerances import assert_close
from trit_rnn.functional import deep_transition_recurrence

F64 = torch.float64


def make_leaves(T, B, H, depth, shortcut, with_h0, seed=0):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=g, dtype=F64) * scale

    width = 2 * H if shortcut else H
    return [
        randn(T, B, width),
        randn(width, H, scale=0.7 / H**0.5),
        randn(depth - 1, H, H, scale=1.1 / H**0.5),
        randn(depth - 1, H, scale=0.2),
        randn(B, H, scale=0.5) if with_h0 else None,
    ]


def run(fn, leaves, seed=1):
    leaves = [x.detach().clone().requires_grad_() if x is not None else None for x in leaves]
    values = fn(*leaves)
    g = torch.Generator().manual_seed(seed)
    loss = sum((v.double() * torch.randn(v.shape, generator=g, dtype=F64)).sum() for v in values)
    present = [x for x in leaves if x is not None]
    # at depth 1 the reference never touches the empty W_2..W_D: their gradient is an empty zeros
    return values, torch.autograd.grad(loss, present, allow_unused=True, materialize_grads=True)


def check(backend, dtype, leaves, nonlinearity):
    def ours(*args):
        args = [a.to(dtype) if a is not None else None for a in args]
        return deep_transition_recurrence(*args, nonlinearity=nonlinearity, backend=backend)

    def reference(*args):
        return deep_transition_reference(*args, nonlinearity=nonlinearity)

    values, grads = run(ours, leaves)
    ref_values, ref_grads = run(reference, leaves)
    for k, (a, b) in enumerate(zip(values, ref_values, strict=True)):
        assert a.dtype == dtype
        assert_close(a, b, dtype, f"value {k}")
    for k, (a, b) in enumerate(zip(grads, ref_grads, strict=True)):
        assert_close(a, b, dtype, f"gradient {k}")


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "identity"])
@pytest.mark.parametrize("shortcut", [True, False])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("shape", [(1, 2, 3), (6, 3, 5)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
@pytest.mark.parametrize("backend", ["torch", "triton"])  # triton under the interpreter
def test_matches_reference(backend, dtype, shape, depth, shortcut, nonlinearity):
    check(backend, dtype, make_leaves(*shape, depth, shortcut, with_h0=shape[0] > 1), nonlinearity)


def test_passes_opcheck():
    pre, w, deep, biases, h0 = (x.float() for x in make_leaves(3, 2, 4, 2, True, True))
    torch.library.opcheck(
        torch.ops.trit_rnn.deep_recurrence, (pre, w, deep, biases, h0, None, "tanh", "torch")
    )


def _call(pre_width=8, weight_rows=8, deep=(1, 4, 4), biases=(1, 4), h0=None, nonlinearity="tanh"):
    return lambda: deep_transition_recurrence(
        torch.zeros(2, 3, pre_width), torch.zeros(weight_rows, 4), torch.zeros(deep), torch.zeros(biases),
        h0, nonlinearity=nonlinearity,
    )  # fmt: skip


@pytest.mark.parametrize(
    "call, words",
    [
        (_call(pre_width=6), ["pre", "2H"]),
        (_call(weight_rows=4), ["weight_hh", "(8, 4)"]),
        (_call(deep=(1, 4, 3)), ["weights_deep", "(1, 4, 4)"]),
        (_call(biases=(2, 4)), ["biases_deep", "(1, 4)"]),
        (_call(h0=torch.zeros(2, 4)), ["h0", "(3, 4)"]),
        (_call(nonlinearity="modrelu"), ["nonlinearity", "deep transition"]),
    ],
)
def test_bad_arguments_are_named(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value)
