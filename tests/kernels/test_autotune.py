"""The autotune helper: pruning, timing only what survives, and the on-disk cache."""

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch
from trit_rnn.kernels import autotune
from trit_rnn.kernels.specs import Config

CONFIGS = [Config(b, w, s) for b in (16, 32, 64) for w in (4, 8) for s in (1, 2)]


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIT_RNN_CACHE_DIR", str(tmp_path))


def _fits_all(config):
    return True, "fits"


def _rejects_8_warps(config):
    return (config.num_warps != 8), f"w{config.num_warps} over budget"


def test_cache_path_honours_env(tmp_path):
    assert autotune.cache_path() == tmp_path / autotune.CACHE_FILE_NAME


def test_cache_dir_falls_back_to_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("TRIT_RNN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(autotune.sys, "platform", "linux")
    assert autotune.cache_dir() == tmp_path / "xdg" / "trit_rnn"


def test_cache_dir_without_override_is_the_platform_user_cache(monkeypatch):
    monkeypatch.delenv("TRIT_RNN_CACHE_DIR")
    assert autotune.cache_dir() == autotune.user_cache_dir()
    assert autotune.cache_path() == autotune.user_cache_dir() / autotune.CACHE_FILE_NAME


@pytest.mark.parametrize(
    "platform, environ, expected",
    [
        ("linux", {"XDG_CACHE_HOME": "/xdg/cache"}, "/xdg/cache/trit_rnn"),
        ("linux", {}, "/home/u/.cache/trit_rnn"),
        ("linux", {"XDG_CACHE_HOME": ""}, "/home/u/.cache/trit_rnn"),
        # The XDG spec: a relative path is invalid and ignored.
        ("linux", {"XDG_CACHE_HOME": "relative/cache"}, "/home/u/.cache/trit_rnn"),
        ("freebsd14", {"XDG_CACHE_HOME": "/xdg"}, "/xdg/trit_rnn"),
        ("darwin", {"XDG_CACHE_HOME": "/xdg/cache"}, "/home/u/Library/Caches/trit_rnn"),
        ("win32", {"LOCALAPPDATA": "/appdata/local"}, "/appdata/local/trit_rnn/Cache"),
        ("win32", {}, "/home/u/AppData/Local/trit_rnn/Cache"),
    ],
)
def test_user_cache_dir_follows_the_platform_convention(platform, environ, expected):
    assert autotune.user_cache_dir(platform, environ, home=Path("/home/u")) == Path(expected)


def test_prune_drops_over_budget_and_oversized_blocks():
    report = autotune.prune(CONFIGS, batch=20, budget=_rejects_8_warps, interpreter=False)
    assert report.survivors == [Config(16, 4, 1), Config(16, 4, 2), Config(32, 4, 1), Config(32, 4, 2)]
    reasons = dict(report.pruned)
    assert "over budget" in reasons[Config(16, 8, 1)] and "w8" in reasons[Config(16, 8, 1)]
    assert "BLOCK_B=64 > 32" in reasons[Config(64, 4, 1)]
    assert len(report.survivors) + len(report.pruned) == len(CONFIGS)


def test_prune_keeps_block_16_for_tiny_batch():
    report = autotune.prune(CONFIGS, batch=1, budget=_fits_all, interpreter=False)
    assert {c.block_b for c in report.survivors} == {16}


def test_prune_under_interpreter_keeps_one_config_per_block_b():
    report = autotune.prune(CONFIGS, batch=64, budget=_fits_all, interpreter=True)
    assert report.survivors == [Config(16, 4, 1), Config(32, 4, 1), Config(64, 4, 1)]
    assert all("interpreter" in reason for _, reason in report.pruned)


def test_no_surviving_config_raises():
    with pytest.raises(RuntimeError, match="no launch config fits"):
        autotune.choose(
            "k", ("H=8",), CONFIGS, lambda c: (False, "too big"), lambda c: None, batch=4, signature="s"
        )


def test_single_survivor_is_not_timed():
    def run(config):
        raise AssertionError("timed a lone survivor")

    cache = autotune.AutotuneCache()
    chosen = autotune.choose(
        "k", ("H=8",), CONFIGS, _fits_all, run, batch=3, signature="s", cache=cache, interpreter=True
    )
    assert chosen == Config(16, 4, 1)


def test_choice_is_timed_cached_on_disk_and_reread(tmp_path):
    calls = []

    def run(config):
        calls.append(config)
        # 32 is the fastest: the CPU timer must pick it.
        if config.block_b != 32:
            time.sleep(0.01)

    key = ("H=20", "B<=64", "torch.float32")
    cache = autotune.AutotuneCache()
    chosen = autotune.choose(
        "dense_fwd", key, CONFIGS, _fits_all, run, batch=64, signature="s", cache=cache, interpreter=True
    )
    assert chosen.block_b == 32
    assert {c.block_b for c in calls} == {16, 32, 64}
    path = tmp_path / autotune.CACHE_FILE_NAME
    assert path.exists() and len(json.loads(path.read_text())) == 1

    calls.clear()
    fresh = autotune.AutotuneCache()
    again = autotune.choose(
        "dense_fwd", key, CONFIGS, _fits_all, run, batch=64, signature="s", cache=fresh, interpreter=True
    )
    assert again == chosen and calls == []
    # Other kernels and keys are separate entries.
    assert fresh.get("dense_bwd", key, autotune.device_name("cpu", True), "s") is None


def test_corrupt_cache_warns_and_is_rebuilt(tmp_path):
    path = tmp_path / autotune.CACHE_FILE_NAME
    path.write_text("{not json")
    cache = autotune.AutotuneCache()
    with pytest.warns(RuntimeWarning, match="corrupt"):
        assert cache.get("k", ("a",), "dev", "s") is None
    cache.put("k", ("a",), "dev", "s", Config(32, 8, 2))
    assert autotune.AutotuneCache().get("k", ("a",), "dev", "s") == Config(32, 8, 2)
    # No temporary file is left behind (the lock file is the writers' advisory lock).
    assert {p.name for p in tmp_path.iterdir()} <= {autotune.CACHE_FILE_NAME, autotune.LOCK_FILE_NAME}


def test_cache_with_wrong_structure_is_corrupt(tmp_path):
    path = tmp_path / autotune.CACHE_FILE_NAME
    path.write_text(json.dumps({"x": {"block_b": 16, "bogus": 1}}))
    with pytest.warns(RuntimeWarning, match="corrupt"):
        assert autotune.AutotuneCache().get("x", (), "dev", "s") is None


def _valid_cache_text(entries):
    cache = {
        autotune._full_key("k", (f"H={n}",), "dev", "s"): {"block_b": 16, "num_warps": 4, "num_stages": 1}
        for n in range(entries)
    }
    return json.dumps(cache, indent=1)


CORRUPT_CACHES = {
    "not json": b"{not json",
    "truncated": _valid_cache_text(4).encode()[:-37],
    "empty": b"",
    "binary garbage": bytes(range(256)) * 4,  # not UTF-8
    "nested too deep": b"[" * 100_000,  # json raises RecursionError
    "top level a list": b"[1, 2]",
    "string field": json.dumps({"x": {"block_b": "16"}}).encode(),
    "bool field": json.dumps({"x": {"block_b": True}}).encode(),
    "missing block_b": json.dumps({"x": {"num_warps": 4}}).encode(),
}


@pytest.mark.parametrize("content", list(CORRUPT_CACHES))
def test_corrupt_or_truncated_cache_warns_and_is_rebuilt(tmp_path, content):
    path = tmp_path / autotune.CACHE_FILE_NAME
    path.write_bytes(CORRUPT_CACHES[content])
    cache = autotune.AutotuneCache()
    with pytest.warns(RuntimeWarning, match="corrupt.*rebuilt"):
        assert cache.get("k", ("H=0",), "dev", "s") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuild itself warns no more
        cache.put("k", ("a",), "dev", "s", Config(32, 8, 2))
        rebuilt = json.loads(path.read_text())
        assert list(rebuilt) == [autotune._full_key("k", ("a",), "dev", "s")]
        assert autotune.AutotuneCache().get("k", ("a",), "dev", "s") == Config(32, 8, 2)


def test_valid_cache_reads_without_warning(tmp_path):
    (tmp_path / autotune.CACHE_FILE_NAME).write_text(_valid_cache_text(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert autotune.AutotuneCache().get("k", ("H=2",), "dev", "s") == Config(16, 4, 1)


def test_unwritable_cache_warns_once_and_keeps_choices_in_memory(tmp_path, monkeypatch):
    """A cache directory that cannot be created (here its parent is a file) must not fail the
    launch that tuned: the choice stays in memory."""
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("TRIT_RNN_CACHE_DIR", str(blocker / "cache"))
    cache = autotune.AutotuneCache()
    with pytest.warns(RuntimeWarning) as record:
        cache.put("k", ("a",), "dev", "s", Config(32, 8, 2))
    messages = [str(w.message) for w in record]
    assert len(messages) == 2 and "cannot be read" in messages[0] and "cannot be written" in messages[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.put("k", ("b",), "dev", "s", Config(64, 8, 2))
    assert cache.get("k", ("a",), "dev", "s") == Config(32, 8, 2)
    assert cache.get("k", ("b",), "dev", "s") == Config(64, 8, 2)


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / autotune.CACHE_FILE_NAME
    cache = autotune.AutotuneCache()
    cache.put("k", ("a",), "dev", "s", Config(32, 8, 2))
    before = path.read_bytes()

    def fail(entries, f, **kwargs):
        f.write('{"half written": ')
        raise OSError("disk full")

    monkeypatch.setattr(autotune.json, "dump", fail)
    with pytest.warns(RuntimeWarning, match="cannot be written.*disk full"):
        cache.put("k", ("b",), "dev", "s", Config(64, 8, 2))
    assert path.read_bytes() == before
    assert {p.name for p in tmp_path.iterdir()} == {autotune.CACHE_FILE_NAME, autotune.LOCK_FILE_NAME}


def test_deterministic_mode_times_nothing_and_ignores_the_cache():
    """Under torch.use_deterministic_algorithms(True) the choice is the first survivor of pruning,
    whatever the cache holds, and nothing is timed or written."""

    def timer(run, config, interpreter):
        raise AssertionError("timed in deterministic mode")

    cache = autotune.AutotuneCache()
    cache.put("k", ("H=8",), autotune.device_name("cpu", True), "s", Config(64, 4, 1))
    entries_before = autotune.AutotuneCache()._read_disk()
    torch.use_deterministic_algorithms(True)
    try:
        chosen = autotune.choose(
            "k", ("H=8",), CONFIGS, _fits_all, lambda c: None, batch=64, signature="s", cache=cache,
            interpreter=True, timer=timer,
        )  # fmt: skip
        over_budget = autotune.choose(
            "k", ("H=9",), CONFIGS, _rejects_8_warps, lambda c: None, batch=64, signature="s",
            cache=cache, interpreter=True, timer=timer,
        )  # fmt: skip
    finally:
        torch.use_deterministic_algorithms(False)
    assert chosen == Config(16, 4, 1) and over_budget == Config(16, 4, 1)
    assert autotune.AutotuneCache()._read_disk() == entries_before
    # Out of deterministic mode the cached (tuned) choice is back.
    assert autotune.choose(
        "k", ("H=8",), CONFIGS, _fits_all, lambda c: None, batch=64, signature="s", cache=cache,
        interpreter=True, timer=timer,
    ) == Config(64, 4, 1)  # fmt: skip


def test_deterministic_mode_on_a_gpu_skips_spilling_configs_without_timing():
    """The GPU branch without a GPU: launches return spill counts; the first survivor spills, so
    deterministic mode takes the next one, compiles each candidate once per process, and times
    nothing."""
    spills = {Config(16, 4, 1): 64, Config(16, 8, 1): 0, Config(32, 8, 1): 0}
    launches = []

    def run(config):
        launches.append(config)
        return _Compiled(spills[config])

    def timer(run, config, interpreter):
        raise AssertionError("timed in deterministic mode")

    torch.use_deterministic_algorithms(True)
    try:
        choices = [
            autotune.choose(
                "k_gpu",
                ("H=8",),
                list(spills),
                _fits_all,
                run,
                batch=32,
                signature="s",
                interpreter=False,
                timer=timer,
            )  # fmt: skip
            for _ in range(2)
        ]
    finally:
        torch.use_deterministic_algorithms(False)
    assert choices == [Config(16, 8, 1)] * 2
    assert launches == list(spills)  # the spill check ran once


_HAMMER = """
import json, sys, time, warnings
from pathlib import Path
from trit_rnn.kernels import autotune
from trit_rnn.kernels.specs import Config

worker, writes, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
warnings.simplefilter("always")
Path(f"{go}.{worker}.ready").touch()
while not go.exists():
    time.sleep(0.001)
cache = autotune.AutotuneCache()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    cache.get("k", ("first read",), "dev", "s")  # garbage unless the other worker wrote already
    saw_garbage = any("corrupt" in str(w.message) for w in caught)
    for i in range(writes):
        cache.put("k", (f"worker {worker}", f"entry {i}"), "dev", "s", Config(16 << (i % 3), 4, 1 + i % 2))
        autotune.AutotuneCache()._read_disk()  # a fresh reader, after our write: must be valid
    corrupt_after_writing = sum("corrupt" in str(w.message) for w in caught) - saw_garbage
print(json.dumps({"saw_garbage": saw_garbage, "corrupt_after_writing": corrupt_after_writing}))
"""


def test_garbage_cache_used_by_two_processes_at_once_ends_valid(tmp_path):
    """A cache file filled with garbage, then used by two processes at once, ends valid: they start
    together (a barrier file), each reads the garbage or the other's rebuild, then writes WRITES
    entries while reading the file afresh after every write. Every read after a process's first
    write is valid (writes replace the file atomically), and the final file holds every entry of
    both processes (writers merge under a lock) and no temporary file is left."""
    writes = 60
    path = tmp_path / autotune.CACHE_FILE_NAME
    path.write_bytes(b'{"dense_fwd": {"block_b": 1' + bytes(range(256)) * 8)
    go = tmp_path / "go"
    env = {**os.environ, "TRIT_RNN_CACHE_DIR": str(tmp_path)}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _HAMMER, name, str(writes), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name in ("A", "B")
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(Path(f"{go}.{name}.ready").exists() for name in ("A", "B")):
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.01)
        go.touch()
        results = []
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=120)
            assert worker.returncode == 0, stderr
            results.append(json.loads(stdout.splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert any(r["saw_garbage"] for r in results)  # the first reader met the garbage
    assert [r["corrupt_after_writing"] for r in results] == [0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        final = json.loads(path.read_text())
        cache = autotune.AutotuneCache()
        for name in ("A", "B"):
            for i in range(writes):
                expected = Config(16 << (i % 3), 4, 1 + i % 2)
                assert cache.get("k", (f"worker {name}", f"entry {i}"), "dev", "s") == expected
    assert len(final) == 2 * writes
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith("go")} == {
        autotune.CACHE_FILE_NAME,
        autotune.LOCK_FILE_NAME,
    }


class _Compiled:
    """What a Triton launch returns on a GPU, reduced to the field the autotuner reads."""

    def __init__(self, n_spills):
        self.n_spills = n_spills


def test_gpu_path_prunes_spilling_configs_then_times_with_do_bench(monkeypatch):
    """The GPU branch without a GPU: launches return compiled kernels with spill counts, and
    triton.testing.do_bench is replaced by a fake whose timings make a spilling config fastest."""
    spills = {Config(16, 4, 1): 64, Config(16, 8, 1): 0, Config(32, 8, 1): 0}
    milliseconds = {Config(16, 4, 1): 0.1, Config(16, 8, 1): 0.5, Config(32, 8, 1): 0.3}
    current = {}

    def run(config):
        current["config"] = config
        return _Compiled(spills[config])

    def fake_do_bench(fn):
        fn()
        return milliseconds[current["config"]]

    monkeypatch.setattr(autotune.triton.testing, "do_bench", fake_do_bench)
    cache = autotune.AutotuneCache()
    chosen = autotune.choose(
        "k", ("H=8",), list(spills), _fits_all, run, batch=32, signature="s", cache=cache, interpreter=False
    )
    assert chosen == Config(32, 8, 1)  # the fastest that does not spill


def test_gpu_path_keeps_spilling_configs_when_all_spill():
    report = autotune.PruneReport(survivors=[Config(16, 4, 1), Config(32, 4, 1)])
    autotune.prune_spilling(lambda c: _Compiled(8), report)
    assert report.survivors == [Config(16, 4, 1), Config(32, 4, 1)] and report.pruned == []


def test_spilled_bytes_of_an_interpreted_launch_is_zero():
    assert autotune.spilled_bytes(None) == 0 and autotune.spilled_bytes(_Compiled(12)) == 12


def test_key_changes_with_the_kernel_signature_device_and_triton_version(monkeypatch):
    cache = autotune.AutotuneCache()
    cache.put("k", ("H=8",), "dev", "aaaa", Config(32, 8, 1))
    assert cache.get("k", ("H=8",), "dev", "aaaa") == Config(32, 8, 1)
    assert cache.get("k", ("H=8",), "dev", "bbbb") is None
    assert cache.get("k", ("H=8",), "other dev", "aaaa") is None
    keys = {autotune._full_key("k", ("H=8",), "dev", sig) for sig in ("aaaa", "bbbb")}
    assert len(keys) == 2
    monkeypatch.setattr(autotune.triton, "__version__", "0.0-other")
    assert cache.get("k", ("H=8",), "dev", "aaaa") is None


def test_devices_with_lists_entries_of_one_key_on_every_device():
    cache = autotune.AutotuneCache()
    cache.put("k", ("H=8",), "GPU A", "s", Config(16, 8, 1))
    cache.put("k", ("H=8",), "GPU B", "s", Config(32, 4, 1))
    cache.put("k", ("H=8",), "GPU C", "other source", Config(64, 4, 1))
    cache.put("k", ("H=16",), "GPU A", "s", Config(64, 8, 1))
    assert cache.devices_with("k", ("H=8",), "s") == {"GPU A": Config(16, 8, 1), "GPU B": Config(32, 4, 1)}


_KERNEL_MODULE = """
import triton
import triton.language as tl


@triton.jit
def helper(x):
    return x {op} 1


@triton.jit
def kernel(ptr):
    tl.store(ptr, helper(tl.load(ptr)))
"""


def _load_kernel(tmp_path, name, op):
    import importlib.util

    path = tmp_path / f"{name}.py"
    path.write_text(_KERNEL_MODULE.format(op=op))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.kernel


def test_kernel_signature_follows_called_helpers(tmp_path):
    """Editing only a helper the kernel calls changes the kernel's signature."""
    plus, plus_again, minus = (
        _load_kernel(tmp_path, "k_plus", "+"),
        _load_kernel(tmp_path, "k_plus_again", "+"),
        _load_kernel(tmp_path, "k_minus", "-"),
    )
    assert autotune.kernel_signature(plus) != autotune.kernel_signature(minus)
    # The module name is part of each function's name in the hash.
    assert autotune.kernel_signature(plus) != autotune.kernel_signature(plus_again)
    assert len(autotune.kernel_signature(plus)) == autotune.SIGNATURE_LENGTH
    with pytest.raises(TypeError, match="not a @triton.jit"):
        autotune.kernel_signature(len)


def test_dense_kernels_have_distinct_signatures():
    from trit_rnn.kernels.dense.launch import KERNELS

    signatures = {autotune.kernel_signature(k) for k in KERNELS.values()}
    assert len(signatures) == len(KERNELS)


_WRITE = """
from trit_rnn.kernels import autotune
from trit_rnn.kernels.dense.launch import KERNELS
from trit_rnn.kernels.specs import Config
sig = autotune.kernel_signature(KERNELS["dense_fwd"])
autotune.AutotuneCache().put("dense_fwd", ("H=64",), "GPU X", sig, Config(32, 8, 2))
print(sig)
"""
_READ = """
from trit_rnn.kernels import autotune
from trit_rnn.kernels.dense.launch import KERNELS
sig = autotune.kernel_signature(KERNELS["dense_fwd"])
print(sig, autotune.AutotuneCache().get("dense_fwd", ("H=64",), "GPU X", sig).label())
"""


def _python(code, tmp_path, interpret):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRIT_RNN_CACHE_DIR"] = str(tmp_path)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_entries_persist_across_processes_and_interpreter_mode(tmp_path):
    """One process (compiled JIT kernels) writes, another (the interpreter) reads the same entry:
    the signature is the same in both."""
    (written_sig,) = _python(_WRITE, tmp_path, interpret=False)
    read_sig, label = _python(_READ, tmp_path, interpret=True)
    assert read_sig == written_sig
    assert label == "BLOCK_B=32,w8,s2"


def test_tune_times_a_lone_survivor_when_asked_and_ignores_the_cache():
    seen = []

    def timer(run, config, interpreter):
        seen.append(config)
        return 1.0

    cache = autotune.AutotuneCache()
    cache.put("k", ("H=8",), "dev", "s", Config(64, 8, 2))
    result = autotune.tune(
        "k", ("H=8",), CONFIGS, _fits_all, lambda c: None, batch=3, signature="s", device_label="dev",
        cache=cache, interpreter=True, timer=timer, time_lone_survivor=True,
    )  # fmt: skip
    assert seen == [Config(16, 4, 1)] and result.seconds == {Config(16, 4, 1): 1.0}
    assert result.best == Config(16, 4, 1)
    assert cache.get("k", ("H=8",), "dev", "s") == Config(16, 4, 1)


def test_time_config_uses_an_injected_bench_on_a_gpu():
    calls = []

    def bench(fn):
        fn()
        return 2.5

    assert autotune.time_config(calls.append, Config(16, 8, 1), interpreter=False, bench=bench) == 2.5e-3
    assert calls == [Config(16, 8, 1)]
