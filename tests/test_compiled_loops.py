"""The compiled CPU loops (trit_rnn/backends/compiled_loops.py): the same numbers as the Python
loops at shapes that exercise every vector-lane tail, and a working fallback when they cannot be
built or are switched off. The float64 references of both run in the functional tests."""

import logging

import pytest
import torch

from tests.tolerances import assert_close
from trit_rnn.backends import compiled_loops, torch_complex, torch_gated

F64 = torch.float64
# H = 37: two full AVX-512 float vectors and a 5-lane tail (float64: four full, a 5-lane tail)
T, B, H = 5, 3, 37


def _both(monkeypatch, run):
    """run() on the compiled loops, then on the Python loops."""
    assert compiled_loops.loops() is not None, "the compiled CPU loops did not build here"
    compiled = run()
    monkeypatch.setenv("TRIT_RNN_COMPILED_LOOPS", "0")
    python = run()
    monkeypatch.delenv("TRIT_RNN_COMPILED_LOOPS")
    return compiled, python


def _assert_all_close(compiled, python, dtype, what):
    for i, (a, b) in enumerate(zip(compiled, python, strict=True)):
        assert_close(a, b.to(a.dtype), dtype, f"{what} output {i}")


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
@pytest.mark.parametrize("nonlinearity", ["tanh", "modrelu", "relu", "identity"])
def test_gru_loops_agree(dtype, nonlinearity, monkeypatch):
    g = torch.Generator().manual_seed(0)
    pre = torch.randn(T, B, 3 * H, generator=g, dtype=dtype)
    weight = torch.randn(3 * H, H, generator=g, dtype=dtype) * 0.3
    bias, h0 = torch.randn(3 * H, generator=g, dtype=dtype), torch.randn(B, H, generator=g, dtype=dtype)
    act_bias = torch.randn(H, generator=g, dtype=dtype) * 0.2 if nonlinearity == "modrelu" else None
    grad_out, grad_hn = (
        torch.randn(T, B, H, generator=g, dtype=dtype),
        torch.randn(B, H, generator=g, dtype=dtype),
    )

    def run():
        outputs, h_n, gates, hidden_n = torch_gated.gru_forward(pre, weight, bias, h0, act_bias, nonlinearity)
        grads = torch_gated.gru_backward(
            grad_out, grad_hn, outputs, gates, hidden_n, h0, weight, nonlinearity
        )
        return (outputs, h_n, gates, hidden_n, *grads)

    _assert_all_close(*_both(monkeypatch, run), dtype, f"gru {nonlinearity}")


@pytest.mark.parametrize("dtype", [torch.float32, F64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("with_states", [True, False])
def test_lstm_loops_agree(dtype, with_states, monkeypatch):
    g = torch.Generator().manual_seed(1)
    pre = torch.randn(T, B, 4 * H, generator=g).to(dtype)
    weight = (torch.randn(4 * H, H, generator=g) * 0.3).to(dtype)
    h0, c0 = (torch.randn(B, H, generator=g).to(dtype) if with_states else None for _ in range(2))
    grad_out = torch.randn(T, B, H, generator=g).to(dtype)
    grad_hn, grad_cn = (torch.randn(B, H, generator=g).to(dtype) if with_states else None for _ in range(2))

    def run():
        outputs, h_n, c_n, gates, cells = torch_gated.lstm_forward(pre, weight, h0, c0)
        grads = torch_gated.lstm_backward(grad_out, grad_hn, grad_cn, outputs, gates, cells, h0, c0, weight)
        return (outputs, h_n, c_n, gates, cells, *grads)

    _assert_all_close(*_both(monkeypatch, run), dtype, "lstm")


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
def test_complex_modrelu_loops_agree(dtype, monkeypatch):
    g = torch.Generator().manual_seed(2)
    real = torch.float32 if dtype == torch.complex64 else F64
    pre = torch.randn(T, B, H, generator=g, dtype=dtype)
    weight = torch.randn(H, H, generator=g, dtype=dtype) * 0.2
    h0 = torch.randn(B, H, generator=g, dtype=dtype)
    act_bias = torch.randn(H, generator=g, dtype=real) * 0.3
    grad_out, grad_hn = (
        torch.randn(T, B, H, generator=g, dtype=dtype),
        torch.randn(B, H, generator=g, dtype=dtype),
    )
    z = pre + torch.randn(T, B, H, generator=g, dtype=dtype)
    z[1, 0, :4] = 0  # the z = 0 branch: p = s(0), q = 0

    def run():
        outputs, h_n = torch_complex.complex_forward(pre, weight, h0, act_bias, "modrelu", 1e-5)
        dz, dh0 = torch_complex.complex_backward(grad_out, grad_hn, z, weight, act_bias, "modrelu", 1e-5)
        return outputs, h_n, dz, dh0

    compiled, python = _both(monkeypatch, run)
    _assert_all_close(compiled, python, dtype, "complex modReLU")
    inactive = (z.abs() + act_bias) <= 0
    assert torch.all(compiled[2][inactive] == 0), "exactly zero gradient at inactive units"


def test_a_failed_build_falls_back_to_the_python_loops(monkeypatch, caplog):
    import torch.utils.cpp_extension

    def no_compiler(**kwargs):
        raise OSError("no C++ compiler")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_compiler)
    compiled_loops.loops.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=compiled_loops.__name__):
            assert compiled_loops.loops() is None
            assert not compiled_loops.applies(torch.zeros(1))
            pre, weight = torch.randn(3, 2, 12, dtype=F64), torch.randn(12, 3, dtype=F64)
            outputs, *_ = torch_gated.lstm_forward(pre, weight, None, None)
        assert "compiled CPU loops unavailable (OSError: no C++ compiler)" in caplog.text
        assert outputs.shape == (3, 2, 3)
    finally:
        compiled_loops.loops.cache_clear()  # the next use loads the real build again


def test_switch_is_validated_and_read_at_every_call(monkeypatch):
    monkeypatch.setenv("TRIT_RNN_COMPILED_LOOPS", "0")
    assert not compiled_loops.applies(torch.zeros(1))
    monkeypatch.setenv("TRIT_RNN_COMPILED_LOOPS", "1")
    assert compiled_loops.applies(torch.zeros(1))
    assert not compiled_loops.applies(torch.zeros(1, device="meta")), "CPU tensors only"
    monkeypatch.setenv("TRIT_RNN_COMPILED_LOOPS", "yes")
    with pytest.raises(ValueError, match="TRIT_RNN_COMPILED_LOOPS must be 0 or 1; got 'yes'"):
        compiled_loops.applies(torch.zeros(1))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_strided_inputs_are_made_contiguous(cell, monkeypatch):
    """A column slice of a batch (what a per-row reference passes) is strided: the wrappers copy
    it, and the C++ entry points refuse strided tensors outright rather than misread them."""
    g = torch.Generator().manual_seed(3)
    gates = 4 if cell == "lstm" else 3
    pre = torch.randn(4, 5, gates * H, generator=g, dtype=F64)[:, 1:2]
    weight = torch.randn(gates * H, H, generator=g, dtype=F64) * 0.3
    assert not pre.is_contiguous()
    if cell == "lstm":
        compiled, python = _both(monkeypatch, lambda: torch_gated.lstm_forward(pre, weight, None, None))
    else:
        compiled, python = _both(monkeypatch, lambda: torch_gated.gru_forward(pre, weight, None, None))
    _assert_all_close(compiled, python, F64, f"{cell} strided pre")
    zeros = torch.zeros(1, H, dtype=F64)
    with pytest.raises(RuntimeError, match="time_loops: pre must be contiguous"):
        if cell == "lstm":
            compiled_loops.loops().lstm_forward(pre, weight.t().contiguous(), zeros, zeros)
        else:
            compiled_loops.loops().gru_forward(pre, weight.t().contiguous(), None, zeros, None, 0)


def test_realified_matrix_multiplies_interleaved_rows():
    g = torch.Generator().manual_seed(4)
    a = torch.randn(5, 7, generator=g, dtype=torch.complex128)
    x = torch.randn(3, 5, generator=g, dtype=torch.complex128)
    rows = torch.view_as_real(x).reshape(3, 10) @ torch_complex.realified(a)
    assert_close(rows, torch.view_as_real(x @ a).reshape(3, 14), F64, "x @ a through the real form")


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
def test_fused_modrelu_bias_gradient_equals_the_bulk_formula(dtype, monkeypatch):
    from trit_rnn.autograd.complex_gradients import act_bias_grad

    g = torch.Generator().manual_seed(5)
    real = torch.float32 if dtype == torch.complex64 else F64
    z, dz = (torch.randn(T, B, H, generator=g, dtype=dtype) for _ in range(2))
    z[0, 0, :3] = 0
    act_bias = torch.randn(H, generator=g, dtype=real) * 0.5
    compiled, python = _both(monkeypatch, lambda: (act_bias_grad(z, dz.conj(), act_bias, 1e-5),))
    _assert_all_close(compiled, python, dtype if dtype == torch.complex128 else torch.float32, "d act_bias")
