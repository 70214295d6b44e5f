"""Launchers of the complex dense kernel family: allocate outputs, pick a config, compute the grid,
pass the plane pointers and strides. No maths here (see forward.py / backward.py).

Complex tensors are passed as torch.view_as_real views (no copy): the real plane at element offset
0, the imaginary plane at 1, every stride doubled. Tiling, configs and W staging follow the real
dense family, applied to the plane dtype (complex64 -> fp32, complex128 -> fp64); fp32 dots chunk
K more finely (FMA_K_CHUNK).
"""

from __future__ import annotations

import torch
import triton
from triton.runtime.interpreter import InterpretedFunction

from .. import autotune
from ..activations import NONLINEARITIES as _ALL_CODES
from ..dense.launch import (
    DOT_PRECISION,
    _block_h,
    _check_config,
    _shared_memory_limit,
    _w_halves,
    autotune_key,
    candidate_configs,
)
from ..lengths import check_lengths, lengths_arg
from ..specs import CompileSpec, Config
from .backward import dense_complex_bwd_kernel
from .forward import dense_complex_fwd_kernel

__all__ = [
    "KERNELS",
    "NONLINEARITIES",
    "SUPPORTED_DTYPES",
    "autotune_key",
    "benchmark_runs",
    "budget",
    "candidate_configs",
    "compile_specs",
    "complex_backward",
    "complex_forward",
    "device_shared_limit",
    "estimate_budget",
    "estimate_shared_bytes",
    "supports",
]

# kernel name (autotune cache, AOT records) -> @triton.jit kernel
KERNELS = {"dense_complex_fwd": dense_complex_fwd_kernel, "dense_complex_bwd": dense_complex_bwd_kernel}
SUPPORTED_DTYPES = (torch.complex128, torch.complex64)
NONLINEARITIES = {name: _ALL_CODES[name] for name in ("identity", "modrelu")}
_PLANE_DTYPES = {torch.complex64: torch.float32, torch.complex128: torch.float64}
_TRITON_TYPES = {torch.complex64: "fp32", torch.complex128: "fp64"}
# K extent of one chunk of an fp32 "ieee" (FMA) dot: half the real family's, because each chunk of
# the stacked state feeds two dots (see complex_dot.py; K = 32 spills at complex64 H=128 on sm_90).
FMA_K_CHUNK = 16
# Coarse register guard: 32-bit words of the two state planes of a [BLOCK_B, BLOCK_H] tile per
# thread, by plane dtype. Measured on sm_90 (triton 3.8 ptxas, H = 64 and 128): complex64 configs
# spill above 16 (FMA dots hold whole K chunks of both operands), complex128 ones (tensor-core
# dots) above 32. The AOT build stays the ground truth (autotune drops spilling configs on a GPU).
MAX_STATE_WORDS_PER_THREAD = {torch.float32: 16, torch.float64: 32}


def _plane_dtype(dtype: torch.dtype) -> torch.dtype:
    return _PLANE_DTYPES[dtype]


def _planes(x: torch.Tensor) -> torch.Tensor:
    """[..., 2] real view of a complex tensor (a copy only for a lazily conjugated/negated one)."""
    return torch.view_as_real(x.resolve_conj().resolve_neg())


def _interpreted() -> bool:
    # The kernels read TRITON_INTERPRET when they were decorated; ask them, not the environment.
    return isinstance(dense_complex_fwd_kernel, InterpretedFunction)


def _nonlinearity_code(nonlinearity: str) -> int:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}")
    return NONLINEARITIES[nonlinearity]


def _check_dtype(dtype: torch.dtype, what: str) -> None:
    if dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{what} must be complex64 or complex128, got {dtype}")


def _shared_parts(hidden_size: int, dtype: torch.dtype, config: Config) -> tuple[int, int]:
    """(W bytes, state bytes) the kernels stage in shared memory: both planes of W, and both planes
    of the state tile that feeds the step's dots."""
    block_h = _block_h(hidden_size)
    plane = torch.empty((), dtype=_plane_dtype(dtype)).element_size()
    return 2 * block_h * block_h * plane, 2 * config.block_b * block_h * plane


def estimate_shared_bytes(hidden_size: int, dtype: torch.dtype, config: Config) -> int:
    """Shared memory of one program: the two W planes plus the two state planes."""
    return sum(_shared_parts(hidden_size, dtype, config))


def estimate_budget(hidden_size: int, dtype: torch.dtype, config: Config, shared_limit: int | None):
    """(fits, reason) for one config: shared memory against shared_limit (None: no limit, e.g. the
    interpreter), and 32-bit words of the two state planes per thread."""
    w_bytes, tile_bytes = _shared_parts(hidden_size, dtype, config)
    shared = w_bytes + tile_bytes
    per_thread = tile_bytes // 4 // (32 * config.num_warps)
    max_per_thread = MAX_STATE_WORDS_PER_THREAD[_plane_dtype(dtype)]
    if shared_limit is not None and shared > shared_limit:
        return False, (
            f"shared memory ~{shared // 1024} KiB (W planes {w_bytes // 1024} KiB + state planes "
            f"{tile_bytes // 1024} KiB) > {shared_limit // 1024} KiB"
        )
    if shared_limit is not None and per_thread > max_per_thread:
        return False, f"{per_thread} 32-bit state words per thread > {max_per_thread} (register spills)"
    return True, f"shared memory ~{shared // 1024} KiB, {per_thread} state words per thread"


def supports(hidden_size: int, dtype: torch.dtype, device) -> tuple[bool, str]:
    """Whether the complex dense kernels can run H=hidden_size in dtype on device, and why not."""
    if dtype not in SUPPORTED_DTYPES:
        return False, f"dtype {dtype} is not supported (complex64/complex128)"
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
        fits, reason = estimate_budget(hidden_size, dtype, config, limit)
        if fits:
            return True, f"{config.label()}: {reason}"
        reasons.append(reason)
    name = torch.cuda.get_device_name(device)
    return False, f"H={hidden_size} {dtype}: no config fits on {name}: {reasons[0]}"


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


def _split_k_levels(block_h: int, plane: torch.dtype) -> int:
    """K-chunking of the step's dots (2**levels chunks of FMA_K_CHUNK) for fp32 FMA dots; tensor-core
    dots (fp64) are left whole."""
    if plane != torch.float32 or block_h <= FMA_K_CHUNK:
        return 0
    return (block_h // FMA_K_CHUNK).bit_length() - 1


def _plane_constexprs(hidden_size: int, dtype: torch.dtype, config: Config) -> dict:
    block_h = _block_h(hidden_size)
    plane = _plane_dtype(dtype)
    return {
        "DOT_PRECISION": DOT_PRECISION,
        "SPLIT_K_LEVELS": _split_k_levels(block_h, plane),
        "W_HALVES": _w_halves(block_h, plane),
        "BLOCK_B": config.block_b,
        "BLOCK_H": block_h,
    }


def complex_forward(
    pre,
    weight,
    h0,
    act_bias,
    nonlinearity: str,
    eps: float,
    *,
    lengths: torch.Tensor | None = None,
    config: Config | None = None,
):
    """outputs [T, B, H] (contiguous, pre.dtype) and h_n [B, H] (pre.dtype) of the complex recurrence
    z_t = pre_t + h_{t-1} @ weight^T, h_t = f(z_t); f = identity or modReLU
    z * relu(|z| + act_bias) / (|z| + eps) (act_bias real [H]).

    lengths: None, or an integer tensor [B] on pre's device: row b is updated at steps
    t < lengths[b] only; after that its state is kept (h_n is the state after its last step) and
    its outputs are 0."""
    run, outputs, h_n = _forward_launch(pre, weight, h0, act_bias, nonlinearity, eps, lengths)
    if run is None:
        return outputs, h_n
    if config is None:
        T, B, H = pre.shape
        config = _choose_config("dense_complex_fwd", pre, H, B, run, lengths is not None)
    _check_config(config)
    run(config)
    return outputs, h_n


def _forward_launch(pre, weight, h0, act_bias, nonlinearity: str, eps: float, lengths=None):
    """(run, outputs, h_n): run(config) launches the forward kernel into outputs/h_n and returns what
    the launch returns; run is None when there is nothing to compute (h_n is then set)."""
    code = _nonlinearity_code(nonlinearity)
    if pre.dim() != 3:
        raise ValueError(f"pre must be [T, B, H], got shape {tuple(pre.shape)}")
    T, B, H = pre.shape
    _check_dtype(pre.dtype, "pre")
    if weight.shape != (H, H) or weight.dtype != pre.dtype or weight.device != pre.device:
        raise ValueError(
            f"weight must be [{H}, {H}] {pre.dtype} on {pre.device}, got {tuple(weight.shape)} "
            f"{weight.dtype} on {weight.device}"
        )
    if h0 is not None and h0.shape != (B, H):
        raise ValueError(f"h0 must be [{B}, {H}], got {tuple(h0.shape)}")
    if code == NONLINEARITIES["modrelu"] and (
        act_bias is None or act_bias.shape != (H,) or act_bias.is_complex()
    ):
        raise ValueError(f"modrelu needs a real act_bias of shape [{H}]")
    check_lengths(lengths, B, pre.device)

    outputs = torch.empty((T, B, H), dtype=pre.dtype, device=pre.device)
    h_n = torch.empty((B, H), dtype=pre.dtype, device=pre.device)
    if T == 0 or B == 0 or H == 0:
        h_n.copy_(h0 if h0 is not None else torch.zeros_like(h_n))
        return None, outputs, h_n

    plane = _plane_dtype(pre.dtype)
    dummy = torch.empty(1, dtype=plane, device=pre.device)
    pre_p, w_p, out_p, hn_p = _planes(pre), _planes(weight), _planes(outputs), _planes(h_n)
    h0_p = _planes(h0.to(pre.dtype)) if h0 is not None else None
    h0_arg = h0_p if h0_p is not None else dummy
    h0_strides = h0_p.stride()[:2] if h0_p is not None else (0, 0)
    bias_arg = act_bias.to(plane).contiguous() if code == NONLINEARITIES["modrelu"] else dummy
    lengths_ptr = lengths_arg(lengths, pre.device)

    def run(cfg: Config):
        return dense_complex_fwd_kernel[(triton.cdiv(B, cfg.block_b),)](
            pre_p, w_p, h0_arg, bias_arg, out_p, hn_p, lengths_ptr,
            T, B, H, float(eps),
            *pre_p.stride()[:3],
            *w_p.stride()[:2],
            *h0_strides,
            *out_p.stride()[:3],
            *hn_p.stride()[:2],
            ACTIVATION=code,
            HAS_H0=h0 is not None,
            HAS_LENGTHS=lengths is not None,
            STATE_FP64=plane == torch.float64,
            **_plane_constexprs(H, pre.dtype, cfg),
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
        )  # fmt: skip

    return run, outputs, h_n


def complex_backward(
    grad_out,
    grad_hn,
    z,
    weight,
    act_bias,
    nonlinearity: str,
    eps: float,
    *,
    lengths: torch.Tensor | None = None,
    config: Config | None = None,
):
    """dz [T, B, H] = dL/dz_t and dh0 [B, H] = dL/dh_0 (contiguous, grad_out's dtype, which z and
    weight share), in PyTorch's complex gradient convention, from the pre-activations z [T, B, H]
    (read for modrelu only). grad_hn may be None (zeros). See backward.py.

    lengths: as in complex_forward. grad_out and z at a row's steps t >= lengths[b] are not read
    and dz there is 0; grad_hn is the gradient of the row's final state (after its last step)."""
    run, dz, dh0 = _backward_launch(grad_out, grad_hn, z, weight, act_bias, nonlinearity, eps, lengths)
    if run is None:
        return dz, dh0
    if config is None:
        T, B, H = grad_out.shape
        config = _choose_config("dense_complex_bwd", grad_out, H, B, run, lengths is not None)
    _check_config(config)
    run(config)
    return dz, dh0


def _backward_launch(grad_out, grad_hn, z, weight, act_bias, nonlinearity: str, eps: float, lengths=None):
    """(run, dz, dh0) as _forward_launch, for the backward kernel."""
    code = _nonlinearity_code(nonlinearity)
    if grad_out.dim() != 3:
        raise ValueError(f"grad_out must be [T, B, H], got shape {tuple(grad_out.shape)}")
    T, B, H = grad_out.shape
    dtype, device = grad_out.dtype, grad_out.device
    _check_dtype(dtype, "grad_out")
    if z.shape != grad_out.shape or z.dtype != dtype:
        raise ValueError(f"z must be [{T}, {B}, {H}] {dtype}, got {tuple(z.shape)} {z.dtype}")
    if grad_hn is not None and (grad_hn.shape != (B, H) or not grad_hn.is_complex()):
        raise ValueError(f"grad_hn must be complex [{B}, {H}], got {tuple(grad_hn.shape)} {grad_hn.dtype}")
    if weight.shape != (H, H) or weight.dtype != dtype or weight.device != device:
        raise ValueError(
            f"weight must be [{H}, {H}] {dtype} on {device}, got {tuple(weight.shape)} "
            f"{weight.dtype} on {weight.device}"
        )
    if code == NONLINEARITIES["modrelu"] and (
        act_bias is None or act_bias.shape != (H,) or act_bias.is_complex()
    ):
        raise ValueError(f"modrelu needs a real act_bias of shape [{H}]")
    check_lengths(lengths, B, device)

    dz = torch.empty((T, B, H), dtype=dtype, device=device)
    dh0 = torch.empty((B, H), dtype=dtype, device=device)
    if T == 0 or B == 0 or H == 0:
        dh0.copy_(grad_hn if grad_hn is not None else torch.zeros_like(dh0))
        return None, dz, dh0

    plane = _plane_dtype(dtype)
    go_p, z_p, w_p, dz_p, dh0_p = _planes(grad_out), _planes(z), _planes(weight), _planes(dz), _planes(dh0)
    ghn_p = _planes(grad_hn) if grad_hn is not None else None
    ghn_arg = ghn_p if ghn_p is not None else dz_p
    ghn_strides = ghn_p.stride()[:2] if ghn_p is not None else (0, 0)
    bias_arg = act_bias.to(plane).contiguous() if code == NONLINEARITIES["modrelu"] else dz_p
    lengths_ptr = lengths_arg(lengths, device)

    def run(cfg: Config):
        return dense_complex_bwd_kernel[(triton.cdiv(B, cfg.block_b),)](
            go_p, ghn_arg, z_p, w_p, bias_arg, dz_p, dh0_p, lengths_ptr,
            T, B, H, float(eps),
            *go_p.stride()[:3],
            *ghn_strides,
            *z_p.stride()[:3],
            *w_p.stride()[:2],
            *dz_p.stride()[:3],
            *dh0_p.stride()[:2],
            ACTIVATION=code,
            HAS_GRAD_HN=grad_hn is not None,
            HAS_LENGTHS=lengths is not None,
            **_plane_constexprs(H, dtype, cfg),
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
        )  # fmt: skip

    return run, dz, dh0


def benchmark_runs(hidden_size: int, batch: int, dtype: torch.dtype, device, seq_len: int = 256) -> dict:
    """{kernel name: run(config)} on random inputs of one shape, for `trit-rnn autotune` to time
    every config: each run launches one kernel and returns what the launch returns."""
    device = torch.device(device)
    shape = (seq_len, batch, hidden_size)
    pre = torch.randn(shape, device=device, dtype=dtype)
    # A unitary W keeps the recurrence bounded over seq_len steps.
    weight = torch.linalg.qr(torch.randn(hidden_size, hidden_size, device=device, dtype=dtype))[0]
    act_bias = torch.full((hidden_size,), -0.1, device=device, dtype=_plane_dtype(dtype))
    run_fwd, _, _ = _forward_launch(pre, weight, None, act_bias, "modrelu", 1e-5)
    grad_out = torch.randn(shape, device=device, dtype=dtype)
    run_bwd, _, _ = _backward_launch(grad_out, None, pre, weight, act_bias, "modrelu", 1e-5)
    return {"dense_complex_fwd": run_fwd, "dense_complex_bwd": run_bwd}


def compile_specs(
    hidden_size: int,
    dtype: torch.dtype,
    config: Config,
    *,
    nonlinearity: str = "modrelu",
    lengths: bool = False,
):
    """One CompileSpec per kernel ("dense_complex_fwd", "dense_complex_bwd") for
    triton.compile(ASTSource(...)): h0 and grad_hn given, every size and stride a 32-bit integer
    (the kernels widen to int64 themselves), eps fp64 (its annotation). lengths: the
    variable-length variant (HAS_LENGTHS, int32 lengths); meta["lengths"] says which."""
    code = _nonlinearity_code(nonlinearity)
    _check_dtype(dtype, "dtype")
    ptr = "*" + _TRITON_TYPES[dtype]
    constexprs = _plane_constexprs(hidden_size, dtype, config)
    meta = {
        "hidden_size": hidden_size,
        "dtype": str(dtype).replace("torch.", ""),
        "nonlinearity": nonlinearity,
        "config": config.label(),
        "BLOCK_H": constexprs["BLOCK_H"],
        "lengths": bool(lengths),
    }

    def strides(*names):
        return {f"stride_{name}": "i32" for name in names}

    fwd_signature = {
        "pre_ptr": ptr, "w_ptr": ptr, "h0_ptr": ptr, "act_bias_ptr": ptr, "out_ptr": ptr, "hn_ptr": ptr,
        "lengths_ptr": "*i32",
        "T": "i32", "B": "i32", "H": "i32", "eps": "fp64",
        **strides("pre_t", "pre_b", "pre_h", "w_row", "w_col", "h0_b", "h0_h",
                  "out_t", "out_b", "out_h", "hn_b", "hn_h"),
    }  # fmt: skip
    bwd_signature = {
        "grad_out_ptr": ptr, "grad_hn_ptr": ptr, "z_ptr": ptr, "w_ptr": ptr, "act_bias_ptr": ptr,
        "dz_ptr": ptr, "dh0_ptr": ptr, "lengths_ptr": "*i32",
        "T": "i32", "B": "i32", "H": "i32", "eps": "fp64",
        **strides("go_t", "go_b", "go_h", "ghn_b", "ghn_h", "z_t", "z_b", "z_h",
                  "w_row", "w_col", "dz_t", "dz_b", "dz_h", "dh0_b", "dh0_h"),
    }  # fmt: skip
    fwd_constexprs = {
        "ACTIVATION": code,
        "HAS_H0": True,
        "HAS_LENGTHS": bool(lengths),
        "STATE_FP64": dtype == torch.complex128,
        **constexprs,
    }
    bwd_constexprs = {"ACTIVATION": code, "HAS_GRAD_HN": True, "HAS_LENGTHS": bool(lengths), **constexprs}
    return [
        CompileSpec("dense_complex_fwd", dense_complex_fwd_kernel, fwd_signature, fwd_constexprs,
                    config.num_warps, config.num_stages, dict(meta)),
        CompileSpec("dense_complex_bwd", dense_complex_bwd_kernel, bwd_signature, bwd_constexprs,
                    config.num_warps, config.num_stages, dict(meta)),
    ]  # fmt: skip
