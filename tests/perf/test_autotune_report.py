"""`trit-rnn autotune`'s report: the static/model path and the GPU timing path, with the compiler,
the GPU query, the kernel launches and do_bench injected, so that no branch first runs on a user's
GPU."""

import pytest
import torch
from trit_rnn.kernels import autotune
from trit_rnn.kernels.dense import launch
from trit_rnn.kernels.specs import Config
from trit_rnn.perf import autotune_report, gpu_model

FWD_SPILLS_AT = (Config(16, 4, 1), Config(16, 4, 2))


def _fake_records(spilling=FWD_SPILLS_AT, smem_over=()):
    """compile_records stand-in: sm_90 records for every requested config and both kernels; the
    forward spills at the `spilling` configs, and overflows shared memory at `smem_over`."""
    calls = []

    def compile_records(target, hidden, dtype, configs, family):
        calls.append((target, hidden, dtype, list(configs), family))
        records = []
        for config in configs:
            for kernel in ("dense_fwd", "dense_bwd"):
                spills = 76 if kernel == "dense_fwd" and config in spilling else 0
                over = kernel == "dense_fwd" and config in smem_over
                problems = (["spills: 76 B stored, 76 B loaded"] if spills else []) + (
                    ["shared 300000 B > 232448 B limit"] if over else []
                )
                records.append({
                    "kernel": kernel, "target": target, "dtype": dtype, "hidden_size": hidden,
                    "config": config.label(), "block_b": config.block_b, "num_warps": config.num_warps,
                    "num_stages": config.num_stages, "registers": 255 if spills else 128,
                    "spill_bytes": spills, "shared_bytes": 300000 if over else 73728 + 4096 * config.block_b // 16,
                    "tensor_core_ops": 0, "fits": not problems, "problems": problems,
                    "meta": {"BLOCK_H": 128},
                })  # fmt: skip
        return records

    return compile_records, calls


class _Compiled:
    def __init__(self, n_spills):
        self.n_spills = n_spills


def _fake_gpu(milliseconds, spills):
    """A Gpu whose launches return compiled kernels with spill counts and whose do_bench returns
    fixed milliseconds per config."""
    current = {}
    runs_made = []

    def runs(launch_module, hidden, batch, dtype, seq_len):
        runs_made.append((launch_module, hidden, batch, dtype, seq_len))

        def make(kernel):
            def run(config):
                current["config"] = config
                return _Compiled(spills.get((kernel, config), 0))

            return run

        return {kernel: make(kernel) for kernel in launch.KERNELS}

    def do_bench(fn):
        fn()
        return milliseconds[current["config"]]

    return autotune_report.Gpu("Fake H100", 232448, runs, do_bench), runs_made


def test_peer_cells_give_a_clear_error():
    with pytest.raises(ValueError, match=r"cell 'torch_rnn' .* is a peer: it has no Triton kernel family"):
        autotune_report.resolve_family("torch_rnn")
    with pytest.raises(ValueError, match="unknown cell 'nope'"):
        autotune_report.resolve_family("nope")
    assert autotune_report.resolve_family("orthogonal") == ("dense", launch)


def test_static_path_prunes_and_picks_the_models_best(tmp_path):
    compile_records, calls = _fake_records()
    cache = autotune.AutotuneCache(tmp_path / "autotune.json")
    report = autotune_report.autotune_cell(
        "orthogonal", 128, batch=32, dtype="float32", target="sm_90",
        compile_records=compile_records, cache=cache,
    )  # fmt: skip
    # Only the configs the static budget keeps are compiled: BLOCK_B=64 is wider than B=32 needs.
    ((target, hidden, dtype, compiled, family),) = calls
    assert (target, hidden, dtype, family) == ("sm_90", 128, "float32", "dense")
    assert {c.block_b for c in compiled} == {16, 32} and len(compiled) == 8

    fwd, bwd = report.kernels
    assert fwd.kernel == "dense_fwd" and fwd.signature == autotune.kernel_signature(launch.dense_fwd_kernel)
    status = {c.config: c.status for c in fwd.candidates}
    assert status[Config(16, 4, 1)] == "register spills: 76 bytes"
    assert status[Config(64, 8, 1)] == "BLOCK_B=64 > 32 needed for B=32"
    assert status[Config(16, 8, 1)] == "survivor"
    # B=32: two BLOCK_B=16 programs on two SMs beat one BLOCK_B=32 program doing twice the math.
    assert fwd.choice.block_b == 16 and "model" in fwd.choice_source and "not measured" in fwd.choice_source
    assert "nothing timed" in fwd.choice_source and "tied with" in fwd.choice_source
    modelled = {c.config: c.model_us for c in fwd.candidates}
    assert modelled[Config(16, 4, 1)] is None and modelled[Config(16, 8, 1)] == pytest.approx(1.533, rel=1e-3)
    assert modelled[Config(32, 8, 1)] > modelled[Config(16, 8, 1)]
    assert all(c.gpu_ms is None for c in fwd.candidates + bwd.candidates)
    # Nothing written to the cache without a GPU.
    assert not cache.path.exists() and fwd.cached == {}

    data = report.to_json()
    assert data["gpu"] is None and data["model"] == gpu_model.LABEL
    assert data["cache_path"] == str(cache.path)
    text = autotune_report.format_report(report)
    assert "GPU: none" in text and "model us/step @B=32" in text and str(cache.path) in text
    assert "cached: no entry for this key" in text


def test_static_path_shows_a_cached_entry_and_ptxas_misfits(tmp_path):
    compile_records, _ = _fake_records(spilling=(), smem_over=(Config(16, 8, 1),))
    cache = autotune.AutotuneCache(tmp_path / "autotune.json")
    key = launch.autotune_key(128, 16, torch.float32)
    signature = autotune.kernel_signature(launch.dense_fwd_kernel)
    cache.put("dense_fwd", key, "NVIDIA H100 80GB HBM3", signature, Config(16, 4, 2))
    report = autotune_report.autotune_cell(
        "orthogonal", 128, batch=16, compile_records=compile_records, cache=cache
    )
    fwd = report.kernels[0]
    assert fwd.cached == {"NVIDIA H100 80GB HBM3": Config(16, 4, 2)}
    status = {c.config: c.status for c in fwd.candidates}
    assert status[Config(16, 8, 1)].startswith("ptxas: shared 300000 B")
    assert fwd.choice != Config(16, 8, 1)
    assert "cached on NVIDIA H100 80GB HBM3: BLOCK_B=16,w4,s2" in autotune_report.format_report(report)


def test_gpu_path_times_every_survivor_and_caches_the_fastest(tmp_path):
    compile_records, _ = _fake_records()
    milliseconds = {c: 1.0 + 0.1 * i for i, c in enumerate(launch.candidate_configs())}
    milliseconds[Config(32, 8, 2)] = 0.32  # the fastest that survives
    milliseconds[Config(16, 4, 1)] = 0.05  # faster, but its forward spills
    spills = {("dense_fwd", Config(16, 4, 1)): 64}
    gpu, runs_made = _fake_gpu(milliseconds, spills)
    cache = autotune.AutotuneCache(tmp_path / "autotune.json")
    report = autotune_report.autotune_cell(
        "orthogonal", 128, batch=32, compile_records=compile_records, cache=cache, gpu=gpu, seq_len=64
    )
    assert runs_made == [(launch, 128, 32, torch.float32, 64)]
    fwd, bwd = report.kernels
    timed = {c.config: c.gpu_ms for c in fwd.candidates if c.gpu_ms is not None}
    # Every BLOCK_B 16/32 config but the spilling one is timed; BLOCK_B=64 is wider than B=32 needs.
    assert set(timed) == {c for c in launch.candidate_configs() if c.block_b in (16, 32)} - {Config(16, 4, 1)}
    assert timed[Config(32, 8, 2)] == pytest.approx(0.32)
    status = {c.config: c.status for c in fwd.candidates}
    assert status[Config(16, 4, 1)] == "register spills: 64 bytes" and status[Config(32, 8, 2)] == "timed"
    assert fwd.choice == Config(32, 8, 2) and "do_bench on Fake H100" in fwd.choice_source
    assert bwd.choice == Config(16, 4, 1)  # the backward does not spill there: fastest overall
    key = launch.autotune_key(128, 32, torch.float32)
    for k in (fwd, bwd):
        assert cache.get(k.kernel, key, "Fake H100", k.signature) == k.choice
        assert k.cached == {"Fake H100": k.choice}
    text = autotune_report.format_report(report)
    assert "GPU: Fake H100" in text and "GPU ms" in text and "GPU us/step" in text
    assert "0.3200" in text and "5.00" in text  # 0.32 ms over T=64 steps: 5 us per step
    assert report.to_json()["kernels"][0]["choice"] == "BLOCK_B=32,w8,s2"


def test_gpu_path_times_a_lone_survivor(tmp_path):
    compile_records, _ = _fake_records(spilling=())
    gpu, _ = _fake_gpu({Config(16, 8, 1): 0.3}, {})
    report = autotune_report.autotune_cell(
        "orthogonal", 128, batch=8, configs=[Config(16, 8, 1), Config(32, 8, 1)], gpu=gpu,
        compile_records=compile_records, cache=autotune.AutotuneCache(tmp_path / "c.json"),
    )  # fmt: skip
    assert [c.gpu_ms for c in report.kernels[0].candidates] == [pytest.approx(0.3), None]


def test_detect_gpu_with_the_device_query_injected():
    gpu = autotune_report.detect_gpu(
        is_available=lambda: True, interpreter=False, query=lambda: ("Fake H100", 232448)
    )
    assert gpu.name == "Fake H100" and gpu.shared_limit == 232448
    assert gpu.runs is autotune_report.device_runs
    assert autotune_report.detect_gpu(is_available=lambda: False, interpreter=False) is None
    # Under the interpreter (the test suite) the kernels cannot be timed as GPU kernels.
    assert autotune_report.detect_gpu(is_available=lambda: True) is None


def test_cuda_query_and_do_bench_wrappers(monkeypatch):
    class Props:
        shared_memory_per_block_optin = 232448

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Props() if index == 1 else None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"Fake H100 #{index}")
    assert autotune_report._cuda_query() == ("Fake H100 #1", 232448)

    import triton.testing

    monkeypatch.setattr(triton.testing, "do_bench", lambda fn: fn() or 0.7)
    assert autotune_report._do_bench(lambda: None) == 0.7


def test_device_runs_launch_the_real_kernels():
    """The GPU path's launches, run here under the interpreter on CPU tensors at a tiny shape."""
    runs = autotune_report.device_runs(launch, 20, 3, torch.float32, 3, device="cpu")
    assert set(runs) == {"dense_fwd", "dense_bwd"}
    for run in runs.values():
        assert autotune.spilled_bytes(run(Config(16, 4, 1))) == 0
