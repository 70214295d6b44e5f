"""The GPU time model (an estimate from static resources, never a measurement), on hand-written
AOT records."""

import pytest
from trit_rnn.perf import gpu_model

US = 1e-6


def _record(**overrides):
    record = {
        "kernel": "dense_fwd",
        "target": "sm_90",
        "dtype": "float32",
        "hidden_size": 128,
        "block_b": 16,
        "num_warps": 8,
        "num_stages": 1,
        "registers": 165,
        "shared_bytes": 73728,
        "tensor_core_ops": 0,
        "fits": True,
        "meta": {"BLOCK_H": 128},
    }
    record.update(overrides)
    return record


def _fp32_math(block_b, block_h):
    return 2 * block_b * block_h**2 / (gpu_model.FP32_FLOPS / gpu_model.SMS)


def test_fp32_h128_one_program_is_chain_plus_fma_math():
    expected = gpu_model.T_CHAIN + _fp32_math(16, 128)
    assert gpu_model.step_seconds(_record(), batch=16) == pytest.approx(expected)
    assert expected == pytest.approx(1.533 * US, rel=1e-3)
    # B=32 at BLOCK_B=16: two programs on two SMs, the same time per step.
    assert gpu_model.step_seconds(_record(), batch=32) == pytest.approx(expected)
    # B=32 at BLOCK_B=32: one program doing twice the math.
    wide = _record(block_b=32, shared_bytes=73728 + 8192)
    assert gpu_model.step_seconds(wide, batch=32) == pytest.approx(gpu_model.T_CHAIN + _fp32_math(32, 128))


def test_bf16_h256_tensor_cores_are_bound_by_shared_memory_rereads():
    record = _record(dtype="bfloat16", hidden_size=256, shared_bytes=147456, tensor_core_ops=64,
                     registers=184, meta={"BLOCK_H": 256})  # fmt: skip
    t_smem = 147456 / (200 * 1024 / (0.9 * US))
    t_math = 2 * 16 * 256**2 / (990e12 / 132)
    assert t_math < t_smem
    assert gpu_model.step_seconds(record, batch=16) == pytest.approx(gpu_model.T_CHAIN + t_smem)


def test_programs_share_an_sm_then_run_in_waves():
    # 72 KiB of shared memory: three programs per SM (228 KiB); 64 registers x 256 threads allow four.
    record = _record(registers=64)
    assert gpu_model.programs_per_sm(record) == 3
    assert gpu_model.programs_per_sm(_record()) == 1  # 165 x 256 registers: one program per SM
    one_program = _fp32_math(16, 128)
    # 264 programs: two per SM, one wave; each SM does two programs' math per step.
    assert gpu_model.step_seconds(record, batch=16 * 264) == pytest.approx(
        gpu_model.T_CHAIN + 2 * one_program
    )
    # 397 programs: a full wave of 396 (three per SM), then one program alone.
    full, rest = gpu_model.T_CHAIN + 3 * one_program, gpu_model.T_CHAIN + one_program
    assert gpu_model.step_seconds(record, batch=16 * 397) == pytest.approx(full + rest)


def test_registers_limit_programs_per_sm():
    assert gpu_model.programs_per_sm(_record(registers=255, shared_bytes=1024)) == 1
    assert gpu_model.programs_per_sm(_record(registers=64, shared_bytes=1024, num_warps=4)) == 8


def test_fewer_than_four_warps_leave_sub_partitions_idle():
    two = gpu_model.step_seconds(_record(num_warps=2), batch=16)
    assert two == pytest.approx(gpu_model.T_CHAIN + 2 * _fp32_math(16, 128))


def test_hbm_bound_when_rows_are_many_and_math_is_tiny():
    """A hypothetical tiny kernel over a huge batch: the per-step HBM traffic dominates."""
    record = _record(hidden_size=16, meta={"BLOCK_H": 16}, shared_bytes=2048, registers=16, num_warps=2)
    assert gpu_model.programs_per_sm(record) == 32
    batch = 16 * 132 * 32  # one wave, 32 programs per SM
    bytes_per_step = batch * 16 * 2 * 4  # read pre_t, write out_t, fp32
    t_hbm = bytes_per_step / gpu_model.HBM_BYTES_PER_SECOND
    assert t_hbm > 32 * 2 * _fp32_math(16, 16)
    assert gpu_model.step_seconds(record, batch) == pytest.approx(gpu_model.T_CHAIN + t_hbm)


@pytest.mark.parametrize(
    "overrides",
    [{"fits": False}, {"target": "sm_80"}, {"dtype": "float64"}, {"error": "CompilationError"}],
)
def test_records_the_model_does_not_cover_get_no_estimate(overrides):
    assert gpu_model.step_seconds(_record(**overrides), batch=16) is None
    assert gpu_model.format_us(gpu_model.step_microseconds(_record(**overrides), 16)) == "-"


def test_labels_say_model():
    assert "model" in gpu_model.column_header(16) and "@B=16" in gpu_model.column_header(16)
    assert "model" in gpu_model.LABEL and "not measured" in gpu_model.LABEL
    assert gpu_model.format_us(1.5333) == "1.53"


@pytest.mark.parametrize("kernel, gates", [("lstm_fwd", 4), ("gru_bwd", 3), ("deep_fwd", 3)])
def test_kernels_with_several_matrices_do_that_many_dots(kernel, gates):
    """meta "gates" (G matrices per step: gated cells, a deep transition's chain and shortcut)
    multiplies the math; the chain and the rest of the step stay."""
    single = gpu_model.step_seconds(_record(kernel=kernel), batch=16)
    several = gpu_model.step_seconds(_record(kernel=kernel, meta={"BLOCK_H": 128, "gates": gates}), batch=16)
    assert several - single == pytest.approx((gates - 1) * _fp32_math(16, 128), rel=1e-6)
