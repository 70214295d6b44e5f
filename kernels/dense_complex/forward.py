"""Persistent forward kernel of the complex dense recurrence on real and imaginary planes:

    z_t = pre_t + h_{t-1} @ W^T,  h_t = f(z_t)   (complex)
    zr = pr + hr @ Wr^T - hi @ Wi^T,  zi = pi + hr @ Wi^T + hi @ Wr^T   (see complex_dot.py)

Every complex tensor arrives as torch.view_as_real of it: a pointer to the real plane and strides in
real elements; the imaginary plane is the next element (+1). One program owns BLOCK_B batch rows,
loads both planes of W^T once and walks all T steps in a single launch.

Variable lengths (HAS_LENGTHS): row b is active at step t (0-based) iff t < lengths[b]; an inactive
row keeps its state and writes an output of exactly 0 (as in the real dense forward).
"""

import triton
import triton.language as tl

from ..activations import MODRELU
from ..dense.forward import load_operator, program_tile
from ..lengths import row_lengths
from .activation import complex_activate
from .complex_dot import complex_operator_dot

IMAG = tl.constexpr(1)  # element offset of the imaginary plane (torch.view_as_real layout)


@triton.jit(do_not_specialize=["T"])
def dense_complex_fwd_kernel(
    pre_ptr,  # [T, B, H, 2] real planes of complex pre
    w_ptr,  # [H, H, 2]
    h0_ptr,  # [B, H, 2] (read only when HAS_H0)
    act_bias_ptr,  # [H] real (read only for modrelu)
    out_ptr,  # [T, B, H, 2]
    hn_ptr,  # [B, H, 2]
    lengths_ptr,  # [B] int32 (read only when HAS_LENGTHS)
    T,
    B,
    H,
    eps: tl.float64,
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

    # Both planes of Wt[k, n] = W[n, k] stay on chip for the whole launch; padding is zero.
    wr_lo, wr_hi = load_operator(w_ptr, H, stride_w_col, stride_w_row, W_HALVES, BLOCK_H)
    wi_lo, wi_hi = load_operator(w_ptr + IMAG, H, stride_w_col, stride_w_row, W_HALVES, BLOCK_H)

    # eps arrives as fp64 (its annotation: a plain float argument would be fp32 on a GPU, which is
    # not exact enough for complex128) and is rounded once to the state dtype.
    eps_s = tl.full((1, 1), eps, state_dtype)  # [1, 1]
    if ACTIVATION == MODRELU:
        act_bias = tl.load(act_bias_ptr + cols, mask=col_mask, other=0.0).to(state_dtype)  # [BLOCK_H]
        act_bias = act_bias[None, :]  # [1, BLOCK_H]
    else:
        act_bias = tl.zeros((1, BLOCK_H), dtype=state_dtype)  # [1, BLOCK_H]

    if HAS_H0:
        h0_ptrs = h0_ptr + rows[:, None] * stride_h0_b + cols[None, :] * stride_h0_h  # [BLOCK_B, BLOCK_H]
        hr = tl.load(h0_ptrs, mask=mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
        hi = tl.load(h0_ptrs + IMAG, mask=mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
    else:
        hr = tl.zeros((BLOCK_B, BLOCK_H), dtype=state_dtype)  # [BLOCK_B, BLOCK_H]
        hi = tl.zeros((BLOCK_B, BLOCK_H), dtype=state_dtype)  # [BLOCK_B, BLOCK_H]

    # Separate row and column offset vectors and scalar base pointers advanced per step, as in the
    # real dense forward (loop-invariant int64 offset tiles would pin registers).
    pre_rows = rows[:, None] * stride_pre_b  # [BLOCK_B, 1]
    pre_cols = cols[None, :] * stride_pre_h  # [1, BLOCK_H]
    out_rows = rows[:, None] * stride_out_b  # [BLOCK_B, 1]
    out_cols = cols[None, :] * stride_out_h  # [1, BLOCK_H]
    pre_t_ptr = pre_ptr
    out_t_ptr = out_ptr
    if HAS_LENGTHS:
        lengths = row_lengths(lengths_ptr, rows, B)  # [BLOCK_B, 1], loaded once
    for t in range(T):
        if HAS_LENGTHS:
            active = t < lengths  # [BLOCK_B, 1]
            p_mask = mask & active  # [BLOCK_B, BLOCK_H] (pre of an inactive row is not read)
        else:
            p_mask = mask  # [BLOCK_B, BLOCK_H]
        p_ptrs = (pre_t_ptr + pre_rows) + pre_cols  # [BLOCK_B, BLOCK_H]
        pr = tl.load(p_ptrs, mask=p_mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
        pi = tl.load(p_ptrs + IMAG, mask=p_mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
        hwr, hwi = complex_operator_dot(
            hr, hi, wr_lo, wr_hi, wi_lo, wi_hi, False, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION, state_dtype
        )  # [BLOCK_B, BLOCK_H] each
        # Padded units stay exactly 0: zero pre, zero W padding and f(0) = 0.
        nr, ni = complex_activate(pr + hwr, pi + hwi, act_bias, eps_s, ACTIVATION)  # [BLOCK_B, BLOCK_H] each
        if HAS_LENGTHS:
            # Inactive rows: the state is carried unchanged and the output is exactly 0.
            outr = tl.where(active, nr, 0.0)  # [BLOCK_B, BLOCK_H]
            outi = tl.where(active, ni, 0.0)  # [BLOCK_B, BLOCK_H]
            hr = tl.where(active, nr, hr)  # [BLOCK_B, BLOCK_H]
            hi = tl.where(active, ni, hi)  # [BLOCK_B, BLOCK_H]
        else:
            outr = nr  # [BLOCK_B, BLOCK_H]
            outi = ni  # [BLOCK_B, BLOCK_H]
            hr = nr  # [BLOCK_B, BLOCK_H]
            hi = ni  # [BLOCK_B, BLOCK_H]
        o_ptrs = (out_t_ptr + out_rows) + out_cols  # [BLOCK_B, BLOCK_H]
        tl.store(o_ptrs, outr.to(out_ptr.dtype.element_ty), mask=mask)
        tl.store(o_ptrs + IMAG, outi.to(out_ptr.dtype.element_ty), mask=mask)
        pre_t_ptr += stride_pre_t
        out_t_ptr += stride_out_t

    hn_ptrs = hn_ptr + rows[:, None] * stride_hn_b + cols[None, :] * stride_hn_h  # [BLOCK_B, BLOCK_H]
    tl.store(hn_ptrs, hr.to(hn_ptr.dtype.element_ty), mask=mask)
    tl.store(hn_ptrs + IMAG, hi.to(hn_ptr.dtype.element_ty), mask=mask)
