"""Ahead-of-time compilation for sm_90 / sm_80 without a GPU (kernels/aot.py).

The test process runs under the Triton interpreter (conftest), where GPU compilation fails, so every
compile goes through ``collect_in_subprocess``. Numbers are static ptxas results of the pinned
triton version, not timings.
"""

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from trit_rnn.kernels import aot
from trit_rnn.kernels.specs import Config

PROBE = {"probe": "tests.kernels.aot_probe_kernel"}
VARLEN_SUFFIX = aot.LENGTHS_SUFFIX  # the variable-length variants' kernel names end in it

TARGETS = ["sm_90", "sm_80"]
# Dense configs compiled by the test (all twelve candidates take ~10 minutes on two cores; the CLI
# compiles them all). The set must contain the configs the launcher is expected to pick.
DENSE_TEST_CONFIGS = [Config(16, 4, 1), Config(16, 8, 1), Config(64, 8, 1)]


def _ok(record):
    return {
        k: record.get(k)
        for k in (
            "kernel",
            "target",
            "dtype",
            "hidden_size",
            "config",
            "registers",
            "spill_bytes",
            "shared_bytes",
            "tensor_core_ops",
            "fits",
            "error",
        )
    }


@pytest.mark.slow
def test_probe_kernel_compiles_for_sm90_and_sm80():
    from tests.kernels.aot_probe_kernel import BROKEN_HIDDEN_SIZE

    records = aot.collect_in_subprocess(
        TARGETS,
        [128, BROKEN_HIDDEN_SIZE],
        [torch.float32],
        configs=[Config(16, 4, 1)],
        families=[],
        modules=PROBE,
    )
    print("\n" + aot.format_table(records))
    good = [r for r in records if r["hidden_size"] == 128]
    broken = [r for r in records if r["hidden_size"] == BROKEN_HIDDEN_SIZE]
    assert sorted(r["target"] for r in good) == sorted(TARGETS)
    for r in good:
        assert "error" not in r, r["error"]
        assert r["kernel"] == "probe_fwd" and r["config"] == "BLOCK_B=16,w4,s1" and r["block_b"] == 16
        assert r["num_warps"] == 4 and r["num_stages"] == 1 and r["dtype"] == "float32"
        assert 0 < r["registers"] <= 255, _ok(r)
        assert r["spill_bytes"] >= 0 and r["shared_bytes"] >= 0
        # W^T (128 x 128 fp32 = 64 KiB) is staged in shared memory: a real allocation, under the limit.
        assert 64 * 1024 <= r["shared_bytes"] <= r["shared_limit"] == aot.TARGETS[r["target"]][1]
        # BLOCK_B=16 tf32 dot: mma.sync on both targets, no wgmma.
        assert r["mma_sync"] > 0 and r["wgmma"] == 0 and r["tensor_core_ops"] == r["mma_sync"]
        assert r["compile_seconds"] > 0
        assert r["fits"] is True and r["problems"] == [] and r["spill_bytes"] == 0, _ok(r)
    # A kernel that does not compile is a record with its error, not a crash and not a silent gap.
    assert sorted(r["target"] for r in broken) == sorted(TARGETS)
    for r in broken:
        assert r["fits"] is False and r["kernel"] == "probe_fwd"
        assert "arange" in r["error"] or "power of 2" in r["error"], r["error"]


def test_fit_logic_on_synthetic_records():
    base = {
        "target": "sm_90",
        "registers": 200,
        "spill_bytes": 0,
        "spill_loads": 0,
        "shared_bytes": 232448,
        "num_warps": 4,
    }
    assert aot.fit_problems(base) == []
    assert aot.fit_problems({**base, "shared_bytes": 232449}) == ["shared 232449 B > 232448 B limit by 1 B"]
    assert aot.fit_problems({**base, "target": "sm_80", "shared_bytes": 166912}) == []
    assert aot.fit_problems({**base, "target": "sm_80"}) == [
        f"shared 232448 B > 166912 B limit by {232448 - 166912} B"
    ]
    assert aot.fit_problems({**base, "spill_bytes": 8}) == ["spills: 8 B stored, 0 B loaded"]
    assert aot.fit_problems({**base, "spill_loads": 4}) == ["spills: 0 B stored, 4 B loaded"]
    assert aot.fit_problems({**base, "registers": 256})[0] == "registers 256 > 255"
    # 16 warps x 32 threads x 255 registers exceeds the 64 K registers of a block.
    assert aot.fit_problems({**base, "registers": 255, "num_warps": 16}) == [
        "registers 255 x 512 threads > 65536 per block"
    ]
    assert aot.fit_problems({**base, "error": "boom"}) == ["compile error"]
    with pytest.raises(ValueError, match="unknown target"):
        aot.fit_problems({**base, "target": "sm_75"})
    counts = aot.tensor_core_ops(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {...}\n"
        "wgmma.fence.sync.aligned;\nwgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16\n"
        "wgmma.commit_group.sync.aligned;\n"
    )
    assert counts == {"mma_sync": 1, "wgmma": 1, "tensor_core_ops": 2}
    assert aot.parse_config("16,8,2") == Config(16, 8, 2) == aot.parse_config("BLOCK_B=16,w8,s2")


def test_refuses_under_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run(
        [sys.executable, "-m", "trit_rnn.kernels.aot", "--target", "sm_90"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "TRITON_INTERPRET" in proc.stderr and "collect_in_subprocess" in proc.stderr
    assert proc.stdout == ""
    # In-process (this test process runs the interpreter) the API refuses the same way.
    assert aot.interpreter_enabled()
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        aot.collect("sm_90", [64], [torch.float32])


def test_dense_family_is_registered():
    assert ("dense", ".dense.launch") in aot.families()
    launch = aot.import_family_module(".dense.launch")
    assert callable(launch.compile_specs) and launch.candidate_configs()


@pytest.mark.slow
@pytest.mark.parametrize("lengths", [False, True], ids=["plain", "lengths"])
@pytest.mark.parametrize(
    "dtype,hidden", [(torch.float32, 128), (torch.bfloat16, 256)], ids=["fp32-H128", "bf16-H256"]
)
def test_dense_kernels_compile_and_some_config_fits(dtype, hidden, lengths):
    """lengths: the variable-length variants (HAS_LENGTHS) must fit as the plain kernels do."""
    records = aot.collect_in_subprocess(
        TARGETS, [hidden], [dtype], configs=DENSE_TEST_CONFIGS, families=["dense"], lengths=lengths
    )
    print("\n" + aot.format_table(records))
    errors = [r for r in records if r.get("error")]
    assert not errors, "\n".join(
        f"{r['kernel']} {r['target']} {r.get('config')}: {r['error']}" for r in errors
    )
    missing, no_fit = [], []
    suffix = VARLEN_SUFFIX if lengths else ""
    for kernel in ("dense_fwd" + suffix, "dense_bwd" + suffix):
        for target in TARGETS:
            mine = [r for r in records if r["kernel"] == kernel and r["target"] == target]
            if len(mine) != len(DENSE_TEST_CONFIGS):
                missing.append(f"{kernel} {target}: {len(mine)} records")
                continue
            for r in mine:
                assert r["registers"] > 0 and r["shared_bytes"] > 0
            if not any(
                r["spill_bytes"] == 0
                and r["spill_loads"] == 0
                and r["shared_bytes"] <= aot.TARGETS[target][1]
                and r["fits"]
                for r in mine
            ):
                no_fit.append(
                    f"{kernel} {target} {aot.dtype_name(dtype)} H={hidden}: "
                    + "; ".join(f"{r['config']}: {', '.join(r['problems'])}" for r in mine)
                )
    assert not missing, missing
    assert not no_fit, "no candidate config fits:\n" + "\n".join(no_fit)


COMPILE_EVERY_VARIANT = """
import json, torch
from trit_rnn.kernels import aot
from trit_rnn.kernels.dense import launch
from trit_rnn.kernels.specs import Config
records = []
cases = [(torch.float32, nl) for nl in launch.NONLINEARITIES] + [(torch.bfloat16, nl) for nl in launch.NONLINEARITIES]
cases += [(torch.float64, "tanh"), (torch.float16, "modrelu")]
for dtype, nl in cases:
    for lengths in (False, True):
        for spec in launch.compile_specs(64, dtype, Config(16, 8, 1), nonlinearity=nl, lengths=lengths):
            r = aot.compile_resources(spec, "sm_90")
            records.append({"kernel": spec.name, "dtype": str(dtype), "nonlinearity": nl, "lengths": lengths,
                            "fits": r["fits"], "spill_bytes": r["spill_bytes"], "registers": r["registers"]})
print(json.dumps(records))
"""


@pytest.mark.slow
def test_every_activation_and_dtype_compiles_for_sm90():
    """The interpreter checks every activation and dtype numerically; this builds each of those
    GPU code paths once (H=64, BLOCK_B=16, 8 warps), plain and with variable lengths, so none is
    first compiled on a user's GPU."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [sys.executable, "-c", COMPILE_EVERY_VARIANT], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(records) == 2 * 2 * (4 + 4 + 2)
    bad = [r for r in records if not (r["fits"] and r["spill_bytes"] == 0 and r["registers"] > 0)]
    assert not bad, bad


def test_over_budget_configs_are_reported_without_compiling():
    """skip_over_budget: W alone over the shared limit (fp32 H=256: 256 KiB > 227 KiB) gives
    not-fitting records at once (this process runs the interpreter, where compiling would fail)."""
    task = ("dense", ".dense.launch", "sm_90", "float32", 256, Config(16, 8, 1), True, False)
    records = aot._compile_task(task)
    assert [r["kernel"] for r in records] == ["dense_fwd", "dense_bwd"]
    varlen = aot._compile_task((*task[:-1], True))
    assert [r["kernel"] for r in varlen] == ["dense_fwd+lengths", "dense_bwd+lengths"]
    assert all(r["skipped"] == records[0]["skipped"] for r in varlen)
    for r in records:
        assert r["fits"] is False and r["skipped"].startswith("not compiled: static estimate")
        assert "278528 B > 232448 B" in r["skipped"] and r["problems"] == [r["skipped"]]
        assert r["registers"] is r["spill_bytes"] is r["shared_bytes"] is None
    table = aot.format_table(records, [("extra", lambda r: "x")])
    assert table.count("not compiled") == 2 and " NO " in table and " x " not in table


def test_sizes_padding_to_one_block_share_a_compile_key():
    def key(hidden, dtype="bfloat16", skip=False, lengths=False):
        return aot._compile_key(
            ("dense", ".dense.launch", "sm_90", dtype, hidden, Config(16, 8, 1), skip, lengths)
        )

    assert key(192) == key(256) != key(128)
    assert key(192, lengths=True) == key(256, lengths=True) != key(256)
    assert key(192, "float32") != key(192)
    # A task skipped for its budget is its own key (nothing is compiled for it).
    assert key(320, skip=True) != key(384, skip=True)


def test_subprocess_timeout_ends_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "pid"
    cmd = ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"]
    with pytest.raises(subprocess.TimeoutExpired):
        aot._run_in_own_group(cmd, dict(os.environ), timeout=1)
    pid = int(pid_file.read_text())
    stat = f"/proc/{pid}/stat"

    def ended() -> bool:
        """Gone, or a zombie waiting for a parent that does not reap."""
        try:
            with open(stat) as f:
                return f.read().split(")")[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    # SIGKILL is delivered asynchronously: on a loaded machine the grandchild may still be
    # runnable for a moment after the group was signalled.
    deadline = time.monotonic() + 10
    while not ended() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ended()


@pytest.mark.slow
@pytest.mark.parametrize("lengths", [False, True], ids=["plain", "lengths"])
def test_complex_dense_kernels_fit_sm90_without_spills(lengths):
    """complex64 (fp32 planes) at H=64 and H=128, BLOCK_B=16 with 8 warps: both kernels compile for
    sm_90 without spills within the shared-memory limit (both W planes stay on chip). Only the
    complex family compiles for a complex dtype. lengths: the same for the variable-length variants
    (HAS_LENGTHS)."""
    records = aot.collect_in_subprocess(
        "sm_90", [64, 128], [torch.complex64], configs=[Config(16, 8, 1)], lengths=lengths
    )
    print("\n" + aot.format_table(records))
    assert {r["family"] for r in records} == {"dense_complex"}
    errors = [r for r in records if r.get("error")]
    assert not errors, "\n".join(f"{r['kernel']} H={r.get('hidden_size')}: {r['error']}" for r in errors)
    suffix = VARLEN_SUFFIX if lengths else ""
    for kernel in ("dense_complex_fwd" + suffix, "dense_complex_bwd" + suffix):
        for hidden in (64, 128):
            (r,) = [r for r in records if r["kernel"] == kernel and r["hidden_size"] == hidden]
            assert r["spill_bytes"] == 0 and r["spill_loads"] == 0 and r["fits"], _ok(r)
            assert 0 < r["shared_bytes"] <= aot.TARGETS["sm_90"][1], _ok(r)
            # Both fp32 planes of W are staged: 2 * BLOCK_H^2 * 4 bytes at least.
            assert r["shared_bytes"] >= 2 * hidden * hidden * 4, _ok(r)


@pytest.mark.slow
@pytest.mark.parametrize(
    "dtype,hidden", [(torch.bfloat16, 128), (torch.float32, 64)], ids=["bf16-H128", "fp32-H64"]
)
def test_gated_kernels_fit_sm90_without_spills(dtype, hidden):
    """The LSTM and GRU kernels (forward and backward) at BLOCK_B=16 with 8 warps compile for sm_90
    without spills within the shared-memory limit, with all G weight blocks on chip."""
    records = aot.collect_in_subprocess(
        "sm_90", [hidden], [dtype], configs=[Config(16, 8, 1)], families=["gated"]
    )
    print("\n" + aot.format_table(records))
    assert {r["family"] for r in records} == {"gated"}
    errors = [r for r in records if r.get("error")]
    assert not errors, "\n".join(f"{r['kernel']}: {r['error']}" for r in errors)
    assert sorted(r["kernel"] for r in records) == ["gru_bwd", "gru_fwd", "lstm_bwd", "lstm_fwd"]
    for r in records:
        gates = 4 if r["kernel"].startswith("lstm") else 3
        assert 0 < r["registers"] <= aot.MAX_REGISTERS_PER_THREAD, _ok(r)
        assert r["spill_bytes"] == 0 and r["spill_loads"] == 0 and r["fits"], _ok(r)
        assert 0 < r["shared_bytes"] <= aot.TARGETS["sm_90"][1], _ok(r)
        # Every gate block of W is staged: G * BLOCK_H^2 storage elements at least.
        assert r["shared_bytes"] >= gates * hidden * hidden * dtype.itemsize, _ok(r)


COMPILE_GATED_VARLEN = """
import json, sys, torch
from trit_rnn.kernels import aot
from trit_rnn.kernels.gated import launch
from trit_rnn.kernels.specs import Config
dtype, hidden = getattr(torch, sys.argv[1]), int(sys.argv[2])
config = Config(16, 8, 1)
records = []
for nonlinearity in ("tanh", "modrelu"):
    for spec in launch.compile_specs(hidden, dtype, config, nonlinearity=nonlinearity, lengths=True):
        if nonlinearity == "modrelu" and spec.name.startswith("lstm"):
            continue  # the LSTM has no candidate nonlinearity: the same kernel as with tanh
        r = aot.compile_resources(spec, "sm_90")
        cell = "goru" if nonlinearity == "modrelu" else spec.name.split("_")[0]
        records.append({"kernel": spec.name, "cell": cell, "lengths": spec.constexprs["HAS_LENGTHS"],
                        "estimate": launch.estimate_shared_bytes(hidden, dtype, config, spec.name),
                        **{k: r[k] for k in ("fits", "registers", "spill_bytes", "spill_loads",
                                             "shared_bytes", "shared_limit")}})
print(json.dumps(records))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "dtype,hidden", [(torch.bfloat16, 128), (torch.float32, 64)], ids=["bf16-H128", "fp32-H64"]
)
def test_varlen_gated_kernels_fit_sm90_without_spills(dtype, hidden):
    """The variable-length variants (HAS_LENGTHS) of the LSTM, GRU and GORU kernels, forward and
    backward, at the sizes and config of the test above: no spills, and exactly the shared memory of
    the launcher's estimate (the G weight blocks and a state tile; the lengths mask adds none)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [sys.executable, "-c", COMPILE_GATED_VARLEN, aot.dtype_name(dtype), str(hidden)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = json.loads(done.stdout.strip().splitlines()[-1])
    for r in records:
        print(r)
    assert sorted((r["cell"], r["kernel"]) for r in records) == [
        ("goru", "gru_bwd"), ("goru", "gru_fwd"), ("gru", "gru_bwd"), ("gru", "gru_fwd"),
        ("lstm", "lstm_bwd"), ("lstm", "lstm_fwd"),
    ]  # fmt: skip
    for r in records:
        assert r["lengths"] is True
        assert r["fits"] and r["spill_bytes"] == 0 and r["spill_loads"] == 0, r
        assert 0 < r["registers"] <= aot.MAX_REGISTERS_PER_THREAD, r
        assert r["shared_bytes"] == r["estimate"] <= r["shared_limit"] == aot.TARGETS["sm_90"][1], r


COMPILE_COMPLEX_VARIANTS = """
import json, torch
from trit_rnn.kernels import aot
from trit_rnn.kernels.dense_complex import launch
from trit_rnn.kernels.specs import Config
records = []
for dtype, nl in [(torch.complex64, "identity"), (torch.complex128, "identity"), (torch.complex128, "modrelu")]:
    for lengths in (False, True):
        for spec in launch.compile_specs(64, dtype, Config(16, 8, 1), nonlinearity=nl, lengths=lengths):
            r = aot.compile_resources(spec, "sm_90")
            records.append({"kernel": spec.name, "dtype": str(dtype), "nonlinearity": nl, "lengths": lengths,
                            "fits": r["fits"], "spill_bytes": r["spill_bytes"], "registers": r["registers"]})
print(json.dumps(records))
"""


@pytest.mark.slow
def test_every_complex_activation_and_dtype_compiles_for_sm90():
    """The complex variants the test above does not build (identity; complex128, whose fp64 dots are
    tensor-core dots), once each at H=64, BLOCK_B=16, 8 warps, plain and with variable lengths."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [sys.executable, "-c", COMPILE_COMPLEX_VARIANTS], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(records) == 2 * 2 * 3
    bad = [r for r in records if not (r["fits"] and r["spill_bytes"] == 0 and r["registers"] > 0)]
    assert not bad, bad
