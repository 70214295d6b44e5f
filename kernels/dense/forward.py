"""Persistent forward kernel of the dense recurrence z_t = pre_t + h_{t-1} @ W^T, h_t = f(z_t).

One program owns BLOCK_B batch rows and the whole (padded) hidden dimension, loads W^T once and
walks all T steps in a single launch.

Variable lengths (HAS_LENGTHS): row b is active at step t (0-based) iff t < lengths[b]. An inactive
row keeps its state and writes an output of exactly 0, so h_n is the state after the row's last
active step. The mask is per row, [BLOCK_B, 1], inside the one time loop.
"""

import triton
import triton.language as tl

from ..activations import activate
from ..lengths import row_lengths


@triton.jit
def _split_columns(x):
    """[M, K] -> two [M, K // 2] halves (columns 0..K/2-1 and K/2..K-1)."""
    x3 = tl.reshape(x, (x.shape[0], 2, x.shape[1] // 2))  # [M, 2, K // 2]
    return tl.split(tl.permute(x3, (0, 2, 1)))


@triton.jit
def _split_rows(x):
    """[K, N] -> two [K // 2, N] halves (rows 0..K/2-1 and K/2..K-1)."""
    x3 = tl.reshape(x, (2, x.shape[0] // 2, x.shape[1]))  # [2, K // 2, N]
    return tl.split(tl.permute(x3, (1, 2, 0)))


@triton.jit
def split_k_dot(a, b, LEVELS: tl.constexpr, PRECISION: tl.constexpr, OUT_DTYPE: tl.constexpr):
    """a @ b as the sum of 2**LEVELS dots over K chunks.

    Why: Triton lowers a dot it cannot give to tensor cores (fp32 with input_precision="ieee")
    to FMAs that hold a thread's whole K extent of both operands in registers; at K = 128 ptxas
    spills. Chunks of K = 32 keep the sm_90 build spill-free. LEVELS <= 0 is a plain tl.dot.
    """
    if LEVELS <= 0:
        r = tl.dot(a, b, input_precision=PRECISION, out_dtype=OUT_DTYPE)
    else:
        a0, a1 = _split_columns(a)
        b0, b1 = _split_rows(b)
        r = split_k_dot(a0, b0, LEVELS - 1, PRECISION, OUT_DTYPE)
        r += split_k_dot(a1, b1, LEVELS - 1, PRECISION, OUT_DTYPE)
    return r


@triton.jit
def _load_operator_rows(w_ptr, k, n, H, stride_k, stride_n):
    """M[k, n] = w_ptr[k * stride_k + n * stride_n] for the rows k, zero outside H x H."""
    ptrs = w_ptr + k[:, None] * stride_k + n[None, :] * stride_n  # [len(k), BLOCK_H]
    return tl.load(ptrs, mask=(k[:, None] < H) & (n[None, :] < H), other=0.0)  # [len(k), BLOCK_H]


@triton.jit
def program_tile(B, H, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr):
    """This program's batch rows [BLOCK_B] and hidden columns [BLOCK_H] (int64 for addressing),
    the column mask [BLOCK_H] and the tile mask [BLOCK_B, BLOCK_H] for any B and H."""
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B).to(tl.int64)  # [BLOCK_B]
    cols = tl.arange(0, BLOCK_H).to(tl.int64)  # [BLOCK_H]
    col_mask = cols < H  # [BLOCK_H]
    mask = (rows < B)[:, None] & col_mask[None, :]  # [BLOCK_B, BLOCK_H]
    return rows, cols, col_mask, mask


@triton.jit
def load_operator(w_ptr, H, stride_k, stride_n, HALVES: tl.constexpr, BLOCK_H: tl.constexpr):
    """The step's right-hand operand M [BLOCK_H, BLOCK_H] (K rows, N columns), staged on chip once.

    HALVES: returned as its two K halves (rows 0..BLOCK_H/2-1, BLOCK_H/2..BLOCK_H-1), two tensors
    that each get their own shared-memory buffer. Why: a runtime stride and a mask on a runtime H
    make the load scalar, and one [BLOCK_H, BLOCK_H] load keeps every element of a thread's share
    in its own register until the copy to shared memory; at bf16 H=256 (256 elements per thread at
    8 warps) ptxas spills. Halves halve that peak. Otherwise (lo, lo): the whole matrix.
    """
    n = tl.arange(0, BLOCK_H).to(tl.int64)  # [BLOCK_H]
    if HALVES:
        k = tl.arange(0, BLOCK_H // 2).to(tl.int64)  # [BLOCK_H // 2]
        lo = _load_operator_rows(w_ptr, k, n, H, stride_k, stride_n)  # [BLOCK_H // 2, BLOCK_H]
        hi = _load_operator_rows(w_ptr, k + BLOCK_H // 2, n, H, stride_k, stride_n)  # [BLOCK_H // 2, BLOCK_H]
    else:
        k = tl.arange(0, BLOCK_H).to(tl.int64)  # [BLOCK_H]
        lo = _load_operator_rows(w_ptr, k, n, H, stride_k, stride_n)  # [BLOCK_H, BLOCK_H]
        hi = lo  # [BLOCK_H, BLOCK_H]
    return lo, hi


@triton.jit
def operator_dot(
    a,
    m_lo,
    m_hi,
    HALVES: tl.constexpr,
    LEVELS: tl.constexpr,
    PRECISION: tl.constexpr,
    OUT_DTYPE: tl.constexpr,
):
    """a @ M for M as load_operator returned it; LEVELS is split_k_dot's total K-chunking."""
    if HALVES:
        a_lo, a_hi = _split_columns(a)
        r = split_k_dot(a_lo, m_lo, LEVELS - 1, PRECISION, OUT_DTYPE)
        r += split_k_dot(a_hi, m_hi, LEVELS - 1, PRECISION, OUT_DTYPE)
    else:
        r = split_k_dot(a, m_lo, LEVELS, PRECISION, OUT_DTYPE)
    return r


@triton.jit(do_not_specialize=["T"])
def dense_fwd_kernel(
    pre_ptr,  # [T, B, H] storage dtype
    w_ptr,  # [H, H] storage dtype
    h0_ptr,  # [B, H] state dtype (read only when HAS_H0)
    act_bias_ptr,  # [H] state dtype (read only for modrelu)
    out_ptr,  # [T, B, H] storage dtype
    hn_ptr,  # [B, H] storage dtype
    lengths_ptr,  # [B] int32 (read only when HAS_LENGTHS)
    T,
    B,
    H,
    stride_pre_t,
    stride_pre_b,
    stride_pre_h,
    stride_w_row,
    stride_w_col,
    stride_h0_b,
    stride_h0_h,
    stride_out_t,
    stride_out_b,
    stride_out_h,
    stride_hn_b,
    stride_hn_h,
    ACTIVATION: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    STATE_FP64: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    SPLIT_K_LEVELS: tl.constexpr,
    W_HALVES: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    state_dtype = tl.float64 if STATE_FP64 else tl.float32
    rows, cols, col_mask, mask = program_tile(B, H, BLOCK_B, BLOCK_H)

    # Wt[k, n] = W[n, k], read through the strides (a column-major W needs no copy). Padded rows
    # and columns are zero, so padded hidden units never feed real ones. W_HALVES: see
    # load_operator (the launcher sets it for tensor-core dots only).
    w_t_lo, w_t_hi = load_operator(w_ptr, H, stride_w_col, stride_w_row, W_HALVES, BLOCK_H)

    if ACTIVATION == 3:
        act_bias = tl.load(act_bias_ptr + cols, mask=col_mask, other=0.0).to(state_dtype)  # [BLOCK_H]
        act_bias = act_bias[None, :]  # [1, BLOCK_H]
    else:
        act_bias = tl.zeros((1, BLOCK_H), dtype=state_dtype)  # [1, BLOCK_H]

    if HAS_H0:
        h0_ptrs = h0_ptr + rows[:, None] * stride_h0_b + cols[None, :] * stride_h0_h  # [BLOCK_B, BLOCK_H]
        h = tl.load(h0_ptrs, mask=mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
    else:
        h = tl.zeros((BLOCK_B, BLOCK_H), dtype=state_dtype)  # [BLOCK_B, BLOCK_H]

    # Row and column offsets stay separate vectors and meet inside the loop: two loop-invariant
    # [BLOCK_B, BLOCK_H] int64 offset tiles would pin 4 registers per element and make ptxas spill.
    pre_rows = rows[:, None] * stride_pre_b  # [BLOCK_B, 1]
    pre_cols = cols[None, :] * stride_pre_h  # [1, BLOCK_H]
    out_rows = rows[:, None] * stride_out_b  # [BLOCK_B, 1]
    out_cols = cols[None, :] * stride_out_h  # [1, BLOCK_H]
    # Scalar base pointers advance one time stride per step: 64-bit pointer arithmetic with no
    # t * stride product.
    pre_t_ptr = pre_ptr
    out_t_ptr = out_ptr
    if HAS_LENGTHS:
        lengths = row_lengths(lengths_ptr, rows, B)  # [BLOCK_B, 1], loaded once
    for t in range(T):
        if HAS_LENGTHS:
            active = t < lengths  # [BLOCK_B, 1]
            # pre of an inactive row is not needed: not read.
            p = tl.load(
                (pre_t_ptr + pre_rows) + pre_cols, mask=mask & active, other=0.0
            )  # [BLOCK_B, BLOCK_H]
        else:
            p = tl.load((pre_t_ptr + pre_rows) + pre_cols, mask=mask, other=0.0)  # [BLOCK_B, BLOCK_H]
        p = p.to(state_dtype)  # [BLOCK_B, BLOCK_H]
        # The state stays in fp32/fp64; for 16-bit storage it is rounded to W's dtype only as the
        # dot operand (fp32 accumulation).
        h_in = h.to(w_t_lo.dtype)  # [BLOCK_B, BLOCK_H]
        hw = operator_dot(h_in, w_t_lo, w_t_hi, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION, state_dtype)
        # hw: [BLOCK_B, BLOCK_H]
        # Padded rows and columns stay exactly 0: zero pre, zero W padding and f(0) = 0 for every f.
        h_new = activate(p + hw, act_bias, ACTIVATION)  # [BLOCK_B, BLOCK_H]
        if HAS_LENGTHS:
            # Inactive rows: the state is carried unchanged and the output is exactly 0.
            out = tl.where(active, h_new, 0.0)  # [BLOCK_B, BLOCK_H]
            h = tl.where(active, h_new, h)  # [BLOCK_B, BLOCK_H]
        else:
            out = h_new  # [BLOCK_B, BLOCK_H]
            h = h_new  # [BLOCK_B, BLOCK_H]
        tl.store((out_t_ptr + out_rows) + out_cols, out.to(out_ptr.dtype.element_ty), mask=mask)
        pre_t_ptr += stride_pre_t
        out_t_ptr += stride_out_t

    hn_ptrs = hn_ptr + rows[:, None] * stride_hn_b + cols[None, :] * stride_hn_h  # [BLOCK_B, BLOCK_H]
    tl.store(hn_ptrs, h.to(hn_ptr.dtype.element_ty), mask=mask)
