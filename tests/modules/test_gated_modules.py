"""trit_rnn.LSTM / GRU are drop-in replacements for torch.nn.LSTM / GRU: loaded with a torch module's
state_dict they match it (outputs, final states, every gradient) over layers, directions, layouts
and initial states; the same seed gives the same initial weights; the options do what they say."""

import functools

import pytest
import torch

from tests.tolerances import assert_close
from trit_rnn import GRU, LSTM

F32 = torch.float32
CELLS = {"lstm": (LSTM, torch.nn.LSTM), "gru": (GRU, torch.nn.GRU)}
# (num_layers, bidirectional, batch_first, given initial states)
LAYOUTS = [
    (1, False, False, False),
    (1, False, True, True),
    (2, False, False, True),
    (1, True, False, True),
    (2, True, True, False),
]


def initial_states(cell, L, B, H, generator):
    h0 = torch.randn(L, B, H, generator=generator)
    return (h0, torch.randn(L, B, H, generator=generator)) if cell == "lstm" else h0


def as_list(states):
    return list(states) if isinstance(states, tuple) else [states]


def run(model, x, hx, upstream):
    """(output, final states..., gradients of input, hx and every parameter)."""
    leaves = [x.clone().requires_grad_()]
    hx_leaves = [s.clone().requires_grad_() for s in as_list(hx)] if hx is not None else []
    hx_arg = None if hx is None else (tuple(hx_leaves) if isinstance(hx, tuple) else hx_leaves[0])
    out, finals = model(leaves[0], hx_arg) if hx is not None else model(leaves[0])
    finals = as_list(finals)
    loss = (out * upstream[0]).sum() + sum((f * u).sum() for f, u in zip(finals, upstream[1:], strict=True))
    grads = torch.autograd.grad(loss, leaves + hx_leaves + list(model.parameters()))
    return [out, *finals], list(grads)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda v: "L{}-bi{}-bf{}-hx{}".format(*v))
@pytest.mark.parametrize("cell", list(CELLS))
def test_loaded_state_dict_matches_torch(cell, layout, backend_under_test):
    num_layers, bidirectional, batch_first, given = layout
    ours_cls, torch_cls = CELLS[cell]
    T, B, IN, H = 7, 3, 5, 6
    torch.manual_seed(0)
    reference = torch_cls(IN, H, num_layers, batch_first=batch_first, bidirectional=bidirectional)
    ours = ours_cls(
        IN, H, num_layers, batch_first=batch_first, bidirectional=bidirectional, backend=backend_under_test
    )
    ours.load_state_dict(reference.state_dict())
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, IN, generator=g) if batch_first else torch.randn(T, B, IN, generator=g)
    L = num_layers * (2 if bidirectional else 1)
    hx = initial_states(cell, L, B, H, g) if given else None
    out_shape = (B, T, H * (1 + bidirectional)) if batch_first else (T, B, H * (1 + bidirectional))
    upstream = [torch.randn(out_shape, generator=g)] + [
        torch.randn(L, B, H, generator=g) for _ in range(1 + (cell == "lstm"))
    ]
    values, grads = run(ours, x, hx, upstream)
    ref_values, ref_grads = run(reference, x, hx, upstream)
    for k, (a, b) in enumerate(zip(values, ref_values, strict=True)):
        assert_close(a, b, F32, f"{cell} value {k}")
    names = ["input"] + [f"hx[{k}]" for k in range(len(as_list(hx)) if given else 0)]
    names += [n for n, _ in reference.named_parameters()]
    for name, a, b in zip(names, grads, ref_grads, strict=True):
        assert_close(a, b, F32, f"{cell} grad {name}")


@pytest.fixture(params=["torch", "triton"])
def backend_under_test(request):
    return request.param


@pytest.mark.parametrize("cell", list(CELLS))
def test_unbatched_input(cell):
    ours_cls, torch_cls = CELLS[cell]
    torch.manual_seed(0)
    reference = torch_cls(4, 5, 2)
    ours = ours_cls(4, 5, 2)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(6, 4)
    out, finals = ours(x)
    ref_out, ref_finals = reference(x)
    assert_close(out, ref_out, F32, "output")
    for a, b in zip(as_list(finals), as_list(ref_finals), strict=True):
        assert a.shape == (2, 5)
        assert_close(a, b, F32, "final state")


@pytest.mark.parametrize("cell", list(CELLS))
def test_same_seed_same_initial_weights(cell):
    ours_cls, torch_cls = CELLS[cell]
    torch.manual_seed(3)
    reference = torch_cls(4, 5, 2, bidirectional=True)
    torch.manual_seed(3)
    ours = ours_cls(4, 5, 2, bidirectional=True)
    ref_state = reference.state_dict()
    assert list(ours.state_dict()) == list(ref_state)
    for name, value in ours.state_dict().items():
        assert torch.equal(value, ref_state[name]), name


@pytest.mark.parametrize("cell", list(CELLS))
def test_dropout_between_layers(cell):
    ours_cls, _ = CELLS[cell]
    torch.manual_seed(0)
    plain = ours_cls(3, 4, 2)
    dropped = ours_cls(3, 4, 2, dropout=0.5)
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(5, 2, 3)
    assert torch.equal(dropped.eval()(x)[0], plain.eval()(x)[0])
    one_layer = ours_cls(3, 4, 1, dropout=0.5)  # nothing between layers to drop
    assert torch.equal(one_layer.train()(x)[0], one_layer.eval()(x)[0])
    assert not torch.equal(dropped.train()(x)[0], plain(x)[0])
    with pytest.raises(ValueError, match="dropout"):
        ours_cls(3, 4, 2, dropout=1.5)


def test_forget_bias_and_orthogonal_recurrent_init():
    model = LSTM(3, 4, 2, forget_bias=1.0, recurrent_init="orthogonal")
    for layer in range(2):
        b_ih, b_hh = getattr(model, f"bias_ih_l{layer}"), getattr(model, f"bias_hh_l{layer}")
        assert torch.equal(b_ih[4:8] + b_hh[4:8], torch.ones(4))
        for block in getattr(model, f"weight_hh_l{layer}").detach().split(4):
            torch.testing.assert_close(block @ block.T, torch.eye(4), atol=1e-6, rtol=0)
    assert "forget_bias=1.0" in repr(model) and "orthogonal" in repr(model)


@pytest.mark.parametrize(
    "make, match",
    [
        (functools.partial(LSTM, 3, 4, proj_size=2), "proj_size"),
        (functools.partial(LSTM, 3, 4, forget_bias="1"), "forget_bias"),
        (functools.partial(LSTM, 3, 4, bias=False, forget_bias=1.0), "bias=True"),
        (functools.partial(GRU, 3, 4, recurrent_init="eye"), "recurrent_init"),
        (functools.partial(GRU, 3, 4, backend="cuda"), "backend"),
    ],
)
def test_bad_options_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_lstm_hx_must_be_a_pair():
    model = LSTM(3, 4)
    x = torch.randn(5, 2, 3)
    with pytest.raises(TypeError, match="h_0, c_0"):
        model(x, torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"hx\[1\] \(c_0\) must have shape \(1, 2, 4\)"):
        model(x, (torch.zeros(1, 2, 4), torch.zeros(1, 3, 4)))
