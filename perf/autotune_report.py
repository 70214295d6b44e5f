"""`trit-rnn autotune`: what the autotune helper decides for one cell, hidden size, batch and dtype.

On any machine, for each kernel of the cell's family and each candidate config: whether the static
budget for the target (shared limit from kernels/aot.py TARGETS) prunes it and why, its ptxas
resources compiled for the target without a GPU, the GPU time model (perf/gpu_model.py, an
estimate), and the config autotune would choose: on a GPU, every surviving config is timed with
triton.testing.do_bench and the fastest is written to the autotune cache; without one, the model's
best among the survivors is shown, labelled as such, beside any cached entry for the key.

The pruning and timing are kernels/autotune.py's (`prune`, `prune_spilling`, `tune`): the same code
the launchers run. The GPU (name, shared limit, kernel launches, do_bench) is a `Gpu` value so
that tests can hand in a fake one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from trit_rnn.kernels import aot, autotune
from trit_rnn.kernels.specs import Config

from trit_rnn import registry

from . import gpu_model

DEFAULT_SEQ_LEN = 256


@dataclass(frozen=True)
class Gpu:
    """The GPU the command times on: its name (the cache key's device), its shared-memory limit,
    runs(launch module, hidden, batch, dtype, seq_len) -> {kernel: run(config)}, and do_bench
    (fn -> milliseconds)."""

    name: str
    shared_limit: int
    runs: Callable[..., dict]
    do_bench: Callable[[Callable[[], object]], float]


def _cuda_query() -> tuple[str, int]:
    """The current CUDA device's name and shared limit: what the launchers key and budget with."""
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return torch.cuda.get_device_name(index), props.shared_memory_per_block_optin


def device_runs(launch, hidden, batch, dtype, seq_len, device="cuda") -> dict:
    """{kernel: run(config)} of the family's launch module on `device` (Gpu.runs)."""
    return launch.benchmark_runs(hidden, batch, dtype, device, seq_len)


def _do_bench(fn) -> float:
    import triton.testing

    return triton.testing.do_bench(fn)


def detect_gpu(
    is_available: Callable[[], bool] = torch.cuda.is_available,
    interpreter: bool | None = None,
    query: Callable[[], tuple[str, int]] = _cuda_query,
) -> Gpu | None:
    """The CUDA GPU to time on, or None (no GPU, or kernels running under the Triton interpreter)."""
    interpreter = autotune.interpreter_active() if interpreter is None else interpreter
    if interpreter or not is_available():
        return None
    name, shared_limit = query()
    return Gpu(name, shared_limit, device_runs, _do_bench)


def compile_for_target(target, hidden, dtype, configs, family) -> list[dict]:
    """AOT records of the given configs (kernels/aot.py, in a subprocess without the interpreter)."""
    if not configs:
        return []
    return aot.collect_in_subprocess(target, [hidden], [dtype], configs=configs, families=[family])


@dataclass
class Candidate:
    config: Config
    budget_fits: bool
    budget_reason: str
    status: str  # "survivor", "timed", or why it was pruned
    record: dict | None = None
    model_us: float | None = None
    gpu_ms: float | None = None


@dataclass
class KernelReport:
    kernel: str
    signature: str
    key: tuple
    candidates: list[Candidate]
    choice: Config | None
    choice_source: str
    cached: dict[str, Config] = field(default_factory=dict)


@dataclass
class AutotuneReport:
    cell: str
    family: str
    hidden_size: int
    batch: int
    dtype: str
    target: str
    shared_limit: int
    gpu: str | None
    seq_len: int
    cache_path: str
    kernels: list[KernelReport]

    def to_json(self) -> dict:
        return {
            "cell": self.cell,
            "family": self.family,
            "hidden_size": self.hidden_size,
            "batch": self.batch,
            "dtype": self.dtype,
            "target": self.target,
            "target_shared_limit": self.shared_limit,
            "gpu": self.gpu,
            "seq_len": self.seq_len if self.gpu else None,
            "model": gpu_model.LABEL,
            "cache_path": self.cache_path,
            "kernels": [
                {
                    "kernel": k.kernel,
                    "signature": k.signature,
                    "key": list(k.key),
                    "choice": k.choice.label() if k.choice else None,
                    "choice_source": k.choice_source,
                    "cached": {device: c.label() for device, c in k.cached.items()},
                    "candidates": [
                        {
                            "config": c.config.label(),
                            "budget_fits": c.budget_fits,
                            "budget_reason": c.budget_reason,
                            "status": c.status,
                            "registers": (c.record or {}).get("registers"),
                            "spill_bytes": (c.record or {}).get("spill_bytes"),
                            "shared_bytes": (c.record or {}).get("shared_bytes"),
                            "model_us_per_step": c.model_us,
                            "gpu_ms": c.gpu_ms,
                        }
                        for c in k.candidates
                    ],
                }
                for k in self.kernels
            ],
        }


def resolve_family(cell: str):
    """(family name, launch module) of a registered cell; ValueError naming the cell otherwise."""
    spec = registry.get(cell)
    if spec.kernel_family is None:
        what = "a peer" if spec.is_peer else "a cell without a persistent kernel"
        raise ValueError(
            f"cell {cell!r} ({spec.description}) is {what}: it has no Triton kernel family to autotune; "
            f"cells with one: {', '.join(n for n in registry.names() if registry.get(n).kernel_family)}"
        )
    modules = dict(aot.families())
    if spec.kernel_family not in modules:
        raise ValueError(f"cell {cell!r}: kernel family {spec.kernel_family!r} has no launch module")
    return spec.kernel_family, aot.import_family_module(modules[spec.kernel_family])


class _StaticSpills:
    """An AOT record seen as a launch result: prune_spilling reads `n_spills`."""

    def __init__(self, record: dict | None):
        self.n_spills = (record or {}).get("spill_bytes", 0) or 0


def _static_pass(launch, kernel, configs, records, hidden, batch, dtype, target_limit):
    """Candidates as the target would see them: static budget, then ptxas spills (the rule the GPU
    path applies to launched kernels), then any other ptxas misfit; the model for each compiled one."""
    budget = launch.budget(hidden, dtype, target_limit)
    report = autotune.prune(configs, batch, budget, interpreter=False)
    mine = {
        Config(r["block_b"], r["num_warps"], r["num_stages"]): r for r in records if r.get("kernel") == kernel
    }
    autotune.prune_spilling(lambda c: _StaticSpills(mine.get(c)), report)
    for config in list(report.survivors):
        record = mine.get(config)
        if record is not None and not record.get("fits"):
            problems = "; ".join(record.get("problems", [])) or record.get("error", "does not fit")
            report.pruned.append((config, f"ptxas: {problems}"))
            report.survivors.remove(config)
    pruned = dict(report.pruned)
    candidates = []
    for config in configs:
        fits, reason = budget(config)
        record = mine.get(config)
        candidates.append(
            Candidate(
                config,
                fits,
                reason,
                pruned.get(config, "survivor"),
                record,
                gpu_model.step_microseconds(record, batch) if record else None,
            )
        )
    return candidates


def autotune_cell(
    cell: str,
    hidden: int,
    *,
    batch: int = 16,
    dtype: str = "float32",
    target: str = "sm_90",
    configs: list[Config] | None = None,
    gpu: Gpu | None = None,
    compile_records: Callable[..., list[dict]] = compile_for_target,
    cache: autotune.AutotuneCache | None = None,
    seq_len: int = DEFAULT_SEQ_LEN,
) -> AutotuneReport:
    """The report for one cell (see the module docstring). gpu: None runs the static/model path
    only; pass detect_gpu() to time on the GPU this process sees."""
    family, launch = resolve_family(cell)
    torch_dtype = aot.dtype_from_name(dtype)
    dtype = aot.dtype_name(torch_dtype)
    target_limit = aot.TARGETS[target][1]
    configs = list(configs) if configs is not None else list(launch.candidate_configs())
    cache = cache if cache is not None else autotune.default_cache()
    key = launch.autotune_key(hidden, batch, torch_dtype)

    statically_alive = autotune.prune(
        configs, batch, launch.budget(hidden, torch_dtype, target_limit), interpreter=False
    ).survivors
    records = compile_records(target, hidden, dtype, statically_alive, family)
    runs = gpu.runs(launch, hidden, batch, torch_dtype, seq_len) if gpu else {}

    kernels = []
    for kernel, jit_fn in launch.KERNELS.items():
        signature = autotune.kernel_signature(jit_fn)
        candidates = _static_pass(launch, kernel, configs, records, hidden, batch, torch_dtype, target_limit)
        if gpu is not None:
            result = autotune.tune(
                kernel,
                key,
                configs,
                launch.budget(hidden, torch_dtype, gpu.shared_limit),
                runs[kernel],
                batch=batch,
                signature=signature,
                device_label=gpu.name,
                cache=cache,
                interpreter=False,
                timer=functools.partial(autotune.time_config, bench=gpu.do_bench),
                time_lone_survivor=True,
            )
            gpu_pruned = dict(result.report.pruned)
            for c in candidates:
                if c.config in result.seconds:
                    c.gpu_ms = result.seconds[c.config] * 1e3
                    c.status = "timed"
                else:
                    c.status = gpu_pruned.get(c.config, c.status)
            choice = result.best
            source = f"fastest by triton.testing.do_bench on {gpu.name}; written to the cache"
        else:
            modelled = [c for c in candidates if c.status == "survivor" and c.model_us is not None]
            best = min(modelled, key=lambda c: c.model_us) if modelled else None
            choice = best.config if best else None
            # The model ignores num_stages and warps beyond 4: equal estimates are a tie, not a ranking.
            tied = [
                c.config.label()
                for c in modelled
                if best and c is not best and c.model_us <= best.model_us * 1.001
            ]
            source = (
                f"the model's best among survivors ({gpu_model.LABEL}"
                + (f"; tied with {', '.join(tied)}" if tied else "")
                + "); no GPU here: nothing timed, nothing written to the cache"
            )
        kernels.append(
            KernelReport(
                kernel, signature, key, candidates, choice, source, cache.devices_with(kernel, key, signature)
            )
        )
    return AutotuneReport(
        cell, family, hidden, batch, dtype, target, target_limit,
        gpu.name if gpu else None, seq_len, str(cache.path), kernels,
    )  # fmt: skip


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return lines


def format_report(report: AutotuneReport) -> str:
    lines = [
        f"autotune: cell {report.cell} -> kernel family {report.family}; "
        f"H={report.hidden_size}, B={report.batch}, {report.dtype}",
        f"static budget and ptxas resources: {report.target} (shared limit {report.shared_limit // 1024} KiB), "
        "compiled without a GPU",
        f"model: {gpu_model.LABEL} (perf/gpu_model.py)",
        (
            f"GPU: {report.gpu}: every survivor timed with triton.testing.do_bench (T={report.seq_len})"
            if report.gpu
            else "GPU: none (or the Triton interpreter is on): nothing is timed"
        ),
        f"cache: {report.cache_path}",
    ]
    header = ["config", "budget", "regs", "spill B", "smem KiB", gpu_model.column_header(report.batch)]
    if report.gpu:
        header += ["GPU ms", "GPU us/step"]
    header.append("status")
    for k in report.kernels:
        rows = []
        for c in k.candidates:
            r = c.record or {}
            row = [
                c.config.label(),
                "fits" if c.budget_fits else "over",
                str(r.get("registers", "-")),
                str(r.get("spill_bytes", "-")),
                f"{r['shared_bytes'] / 1024:.1f}" if "shared_bytes" in r else "-",
                gpu_model.format_us(c.model_us),
            ]
            if report.gpu:
                row += [
                    "-" if c.gpu_ms is None else f"{c.gpu_ms:.4f}",
                    "-" if c.gpu_ms is None else f"{c.gpu_ms * 1e3 / report.seq_len:.2f}",
                ]
            row.append(c.status)
            rows.append(row)
        lines += ["", f"{k.kernel} (source {k.signature}, key {' '.join(k.key)})", *_table(header, rows)]
        choice = k.choice.label() if k.choice else "none (no modelled survivor)"
        lines.append(f"choice: {choice}: {k.choice_source}")
        if k.cached:
            lines += [f"cached on {device}: {config.label()}" for device, config in k.cached.items()]
        else:
            lines.append("cached: no entry for this key")
    return "\n".join(lines)
