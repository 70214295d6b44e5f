"""The compiled CPU loops (trit_rnn/backends/compiled_loops.py): the same numbers as the Python
loops at shapes that exercise every vector-lane tail, and a working fallback when they cannot be
built or are switched off. The float64 references of both run in the functional tests."""

import logging

import pytest
import torch

from tests.tolerances import assert_close
from trit_rnn.backends import compiled_loops, torch_complex, torch_dense, torch_gated

F64 = torch.float64
# H = 37: two full AVX-512 float vectors and a 5-lane tail (float64: four full, a 5-lane tail)
T, B, H = 5, 3, 37


@pytest.fixture(params=[1, 2, 3], ids=lambda n: f"threads{n}")
def threads(request):
    """Intra-op threads for the test: the loops split the batch rows over them (B = 3: one block
    of 3 rows; 2 and 1; 1, 1 and 1), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.fixture(params=["mkl", "packed"])
def loop_gemm(request, monkeypatch):
    """The step GEMM of the compiled loops forced to MKL or to the packed kernel (float32 and
    complex64 only: float64 always takes MKL)."""
    monkeypatch.setenv("TRIT_RNN_LOOP_GEMM", request.param)
    return request.param


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


@pytest.mark.parametrize("dtype", [torch.float32, F64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("nonlinearity", ["tanh", "modrelu", "relu", "identity"])
@pytest.mark.parametrize("with_states", [True, False])
def test_dense_loops_agree(dtype, nonlinearity, with_states, threads, loop_gemm, monkeypatch):
    g = torch.Generator().manual_seed(3)
    pre = torch.randn(T, B, H, generator=g).to(dtype)
    weight = (torch.randn(H, H, generator=g) * 0.3).to(dtype)
    h0 = torch.randn(B, H, generator=g).to(dtype) if with_states else None
    act_bias = (torch.randn(H, generator=g) * 0.2).to(dtype) if nonlinearity == "modrelu" else None
    grad_out = torch.randn(T, B, H, generator=g).to(dtype)
    grad_hn = torch.randn(B, H, generator=g).to(dtype) if with_states else None

    def run():
        outputs, h_n = torch_dense.dense_forward(pre, weight, h0, act_bias, nonlinearity)
        dz, dh0 = torch_dense.dense_backward(grad_out, grad_hn, outputs, weight, nonlinearity)
        return outputs, h_n, dz, dh0

    compiled, python = _both(monkeypatch, run)
    _assert_all_close(compiled, python, dtype, f"dense {nonlinearity}")
    if nonlinearity in ("relu", "modrelu"):
        assert torch.equal(compiled[2] == 0, python[2] == 0), "the same inactive units"


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
def test_dense_act_bias_gradient_summed_in_the_pass(dtype, threads, loop_gemm):
    """modReLU's act_bias gradient, summed inside the compiled reverse pass, equals the float64
    sum of dz * sign(h) over every step and row, and is None where the caller must sum it."""
    g = torch.Generator().manual_seed(5)
    pre = torch.randn(T, B, H, generator=g).to(dtype)
    weight = (torch.randn(H, H, generator=g) * 0.3).to(dtype)
    act_bias = (torch.randn(H, generator=g) * 0.2).to(dtype)
    grad_out = torch.randn(T, B, H, generator=g).to(dtype)
    outputs, _ = torch_dense.dense_forward(pre, weight, None, act_bias, "modrelu")
    dz, dh0, d_act_bias = torch_dense.dense_backward_fused(
        grad_out, None, outputs, weight, "modrelu", act_bias_grad=True
    )
    reference = (dz.double() * outputs.double().sign()).sum((0, 1))
    assert_close(d_act_bias, reference, dtype, "d act_bias")
    assert_close(dh0, dz[0].double() @ weight.double(), dtype, "dh0")
    assert (
        torch_dense.dense_backward_fused(grad_out, None, outputs, weight, "modrelu", act_bias_grad=False)[2]
        is None
    )


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
@pytest.mark.parametrize("nonlinearity", ["tanh", "modrelu", "relu", "identity"])
def test_gru_loops_agree(dtype, nonlinearity, threads, loop_gemm, monkeypatch):
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
@pytest.mark.parametrize("with_bias", [True, False])
def test_lstm_loops_agree(dtype, with_states, with_bias, threads, loop_gemm, monkeypatch):
    """With a bias, the compiled loop adds it in its pass and sums d_bias there; the Python loop
    adds it in the step GEMM and sums d_gates afterwards."""
    g = torch.Generator().manual_seed(1)
    pre = torch.randn(T, B, 4 * H, generator=g).to(dtype)
    weight = (torch.randn(4 * H, H, generator=g) * 0.3).to(dtype)
    h0, c0 = (torch.randn(B, H, generator=g).to(dtype) if with_states else None for _ in range(2))
    grad_out = torch.randn(T, B, H, generator=g).to(dtype)
    grad_hn, grad_cn = (torch.randn(B, H, generator=g).to(dtype) if with_states else None for _ in range(2))
    bias = torch.randn(4 * H, generator=g).to(dtype) if with_bias else None

    def run():
        outputs, h_n, c_n, gates, cells = torch_gated.lstm_forward(pre, weight, h0, c0, bias)
        *grads, d_bias = torch_gated.lstm_backward(
            grad_out, grad_hn, grad_cn, outputs, gates, cells, h0, c0, weight, bias_grad=with_bias
        )
        assert (d_bias is not None) == with_bias
        return (outputs, h_n, c_n, gates, cells, *grads, *([d_bias] if with_bias else []))

    _assert_all_close(*_both(monkeypatch, run), dtype, "lstm")


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
def test_complex_modrelu_loops_agree(dtype, threads, loop_gemm, monkeypatch):
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
            compiled_loops.loops().lstm_forward(pre, weight.t().contiguous(), None, zeros, zeros)
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


def test_parallel_regions_run_on_every_thread(threads):
    """Built without OpenMP, at::parallel_for would run every pass on one thread, silently."""
    assert compiled_loops.loops().parallel_threads(8) == threads


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_nan_in_the_input_comes_out_as_nan(cell):
    """The gates' fast exp clamps its argument; a NaN must still reach the outputs (a diverging
    run shows NaN, not finite garbage). Only the poisoned row (batch 1) turns NaN at its step."""
    g = torch.Generator().manual_seed(6)
    blocks = 4 if cell == "lstm" else 3
    pre = torch.randn(T, B, blocks * H, generator=g)
    pre[2, 1, 5] = float("nan")
    weight = torch.randn(blocks * H, H, generator=g) * 0.3
    if cell == "lstm":
        outputs = torch_gated.lstm_forward(pre, weight, None, None)[0]
    else:
        outputs = torch_gated.gru_forward(pre, weight, None, None)[0]
    assert torch.isnan(outputs[2, 1]).any()
    assert not torch.isnan(outputs[:2]).any() and not torch.isnan(outputs[2, 0]).any()


def test_workspace_buffers_are_reused_only_when_idle(monkeypatch):
    ops = compiled_loops.loops()
    ops.set_workspace_limit(compiled_loops.workspace_limit_bytes())
    # Idle buffers left by earlier tests would be handed out first; busy ones stay: after a triton
    # launch under TRITON_INTERPRET=1 its pooled input stays referenced, by no Python tensor.
    busy_before = compiled_loops.release_workspace()
    first = compiled_loops.workspace_empty((1024, 1024), torch.float32)  # 4 MiB: pooled
    address = first.data_ptr()
    held = compiled_loops.workspace_empty((1024, 1024), torch.float32)
    assert held.data_ptr() != address, "a buffer in use was handed out again"
    del first
    too_small = compiled_loops.workspace_empty((512, 1024), torch.float32)  # half: not handed a 2x buffer
    assert too_small.data_ptr() != address
    del too_small
    again = compiled_loops.workspace_empty((900, 1024), torch.float32)  # fits in the idle one
    assert again.data_ptr() == address and again.shape == (900, 1024)
    view = again[:10]
    del again
    assert compiled_loops.workspace_empty((1024, 1024), torch.float32).data_ptr() != address, (
        "a buffer still referenced by a view was handed out again"
    )
    del view
    assert compiled_loops.workspace_empty((1024, 1024), torch.float64).data_ptr() != address, "dtype"
    small = compiled_loops.workspace_empty((4, 4), torch.float32)
    assert small.shape == (4, 4)
    del held
    assert compiled_loops.release_workspace() == busy_before  # nothing alive here holds a pooled buffer now


def test_workspace_limit_zero_pools_nothing(monkeypatch):
    monkeypatch.setenv("TRIT_RNN_CPU_WORKSPACE_MB", "0")
    ops = compiled_loops.loops()
    busy_before = ops.set_workspace_limit(compiled_loops.workspace_limit_bytes())  # see the test above
    try:
        alive = compiled_loops.workspace_empty((1024, 1024), torch.float32)
        assert ops.set_workspace_limit(0) == busy_before, "a buffer was pooled with the limit at 0"
        assert alive.shape == (1024, 1024)
    finally:
        monkeypatch.delenv("TRIT_RNN_CPU_WORKSPACE_MB")
        ops.set_workspace_limit(compiled_loops.workspace_limit_bytes())
    pooled = compiled_loops.workspace_empty((1024, 1024), torch.float32)
    assert ops.set_workspace_limit(compiled_loops.workspace_limit_bytes()) >= pooled.nbytes


def test_workspace_limit_is_validated(monkeypatch):
    monkeypatch.setenv("TRIT_RNN_CPU_WORKSPACE_MB", "lots")
    with pytest.raises(ValueError, match="TRIT_RNN_CPU_WORKSPACE_MB must be a whole number of MB"):
        compiled_loops.workspace_limit_bytes()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_weights_that_require_grad_run_in_the_worker_threads(cell, threads):
    """The loops' GEMMs run in OpenMP worker threads, which must dispatch as the caller does: the
    recurrent weight of a module requires grad (the autograd Function passes it as it is)."""
    g = torch.Generator().manual_seed(7)
    blocks = 4 if cell == "lstm" else 3
    pre = torch.randn(T, B, blocks * H, generator=g)
    weight = (torch.randn(blocks * H, H, generator=g) * 0.3).requires_grad_()
    grad_out = torch.randn(T, B, H, generator=g)
    with torch.no_grad():
        if cell == "lstm":
            outputs, _, _, gates, cells = torch_gated.lstm_forward(pre, weight, None, None)
            d_gates = torch_gated.lstm_backward(
                grad_out, None, None, outputs, gates, cells, None, None, weight
            )[0]
        else:
            outputs, _, gates, hidden_n = torch_gated.gru_forward(pre, weight, None, None)
            d_gates = torch_gated.gru_backward(grad_out, None, outputs, gates, hidden_n, None, weight)[0]
    assert torch.isfinite(d_gates).all() and d_gates.abs().sum() > 0


def test_loops_take_an_empty_sequence():
    """T = 0 through a loop op directly (its step views have no first step): nothing to walk,
    so d_gates is empty, dc0 is dc_last and the bias gradient is zero."""
    loops = compiled_loops.loops()
    assert loops is not None, "the compiled CPU loops did not build here"
    dc_last = torch.randn(B, H)
    d_gates, dc0, d_bias = loops.lstm_backward(
        torch.zeros(0, B, H), torch.zeros(B, H), dc_last, torch.zeros(0, B, 4 * H),
        torch.zeros(0, B, H), torch.zeros(B, H), torch.randn(4 * H, H), True,
    )  # fmt: skip
    assert d_gates.shape == (0, B, 4 * H)
    assert torch.equal(dc0, dc_last)
    assert torch.equal(d_bias, torch.zeros(4 * H))


def test_contiguous_in_workspace_copies_only_what_is_not_contiguous():
    grad = torch.ones(()).expand(300, 32, 128)  # what outputs.sum() hands the recurrence, 4.7 MiB
    copy = compiled_loops.contiguous_in_workspace(grad, torch.float32)
    assert copy.is_contiguous() and copy.shape == grad.shape and torch.equal(copy, grad)
    plain = torch.randn(300, 32, 128)
    assert compiled_loops.contiguous_in_workspace(plain, torch.float32) is plain
    converted = compiled_loops.contiguous_in_workspace(plain, torch.float64)
    assert converted.dtype == torch.float64 and torch.equal(converted, plain.double())


@pytest.mark.parametrize("checkpoint_every", [None, 64], ids=["plain", "checkpointed"])
@pytest.mark.parametrize("gemm", ["addmm", "packed"])
def test_training_step_takes_its_big_buffers_from_the_pool(monkeypatch, gemm, checkpoint_every):
    """After a warm-up step, a training step of a long-ish sequence allocates no tensor of 1 MiB or
    more outside the reused buffers: the input projection, the contiguous copy of the upstream
    gradient and the loops' buffers all come from the pool. Each fresh [T, B, H] buffer pays its
    page faults (at T = 10,000 they made the plain step 2.4x slower per step than at T = 3,000)."""
    from torch.profiler import ProfilerActivity, profile

    from trit_rnn import OrthogonalRNN

    monkeypatch.setenv("TRIT_RNN_CPU_GEMM", gemm)
    torch.manual_seed(0)
    model = OrthogonalRNN(2, 128, backend="torch", checkpoint_every=checkpoint_every)
    x = torch.randn(256, 32, 2)  # [T, B, H] buffers of 4 MiB

    def step():
        model.zero_grad(set_to_none=True)
        outputs, _ = model(x)
        outputs.sum().backward()

    step()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    fresh = [
        (event.name, event.cpu_memory_usage) for event in prof.events() if event.cpu_memory_usage >= 1 << 20
    ]
    assert not fresh, f"{gemm}: buffers of 1 MiB or more allocated outside the pool: {fresh}"
