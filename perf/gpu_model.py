"""A GPU time MODEL (an estimate, never a measurement) of the seconds per time step of a persistent
dense-family kernel on an H100 SXM, from the static resources the AOT build reports for sm_90
(kernels/aot.py records: registers, shared_bytes, tensor_core_ops, num_warps, BLOCK_B).

Every output of this module is labelled "model": no GPU was run to produce it.

The formula (the per-step floor of shared/reference/gpu.md (the project reference notes), with one program per batch block):

    P        = ceil(B / BLOCK_B)                                programs in the launch
    per_sm   = min(SMEM_PER_SM // shared_bytes,                 programs one SM holds at once
                   REGISTERS_PER_SM // (registers * 32 * num_warps),
                   MAX_WARPS_PER_SM // num_warps)
    waves    = ceil(P / (SMS * per_sm))                         each wave runs all T steps
    c_w      = ceil(P_w / SMS)                                  programs sharing one SM in wave w
    t_math   = 2 * G * BLOCK_B * BLOCK_H^2 / (peak_per_sm * min(num_warps, 4) / 4)
               G: recurrent matrices per step (1; meta "gates" of a gated or deep-transition kernel)
               peak_per_sm: tensor-core peak (bf16/fp16, or tf32 for fp32) / SMS when the PTX has
               tensor-core instructions (tensor_core_ops > 0), else the fp32 FMA peak / SMS
    t_smem   = shared_bytes / SMEM_BYTES_PER_SECOND             the staged W (and state tile) re-read
                                                                from shared memory every step
    t_hbm_w  = rows_w * HBM bytes per row per step / HBM_BYTES_PER_SECOND
    t_step   = sum over waves of [T_CHAIN + max(c_w * t_math, c_w * t_smem, t_hbm_w)]

Constants and their sources:
    SMS = 132, REGISTERS_PER_SM = 65536 (256 KB of 32-bit registers), SMEM_PER_SM = 228 KB,
    HBM 3.35 TB/s, fp32 67 TFLOP/s, tf32 495 / bf16 and fp16 990 TFLOP/s dense tensor:
        shared/reference/gpu.md (the project reference notes), "H100 budget per SM and what fits".
    T_CHAIN = 0.5 us (serial dependency inside one program, well pipelined) and the shared-memory
    re-read cost of ~0.9 us per 200 KB per SM: gpu.md, "Per-step floor (estimates)".
    t_sync = 0: one program holds the whole matrix (gpu.md, same section).
    MAX_WARPS_PER_SM = 64 and 4 sub-partitions per SM (a program with fewer than 4 warps leaves
    sub-partitions idle): NVIDIA CUDA C++ Programming Guide, compute capability 9.0, and the H100
    architecture whitepaper.

What it leaves out (so it is a floor, optimistic): peaks are peaks (mma.sync without wgmma, the
FMA loop and the pointwise step reach less), bank conflicts, the W load before the time loop
(amortised over T), launch overhead. Only sm_90 records are modelled (the constants are H100's);
float64, records that do not fit, and records with compile errors get no estimate (None).
"""

from __future__ import annotations

import math

SMS = 132
REGISTERS_PER_SM = 65536
SMEM_PER_SM = 228 * 1024
MAX_WARPS_PER_SM = 64
SUB_PARTITIONS = 4
HBM_BYTES_PER_SECOND = 3.35e12
FP32_FLOPS = 67e12
TENSOR_FLOPS = {"float32": 495e12, "bfloat16": 990e12, "float16": 990e12}
T_CHAIN = 0.5e-6
SMEM_BYTES_PER_SECOND = 200 * 1024 / 0.9e-6
MODEL_TARGET = "sm_90"
LABEL = "H100 model, not measured"

_STORAGE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
_STATE_BYTES = 4  # fp32 state for every modelled storage dtype
# HBM traffic per batch row per step, in units of H elements: (storage reads + writes, state
# reads + writes).
_TRAFFIC = {
    "dense_fwd": (2, 0),  # read pre_t, write out_t
    "dense_bwd": (2, 1),  # read grad_out_t and out_t, write dz_t (state dtype)
    "lstm_fwd": (5, 5),  # read pre_t (4H), write out_t; write gates_t (4H) and c_t
    "lstm_bwd": (1, 9),  # read grad_out_t; read gates_t (4H), c_{t-1}, write d_gates_t (4H)
    "gru_fwd": (4, 4),  # read pre_t (3H), write out_t; write gates_t (3H) and q_n
    "gru_bwd": (2, 10),  # read grad_out_t, h_{t-1}; read gates_t (3H), q_n, write d_pre_t, d_q_t (3H each)
    # depth 2 with the shortcut: pre_t is 2H, one intermediate layer state per step
    "deep_fwd": (3, 1),  # read pre_t (2H), write out_t; write s^1_t
    "deep_bwd": (4, 3),  # read grad_out_t, out_t, write d_pre_t (2H); read s^1_t, write d a^1_t, d a^2_t
}


def column_header(batch: int) -> str:
    return f"model us/step @B={batch}"


def _block_h(record: dict) -> int:
    meta = record.get("meta") or {}
    if "BLOCK_H" in meta:
        return int(meta["BLOCK_H"])
    return 1 << max(0, max(int(record["hidden_size"]), 16) - 1).bit_length()


def programs_per_sm(record: dict) -> int:
    """How many programs of this compiled kernel one SM holds at once (at least 1 if it fits)."""
    warps = int(record["num_warps"])
    limits = [
        SMEM_PER_SM // max(1, int(record["shared_bytes"])),
        REGISTERS_PER_SM // max(1, int(record["registers"]) * 32 * warps),
        MAX_WARPS_PER_SM // warps,
    ]
    return max(1, min(limits))


def step_seconds(record: dict, batch: int) -> float | None:
    """Modelled seconds per time step of one compiled kernel (an AOT record) at batch size `batch`;
    None when the record is not modelled (not sm_90, does not fit, float64, compile error)."""
    if record.get("error") or not record.get("fits") or record.get("target") != MODEL_TARGET:
        return None
    dtype = record["dtype"]
    if dtype not in _STORAGE_BYTES:
        return None
    block_b = int(record["block_b"])
    block_h = _block_h(record)
    warps = int(record["num_warps"])

    tensor = int(record.get("tensor_core_ops") or 0) > 0
    peak = (TENSOR_FLOPS[dtype] if tensor else FP32_FLOPS) / SMS
    # A gated kernel (meta "gates": G recurrent matrices) does G dots per step.
    matrices = int((record.get("meta") or {}).get("gates", 1))
    t_math = 2 * matrices * block_b * block_h**2 / (peak * min(warps, SUB_PARTITIONS) / SUB_PARTITIONS)
    t_smem = int(record["shared_bytes"]) / SMEM_BYTES_PER_SECOND
    # a variable-length variant ("+lengths") moves the same rows as its plain kernel
    storage_io, state_io = _TRAFFIC.get(str(record["kernel"]).removesuffix("+lengths"), (2, 0))
    row_bytes = int(record["hidden_size"]) * (storage_io * _STORAGE_BYTES[dtype] + state_io * _STATE_BYTES)

    programs = math.ceil(batch / block_b)
    slots = SMS * programs_per_sm(record)
    total = 0.0
    for wave in range(math.ceil(programs / slots)):
        in_wave = min(slots, programs - wave * slots)
        sharing = math.ceil(in_wave / SMS)
        rows = min(batch - wave * slots * block_b, in_wave * block_b)
        t_hbm = rows * row_bytes / HBM_BYTES_PER_SECOND
        total += T_CHAIN + max(sharing * t_math, sharing * t_smem, t_hbm)
    return total


def step_microseconds(record: dict, batch: int) -> float | None:
    seconds = step_seconds(record, batch)
    return None if seconds is None else seconds * 1e6


def format_us(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
