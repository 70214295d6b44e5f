"""Which backend runs an op: "torch" (PyTorch ops) or "triton" (the persistent kernels).

"auto" picks triton for CUDA tensors whose shape a kernel supports and torch otherwise; the
environment variable TRIT_RNN_BACKEND overrides "auto". An explicit "triton" that cannot run
(no triton installed, CPU tensors without the interpreter, a shape the kernel does not support)
falls back to torch with the reason logged as a warning.
"""

import importlib.util
import logging
import os

import torch

logger = logging.getLogger("trit_rnn")

BACKENDS = ("auto", "torch", "triton")
ENV_VAR = "TRIT_RNN_BACKEND"


def parse_backend(backend, argument: str = "backend") -> str:
    if backend not in BACKENDS:
        raise ValueError(f"{argument} must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    return backend


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def _triton_unavailable_reason(device: torch.device) -> str | None:
    if not triton_available():
        return "triton is not installed (pip install 'trit-rnn[triton]')"
    if device.type == "cpu" and not interpreter_enabled():
        return "CPU tensors run Triton kernels only under TRITON_INTERPRET=1"
    if device.type not in ("cpu", "cuda"):
        return f"no Triton kernels for device type {device.type!r}"
    return None


def resolve_backend(requested: str, device: torch.device, supports) -> tuple[str, str]:
    """Returns (backend, reason). `supports()` -> (bool, reason) asks the kernel family whether it
    handles this shape and dtype on this device; it is called only when triton is in question."""
    parse_backend(requested)
    if requested == "auto":
        override = os.environ.get(ENV_VAR, "").strip().lower()
        if override:
            parse_backend(override, argument=f"environment variable {ENV_VAR}")
            if override != "auto":
                requested = override
                reason = f"{ENV_VAR}={override}"
                if override == "torch":
                    return "torch", reason
    if requested == "torch":
        return "torch", "requested"
    unavailable = _triton_unavailable_reason(device)
    if requested == "auto" and device.type != "cuda":
        return "torch", f"auto: {device.type} tensors use the PyTorch backend"
    if unavailable is None:
        ok, why = supports()
        if ok:
            return "triton", "kernel supports this shape"
        unavailable = why
    return "torch", f"triton cannot run this call: {unavailable}"


def log_choice(op: str, requested: str, backend: str, reason: str) -> None:
    """Fallbacks from an explicit request are warnings; the rest is debug chatter."""
    if torch.compiler.is_compiling():
        return
    level = logging.WARNING if requested == "triton" and backend != "triton" else logging.DEBUG
    logger.log(level, "%s: backend %r -> %r (%s)", op, requested, backend, reason)
