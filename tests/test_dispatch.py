"""Backend choice: "auto" on CPU tensors is torch, TRIT_RNN_BACKEND overrides "auto", an explicit
"triton" that cannot run falls back to torch with a logged reason, bad names are rejected."""

import logging

import pytest
import torch

from trit_rnn import dispatch
from trit_rnn.functional import dense_recurrence


def always_supported():
    return True, "test: supported"


def test_auto_on_cpu_is_torch():
    backend, reason = dispatch.resolve_backend("auto", torch.device("cpu"), always_supported)
    assert backend == "torch" and "cpu" in reason


def test_auto_on_cuda_asks_the_kernel(monkeypatch):
    cuda = torch.device("cuda")
    assert dispatch.resolve_backend("auto", cuda, always_supported)[0] == "triton"
    backend, reason = dispatch.resolve_backend("auto", cuda, lambda: (False, "H too large for shared memory"))
    assert backend == "torch" and "H too large" in reason


@pytest.mark.parametrize("value,expected", [("torch", "torch"), ("triton", "triton"), ("auto", "torch")])
def test_environment_overrides_auto(monkeypatch, value, expected):
    monkeypatch.setenv(dispatch.ENV_VAR, value)
    assert dispatch.resolve_backend("auto", torch.device("cpu"), always_supported)[0] == expected


def test_environment_does_not_override_an_explicit_choice(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "triton")
    assert dispatch.resolve_backend("torch", torch.device("cpu"), always_supported)[0] == "torch"


def test_bad_environment_value_is_named(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "cudnn")
    with pytest.raises(ValueError, match="TRIT_RNN_BACKEND"):
        dispatch.resolve_backend("auto", torch.device("cpu"), always_supported)


def test_explicit_triton_on_cpu_without_interpreter_falls_back_with_warning(monkeypatch, caplog):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    pre, w = torch.randn(3, 2, 4), torch.eye(4)
    with caplog.at_level(logging.DEBUG, logger="trit_rnn"):
        out, _ = dense_recurrence(pre, w, backend="triton")
    expected, _ = dense_recurrence(pre, w, backend="torch")
    assert torch.equal(out, expected)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "TRITON_INTERPRET" in warnings[0].getMessage()


def test_auto_choice_is_logged_at_debug(caplog):
    with caplog.at_level(logging.DEBUG, logger="trit_rnn"):
        dense_recurrence(torch.randn(2, 1, 3), torch.eye(3))
    assert any(r.levelno == logging.DEBUG and "'auto' -> 'torch'" in r.getMessage() for r in caplog.records)


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend must be one of"):
        dense_recurrence(torch.randn(2, 1, 3), torch.eye(3), backend="cuda")


@pytest.mark.parametrize(
    "kwargs,exception,words",
    [
        ({"pre": torch.randn(2, 3)}, ValueError, "pre must be 3-D"),
        ({"pre": torch.randint(0, 2, (2, 1, 3))}, TypeError, "pre must have a floating dtype"),
        ({"weight_hh": torch.eye(4)}, ValueError, r"weight_hh must have shape \(3, 3\)"),
        ({"weight_hh": torch.eye(3, dtype=torch.float64)}, TypeError, "weight_hh must have the dtype of pre"),
        ({"h0": torch.zeros(2, 3)}, ValueError, r"h0 must have shape \(1, 3\)"),
        ({"nonlinearity": "gelu"}, ValueError, "nonlinearity must be one of"),
        ({"nonlinearity": "modrelu"}, ValueError, "act_bias .* is required"),
        ({"act_bias": torch.zeros(3)}, ValueError, "act_bias is used only with"),
        (
            {"nonlinearity": "modrelu", "act_bias": torch.zeros(4)},
            ValueError,
            r"act_bias must have shape \(3,\)",
        ),
        ({"pre": torch.randn(0, 1, 3)}, ValueError, "T, B, H >= 1"),
        ({"weight_hh": [[1.0]]}, TypeError, "weight_hh must be a torch.Tensor"),
    ],
)
def test_bad_arguments_are_named(kwargs, exception, words):
    args = {"pre": torch.randn(2, 1, 3), "weight_hh": torch.eye(3), **kwargs}
    pre, weight = args.pop("pre"), args.pop("weight_hh")
    with pytest.raises(exception, match=words):
        dense_recurrence(pre, weight, **args)
