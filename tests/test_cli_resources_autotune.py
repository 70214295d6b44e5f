"""`trit-rnn autotune` and `trit-rnn resources --chart` end to end (kernels compiled for sm_90 in a
subprocess; no GPU here, so the autotune command shows the model's choice)."""

import json

from trit_rnn.kernels import autotune

from trit_rnn.cli import main


def test_autotune_command_reports_every_candidate_and_the_models_choice(capsys):
    assert main(["autotune", "--cell", "orthogonal", "--hidden", "128"]) == 0
    out = capsys.readouterr().out
    assert "cell orthogonal -> kernel family dense; H=128, B=16, float32" in out
    assert "dense_fwd (source " in out and "dense_bwd (source " in out
    assert "model us/step @B=16" in out and "not measured" in out
    assert "BLOCK_B=64 > 16 needed for B=16" in out
    assert out.count("choice: BLOCK_B=16,") == 2 and "nothing timed" in out
    assert f"cache: {autotune.cache_path()}" in out


def test_autotune_command_json(capsys):
    assert main(["autotune", "--cell", "orthogonal", "--hidden", "128", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cell"] == "orthogonal" and data["family"] == "dense" and data["gpu"] is None
    assert data["target"] == "sm_90" and data["cache_path"] == str(autotune.cache_path())
    assert [k["kernel"] for k in data["kernels"]] == ["dense_fwd", "dense_bwd"]
    for kernel in data["kernels"]:
        assert len(kernel["candidates"]) == 12 and kernel["choice"].startswith("BLOCK_B=16,")
        chosen = next(c for c in kernel["candidates"] if c["config"] == kernel["choice"])
        assert chosen["status"] == "survivor" and chosen["spill_bytes"] == 0
        assert chosen["model_us_per_step"] > 0.5


def test_autotune_command_names_a_peer_in_its_error(capsys):
    assert main(["autotune", "--cell", "torch_lstm", "--hidden", "64"]) == 2
    err = capsys.readouterr().err
    assert "torch_lstm" in err and "peer" in err and "no Triton kernel family" in err


def test_resources_chart_and_redraw_from_its_records(tmp_path, capsys):
    args = "resources --hidden 64 --dtype float32 --config 16,8,1 --chart --out".split()
    assert main([*args, str(tmp_path)]) == 0
    out = capsys.readouterr().out
    chart, records = tmp_path / "resources_max_hidden_sm_90.png", tmp_path / "resources_sm_90.json"
    assert f"wrote {chart}" in out and f"wrote {records}" in out
    assert "model us/step @B=16" in out and "not measured" in out
    assert chart.stat().st_size > 1000
    saved = json.loads(records.read_text())
    # Every family that compiles for float32: dense, gated and deep (complex64 is not asked for).
    assert {r["kernel"] for r in saved} == {
        "dense_fwd",
        "dense_bwd",
        "lstm_fwd",
        "lstm_bwd",
        "gru_fwd",
        "gru_bwd",
        "deep_fwd",
        "deep_bwd",
    }
    assert all(r["fits"] and r["model_us_per_step"] > 0 for r in saved)

    again = tmp_path / "again"
    redraw = [
        "resources",
        "--records",
        str(records),
        "--chart",
        "--out",
        str(again),
        "--batch",
        "64",
        "--json",
    ]
    assert main(redraw) == 0
    redrawn = json.loads(capsys.readouterr().out)
    assert [r["config"] for r in redrawn] == [r["config"] for r in saved]
    assert all(r["model_batch"] == 64 for r in redrawn)
    assert (again / "resources_max_hidden_sm_90.png").stat().st_size > 1000
