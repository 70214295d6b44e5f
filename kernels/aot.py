"""Ahead-of-time compilation of the persistent kernels for GPU targets, on a machine without a GPU.

Every kernel family exposes, in its ``launch`` module,

    candidate_configs() -> list[Config]
    compile_specs(hidden_size, dtype, config) -> list[CompileSpec]
    SUPPORTED_DTYPES (optional): the storage dtypes it compiles for; others are skipped

and this module compiles each spec with ``triton.compile`` for sm_90 (H100) or sm_80 (A100) and
reports the static resource usage of the result: registers and spill bytes (from the ptxas
bundled with triton, and the cubin triton produced), shared memory (``metadata.shared``, what
triton checks against the device limit at launch), and the tensor-core instructions in the PTX.

Compilation fails inside a process where ``TRITON_INTERPRET=1`` (the test suite): use
``collect_in_subprocess``, which runs the command line below with the interpreter switched off:

    python -m trit_rnn.kernels.aot --target sm_90 [--hidden 64 128] [--dtype float32 bfloat16 complex64] [--json]

Numbers are static (what ptxas allocates), not timings, and belong to the pinned triton version.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import torch
import triton

from .specs import CompileSpec, Config

# target -> (compute capability, maximum shared memory per block in bytes with opt-in).
# NVIDIA CUDA C++ Programming Guide, "Technical Specifications per Compute Capability":
# 9.0: 227 KB per block; 8.0: 163 KB per block.
TARGETS = {
    "sm_90": (90, 232448),
    "sm_80": (80, 166912),
}
MAX_REGISTERS_PER_THREAD = 255
REGISTERS_PER_BLOCK = 65536  # 64 K 32-bit registers per block on sm_80 and sm_90

# family name -> launch module (relative to this package, or absolute).
_FAMILIES = [
    ("dense", ".dense.launch"),
    ("dense_complex", ".dense_complex.launch"),
    ("gated", ".gated.launch"),
    ("deep", ".deep.launch"),
]

_INTERPRET_MESSAGE = (
    "trit_rnn.kernels.aot: TRITON_INTERPRET is set in the environment; GPU compilation fails "
    "under the Triton interpreter. Run without it (env -u TRITON_INTERPRET ...), or call "
    "trit_rnn.kernels.aot.collect_in_subprocess(), which removes it."
)


# --------------------------------------------------------------------------------------------
# registry and small helpers


def families() -> list[tuple[str, str]]:
    """(family, module) pairs of the kernel families to compile. Module names that start with a
    dot are relative to this package (``trit_rnn.kernels``)."""
    return list(_FAMILIES)


def import_family_module(module: str):
    if module.startswith("."):
        return importlib.import_module(module, __package__)
    return importlib.import_module(module)


def interpreter_enabled(environ=None) -> bool:
    value = (os.environ if environ is None else environ).get("TRITON_INTERPRET", "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def _require_compiler():
    if interpreter_enabled():
        raise RuntimeError(_INTERPRET_MESSAGE)


def dtype_from_name(name) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    dt = getattr(torch, str(name).replace("torch.", ""), None)
    if not isinstance(dt, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dt


def dtype_name(dtype) -> str:
    return str(dtype_from_name(dtype)).replace("torch.", "")


def parse_config(text: str) -> Config:
    """'16,4,1' (or 16:4:1, or a Config label 'BLOCK_B=16,w4,s1') -> Config(16, 4, 1)."""
    nums = [int(n) for n in re.findall(r"\d+", text)]
    if not 1 <= len(nums) <= 3:
        raise ValueError(f"config {text!r}: expected BLOCK_B[,num_warps[,num_stages]]")
    return Config(*nums)


def _target(target: str) -> tuple[int, int]:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose from {sorted(TARGETS)}")
    return TARGETS[target]


# --------------------------------------------------------------------------------------------
# compiling one spec


def _ast_source(spec: CompileSpec):
    """ASTSource for a spec. The JIT of triton 3.7-3.9 lists every argument in the signature, the
    constexpr ones with the type "constexpr" (3.9 requires it; 3.7/3.8 accept it). If a version
    rejects that form, fall back to the non-constexpr arguments only."""
    from triton.compiler import ASTSource

    arg_names = list(spec.fn.arg_names)
    unknown = (set(spec.signature) | set(spec.constexprs)) - set(arg_names)
    if unknown:
        raise ValueError(f"{spec.name}: arguments {sorted(unknown)} are not parameters of {spec.fn.__name__}")
    missing = [n for n in arg_names if n not in spec.signature and n not in spec.constexprs]
    if missing:
        raise ValueError(f"{spec.name}: no type or constexpr value for {missing}")
    full = {n: ("constexpr" if n in spec.constexprs else spec.signature[n]) for n in arg_names}
    try:
        return ASTSource(fn=spec.fn, signature=full, constexprs=dict(spec.constexprs))
    except (TypeError, KeyError, ValueError):
        plain = {n: spec.signature[n] for n in arg_names if n in spec.signature}
        return ASTSource(fn=spec.fn, signature=plain, constexprs=dict(spec.constexprs))


def _nvidia_tool(name: str, capability: int) -> str:
    from triton.backends.nvidia import compiler as nv

    if name == "ptxas":
        try:
            tool = nv.get_ptxas(capability)
        except TypeError:  # a version without the arch argument
            tool = nv.get_ptxas()
    else:
        from triton import knobs

        tool = getattr(knobs.nvidia, name)
    return tool if isinstance(tool, str) else tool.path


def _gpu_name(capability: int) -> str:
    from triton.backends.nvidia import compiler as nv

    fn = getattr(nv, "sm_arch_from_capability", None)
    if fn is not None:
        return fn(capability)
    return f"sm_{capability}{'a' if capability >= 90 else ''}"


def _ptxas_flags() -> list[str]:
    """The ptxas flags triton itself passes that change register allocation."""
    from triton.backends.nvidia import compiler as nv

    try:
        src = inspect.getsource(nv.CUDABackend.make_cubin)
    except (OSError, TypeError, AttributeError):
        src = ""
    return ["--regAllocOptLevel=2"] if "regAllocOptLevel=2" in src else []


def _run_ptxas(ptx: str, capability: int) -> dict:
    """ptxas -v on the PTX triton generated: registers, spill stores/loads, stack frame."""
    with tempfile.TemporaryDirectory(prefix="trit_rnn_aot_") as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        cmd = [
            _nvidia_tool("ptxas", capability),
            "-lineinfo",
            "-v",
            *_ptxas_flags(),
            f"--gpu-name={_gpu_name(capability)}",
            src,
            "-o",
            os.path.join(tmp, "kernel.cubin"),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas -v failed ({proc.returncode}):\n{log}")
    regs = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    stack = re.search(r"(\d+) bytes stack frame", log)
    if regs is None or spills is None:
        raise RuntimeError(f"could not parse ptxas -v output:\n{log}")
    return {
        "registers": int(regs.group(1)),
        "spill_stores": int(spills.group(1)),
        "spill_loads": int(spills.group(2)),
        "stack_frame": int(stack.group(1)) if stack else 0,
        "log": log,
    }


def _cubin_resources(cubin: bytes, capability: int) -> dict | None:
    """cuobjdump --dump-resource-usage of the cubin triton produced (REG, STACK, SHARED, LOCAL)."""
    try:
        tool = _nvidia_tool("cuobjdump", capability)
    except Exception:
        return None
    with tempfile.TemporaryDirectory(prefix="trit_rnn_aot_") as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        proc = subprocess.run([tool, "--dump-resource-usage", path], capture_output=True, text=True)
    m = re.search(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)", proc.stdout)
    if proc.returncode != 0 or m is None:
        return None
    return {
        "registers": int(m.group(1)),
        "stack": int(m.group(2)),
        "static_shared": int(m.group(3)),
        "local": int(m.group(4)),
    }


def tensor_core_ops(ptx: str) -> dict:
    """Static count of tensor-core instructions in the PTX (unrolled code counts each copy)."""
    mma = len(re.findall(r"\bmma\.sync\.", ptx))
    wgmma = len(re.findall(r"\bwgmma\.mma_async\.", ptx))
    return {"mma_sync": mma, "wgmma": wgmma, "tensor_core_ops": mma + wgmma}


def fit_problems(record: dict) -> list[str]:
    """Why a compiled kernel does not fit its target (empty list: it fits). Uses the record's
    target, registers, spill_bytes, spill_loads, shared_bytes and num_warps."""
    if record.get("error"):
        return ["compile error"]
    _, shared_limit = _target(record["target"])
    problems = []
    spills = record.get("spill_bytes", 0) or 0
    spill_loads = record.get("spill_loads", 0) or 0
    if spills or spill_loads:
        problems.append(f"spills: {spills} B stored, {spill_loads} B loaded")
    shared = record["shared_bytes"]
    if shared > shared_limit:
        problems.append(f"shared {shared} B > {shared_limit} B limit by {shared - shared_limit} B")
    regs = record["registers"]
    if regs > MAX_REGISTERS_PER_THREAD:
        problems.append(f"registers {regs} > {MAX_REGISTERS_PER_THREAD}")
    threads = 32 * record.get("num_warps", 1)
    if regs * threads > REGISTERS_PER_BLOCK:
        problems.append(f"registers {regs} x {threads} threads > {REGISTERS_PER_BLOCK} per block")
    return problems


def compile_resources(spec: CompileSpec, target: str) -> dict:
    """Compile one spec for ``target`` ("sm_90" or "sm_80") and report its static resources.

    Returns registers, spill_bytes (ptxas spill stores), spill_loads, stack_frame, shared_bytes
    (dynamic shared memory, ``metadata.shared``), static_shared_bytes (from the cubin),
    shared_limit, tensor_core_ops / mma_sync / wgmma (PTX), fits, problems, compile_seconds.
    Raises on a compile error (``collect`` turns that into a record)."""
    _require_compiler()
    from triton.backends.compiler import GPUTarget

    capability, shared_limit = _target(target)
    src = _ast_source(spec)
    t0 = time.perf_counter()
    # triton prints the whole PTX to stdout when ptxas fails; keep stdout for the report.
    with contextlib.redirect_stdout(sys.stderr):
        compiled = triton.compile(
            src,
            target=GPUTarget("cuda", capability, 32),
            options={"num_warps": spec.num_warps, "num_stages": spec.num_stages},
        )
    compile_seconds = time.perf_counter() - t0
    ptx = compiled.asm["ptx"]
    ptxas = _run_ptxas(ptx, capability)
    cubin = _cubin_resources(compiled.asm["cubin"], capability)
    registers = cubin["registers"] if cubin else ptxas["registers"]
    record = {
        "kernel": spec.name,
        "target": target,
        "num_warps": spec.num_warps,
        "num_stages": spec.num_stages,
        "registers": registers,
        "spill_bytes": ptxas["spill_stores"],
        "spill_loads": ptxas["spill_loads"],
        "stack_frame": ptxas["stack_frame"],
        "shared_bytes": int(compiled.metadata.shared),
        "static_shared_bytes": cubin["static_shared"] if cubin else None,
        "shared_limit": shared_limit,
        **tensor_core_ops(ptx),
        "compile_seconds": round(compile_seconds, 3),
        "triton": triton.__version__,
    }
    if ptxas["registers"] != registers:  # our ptxas run disagrees with triton's cubin
        record["ptxas_registers"] = ptxas["registers"]
    record["problems"] = fit_problems(record)
    record["fits"] = not record["problems"]
    return record


# --------------------------------------------------------------------------------------------
# collecting over families, sizes, dtypes and configs


def _error_text(exc: BaseException, limit: int = 4000) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + " ...[truncated]"


def _per_kernel(fn, kernel: str | None) -> dict:
    """{"kernel": kernel} when a family's estimate function takes a `kernel` keyword (a family whose
    kernels differ in footprint, e.g. the gated one: 4 LSTM vs 3 GRU weight blocks), else {}.
    Without a kernel, such a function answers for the family's smallest kernel."""
    if kernel is None:
        return {}
    try:
        return {"kernel": kernel} if "kernel" in inspect.signature(fn).parameters else {}
    except (TypeError, ValueError):
        return {}


def _over_budget(
    module: str, target: str, dtype: str, hidden: int, config: Config, kernel: str | None = None
) -> str | None:
    """Why the family's static shared-memory estimate rules this config out on target (for one
    kernel of the family, where the family estimates per kernel), or None."""
    estimate = getattr(import_family_module(module), "estimate_shared_bytes", None)
    if estimate is None:
        return None
    needed = estimate(hidden, dtype_from_name(dtype), config, **_per_kernel(estimate, kernel))
    limit = TARGETS[target][1]
    if needed <= limit:
        return None
    return f"not compiled: static estimate of shared memory {needed} B > {limit} B limit"


def family_supports_dtype(module: str, dtype) -> bool:
    """Whether a family compiles for dtype: every dtype unless its launch module lists
    SUPPORTED_DTYPES (the dense family takes real dtypes, the complex one complex dtypes)."""
    supported = getattr(import_family_module(module), "SUPPORTED_DTYPES", None)
    return supported is None or dtype_from_name(dtype) in supported


LENGTHS_SUFFIX = "+lengths"


def family_specs(module: str, hidden: int, dtype, config: Config, lengths: bool = False) -> list:
    """The family's CompileSpecs for one config; lengths: the variable-length variants
    (HAS_LENGTHS, the family's compile_specs(lengths=True)), named kernel + LENGTHS_SUFFIX."""
    family = import_family_module(module)
    if not lengths:
        return family.compile_specs(hidden, dtype_from_name(dtype), config)
    specs = family.compile_specs(hidden, dtype_from_name(dtype), config, lengths=True)
    for spec in specs:
        spec.name += LENGTHS_SUFFIX
    return specs


def _base_kernel(name: str) -> str:
    """The family kernel a (possibly variable-length) spec name is a variant of."""
    return name.removesuffix(LENGTHS_SUFFIX)


def _compile_task(task: tuple) -> list[dict]:
    """One (family, module, target, dtype, H, config, skip_over_budget, lengths): every spec of that
    config. skip_over_budget: report a config whose static shared-memory estimate exceeds the
    target's limit as not fitting, without compiling it (such kernels take minutes to compile).
    lengths: the variable-length variants. Never raises."""
    family, module, target, dtype, hidden, config, skip_over_budget, lengths = task
    base = {
        "family": family,
        "target": target,
        "dtype": dtype_name(dtype),
        "hidden_size": hidden,
        "config": config.label(),
        "block_b": config.block_b,
        "num_warps": config.num_warps,
        "num_stages": config.num_stages,
    }
    try:
        specs = family_specs(module, hidden, dtype, config, lengths)
    except Exception as exc:
        return [
            {
                **base,
                "kernel": f"{family}:compile_specs",
                "fits": False,
                "error": _error_text(exc),
                "problems": ["compile error"],
            }
        ]
    estimate = getattr(import_family_module(module), "estimate_budget", None)
    records = []
    for spec in specs:
        spec_base = dict(base)
        if estimate is not None:
            try:
                ok, reason = estimate(
                    hidden,
                    dtype_from_name(dtype),
                    config,
                    TARGETS[target][1],
                    **_per_kernel(estimate, _base_kernel(spec.name)),
                )
                spec_base = {**base, "estimated_fit": bool(ok), "estimate": str(reason)}
            except Exception as exc:
                spec_base = {**base, "estimate": f"estimate_budget failed: {_error_text(exc, 300)}"}
        skipped = (
            _over_budget(module, target, dtype, hidden, config, _base_kernel(spec.name))
            if skip_over_budget
            else None
        )
        if skipped:
            meta = {"meta": dict(spec.meta)} if spec.meta else {}
            records.append(
                {
                    **spec_base,
                    "kernel": spec.name,
                    "registers": None,
                    "spill_bytes": None,
                    "shared_bytes": None,
                    "fits": False,
                    "skipped": skipped,
                    "problems": [skipped],
                    **meta,
                }
            )
            continue
        try:
            res = compile_resources(spec, target)
        except Exception as exc:
            res = {
                "kernel": spec.name,
                "num_warps": spec.num_warps,
                "num_stages": spec.num_stages,
                "fits": False,
                "error": _error_text(exc),
                "problems": ["compile error"],
            }
        if spec.meta:
            res["meta"] = dict(spec.meta)
        records.append({**spec_base, **res})
    return records


def collect(
    target: str,
    hidden_sizes,
    dtypes,
    configs=None,
    families=None,
    modules=None,
    jobs: int = 2,
    skip_over_budget: bool = False,
    lengths: bool = False,
) -> list[dict]:
    """Compile every kernel of the selected families for ``target`` at each hidden size, dtype and
    config (default: each family's ``candidate_configs()``); one record per compiled kernel.
    lengths: compile the variable-length variants instead (kernel names end in LENGTHS_SUFFIX).

    families: names from ``families()`` (None: all; []: none). modules: extra {family: module}
    (absolute module names with ``candidate_configs``/``compile_specs``, e.g. a test probe).
    jobs: worker processes (configs compile in parallel). A compile error becomes a record with
    fits False and an "error" field. skip_over_budget: see _compile_task (a "skipped" field)."""
    return collect_targets(
        [target], hidden_sizes, dtypes, configs, families, modules, jobs, skip_over_budget, lengths
    )


def collect_targets(
    targets,
    hidden_sizes,
    dtypes,
    configs=None,
    families=None,
    modules=None,
    jobs: int = 2,
    skip_over_budget: bool = False,
    lengths: bool = False,
) -> list[dict]:
    """``collect`` for several targets in one process pool (records ordered by target)."""
    _require_compiler()
    for target in targets:
        _target(target)
    if families is not None:
        unknown = set(families) - {f for f, _ in _FAMILIES}
        if unknown:
            raise ValueError(f"unknown kernel families {sorted(unknown)}; known: {[f for f, _ in _FAMILIES]}")
    selected = [(f, m) for f, m in _FAMILIES if families is None or f in families]
    selected += [(f, m) for f, m in (modules or {}).items()]
    tasks, records_before = [], []
    for family, module in selected:
        try:
            family_configs = (
                list(configs)
                if configs is not None
                else list(import_family_module(module).candidate_configs())
            )
        except Exception as exc:
            for target in targets:
                records_before.append(
                    {
                        "family": family,
                        "kernel": f"{family}:candidate_configs",
                        "target": target,
                        "fits": False,
                        "error": _error_text(exc),
                        "problems": ["compile error"],
                    }
                )
            continue
        for target in targets:
            for dtype in [d for d in dtypes if family_supports_dtype(module, d)]:
                for hidden in hidden_sizes:
                    for config in family_configs:
                        task = (
                            family,
                            module,
                            target,
                            dtype_name(dtype),
                            int(hidden),
                            config,
                            skip_over_budget,
                            lengths,
                        )
                        tasks.append(task)
    # Tasks that build identical kernels (hidden sizes with the same padded block) compile once in
    # the first pass; the second pass then finds them in triton's cache instead of compiling them
    # twice in parallel.
    seen, first, repeats = set(), [], []
    for index, task in enumerate(tasks):
        key = _compile_key(task)
        (repeats if key in seen else first).append(index)
        seen.add(key)
    results = {}
    for batch in (first, repeats):
        for index, records in zip(batch, _run_tasks([tasks[i] for i in batch], jobs), strict=True):
            results[index] = records
    return records_before + [r for i in range(len(tasks)) for r in results[i]]


def _compile_key(task: tuple):
    """What triton compiles for a task: its specs without the report-only meta (the task itself
    when the specs cannot be built)."""
    family, module, target, dtype, hidden, config, skip_over_budget, lengths = task
    try:
        if skip_over_budget and _over_budget(module, target, dtype, hidden, config):
            return task
        specs = family_specs(module, hidden, dtype, config, lengths)
        return (target,) + tuple(
            (s.name, s.fn.__name__, tuple(sorted(s.signature.items())),
             tuple(sorted((k, repr(v)) for k, v in s.constexprs.items())), s.num_warps, s.num_stages)
            for s in specs
        )  # fmt: skip
    except Exception:
        return task


def _run_tasks(tasks: list[tuple], jobs: int) -> list[list[dict]]:
    if jobs > 1 and len(tasks) > 1:
        import concurrent.futures
        import multiprocessing

        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=min(jobs, len(tasks)), mp_context=multiprocessing.get_context(method)
        ) as pool:
            return list(pool.map(_compile_task, tasks))
    return [_compile_task(t) for t in tasks]


def _run_in_own_group(cmd: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run in a new process group, so that a timeout also ends the child's compile
    workers (killing only the child would leave them running)."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def collect_in_subprocess(
    target,
    hidden_sizes=None,
    dtypes=None,
    configs=None,
    families=None,
    modules=None,
    jobs: int = 2,
    timeout: float = 900,
    python: str | None = None,
    fresh_cache: bool = False,
    skip_over_budget: bool = False,
    lengths: bool = False,
) -> list[dict]:
    """Run ``collect`` for ``target`` (one name or a list) in a fresh interpreter without
    TRITON_INTERPRET (the CLI with --output) and return its records. The caller's sys.path is
    passed on (PYTHONPATH) so that modules such as test probes import there too. Raises
    RuntimeError with the child's stderr if it fails."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    with tempfile.TemporaryDirectory(prefix="trit_rnn_aot_") as tmp:
        out = os.path.join(tmp, "records.json")
        targets = [target] if isinstance(target, str) else list(target)
        cmd = [
            python or sys.executable,
            "-m",
            "trit_rnn.kernels.aot",
            "--target",
            *targets,
            "--output",
            out,
            "--jobs",
            str(jobs),
            "--quiet",
        ]
        if hidden_sizes is not None:
            cmd += ["--hidden", *[str(h) for h in hidden_sizes]]
        if dtypes is not None:
            cmd += ["--dtype", *[dtype_name(d) for d in dtypes]]
        for c in configs or []:
            cmd += ["--config", f"{c.block_b},{c.num_warps},{c.num_stages}"]
        if families is not None:
            cmd += ["--family", *families]
        for name, module in (modules or {}).items():
            cmd += ["--module", f"{name}={module}"]
        if fresh_cache:
            cmd += ["--fresh-cache"]
        if skip_over_budget:
            cmd += ["--skip-over-budget"]
        if lengths:
            cmd += ["--lengths"]
        proc = _run_in_own_group(cmd, env, timeout)
        if proc.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-8000:]}")
        with open(out) as f:
            return json.load(f)


# --------------------------------------------------------------------------------------------
# report


def format_table(records: list[dict], extra_columns=()) -> str:
    """One row per record. extra_columns: (header, record -> text) pairs appended to every row
    that was compiled (an error or skipped row shows "-")."""
    header = [
        "kernel",
        "target",
        "dtype",
        "H",
        "config",
        "regs",
        "spill B",
        "smem B",
        "smem KiB",
        "mma",
        "wgmma",
        "fits",
        "secs",
        *(name for name, _ in extra_columns),
        "notes",
    ]
    rows = []
    for r in records:
        if r.get("error") or r.get("skipped"):
            lines = [ln.strip() for ln in r.get("error", "").splitlines() if ln.strip()]
            # a CompilationError's first line is only its position; the reason is on the last line
            note = r.get("skipped") or "error"
            if lines:
                note = (lines[0] if len(lines) == 1 else f"{lines[0].split(':')[0]}: {lines[-1]}")[:140]
            rows.append(
                [
                    r.get("kernel", "?"),
                    r.get("target", ""),
                    r.get("dtype", ""),
                    str(r.get("hidden_size", "")),
                    r.get("config", ""),
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "ERROR" if r.get("error") else "NO",
                    "-",
                    *("-" for _ in extra_columns),
                    note,
                ]
            )
            continue
        notes = "; ".join(
            p for p in r.get("problems", []) if not p.startswith("shared") and "spills" not in p
        )
        if r.get("spill_bytes") or r.get("spill_loads"):
            notes = "; ".join(filter(None, [f"spill loads {r['spill_loads']} B", notes]))
        if r["shared_bytes"] > r["shared_limit"]:
            notes = "; ".join(
                filter(None, [f"smem over by {r['shared_bytes'] - r['shared_limit']} B", notes])
            )
        rows.append(
            [
                r["kernel"],
                r["target"],
                r["dtype"],
                str(r["hidden_size"]),
                r["config"],
                str(r["registers"]),
                str(r["spill_bytes"]),
                str(r["shared_bytes"]),
                f"{r['shared_bytes'] / 1024:.1f}",
                str(r["mma_sync"]),
                str(r["wgmma"]),
                "yes" if r["fits"] else "NO",
                f"{r['compile_seconds']:.2f}",
                *(str(column(r)) for _, column in extra_columns),
                notes,
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m trit_rnn.kernels.aot",
        description="Compile the trit_rnn kernels ahead of time for a GPU target (no GPU needed) and "
        "report registers, spills, shared memory and tensor-core instructions (static).",
    )
    p.add_argument("--target", required=True, nargs="+", choices=sorted(TARGETS))
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 256], help="hidden sizes")
    p.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"], help="storage dtypes")
    p.add_argument(
        "--config",
        action="append",
        type=parse_config,
        default=None,
        help="BLOCK_B,num_warps,num_stages (repeatable); default: each family's candidates",
    )
    p.add_argument(
        "--family",
        nargs="*",
        default=None,
        help=f"families to compile (default all: {[f for f, _ in _FAMILIES]}); empty: none",
    )
    p.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="NAME=MODULE",
        help="extra family: a module with candidate_configs() and compile_specs()",
    )
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--json", action="store_true", help="print the records as JSON instead of a table")
    p.add_argument("--output", help="also write the JSON records to this file")
    p.add_argument(
        "--fresh-cache", action="store_true", help="compile into an empty triton cache (real compile times)"
    )
    p.add_argument(
        "--skip-over-budget",
        action="store_true",
        help="report configs over the static shared-memory estimate as not fitting without compiling them",
    )
    p.add_argument(
        "--lengths",
        action="store_true",
        help="compile the variable-length variants (HAS_LENGTHS; kernel names end in +lengths)",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing (with --output)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    if interpreter_enabled():
        print(_INTERPRET_MESSAGE, file=sys.stderr)
        return 2
    args = _parse_args(argv)
    modules = {}
    for item in args.module:
        name, sep, module = item.partition("=")
        if not sep or not name or not module:
            print(f"--module expects NAME=MODULE, got {item!r}", file=sys.stderr)
            return 2
        modules[name] = module
    try:
        dtypes = [dtype_name(d) for d in args.dtype]
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        if args.fresh_cache:
            cache = stack.enter_context(tempfile.TemporaryDirectory(prefix="trit_rnn_aot_"))
            os.environ["TRITON_CACHE_DIR"] = cache
        records = collect_targets(
            args.target,
            args.hidden,
            dtypes,
            configs=args.config,
            families=args.family,
            modules=modules,
            jobs=args.jobs,
            skip_over_budget=args.skip_over_budget,
            lengths=args.lengths,
        )
    if args.output:
        with open(args.output, "w") as f:
            json.dump(records, f, indent=1)
    if not args.quiet:
        print(json.dumps(records, indent=1) if args.json else format_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
