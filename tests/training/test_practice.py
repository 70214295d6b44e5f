"""Per-cell practice of the one recipe: forget-gate bias, optimizer groups."""

import torch

from trit_rnn.training import build_model, make_optimizer


def build(cell, hidden=6):
    return build_model(cell, 3, 2, hidden, backend=None, device="cpu", dtype=torch.float32)[0]


def test_lstm_forget_bias_is_one_for_ours_and_the_peer():
    for cell in ("lstm", "torch_lstm"):
        model = build(cell)
        b_ih, b_hh = model.cell.bias_ih_l0, model.cell.bias_hh_l0
        assert torch.equal(b_ih[6:12], torch.ones(6)) and torch.equal(b_hh[6:12], torch.zeros(6)), cell


def test_recurrent_parameters_train_at_the_orthogonal_rate():
    for cell in ("orthogonal", "goru", "urnn", "eunn", "naive_loop"):
        model = build(cell, hidden=8)
        optimizer = make_optimizer(model, 1e-3, 2e-4)
        assert isinstance(optimizer, torch.optim.RMSprop)
        slow, fast = optimizer.param_groups
        assert slow["lr"] == 2e-4 and fast["lr"] == 1e-3, cell
        readout = {id(p) for p in model.readout.parameters()}
        assert readout <= {id(p) for p in fast["params"]}
        total = sum(len(g["params"]) for g in optimizer.param_groups)
        assert total == len(list(model.parameters())), cell


def test_gated_peers_have_one_group():
    for cell in ("gru", "torch_lstm"):
        optimizer = make_optimizer(build(cell), 1e-3, 1e-4)
        assert [g["lr"] for g in optimizer.param_groups] == [1e-3]


def test_full_capacity_urnn_takes_the_cayley_step_and_stays_unitary():
    model = build("fullcap_urnn", hidden=5)
    optimizer = make_optimizer(model, 1e-2, 1e-2)
    assert [g.get("unitary", False) for g in optimizer.param_groups] == [True, False]
    x = torch.randn(4, 2, 3)
    out, _ = model(x)
    out.square().sum().backward()
    optimizer.step()
    W = model.cell.recurrent_matrix()
    assert torch.allclose(W.conj().T @ W, torch.eye(5, dtype=W.dtype), atol=1e-5)
