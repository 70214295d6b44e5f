"""The `trit-rnn` command line: the demo (main job) runs end to end and reports what it did."""

import json

import pytest

from trit_rnn.cli import main


def test_demo_trains_and_reports_json(capsys):
    assert main(["demo", "--steps", "30", "--seq-len", "6", "--hidden", "16", "--batch", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["task"] == "adding" and result["steps"] == 30 and result["seq_len"] == 6
    assert result["baseline_mse"] == pytest.approx(1 / 6)
    assert 0 < result["test_mse"] < 10 and result["tokens_per_s"] > 0
    # 30 Adam steps from a random readout: the loss falls from its first steps.
    assert result["final_train_mse"] < result["first_mse"]


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as excinfo:
        main(["frobnicate"])
    assert excinfo.value.code == 2


def test_resources_reports_a_compiled_config(capsys):
    """`trit-rnn resources` compiles for sm_90 in a subprocess (the tests run under the interpreter)."""
    args = [
        "resources",
        "--target",
        "sm_90",
        "--hidden",
        "64",
        "--dtype",
        "float32",
        "--config",
        "16,8,1",
        "--json",
    ]
    assert main(args) == 0
    records = json.loads(capsys.readouterr().out)
    # every real kernel family; the complex one compiles for complex dtypes only
    families = {
        "dense_fwd",
        "dense_bwd",
        "lstm_fwd",
        "lstm_bwd",
        "gru_fwd",
        "gru_bwd",
        "deep_fwd",
        "deep_bwd",
    }
    assert {r["kernel"] for r in records} == families
    for r in records:
        assert r["hidden_size"] == 64 and r["config"] == "BLOCK_B=16,w8,s1"
        assert r["registers"] > 0 and r["spill_bytes"] == 0 and r["fits"]


@pytest.mark.parametrize(
    ("argv", "budget"),
    [([], 1.5), (["--hidden", "256"], float("inf")), (["--seq-len", "1000"], float("inf")),
     (["--hidden", "256", "--max-call-seconds", "3"], 3.0)],
)  # fmt: skip
def test_bench_time_budget_is_the_default_sweeps(argv, budget):
    """Shapes asked for on the command line run for every contestant: no peer is left out as too
    slow unless --max-call-seconds asks for it."""
    from trit_rnn.perf.device import detect
    from trit_rnn.perf.sweep import default_spec

    from trit_rnn.cli import bench_spec, build_parser

    args = build_parser().parse_args(["bench", "--cells", "lstm,torch_lstm", *argv])
    spec = bench_spec(args, default_spec(detect("cpu"), args.cells))
    assert spec.max_call_seconds == budget
    assert spec.rounds == (3 if not argv else 5), "explicit shapes: SweepSpec's 5 rounds, not the sweep's 3"
