"""Every module in the PyTorch ecosystem (tests/all_modules.py builds them; torch.compile is
tests/test_compile.py):
- torch.autocast("cpu", bfloat16): forward and backward run, the ops receive one floating dtype
  each (never a bfloat16 input mixed with float32 weights), every gradient has its parameter's
  dtype, and outputs and gradients are within the bfloat16 entry of tests/tolerances.py of the
  float32 run;
- DistributedDataParallel (gloo, 2 CPU processes): two SGD-with-momentum steps on two halves of a
  batch give the gradients and parameters of single-process training on the whole batch;
- state_dict round-trips (through torch.save / torch.load(weights_only=True)) into a module built
  from another seed, parametrisations included: identical outputs and gradients;
- copy.deepcopy and pickle give independent modules with identical outputs and gradients.
"""

import copy
import datetime
import io
import os
import pickle
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel
from torch.utils._python_dispatch import TorchDispatchMode

from tests.all_modules import FAMILY, INPUT_SIZE, NAMES, build, gradients_of, loss_of, run_module
from tests.tolerances import assert_close
from trit_rnn.backends import cpu_gemm

# --------------------------------------------------------------------------------------------
# autocast

BF16 = torch.bfloat16
# (name, backend, options, projection): every module on the CPU's torch backend, its input
# projections on oneDNN (a custom op, which autocast leaves alone) or on F.linear (which autocast
# makes bfloat16: the path a GPU and torch.compile take); one module per kernel family on the
# triton backend with F.linear projections (a GPU's autocast, here under the interpreter, tiny);
# the real-state EUNN, whose F.linear projection feeds the dense op directly.
AUTOCAST_CASES = (
    [(name, "torch", {}, projection) for name in NAMES for projection in ("onednn", "F.linear")]
    + [(name, "triton", {}, "F.linear") for name in FAMILY.values()]
    + [("eunn", backend, {"complex": False}, "F.linear") for backend in ("torch", "triton")]
)


def _case_id(case):
    name, backend, options, projection = case
    return f"{name}-{backend}-{projection}" + "".join(f"-{k}={v}" for k, v in options.items())


class _OpDtypes(TorchDispatchMode):
    """Records the dtypes of the tensor arguments of every trit_rnn custom op called."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func).startswith("trit_rnn."):
            tensors = [a for a in (*args, *(kwargs or {}).values()) if isinstance(a, torch.Tensor)]
            floating = [t.dtype for t in tensors if t.is_floating_point() or t.is_complex()]
            self.calls.append((str(func), floating))
        return func(*args, **(kwargs or {}))


def _real(dtype):
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)


@pytest.mark.parametrize("case", AUTOCAST_CASES, ids=_case_id)
def test_autocast_bfloat16_runs_and_stays_close_to_float32(case, monkeypatch):
    name, backend, options, projection = case
    if projection == "F.linear":
        monkeypatch.setattr(cpu_gemm, "onednn_runs", lambda x: False)
    T, B = (4, 3) if backend == "triton" else (6, 4)
    torch.manual_seed(1)
    module = build(name, backend, **options)
    x = torch.randn(T, B, INPUT_SIZE)
    names, reference = gradients_of(module, x)  # float32

    module.zero_grad(set_to_none=True)
    leaf = x.clone().requires_grad_()
    spy = _OpDtypes()
    with torch.autocast("cpu", dtype=BF16), spy:
        output, states = run_module(module, leaf)
    # Backward outside the autocast region, as PyTorch recommends; the loss in float32.
    loss_of(output.float(), [s.float() for s in states]).backward()

    assert spy.calls, "no trit_rnn op ran"
    for op, dtypes in spy.calls:
        assert dtypes and all(d in (torch.float32, BF16, torch.complex64) for d in dtypes), (op, dtypes)
        assert len({_real(d) for d in dtypes}) == 1, f"{op} got mixed dtypes {dtypes}"
    assert output.dtype in (torch.float32, BF16)
    for pname, p in module.named_parameters():
        assert p.grad is not None and p.grad.dtype == p.dtype, f"{pname}: grad {p.grad}"
    got = [output, *states, leaf.grad, *(p.grad for _, p in module.named_parameters())]
    for what, actual, expected in zip(names, got, reference, strict=True):
        assert torch.isfinite(torch.view_as_real(actual) if actual.is_complex() else actual).all(), what
        assert_close(actual.detach(), expected, BF16, f"{name} {what} under autocast")


# --------------------------------------------------------------------------------------------
# DistributedDataParallel

DDP_T, DDP_BATCH, DDP_STEPS = 5, 4, 2  # each of the 2 ranks takes 2 sequences


def _ddp_batch():
    generator = torch.Generator().manual_seed(1234)
    return torch.randn(DDP_T, DDP_BATCH, INPUT_SIZE, generator=generator)


def _train(module, x, steps):
    """SGD with momentum on the batch-mean loss; returns the gradients of every step (after DDP's
    all-reduce when module is a DDP wrapper) and the parameters after the last step."""
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9)
    grads = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        output, states = run_module(module, x)
        (loss_of(output, states) / x.shape[1]).backward()
        grads.append([p.grad.clone() for p in module.parameters()])
        optimizer.step()
    return grads, [p.detach().clone() for p in module.parameters()]


def _ddp_worker(rank, world_size, port, out_dir):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=120))
    try:
        shard = _ddp_batch().chunk(world_size, dim=1)[rank]  # time-major: the batch is dim 1
        results = {}
        for k, name in enumerate(NAMES):
            torch.manual_seed(100 + k)
            model = DistributedDataParallel(build(name))
            results[name] = _train(model, shard, DDP_STEPS)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_with_gloo_on_two_processes_equals_single_process_training(tmp_path):
    """Every module, two optimizer steps: DDP's averaged gradients of the two half-batch mean losses
    are the gradient of the whole batch's mean loss."""
    mp.start_processes(
        _ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn"
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    x = _ddp_batch()
    for k, name in enumerate(NAMES):
        torch.manual_seed(100 + k)
        module = build(name)
        expected_grads, expected_params = _train(module, x, DDP_STEPS)
        names = [n for n, _ in module.named_parameters()]
        for rank, results in enumerate(ranks):
            grads, params = results[name]
            for step in range(DDP_STEPS):
                for pname, a, b in zip(names, grads[step], expected_grads[step], strict=True):
                    assert_close(a, b, _real(b.dtype), f"{name} rank {rank} step {step} grad {pname}")
            for pname, a, b in zip(names, params, expected_params, strict=True):
                assert_close(a, b, _real(b.dtype), f"{name} rank {rank} parameter {pname}")
        # The replicas stay in sync bit for bit.
        for a, b in zip(ranks[0][name][1], ranks[1][name][1], strict=True):
            assert torch.equal(a, b), name


# --------------------------------------------------------------------------------------------
# state_dict, deepcopy, pickle


def _outputs_and_grads(module, x):
    return gradients_of(module, x)[1]


def _assert_identical(first, second, what):
    for k, (a, b) in enumerate(zip(first, second, strict=True)):
        assert a.dtype == b.dtype and torch.equal(a, b), f"{what}: tensor {k} differs"


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trips_into_a_module_built_from_another_seed(name):
    torch.manual_seed(1)
    source = build(name)
    torch.manual_seed(2)
    target = build(name)
    x = torch.randn(6, 4, INPUT_SIZE)
    expected = _outputs_and_grads(source, x)
    assert not torch.equal(_outputs_and_grads(target, x)[0], expected[0])  # the seed matters
    state = source.state_dict()
    # Every parameter (the parametrisations' too) is saved, and buffers (uRNN's permutation, the
    # Cayley map's diagonal); the equality below shows that nothing else defines the function.
    params = {n for n, _ in source.named_parameters()}
    assert params <= set(state) <= params | {n for n, _ in source.named_buffers()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    result = target.load_state_dict(torch.load(buffer, weights_only=True))
    assert not result.missing_keys and not result.unexpected_keys
    _assert_identical(_outputs_and_grads(target, x), expected, f"{name} after load_state_dict")


@pytest.mark.parametrize("name", NAMES)
def test_deepcopy_and_pickle_give_independent_identical_modules(name):
    torch.manual_seed(1)
    module = build(name)
    x = torch.randn(6, 4, INPUT_SIZE)
    expected = _outputs_and_grads(module, x)
    copies = {"deepcopy": copy.deepcopy(module), "pickle": pickle.loads(pickle.dumps(module))}
    for how, clone in copies.items():
        assert type(clone) is type(module) and repr(clone) == repr(module)
        _assert_identical(_outputs_and_grads(clone, x), expected, f"{name} {how}")
        own = {p.data_ptr() for p in module.parameters()}
        assert not own & {p.data_ptr() for p in clone.parameters()}, f"{name} {how} shares parameters"
        with torch.no_grad():  # changing the copy leaves the original alone
            for p in clone.parameters():
                p.add_(0.5)
        assert not torch.equal(_outputs_and_grads(clone, x)[0], expected[0])
        _assert_identical(_outputs_and_grads(module, x), expected, f"{name} original after {how} changed")
