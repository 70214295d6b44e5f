"""GORU against its equations written out in float64 from the module's own parameters: outputs,
h_n and every gradient (through U's parametrisation), for each orthogonal parametrisation; U is
orthogonal; initialisation as the reference; bad options are named."""

import pytest
import torch

from tests.tolerances import assert_close
from trit_rnn import GORU

F32, F64 = torch.float32, torch.float64


def goru_reference(model, x, h0):
    """The GORU equations, one layer, one direction, from model's (float64) parameters."""
    H = model.hidden_size
    u_r, u_g, u_c = model.weight_ih_l0.split(H)
    w_r, w_g = model.gate_weight_hh_l0.split(H)
    b_r, b_g, b_x = model.bias_ih_l0.split(H)
    u = model.recurrent_matrix()
    b_c = model.act_bias_l0
    h = h0
    outputs = []
    for x_t in x.unbind(0):
        r = torch.sigmoid(h @ w_r.T + x_t @ u_r.T + b_r)
        g = torch.sigmoid(h @ w_g.T + x_t @ u_g.T + b_g)
        a = r * (h @ u.T) + x_t @ u_c.T + b_x
        c = torch.sign(a) * torch.relu(a.abs() + b_c)
        h = g * h + (1 - g) * c
        outputs.append(h)
    return torch.stack(outputs), h


def spread_parameters(model, seed):
    """Weights large enough that the gates and modReLU's kink matter (the init is near-trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.weight_ih_l0.normal_(0, 0.5, generator=g)
        model.gate_weight_hh_l0.normal_(0, 0.4, generator=g)
        model.bias_ih_l0.normal_(0, 0.3, generator=g)
        model.act_bias_l0.uniform_(-0.3, 0.1, generator=g)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("orthogonal", ["eunn_fft", "eunn", "exp", "cayley", "householder"])
def test_matches_float64_equations(orthogonal, backend):
    T, B, IN, H = 6, 3, 4, 8
    torch.manual_seed(0)
    model = GORU(IN, H, orthogonal=orthogonal, backend=backend)
    spread_parameters(model, 1)
    reference = GORU(IN, H, orthogonal=orthogonal, dtype=F64)
    reference.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    g = torch.Generator().manual_seed(2)
    x = torch.randn(T, B, IN, generator=g, dtype=F64)
    h0 = torch.randn(1, B, H, generator=g, dtype=F64) * 0.5
    up_out, up_h = torch.randn(T, B, H, generator=g, dtype=F64), torch.randn(1, B, H, generator=g, dtype=F64)

    def grads(m, out, h_n, leaves):
        loss = (out.double() * up_out).sum() + (h_n.double() * up_h).sum()
        return torch.autograd.grad(loss, leaves + list(m.parameters()))

    x32, h32 = x.float().requires_grad_(), h0.float().requires_grad_()
    out, h_n = model(x32, h32)
    ours = grads(model, out, h_n, [x32, h32])
    x64, h64 = x.clone().requires_grad_(), h0.clone().requires_grad_()
    ref_out, ref_h = goru_reference(reference, x64, h64[0])
    expected = grads(reference, ref_out, ref_h.unsqueeze(0), [x64, h64])
    assert_close(out, ref_out, F32, "output")
    assert_close(h_n, ref_h.unsqueeze(0), F32, "h_n")
    names = ["input", "hx"] + [n for n, _ in model.named_parameters()]
    for name, a, b in zip(names, ours, expected, strict=True):
        assert_close(a, b, F32, f"grad {name}")


def test_orthogonal_candidate_matrix_and_reference_init():
    model = GORU(3, 16, num_layers=2, bidirectional=True)
    for layer in range(2):
        for direction in range(2):
            u = model.recurrent_matrix(layer, direction).detach().double()
            assert (u.T @ u - torch.eye(16, dtype=F64)).abs().max() < 10 * 16 * torch.finfo(F32).eps
    assert torch.equal(model.bias_ih_l0[:16], torch.full((16,), 2.0))
    assert torch.equal(model.bias_ih_l0[16:], torch.zeros(32))
    assert torch.equal(model.act_bias_l1, torch.full((16,), 0.01))
    assert model.weight_ih_l0.abs().max() <= 0.01 and model.gate_weight_hh_l1_reverse.abs().max() <= 0.01
    out, h_n = model(torch.randn(5, 2, 3))
    assert out.shape == (5, 2, 32) and h_n.shape == (4, 2, 16)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="orthogonal"):
        GORU(3, 8, orthogonal="givens")
    with pytest.raises(ValueError, match="power-of-two"):
        GORU(3, 12)  # the default FFT-style EUNN
    GORU(3, 12, orthogonal="eunn")  # the tunable style takes any size
