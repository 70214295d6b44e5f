"""The optional external peers (geotorch, flashrnn, torch-eunn) built through the registry.

CI installs the `peers` extra, so these tests fail rather than skip when a library is missing."""

import pytest
import torch
from torch import nn

from tests.tolerances import assert_close
from trit_rnn import registry
from trit_rnn.peers.external import PeerAPIError, require_api

T, B, IN, H = 5, 3, 4, 8

EXTERNAL_PEERS = [
    ("geotorch_exprnn", "eager"),
    ("flashrnn_elman", "vanilla"),
    ("flashrnn_lstm", "vanilla"),
    ("torch_eunn", "eager"),
]


def build(name, backend, hidden_size=H, dtype=torch.float32):
    spec = registry.get(name)
    ok, reason = spec.availability(backend, "cpu", dtype)
    assert ok, reason
    return spec, spec.build(IN, hidden_size, backend=backend, device="cpu", dtype=dtype)


@pytest.mark.parametrize("name, backend", EXTERNAL_PEERS)
def test_forward_shape_and_finite_gradients(name, backend):
    spec, model = build(name, backend)
    x = torch.randn(T, B, IN)
    out, _ = model(x)
    assert out.shape == (T, B, spec.output_features(H))
    out.float().sum().backward()
    params = dict(model.named_parameters())
    assert params
    for pname, p in params.items():
        assert p.grad is not None, f"{name}: no gradient on {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient on {pname}"


def test_geotorch_recurrent_matrix_is_orthogonal_before_and_after_a_step():
    _, model = build("geotorch_exprnn", "eager")
    eye = torch.eye(H)

    def defect():
        w = model.recurrent_matrix.detach()
        return (w.T @ w - eye).abs().max().item()

    assert defect() < 1e-5
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(torch.randn(T, B, IN))[0].sum().backward()
    optimizer.step()
    assert defect() < 1e-5


def test_flashrnn_elman_equals_torch_rnn_with_the_same_weights():
    _, model = build("flashrnn_elman", "vanilla", dtype=torch.float64)
    rnn = nn.RNN(IN, H, nonlinearity="tanh", dtype=torch.float64)
    with torch.no_grad():
        model.input.weight.copy_(rnn.weight_ih_l0)
        model.recurrent.copy_(rnn.weight_hh_l0.view(1, 1, H, H))
        model.bias.copy_((rnn.bias_ih_l0 + rnn.bias_hh_l0).view(1, 1, H))
    x = torch.randn(T, B, IN, dtype=torch.float64)
    h0 = torch.randn(1, B, H, dtype=torch.float64)
    out, last = model(x, h0)
    expected, expected_last = rnn(x, h0)
    assert_close(out, expected, torch.float64, "output")
    assert_close(last, expected_last, torch.float64, "last state")


def test_flashrnn_triton_fused_lstm_matches_vanilla_under_the_interpreter():
    """Checks the adapter's layouts for the CUDA-only backend: conftest runs Triton's interpreter.
    flashrnn's Triton LSTM needs a power-of-two head_dim (16 here) and pads B to a multiple of 16."""
    from trit_rnn.peers.flashrnn_cells import FlashRNN

    vanilla = FlashRNN(IN, 16, function="lstm", backend="vanilla")
    fused = FlashRNN(IN, 16, function="lstm", backend="triton_fused")
    fused.load_state_dict(vanilla.state_dict())
    x = torch.randn(T, B, IN)
    upstream = torch.randn(T, B, 16)
    out_v, last_v = vanilla(x)
    out_f, last_f = fused(x)
    assert_close(out_f, out_v, torch.float32, "output")
    assert_close(last_f, last_v, torch.float32, "last states")
    grads_v = torch.autograd.grad((out_v * upstream).sum(), list(vanilla.parameters()))
    grads_f = torch.autograd.grad((out_f * upstream).sum(), list(fused.parameters()))
    for (pname, _), g_f, g_v in zip(vanilla.named_parameters(), grads_f, grads_v, strict=True):
        assert_close(g_f, g_v, torch.float32, f"d {pname}")


def test_backend_and_dtype_restrictions():
    assert registry.get("flashrnn_lstm").availability("triton_fused", "cpu", torch.float32)[0] is False
    assert registry.get("flashrnn_lstm").availability("triton_fused", "cuda", torch.bfloat16)[0] is True
    assert "triton_fused" not in registry.get("flashrnn_elman").backends
    assert registry.get("geotorch_exprnn").availability("eager", "cpu", torch.bfloat16)[0] is False
    from trit_rnn.peers.flashrnn_cells import FlashRNN

    with pytest.raises(ValueError, match="no 'elman' cell"):
        FlashRNN(IN, H, function="elman", backend="triton_fused")
    with pytest.raises(ValueError, match="power-of-two head_dim"):
        FlashRNN(IN, 24, function="lstm", backend="triton_fused")


def test_availability_reports_a_missing_library():
    spec = registry.CellSpec(
        "needs_missing",
        "a peer whose library is not installed",
        "peer",
        lambda *args, **kwargs: None,
        ("eager",),
        requires=("trit_rnn_no_such_module",),
    )
    ok, reason = spec.availability("eager", "cpu", torch.float32)
    assert not ok
    assert "not installed" in reason and "trit_rnn_no_such_module" in reason


def test_require_api_names_what_is_missing():
    with pytest.raises(PeerAPIError, match=r"geotorch\.no_such_function.*geotorch 0\.4"):
        require_api("geotorch", "no_such_function", distribution="geotorch", tested="0.4.0")
    with pytest.raises(ImportError, match="pip install trit-rnn-no-such-dist"):
        require_api("trit_rnn_no_such_module", "x", distribution="trit-rnn-no-such-dist", tested="1.0")
