"""`trit-rnn profile`: checkpointing cuts the recurrence's saved memory, the records carry what the
issue asks for, and the GPU memory branch runs with torch.cuda injected."""

import json

import pytest
import torch
from trit_rnn.perf import profile
from trit_rnn.perf.charts import profile_chart
from trit_rnn.perf.device import DeviceInfo

from trit_rnn.cli import main

from .test_bench import CPU, GPU


def test_checkpointing_saves_less_at_long_sequences(tmp_path):
    spec = profile.ProfileSpec("orthogonal", 16, [4, 400], batch=2, rounds=1, adaptive_rounds=False)
    records = profile.run_profile(spec, CPU, trace=tmp_path / "trace.json")
    by_key = {(r["seq_len"], r["checkpoint"]): r for r in records}
    assert set(by_key) == {(4, False), (4, 2), (400, False), (400, 20)}
    plain, checkpointed = by_key[(400, False)], by_key[(400, 20)]
    # plain keeps all 400 states [2, 16] in float32; checkpointing keeps 20 of them plus x.
    assert plain["peak_bytes"] >= 400 * 2 * 16 * 4
    assert checkpointed["peak_bytes"] * 4 < plain["peak_bytes"]
    assert all(r["seconds_per_step"] > 0 and r["memory_kind"] == "saved_for_backward" for r in records)
    assert all(
        0 < r["fixed_seconds"] < r["seconds_per_step"] * r["seq_len"] for r in records if r["seq_len"] == 400
    )
    trace = json.loads((tmp_path / "trace.json").read_text())
    names = {event.get("name") for event in trace["traceEvents"]}
    assert {"no checkpointing", "checkpoint_every=20"} <= names
    chart = profile_chart(records, tmp_path / "memory.png")
    assert chart.stat().st_size > 10_000


def test_peer_without_checkpointing_is_profiled_plain():
    records = profile.run_profile(
        profile.ProfileSpec("torch_rnn", 8, [5], batch=2, rounds=1, adaptive_rounds=False), CPU
    )
    assert [r["checkpoint"] for r in records] == [False] and records[0]["peak_bytes"] > 0


def test_backend_that_cannot_run_is_a_clear_error():
    spec = profile.ProfileSpec("orthogonal", 8, [5], backend="triton")
    with pytest.raises(ValueError, match="runs on cuda only"):
        profile.run_profile(spec, CPU)


class FakeCuda:
    """torch.cuda's memory counters, driven by the test."""

    def __init__(self):
        self.allocated, self.peak, self.calls = 1000, 0, []

    def synchronize(self):
        self.calls.append("sync")

    def reset_peak_memory_stats(self):
        self.peak = self.allocated

    def memory_allocated(self):
        return self.allocated

    def max_memory_allocated(self):
        return self.peak + 5000


def test_gpu_memory_branch_measures_peak_above_baseline():
    fake = FakeCuda()
    records = profile.run_profile(
        profile.ProfileSpec("orthogonal", 8, [6], batch=2, rounds=1, adaptive_rounds=False),
        GPU,
        timer=lambda contestants, rounds: {k: _timing(k, 0.6) for k in contestants},
        memory=lambda model, x: profile.cuda_memory(model, x, cuda=fake),
    )
    assert {r["backend"] for r in records} == {"triton"}  # a GPU prefers the persistent kernels
    assert all(r["peak_bytes"] == 5000 and r["memory_kind"] == "max_allocated" for r in records)
    assert all(r["seconds_per_step"] == pytest.approx(0.1) for r in records)
    # every run took 0.6 s, T=1 included: no cost beyond the fixed one
    assert all(
        r["fixed_seconds"] == pytest.approx(0.6) and r["seconds_per_step_marginal"] == 0 for r in records
    )
    assert fake.calls.count("sync") == 4
    assert all(r["slowdown_vs_plain"] == pytest.approx(1.0) for r in records)


def _timing(name, seconds):
    from trit_rnn.perf.timing import Timing

    return Timing(name, [seconds])


def test_slowdown_vs_plain_pairs_the_runs_of_one_round():
    """variant / plain within each round, then their median: a machine 3x slower in round 2 slows
    both runs of that round and leaves their ratio alone."""
    plain = _timing("False", 0)
    plain.seconds = [1.0, 3.0, 2.0]
    checkpointed = _timing("10", 0)
    checkpointed.seconds = [1.1, 3.3, 2.2]
    assert profile.paired_ratio(checkpointed, plain) == pytest.approx(1.1)
    assert profile.paired_ratio(plain, plain) == 1.0
    checkpointed.seconds = [1.5, 3.3, 2.8]  # 1.5, 1.1 and 1.4 times its round's plain run
    assert profile.paired_ratio(checkpointed, plain) == pytest.approx(1.4)
    with pytest.raises(ValueError):  # rounds that do not pair up are a bug, not a number
        profile.paired_ratio(_timing("10", 1.0), plain)


def test_default_checkpoint_is_sqrt_t():
    assert profile.checkpoint_for(10_000, None) == 100 and profile.checkpoint_for(10, 4) == 4


def test_cli_profile_json(tmp_path, capsys):
    args = ["profile", "--cell", "orthogonal", "--hidden", "8", "--seq-len", "9", "--batch", "2",
            "--rounds", "1", "--device", "cpu", "--out", str(tmp_path), "--json"]  # fmt: skip
    assert main(args) == 0
    records = json.loads(capsys.readouterr().out)
    assert {"seq_len", "checkpoint", "peak_bytes", "seconds_per_step"} <= set(records[0])
    assert [r["checkpoint"] for r in records] == [False, 3]
    assert (tmp_path / "profile_orthogonal_memory_vs_seq_len.png").exists()


def test_device_info_is_gpu():
    assert GPU.is_gpu and not CPU.is_gpu and not DeviceInfo("cpu", "x", 1).is_gpu


def test_retain_freed_memory_applies_on_glibc():
    import platform

    from trit_rnn.memory import retain_freed_memory

    assert retain_freed_memory() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_recurrence_only_profiles_the_op_with_the_same_function():
    spec = profile.ProfileSpec(
        "orthogonal", 8, [12], batch=2, rounds=1, adaptive_rounds=False, recurrence_only=True
    )
    records = profile.run_profile(spec, CPU)
    assert [r["scope"] for r in records] == ["recurrence op"] * 2
    model = profile.registry.get("orthogonal").build(2, 8, backend="torch")
    x = torch.randn(12, 2, 2)
    op = profile.RecurrenceOnly(model, None)
    torch.testing.assert_close(op(x)[0], model(x)[0])
    with pytest.raises(ValueError, match="dense-family cell"):
        profile.RecurrenceOnly(torch.nn.RNN(2, 8), None)
