"""The max-hidden-size chart of `trit-rnn resources --chart`, from hand-written AOT records."""

import json

from trit_rnn.perf import resource_chart


def _r(kernel, dtype, hidden, config="BLOCK_B=16,w8,s1", fits=True, target="sm_90", **extra):
    return {"kernel": kernel, "dtype": dtype, "hidden_size": hidden, "config": config, "fits": fits,
            "target": target, **extra}  # fmt: skip


RECORDS = [
    _r("dense_fwd", "float32", 64),
    _r("dense_fwd", "float32", 128),
    _r("dense_fwd", "float32", 256, fits=False),
    _r("dense_fwd", "bfloat16", 128),
    _r("dense_fwd", "bfloat16", 256),
    _r("dense_fwd", "bfloat16", 256, config="BLOCK_B=32,w8,s1"),
    _r("dense_fwd", "bfloat16", 384, fits=False),
    _r("dense_bwd", "float32", 64, fits=False),
    _r("dense_bwd", "float32", 128, fits=False),
    _r("dense_bwd", "bfloat16", 128),
    # A compile error never counts as a fit, even with a larger H.
    _r("dense_bwd", "bfloat16", 512, fits=False, error="CompilationError: boom"),
    # A record of a step that failed before any kernel is not a kernel group.
    {"kernel": "dense:compile_specs", "target": "sm_90", "fits": False, "error": "x"},
]


def test_max_fitting_hidden_per_kernel_and_dtype():
    found = resource_chart.max_fitting_hidden(RECORDS)
    assert found == {
        ("dense_fwd", "float32"): (128, ["BLOCK_B=16,w8,s1"]),
        ("dense_fwd", "bfloat16"): (256, ["BLOCK_B=16,w8,s1", "BLOCK_B=32,w8,s1"]),
        ("dense_bwd", "float32"): (None, []),
        ("dense_bwd", "bfloat16"): (128, ["BLOCK_B=16,w8,s1"]),
    }


def test_nothing_fits_anywhere():
    found = resource_chart.max_fitting_hidden([_r("dense_fwd", "float32", 64, fits=False)])
    assert found == {("dense_fwd", "float32"): (None, [])}


def test_chart_and_records_are_written(tmp_path):
    other_target = _r("dense_fwd", "float32", 384, target="sm_80")
    chart, data = resource_chart.write_chart_and_records(
        RECORDS + [other_target], "sm_90", tmp_path / "plots"
    )
    assert chart == tmp_path / "plots" / "resources_max_hidden_sm_90.png"
    assert chart.stat().st_size > 1000 and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data == tmp_path / "plots" / "resources_sm_90.json"
    # Only this target's records, and they read back as written (the chart can be redrawn).
    assert resource_chart.read_records(data) == json.loads(json.dumps(RECORDS))
    redrawn = resource_chart.draw_max_hidden_chart(
        resource_chart.read_records(data), "sm_90", tmp_path / "again.png"
    )
    assert redrawn.stat().st_size > 1000


def test_chart_of_records_where_nothing_fits(tmp_path):
    path = resource_chart.draw_max_hidden_chart(
        [_r("dense_fwd", "float32", 64, fits=False)], "sm_80", tmp_path / "none.png"
    )
    assert path.stat().st_size > 1000
