"""The torch backend's compiled CPU time loops (csrc/time_loops.cpp, with the skew exp map's
divided differences, csrc/divided_differences.cpp), built on first use.

Why: the Python loops of torch_gated.py and torch_complex.py spend most of each step in PyTorch's
per-op dispatch, not in arithmetic (a gated step is a dozen ops of a few microseconds each). The
C++ loops run the same equations with one GEMM (torch's mm) and one fused pass per step.

They are an accelerator, never a requirement: `loops()` returns the module, or None where it
cannot be built (no C++ compiler or ninja, a failing build), and the Python loops run instead,
with the reason logged once; TRIT_RNN_COMPILED_LOOPS=0 asks for them. The build (about 15 s) is cached
where torch.utils.cpp_extension keeps its builds ($TORCH_EXTENSIONS_DIR, else
~/.cache/torch_extensions), named by the hash of the source and flags, the torch version and the
CPU's vector capability, so it happens once per machine and torch install.
"""

from __future__ import annotations

import hashlib
import logging
import os
from functools import cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

_SOURCES = [Path(__file__).parent / "csrc" / name for name in ("time_loops.cpp", "divided_differences.cpp")]

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
    # no errno from sqrt: what lets the complex loops' square roots vectorise
    flags = ["-O3", "-fno-math-errno", *_CAPABILITY_FLAGS[capability]]
    text = b"".join(source.read_bytes() for source in _SOURCES) + " ".join(flags).encode()
    digest = hashlib.sha256(text).hexdigest()[:12]
    version = torch.__version__.replace(".", "_").replace("+", "_")
    name = f"trit_rnn_time_loops_{capability.lower()}_{version}_{digest}"
    try:
        from torch.utils.cpp_extension import load

        load(
            name=name,
            sources=[str(source) for source in _SOURCES],
            extra_cflags=flags,
            is_python_module=False,  # TORCH_LIBRARY ops: torch.ops.trit_rnn_cpu
            verbose=False,
        )
        return torch.ops.trit_rnn_cpu
    except Exception as error:  # any build failure means the Python loops, which always work
        log.warning("trit_rnn: compiled CPU loops unavailable (%s: %s); using the Python loops",
                    type(error).__name__, error)  # fmt: skip
        return None
