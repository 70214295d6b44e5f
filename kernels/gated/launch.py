"""Launchers of the gated kernel family (LSTM, GRU): allocate outputs, pick a config, compute the grid,
pass the strides. No maths here (see cells.py, forward.py, backward.py).

The four entry points implement the contract stated at the top of trit_rnn/backends/torch_gated.py
with the same signatures and results (plus keyword-only variable lengths and launch config):

    lstm_forward(pre, weight_hh, h0, c0, bias=None) -> (outputs, h_n, c_n, gates, cells)
    lstm_backward(grad_out, grad_hn, grad_cn, outputs, gates, cells, h0, c0, weight_hh, bias_grad=False)
        -> (d_gates, dh0, dc0, d_bias)
    gru_forward(pre, weight_hh, bias_hh, h0) -> (outputs, h_n, gates, hidden_n)
    gru_backward(grad_out, grad_hn, outputs, gates, hidden_n, h0, weight_hh) -> (d_pre, d_hidden, dh0)

Every [T, B, G*H] tensor is passed as its [T, B, G, H] view and weight_hh [G*H, H] as [G, H, H]
(views, no copies): the kernels step from one gate block to the next by a stride. Tiling, K-chunking
and W staging follow the dense family (kernels/dense/launch.py), applied to each of the G blocks.

lengths (keyword-only, every entry point): None, or an integer tensor [B] (int32 or int64) on the
data's device, each value in [1, T] (validated upstream; the kernels treat a value <= 0 as a row that
is never active and one >= T as a full row). Row b is active at step t iff t < lengths[b]; an
inactive row keeps its states, and its outputs and saved activations (gates, cells / hidden_n) are
exactly 0, so h_n, c_n are its states after its last active step. The backward ignores grad_out at
inactive steps, applies grad_hn / grad_cn at the row's last active step (carried unchanged through
the inactive tail) and writes exactly 0 in every per-step gradient (d_gates, d_pre, d_hidden) there.
lengths=None launches the kernels without the masking (HAS_LENGTHS=False).
"""

from __future__ import annotations

import torch
import triton
from triton.runtime.interpreter import InterpretedFunction

from .. import autotune
from ..activations import NONLINEARITIES
from ..dense.launch import (
    DOT_PRECISION,
    _block_h,
    _check_config,
    _shared_memory_limit,
    _state_dtype,
    autotune_key,
    candidate_configs,
)
from ..lengths import check_lengths, lengths_arg
from ..specs import CompileSpec, Config
from .backward import gated_bwd_kernel
from .cells import CELLS, GATES
from .forward import gated_fwd_kernel

__all__ = [
    "CELLS",
    "GATES",
    "KERNELS",
    "NONLINEARITIES",
    "SUPPORTED_DTYPES",
    "autotune_key",
    "benchmark_runs",
    "budget",
    "candidate_configs",
    "compile_specs",
    "device_shared_limit",
    "estimate_budget",
    "estimate_shared_bytes",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "supports",
]

# kernel name (autotune cache, AOT records) -> @triton.jit kernel; one template per direction, the
# cell is its CELL constexpr.
KERNELS = {
    "lstm_fwd": gated_fwd_kernel,
    "lstm_bwd": gated_bwd_kernel,
    "gru_fwd": gated_fwd_kernel,
    "gru_bwd": gated_bwd_kernel,
}
SUPPORTED_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
# Coarse register guard: 32-bit words per thread of the G gate accumulators of one
# [BLOCK_B, BLOCK_H] tile. Measured on sm_90 (triton 3.8 ptxas): every config above 32 spills in one
# of its kernels (bf16 H=128 BLOCK_B=32 w8 and BLOCK_B=16 w4; fp32 H=128 GRU BLOCK_B=32 w8); at or
# below 32 most do not (fp32 H=64 BLOCK_B=32 w8 / BLOCK_B=16 w4: the LSTM backward spills; fp32 H=128
# GRU BLOCK_B=16 w8: the forward spills 24 B). The AOT build (ptxas) stays the ground truth, and
# autotune drops spilling configs on a GPU.
MAX_GATE_WORDS_PER_THREAD = 32
# K extent of one chunk of an fp32 "ieee" (FMA) dot, per direction. Measured on sm_90 (triton 3.8
# ptxas, BLOCK_B=16, 8 warps, registers at chunks of 32 / 16): the forward's G dots share their left
# operand (gate_dots), LSTM H=64 255 / 171; the backward's have G different ones, GRU H=64 178 / 229
# (LSTM 176 / 178). No spills in any of these.
FMA_K_CHUNK = {"fwd": 16, "bwd": 32}
_TRITON_TYPES = {
    torch.float64: "fp64",
    torch.float32: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
}


def _nonlinearity_code(nonlinearity) -> int:
    """The ACTIVATION code of the GRU candidate's nonlinearity (a name, or a str enum such as
    trit_rnn.nonlinearity.Nonlinearity)."""
    name = str(getattr(nonlinearity, "value", nonlinearity))
    if name not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}")
    return NONLINEARITIES[name]


def _interpreted() -> bool:
    # The kernels read TRITON_INTERPRET when they were decorated; ask them, not the environment.
    return isinstance(gated_fwd_kernel, InterpretedFunction)


def _cell_of(kernel: str | None) -> str | None:
    """ "lstm" for "lstm"/"lstm_fwd"/"lstm_bwd", likewise "gru"; None for None."""
    if kernel is None:
        return None
    cell = kernel.split("_")[0]
    if cell not in CELLS or (kernel != cell and kernel not in KERNELS):
        raise ValueError(
            f"unknown gated cell or kernel {kernel!r}; cells {sorted(CELLS)}, kernels {sorted(KERNELS)}"
        )
    return cell


def _shared_parts(
    hidden_size: int, dtype: torch.dtype, config: Config, kernel: str | None
) -> tuple[int, int]:
    """(W bytes, state tile bytes) a kernel stages in shared memory: the G blocks of W, and the
    state tile that feeds the step's dots. kernel None: the smallest of the family (the GRU's)."""
    cell = _cell_of(kernel)
    gates = GATES[cell] if cell is not None else min(GATES.values())
    block_h = _block_h(hidden_size)
    storage = torch.empty((), dtype=dtype).element_size()
    state = torch.empty((), dtype=_state_dtype(dtype)).element_size()
    return gates * block_h * block_h * storage, config.block_b * block_h * state


def estimate_shared_bytes(
    hidden_size: int, dtype: torch.dtype, config: Config, kernel: str | None = None
) -> int:
    """Shared memory of one program of a gated kernel ("lstm_fwd", ..., or a cell name; None: the
    least any gated kernel needs): the G blocks of W plus a state tile."""
    return sum(_shared_parts(hidden_size, dtype, config, kernel))


def estimate_budget(
    hidden_size: int, dtype: torch.dtype, config: Config, shared_limit: int | None, kernel: str | None = None
):
    """(fits, reason) for one config of a gated kernel (see estimate_shared_bytes for `kernel`):
    shared memory against shared_limit (None: no limit, e.g. the interpreter), and the 32-bit words
    of the G gate accumulators per thread."""
    cell = _cell_of(kernel)
    gates = GATES[cell] if cell is not None else min(GATES.values())
    w_bytes, tile_bytes = _shared_parts(hidden_size, dtype, config, kernel)
    shared = w_bytes + tile_bytes
    per_thread = gates * tile_bytes // 4 // (32 * config.num_warps)
    if shared_limit is not None and shared > shared_limit:
        return False, (
            f"shared memory ~{shared // 1024} KiB ({gates} W blocks {w_bytes // 1024} KiB + tile "
            f"{tile_bytes // 1024} KiB) > {shared_limit // 1024} KiB"
        )
    if shared_limit is not None and per_thread > MAX_GATE_WORDS_PER_THREAD:
        return False, (
            f"{per_thread} 32-bit gate words per thread > {MAX_GATE_WORDS_PER_THREAD} (register spills)"
        )
    return True, f"shared memory ~{shared // 1024} KiB, {per_thread} gate words per thread"


def supports(hidden_size: int, dtype: torch.dtype, device, cell: str) -> tuple[bool, str]:
    """Whether the gated kernels of `cell` ("lstm" or "gru") can run H=hidden_size in dtype on device,
    and why not."""
    if cell not in CELLS:
        return False, f"cell {cell!r} is not a gated cell ({', '.join(sorted(CELLS))})"
    if dtype not in SUPPORTED_DTYPES:
        return False, f"dtype {dtype} is not supported (float64/float32/bfloat16/float16)"
    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        return False, f"device type {device.type!r} is not supported"
    if _interpreted():
        return True, "Triton interpreter (TRITON_INTERPRET=1): every hidden size runs"
    if device.type == "cpu":
        return False, "CPU tensors need the Triton interpreter (TRITON_INTERPRET=1); use the torch backend"
    limit = _shared_memory_limit(device)
    reasons = []
    for config in candidate_configs():
        checks = [estimate_budget(hidden_size, dtype, config, limit, f"{cell}_{d}") for d in ("fwd", "bwd")]
        failed = [reason for fits, reason in checks if not fits]
        if not failed:
            return True, f"{config.label()}: {checks[1][1]}"
        reasons.append(failed[0])
    name = torch.cuda.get_device_name(device)
    return False, f"{cell} H={hidden_size} {dtype}: no config fits on {name}: {reasons[0]}"


def device_shared_limit(device) -> int | None:
    """The shared-memory limit the budget is checked against on device (None: the interpreter)."""
    return autotune.device_shared_limit(device, _interpreted())


def budget(hidden_size: int, dtype: torch.dtype, shared_limit: int | None, kernel: str | None = None):
    """estimate_budget as the autotune helper's budget function: config -> (fits, reason)."""
    return lambda config: estimate_budget(hidden_size, dtype, config, shared_limit, kernel)


def _choose_config(kernel_name, tensor, hidden_size, batch, run, ragged: bool = False) -> Config:
    # A ragged launch compiles the HAS_LENGTHS variant, whose registers differ: its own cache entry.
    return autotune.choose_for_launch(
        autotune.variant_name(kernel_name, ragged),
        KERNELS[kernel_name],
        autotune_key(hidden_size, batch, tensor.dtype),
        candidate_configs(),
        lambda limit: budget(hidden_size, tensor.dtype, limit, kernel_name),
        tensor,
        batch,
        run,
        _interpreted(),
    )


def _launch(
    kernel_name: str, run, tensor, hidden_size: int, batch: int, config: Config | None, ragged: bool
) -> None:
    if run is None:
        return
    if config is None:
        config = _choose_config(kernel_name, tensor, hidden_size, batch, run, ragged)
    _check_config(config)
    run(config)


def _split_k_levels(block_h: int, dtype: torch.dtype, direction: str) -> int:
    """K-chunking of the step's dots (2**levels chunks of FMA_K_CHUNK[direction]) for fp32 FMA dots;
    tensor-core dots (16-bit, fp64) are left whole."""
    chunk = FMA_K_CHUNK[direction]
    if dtype != torch.float32 or block_h <= chunk:
        return 0
    return (block_h // chunk).bit_length() - 1


def _w_halves(block_h: int, dtype: torch.dtype) -> bool:
    """Whether the kernels stage each W block in two K halves (see load_operator): for tensor-core
    dots (16-bit, fp64) from BLOCK_H = 128. Measured on sm_90 (triton 3.8 ptxas, bf16, BLOCK_B=16,
    8 warps): at H=128 whole blocks spill (LSTM forward 260 B, backward 460 B) and halves do not
    (255 registers each); at H=64 halves spill in both backwards (~160 B) and whole blocks do not
    (LSTM 172 / 182, GRU backward 242 registers). Never for fp32 "ieee" FMA dots, which chunk K."""
    return dtype != torch.float32 and block_h >= 128


def _tile_constexprs(hidden_size: int, dtype: torch.dtype, config: Config, direction: str) -> dict:
    block_h = _block_h(hidden_size)
    return {
        "DOT_PRECISION": DOT_PRECISION,
        "SPLIT_K_LEVELS": _split_k_levels(block_h, dtype, direction),
        "W_HALVES": _w_halves(block_h, dtype),
        "BLOCK_B": config.block_b,
        "BLOCK_H": block_h,
    }


# --------------------------------------------------------------------------------------------
# argument checks


def _check_sequence(x, name: str, shape: tuple, dtype=None) -> None:
    if x.dim() != len(shape) or tuple(x.shape) != shape:
        raise ValueError(f"{name} must be {list(shape)}, got {tuple(x.shape)}")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(f"{name} must be {dtype}, got {x.dtype}")


def _check_pre(cell: str, pre) -> tuple[int, int, int]:
    gates = GATES[cell]
    if pre.dim() != 3 or pre.shape[-1] % gates:
        raise ValueError(f"pre must be [T, B, {gates}*H] ({cell}), got shape {tuple(pre.shape)}")
    if pre.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype {pre.dtype} is not supported")
    T, B, width = pre.shape
    return T, B, width // gates


def _check_weight(cell: str, weight_hh, H: int, reference) -> None:
    G = GATES[cell]
    if (
        weight_hh.shape != (G * H, H)
        or weight_hh.dtype != reference.dtype
        or weight_hh.device != reference.device
    ):
        raise ValueError(
            f"weight_hh must be [{G * H}, {H}] {reference.dtype} on {reference.device}, got "
            f"{tuple(weight_hh.shape)} {weight_hh.dtype} on {weight_hh.device}"
        )


def _check_state(x, name: str, B: int, H: int) -> None:
    if x is not None and x.shape != (B, H):
        raise ValueError(f"{name} must be [{B}, {H}], got {tuple(x.shape)}")


def _by_gate(x: torch.Tensor, gates: int) -> torch.Tensor:
    """[..., G*H] -> its [..., G, H] view (any strides; no copy)."""
    return x.unflatten(-1, (gates, x.shape[-1] // gates))


def _state_or_dummy(x, dtype, dummy):
    """(tensor, (stride_b, stride_h)) of an optional [B, H] state read in `dtype`; a dummy and zero
    strides when it is None."""
    if x is None:
        return dummy, (0, 0)
    x = x.to(dtype)
    return x, x.stride()


# --------------------------------------------------------------------------------------------
# forward


def _forward_launch(
    cell: str, pre, weight_hh, bias_hh, h0, c0, act_bias=None, nonlinearity="tanh", lengths=None
):
    """(run, outputs, h_n, c_n, gates, aux): run(config) launches the forward kernel of `cell` and
    returns what the launch returns; run is None when there is nothing to compute (h_n and c_n are
    then set). c_n is None for the GRU, aux is cells (LSTM) or hidden_n (GRU). nonlinearity and
    act_bias: the GRU candidate's (the LSTM's is tanh); lengths: see the module docstring."""
    code = _nonlinearity_code(nonlinearity)
    T, B, H = _check_pre(cell, pre)
    G = GATES[cell]
    _check_weight(cell, weight_hh, H, pre)
    _check_state(h0, "h0", B, H)
    _check_state(c0, "c0", B, H)
    if bias_hh is not None and bias_hh.shape != (G * H,):
        raise ValueError(f"bias_hh must be [{G * H}], got {tuple(bias_hh.shape)}")
    if code == NONLINEARITIES["modrelu"] and (act_bias is None or act_bias.shape != (H,)):
        raise ValueError(f"modrelu needs act_bias of shape [{H}]")
    check_lengths(lengths, B, pre.device)

    state_dtype = _state_dtype(pre.dtype)
    device = pre.device
    outputs = torch.empty((T, B, H), dtype=pre.dtype, device=device)
    h_n = torch.empty((B, H), dtype=pre.dtype, device=device)
    c_n = torch.empty((B, H), dtype=pre.dtype, device=device) if cell == "lstm" else None
    gates = torch.empty((T, B, G * H), dtype=state_dtype, device=device)
    aux = torch.empty((T, B, H), dtype=state_dtype, device=device)
    if T == 0 or B == 0 or H == 0:
        h_n.copy_(h0 if h0 is not None else torch.zeros_like(h_n))
        if c_n is not None:
            c_n.copy_(c0 if c0 is not None else torch.zeros_like(c_n))
        return None, outputs, h_n, c_n, gates, aux

    # Initial states and the bias are read in the state dtype (lossless for every storage dtype).
    dummy = torch.empty(1, dtype=state_dtype, device=device)
    h0_arg, h0_strides = _state_or_dummy(h0, state_dtype, dummy)
    c0_arg, c0_strides = _state_or_dummy(c0, state_dtype, dummy)
    bias_arg = _by_gate(bias_hh.to(state_dtype), G) if bias_hh is not None else dummy
    bias_strides = bias_arg.stride() if bias_hh is not None else (0, 0)
    modrelu = code == NONLINEARITIES["modrelu"]
    act_bias_arg = act_bias.to(state_dtype) if modrelu else dummy
    act_bias_stride = act_bias_arg.stride(0) if modrelu else 0
    cn_arg, cn_strides = (c_n, c_n.stride()) if c_n is not None else (h_n, (0, 0))
    pre_g, w_g, gates_g = _by_gate(pre, G), weight_hh.unflatten(0, (G, H)), _by_gate(gates, G)
    lengths_ptr = lengths_arg(lengths, device)

    def run(cfg: Config):
        return gated_fwd_kernel[(triton.cdiv(B, cfg.block_b),)](
            pre_g, w_g, bias_arg, act_bias_arg, h0_arg, c0_arg, outputs, h_n, cn_arg, gates_g, aux,
            lengths_ptr,
            T, B, H,
            *pre_g.stride(),
            *w_g.stride(),
            *bias_strides,
            act_bias_stride,
            *h0_strides,
            *c0_strides,
            *outputs.stride(),
            *h_n.stride(),
            *cn_strides,
            *gates_g.stride(),
            *aux.stride(),
            CELL=CELLS[cell],
            ACTIVATION=code,
            HAS_BIAS=bias_hh is not None,
            HAS_H0=h0 is not None,
            HAS_C0=c0 is not None,
            HAS_LENGTHS=lengths is not None,
            STATE_FP64=state_dtype == torch.float64,
            **_tile_constexprs(H, pre.dtype, cfg, "fwd"),
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
        )  # fmt: skip

    return run, outputs, h_n, c_n, gates, aux


def lstm_forward(
    pre, weight_hh, h0, c0, bias=None, *, lengths: torch.Tensor | None = None, config: Config | None = None
):
    """The LSTM forward of the contract (trit_rnn/backends/torch_gated.py): (outputs [T, B, H],
    h_n, c_n [B, H]) in pre's dtype, (gates [T, B, 4H], cells [T, B, H]) in the state dtype.
    bias [4H] is added to pre before the launch (one elementwise pass on the GPU; the kernel
    reads pre once either way). lengths: variable lengths (module docstring)."""
    if bias is not None:
        if bias.shape != (pre.shape[-1],):
            raise ValueError(f"bias must be [{pre.shape[-1]}], got {tuple(bias.shape)}")
        pre = (pre.to(_state_dtype(pre.dtype)) + bias.to(_state_dtype(pre.dtype))).to(pre.dtype)
    run, outputs, h_n, c_n, gates, cells = _forward_launch(
        "lstm", pre, weight_hh, None, h0, c0, lengths=lengths
    )
    _launch("lstm_fwd", run, pre, outputs.shape[2], outputs.shape[1], config, lengths is not None)
    return outputs, h_n, c_n, gates, cells


def gru_forward(
    pre,
    weight_hh,
    bias_hh,
    h0,
    act_bias=None,
    nonlinearity="tanh",
    *,
    lengths: torch.Tensor | None = None,
    config: Config | None = None,
):
    """The GRU (and GORU: nonlinearity "modrelu" with act_bias [H]) forward of the contract
    (trit_rnn/backends/torch_gated.py): (outputs [T, B, H], h_n [B, H]) in pre's dtype,
    (gates [T, B, 3H], hidden_n [T, B, H]) in the state dtype. lengths: variable lengths (module
    docstring)."""
    run, outputs, h_n, _, gates, hidden_n = _forward_launch(
        "gru", pre, weight_hh, bias_hh, h0, None, act_bias, nonlinearity, lengths
    )
    _launch("gru_fwd", run, pre, outputs.shape[2], outputs.shape[1], config, lengths is not None)
    return outputs, h_n, gates, hidden_n


# --------------------------------------------------------------------------------------------
# backward


def _backward_launch(
    cell: str,
    grad_out,
    grad_hn,
    grad_cn,
    outputs,
    gates,
    aux,
    h0,
    c0,
    weight_hh,
    nonlinearity="tanh",
    lengths=None,
):
    """(run, d_gates, d_pre, dh0, dc0) as _forward_launch, for the backward kernel of `cell`. d_gates
    is the LSTM's d_gates or the GRU's d_hidden; d_pre (GRU) and dc0 (LSTM) are None otherwise."""
    code = _nonlinearity_code(nonlinearity)
    if outputs.dim() != 3:
        raise ValueError(f"outputs must be [T, B, H], got shape {tuple(outputs.shape)}")
    T, B, H = outputs.shape
    G = GATES[cell]
    if outputs.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype {outputs.dtype} is not supported")
    state_dtype = _state_dtype(outputs.dtype)
    _check_sequence(grad_out, "grad_out", (T, B, H))
    _check_state(grad_hn, "grad_hn", B, H)
    _check_state(grad_cn, "grad_cn", B, H)
    _check_state(h0, "h0", B, H)
    _check_state(c0, "c0", B, H)
    _check_sequence(gates, "gates", (T, B, G * H), state_dtype)
    _check_sequence(aux, "cells" if cell == "lstm" else "hidden_n", (T, B, H), state_dtype)
    _check_weight(cell, weight_hh, H, outputs)
    check_lengths(lengths, B, outputs.device)

    device = outputs.device
    d_gates = torch.empty((T, B, G * H), dtype=state_dtype, device=device)
    d_pre = torch.empty((T, B, G * H), dtype=state_dtype, device=device) if cell == "gru" else None
    dh0 = torch.empty((B, H), dtype=state_dtype, device=device)
    dc0 = torch.empty((B, H), dtype=state_dtype, device=device) if cell == "lstm" else None
    if T == 0 or B == 0 or H == 0:
        dh0.copy_(grad_hn if grad_hn is not None else torch.zeros_like(dh0))
        if dc0 is not None:
            dc0.copy_(grad_cn if grad_cn is not None else torch.zeros_like(dc0))
        return None, d_gates, d_pre, dh0, dc0

    # The state before each step: LSTM cells c (and c0), GRU outputs h (and h0).
    seq, s0 = (aux, c0) if cell == "lstm" else (outputs, h0)
    s0_arg, s0_strides = _state_or_dummy(s0, state_dtype, dh0)
    ghn_arg, ghn_strides = (grad_hn, grad_hn.stride()) if grad_hn is not None else (dh0, (0, 0))
    gcn_arg, gcn_strides = (grad_cn, grad_cn.stride()) if grad_cn is not None else (dh0, (0, 0))
    dc0_arg = dc0 if dc0 is not None else dh0
    gates_g, w_g, dg_g = _by_gate(gates, G), weight_hh.unflatten(0, (G, H)), _by_gate(d_gates, G)
    dpre_g = _by_gate(d_pre, G) if d_pre is not None else dg_g
    lengths_ptr = lengths_arg(lengths, device)

    def run(cfg: Config):
        return gated_bwd_kernel[(triton.cdiv(B, cfg.block_b),)](
            grad_out, ghn_arg, gcn_arg, gates_g, aux, seq, s0_arg, w_g, dg_g, dpre_g, dh0, dc0_arg,
            lengths_ptr,
            T, B, H,
            *grad_out.stride(),
            *ghn_strides,
            *gcn_strides,
            *gates_g.stride(),
            *aux.stride(),
            *seq.stride(),
            *s0_strides,
            *w_g.stride(),
            *dg_g.stride(),
            *dpre_g.stride(),
            *dh0.stride(),
            *dc0_arg.stride(),
            CELL=CELLS[cell],
            ACTIVATION=code,
            HAS_GRAD_HN=grad_hn is not None,
            HAS_GRAD_CN=grad_cn is not None,
            HAS_S0=s0 is not None,
            HAS_LENGTHS=lengths is not None,
            **_tile_constexprs(H, outputs.dtype, cfg, "bwd"),
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
        )  # fmt: skip

    return run, d_gates, d_pre, dh0, dc0


def lstm_backward(
    grad_out,
    grad_hn,
    grad_cn,
    outputs,
    gates,
    cells,
    h0,
    c0,
    weight_hh,
    bias_grad=False,
    *,
    lengths: torch.Tensor | None = None,
    config: Config | None = None,
):
    """The LSTM backward of the contract (trit_rnn/backends/torch_gated.py): d_gates [T, B, 4H]
    (the gradient of pre), dh0 and dc0 [B, H], and d_bias [4H] = the sum of d_gates over steps and
    rows when bias_grad (else None), in the state dtype. h0 is not read (it enters the weight
    gradient only, which the caller computes). lengths: those of the forward (module docstring)."""
    run, d_gates, _, dh0, dc0 = _backward_launch(
        "lstm", grad_out, grad_hn, grad_cn, outputs, gates, cells, h0, c0, weight_hh, lengths=lengths
    )
    _launch("lstm_bwd", run, outputs, outputs.shape[2], outputs.shape[1], config, lengths is not None)
    return d_gates, dh0, dc0, d_gates.sum((0, 1)) if bias_grad else None


def gru_backward(
    grad_out,
    grad_hn,
    outputs,
    gates,
    hidden_n,
    h0,
    weight_hh,
    nonlinearity="tanh",
    *,
    lengths: torch.Tensor | None = None,
    config: Config | None = None,
):
    """The GRU (and GORU) backward of the contract (trit_rnn/backends/torch_gated.py): d_pre and
    d_hidden [T, B, 3H] (the gradients of pre and of q = h @ weight_hh^T + bias_hh) and dh0 [B, H],
    in the state dtype. The candidate's derivative is read from the stored n (no act_bias needed).
    lengths: those of the forward (module docstring)."""
    run, d_hidden, d_pre, dh0, _ = _backward_launch(
        "gru", grad_out, grad_hn, None, outputs, gates, hidden_n, h0, None, weight_hh, nonlinearity, lengths
    )
    _launch("gru_bwd", run, outputs, outputs.shape[2], outputs.shape[1], config, lengths is not None)
    return d_pre, d_hidden, dh0


# --------------------------------------------------------------------------------------------
# autotune and ahead-of-time compilation


def benchmark_runs(hidden_size: int, batch: int, dtype: torch.dtype, device, seq_len: int = 256) -> dict:
    """{kernel name: run(config)} on random inputs of one shape, for `trit-rnn autotune` to time
    every config: each run launches one kernel and returns what the launch returns."""
    device = torch.device(device)
    H = hidden_size
    runs = {}
    for cell, G in GATES.items():
        pre = torch.randn((seq_len, batch, G * H), device=device).to(dtype)
        weight = (torch.randn((G * H, H), device=device) / H**0.5).to(dtype)
        bias = torch.zeros(G * H, device=device, dtype=dtype) if cell == "gru" else None
        h0 = torch.zeros(batch, H, device=device, dtype=dtype)
        run_fwd, outputs, _, _, gates, aux = _forward_launch(
            cell, pre, weight, bias, h0, h0 if cell == "lstm" else None
        )
        # Valid activations for the backward before any forward runs.
        outputs.copy_(torch.tanh(pre[..., :H].float()))
        gates.copy_(torch.sigmoid(pre.float()))
        aux.copy_(pre[..., :H].float())
        grad_out = torch.randn((seq_len, batch, H), device=device).to(dtype)
        run_bwd = _backward_launch(cell, grad_out, h0, h0 if cell == "lstm" else None, outputs, gates, aux, h0, h0 if cell == "lstm" else None, weight)[0]  # fmt: skip
        runs[f"{cell}_fwd"], runs[f"{cell}_bwd"] = run_fwd, run_bwd
    return runs


def compile_specs(
    hidden_size: int,
    dtype: torch.dtype,
    config: Config,
    *,
    nonlinearity: str = "tanh",
    lengths: bool = False,
):
    """One CompileSpec per kernel ("lstm_fwd", "lstm_bwd", "gru_fwd", "gru_bwd") for
    triton.compile(ASTSource(...)); nonlinearity: the GRU candidate's (the LSTM's is tanh).

    The specs describe the common launch: every optional state, bias and upstream gradient given,
    grad_out in the storage dtype, every size and stride a 32-bit integer (the kernels widen to
    int64 themselves). lengths: the variable-length variants (HAS_LENGTHS, int32 lengths);
    meta["lengths"] says which.
    """
    storage = "*" + _TRITON_TYPES[dtype]
    state = "*" + _TRITON_TYPES[_state_dtype(dtype)]
    fwd_tile = _tile_constexprs(hidden_size, dtype, config, "fwd")
    bwd_tile = _tile_constexprs(hidden_size, dtype, config, "bwd")

    def strides(*names):
        return {f"stride_{name}": "i32" for name in names}

    fwd_signature = {
        "pre_ptr": storage, "w_ptr": storage, "bias_ptr": state, "act_bias_ptr": state,
        "h0_ptr": state, "c0_ptr": state,
        "out_ptr": storage, "hn_ptr": storage, "cn_ptr": storage, "gates_ptr": state, "aux_ptr": state,
        "lengths_ptr": "*i32",
        "T": "i32", "B": "i32", "H": "i32",
        **strides("pre_t", "pre_b", "pre_g", "pre_h", "w_g", "w_row", "w_col", "bias_g", "bias_h", "act_bias_h",
                  "h0_b", "h0_h", "c0_b", "c0_h", "out_t", "out_b", "out_h", "hn_b", "hn_h",
                  "cn_b", "cn_h", "gates_t", "gates_b", "gates_g", "gates_h", "aux_t", "aux_b", "aux_h"),
    }  # fmt: skip
    specs = []
    for cell in GATES:
        meta = {
            "hidden_size": hidden_size,
            "dtype": str(dtype).replace("torch.", ""),
            "cell": cell,
            "gates": GATES[cell],
            "nonlinearity": nonlinearity if cell == "gru" else "tanh",
            "config": config.label(),
            "BLOCK_H": fwd_tile["BLOCK_H"],
            "lengths": bool(lengths),
        }
        code = _nonlinearity_code(nonlinearity) if cell == "gru" else NONLINEARITIES["tanh"]
        fwd_constexprs = {
            "CELL": CELLS[cell],
            "ACTIVATION": code,
            "HAS_BIAS": cell == "gru",
            "HAS_H0": True,
            "HAS_C0": cell == "lstm",
            "HAS_LENGTHS": bool(lengths),
            "STATE_FP64": dtype == torch.float64,
            **fwd_tile,
        }
        bwd_signature = {
            "grad_out_ptr": storage, "grad_hn_ptr": storage, "grad_cn_ptr": storage,
            "gates_ptr": state, "aux_ptr": state,
            # the state sequence the step reads: LSTM cells (state dtype), GRU outputs (storage)
            "seq_ptr": state if cell == "lstm" else storage, "s0_ptr": state, "w_ptr": storage,
            "dgates_ptr": state, "dpre_ptr": state, "dh0_ptr": state, "dc0_ptr": state,
            "lengths_ptr": "*i32",
            "T": "i32", "B": "i32", "H": "i32",
            **strides("go_t", "go_b", "go_h", "ghn_b", "ghn_h", "gcn_b", "gcn_h",
                      "gates_t", "gates_b", "gates_g", "gates_h", "aux_t", "aux_b", "aux_h",
                      "seq_t", "seq_b", "seq_h", "s0_b", "s0_h", "w_g", "w_row", "w_col",
                      "dg_t", "dg_b", "dg_g", "dg_h", "dpre_t", "dpre_b", "dpre_g", "dpre_h",
                      "dh0_b", "dh0_h", "dc0_b", "dc0_h"),
        }  # fmt: skip
        bwd_constexprs = {
            "CELL": CELLS[cell],
            "ACTIVATION": code,
            "HAS_GRAD_HN": True,
            "HAS_GRAD_CN": cell == "lstm",
            "HAS_S0": True,
            "HAS_LENGTHS": bool(lengths),
            **bwd_tile,
        }
        specs += [
            CompileSpec(f"{cell}_fwd", gated_fwd_kernel, fwd_signature, fwd_constexprs,
                        config.num_warps, config.num_stages, dict(meta)),
            CompileSpec(f"{cell}_bwd", gated_bwd_kernel, bwd_signature, bwd_constexprs,
                        config.num_warps, config.num_stages, dict(meta)),
        ]  # fmt: skip
    return specs
