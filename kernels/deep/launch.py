"""Launchers of the deep-transition kernel family (Pascanu et al. 2013, DT(S)-RNN): allocate outputs,
pick a config, compute the grid, pass the strides. No maths here (see forward.py, backward.py).

The two entry points implement the contract stated at the top of trit_rnn/backends/torch_deep.py
with the same signatures and results (plus keyword-only variable lengths and launch config):

    deep_forward(pre, weight_hh, weights_deep, biases_deep, h0, nonlinearity) -> (outputs, h_n, layers)
    deep_backward(grad_out, grad_hn, outputs, layers, h0, weight_hh, weights_deep, nonlinearity)
        -> (d_pre, d_layers, dh0)

The depth D = weights_deep.shape[0] + 1 (1..MAX_DEPTH) and the shortcut (pre [T, B, 2H]) are
constexprs of the kernels. With the shortcut, the two halves of pre and d_pre and the two blocks of
weight_hh [W_1; S] are passed as separate views (no copies). Tiling, K-chunking and W staging follow
the dense family (kernels/dense/launch.py), applied to each of the D (+1) on-chip matrices.

lengths (keyword-only): None, or an integer tensor [B] (int32 or int64) on the data's device, each
value in [1, T] (validated upstream), as in the gated family (kernels/gated/launch.py): row b is
active at step t iff t < lengths[b]; an inactive row keeps h and writes exactly 0 in outputs and
layers; the backward ignores grad_out there, applies grad_hn at the row's last active step and
writes exactly 0 in d_pre and d_layers. lengths=None launches the kernels without the masking.

Without a depth (supports), the budget assumes the largest supported one, MAX_DEPTH with the
shortcut; the family's ahead-of-time and autotune reports (compile_specs, estimate_*, budget,
autotune_key, benchmark_runs without depth/shortcut) describe the registered cell, Pascanu's
DT(S)-RNN with a 2-layer transition and the shortcut (DEFAULT_DEPTH, DEFAULT_SHORTCUT).
"""

from __future__ import annotations

import torch
import triton
from triton.runtime.interpreter import InterpretedFunction

from .. import autotune
from ..activations import NONLINEARITIES as _ALL_NONLINEARITIES
from ..dense.launch import (
    DOT_PRECISION,
    MAX_TILE_ELEMENTS_PER_THREAD,
    _block_h,
    _check_config,
    _shared_memory_limit,
    _split_k_levels,
    _state_dtype,
    _w_halves,
)
from ..dense.launch import autotune_key as _dense_autotune_key
from ..dense.launch import candidate_configs as _dense_candidate_configs
from ..lengths import check_lengths, lengths_arg
from ..specs import CompileSpec, Config
from .backward import deep_bwd_kernel
from .forward import deep_fwd_kernel

__all__ = [
    "DEFAULT_DEPTH",
    "DEFAULT_SHORTCUT",
    "KERNELS",
    "MAX_DEPTH",
    "NONLINEARITIES",
    "SUPPORTED_DTYPES",
    "autotune_key",
    "benchmark_runs",
    "budget",
    "candidate_configs",
    "compile_specs",
    "deep_backward",
    "deep_forward",
    "device_shared_limit",
    "estimate_budget",
    "estimate_shared_bytes",
    "supports",
]

# kernel name (autotune cache, AOT records) -> @triton.jit kernel
KERNELS = {"deep_fwd": deep_fwd_kernel, "deep_bwd": deep_bwd_kernel}
SUPPORTED_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
NONLINEARITIES = {name: _ALL_NONLINEARITIES[name] for name in ("identity", "tanh", "relu")}
# The layer chain is unrolled in the kernels for DEPTH = 1..MAX_DEPTH (constexpr).
MAX_DEPTH = 4
# What the family's AOT / autotune reports describe when no depth is given: the registered cell.
DEFAULT_DEPTH = 2
DEFAULT_SHORTCUT = True
# Measured on sm_90 (triton 3.8 ptxas, BLOCK_B=16, depth 2; registers fwd / bwd, shared = the
# estimate below exactly): bf16 H=128 4 warps, shortcut 127 / 145, 104 KiB; without 118 / 116,
# 72 KiB. fp32 H=64 8 warps, shortcut 107 / 128, 52 KiB; without 86 / 128, 36 KiB. No spills.
# fp32 H=128: without the shortcut spill-free at 16 warps only (113 / 107, 136 KiB); with it
# (200 KiB) the backward spills at every config tried (~2.5 KB at 16 warps). bf16 H=256 needs
# 2 x 128 KiB of matrices alone (> 227 KiB). At fp32 and 4 warps each matrix adds registers
# (H=64: depth 1 80, depth 2 + shortcut 221, depth 3 + shortcut spills); at 8 warps they stay flat
# (H=64, depth 2..4 + shortcut: 107-140), so autotune's spill pruning keeps the 8-warp configs.
_TRITON_TYPES = {
    torch.float64: "fp64",
    torch.float32: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
}


def _interpreted() -> bool:
    # The kernels read TRITON_INTERPRET when they were decorated; ask them, not the environment.
    return isinstance(deep_fwd_kernel, InterpretedFunction)


def _nonlinearity_code(nonlinearity: str) -> int:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(
            f"nonlinearity must be one of {sorted(NONLINEARITIES)} for the deep transition, got {nonlinearity!r}"
        )
    return NONLINEARITIES[nonlinearity]


def _check_depth(depth: int) -> None:
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"the deep-transition kernels take depth 1..{MAX_DEPTH}, got {depth}")


def candidate_configs() -> list[Config]:
    """The dense family's configs, plus BLOCK_B=16 with 16 warps: with several fp32 matrices on chip
    the "ieee" FMA dots need more threads (sm_90, triton 3.8 ptxas, fp32 H=128 depth 2 without the
    shortcut: 255 registers and 108 B of spills at 8 warps, 107-113 registers and none at 16)."""
    return [*_dense_candidate_configs(), Config(16, 16, 1)]


def _matrices(depth: int, shortcut: bool) -> int:
    """On-chip matrices of a launch: W_1, W_2..W_D, and S with the shortcut."""
    return depth + int(bool(shortcut))


# --------------------------------------------------------------------------------------------
# budget


def _shared_parts(
    hidden_size: int, dtype: torch.dtype, config: Config, depth: int, shortcut: bool
) -> tuple[int, int]:
    """(W bytes, state tile bytes) the kernels stage in shared memory: the D (+1) matrices, and the
    state tile that feeds the step's dots."""
    block_h = _block_h(hidden_size)
    storage = torch.empty((), dtype=dtype).element_size()
    state = torch.empty((), dtype=_state_dtype(dtype)).element_size()
    return _matrices(depth, shortcut) * block_h * block_h * storage, config.block_b * block_h * state


def estimate_shared_bytes(
    hidden_size: int,
    dtype: torch.dtype,
    config: Config,
    *,
    depth: int = DEFAULT_DEPTH,
    shortcut: bool = DEFAULT_SHORTCUT,
) -> int:
    """Shared memory of one program: the D (+1 with the shortcut) matrices plus a state tile."""
    return sum(_shared_parts(hidden_size, dtype, config, depth, shortcut))


def estimate_budget(
    hidden_size: int,
    dtype: torch.dtype,
    config: Config,
    shared_limit: int | None,
    *,
    depth: int = DEFAULT_DEPTH,
    shortcut: bool = DEFAULT_SHORTCUT,
):
    """(fits, reason) for one config: shared memory (the matrices + a state tile) against
    shared_limit (None: no limit, e.g. the interpreter), and registers per thread (as the dense
    family: the layers of a step are sequential, so one state tile is live at a time, plus the
    shortcut's term)."""
    block_h = _block_h(hidden_size)
    state = torch.empty((), dtype=_state_dtype(dtype)).element_size()
    w_bytes, tile_bytes = _shared_parts(hidden_size, dtype, config, depth, shortcut)
    shared = w_bytes + tile_bytes
    tiles = 2 if shortcut else 1
    per_thread = tiles * config.block_b * block_h * state // 4 // (32 * config.num_warps)
    matrices = _matrices(depth, shortcut)
    if shared_limit is not None and shared > shared_limit:
        return False, (
            f"shared memory ~{shared // 1024} KiB ({matrices} matrices {w_bytes // 1024} KiB + tile "
            f"{tile_bytes // 1024} KiB) > {shared_limit // 1024} KiB"
        )
    if shared_limit is not None and per_thread > MAX_TILE_ELEMENTS_PER_THREAD:
        return False, (
            f"{per_thread} 32-bit state elements per thread > {MAX_TILE_ELEMENTS_PER_THREAD}"
            " (register spills)"
        )
    return (
        True,
        f"shared memory ~{shared // 1024} KiB ({matrices} matrices), {per_thread} state elements per thread",
    )


def supports(
    hidden_size: int,
    dtype: torch.dtype,
    device,
    *,
    depth: int = MAX_DEPTH,
    shortcut: bool = True,
) -> tuple[bool, str]:
    """Whether the deep-transition kernels can run H=hidden_size in dtype on device, and why not.
    Without a depth, the largest supported one (MAX_DEPTH, with the shortcut) is budgeted."""
    if not 1 <= depth <= MAX_DEPTH:
        return False, f"depth {depth}: the deep-transition kernels take depth 1..{MAX_DEPTH} (MAX_DEPTH)"
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
        fits, reason = estimate_budget(hidden_size, dtype, config, limit, depth=depth, shortcut=shortcut)
        if fits:
            return True, f"{config.label()}: {reason}"
        reasons.append(reason)
    name = torch.cuda.get_device_name(device)
    what = f"depth {depth}{' with the shortcut' if shortcut else ''}"
    return False, f"H={hidden_size} {dtype} {what}: no config fits on {name}: {reasons[0]}"


def autotune_key(
    hidden_size: int,
    batch: int,
    dtype: torch.dtype,
    *,
    depth: int = DEFAULT_DEPTH,
    shortcut: bool = DEFAULT_SHORTCUT,
) -> tuple:
    """The launcher's part of an autotune cache key (the helper adds device, triton and source)."""
    return (*_dense_autotune_key(hidden_size, batch, dtype), f"D={depth}", f"shortcut={int(bool(shortcut))}")


def device_shared_limit(device) -> int | None:
    """The shared-memory limit the budget is checked against on device (None: the interpreter)."""
    return autotune.device_shared_limit(device, _interpreted())


def budget(
    hidden_size: int,
    dtype: torch.dtype,
    shared_limit: int | None,
    *,
    depth: int = DEFAULT_DEPTH,
    shortcut: bool = DEFAULT_SHORTCUT,
):
    """estimate_budget as the autotune helper's budget function: config -> (fits, reason)."""
    return lambda config: estimate_budget(
        hidden_size, dtype, config, shared_limit, depth=depth, shortcut=shortcut
    )


def _choose_config(kernel_name, tensor, hidden_size, batch, depth, shortcut, run, ragged=False) -> Config:
    return autotune.choose_for_launch(
        autotune.variant_name(kernel_name, ragged),
        KERNELS[kernel_name],
        autotune_key(hidden_size, batch, tensor.dtype, depth=depth, shortcut=shortcut),
        candidate_configs(),
        lambda limit: budget(hidden_size, tensor.dtype, limit, depth=depth, shortcut=shortcut),
        tensor,
        batch,
        run,
        _interpreted(),
    )


def _launch(
    kernel_name, run, tensor, hidden_size, batch, depth, shortcut, config: Config | None, ragged: bool
) -> None:
    if run is None:
        return
    if config is None:
        config = _choose_config(kernel_name, tensor, hidden_size, batch, depth, shortcut, run, ragged)
    _check_config(config)
    run(config)


def _tile_constexprs(hidden_size: int, dtype: torch.dtype, config: Config) -> dict:
    block_h = _block_h(hidden_size)
    return {
        "DOT_PRECISION": DOT_PRECISION,
        "SPLIT_K_LEVELS": _split_k_levels(block_h, dtype),
        "W_HALVES": _w_halves(block_h, dtype),
        "BLOCK_B": config.block_b,
        "BLOCK_H": block_h,
    }


# --------------------------------------------------------------------------------------------
# argument checks


def _check_matrix(x, name: str, shape: tuple, reference) -> None:
    if tuple(x.shape) != shape or x.dtype != reference.dtype or x.device != reference.device:
        raise ValueError(
            f"{name} must be {list(shape)} {reference.dtype} on {reference.device}, got "
            f"{tuple(x.shape)} {x.dtype} on {x.device}"
        )


def _check_weights(weight_hh, weights_deep, H: int, shortcut: bool, reference) -> int:
    """Checks weight_hh [H or 2H, H] and weights_deep [D-1, H, H]; returns D."""
    if weights_deep.dim() != 3:
        raise ValueError(f"weights_deep must be [D-1, {H}, {H}], got {tuple(weights_deep.shape)}")
    depth = weights_deep.shape[0] + 1
    _check_depth(depth)
    _check_matrix(weight_hh, "weight_hh", ((2 if shortcut else 1) * H, H), reference)
    _check_matrix(weights_deep, "weights_deep", (depth - 1, H, H), reference)
    return depth


def _check_state(x, name: str, B: int, H: int) -> None:
    if x is not None and tuple(x.shape) != (B, H):
        raise ValueError(f"{name} must be [{B}, {H}], got {tuple(x.shape)}")


def _halves(x: torch.Tensor, H: int, shortcut: bool, dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """(first H, second H) views of x along dim with the shortcut; (x, x) without."""
    if not shortcut:
        return x, x
    return x.narrow(dim, 0, H), x.narrow(dim, H, H)


# --------------------------------------------------------------------------------------------
# forward


def _forward_launch(pre, weight_hh, weights_deep, biases_deep, h0, nonlinearity: str, lengths=None):
    """(run, outputs, h_n, layers, depth, shortcut): run(config) launches the forward kernel and
    returns what the launch returns; run is None when there is nothing to compute (h_n is then set)."""
    code = _nonlinearity_code(nonlinearity)
    if pre.dim() != 3 or weight_hh.dim() != 2:
        raise ValueError(
            f"pre must be [T, B, H or 2H] and weight_hh [H or 2H, H], got {tuple(pre.shape)} and "
            f"{tuple(weight_hh.shape)}"
        )
    if pre.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype {pre.dtype} is not supported")
    T, B, width = pre.shape
    H = weight_hh.shape[1]
    if width not in (H, 2 * H):
        raise ValueError(f"pre must be [T, B, {H}] or [T, B, {2 * H}] (shortcut), got {tuple(pre.shape)}")
    shortcut = width == 2 * H and H > 0
    depth = _check_weights(weight_hh, weights_deep, H, shortcut, pre)
    if tuple(biases_deep.shape) != (depth - 1, H) or biases_deep.device != pre.device:
        raise ValueError(
            f"biases_deep must be [{depth - 1}, {H}] on {pre.device}, got {tuple(biases_deep.shape)}"
        )
    _check_state(h0, "h0", B, H)
    check_lengths(lengths, B, pre.device)

    state_dtype = _state_dtype(pre.dtype)
    device = pre.device
    outputs = torch.empty((T, B, H), dtype=pre.dtype, device=device)
    h_n = torch.empty((B, H), dtype=pre.dtype, device=device)
    layers = torch.empty((depth - 1, T, B, H), dtype=state_dtype, device=device)
    if T == 0 or B == 0 or H == 0:
        h_n.copy_(h0 if h0 is not None else torch.zeros_like(h_n))
        return None, outputs, h_n, layers, depth, shortcut

    # h0 is read in the state dtype (lossless for every storage dtype); absent tensors are dummies
    # with zero strides, never read.
    dummy = torch.empty(1, dtype=state_dtype, device=device)
    h0_arg = h0.to(state_dtype) if h0 is not None else dummy
    h0_strides = h0_arg.stride() if h0 is not None else (0, 0)
    deep = depth > 1
    wd_arg, wd_strides = (weights_deep, weights_deep.stride()) if deep else (weight_hh, (0, 0, 0))
    bd_arg, bd_strides = (biases_deep, biases_deep.stride()) if deep else (dummy, (0, 0))
    layers_arg, layers_strides = (layers, layers.stride()) if deep else (dummy, (0, 0, 0, 0))
    pre_1, pre_s = _halves(pre, H, shortcut)
    w_1, w_s = _halves(weight_hh, H, shortcut, dim=0)
    if w_1.stride() != w_s.stride():  # a view of one tensor: always equal
        raise ValueError("weight_hh's two blocks must share strides")
    lengths_ptr = lengths_arg(lengths, device)

    def run(cfg: Config):
        return deep_fwd_kernel[(triton.cdiv(B, cfg.block_b),)](
            pre_1, pre_s, w_1, w_s, wd_arg, bd_arg, h0_arg, outputs, h_n, layers_arg, lengths_ptr,
            T, B, H,
            *pre_1.stride(),
            *w_1.stride(),
            *wd_strides,
            *bd_strides,
            *h0_strides,
            *outputs.stride(),
            *h_n.stride(),
            *layers_strides,
            ACTIVATION=code,
            DEPTH=depth,
            SHORTCUT=shortcut,
            HAS_H0=h0 is not None,
            HAS_LENGTHS=lengths is not None,
            STATE_FP64=state_dtype == torch.float64,
            **_tile_constexprs(H, pre.dtype, cfg),
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
        )  # fmt: skip

    return run, outputs, h_n, layers, depth, shortcut


def deep_forward(
    pre,
    weight_hh,
    weights_deep,
    biases_deep,
    h0,
    nonlinearity,
    *,
    lengths: torch.Tensor | None = None,
    config: Config | None = None,
):
    """The deep-transition forward of the contract (trit_rnn/backends/torch_deep.py): outputs
    [T, B, H] and h_n [B, H] in pre's dtype, layers [D-1, T, B, H] = s^1..s^{D-1} in the state dtype.
    lengths: variable lengths (module docstring)."""
    run, outputs, h_n, layers, depth, shortcut = _forward_launch(
        pre, weight_hh, weights_deep, biases_deep, h0, nonlinearity, lengths
    )
    _launch(
        "deep_fwd", run, pre, outputs.shape[2], outputs.shape[1], depth, shortcut, config, lengths is not None
    )
    return outputs, h_n, layers


# --------------------------------------------------------------------------------------------
# backward


def _backward_launch(
    grad_out, grad_hn, outputs, layers, h0, weight_hh, weights_deep, nonlinearity: str, lengths=None
):
    """(run, d_pre, d_layers, dh0, depth, shortcut) as _forward_launch, for the backward kernel."""
    code = _nonlinearity_code(nonlinearity)
    if outputs.dim() != 3 or weight_hh.dim() != 2:
        raise ValueError(
            f"outputs must be [T, B, H] and weight_hh [H or 2H, H], got {tuple(outputs.shape)} and "
            f"{tuple(weight_hh.shape)}"
        )
    if outputs.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype {outputs.dtype} is not supported")
    T, B, H = outputs.shape
    if weight_hh.shape[0] not in (H, 2 * H):
        raise ValueError(
            f"weight_hh must be [{H}, {H}] or [{2 * H}, {H}] (shortcut), got {tuple(weight_hh.shape)}"
        )
    shortcut = weight_hh.shape[0] == 2 * H and H > 0
    depth = _check_weights(weight_hh, weights_deep, H, shortcut, outputs)
    state_dtype = _state_dtype(outputs.dtype)
    if tuple(grad_out.shape) != (T, B, H):
        raise ValueError(f"grad_out must be {[T, B, H]}, got {tuple(grad_out.shape)}")
    if tuple(layers.shape) != (depth - 1, T, B, H) or layers.dtype != state_dtype:
        raise ValueError(
            f"layers must be {[depth - 1, T, B, H]} {state_dtype}, got {tuple(layers.shape)} {layers.dtype}"
        )
    _check_state(grad_hn, "grad_hn", B, H)
    _check_state(h0, "h0", B, H)
    check_lengths(lengths, B, outputs.device)

    device = outputs.device
    d_pre = torch.empty((T, B, (2 if shortcut else 1) * H), dtype=state_dtype, device=device)
    d_layers = torch.empty((depth, T, B, H), dtype=state_dtype, device=device)
    dh0 = torch.empty((B, H), dtype=state_dtype, device=device)
    if T == 0 or B == 0 or H == 0:
        dh0.copy_(grad_hn if grad_hn is not None else torch.zeros_like(dh0))
        return None, d_pre, d_layers, dh0, depth, shortcut

    deep = depth > 1
    ghn_arg, ghn_strides = (grad_hn, grad_hn.stride()) if grad_hn is not None else (dh0, (0, 0))
    wd_arg, wd_strides = (weights_deep, weights_deep.stride()) if deep else (weight_hh, (0, 0, 0))
    layers_arg, layers_strides = (layers, layers.stride()) if deep else (dh0, (0, 0, 0, 0))
    d_pre_1, d_pre_s = _halves(d_pre, H, shortcut)
    w_1, w_s = _halves(weight_hh, H, shortcut, dim=0)
    lengths_ptr = lengths_arg(lengths, device)

    def run(cfg: Config):
        return deep_bwd_kernel[(triton.cdiv(B, cfg.block_b),)](
            grad_out, ghn_arg, outputs, layers_arg, w_1, w_s, wd_arg, d_pre_1, d_pre_s, d_layers, dh0,
            lengths_ptr,
            T, B, H,
            *grad_out.stride(),
            *ghn_strides,
            *outputs.stride(),
            *layers_strides,
            *w_1.stride(),
            *wd_strides,
            *d_pre_1.stride(),
            *d_layers.stride(),
            *dh0.stride(),
            ACTIVATION=code,
            DEPTH=depth,
            SHORTCUT=shortcut,
            HAS_GRAD_HN=grad_hn is not None,
            HAS_LENGTHS=lengths is not None,
            **_tile_constexprs(H, outputs.dtype, cfg),
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
        )  # fmt: skip

    return run, d_pre, d_layers, dh0, depth, shortcut


def deep_backward(
    grad_out,
    grad_hn,
    outputs,
    layers,
    h0,
    weight_hh,
    weights_deep,
    nonlinearity,
    *,
    lengths: torch.Tensor | None = None,
    config: Config | None = None,
):
    """The deep-transition backward of the contract (trit_rnn/backends/torch_deep.py): d_pre
    [T, B, H or 2H] = (d a^1 [, d a^D]), d_layers [D, T, B, H] = d a^1..d a^D and dh0 [B, H], in the
    state dtype. h0 is not read (it enters the weight gradient only, which the caller computes).
    lengths: those of the forward (module docstring)."""
    run, d_pre, d_layers, dh0, depth, shortcut = _backward_launch(
        grad_out, grad_hn, outputs, layers, h0, weight_hh, weights_deep, nonlinearity, lengths
    )
    _launch(
        "deep_bwd",
        run,
        outputs,
        outputs.shape[2],
        outputs.shape[1],
        depth,
        shortcut,
        config,
        lengths is not None,
    )
    return d_pre, d_layers, dh0


# --------------------------------------------------------------------------------------------
# autotune and ahead-of-time compilation


def benchmark_runs(
    hidden_size: int,
    batch: int,
    dtype: torch.dtype,
    device,
    seq_len: int = 256,
    *,
    depth: int = DEFAULT_DEPTH,
    shortcut: bool = DEFAULT_SHORTCUT,
) -> dict:
    """{kernel name: run(config)} on random inputs of one shape, for `trit-rnn autotune` to time
    every config: each run launches one kernel and returns what the launch returns."""
    device = torch.device(device)
    H = hidden_size
    width = (2 if shortcut else 1) * H
    pre = torch.randn((seq_len, batch, width), device=device).to(dtype)
    weight_hh = (torch.randn((width, H), device=device) / H**0.5).to(dtype)
    weights_deep = (torch.randn((depth - 1, H, H), device=device) / H**0.5).to(dtype)
    biases_deep = torch.zeros((depth - 1, H), device=device, dtype=dtype)
    h0 = torch.zeros(batch, H, device=device, dtype=dtype)
    run_fwd, outputs, _, layers, _, _ = _forward_launch(pre, weight_hh, weights_deep, biases_deep, h0, "tanh")
    # valid tanh outputs and layers for the backward before any forward runs
    outputs.copy_(torch.tanh(pre[..., :H].float()))
    layers.copy_(torch.tanh(torch.randn(layers.shape, device=device)))
    grad_out = torch.randn((seq_len, batch, H), device=device).to(dtype)
    run_bwd = _backward_launch(grad_out, h0, outputs, layers, h0, weight_hh, weights_deep, "tanh")[0]
    return {"deep_fwd": run_fwd, "deep_bwd": run_bwd}


def compile_specs(
    hidden_size: int,
    dtype: torch.dtype,
    config: Config,
    *,
    depth: int = DEFAULT_DEPTH,
    shortcut: bool = DEFAULT_SHORTCUT,
    nonlinearity: str = "tanh",
    lengths: bool = False,
):
    """One CompileSpec per kernel ("deep_fwd", "deep_bwd") for triton.compile(ASTSource(...)).

    The specs describe the common launch: h0 and grad_hn given, grad_out in the storage dtype,
    every size and stride a 32-bit integer (the kernels widen to int64 themselves). lengths: the
    variable-length variants (HAS_LENGTHS, int32 lengths); meta["lengths"] says which.
    """
    code = _nonlinearity_code(nonlinearity)
    _check_depth(depth)
    storage = "*" + _TRITON_TYPES[dtype]
    state = "*" + _TRITON_TYPES[_state_dtype(dtype)]
    block_h = _block_h(hidden_size)
    meta = {
        "hidden_size": hidden_size,
        "dtype": str(dtype).replace("torch.", ""),
        "nonlinearity": nonlinearity,
        "depth": depth,
        "shortcut": bool(shortcut),
        "gates": depth + int(bool(shortcut)),  # matrices multiplied per step (perf/gpu_model.py)
        "config": config.label(),
        "BLOCK_H": block_h,
        "lengths": bool(lengths),
    }

    def strides(*names):
        return {f"stride_{name}": "i32" for name in names}

    fwd_signature = {
        "pre_ptr": storage, "pre_s_ptr": storage, "w_ptr": storage, "s_ptr": storage,
        "wd_ptr": storage, "bd_ptr": storage, "h0_ptr": state, "out_ptr": storage, "hn_ptr": storage,
        "layers_ptr": state, "lengths_ptr": "*i32",
        "T": "i32", "B": "i32", "H": "i32",
        **strides("pre_t", "pre_b", "pre_h", "w_row", "w_col", "wd_l", "wd_row", "wd_col", "bd_l", "bd_h",
                  "h0_b", "h0_h", "out_t", "out_b", "out_h", "hn_b", "hn_h",
                  "layers_l", "layers_t", "layers_b", "layers_h"),
    }  # fmt: skip
    fwd_constexprs = {
        "ACTIVATION": code,
        "DEPTH": depth,
        "SHORTCUT": bool(shortcut),
        "HAS_H0": True,
        "HAS_LENGTHS": bool(lengths),
        "STATE_FP64": dtype == torch.float64,
        **_tile_constexprs(hidden_size, dtype, config),
    }
    bwd_signature = {
        "grad_out_ptr": storage, "grad_hn_ptr": storage, "out_ptr": storage, "layers_ptr": state,
        "w_ptr": storage, "s_ptr": storage, "wd_ptr": storage,
        "d_pre_ptr": state, "d_pre_s_ptr": state, "d_layers_ptr": state, "dh0_ptr": state,
        "lengths_ptr": "*i32",
        "T": "i32", "B": "i32", "H": "i32",
        **strides("go_t", "go_b", "go_h", "ghn_b", "ghn_h", "out_t", "out_b", "out_h",
                  "layers_l", "layers_t", "layers_b", "layers_h", "w_row", "w_col",
                  "wd_l", "wd_row", "wd_col", "dpre_t", "dpre_b", "dpre_h",
                  "dl_l", "dl_t", "dl_b", "dl_h", "dh0_b", "dh0_h"),
    }  # fmt: skip
    bwd_constexprs = {
        "ACTIVATION": code,
        "DEPTH": depth,
        "SHORTCUT": bool(shortcut),
        "HAS_GRAD_HN": True,
        "HAS_LENGTHS": bool(lengths),
        **_tile_constexprs(hidden_size, dtype, config),
    }
    return [
        CompileSpec("deep_fwd", deep_fwd_kernel, fwd_signature, fwd_constexprs,
                    config.num_warps, config.num_stages, dict(meta)),
        CompileSpec("deep_bwd", deep_bwd_kernel, bwd_signature, bwd_constexprs,
                    config.num_warps, config.num_stages, dict(meta)),
    ]  # fmt: skip
