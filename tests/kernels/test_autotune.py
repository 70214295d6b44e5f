"""The autotune helper: pruning, timing only what survives, and the on-disk cache."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
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
    assert autotune.cache_dir() == tmp_path / "xdg" / "trit_rnn"


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
    assert not [p for p in tmp_path.iterdir() if p.name != autotune.CACHE_FILE_NAME]


def test_cache_with_wrong_structure_is_corrupt(tmp_path):
    path = tmp_path / autotune.CACHE_FILE_NAME
    path.write_text(json.dumps({"x": {"block_b": 16, "bogus": 1}}))
    with pytest.warns(RuntimeWarning, match="corrupt"):
        assert autotune.AutotuneCache().get("x", (), "dev", "s") is None


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
