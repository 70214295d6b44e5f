"""`trit-rnn profile`: long-sequence training of one cell, with and without gradient checkpointing.

For each sequence length T it reports the seconds per time step of one forward+backward (median of
interleaved rounds, divided by T), how much slower each checkpointed run is than the plain one (the
median of their ratios within a round, `x plain`) and the peak memory of the recurrence itself:
  - CPU: the bytes of the distinct storages autograd saves for the backward during the forward
    (trit_rnn.memory.saved_tensor_bytes); the input x counts, the model's outputs only when saved;
  - GPU: torch.cuda.max_memory_allocated during forward+backward, above what was allocated before.
Optionally it writes a torch.profiler trace of both runs at the longest T.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import registry
from ..memory import retain_freed_memory, saved_tensor_bytes
from .device import DeviceInfo
from .sweep import DTYPES, timer_for
from .timing import Timing


@dataclass
class ProfileSpec:
    cell: str
    hidden_size: int
    seq_lens: list[int]
    batch: int = 32
    input_size: int = 2
    backend: str | None = None  # None: the cell's first backend that runs (GPU-only ones first on a GPU)
    dtype: str = "float32"
    checkpoint_every: int | None = None  # None: ceil(sqrt(T)) per T
    rounds: int = 5
    adaptive_rounds: bool = True  # more rounds for short sequences (see rounds_for)
    # Time the recurrence op alone (functional.dense_rnn with the cell's matrix materialised once
    # and held as a leaf) instead of the whole module: what the backend costs per step, without
    # the per-forward O(H^3) parametrisation.
    recurrence_only: bool = False


def checkpoint_for(seq_len: int, checkpoint_every: int | None) -> int:
    """K = ceil(sqrt(T)) balances saved states (T/K) against one recomputed segment (K)."""
    return checkpoint_every or max(1, math.ceil(math.sqrt(seq_len)))


def rounds_for(seq_len: int, rounds: int) -> int:
    """More rounds for short sequences, whose calls are short and noisier."""
    return max(rounds, min(50, 3000 // seq_len))


def paired_ratio(variant: Timing, plain: Timing) -> float:
    """The median over rounds of variant / plain within the same round. The two ran back to back, so
    a machine that slows down for a while (the 2-core VM's speed drifts 1.3-2x within minutes)
    slows both runs of that round and leaves their ratio alone, where the ratio of two medians
    taken from different rounds moves with the drift."""
    return float(np.median([v / p for v, p in zip(variant.seconds, plain.seconds, strict=True)]))


def cpu_memory(model, x) -> int:
    return saved_tensor_bytes(lambda: model(x))


def cuda_memory(model, x, cuda=torch.cuda) -> int:
    """Peak bytes allocated by forward+backward beyond what was allocated before (`cuda` is the
    torch.cuda module, injectable in tests)."""
    model.zero_grad(set_to_none=True)
    cuda.synchronize()
    cuda.reset_peak_memory_stats()
    before = cuda.memory_allocated()
    out, _ = model(x)
    out.float().sum().backward()
    cuda.synchronize()
    return cuda.max_memory_allocated() - before


def _train_step(model, x) -> Callable[[], None]:
    def step():
        model.zero_grad(set_to_none=True)
        out, _ = model(x)
        out.float().sum().backward()

    return step


class RecurrenceOnly(torch.nn.Module):
    """Layer 0 of a dense-family module as the bare op: dense_rnn(x, W_ih, b_ih, W_hh, ...) with
    W_hh a copy of the module's recurrent matrix, trained as a plain leaf."""

    def __init__(self, model: torch.nn.Module, checkpoint_every: int | None):
        super().__init__()
        if not hasattr(model, "recurrent_matrix") or not hasattr(model, "weight_ih_l0"):
            raise ValueError(
                f"--recurrence-only needs a dense-family cell (recurrent_matrix(), weight_ih_l0); got {type(model).__name__}"
            )
        self.weight_ih = torch.nn.Parameter(model.weight_ih_l0.detach().clone())
        bias = getattr(model, "bias_ih_l0", None)
        self.bias_ih = torch.nn.Parameter(bias.detach().clone()) if bias is not None else None
        act_bias = getattr(model, "act_bias_l0", None)
        self.act_bias = torch.nn.Parameter(act_bias.detach().clone()) if act_bias is not None else None
        with torch.no_grad():
            self.weight_hh = torch.nn.Parameter(model.recurrent_matrix().to(self.weight_ih.dtype).clone())
        self.nonlinearity = model.nonlinearity
        self.backend = model.backend
        self.checkpoint_every = checkpoint_every

    def forward(self, x):
        from ..functional import dense_rnn

        return dense_rnn(x, self.weight_ih, self.bias_ih, self.weight_hh, nonlinearity=self.nonlinearity,
                         act_bias=self.act_bias, backend=self.backend, checkpoint_every=self.checkpoint_every)  # fmt: skip


def _backend(spec: registry.CellSpec, requested: str | None, device: DeviceInfo, dtype) -> str:
    """The requested backend, else the first that runs; on a GPU the GPU-only ones (triton) first."""
    candidates = [requested] if requested else list(spec.backends)
    if device.is_gpu:
        candidates.sort(key=lambda backend: backend not in spec.backend_devices)
    reasons = []
    for backend in candidates:
        ok, reason = spec.availability(backend, device.type, dtype)
        if ok:
            return backend
        reasons.append(reason)
    raise ValueError(f"cell {spec.name!r} cannot run on {device.type} in {dtype}: {'; '.join(reasons)}")


def run_profile(
    spec: ProfileSpec,
    device: DeviceInfo,
    *,
    timer=None,
    memory: Callable | None = None,
    trace: Path | str | None = None,
) -> list[dict]:
    retain_freed_memory()  # see its docstring: fresh pages per step would swamp long sequences
    cell = registry.get(spec.cell)
    dtype = DTYPES[spec.dtype]
    backend = _backend(cell, spec.backend, device, dtype)
    checkpointing = "checkpoint_every" in cell.options
    timer = timer or timer_for(device)
    memory = memory or (cuda_memory if device.is_gpu else cpu_memory)
    records = []
    for seq_len in spec.seq_lens:
        torch.manual_seed(0)
        factory = {"backend": backend, "device": device.torch_device, "dtype": dtype}
        plain = cell.build(spec.input_size, spec.hidden_size, **factory)
        variants = {False: plain}
        if checkpointing:
            k = checkpoint_for(seq_len, spec.checkpoint_every)
            variants[k] = cell.build(spec.input_size, spec.hidden_size, checkpoint_every=k, **factory)
            variants[k].load_state_dict(plain.state_dict())
        if spec.recurrence_only:
            variants = {k: RecurrenceOnly(plain, k or None) for k in variants}
        x = torch.randn(seq_len, spec.batch, spec.input_size, device=device.torch_device, dtype=dtype)
        # T=1 runs in the same rounds: its time is the fixed cost every sequence pays whatever its
        # length (materialising the recurrent matrix and its backward, launch and GEMM set-up).
        contestants = {}
        for k, m in variants.items():
            contestants[str(k)] = _train_step(m, x)
            contestants[f"{k}@T=1"] = _train_step(m, x[:1])
        rounds = rounds_for(seq_len, spec.rounds) if spec.adaptive_rounds else spec.rounds
        timings = timer(contestants, rounds=rounds)
        for k, model in variants.items():
            timing = timings[str(k)]
            fixed = timings[f"{k}@T=1"].median
            records.append(
                {
                    "cell": spec.cell,
                    "backend": backend,
                    "device": device.type,
                    "device_name": device.name,
                    "dtype": spec.dtype,
                    "batch": spec.batch,
                    "hidden_size": spec.hidden_size,
                    "input_size": spec.input_size,
                    "seq_len": seq_len,
                    "checkpoint": k,
                    "peak_bytes": int(memory(model, x)),
                    "memory_kind": "max_allocated" if device.is_gpu else "saved_for_backward",
                    "seconds_per_step": timing.median / seq_len,
                    "seconds_per_step_p20": timing.p20 / seq_len,
                    "seconds_per_step_p80": timing.p80 / seq_len,
                    "fixed_seconds": fixed,
                    # (t(T) - t(1)) / (T - 1): the cost of one more step, flat in T unless
                    # something grows faster than linearly (a hidden O(T^2))
                    "seconds_per_step_marginal": (timing.median - fixed) / max(1, seq_len - 1),
                    "slowdown_vs_plain": paired_ratio(timing, timings["False"]),
                    "rounds": len(timing.seconds),
                    "scope": "recurrence op" if spec.recurrence_only else "module",
                }
            )
        if trace is not None and seq_len == max(spec.seq_lens):
            write_trace(variants, x, trace, device)
    return records


def write_trace(variants: dict, x: torch.Tensor, path: Path | str, device: DeviceInfo) -> Path:
    """A torch.profiler (Chrome/Perfetto) trace of one forward+backward of each variant."""
    from torch.profiler import ProfilerActivity, profile, record_function

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.is_gpu else [])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with profile(activities=activities) as prof:
        for k, model in variants.items():
            with record_function(f"checkpoint_every={k}" if k else "no checkpointing"):
                _train_step(model, x)()
    prof.export_chrome_trace(str(path))
    return path


def format_profile(records: list[dict]) -> str:
    lines = [f"{'T':>7} {'checkpoint':>10} {'peak memory':>14} {'us/step':>9} {'p20-p80':>15} "
             f"{'x plain':>8} {'T=1 ms':>9} {'marginal us/step':>17}"]  # fmt: skip
    for r in records:
        band = f"{r['seconds_per_step_p20'] * 1e6:.1f}-{r['seconds_per_step_p80'] * 1e6:.1f}"
        k = r["checkpoint"] if r["checkpoint"] else "no"
        fixed = f"{r['fixed_seconds'] * 1e3:.2f}"
        marginal = f"{r['seconds_per_step_marginal'] * 1e6:.1f}"
        lines.append(
            f"{r['seq_len']:>7} {k!s:>10} {r['peak_bytes'] / 2**20:>10.2f} MiB {r['seconds_per_step'] * 1e6:>9.1f}"
            f" {band:>15} {r['slowdown_vs_plain']:>8.2f} {fixed:>9} {marginal:>17}"
        )
    return "\n".join(lines)
