"""The LSTM/GRU training options (peephole, layer norm, zoneout, recurrent dropout) against cell
equations written out independently, in float64, with gradients; neutral settings reduce to the
fused cells; random masks behave as defined (one recurrent mask per sequence)."""

import pytest
import torch
from torch.nn import functional as F

from tests.tolerances import assert_close
from trit_rnn import GRU, LSTM

F64 = torch.float64


def lstm_equations(model, x, h, c, zoneout=0.0, zoneout_cell=0.0, mask=None):
    """Eval-mode LSTM with the module's options, one layer, one direction."""
    H = model.hidden_size
    w_ih, w_hh, b = model.weight_ih_l0, model.weight_hh_l0, model.bias_ih_l0 + model.bias_hh_l0
    peephole = getattr(model, "peephole_l0", None)
    ln = model.step_options.layer_norm
    outputs = []
    for x_t in x.unbind(0):
        x_term, h_term = x_t @ w_ih.T, (h * mask if mask is not None else h) @ w_hh.T
        if ln:
            x_term = F.layer_norm(
                x_term, (4 * H,), model.layer_norm_ih_l0.weight, model.layer_norm_ih_l0.bias
            )
            h_term = F.layer_norm(
                h_term, (4 * H,), model.layer_norm_hh_l0.weight, model.layer_norm_hh_l0.bias
            )
        a = x_term + h_term + b
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        if peephole is not None:
            i, f = i + peephole[0] * c, f + peephole[1] * c
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if peephole is not None:
            o = o + peephole[2] * c_new
        c_out = (
            F.layer_norm(c_new, (H,), model.layer_norm_c_l0.weight, model.layer_norm_c_l0.bias)
            if ln
            else c_new
        )
        h_new = torch.sigmoid(o) * torch.tanh(c_out)
        c = zoneout_cell * c + (1 - zoneout_cell) * c_new
        h = zoneout * h + (1 - zoneout) * h_new
        outputs.append(h)
    return torch.stack(outputs), h, c


def spread(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)


@pytest.mark.parametrize(
    "options",
    [
        {"peephole": True},
        {"layer_norm": True},
        {"zoneout": 0.3, "zoneout_cell": 0.2},
        {"peephole": True, "layer_norm": True},
    ],
    ids=str,
)
def test_lstm_options_match_equations_in_eval(options):
    torch.manual_seed(0)
    model = LSTM(3, 5, dtype=F64, **options).eval()
    spread(model)
    x = torch.randn(6, 2, 3, dtype=F64, requires_grad=True)
    h0, c0 = torch.randn(1, 2, 5, dtype=F64) * 0.5, torch.randn(1, 2, 5, dtype=F64) * 0.5
    out, (h_n, c_n) = model(x, (h0, c0))
    ref_out, ref_h, ref_c = lstm_equations(
        model, x, h0[0], c0[0], options.get("zoneout", 0.0), options.get("zoneout_cell", 0.0)
    )
    up = torch.randn_like(out)
    grads = torch.autograd.grad((out * up).sum(), [x, *model.parameters()])
    ref_grads = torch.autograd.grad((ref_out * up).sum(), [x, *model.parameters()])
    assert_close(out, ref_out, F64, "output")
    assert_close(h_n[0], ref_h, F64, "h_n")
    assert_close(c_n[0], ref_c, F64, "c_n")
    for k, (a, b) in enumerate(zip(grads, ref_grads, strict=True)):
        assert_close(a, b, F64, f"gradient {k}")


def test_neutral_options_reduce_to_the_fused_cells():
    torch.manual_seed(0)
    plain = LSTM(3, 5, 2)
    peephole = LSTM(3, 5, 2, peephole=True)
    peephole.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        peephole.peephole_l0.zero_()
        peephole.peephole_l1.zero_()
    x = torch.randn(7, 3, 3)
    assert_close(peephole(x)[0], plain(x)[0], torch.float32, "LSTM with zero peepholes")
    gru, dropped = GRU(3, 5), GRU(3, 5, recurrent_dropout=0.4, zoneout=0.0)
    dropped.load_state_dict(gru.state_dict())
    assert_close(dropped.eval()(x)[0], gru(x)[0], torch.float32, "GRU recurrent dropout in eval")


def test_recurrent_dropout_uses_one_mask_per_sequence():
    torch.manual_seed(0)
    model = LSTM(3, 5, recurrent_dropout=0.5, dtype=F64).train()
    x = torch.randn(6, 2, 3, dtype=F64)
    torch.manual_seed(7)
    out, _ = model(x)
    torch.manual_seed(7)
    mask = torch.bernoulli(torch.full((2, 5), 0.5, dtype=F64)) / 0.5  # the module's one draw
    zeros = torch.zeros(2, 5, dtype=F64)
    ref_out, _, _ = lstm_equations(model, x, zeros, zeros, mask=mask)
    assert_close(out, ref_out, F64, "output under the replayed mask")
    assert not torch.equal(out, model.eval()(x)[0])


def test_zoneout_in_training_keeps_previous_values():
    torch.manual_seed(0)
    model = GRU(3, 4, zoneout=0.5).train()
    x = torch.randn(40, 8, 3)
    out, _ = model(x)
    kept = (out[1:] == out[:-1]).float().mean().item()  # a unit zoned out repeats its value exactly
    assert 0.4 < kept < 0.6, kept


def test_gru_layer_norm_matches_equations():
    torch.manual_seed(0)
    model = GRU(3, 4, layer_norm=True, dtype=F64)
    spread(model)
    x = torch.randn(5, 2, 3, dtype=F64)
    out, _ = model(x)
    H = 4
    h = torch.zeros(2, H, dtype=F64)
    outputs = []
    for x_t in x.unbind(0):
        p = F.layer_norm(
            x_t @ model.weight_ih_l0.T, (3 * H,), model.layer_norm_ih_l0.weight, model.layer_norm_ih_l0.bias
        )
        p = p + model.bias_ih_l0
        q = F.layer_norm(
            h @ model.weight_hh_l0.T, (3 * H,), model.layer_norm_hh_l0.weight, model.layer_norm_hh_l0.bias
        )
        q = q + model.bias_hh_l0
        r = torch.sigmoid(p[:, :H] + q[:, :H])
        z = torch.sigmoid(p[:, H : 2 * H] + q[:, H : 2 * H])
        n = torch.tanh(p[:, 2 * H :] + r * q[:, 2 * H :])
        h = (1 - z) * n + z * h
        outputs.append(h)
    assert_close(out, torch.stack(outputs), F64, "GRU with layer norm")


@pytest.mark.parametrize(
    "options", [{"zoneout": 1.0}, {"recurrent_dropout": -0.1}, {"layer_norm": 1}], ids=str
)
def test_bad_option_values_are_named(options):
    name = next(iter(options))
    with pytest.raises((ValueError, TypeError), match=name):
        GRU(3, 4, **options)
