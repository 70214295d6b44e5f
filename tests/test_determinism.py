"""Determinism on the CPU: identical inputs give bitwise identical outputs, final states and
gradients, run after run, for every module on both backends (the triton backend under the
interpreter, at tiny shapes), and in two fresh processes with the same seed for one module per
kernel family (the processes save their tensors; they must be equal bit for bit)."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.all_modules import FAMILY, INPUT_SIZE, NAMES, build, gradients_of

ROOT = Path(__file__).resolve().parents[1]
# (T, B) per backend: the interpreter costs milliseconds per step and program.
SHAPES = {"torch": (6, 4), "triton": (4, 3)}


def assert_bitwise_equal(names, first, second, what):
    assert len(first) == len(second) == len(names), what
    for name, a, b in zip(names, first, second, strict=True):
        assert a is not None and b is not None, f"{what}: {name} has no gradient"
        assert (a.dtype, a.shape) == (b.dtype, b.shape), f"{what}: {name} {a.dtype}, {b.dtype}"
        assert torch.equal(a, b), f"{what}: {name} differs (max |diff| {(a - b).abs().max():.3e})"


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("name", NAMES)
def test_identical_inputs_give_bitwise_identical_results_run_after_run(name, backend, caplog):
    caplog.set_level(logging.DEBUG, logger="trit_rnn")
    T, B = SHAPES[backend]
    x = torch.randn(T, B, INPUT_SIZE)
    runs = []
    for _ in range(2):  # two modules built from the same seed ...
        torch.manual_seed(1)
        module = build(name, backend)
        runs.append(gradients_of(module, x))
    runs.append(gradients_of(module, x))  # ... and the second one called again
    names = runs[0][0]
    assert runs[1][0] == runs[2][0] == names
    assert_bitwise_equal(names, runs[0][1], runs[1][1], f"{name}/{backend}: a second module")
    assert_bitwise_equal(names, runs[0][1], runs[2][1], f"{name}/{backend}: a second call")
    # The backend asked for is the one that ran (an explicit "triton" that cannot run falls back).
    choices = [r.getMessage() for r in caplog.records if " -> " in r.getMessage()]
    assert choices, "no backend choice was logged"
    assert all(m.split(" -> ")[1].startswith(repr(backend)) for m in choices), choices


@pytest.mark.parametrize("name", list(FAMILY.values()))
def test_bitwise_identical_with_two_threads_where_the_ops_run_in_parallel(name):
    """The torch backend with two OpenMP threads, at a size above ATen's 32,768-element parallel
    grain (T*B*H = 40,960), where elementwise ops and reductions may split over the threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.randn(10, 64, INPUT_SIZE)  # few steps: each op with 2 threads pays a sync
        runs = []
        for _ in range(2):
            torch.manual_seed(1)
            runs.append(gradients_of(build(name, "torch", hidden_size=64), x))
    finally:
        torch.set_num_threads(threads)
    assert_bitwise_equal(runs[0][0], runs[0][1], runs[1][1], f"{name}: two threads")


_FRESH_PROCESS = """
import logging
import sys
import torch
from tests.all_modules import FAMILY, INPUT_SIZE, build, gradients_of


class Choices(logging.Handler):
    messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


logger = logging.getLogger("trit_rnn")
logger.setLevel(logging.DEBUG)
logger.addHandler(Choices())
torch.set_num_threads(1)  # as tests/conftest.py
results = {}
for family, name in FAMILY.items():
    for backend, (T, B) in (("torch", (6, 4)), ("triton", (4, 3))):
        torch.manual_seed(0)
        x = torch.randn(T, B, INPUT_SIZE)
        Choices.messages.clear()
        names, tensors = gradients_of(build(name, backend), x)
        ran = sorted({m.split(" -> ")[1].split()[0] for m in Choices.messages if " -> " in m})
        results[f"{name}/{backend}"] = (names, tensors, ran)
torch.save(results, sys.argv[1])
"""


def test_two_fresh_processes_with_the_same_seed_give_bitwise_identical_results(tmp_path):
    """One module per kernel family (dense, complex dense, gated, deep), both backends, in two
    processes started at once (they share the autotune cache directory, as two jobs would)."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    paths = [tmp_path / f"run{k}.pt" for k in range(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _FRESH_PROCESS, str(path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for path in paths
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    first, second = (torch.load(path, weights_only=True) for path in paths)
    expected_keys = {f"{name}/{backend}" for name in FAMILY.values() for backend in ("torch", "triton")}
    assert set(first) == set(second) == expected_keys
    for key in sorted(expected_keys):
        names, tensors, ran = first[key]
        assert ran == second[key][2] == [repr(key.split("/")[1])], (key, ran)  # no fallback
        assert second[key][0] == names
        assert_bitwise_equal(names, tensors, second[key][1], f"{key}: fresh processes")
