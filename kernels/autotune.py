"""The one autotune helper every launcher uses.

    choose(kernel, key, configs, budget, run, batch=B, device=...) -> Config

1. prune: configs whose estimated on-chip footprint does not fit (the launcher's budget function),
   and configs whose BLOCK_B exceeds what the batch needs (next_pow2(B), at least 16), are dropped
   before anything is timed; under the interpreter num_warps/num_stages are ignored, so only one
   config per distinct BLOCK_B is kept;
2. time the survivors (time.perf_counter under the interpreter, triton.testing.do_bench on a GPU),
   unless only one survives;
3. cache the choice in memory and in a JSON file (atomic writes; a corrupt file warns and is
   rebuilt). The file lives in $TRIT_RNN_CACHE_DIR, else $XDG_CACHE_HOME/trit_rnn, else
   ~/.cache/trit_rnn.

`prune` and `cache_path` are public so that the CLI can show the decisions and the file.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import triton

from .specs import Config

CACHE_FILE_NAME = "autotune.json"
MIN_BLOCK_B = 16  # the smallest M of a tl.dot
Budget = Callable[[Config], tuple[bool, str]]


def next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def interpreter_active() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def cache_dir() -> Path:
    explicit = os.environ.get("TRIT_RNN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "trit_rnn"


def cache_path() -> Path:
    return cache_dir() / CACHE_FILE_NAME


def device_name(device: torch.device | str | None, interpreter: bool | None = None) -> str:
    device = torch.device(device) if device is not None else torch.device("cpu")
    interpreter = interpreter_active() if interpreter is None else interpreter
    if interpreter or device.type != "cuda":
        return "triton-interpreter-cpu"
    return torch.cuda.get_device_name(device)


@dataclass
class PruneReport:
    """The outcome of pruning: the configs left to time, and each dropped config with its reason."""

    survivors: list[Config] = field(default_factory=list)
    pruned: list[tuple[Config, str]] = field(default_factory=list)


def prune(configs: list[Config], batch: int, budget: Budget, interpreter: bool | None = None) -> PruneReport:
    """Drop configs that cannot fit (budget), that are wider than the batch needs, and (under the
    interpreter) duplicates differing only in GPU scheduling knobs."""
    interpreter = interpreter_active() if interpreter is None else interpreter
    needed = max(MIN_BLOCK_B, next_pow2(batch))
    report = PruneReport()
    seen_block_b: dict[int, Config] = {}
    for config in configs:
        fits, reason = budget(config)
        if not fits:
            report.pruned.append((config, f"over budget: {reason}"))
        elif config.block_b > needed:
            report.pruned.append((config, f"BLOCK_B={config.block_b} > {needed} needed for B={batch}"))
        elif interpreter and config.block_b in seen_block_b:
            kept = seen_block_b[config.block_b].label()
            report.pruned.append((config, f"interpreter ignores num_warps/num_stages; same as {kept}"))
        else:
            seen_block_b[config.block_b] = config
            report.survivors.append(config)
    return report


def _full_key(kernel: str, key: tuple, device: str) -> str:
    return json.dumps([device, f"triton={triton.__version__}", kernel, [str(k) for k in key]])


class AutotuneCache:
    """Chosen configs in memory, backed by one JSON file {full key: Config fields}."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else cache_path()
        self._entries: dict[str, dict] | None = None
        self._lock = threading.Lock()

    def _read_disk(self, warn: bool = True) -> dict[str, dict]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise ValueError("not a JSON object of config objects")
            for value in data.values():
                Config(**value)
        except (ValueError, TypeError) as exc:
            if not warn:
                return {}
            warnings.warn(
                f"trit_rnn autotune cache {self.path} is corrupt ({exc}); it will be rebuilt",
                RuntimeWarning,
                stacklevel=3,
            )
            return {}
        return data

    def _loaded(self) -> dict[str, dict]:
        if self._entries is None:
            self._entries = self._read_disk()
        return self._entries

    def get(self, kernel: str, key: tuple, device: str) -> Config | None:
        with self._lock:
            value = self._loaded().get(_full_key(kernel, key, device))
        return Config(**value) if value is not None else None

    def put(self, kernel: str, key: tuple, device: str, config: Config) -> None:
        with self._lock:
            entries = self._loaded()
            entries[_full_key(kernel, key, device)] = asdict(config)
            # Merge what other processes wrote meanwhile; our entries win.
            merged = {**self._read_disk(warn=False), **entries}
            self._entries = merged
            self._write(merged)

    def _write(self, entries: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".autotune-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(entries, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise


_caches: dict[Path, AutotuneCache] = {}


def default_cache() -> AutotuneCache:
    """The process-wide cache for the current cache_path() (re-resolved so the env var is honoured)."""
    path = cache_path()
    if path not in _caches:
        _caches[path] = AutotuneCache(path)
    return _caches[path]


def time_config(run: Callable[[Config], object], config: Config, interpreter: bool, reps: int = 3) -> float:
    """Seconds per run: a CPU timer under the interpreter, do_bench (ms -> s) on a GPU."""
    if not interpreter:
        return triton.testing.do_bench(lambda: run(config)) * 1e-3
    run(config)  # warm-up: first call traces and caches the interpreted kernel
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        run(config)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def spilled_bytes(compiled) -> int:
    """Register spill bytes of a launched kernel (the CompiledKernel a Triton launch returns on a
    GPU); 0 when unknown."""
    return int(getattr(compiled, "n_spills", 0) or 0)


def prune_spilling(run: Callable[[Config], object], report: PruneReport) -> None:
    """On a GPU, compile (launch) every survivor once and drop those whose registers spill, as long
    as one that does not spill is left: the static budget is an estimate, ptxas is the truth."""
    spills = {config: spilled_bytes(run(config)) for config in report.survivors}
    clean = [config for config in report.survivors if spills[config] == 0]
    if clean and len(clean) < len(report.survivors):
        for config in report.survivors:
            if spills[config]:
                report.pruned.append((config, f"register spills: {spills[config]} bytes"))
        report.survivors = clean


def choose(
    kernel: str,
    key: tuple,
    configs: list[Config],
    budget: Budget,
    run: Callable[[Config], object],
    *,
    batch: int,
    device: torch.device | str | None = None,
    cache: AutotuneCache | None = None,
    interpreter: bool | None = None,
    timer: Callable[[Callable[[Config], object], Config, bool], float] = time_config,
) -> Config:
    """The best config for (kernel, key) on this device: cached, else pruned, timed and cached.
    `run(config)` launches the kernel and returns what the launch returns (on a GPU, the compiled
    kernel, whose spill count prunes further); `timer` is injectable for tests."""
    cache = cache if cache is not None else default_cache()
    name = device_name(device, interpreter)
    cached = cache.get(kernel, key, name)
    if cached is not None:
        return cached
    interpreter = interpreter_active() if interpreter is None else interpreter
    report = prune(configs, batch, budget, interpreter)
    if not report.survivors:
        reasons = "; ".join(f"{c.label()}: {r}" for c, r in report.pruned)
        raise RuntimeError(f"{kernel} {key}: no launch config fits ({reasons})")
    if not interpreter and len(report.survivors) > 1:
        prune_spilling(run, report)
    if len(report.survivors) == 1:
        best = report.survivors[0]
    else:
        best = min(report.survivors, key=lambda c: timer(run, c, interpreter))
    cache.put(kernel, key, name, best)
    return best
