"""The torch backend's compiled CPU time loops (csrc/time_loops.cpp, with the skew exp map's
forward and backward, csrc/skew_exp.cpp, and the loops' packed AVX2 GEMM, csrc/step_gemm.cpp),
built on first use.

Why: the Python loops of torch_gated.py and torch_complex.py spend most of each step in PyTorch's
per-op dispatch, not in arithmetic (a gated step is a dozen ops of a few microseconds each). The
C++ loops run the same equations with one GEMM (MKL's or step_gemm.cpp's, whichever is faster
at the shape) and one fused pass per step.

They are an accelerator, never a requirement: `loops()` returns the module, or None where it
cannot be built (no C++ compiler or ninja, a failing build), and the Python loops run instead,
with the reason logged once; TRIT_RNN_COMPILED_LOOPS=0 asks for them. The build (about 15 s) is cached
where torch.utils.cpp_extension keeps its builds ($TORCH_EXTENSIONS_DIR, else
~/.cache/torch_extensions), named by the hash of the source and flags, the torch version and the
CPU's vector capability, so it happens once per machine and torch install.

The module is built with OpenMP (-fopenmp): without it ATen's parallel_for, which its headers
define inline, compiles to a serial loop and every pass runs on one thread. It also keeps the
big [T, ...] buffers of the loops and the input projection for reuse (csrc/workspace.cpp,
`workspace_empty`): a fresh buffer of tens of MB costs its page faults at first touch, 30-50 ms
for 97 MB on a 2-core VM against 7-10 ms for a warm one. At most TRIT_RNN_CPU_WORKSPACE_MB
(default 2048) of idle buffers are kept; `release_workspace()` frees them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from functools import cache
from pathlib import Path

import torch

from ..nonlinearity import Nonlinearity

log = logging.getLogger(__name__)

_CSRC = Path(__file__).parent / "csrc"
_SOURCES = [
    _CSRC / name
    for name in ("time_loops.cpp", "skew_exp.cpp", "step_gemm.cpp", "narrow_grad.cpp", "workspace.cpp")
]
_HEADERS = [_CSRC / "step_gemm.h"]  # not compiled on their own, but part of the build's hash

# the `kind` argument of the loops' activations (csrc/time_loops.cpp's Candidate)
ACTIVATION_CODES = {
    Nonlinearity.TANH: 0,
    Nonlinearity.RELU: 1,
    Nonlinearity.IDENTITY: 2,
    Nonlinearity.MODRELU: 3,
}

# torch's CPU capability -> the compiler flags and the macro that select ATen's Vectorized<T> width
_CAPABILITY_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mfma", "-DCPU_CAPABILITY_AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2"],
    "DEFAULT": [],
}


def enabled() -> bool:
    """False when TRIT_RNN_COMPILED_LOOPS=0 asks for the Python loops."""
    value = os.environ.get("TRIT_RNN_COMPILED_LOOPS", "1")
    if value not in ("0", "1"):
        raise ValueError(f"TRIT_RNN_COMPILED_LOOPS must be 0 or 1; got {value!r}")
    return value == "1"


def applies(*tensors: torch.Tensor | None) -> bool:
    """Whether the compiled loops serve these tensors: CPU tensors, not traced by torch.compile
    (whose fake tensors have no data), enabled, and the module built."""
    return (
        all(t is None or t.device.type == "cpu" for t in tensors)
        and not torch.compiler.is_compiling()
        and enabled()
        and loops() is not None
    )


def _capability() -> str:
    capability = torch.backends.cpu.get_cpu_capability()
    return capability if capability in _CAPABILITY_FLAGS else "DEFAULT"


@cache
def loops():
    """The compiled module, or None (the reason logged) where it cannot be built here; built once
    per process (TRIT_RNN_COMPILED_LOOPS is read by `applies`, at every call)."""
    capability = _capability()
    # no errno from sqrt: what lets the complex loops' square roots vectorise; -fopenmp: without it
    # at::parallel_for (an inline OpenMP region in ATen's headers) runs serially
    flags = ["-O3", "-fno-math-errno", "-fopenmp", *_CAPABILITY_FLAGS[capability]]
    text = b"".join(source.read_bytes() for source in _SOURCES + _HEADERS) + " ".join(flags).encode()
    digest = hashlib.sha256(text).hexdigest()[:12]
    version = torch.__version__.replace(".", "_").replace("+", "_")
    name = f"trit_rnn_time_loops_{capability.lower()}_{version}_{digest}"
    try:
        from torch.utils.cpp_extension import load

        load(
            name=name,
            sources=[str(source) for source in _SOURCES],
            extra_cflags=flags,
            extra_ldflags=["-fopenmp"],  # libgomp: the one torch has loaded already
            is_python_module=False,  # TORCH_LIBRARY ops: torch.ops.trit_rnn_cpu
            verbose=False,
        )
        torch.ops.trit_rnn_cpu.set_workspace_limit(workspace_limit_bytes())
        return torch.ops.trit_rnn_cpu
    except Exception as error:  # any build failure means the Python loops, which always work
        log.warning("trit_rnn: compiled CPU loops unavailable (%s: %s); using the Python loops",
                    type(error).__name__, error)  # fmt: skip
        return None


def workspace_limit_bytes() -> int:
    """TRIT_RNN_CPU_WORKSPACE_MB (default 2048): how many MB of idle buffers the compiled loops keep
    for the next call (csrc/workspace.cpp); 0 keeps none."""
    value = os.environ.get("TRIT_RNN_CPU_WORKSPACE_MB", "2048")
    if not value.isdigit():
        raise ValueError(f"TRIT_RNN_CPU_WORKSPACE_MB must be a whole number of MB; got {value!r}")
    return int(value) << 20


def workspace_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor, from the compiled loops' reused buffers where they are built
    (a fresh buffer of tens of MB costs its page faults at first touch), else torch.empty."""
    ops = loops() if enabled() else None
    if ops is None:
        return torch.empty(shape, dtype=dtype)
    return ops.workspace_empty(list(shape), dtype)


def contiguous_in_workspace(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """t in dtype and contiguous: t itself where it already is, else a copy into one of the reused
    buffers. Why: the gradient autograd hands a recurrence is often an expanded or strided view
    (that of outputs.sum(), of a slice), and a fresh [T, B, H] copy pays its page faults each step."""
    if t.device.type != "cpu" or (t.dtype == dtype and t.is_contiguous()):
        return t.to(dtype).contiguous()
    return workspace_empty(tuple(t.shape), dtype).copy_(t)


def release_workspace() -> int:
    """Frees the compiled loops' idle buffers; returns the bytes still held by live tensors."""
    ops = loops()
    if ops is None:
        return 0
    held = ops.set_workspace_limit(0)
    ops.set_workspace_limit(workspace_limit_bytes())
    return held
