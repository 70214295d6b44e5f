"""OrthogonalRNN: torch.nn.RNN's call convention, equality with a float64 reference built from the
module's own parameters, orthogonality through training, norm preservation, and errors."""

import pytest
import torch
from torch import nn

from tests.reference import dense_recurrence_reference
from tests.tolerances import assert_close
from trit_rnn import OrthogonalRNN
from trit_rnn.optim import orthogonal_param_groups

PARAMETRIZATIONS = ["exp", "cayley", "householder"]


def reference_forward(model: OrthogonalRNN, x: torch.Tensor, hx=None):
    """Re-run the model in float64 from its parameters: per layer and direction, the input
    projection, then the plain reference loop with W = model.recurrent_matrix(layer, direction)."""
    finals, inp = [], x.double()
    for layer in range(model.num_layers):
        outs = []
        for d in range(model.num_directions):
            sfx = model.suffix(layer, d)
            w_ih = getattr(model, f"weight_ih_{sfx}").double()
            b_ih = getattr(model, f"bias_ih_{sfx}", None)
            act_bias = getattr(model, f"act_bias_{sfx}", None)
            pre = inp @ w_ih.T + (b_ih.double() if b_ih is not None else 0)
            h0 = hx[layer * model.num_directions + d].double() if hx is not None else None
            if d == 1:
                pre = pre.flip(0)
            out, h_n = dense_recurrence_reference(
                pre,
                model.recurrent_matrix(layer, d).double(),
                h0,
                model.nonlinearity,
                act_bias.double() if act_bias is not None else None,
            )
            outs.append(out if d == 0 else out.flip(0))
            finals.append(h_n)
        inp = torch.cat(outs, dim=-1)
    return inp, torch.stack(finals)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
def test_two_layer_bidirectional_matches_reference(backend, parametrization):
    torch.manual_seed(1)
    model = OrthogonalRNN(
        5, 20, num_layers=2, bidirectional=True, parametrization=parametrization, backend=backend
    )
    x = torch.randn(7, 3, 5)
    hx = torch.randn(4, 3, 20) * 0.3
    out, h_n = model(x, hx)
    ref_out, ref_hn = reference_forward(model, x, hx)
    assert out.shape == (7, 3, 40) and h_n.shape == (4, 3, 20)
    assert_close(out, ref_out, torch.float32, "output")
    assert_close(h_n, ref_hn, torch.float32, "h_n")

    upstream = torch.randn_like(ref_out)
    params = [p for p in model.parameters()]
    grads = torch.autograd.grad((out * upstream).sum() + h_n.sum(), params)
    ref_grads = torch.autograd.grad((ref_out * upstream).sum() + ref_hn.sum(), params)
    for (name, _), g, rg in zip(model.named_parameters(), grads, ref_grads, strict=True):
        assert_close(g, rg, torch.float32, f"grad {name}")


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "identity"])
def test_other_nonlinearities_have_no_act_bias_and_match(nonlinearity):
    model = OrthogonalRNN(4, 12, nonlinearity=nonlinearity, backend="torch")
    assert not any("act_bias" in n for n, _ in model.named_parameters())
    x = torch.randn(6, 2, 4)
    out, h_n = model(x)
    ref_out, ref_hn = reference_forward(model, x)
    assert_close(out, ref_out, torch.float32, "output")
    assert_close(h_n, ref_hn, torch.float32, "h_n")


def test_call_convention_matches_torch_rnn():
    ours = OrthogonalRNN(3, 8, num_layers=2, bidirectional=True, batch_first=True, backend="torch")
    theirs = nn.RNN(3, 8, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(5, 11, 3)  # [B, T, I]
    for model in (ours, theirs):
        out, h_n = model(x)
        assert out.shape == (5, 11, 16) and h_n.shape == (4, 5, 8)
        out, h_n = model(x[0])  # unbatched [T, I]
        assert out.shape == (11, 16) and h_n.shape == (4, 8)
    batched, _ = ours(x[:1])
    unbatched, _ = ours(x[0])
    assert torch.equal(batched[0], unbatched)


def test_batch_first_equals_time_major():
    model = OrthogonalRNN(3, 10, backend="torch")
    x = torch.randn(9, 4, 3)
    out_tm, hn_tm = model(x)
    model.batch_first = True
    out_bf, hn_bf = model(x.transpose(0, 1))
    assert torch.equal(out_bf.transpose(0, 1), out_tm) and torch.equal(hn_bf, hn_tm)


@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
@pytest.mark.parametrize("hidden", [20, 190])
def test_recurrent_matrix_stays_orthogonal_through_training(parametrization, hidden):
    torch.manual_seed(0)
    model = OrthogonalRNN(4, hidden, parametrization=parametrization, backend="torch")
    bound = 10 * hidden * torch.finfo(torch.float32).eps
    eye = torch.eye(hidden)

    def deviation():
        w = model.recurrent_matrix().detach()
        assert w.dtype == torch.float32
        return (w.T @ w - eye).abs().max().item()

    assert deviation() < bound
    optimizer = torch.optim.Adam(orthogonal_param_groups(model, lr=1e-2, orthogonal_lr=1e-1))
    x, target = torch.randn(8, 4, 4), torch.randn(8, 4, hidden)
    before = model.recurrent_matrix().detach().clone()
    for _ in range(10):
        optimizer.zero_grad()
        out, _ = model(x)
        ((out - target) ** 2).mean().backward()
        optimizer.step()
    assert not torch.allclose(model.recurrent_matrix().detach(), before), "W did not train"
    assert deviation() < bound


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_identity_recurrence_preserves_norm(backend):
    """h_t = h_{t-1} W^T with W orthogonal and no input: |h_T| = |h_0| = 1."""
    model = OrthogonalRNN(1, 64, nonlinearity="identity", bias=False, backend=backend)
    with torch.no_grad():
        model.weight_ih_l0.zero_()
        h0 = torch.randn(1, 2, 64)
        h0 /= h0.norm(dim=-1, keepdim=True)
        _, h_n = model(torch.zeros(10_000, 2, 1), h0)
    norms = h_n.norm(dim=-1)
    assert (norms - 1).abs().max().item() < 1e-3, norms


def test_param_groups_put_recurrent_parameters_at_their_own_rate():
    model = OrthogonalRNN(3, 8, num_layers=2)
    groups = orthogonal_param_groups(model, lr=1e-3)
    recurrent = {id(p) for p in model.recurrent.parameters()}
    assert {id(p) for p in groups[0]["params"]} == recurrent and groups[0]["lr"] == pytest.approx(1e-4)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_dtype_and_device_arguments():
    model = OrthogonalRNN(3, 8, dtype=torch.float64, backend="torch")
    assert all(p.dtype == torch.float64 for p in model.parameters())
    out, h_n = model(torch.randn(4, 2, 3, dtype=torch.float64))
    assert out.dtype == torch.float64 and h_n.dtype == torch.float64


@pytest.mark.parametrize(
    "kwargs,exception,words",
    [
        ({"hidden_size": 0}, ValueError, "hidden_size"),
        ({"num_layers": 0}, ValueError, "num_layers"),
        ({"nonlinearity": "sigmoid"}, ValueError, "nonlinearity"),
        ({"parametrization": "qr"}, ValueError, "parametrization"),
        ({"backend": "cuda"}, ValueError, "backend"),
        ({"batch_first": "yes"}, TypeError, "batch_first"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, exception, words):
    args = {"input_size": 3, "hidden_size": 8, **kwargs}
    with pytest.raises(exception, match=words):
        OrthogonalRNN(**args)


@pytest.mark.parametrize(
    "x,hx,words",
    [
        (torch.randn(4, 2, 5), None, "input_size=3"),
        (torch.randn(4), None, "input must be 3-D"),
        (torch.randint(0, 3, (4, 2, 3)), None, "floating dtype"),
        (torch.randn(4, 2, 3), torch.randn(2, 2, 8), r"hx must have shape \(1, 2, 8\)"),
        (torch.randn(4, 2, 3), torch.randn(1, 2, 8, dtype=torch.float64), "dtype"),
    ],
)
def test_forward_rejects_bad_input(x, hx, words):
    model = OrthogonalRNN(3, 8, backend="torch")
    with pytest.raises((ValueError, TypeError), match=words):
        model(x, hx)


def test_recurrent_matrix_index_is_checked():
    model = OrthogonalRNN(3, 8, num_layers=2)
    with pytest.raises(ValueError, match="direction"):
        model.recurrent_matrix(0, 1)
    with pytest.raises(ValueError, match="layer"):
        model.recurrent_matrix(2, 0)
