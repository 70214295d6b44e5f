"""Bad input at the functional and module boundary: one table of cases, each a ValueError or
TypeError whose message names the argument, what was expected and what was received. Then the valid
but unusual input that must work: non-contiguous tensors, unbatched input, T = 1, NaN propagating
as in torch.nn, and a shape the kernels do not take falling back to the torch backend, logged."""

import logging

import pytest
import torch
from trit_rnn.kernels.dense import launch as dense_launch

import trit_rnn
from trit_rnn import functional

T, B, INPUT, H = 4, 3, 2, 8


def _x(*shape, **kwargs):
    return torch.randn(*(shape or (T, B, INPUT)), **kwargs)


def _pre(*shape, **kwargs):
    return torch.randn(*(shape or (T, B, H)), **kwargs)


# (id, call, exception, words the message must contain: argument, expected, received)
# fmt: off
CASES = [
    # modules: input
    ("input rank 1", lambda: trit_rnn.GRU(INPUT, H)(_x(5)), ValueError, ["input", "3-D", "(5,)"]),
    ("input rank 4", lambda: trit_rnn.OrthogonalRNN(INPUT, H)(_x(1, T, B, INPUT)), ValueError, ["input", "3-D", "(1, 4, 3, 2)"]),
    ("input size", lambda: trit_rnn.LSTM(INPUT, H)(_x(T, B, INPUT + 1)), ValueError, ["input", "input_size=2", "(4, 3, 3)"]),
    ("input integer dtype", lambda: trit_rnn.URNN(INPUT, H)(torch.ones(T, B, INPUT, dtype=torch.int64)), TypeError,
     ["input", "floating", "torch.int64"]),
    ("input dtype vs parameters", lambda: trit_rnn.GRU(INPUT, H)(_x().double()), TypeError,
     ["input", "module's parameters (torch.float32)", "torch.float64"]),
    ("input on another device", lambda: trit_rnn.EUNN(INPUT, H)(_x(device="meta")), ValueError,
     ["input", "device of the module's parameters (cpu)", "meta"]),
    ("input without steps", lambda: trit_rnn.GORU(INPUT, H)(_x(0, B, INPUT)), ValueError, ["input", "one time step", "(0, 3, 2)"]),
    # modules: initial states
    ("hx shape", lambda: trit_rnn.GRU(INPUT, H)(_x(), torch.zeros(1, B + 1, H)), ValueError, ["hx", "(1, 3, 8)", "(1, 4, 8)"]),
    ("hx dtype", lambda: trit_rnn.DeepTransitionRNN(INPUT, H)(_x(), torch.zeros(1, B, H, dtype=torch.float64)), TypeError,
     ["hx", "torch.float32", "torch.float64"]),
    ("hx device", lambda: trit_rnn.GRU(INPUT, H)(_x(), torch.zeros(1, B, H, device="meta")), ValueError, ["hx", "cpu", "meta"]),
    ("hx real for a complex state", lambda: trit_rnn.URNN(INPUT, H)(_x(), torch.zeros(1, B, H)), TypeError,
     ["hx", "torch.complex64", "torch.float32"]),
    ("LSTM hx not a tuple", lambda: trit_rnn.LSTM(INPUT, H)(_x(), torch.zeros(1, B, H)), TypeError, ["hx", "(h_0, c_0)", "Tensor"]),
    ("LSTM c_0 shape", lambda: trit_rnn.LSTM(INPUT, H)(_x(), (torch.zeros(1, B, H), torch.zeros(1, B, H + 1))), ValueError,
     ["hx[1] (c_0)", "(1, 3, 8)", "(1, 3, 9)"]),
    # modules: lengths
    ("lengths above T", lambda: trit_rnn.GRU(INPUT, H)(_x(), lengths=[T + 1, 1, 1]), ValueError, ["lengths", "[1, 4]", "max 5"]),
    ("lengths of 0", lambda: trit_rnn.LSTM(INPUT, H)(_x(), lengths=torch.tensor([0, 1, 1])), ValueError, ["lengths", "[1, 4]", "min 0"]),
    ("lengths float", lambda: trit_rnn.GRU(INPUT, H)(_x(), lengths=torch.tensor([1.0, 2.0, 3.0])), TypeError,
     ["lengths", "integer", "torch.float32"]),
    ("lengths count", lambda: trit_rnn.OrthogonalRNN(INPUT, H)(_x(), lengths=[1, 2]), ValueError, ["lengths", "(3)", "(2,)"]),
    ("lengths not ints", lambda: trit_rnn.GRU(INPUT, H)(_x(), lengths=[1.5, 2, 3]), TypeError, ["lengths", "ints", "1.5"]),
    ("lengths with unbatched input", lambda: trit_rnn.GRU(INPUT, H)(_x(T, INPUT), lengths=[2]), ValueError,
     ["lengths", "batched", "(4, 2)"]),
    ("lengths with a PackedSequence", lambda: trit_rnn.GRU(INPUT, H)(
        torch.nn.utils.rnn.pack_sequence([_x(3, INPUT)]), lengths=[3]), ValueError, ["lengths", "None", "PackedSequence"]),
    # modules: constructor
    ("hidden_size 0", lambda: trit_rnn.OrthogonalRNN(INPUT, 0), ValueError, ["hidden_size", "positive integer", "0"]),
    ("hidden_size negative", lambda: trit_rnn.LSTM(INPUT, -1), ValueError, ["hidden_size", "positive integer", "-1"]),
    ("input_size float", lambda: trit_rnn.GRU(2.5, H), ValueError, ["input_size", "positive integer", "2.5"]),
    ("num_layers 0", lambda: trit_rnn.GORU(INPUT, H, num_layers=0), ValueError, ["num_layers", "positive integer", "0"]),
    ("FFT EUNN size 6", lambda: trit_rnn.EUNN(INPUT, 6, fft=True), ValueError, ["hidden size", "power-of-two", "6"]),
    ("GORU FFT size 12", lambda: trit_rnn.GORU(INPUT, 12), ValueError, ["hidden", "power", "12"]),
    ("KRU factors", lambda: trit_rnn.KRU(INPUT, 8, factors=(3, 3)), ValueError, ["factors", "hidden size 8", "(3, 3)"]),
    ("nonlinearity", lambda: trit_rnn.OrthogonalRNN(INPUT, H, nonlinearity="sigmoidx"), ValueError,
     ["nonlinearity", "'modrelu'", "'sigmoidx'"]),
    ("parametrization", lambda: trit_rnn.OrthogonalRNN(INPUT, H, parametrization="qr"), ValueError,
     ["parametrization", "'exp'", "'qr'"]),
    ("backend", lambda: trit_rnn.GRU(INPUT, H, backend="cuda"), ValueError, ["backend", "'triton'", "'cuda'"]),
    ("dropout", lambda: trit_rnn.LSTM(INPUT, H, dropout=2.0), ValueError, ["dropout", "[0, 1]", "2.0"]),
    ("readout", lambda: trit_rnn.URNN(INPUT, H, readout="imag"), ValueError, ["readout", "'re_im'", "'imag'"]),
    ("depth", lambda: trit_rnn.DeepTransitionRNN(INPUT, H, depth=0), ValueError, ["depth", "positive integer", "0"]),
    ("GORU orthogonal", lambda: trit_rnn.GORU(INPUT, H, orthogonal="foo"), ValueError, ["orthogonal", "'eunn_fft'", "'foo'"]),
    ("batch_first", lambda: trit_rnn.GRU(INPUT, H, batch_first=1), TypeError, ["batch_first", "bool", "1"]),
    ("checkpoint_every", lambda: trit_rnn.OrthogonalRNN(INPUT, H, checkpoint_every=-2), ValueError,
     ["checkpoint_every", "positive integer", "-2"]),
    ("proj_size", lambda: trit_rnn.LSTM(INPUT, H, proj_size=2), ValueError, ["proj_size", "not supported", "2"]),
    ("recurrent_matrix layer", lambda: trit_rnn.OrthogonalRNN(INPUT, H).recurrent_matrix(layer=3), ValueError,
     ["layer", "[0, 1)", "3"]),
    # functional ops
    ("pre rank", lambda: functional.dense_recurrence(_pre(B, H), torch.eye(H)), ValueError, ["pre", "3-D", "(3, 8)"]),
    ("weight_hh shape", lambda: functional.dense_recurrence(_pre(), torch.eye(H + 1)), ValueError,
     ["weight_hh", "(8, 8)", "(9, 9)"]),
    ("h0 shape", lambda: functional.dense_recurrence(_pre(), torch.eye(H), torch.zeros(B + 1, H)), ValueError,
     ["h0", "(3, 8)", "(4, 8)"]),
    ("pre integer dtype", lambda: functional.dense_recurrence(torch.ones(T, B, H, dtype=torch.int32), torch.eye(H)),
     TypeError, ["pre", "floating", "torch.int32"]),
    ("weight_hh device", lambda: functional.dense_recurrence(_pre(), torch.eye(H, device="meta")), ValueError,
     ["weight_hh", "cpu", "meta"]),
    ("weight_hh dtype", lambda: functional.lstm_recurrence(_pre(T, B, 4 * H), torch.zeros(4 * H, H).double()),
     TypeError, ["weight_hh", "torch.float32", "torch.float64"]),
    ("real pre, complex weight", lambda: functional.dense_recurrence(_pre(), torch.eye(H, dtype=torch.complex64)),
     TypeError, ["weight_hh", "real", "complex64"]),
    ("modrelu without act_bias", lambda: functional.dense_recurrence(_pre(), torch.eye(H), nonlinearity="modrelu"),
     ValueError, ["act_bias", "required", "None"]),
    ("complex act_bias dtype", lambda: functional.dense_recurrence(
        _pre(dtype=torch.complex64), torch.eye(H, dtype=torch.complex64), nonlinearity="modrelu",
        act_bias=torch.zeros(H, dtype=torch.float64)), TypeError, ["act_bias", "torch.float32", "torch.float64"]),
    ("unknown nonlinearity", lambda: functional.dense_recurrence(_pre(), torch.eye(H), nonlinearity="gelu"),
     ValueError, ["nonlinearity", "'tanh'", "'gelu'"]),
    ("complex tanh", lambda: functional.dense_recurrence(
        _pre(dtype=torch.complex64), torch.eye(H, dtype=torch.complex64), nonlinearity="tanh"), ValueError,
     ["nonlinearity", "'modrelu'", "'tanh'"]),
    ("unknown backend", lambda: functional.gru_recurrence(_pre(T, B, 3 * H), torch.zeros(3 * H, H), backend="cuda"),
     ValueError, ["backend", "'auto'", "'cuda'"]),
    ("empty pre", lambda: functional.dense_recurrence(_pre(0, B, H), torch.eye(H)), ValueError, ["pre", ">= 1", "(0, 3, 8)"]),
    ("functional lengths", lambda: functional.dense_rnn(_x(), torch.zeros(H, INPUT), None, torch.eye(H), lengths=[1, 2, 9]),
     ValueError, ["lengths", "[1, 4]", "max 9"]),
    ("checkpoint_every 0", lambda: functional.dense_recurrence(_pre(), torch.eye(H), checkpoint_every=0), ValueError,
     ["checkpoint_every", "positive integer", "0"]),
    ("eps", lambda: functional.dense_recurrence(
        _pre(dtype=torch.complex64), torch.eye(H, dtype=torch.complex64), nonlinearity="identity", eps=-1.0),
     ValueError, ["eps", "positive finite", "-1.0"]),
    ("LSTM pre width", lambda: functional.lstm_recurrence(_pre(T, B, 10), torch.zeros(8, 2)), ValueError,
     ["pre", "4*H", "(4, 3, 10)"]),
    ("GRU bias_hh", lambda: functional.gru_recurrence(_pre(T, B, 6), torch.zeros(6, 2), torch.zeros(5)), ValueError,
     ["bias_hh", "(6,)", "(5,)"]),
    ("deep nonlinearity", lambda: functional.deep_transition_recurrence(
        _pre(T, B, 2), torch.zeros(2, 2), torch.zeros(1, 2, 2), torch.zeros(1, 2), nonlinearity="modrelu"),
     ValueError, ["nonlinearity", "'tanh'", "'modrelu'"]),
    ("input_projection", lambda: functional.input_projection(_x(T, B, 3), torch.zeros(4, 2)), ValueError,
     ["x", "input size 2", "(4, 3, 3)"]),
]
# fmt: on


@pytest.mark.parametrize(
    "call, exception, words", [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_bad_input_is_named(call, exception, words):
    with pytest.raises(exception) as info:
        call()
    message = str(info.value)
    missing = [word for word in words if word not in message]
    assert not missing, f"{missing} not in the message: {message}"


def test_the_table_has_at_least_25_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", ["orthogonal", "urnn", "lstm", "gru", "goru", "deep_transition"])
def test_non_contiguous_input_and_state_give_the_contiguous_result(name):
    from tests.all_modules import build, state_tensors

    module = build(name, "torch")
    x = torch.randn(B, T, 3).transpose(0, 1)  # [T, B, INPUT], not contiguous
    assert not x.is_contiguous()
    expected = module(x.contiguous())
    got = module(x)
    assert torch.equal(got[0], expected[0])
    for a, b in zip(state_tensors(got[1]), state_tensors(expected[1]), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_one_step_and_unbatched_input(backend):
    module = trit_rnn.GRU(INPUT, H, backend=backend)
    reference = torch.nn.GRU(INPUT, H)
    reference.load_state_dict(module.state_dict())
    x = torch.randn(1, INPUT)  # unbatched, T = 1
    out, h_n = module(x)
    ref_out, ref_h = reference(x)
    assert out.shape == ref_out.shape == (1, H) and h_n.shape == ref_h.shape == (1, H)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(h_n, ref_h)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_nan_propagates_as_in_torch_nn(cell, backend):
    """A NaN input at one step of one sequence: NaN from that step on in that sequence's outputs
    and state, nowhere else, as torch.nn.LSTM/GRU."""
    ours = {"lstm": trit_rnn.LSTM, "gru": trit_rnn.GRU}[cell](INPUT, H, backend=backend)
    reference = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](INPUT, H)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(T, B, INPUT)
    x[2, 1, 0] = float("nan")
    out, state = ours(x)
    ref_out, ref_state = reference(x)
    assert torch.equal(out.isnan(), ref_out.isnan())
    assert out[2:, 1].isnan().all() and not out[:, [0, 2]].isnan().any()
    states = state if isinstance(state, tuple) else (state,)
    ref_states = ref_state if isinstance(ref_state, tuple) else (ref_state,)
    for s, r in zip(states, ref_states, strict=True):
        assert torch.equal(s.isnan(), r.isnan())


def test_nan_propagates_in_the_orthogonal_rnn_as_in_torch_nn_rnn():
    module = trit_rnn.OrthogonalRNN(INPUT, H, nonlinearity="tanh", backend="torch")
    x = torch.randn(T, B, INPUT)
    x[1, 0, 1] = float("nan")
    reference = torch.nn.RNN(INPUT, H, bias=False)
    with torch.no_grad():
        reference.weight_ih_l0.copy_(module.weight_ih_l0)
        reference.weight_hh_l0.copy_(module.recurrent_matrix())
    out, h_n = module(x)
    ref_out, ref_h = reference(x)
    assert torch.equal(out.isnan(), ref_out.isnan()) and torch.equal(h_n.isnan(), ref_h.isnan())
    assert out[1:, 0].isnan().all()


def test_a_shape_the_kernel_rejects_falls_back_to_torch_with_the_reason_logged(monkeypatch, caplog):
    """backend="triton" with a shape the dense kernels do not support: the torch backend runs it
    (same result) and the reason is logged as a warning."""
    monkeypatch.setattr(
        dense_launch, "supports", lambda hidden_size, dtype, device: (False, f"H={hidden_size}: too large")
    )
    module = trit_rnn.OrthogonalRNN(INPUT, H, backend="triton")
    x = torch.randn(T, B, INPUT)
    with caplog.at_level(logging.WARNING, logger="trit_rnn"):
        out, h_n = module(x)
    assert any(
        "H=8: too large" in record.getMessage() and "'torch'" in record.getMessage()
        for record in caplog.records
    )
    module.backend = "torch"
    expected, expected_h = module(x)
    assert torch.equal(out, expected) and torch.equal(h_n, expected_h)
