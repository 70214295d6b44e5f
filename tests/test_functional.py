"""dense_recurrence through the public op, both backends, against the float64 reference:
forward and every gradient (pre, weight_hh, h0, act_bias) at awkward shapes and layouts."""

import pytest
import torch

from tests.reference import dense_recurrence_reference
from tests.tolerances import assert_close
from trit_rnn.functional import dense_recurrence

BACKENDS = ["torch", "triton"]
NONLINEARITIES = ["tanh", "relu", "identity", "modrelu"]


def make_case(T, B, H, nonlinearity, *, with_h0=True, seed=0):
    """float64 leaf tensors; W a scaled orthogonal-ish matrix so the recurrence neither dies nor explodes."""
    g = torch.Generator().manual_seed(seed)
    pre = torch.randn(T, B, H, generator=g, dtype=torch.float64) * 0.5
    weight = torch.linalg.qr(torch.randn(H, H, generator=g, dtype=torch.float64))[0] * 0.95
    h0 = torch.randn(B, H, generator=g, dtype=torch.float64) * 0.5 if with_h0 else None
    # modReLU biases of both signs, so that active and inactive units both occur.
    act_bias = (
        (torch.rand(H, generator=g, dtype=torch.float64) - 0.6) * 0.4 if nonlinearity == "modrelu" else None
    )
    grad_out = torch.randn(T, B, H, generator=g, dtype=torch.float64)
    grad_hn = torch.randn(B, H, generator=g, dtype=torch.float64)
    return pre, weight, h0, act_bias, grad_out, grad_hn


def run_and_grad(fn, leaves, grad_out, grad_hn):
    leaves = [x.detach().clone().requires_grad_() if x is not None else None for x in leaves]
    out, h_n = fn(*leaves)
    loss = (out.double() * grad_out).sum() + (h_n.double() * grad_hn).sum()
    present = [x for x in leaves if x is not None]
    grads = torch.autograd.grad(loss, present)
    return out, h_n, grads


def check_against_reference(backend, dtype, T, B, H, nonlinearity, *, with_h0=True, layout=None):
    pre, weight, h0, act_bias, grad_out, grad_hn = make_case(T, B, H, nonlinearity, with_h0=with_h0)

    def reference(p, w, h, b):
        return dense_recurrence_reference(p, w, h, nonlinearity, b)

    def ours(p, w, h, b):
        p, w = p.to(dtype), w.to(dtype)
        h = h.to(dtype) if h is not None else None
        b = b.to(dtype) if b is not None else None
        if layout == "column_major_weight":
            w = w.t().contiguous().t()
            assert not w.is_contiguous()
        if layout == "strided_pre":
            # [B, T, H] storage viewed as [T, B, H]: pre is not contiguous.
            p = p.transpose(0, 1).contiguous().transpose(0, 1)
            assert not p.is_contiguous()
        return dense_recurrence(p, w, h, nonlinearity=nonlinearity, act_bias=b, backend=backend)

    leaves = [pre, weight, h0, act_bias]
    ref_out, ref_hn, ref_grads = run_and_grad(reference, leaves, grad_out, grad_hn)
    out, h_n, grads = run_and_grad(ours, leaves, grad_out, grad_hn)
    assert out.dtype == dtype and h_n.dtype == dtype
    assert_close(out, ref_out, dtype, "outputs")
    assert_close(h_n, ref_hn, dtype, "h_n")
    names = [n for n, x in zip(["pre", "weight_hh", "h0", "act_bias"], leaves, strict=True) if x is not None]
    for name, g, rg in zip(names, grads, ref_grads, strict=True):
        assert_close(g, rg, dtype, f"grad {name}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize(
    "T,B,H",
    [(1, 1, 20), (7, 19, 20), (5, 3, 190)],
    ids=["T1-B1-H20", "T7-B19-H20", "T5-B3-H190"],
)
def test_float32_matches_float64_reference(backend, nonlinearity, T, B, H):
    check_against_reference(backend, torch.float32, T, B, H, nonlinearity)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nonlinearity", ["tanh", "modrelu"])
def test_float64(backend, nonlinearity):
    check_against_reference(backend, torch.float64, 6, 5, 33, nonlinearity)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_storage_float32_state(backend, dtype):
    check_against_reference(backend, dtype, 9, 4, 48, "tanh")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["column_major_weight", "strided_pre"])
def test_strides_are_honoured(backend, layout):
    check_against_reference(backend, torch.float32, 5, 6, 24, "tanh", layout=layout)


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_zero_initial_state(backend):
    check_against_reference(backend, torch.float32, 4, 2, 16, "modrelu", with_h0=False)


def test_backends_agree_at_odd_batch_beyond_one_tile():
    """B=40 spans three 16-row tiles on the triton backend (the last one partial)."""
    pre, weight, h0, act_bias, _, _ = make_case(6, 40, 36, "modrelu")
    args = [x.float() for x in (pre, weight, h0, act_bias)]
    out_t, hn_t = dense_recurrence(*args[:3], nonlinearity="modrelu", act_bias=args[3], backend="torch")
    out_k, hn_k = dense_recurrence(*args[:3], nonlinearity="modrelu", act_bias=args[3], backend="triton")
    assert_close(out_k, out_t, torch.float32, "outputs")
    assert_close(hn_k, hn_t, torch.float32, "h_n")


def test_gradcheck_float64_torch_backend():
    pre, weight, h0, act_bias, _, _ = make_case(4, 2, 6, "modrelu")
    leaves = [x.requires_grad_() for x in (pre, weight, h0, act_bias)]

    def fn(p, w, h, b):
        return dense_recurrence(p, w, h, nonlinearity="modrelu", act_bias=b, backend="torch")

    assert torch.autograd.gradcheck(fn, leaves)


def test_eager_calls_run_the_eager_twin_and_equal_the_custom_op():
    """Outside torch.compile dense_recurrence runs autograd/eager.py's Function, which skips the
    custom op's Python dispatch: same implementation, so outputs and gradients are equal bit for bit."""
    from trit_rnn.autograd.dense import dense_recurrence_op

    pre, weight, h0, act_bias, _, _ = make_case(5, 3, 8, "modrelu")
    grads = []
    for via_op in (False, True):
        leaves = [t.float().clone().requires_grad_() for t in (pre, weight, h0, act_bias)]
        if via_op:
            outputs, h_n = dense_recurrence_op(*leaves[:3], leaves[3], None, "modrelu", "torch")
        else:
            outputs, h_n = dense_recurrence(
                *leaves[:3], nonlinearity="modrelu", act_bias=leaves[3], backend="torch"
            )
            assert type(outputs.grad_fn).__name__ == "DenseRecurrenceBackward"
        (outputs.sum() + h_n.square().sum()).backward()
        grads.append([outputs, h_n, *(leaf.grad for leaf in leaves)])
    for ours, theirs in zip(*grads, strict=True):
        assert torch.equal(ours, theirs)


def test_custom_op_registration_is_consistent():
    """Fake kernels, schema and autograd registration agree with the real kernels."""
    from trit_rnn.autograd.dense import dense_recurrence_op

    pre, weight, h0, act_bias, _, _ = make_case(3, 2, 8, "modrelu")
    args = (
        pre.float().requires_grad_(),
        weight.float().requires_grad_(),
        h0.float(),
        act_bias.float(),
        None,
        "modrelu",
        "torch",
    )
    torch.library.opcheck(dense_recurrence_op, args)
