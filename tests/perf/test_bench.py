"""The throughput harness: sweep planning, contestant selection per device, the CSV round trip, the
charts, and the GPU timing branch (device and do_bench injected, so it runs on this CPU)."""

import dataclasses
import json

import pytest
import torch
from trit_rnn.perf import sweep
from trit_rnn.perf.bench import run_bench
from trit_rnn.perf.device import DeviceInfo, detect
from trit_rnn.perf.results import read_csv, write_csv
from trit_rnn.perf.summary import format_summary
from trit_rnn.perf.timing import time_interleaved_gpu

from trit_rnn import registry
from trit_rnn.cli import main

CPU = DeviceInfo("cpu", "test cpu", 2)


@dataclasses.dataclass(frozen=True)
class FakeGpu(DeviceInfo):
    """A GPU description whose tensors live on the CPU (kernels then run under the interpreter)."""

    @property
    def torch_device(self):
        return torch.device("cpu")


GPU = FakeGpu("cuda", "Fake H100", 16)


def tiny_spec(cells, **overrides):
    spec = sweep.SweepSpec(
        cells,
        seq_lens=[3, 5],
        hidden_sizes=[8, 16],
        base_seq_len=3,
        base_hidden=8,
        batches=[2],
        dtypes=["float32"],
        modes=["forward", "train"],
        rounds=2,
    )
    return dataclasses.replace(spec, **overrides)


def test_shapes_cover_both_sweeps_once():
    shapes = tiny_spec(["orthogonal"], modes=["train"]).shapes()
    points = {(s.seq_len, s.hidden_size): s.sweep for s in shapes}
    # (3, 8) is the base point of both sweeps: measured once, labelled with both.
    assert points == {(3, 8): "seq_len+hidden", (5, 8): "seq_len", (3, 16): "hidden"}


def test_cpu_contestants_leave_out_gpu_only_backends():
    skipped = {}
    chosen = sweep.contestants_for(registry.names(), CPU, "float32", skipped)
    labels = {c.label for c in chosen}
    assert {"orthogonal[torch]", "torch_rnn[torch]", "torch_gru[torch]", "torch_lstm[torch]",
            "naive_loop[eager]"} <= labels  # fmt: skip
    assert "orthogonal[triton]" not in labels and "naive_loop[compile]" not in labels
    assert "runs on cuda only" in skipped["orthogonal[triton] float32"]


def test_gpu_contestants_add_triton_compile_and_float16_cudnn():
    labels = {c.label for c in sweep.contestants_for(registry.names(), GPU, "float32")}
    assert {"orthogonal[triton]", "orthogonal[torch]", "naive_loop[compile]", "torch_rnn[torch]"} <= labels
    half = {c.label for c in sweep.contestants_for(registry.names(), GPU, "float16")}
    # cuDNN runs float16 RNNs; matrix_exp (the naive loop) has no float16 kernel.
    assert "torch_lstm[torch]" in half and "orthogonal[triton]" in half and "naive_loop[eager]" not in half


def test_default_spec_depends_on_device():
    cpu, gpu = sweep.default_spec(CPU), sweep.default_spec(GPU)
    assert cpu.dtypes == ["float32"] and "float16" in gpu.dtypes
    assert max(gpu.seq_lens) > max(cpu.seq_lens)
    assert detect("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device must be"):
        detect("tpu")


def test_bench_writes_csv_charts_and_summary(tmp_path):
    lines = []
    cells = ["orthogonal", "torch_rnn", "naive_loop"]
    out = run_bench(tiny_spec(cells), CPU, tmp_path, progress=False, echo=lines.append)
    rows = read_csv(out.csv_path)
    assert len(rows) == 3 * 3 * 2  # 3 contestants x 3 shapes x 2 modes
    for row in rows:
        assert (
            row["tokens_per_s"] > 0
            and row["tokens_per_s_p20"] <= row["tokens_per_s"] <= row["tokens_per_s_p80"]
        )
        assert row["device"] == "cpu" and row["git_rev"] and row["torch"] == torch.__version__
        assert len(row["samples_s"].split(";")) == row["rounds"] == 2
    assert {p.name for p in out.charts} == {"throughput_vs_seq_len.png", "throughput_vs_hidden.png"}
    assert all(p.stat().st_size > 10_000 for p in out.charts)
    summary = "\n".join(lines)
    assert "orthogonal[torch]" in summary and "1.00x" in summary  # torch_rnn against itself


def test_plot_redraws_from_csv(tmp_path):
    row = {"cell": "orthogonal", "backend": "torch", "label": "orthogonal[torch]", "kind": "ours",
           "device": "cpu", "device_name": "x", "threads": 2, "dtype": "float32", "mode": "train",
           "batch": 2, "seq_len": 3, "hidden_size": 8, "input_size": 8, "sweep": "seq_len+hidden",
           "rounds": 1, "median_s": 1.0, "p20_s": 1.0, "p80_s": 1.0, "tokens_per_s": 6.0,
           "tokens_per_s_p20": 6.0, "tokens_per_s_p80": 6.0, "samples_s": "1"}  # fmt: skip
    csv_path = write_csv(
        [row, {**row, "seq_len": 30, "sweep": "seq_len", "tokens_per_s": 60.0}], tmp_path / "r.csv"
    )
    assert main(["plot", str(csv_path), "--out", str(tmp_path / "charts")]) == 0
    assert (tmp_path / "charts" / "throughput_vs_seq_len.png").exists()
    assert (tmp_path / "charts" / "throughput_vs_hidden.png").exists()
    assert "orthogonal[torch]" in format_summary(read_csv(csv_path))


def test_read_csv_rejects_a_foreign_file(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a trit-rnn bench CSV"):
        read_csv(path)


def test_gpu_branch_times_with_do_bench_and_runs_triton_and_compile(tmp_path):
    """Everything the bench does only on a GPU: do_bench timing, the triton backend, torch.compile
    of the naive loop's step."""
    calls = []

    def fake_do_bench(fn):
        fn()
        calls.append(fn)
        return 2.0  # milliseconds

    timer = sweep.timer_for(GPU, bench=fake_do_bench)
    spec = tiny_spec(["orthogonal", "naive_loop"], seq_lens=[3], hidden_sizes=[16], base_hidden=16,
                     modes=["train"], rounds=2)  # fmt: skip
    out = run_bench(spec, GPU, tmp_path, timer=timer, progress=False, echo=lambda _: None)
    labels = {r["label"] for r in out.result.rows}
    assert labels == {"orthogonal[torch]", "orthogonal[triton]", "naive_loop[eager]", "naive_loop[compile]"}
    assert not out.result.failed
    assert len(calls) == 2 * 4  # rounds x contestants
    for row in out.result.rows:
        assert row["device"] == "cuda" and row["median_s"] == pytest.approx(2e-3)
        assert row["tokens_per_s"] == pytest.approx(2 * 3 / 2e-3)


def test_gpu_timer_interleaves_rounds():
    order = []
    fns = {name: (lambda n=name: order.append(n)) for name in "ab"}
    timings = time_interleaved_gpu(fns, rounds=3, warmup=0, bench=lambda fn: (fn(), 1.5)[1])
    assert order == ["a", "b"] * 3 and timings["a"].median == pytest.approx(1.5e-3)


def test_failing_contestant_is_reported_not_timed(tmp_path, monkeypatch):
    spec = registry.get("torch_rnn")

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel for this shape")

    monkeypatch.setitem(registry._REGISTRY, "torch_rnn", dataclasses.replace(spec, build=broken))
    result = sweep.SweepResult()
    shape = tiny_spec(["torch_rnn"]).shapes()[0]
    contestants = sweep.contestants_for(["orthogonal", "torch_rnn"], CPU, "float32")
    sweep.run_shape(shape, contestants, CPU, 1, sweep.timer_for(CPU), result)
    assert [r["label"] for r in result.rows] == ["orthogonal[torch]"]
    assert "no kernel for this shape" in next(iter(result.failed.values()))


def test_cli_bench_runs_a_small_sweep(tmp_path, capsys):
    args = ["bench", "--cells", "orthogonal,torch_lstm", "--seq-len", "4", "--hidden", "8",
            "--base-seq-len", "4", "--base-hidden", "8", "--batch", "2", "--mode", "train",
            "--rounds", "1", "--device", "cpu", "--no-progress", "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "torch_lstm[torch]" in out and (tmp_path / "throughput.csv").exists()


def test_cli_rejects_unknown_cell():
    with pytest.raises(SystemExit):
        main(["bench", "--cells", "orthogonal,nonesuch"])


def test_registry_names_the_issue_cells():
    assert registry.names("ours")[0] == "orthogonal"
    assert {"torch_rnn", "torch_gru", "torch_lstm", "naive_loop"} <= set(registry.names("peer"))
    with pytest.raises(ValueError, match="unknown cell 'nope'"):
        registry.get("nope")
    assert json.dumps(registry.parse_names("all"))


def test_too_slow_contestant_is_left_out_of_costlier_shapes():
    result = sweep.SweepResult()
    small, large = tiny_spec(["torch_rnn"], modes=["train"], hidden_sizes=[]).shapes()
    assert small.seq_len < large.seq_len
    contestants = sweep.contestants_for(["torch_rnn"], CPU, "float32")
    for shape in (small, large):
        sweep.run_shape(shape, contestants, CPU, 1, sweep.timer_for(CPU), result, max_call_seconds=0.0)
    assert not result.rows
    reasons = sorted(result.skipped.values())
    assert reasons[0] == "too slow at a cheaper shape" and reasons[1].startswith("too slow: ")


def test_contestant_predicted_too_slow_is_not_run():
    result = sweep.SweepResult()
    small, large = tiny_spec(["torch_rnn"], modes=["train"], hidden_sizes=[]).shapes()
    contestants = sweep.contestants_for(["torch_rnn"], CPU, "float32")
    sweep.run_shape(small, contestants, CPU, 1, sweep.timer_for(CPU), result)
    assert len(result.rows) == 1
    # Pretend the small shape took 1 s: 5/3 of that cost (a longer T) predicts more than 1.5 s.
    key = ("torch_rnn[torch]", "train", "float32", 2)
    result.rate[key] = 1.0 / (small.seq_len * small.hidden_size**2)
    sweep.run_shape(large, contestants, CPU, 1, sweep.timer_for(CPU), result, max_call_seconds=1.5)
    assert len(result.rows) == 1
    assert "predicted from a cheaper shape" in next(v for k, v in result.skipped.items() if "T=5" in k)


def test_prediction_across_hidden_sizes_near_the_budget_leaves_the_decision_to_one_real_call():
    """T * H^2 overstates the cost of a larger hidden size: a prediction of up to twice the budget
    runs the contestant once, and its real (fast) call keeps it in."""
    result = sweep.SweepResult()
    small = tiny_spec(["torch_rnn"], modes=["train"], hidden_sizes=[]).shapes()[0]
    large = dataclasses.replace(small, hidden_size=2 * small.hidden_size, input_size=2 * small.input_size)
    contestants = sweep.contestants_for(["torch_rnn"], CPU, "float32")
    sweep.run_shape(small, contestants, CPU, 1, sweep.timer_for(CPU), result)
    key = ("torch_rnn[torch]", "train", "float32", 2)
    result.rate[key] = 0.6 / (small.seq_len * small.hidden_size**2)  # predicts 2.4 s at 4x the cost
    sweep.run_shape(large, contestants, CPU, 1, sweep.timer_for(CPU), result, max_call_seconds=1.5)
    assert len(result.rows) == 2 and not result.skipped
