"""A small persistent-style kernel used to exercise the ahead-of-time compiler (kernels/aot.py)
independently of the real kernel families: each program owns BLOCK_B rows of x, keeps W (H x H)
on chip, and applies h <- relu(h W^T + x_t) for T steps. Masked to any B and H."""

import torch
import triton
import triton.language as tl
from trit_rnn.kernels.specs import CompileSpec, Config


@triton.jit(do_not_specialize=["T"])
def probe_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    B,
    H,
    T,
    stride_xt,
    stride_xb,
    BLOCK_B: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B).to(tl.int64)
    cols = tl.arange(0, BLOCK_H).to(tl.int64)
    rmask = rows < B
    cmask = cols < H
    wmask = cmask[:, None] & cmask[None, :]
    # W^T tile: element (k, n) = W[n, k]
    wt = tl.load(w_ptr + cols[None, :] * H + cols[:, None], mask=wmask, other=0.0)
    h = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
    m2 = rmask[:, None] & cmask[None, :]
    for t in range(T):
        xt = tl.load(x_ptr + t * stride_xt + rows[:, None] * stride_xb + cols[None, :], mask=m2, other=0.0)
        z = tl.dot(h.to(wt.dtype), wt, input_precision="tf32") + xt.to(tl.float32)
        h = tl.maximum(z, 0.0)
    tl.store(out_ptr + rows[:, None] * H + cols[None, :], h.to(out_ptr.dtype.element_ty), mask=m2)


_TY = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def candidate_configs():
    return [Config(16, 4, 1), Config(64, 4, 1)]


# compile_specs(BROKEN_HIDDEN_SIZE, ...) deliberately describes an invalid kernel (BLOCK_H not a power
# of two, which tl.arange rejects) so that the tests see a compile error become a record.
BROKEN_HIDDEN_SIZE = 3


def compile_specs(hidden_size, dtype, config):
    p = "*" + _TY[dtype]
    sig = {
        "x_ptr": p,
        "w_ptr": p,
        "out_ptr": p,
        "B": "i32",
        "H": "i32",
        "T": "i32",
        "stride_xt": "i64",
        "stride_xb": "i64",
    }
    block_h = max(16, triton.next_power_of_2(hidden_size))
    if hidden_size == BROKEN_HIDDEN_SIZE:
        block_h = 24
    return [
        CompileSpec(
            "probe_fwd",
            probe_kernel,
            sig,
            {"BLOCK_B": config.block_b, "BLOCK_H": block_h},
            config.num_warps,
            config.num_stages,
            {"block_h": block_h},
        )
    ]
