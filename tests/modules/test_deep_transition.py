"""DeepTransitionRNN against its equations written out in float64 from the module's parameters
(outputs, h_n, every gradient), with and without the shortcut, deep output and orthogonal
transitions; stacking and bidirectional shapes; bad options are named."""

import pytest
import torch

from tests.tolerances import assert_close
from trit_rnn import DeepTransitionRNN

F32, F64 = torch.float32, torch.float64


def reference(model, x, h0):
    """One layer, one direction, from model's (float64) parameters, then the deep output."""
    H = model.hidden_size
    ws = model.transition_matrices()
    u = model.weight_ih_l0
    b = model.bias_ih_l0
    h = h0
    outputs = []
    for x_t in x.unbind(0):
        p = x_t @ u.T + b
        a = p[:, :H] + h @ ws[0].T
        for w, bias in zip(ws[1:], getattr(model, "bias_deep_l0", ()), strict=True):
            a = torch.tanh(a) @ w.T + bias
        if model.shortcut:
            a = a + p[:, H:] + h @ model.shortcut_weight_hh_l0.T
        h = torch.tanh(a)
        outputs.append(h)
    y = torch.stack(outputs)
    for linear in model.output_layers:
        y = torch.tanh(linear(y))
    return y, h


@pytest.mark.parametrize(
    "options",
    [
        {"depth": 2},
        {"depth": 3, "shortcut": False},
        {"depth": 1},
        {"depth": 2, "deep_output": 2},
        {"depth": 2, "orthogonal": "exp"},
        {"depth": 3, "orthogonal": "cayley", "shortcut": False},
    ],
    ids=str,
)
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_matches_float64_equations(options, backend):
    T, B, IN, H = 5, 3, 4, 6
    torch.manual_seed(0)
    model = DeepTransitionRNN(IN, H, backend=backend, **options)
    ref_model = DeepTransitionRNN(IN, H, dtype=F64, **options)
    ref_model.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, IN, generator=g, dtype=F64)
    h0 = torch.randn(1, B, H, generator=g, dtype=F64) * 0.5
    up_y, up_h = torch.randn(T, B, H, generator=g, dtype=F64), torch.randn(1, B, H, generator=g, dtype=F64)

    def grads(m, y, h_n, leaves):
        loss = (y.double() * up_y).sum() + (h_n.double() * up_h).sum()
        return torch.autograd.grad(loss, leaves + list(m.parameters()))

    x32, h32 = x.float().requires_grad_(), h0.float().requires_grad_()
    y, h_n = model(x32, h32)
    ours = grads(model, y, h_n, [x32, h32])
    x64, h64 = x.clone().requires_grad_(), h0.clone().requires_grad_()
    ref_y, ref_h = reference(ref_model, x64, h64[0])
    expected = grads(ref_model, ref_y, ref_h.unsqueeze(0), [x64, h64])
    assert_close(y, ref_y, F32, "output")
    assert_close(h_n, ref_h.unsqueeze(0), F32, "h_n")
    names = ["input", "hx"] + [n for n, _ in model.named_parameters()]
    for name, a, b in zip(names, ours, expected, strict=True):
        assert_close(a, b, F32, f"grad {name}")


def test_stacked_bidirectional_shapes_and_orthogonal_transitions():
    model = DeepTransitionRNN(
        3, 8, depth=3, num_layers=2, bidirectional=True, orthogonal="exp", deep_output=1
    )
    out, h_n = model(torch.randn(2, 5, 3).transpose(0, 1))
    assert out.shape == (5, 2, 16) and h_n.shape == (4, 2, 8)
    for w in model.transition_matrices(1, 1):
        w = w.detach().double()
        assert (w.T @ w - torch.eye(8, dtype=F64)).abs().max() < 10 * 8 * torch.finfo(F32).eps
    assert "depth=3" in repr(model) and "orthogonal='exp'" in repr(model)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"depth": 0}, "depth"),
        ({"shortcut": 1}, "shortcut"),
        ({"deep_output": -1}, "deep_output"),
        ({"nonlinearity": "modrelu"}, "nonlinearity"),
        ({"orthogonal": "givens"}, "orthogonal"),
    ],
)
def test_bad_options_are_named(options, match):
    with pytest.raises((ValueError, TypeError), match=match):
        DeepTransitionRNN(3, 4, **options)
