"""The registry of cells: one lower-case word per cell, shared by the command line, the benchmark
harness and the training command.

Every entry builds an nn.Module that maps input [T, B, I] (time-major) to (output [T, B, F],
state); `F` is `output_features(hidden_size)`. Entries are either this library's cells
(`kind="ours"`, one entry per cell, its backends named in `backends`) or the peers a user would
pick instead (`kind="peer"`: torch.nn's RNNs, a naive Python loop, and optional external
libraries that are used only when installed).

    spec = registry.get("orthogonal")
    model = spec.build(input_size, hidden_size, backend="torch", device="cpu", dtype=torch.float32)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

CPU_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
GPU_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class CellSpec:
    """One registered cell.

    build(input_size, hidden_size, *, backend, device, dtype) -> nn.Module.
    backends: the backend names this entry can run; `backend_devices` restricts some of them to
        device types (e.g. {"triton": ("cuda",)}: the Triton interpreter is a test tool, not a
        backend anyone times).
    requires: importable modules an optional peer needs; the entry is unavailable without them.
    kernel_family: the persistent-kernel family (kernels/<family>/launch.py) the cell runs on.
    options: extra keyword arguments build accepts (e.g. "checkpoint_every").
    """

    name: str
    description: str
    kind: str
    build: Callable[..., nn.Module]
    backends: tuple[str, ...]
    backend_devices: dict = field(default_factory=dict)
    dtypes: dict = field(default_factory=lambda: {"cpu": CPU_DTYPES, "cuda": GPU_DTYPES})
    requires: tuple[str, ...] = ()
    kernel_family: str | None = None
    options: tuple[str, ...] = ()
    output_features: Callable[[int], int] = lambda hidden_size: hidden_size

    @property
    def is_peer(self) -> bool:
        return self.kind == "peer"

    def missing_requirements(self) -> list[str]:
        return [module for module in self.requires if importlib.util.find_spec(module) is None]

    def availability(self, backend: str, device: torch.device | str, dtype: torch.dtype) -> tuple[bool, str]:
        """(runnable, reason) for this entry with backend on device in dtype."""
        device_type = torch.device(device).type
        missing = self.missing_requirements()
        if missing:
            return False, f"{self.name}: not installed ({', '.join(missing)})"
        if backend not in self.backends:
            return False, f"{self.name}: no backend {backend!r} (has {', '.join(self.backends)})"
        allowed = self.backend_devices.get(backend)
        if allowed is not None and device_type not in allowed:
            return False, f"{self.name}/{backend}: runs on {', '.join(allowed)} only"
        if dtype not in self.dtypes.get(device_type, ()):
            return False, f"{self.name}: {dtype} is not supported on {device_type}"
        return True, "ok"


_REGISTRY: dict[str, CellSpec] = {}


def register(spec: CellSpec) -> CellSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"cell {spec.name!r} is registered twice")
    if spec.kind not in ("ours", "peer"):
        raise ValueError(f"kind must be 'ours' or 'peer'; got {spec.kind!r}")
    _REGISTRY[spec.name] = spec
    return spec


def names(kind: str | None = None) -> list[str]:
    """Registered names in registration order (this library's cells first), optionally of one kind."""
    return [name for name, spec in _REGISTRY.items() if kind is None or spec.kind == kind]


def get(name: str) -> CellSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; registered cells: {', '.join(_REGISTRY)}") from None


def parse_names(text: str) -> list[str]:
    """'orthogonal,torch_rnn' -> ['orthogonal', 'torch_rnn'], each checked; 'all' -> every name."""
    if text.strip() == "all":
        return names()
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    if not chosen:
        raise ValueError(f"expected one or more cell names separated by commas; got {text!r}")
    for name in chosen:
        get(name)
    return chosen


# --------------------------------------------------------------------------------------------
# this library's cells


def _orthogonal(input_size, hidden_size, *, backend, device=None, dtype=None, **options):
    from .modules.orthogonal import OrthogonalRNN

    return OrthogonalRNN(input_size, hidden_size, backend=backend, device=device, dtype=dtype, **options)


OURS_BACKENDS = ("torch", "triton")
OURS_BACKEND_DEVICES = {"triton": ("cuda",)}

register(
    CellSpec(
        "orthogonal",
        "trit_rnn.OrthogonalRNN: exp-map orthogonal W, modReLU",
        "ours",
        _orthogonal,
        OURS_BACKENDS,
        OURS_BACKEND_DEVICES,
        kernel_family="dense",
        options=("checkpoint_every",),
    )
)


def _unitary(class_name):
    def build(input_size, hidden_size, *, backend, device=None, dtype=None, **options):
        from . import modules

        cls = getattr(modules, class_name)
        return cls(input_size, hidden_size, backend=backend, device=device, dtype=dtype, **options)

    return build


# Complex states are complex64 / complex128: float32 and float64 parameters only.
UNITARY_DTYPES = {"cpu": (torch.float32, torch.float64), "cuda": (torch.float32, torch.float64)}

for _name, _class_name, _description in (
    ("urnn", "URNN", "trit_rnn.URNN: uRNN product D3 R2 F^-1 D2 Pi R1 F D1, complex modReLU"),
    (
        "fullcap_urnn",
        "FullCapacityURNN",
        "trit_rnn.FullCapacityURNN: free unitary W (Cayley step), complex modReLU",
    ),
    ("eunn", "EUNN", "trit_rnn.EUNN: tunable EUNN (capacity 2), complex modReLU"),
    ("kru", "KRU", "trit_rnn.KRU: Kronecker product of 2x2 complex factors, complex modReLU"),
):
    register(
        CellSpec(
            _name,
            _description,
            "ours",
            _unitary(_class_name),
            OURS_BACKENDS,
            OURS_BACKEND_DEVICES,
            dtypes=UNITARY_DTYPES,
            kernel_family="dense_complex",
            options=("checkpoint_every",),
            output_features=lambda hidden_size: 2 * hidden_size,
        )
    )


def _module(class_name, **fixed):
    def build(input_size, hidden_size, *, backend, device=None, dtype=None, **options):
        from . import modules

        cls = getattr(modules, class_name)
        return cls(input_size, hidden_size, backend=backend, device=device, dtype=dtype, **fixed, **options)

    return build


for _name, _class_name, _family, _description in (
    ("gru", "GRU", "gated", "trit_rnn.GRU: drop-in torch.nn.GRU on the fused gated recurrence"),
    ("lstm", "LSTM", "gated", "trit_rnn.LSTM: drop-in torch.nn.LSTM on the fused gated recurrence"),
    (
        "goru",
        "GORU",
        "gated",
        "trit_rnn.GORU: GRU with an orthogonal (FFT-style EUNN) candidate path, modReLU",
    ),
    (
        "deep_transition",
        "DeepTransitionRNN",
        "deep",
        "trit_rnn.DeepTransitionRNN: DT(S)-RNN, a 2-layer tanh transition with the shortcut",
    ),
):
    register(
        CellSpec(
            _name,
            _description,
            "ours",
            _module(_class_name),
            OURS_BACKENDS,
            OURS_BACKEND_DEVICES,
            kernel_family=_family,
        )
    )


# --------------------------------------------------------------------------------------------
# peers: what a user would pick instead


def _torch_module(cls, **fixed):
    def build(input_size, hidden_size, *, backend, device=None, dtype=None):
        return cls(input_size, hidden_size, device=device, dtype=dtype, **fixed)

    return build


def _naive_loop(input_size, hidden_size, *, backend, device=None, dtype=None):
    from .peers.naive import NaiveOrthogonalRNN

    return NaiveOrthogonalRNN(
        input_size, hidden_size, compile_step=backend == "compile", device=device, dtype=dtype
    )


# cuDNN has no bfloat16 RNNs before cuDNN 9.13; the CPU's fused RNNs run float32/float64/bfloat16.
_TORCH_RNN_DTYPES = {"cpu": CPU_DTYPES, "cuda": (torch.float32, torch.float16)}

register(
    CellSpec(
        "torch_rnn",
        "torch.nn.RNN(tanh) (cuDNN on a GPU)",
        "peer",
        _torch_module(nn.RNN, nonlinearity="tanh"),
        ("torch",),
        dtypes=_TORCH_RNN_DTYPES,
    )
)
register(
    CellSpec(
        "torch_gru",
        "torch.nn.GRU (cuDNN on a GPU)",
        "peer",
        _torch_module(nn.GRU),
        ("torch",),
        dtypes=_TORCH_RNN_DTYPES,
    )
)
register(
    CellSpec(
        "torch_lstm",
        "torch.nn.LSTM (cuDNN on a GPU)",
        "peer",
        _torch_module(nn.LSTM),
        ("torch",),
        dtypes=_TORCH_RNN_DTYPES,
    )
)
register(
    CellSpec(
        "naive_loop",
        "Python loop over steps, exp-map orthogonal W, autograd through every step",
        "peer",
        _naive_loop,
        ("eager", "compile"),
        {"compile": ("cuda",)},
        # matrix_exp has no bfloat16/float16 kernel.
        dtypes={"cpu": (torch.float32, torch.float64), "cuda": (torch.float32,)},
    )
)


# --------------------------------------------------------------------------------------------
# optional external peers: registered always, available only when their library is installed
# (pip install 'trit-rnn[peers]'); each builder imports its library lazily.


def _geotorch_exprnn(input_size, hidden_size, *, backend, device=None, dtype=None):
    from .peers.geotorch_exprnn import GeotorchExpRNN

    return GeotorchExpRNN(input_size, hidden_size, device=device, dtype=dtype)


def _flashrnn(function):
    def build(input_size, hidden_size, *, backend, device=None, dtype=None):
        from .peers.flashrnn_cells import FlashRNN

        return FlashRNN(
            input_size, hidden_size, function=function, backend=backend, device=device, dtype=dtype
        )

    return build


def _torch_eunn(input_size, hidden_size, *, backend, device=None, dtype=None):
    from .peers.torch_eunn_rnn import TorchEUNNRNN

    return TorchEUNNRNN(input_size, hidden_size, device=device, dtype=dtype)


register(
    CellSpec(
        "geotorch_exprnn",
        "geotorch expRNN: nn.Linear W made orthogonal by geotorch.orthogonal(triv='expm'), modReLU, Python loop",
        "peer",
        _geotorch_exprnn,
        ("eager",),
        # geotorch samples its initial W through QR (geqrf), which has no 16-bit kernel.
        dtypes={"cpu": (torch.float32, torch.float64), "cuda": (torch.float32,)},
        requires=("geotorch",),
    )
)
register(
    CellSpec(
        "flashrnn_elman",
        "flashrnn Elman (tanh) cell, one head; its PyTorch backend (its Triton backend has no Elman cell)",
        "peer",
        _flashrnn("elman"),
        ("vanilla",),
        requires=("flashrnn",),
    )
)
register(
    CellSpec(
        "flashrnn_lstm",
        "flashrnn LSTM, one head; its PyTorch backend or its fused Triton kernel (CUDA only)",
        "peer",
        _flashrnn("lstm"),
        ("vanilla", "triton_fused"),
        {"triton_fused": ("cuda",)},
        requires=("flashrnn",),
    )
)
register(
    CellSpec(
        "torch_eunn",
        "torch-eunn EURNN: tunable EUNN layer (capacity 2) on a complex state, complex modReLU, Python loop",
        "peer",
        _torch_eunn,
        ("eager",),
        requires=("torch_eunn",),
    )
)
