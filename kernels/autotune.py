"""The one autotune helper every launcher (and `trit-rnn autotune`) uses.

    choose(kernel, key, configs, budget, run, batch=B, signature=S, device=...) -> Config
    tune(kernel, key, configs, budget, run, batch=B, signature=S, device_label=...) -> TuneResult

1. prune: configs whose estimated on-chip footprint does not fit (the launcher's budget function),
   and configs whose BLOCK_B exceeds what the batch needs (next_pow2(B), at least 16), are dropped
   before anything is timed; under the interpreter num_warps/num_stages are ignored, so only one
   config per distinct BLOCK_B is kept; on a GPU, configs whose registers spill are dropped too;
2. time the survivors (time.perf_counter under the interpreter, triton.testing.do_bench on a GPU),
   unless only one survives;
3. cache the choice in memory and in a JSON file. The file lives in $TRIT_RNN_CACHE_DIR, else
   the platform's user cache directory (`user_cache_dir`: $XDG_CACHE_HOME/trit_rnn or
   ~/.cache/trit_rnn on Linux, ~/Library/Caches/trit_rnn on macOS, %LOCALAPPDATA%\\trit_rnn\\Cache
   on Windows). An entry's key holds the device name, the triton version, the kernel name, the
   kernel's signature (`kernel_signature`: a hash of its source) and the launcher's key.
   Robustness: a write goes to a temporary file in the same directory, then os.replace, so a
   reader (another process) sees the old file or the new one, never a partial one; writers merge
   under an advisory lock (fcntl, POSIX) so that concurrent writers keep each other's entries; a
   corrupt or truncated file (or one with wrong fields) gives a RuntimeWarning (warnings.warn)
   and is rebuilt by the next write; a cache that cannot be written (read-only directory) gives a
   RuntimeWarning and the choices stay in memory: the cache never fails a launch.

`choose` returns a cached choice when there is one and calls `tune` otherwise; the command line
calls `tune` directly to re-time every survivor. Under torch.use_deterministic_algorithms(True)
`choose` times nothing and ignores the cache: the config is the first candidate that survives
pruning, a function of the shape, dtype and device only (timings vary from run to run, and a
different tile may round differently). `prune`, `prune_spilling` and `cache_path` are public so
that the command line can show the decisions and the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import triton

from .specs import Config

try:
    import fcntl
except ImportError:  # Windows: no advisory lock; writes stay atomic (os.replace)
    fcntl = None

CACHE_FILE_NAME = "autotune.json"
LOCK_FILE_NAME = "autotune.json.lock"
APP_NAME = "trit_rnn"
CACHE_DIR_ENV = "TRIT_RNN_CACHE_DIR"
MIN_BLOCK_B = 16  # the smallest M of a tl.dot
SIGNATURE_LENGTH = 12
Budget = Callable[[Config], tuple[bool, str]]
Timer = Callable[[Callable[[Config], object], Config, bool], float]


def next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def interpreter_active() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def user_cache_dir(
    platform: str | None = None, environ: Mapping[str, str] | None = None, home: Path | None = None
) -> Path:
    """The platform's per-user cache directory for this library (platformdirs' convention, without
    the dependency): %LOCALAPPDATA%\\trit_rnn\\Cache on Windows, ~/Library/Caches/trit_rnn on
    macOS, else $XDG_CACHE_HOME/trit_rnn (an absolute XDG_CACHE_HOME only, as the XDG spec says)
    or ~/.cache/trit_rnn. platform, environ and home default to sys.platform, os.environ and
    Path.home() (arguments for tests)."""
    platform = sys.platform if platform is None else platform
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else Path(home)
    if platform.startswith("win"):
        local = environ.get("LOCALAPPDATA")
        base = Path(local) if local else home / "AppData" / "Local"
        return base / APP_NAME / "Cache"
    if platform == "darwin":
        return home / "Library" / "Caches" / APP_NAME
    xdg = environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".cache"
    return base / APP_NAME


def cache_dir() -> Path:
    """$TRIT_RNN_CACHE_DIR when set, else user_cache_dir()."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit)
    return user_cache_dir()


def cache_path() -> Path:
    return cache_dir() / CACHE_FILE_NAME


def device_name(device: torch.device | str | None, interpreter: bool | None = None) -> str:
    device = torch.device(device) if device is not None else torch.device("cpu")
    interpreter = interpreter_active() if interpreter is None else interpreter
    if interpreter or device.type != "cuda":
        return "triton-interpreter-cpu"
    return torch.cuda.get_device_name(device)


# --------------------------------------------------------------------------------------------
# kernel signature


def _python_function(obj):
    """The Python function behind a @triton.jit object (JITFunction and the interpreter's
    InterpretedFunction both keep it in `.fn`), else None."""
    fn = getattr(obj, "fn", None)
    return fn if inspect.isfunction(fn) else None


def _collect_sources(obj, sources: dict[str, str]) -> None:
    fn = _python_function(obj)
    name = f"{fn.__module__}.{fn.__qualname__}"
    if name in sources:
        return
    sources[name] = inspect.getsource(fn)
    for ref in fn.__code__.co_names:
        value = fn.__globals__.get(ref)
        if _python_function(value) is not None:
            _collect_sources(value, sources)


_signatures: dict[int, tuple[object, str]] = {}


def kernel_signature(kernel) -> str:
    """A short hash of a @triton.jit kernel's source and of every @triton.jit function it calls by
    name (recursively), so that editing the kernel or one of its helpers invalidates cached choices.

    Not triton's `JITFunction.cache_key`: the interpreter's kernels have none, and it hashes line
    numbers too. This one is the same in every process and in both modes."""
    entry = _signatures.get(id(kernel))
    if entry is None or entry[0] is not kernel:
        if _python_function(kernel) is None:
            raise TypeError(f"{kernel!r} is not a @triton.jit function")
        sources: dict[str, str] = {}
        _collect_sources(kernel, sources)
        digest = hashlib.sha256()
        for name in sorted(sources):
            digest.update(f"{name}\n{sources[name]}\n".encode())
        entry = (kernel, digest.hexdigest()[:SIGNATURE_LENGTH])
        _signatures[id(kernel)] = entry
    return entry[1]


# --------------------------------------------------------------------------------------------
# pruning


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


def spilled_bytes(compiled) -> int:
    """Register spill bytes of a launched kernel (the CompiledKernel a Triton launch returns on a
    GPU); 0 when unknown."""
    return int(getattr(compiled, "n_spills", 0) or 0)


def prune_spilling(run: Callable[[Config], object], report: PruneReport) -> None:
    """On a GPU, compile (launch) every survivor once and drop those whose registers spill, as long
    as one that does not spill is left: the static budget is an estimate, ptxas is the truth.
    `run(config)` returns anything with an `n_spills` attribute (a CompiledKernel, or an AOT
    record's spill count)."""
    spills = {config: spilled_bytes(run(config)) for config in report.survivors}
    clean = [config for config in report.survivors if spills[config] == 0]
    if clean and len(clean) < len(report.survivors):
        for config in report.survivors:
            if spills[config]:
                report.pruned.append((config, f"register spills: {spills[config]} bytes"))
        report.survivors = clean


# --------------------------------------------------------------------------------------------
# the cache


def _full_key(kernel: str, key: tuple, device: str, signature: str) -> str:
    return json.dumps(
        [device, f"triton={triton.__version__}", kernel, f"src={signature}", [str(k) for k in key]]
    )


_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(Config))


def _check_entry(value) -> None:
    """Raises ValueError unless value is the fields of a Config: positive ints, block_b required."""
    if not isinstance(value, dict):
        raise ValueError(f"an entry is {type(value).__name__}, not an object")
    unknown = set(value) - set(_CONFIG_FIELDS)
    if unknown or "block_b" not in value:
        raise ValueError(f"an entry has fields {sorted(value)}, expected {list(_CONFIG_FIELDS)}")
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ValueError(f"an entry's {name} is {number!r}, not a positive int")


@contextlib.contextmanager
def _writer_lock(directory: Path):
    """An exclusive advisory lock on directory/LOCK_FILE_NAME (POSIX), held while a writer reads,
    merges and replaces the cache file; nothing on platforms without fcntl."""
    if fcntl is None:
        yield
        return
    with open(directory / LOCK_FILE_NAME, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class AutotuneCache:
    """Chosen configs in memory, backed by one JSON file {full key: Config fields}."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else cache_path()
        self._entries: dict[str, dict] | None = None
        self._lock = threading.Lock()
        self._warned_unwritable = False

    def _read_disk(self, warn: bool = True) -> dict[str, dict]:
        """The file's entries; {} when it is missing, and (with a RuntimeWarning when warn) when it
        cannot be read or is corrupt: not UTF-8, not JSON, truncated, or not an object of Config
        fields."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:  # not a directory, a directory, no permission: run without it
            if warn:
                warnings.warn(
                    f"trit_rnn autotune cache {self.path} cannot be read ({exc}); choices are made afresh",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return {}
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"the top level is {type(data).__name__}, not an object")
            for value in data.values():
                _check_entry(value)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
            if warn:
                warnings.warn(
                    f"trit_rnn autotune cache {self.path} is corrupt ({str(exc)[:200]}); it will be rebuilt",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return {}
        return data

    def _loaded(self) -> dict[str, dict]:
        if self._entries is None:
            self._entries = self._read_disk()
        return self._entries

    def get(self, kernel: str, key: tuple, device: str, signature: str) -> Config | None:
        with self._lock:
            value = self._loaded().get(_full_key(kernel, key, device, signature))
        return Config(**value) if value is not None else None

    def devices_with(self, kernel: str, key: tuple, signature: str) -> dict[str, Config]:
        """{device name: cached config} for this kernel, key and signature on every device."""
        with self._lock:
            entries = dict(self._loaded())
        found = {}
        for full, value in entries.items():
            try:
                device = json.loads(full)[0]
            except (ValueError, IndexError, TypeError):
                continue
            if isinstance(device, str) and full == _full_key(kernel, key, device, signature):
                found[device] = Config(**value)
        return found

    def put(self, kernel: str, key: tuple, device: str, signature: str, config: Config) -> None:
        """Records the choice in memory and on disk. A failed write (e.g. a read-only cache
        directory) warns once and keeps the choice in memory."""
        with self._lock:
            entries = self._loaded()
            entries[_full_key(kernel, key, device, signature)] = asdict(config)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with _writer_lock(self.path.parent):
                    # Merge what other processes wrote meanwhile; our entries win.
                    merged = {**self._read_disk(warn=False), **entries}
                    self._write(merged)
            except OSError as exc:
                if not self._warned_unwritable:
                    self._warned_unwritable = True
                    warnings.warn(
                        f"trit_rnn autotune cache {self.path} cannot be written ({exc}); choices "
                        f"are kept in memory for this process only (set {CACHE_DIR_ENV} to a "
                        f"writable directory)",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                return
            self._entries = merged

    def _write(self, entries: dict[str, dict]) -> None:
        """Atomic: the JSON goes to a temporary file in the cache's directory, which then replaces
        the cache file (os.replace), so no reader ever sees a partial file."""
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".autotune-", suffix=".json.tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entries, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


_caches: dict[Path, AutotuneCache] = {}


def default_cache() -> AutotuneCache:
    """The process-wide cache for the current cache_path() (re-resolved so the env var is honoured)."""
    path = cache_path()
    if path not in _caches:
        _caches[path] = AutotuneCache(path)
    return _caches[path]


# --------------------------------------------------------------------------------------------
# timing and choosing


def time_config(
    run: Callable[[Config], object],
    config: Config,
    interpreter: bool,
    reps: int = 3,
    bench: Callable[[Callable[[], object]], float] | None = None,
) -> float:
    """Seconds per run: a CPU timer under the interpreter, do_bench (ms -> s) on a GPU. `bench`
    replaces triton.testing.do_bench (tests)."""
    if not interpreter:
        bench = bench if bench is not None else triton.testing.do_bench
        return bench(lambda: run(config)) * 1e-3
    run(config)  # warm-up: first call traces and caches the interpreted kernel
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        run(config)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


@dataclass
class TuneResult:
    """What `tune` decided: the pruning, the seconds of every config it timed, and the choice."""

    best: Config
    report: PruneReport
    seconds: dict[Config, float] = field(default_factory=dict)


def tune(
    kernel: str,
    key: tuple,
    configs: list[Config],
    budget: Budget,
    run: Callable[[Config], object],
    *,
    batch: int,
    signature: str,
    device_label: str,
    cache: AutotuneCache,
    interpreter: bool,
    timer: Timer = time_config,
    time_lone_survivor: bool = False,
) -> TuneResult:
    """Prune, time the survivors, cache and return the fastest (ignoring any cached entry).
    `run(config)` launches the kernel and returns what the launch returns (on a GPU, the compiled
    kernel, whose spill count prunes further); `timer` is injectable for tests. A lone survivor is
    not timed unless `time_lone_survivor`."""
    report = prune(configs, batch, budget, interpreter)
    if not report.survivors:
        reasons = "; ".join(f"{c.label()}: {r}" for c, r in report.pruned)
        raise RuntimeError(f"{kernel} {key}: no launch config fits ({reasons})")
    if not interpreter and len(report.survivors) > 1:
        prune_spilling(run, report)
    seconds = {}
    if len(report.survivors) > 1 or time_lone_survivor:
        seconds = {config: timer(run, config, interpreter) for config in report.survivors}
    best = min(seconds, key=seconds.__getitem__) if seconds else report.survivors[0]
    cache.put(kernel, key, device_label, signature, best)
    return TuneResult(best, report, seconds)


def choose(
    kernel: str,
    key: tuple,
    configs: list[Config],
    budget: Budget,
    run: Callable[[Config], object],
    *,
    batch: int,
    signature: str,
    device: torch.device | str | None = None,
    cache: AutotuneCache | None = None,
    interpreter: bool | None = None,
    timer: Timer = time_config,
) -> Config:
    """The best config for (kernel, key) on this device: cached, else `tune`d and cached. Under
    torch.use_deterministic_algorithms(True): `deterministic_choice` (no timing, no cache)."""
    if torch.are_deterministic_algorithms_enabled():
        return deterministic_choice(
            kernel, key, configs, budget, run, batch=batch, signature=signature, device=device,
            interpreter=interpreter,
        )  # fmt: skip
    cache = cache if cache is not None else default_cache()
    name = device_name(device, interpreter)
    cached = cache.get(kernel, key, name, signature)
    if cached is not None:
        return cached
    interpreter = interpreter_active() if interpreter is None else interpreter
    return tune(
        kernel,
        key,
        configs,
        budget,
        run,
        batch=batch,
        signature=signature,
        device_label=name,
        cache=cache,
        interpreter=interpreter,
        timer=timer,
    ).best


_deterministic_choices: dict[str, Config] = {}


def deterministic_choice(
    kernel: str,
    key: tuple,
    configs: list[Config],
    budget: Budget,
    run: Callable[[Config], object],
    *,
    batch: int,
    signature: str,
    device: torch.device | str | None = None,
    interpreter: bool | None = None,
) -> Config:
    """The config that deterministic mode launches: the first candidate (in the launcher's order)
    that fits the budget and the batch, and on a GPU does not spill when another survivor does not
    (ptxas's spill counts are a property of the compiled code, not of a timing). Nothing is timed
    and the on-disk cache is neither read nor written, so every run picks the same config for the
    same shape, dtype and device whatever the cache holds (the choice is remembered in memory so
    that the spill check compiles once per process)."""
    interpreter = interpreter_active() if interpreter is None else interpreter
    memo = _full_key(kernel, key, device_name(device, interpreter), signature)
    if memo in _deterministic_choices:
        return _deterministic_choices[memo]
    report = prune(configs, batch, budget, interpreter)
    if not report.survivors:
        reasons = "; ".join(f"{c.label()}: {r}" for c, r in report.pruned)
        raise RuntimeError(f"{kernel} {key}: no launch config fits ({reasons})")
    if not interpreter and len(report.survivors) > 1:
        prune_spilling(run, report)
    _deterministic_choices[memo] = report.survivors[0]
    return report.survivors[0]


def device_shared_limit(device, interpreted: bool) -> int | None:
    """The shared-memory limit a launch on device is budgeted against (None: no limit, the
    interpreter or a CPU tensor)."""
    device = torch.device(device)
    if interpreted or device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).shared_memory_per_block_optin


def choose_for_launch(
    kernel_name: str,
    kernel,
    key: tuple,
    configs: list[Config],
    budget_for_limit: Callable[[int | None], Budget],
    tensor: torch.Tensor,
    batch: int,
    run: Callable[[Config], object],
    interpreted: bool,
) -> Config:
    """choose() for one launch of a family's kernel on tensor's device: the family gives its
    candidates and its budget for a shared-memory limit; this finds the device's limit."""
    return choose(
        kernel_name,
        key,
        configs,
        budget_for_limit(device_shared_limit(tensor.device, interpreted)),
        run,
        batch=batch,
        signature=kernel_signature(kernel),
        device=tensor.device,
        interpreter=interpreted,
    )


def variant_name(kernel_name: str, ragged: bool) -> str:
    """The cache name of a launch: the kernel's, with "+lengths" for its variable-length variant
    (HAS_LENGTHS compiles to other registers and spills, so it is tuned on its own)."""
    return f"{kernel_name}+lengths" if ragged else kernel_name
