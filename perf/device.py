"""What the harness runs on: the device type and name, and the knobs that differ between a CPU and
a GPU (synchronisation, peak-memory counters). The harness takes a DeviceInfo instead of querying
torch.cuda itself, so tests can hand it a GPU description on a CPU-only machine."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class DeviceInfo:
    type: str  # "cpu" or "cuda"
    name: str
    threads: int

    @property
    def is_gpu(self) -> bool:
        return self.type == "cuda"

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.type)


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def detect(device: str | None = None) -> DeviceInfo:
    """The device to benchmark: `device` ("cpu", "cuda"), else a GPU when torch sees one."""
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda'; got {device!r}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' was requested but torch sees no CUDA device")
        return DeviceInfo("cuda", torch.cuda.get_device_name(), torch.get_num_threads())
    return DeviceInfo("cpu", _cpu_name(), torch.get_num_threads())
