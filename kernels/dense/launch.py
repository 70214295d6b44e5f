"""Launchers of the dense kernel family: allocate outputs, pick a config, compute the grid, pass the
strides. No maths here (see forward.py / backward.py)."""

from __future__ import annotations

import torch
import triton
from triton.runtime.interpreter import InterpretedFunction

from .. import autotune
from ..activations import NONLINEARITIES
from ..lengths import check_lengths, lengths_arg
from ..specs import CompileSpec, Config
from .backward import dense_bwd_kernel
from .forward import dense_fwd_kernel

__all__ = [
    "KERNELS",
    "NONLINEARITIES",
    "autotune_key",
    "benchmark_runs",
    "budget",
    "candidate_configs",
    "compile_specs",
    "dense_backward",
    "dense_forward",
    "device_shared_limit",
    "estimate_budget",
    "estimate_shared_bytes",
    "supports",
]

# kernel name (autotune cache, AOT records) -> @triton.jit kernel
KERNELS = {"dense_fwd": dense_fwd_kernel, "dense_bwd": dense_bwd_kernel}
SUPPORTED_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
# A dot of fp32 inputs is tf32 on a GPU unless asked otherwise; fp64 and 16-bit inputs ignore it.
DOT_PRECISION = "ieee"
# Coarse register guard: 32-bit state elements of one [BLOCK_B, BLOCK_H] tile per thread. It only
# rejects configs that are hopeless; spills are decided by the AOT build (ptxas), which is the
# ground truth (triton 3.8, sm_90: fp32 H=128 spill-free at num_warps=8, spilling at 4).
MAX_TILE_ELEMENTS_PER_THREAD = 64
FMA_K_CHUNK = 32
_TRITON_TYPES = {
    torch.float64: "fp64",
    torch.float32: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
}


def _block_h(hidden_size: int) -> int:
    return triton.next_power_of_2(max(int(hidden_size), 16))


def _split_k_levels(block_h: int, dtype: torch.dtype) -> int:
    """K-chunking of the step's dot (see split_k_dot): fp32 "ieee" dots are FMA loops on a GPU and
    spill above K = FMA_K_CHUNK; tensor-core dots (16-bit, fp64) are left whole."""
    if dtype != torch.float32 or block_h <= FMA_K_CHUNK:
        return 0
    return (block_h // FMA_K_CHUNK).bit_length() - 1


def _w_halves(block_h: int, dtype: torch.dtype) -> bool:
    """Whether the kernels stage W in two K halves (see load_operator): for tensor-core dots (16-bit,
    fp64), whose scalar W load otherwise spills at bf16 H=256. Not for fp32 "ieee" FMA dots, which
    split K themselves and need more registers with halves (fp32 H=128 backward: 86 -> 230). The
    dot's K extent must stay >= 16 after halving."""
    return dtype != torch.float32 and block_h >= 32


def _state_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _interpreted() -> bool:
    # The kernels read TRITON_INTERPRET when they were decorated; ask them, not the environment.
    return isinstance(dense_fwd_kernel, InterpretedFunction)


def _nonlinearity_code(nonlinearity: str) -> int:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}")
    return NONLINEARITIES[nonlinearity]


def candidate_configs() -> list[Config]:
    return [
        Config(block_b, num_warps, num_stages)
        for block_b in (16, 32, 64)
        for num_warps in (4, 8)
        for num_stages in (1, 2)
    ]


def _shared_memory_limit(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).shared_memory_per_block_optin


def _shared_parts(hidden_size: int, dtype: torch.dtype, config: Config) -> tuple[int, int]:
    """(W tile bytes, state tile bytes) the kernels stage in shared memory."""
    block_h = _block_h(hidden_size)
    storage = torch.empty((), dtype=dtype).element_size()
    state = torch.empty((), dtype=_state_dtype(dtype)).element_size()
    # h (forward) or dz (backward) goes through shared memory each step to feed the dot.
    return block_h * block_h * storage, config.block_b * block_h * state


def estimate_shared_bytes(hidden_size: int, dtype: torch.dtype, config: Config) -> int:
    """Shared memory of one program: the W tile plus a state tile (what triton allocates for the
    compiled sm_90 kernels at H=128/256, fp32 and bf16)."""
    return sum(_shared_parts(hidden_size, dtype, config))


def estimate_budget(hidden_size: int, dtype: torch.dtype, config: Config, shared_limit: int | None):
    """(fits, reason) for one config: shared memory (W tile + a state tile staged per step) against
    shared_limit (None: no limit, e.g. the interpreter), and registers per thread."""
    block_h = _block_h(hidden_size)
    state = torch.empty((), dtype=_state_dtype(dtype)).element_size()
    w_bytes, tile_bytes = _shared_parts(hidden_size, dtype, config)
    shared = w_bytes + tile_bytes
    per_thread = config.block_b * block_h * state // 4 // (32 * config.num_warps)
    if shared_limit is not None and shared > shared_limit:
        return False, (
            f"shared memory ~{shared // 1024} KiB (W {w_bytes // 1024} KiB + tile {tile_bytes // 1024} KiB)"
            f" > {shared_limit // 1024} KiB"
        )
    if shared_limit is not None and per_thread > MAX_TILE_ELEMENTS_PER_THREAD:
        return False, (
            f"{per_thread} 32-bit state elements per thread > {MAX_TILE_ELEMENTS_PER_THREAD}"
            " (register spills)"
        )
    return True, f"shared memory ~{shared // 1024} KiB, {per_thread} state elements per thread"


def supports(hidden_size: int, dtype: torch.dtype, device) -> tuple[bool, str]:
    """Whether the dense kernels can run H=hidden_size in dtype on device, and why not."""
    if dtype not in SUPPORTED_DTYPES:
        return False, f"dtype {dtype} is not supported (float64/float32/bfloat16/float16)"
    device = torch.device(device)
    if device.type == "cpu":
        if _interpreted():
            return True, "Triton interpreter (TRITON_INTERPRET=1): every hidden size runs"
        return False, "CPU tensors need the Triton interpreter (TRITON_INTERPRET=1); use the torch backend"
    if device.type != "cuda":
        return False, f"device type {device.type!r} is not supported"
    if _interpreted():
        return True, "Triton interpreter (TRITON_INTERPRET=1): every hidden size runs"
    limit = _shared_memory_limit(device)
    reasons = []
    for config in candidate_configs():
        fits, reason = estimate_budget(hidden_size, dtype, config, limit)
        if fits:
            return True, f"{config.label()}: {reason}"
        reasons.append(reason)
    name = torch.cuda.get_device_name(device)
    return False, f"H={hidden_size} {dtype}: no config fits on {name}: {reasons[0]}"


def autotune_key(hidden_size: int, batch: int, dtype: torch.dtype) -> tuple:
    """The launcher's part of an autotune cache key (the helper adds device, triton and source)."""
    return (f"H={hidden_size}", f"B<={triton.next_power_of_2(batch)}", str(dtype))


def device_shared_limit(device) -> int | None:
    """The shared-memory limit the budget is checked against on device (None: the interpreter)."""
    return autotune.device_shared_limit(device, _interpreted())


def budget(hidden_size: int, dtype: torch.dtype, shared_limit: int | None):
    """estimate_budget as the autotune helper's budget function: config -> (fits, reason)."""
    return lambda config: estimate_budget(hidden_size, dtype, config, shared_limit)


def _choose_config(kernel_name, tensor, hidden_size, batch, run, ragged: bool = False) -> Config:
    # A ragged launch compiles the HAS_LENGTHS variant, whose registers differ: its own cache entry.
    return autotune.choose_for_launch(
        autotune.variant_name(kernel_name, ragged),
        KERNELS[kernel_name],
        autotune_key(hidden_size, batch, tensor.dtype),
        candidate_configs(),
        lambda limit: budget(hidden_size, tensor.dtype, limit),
        tensor,
        batch,
        run,
        _interpreted(),
    )


def _check_config(config: Config) -> None:
    if config.block_b < 16 or config.block_b & (config.block_b - 1):
        raise ValueError(f"BLOCK_B must be a power of two >= 16 (tl.dot minimum), got {config.block_b}")


def dense_forward(
    pre,
    weight,
    h0,
    act_bias,
    nonlinearity: str,
    *,
    lengths: torch.Tensor | None = None,
    config: Config | None = None,
):
    """outputs [T, B, H] (contiguous, pre.dtype) and h_n [B, H] (pre.dtype) of
    z_t = pre_t + h_{t-1} @ weight^T, h_t = f(z_t).

    lengths: None, or an integer tensor [B] on pre's device: row b is updated at steps
    t < lengths[b] only; after that its state is kept (h_n is the state after its last step) and
    its outputs are 0."""
    run, outputs, h_n = _forward_launch(pre, weight, h0, act_bias, nonlinearity, lengths)
    if run is None:
        return outputs, h_n
    if config is None:
        T, B, H = pre.shape
        config = _choose_config("dense_fwd", pre, H, B, run, lengths is not None)
    _check_config(config)
    run(config)
    return outputs, h_n


def _forward_launch(pre, weight, h0, act_bias, nonlinearity: str, lengths=None):
    """(run, outputs, h_n): run(config) launches the forward kernel into outputs/h_n and returns
    what the launch returns; run is None when there is nothing to compute (h_n is then set)."""
    code = _nonlinearity_code(nonlinearity)
    if pre.dim() != 3:
        raise ValueError(f"pre must be [T, B, H], got shape {tuple(pre.shape)}")
    T, B, H = pre.shape
    if pre.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype {pre.dtype} is not supported")
    if weight.shape != (H, H) or weight.dtype != pre.dtype or weight.device != pre.device:
        raise ValueError(
            f"weight must be [{H}, {H}] {pre.dtype} on {pre.device}, got {tuple(weight.shape)} "
            f"{weight.dtype} on {weight.device}"
        )
    if h0 is not None and h0.shape != (B, H):
        raise ValueError(f"h0 must be [{B}, {H}], got {tuple(h0.shape)}")
    if code == NONLINEARITIES["modrelu"] and (act_bias is None or act_bias.shape != (H,)):
        raise ValueError(f"modrelu needs act_bias of shape [{H}]")
    check_lengths(lengths, B, pre.device)

    state_dtype = _state_dtype(pre.dtype)
    outputs = torch.empty((T, B, H), dtype=pre.dtype, device=pre.device)
    h_n = torch.empty((B, H), dtype=pre.dtype, device=pre.device)
    if T == 0 or B == 0 or H == 0:
        h_n.copy_(h0 if h0 is not None else torch.zeros_like(h_n))
        return None, outputs, h_n

    # h0 and act_bias are read in the state dtype (lossless for every storage dtype).
    dummy = torch.empty(1, dtype=state_dtype, device=pre.device)
    h0_state = h0.to(state_dtype) if h0 is not None else None
    h0_arg = h0_state if h0_state is not None else dummy
    h0_strides = h0_state.stride() if h0_state is not None else (0, 0)
    bias_arg = act_bias.to(state_dtype).contiguous() if code == NONLINEARITIES["modrelu"] else dummy
    lengths_ptr = lengths_arg(lengths, pre.device)

    def run(cfg: Config):
        return dense_fwd_kernel[(triton.cdiv(B, cfg.block_b),)](
            pre, weight, h0_arg, bias_arg, outputs, h_n, lengths_ptr,
            T, B, H,
            *pre.stride(),
            *weight.stride(),
            *h0_strides,
            *outputs.stride(),
            *h_n.stride(),
            ACTIVATION=code,
            HAS_H0=h0 is not None,
            HAS_LENGTHS=lengths is not None,
            STATE_FP64=state_dtype == torch.float64,
            DOT_PRECISION=DOT_PRECISION,
            SPLIT_K_LEVELS=_split_k_levels(_block_h(H), pre.dtype),
            W_HALVES=_w_halves(_block_h(H), pre.dtype),
            BLOCK_B=cfg.block_b,
            BLOCK_H=_block_h(H),
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
        )  # fmt: skip

    return run, outputs, h_n


def dense_backward(
    grad_out,
    grad_hn,
    outputs,
    weight,
    nonlinearity: str,
    *,
    lengths: torch.Tensor | None = None,
    config: Config | None = None,
):
    """dz [T, B, H] = dL/dz_t (contiguous, state dtype) and dh0 [B, H] (state dtype).

    lengths: as in dense_forward. grad_out at a row's steps t >= lengths[b] is ignored and dz
    there is 0; grad_hn is the gradient of the row's final state (after its last step)."""
    run, dz, dh0 = _backward_launch(grad_out, grad_hn, outputs, weight, nonlinearity, lengths)
    if run is None:
        return dz, dh0
    if config is None:
        T, B, H = outputs.shape
        config = _choose_config("dense_bwd", outputs, H, B, run, lengths is not None)
    _check_config(config)
    run(config)
    return dz, dh0


def _backward_launch(grad_out, grad_hn, outputs, weight, nonlinearity: str, lengths=None):
    """(run, dz, dh0) as _forward_launch, for the backward kernel."""
    code = _nonlinearity_code(nonlinearity)
    T, B, H = outputs.shape
    if grad_out.shape != outputs.shape:
        raise ValueError(f"grad_out must be {tuple(outputs.shape)}, got {tuple(grad_out.shape)}")
    if grad_hn is not None and grad_hn.shape != (B, H):
        raise ValueError(f"grad_hn must be [{B}, {H}], got {tuple(grad_hn.shape)}")
    if weight.shape != (H, H) or weight.dtype != outputs.dtype or weight.device != outputs.device:
        raise ValueError(
            f"weight must be [{H}, {H}] {outputs.dtype} on {outputs.device}, got {tuple(weight.shape)} "
            f"{weight.dtype} on {weight.device}"
        )
    check_lengths(lengths, B, outputs.device)

    state_dtype = _state_dtype(outputs.dtype)
    dz = torch.empty((T, B, H), dtype=state_dtype, device=outputs.device)
    dh0 = torch.empty((B, H), dtype=state_dtype, device=outputs.device)
    if T == 0 or B == 0 or H == 0:
        dh0.copy_(grad_hn if grad_hn is not None else torch.zeros_like(dh0))
        return None, dz, dh0

    grad_hn_arg = grad_hn if grad_hn is not None else dz
    grad_hn_strides = grad_hn.stride() if grad_hn is not None else (0, 0)
    lengths_ptr = lengths_arg(lengths, outputs.device)

    def run(cfg: Config):
        return dense_bwd_kernel[(triton.cdiv(B, cfg.block_b),)](
            grad_out, grad_hn_arg, outputs, weight, dz, dh0, lengths_ptr,
            T, B, H,
            *grad_out.stride(),
            *grad_hn_strides,
            *outputs.stride(),
            *weight.stride(),
            *dz.stride(),
            *dh0.stride(),
            ACTIVATION=code,
            HAS_GRAD_HN=grad_hn is not None,
            HAS_LENGTHS=lengths is not None,
            DOT_PRECISION=DOT_PRECISION,
            SPLIT_K_LEVELS=_split_k_levels(_block_h(H), outputs.dtype),
            W_HALVES=_w_halves(_block_h(H), outputs.dtype),
            BLOCK_B=cfg.block_b,
            BLOCK_H=_block_h(H),
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
        )  # fmt: skip

    return run, dz, dh0


def benchmark_runs(hidden_size: int, batch: int, dtype: torch.dtype, device, seq_len: int = 256) -> dict:
    """{kernel name: run(config)} on random inputs of one shape, for `trit-rnn autotune` to time
    every config: each run launches one kernel and returns what the launch returns."""
    device = torch.device(device)
    shape = (seq_len, batch, hidden_size)
    pre = torch.randn(shape, device=device).to(dtype)
    # An orthogonal W keeps the recurrence bounded over seq_len steps.
    weight = torch.linalg.qr(torch.randn(hidden_size, hidden_size, device=device))[0].to(dtype)
    h0 = torch.zeros(batch, hidden_size, device=device, dtype=dtype)
    run_fwd, outputs, _ = _forward_launch(pre, weight, h0, None, "tanh")
    outputs.copy_(torch.tanh(pre.float()))  # valid tanh outputs for the backward before any forward runs
    grad_out = torch.randn(shape, device=device).to(dtype)
    run_bwd, _, _ = _backward_launch(grad_out, h0, outputs, weight, "tanh")
    return {"dense_fwd": run_fwd, "dense_bwd": run_bwd}


def compile_specs(
    hidden_size: int, dtype: torch.dtype, config: Config, *, nonlinearity: str = "tanh", lengths: bool = False
):
    """One CompileSpec per kernel ("dense_fwd", "dense_bwd") for triton.compile(ASTSource(...)).

    The specs describe the common launch: h0 and grad_hn given, grad_out in the storage dtype,
    every size and stride a 32-bit integer (the kernels widen to int64 themselves). lengths: the
    variable-length variant (HAS_LENGTHS, int32 lengths); meta["lengths"] says which.
    """
    code = _nonlinearity_code(nonlinearity)
    storage = "*" + _TRITON_TYPES[dtype]
    state = "*" + _TRITON_TYPES[_state_dtype(dtype)]
    block_h = _block_h(hidden_size)
    meta = {
        "hidden_size": hidden_size,
        "dtype": str(dtype).replace("torch.", ""),
        "nonlinearity": nonlinearity,
        "config": config.label(),
        "BLOCK_H": block_h,
        "lengths": bool(lengths),
    }

    def strides(*names):
        return {f"stride_{name}": "i32" for name in names}

    fwd_signature = {
        "pre_ptr": storage, "w_ptr": storage, "h0_ptr": state, "act_bias_ptr": state,
        "out_ptr": storage, "hn_ptr": storage, "lengths_ptr": "*i32",
        "T": "i32", "B": "i32", "H": "i32",
        **strides("pre_t", "pre_b", "pre_h", "w_row", "w_col", "h0_b", "h0_h",
                  "out_t", "out_b", "out_h", "hn_b", "hn_h"),
    }  # fmt: skip
    fwd_constexprs = {
        "ACTIVATION": code,
        "HAS_H0": True,
        "HAS_LENGTHS": bool(lengths),
        "STATE_FP64": dtype == torch.float64,
        "DOT_PRECISION": DOT_PRECISION,
        "SPLIT_K_LEVELS": _split_k_levels(block_h, dtype),
        "W_HALVES": _w_halves(block_h, dtype),
        "BLOCK_B": config.block_b,
        "BLOCK_H": block_h,
    }
    bwd_signature = {
        "grad_out_ptr": storage, "grad_hn_ptr": storage, "out_ptr": storage, "w_ptr": storage,
        "dz_ptr": state, "dh0_ptr": state, "lengths_ptr": "*i32",
        "T": "i32", "B": "i32", "H": "i32",
        **strides("go_t", "go_b", "go_h", "ghn_b", "ghn_h", "out_t", "out_b", "out_h",
                  "w_row", "w_col", "dz_t", "dz_b", "dz_h", "dh0_b", "dh0_h"),
    }  # fmt: skip
    bwd_constexprs = {
        "ACTIVATION": code,
        "HAS_GRAD_HN": True,
        "HAS_LENGTHS": bool(lengths),
        "DOT_PRECISION": DOT_PRECISION,
        "SPLIT_K_LEVELS": _split_k_levels(block_h, dtype),
        "W_HALVES": _w_halves(block_h, dtype),
        "BLOCK_B": config.block_b,
        "BLOCK_H": block_h,
    }
    return [
        CompileSpec("dense_fwd", dense_fwd_kernel, fwd_signature, fwd_constexprs,
                    config.num_warps, config.num_stages, dict(meta)),
        CompileSpec("dense_bwd", dense_bwd_kernel, bwd_signature, bwd_constexprs,
                    config.num_warps, config.num_stages, dict(meta)),
    ]  # fmt: skip
