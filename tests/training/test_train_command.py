"""`trit-rnn train` end to end on tiny runs: outputs, the --json line, bit-for-bit resume, and
argument errors that name the argument."""

import json

import pytest
import torch

from trit_rnn.cli import main
from trit_rnn.training.checkpoint import checkpoint_path
from trit_rnn.training.records import read_rows

TINY = ["--seq-len", "5", "--hidden", "8", "--batch", "4", "--eval-batch", "16", "--no-progress"]
REQUIRED = {"task", "cell", "final_loss", "baseline_loss", "steps", "seconds"}


def run_json(capsys, *args):
    assert main(["train", *args, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_ours_and_a_peer_end_to_end(tmp_path, capsys):
    results = run_json(capsys, "copying", "--cell", "orthogonal,torch_gru", *TINY, "--steps", "4",
                       "--eval-every", "2", "--out", str(tmp_path))  # fmt: skip
    assert isinstance(results, list) and [r["cell"] for r in results] == ["orthogonal", "torch_gru"]
    for r in results:
        assert REQUIRED <= r.keys() and "accuracy" in r
        assert r["task"] == "copying" and r["steps"] == 4 and r["seconds"] > 0
        assert r["baseline_loss"] == pytest.approx(10 * torch.log(torch.tensor(8.0)).item() / 25)
        assert r["final_loss"] > 0 and 0 <= r["accuracy"] <= 1
    # the orthogonal matrix trains at lr/10 in its own group
    assert [g["lr"] for g in results[0]["optimizer_groups"]] == [1e-4, 1e-3]
    rows = read_rows(tmp_path / "train_copying_T5.jsonl")
    assert [(r["cell"], r["step"]) for r in rows] == [
        (c, s) for c in ("orthogonal", "torch_gru") for s in (0, 2, 4)
    ]
    csv_lines = (tmp_path / "train_copying_T5.csv").read_text().splitlines()
    assert csv_lines[0].startswith("task,cell,step") and len(csv_lines) == 7
    assert (tmp_path / "train_copying_T5.png").stat().st_size > 0
    assert checkpoint_path(tmp_path, "train_copying_T5", "torch_gru").exists()


def test_single_cell_json_is_an_object_with_the_required_keys(tmp_path, capsys):
    result = run_json(capsys, "adding", "--cell", "goru", *TINY, "--steps", "2", "--out", str(tmp_path))
    assert isinstance(result, dict) and REQUIRED <= result.keys()
    assert result["cell"] == "goru" and result["baseline_loss"] == pytest.approx(1 / 6)
    assert "accuracy" not in result  # the adding problem has none


def test_digits_and_unitary_cell_with_cayley_optimizer(tmp_path, capsys):
    result = run_json(capsys, "digits", "--cell", "fullcap_urnn", "--hidden", "4", "--batch", "4", "--steps", "2",
                      "--no-progress", "--out", str(tmp_path))  # fmt: skip
    assert result["task"] == "digits" and result["seq_len"] == 64 and 0 <= result["accuracy"] <= 1
    assert [g["unitary"] for g in result["optimizer_groups"]] == [True, False]


def _final_state(out, cell):
    return torch.load(checkpoint_path(out, "train_copying_T5", cell), weights_only=False)


def _rows(out):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_rows(out / "train_copying_T5.jsonl")]


@pytest.mark.parametrize("cell, extra", [("orthogonal", []), ("lstm", ["--tbptt", "7"]), ("urnn", [])])
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path, capsys, cell, extra):
    common = ["copying", "--cell", cell, *TINY, "--eval-every", "2", "--checkpoint-every", "3", *extra]
    whole, split = tmp_path / "whole", tmp_path / "split"
    run_json(capsys, *common, "--steps", "7", "--out", str(whole))
    run_json(capsys, *common, "--steps", "3", "--out", str(split))  # "interrupted" after step 3
    resumed = run_json(capsys, *common, "--steps", "7", "--out", str(split), "--resume")
    assert resumed["steps"] == 7
    a, b = _final_state(whole, cell), _final_state(split, cell)
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert torch.equal(a["data_rng"], b["data_rng"])
    assert _rows(whole) == _rows(split)
    assert [r["step"] for r in _rows(split)] == [0, 2, 4, 6, 7]


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    common = ["copying", "--cell", "orthogonal", *TINY, "--steps", "2", "--out", str(tmp_path)]
    run_json(capsys, *common)
    assert main(["train", *common, "--lr", "0.01", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "lr" in err


def test_tbptt_on_a_last_step_task_updates_from_the_last_chunk(tmp_path, capsys):
    result = run_json(capsys, "adding", "--cell", "torch_lstm", *TINY, "--steps", "2", "--tbptt", "2",
                      "--out", str(tmp_path))  # fmt: skip
    assert result["tbptt"] == 2 and result["final_loss"] is not None


@pytest.mark.parametrize(
    "args, argument",
    [
        (["copying", "--cell", "orthogonal", "--steps", "0"], "--steps"),
        (["copying", "--cell", "orthogonal", "--seq-len", "-3"], "--seq-len"),
        (["copying", "--cell", "orthogonal", "--lr", "0"], "--lr"),
        (["copying", "--cell", "orthogonal", "--clip", "-1"], "--clip"),
        (["copying", "--cell", "orthogonal", "--tbptt", "0"], "--tbptt"),
        (["digits", "--cell", "orthogonal", "--seq-len", "10"], "--seq-len"),
        (["copying", "--cell", "orthogonal", "--dtype", "int8"], "--dtype"),
        (["copying", "--cell", "orthogonal", "--backend", "triton"], "--backend"),
        (["copying", "--cell", "orthogonal,orthogonal"], "--cell"),
    ],
)
def test_bad_arguments_name_the_argument(args, argument, tmp_path, capsys):
    assert main(["train", *args, "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trit-rnn train: error:") and argument in err


@pytest.mark.parametrize(
    "args, argument",
    [(["copying", "--cell", "no_such_cell"], "--cell"), (["sudoku", "--cell", "gru"], "task")],
)
def test_unknown_names_are_usage_errors(args, argument, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["train", *args])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert argument in err and ("unknown cell" in err or "invalid choice" in err)
