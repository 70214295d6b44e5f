"""Persistent backward kernel of the dense recurrence: walks t = T..1 in one launch with W on chip.

    dh_T = grad_out_T + grad_hn;  dz_t = dh_t * f'(h_t);  dh_{t-1} = grad_out_{t-1} + dz_t @ W;
    dh_0 = dz_1 @ W.

f' is read from the stored outputs h_t, so the forward's pre-activations are never needed. The
weight gradient sum_t dz_t^T h_{t-1} is one GEMM outside the kernel.

Variable lengths (HAS_LENGTHS): at a step t >= lengths[b] row b is inactive in the forward (state
carried, output 0), so there grad_out is ignored, dz_t = 0 and dh is carried unchanged: grad_hn
reaches the row's last active step through the inactive tail. The carry keeps the previous dh
live across the dot (sm_90, triton 3.8 ptxas, BLOCK_B=16, 8 warps: fp32 H=128 100 registers
against 86 plain, bf16 H=256 180 against 184, no spills); adding grad_hn back after the dot, as the
complex backward does, measured more (130 and 200).
"""

import triton
import triton.language as tl

from ..activations import derivative_from_output
from ..lengths import row_lengths
from .forward import load_operator, operator_dot, program_tile


@triton.jit(do_not_specialize=["T"])
def dense_bwd_kernel(
    grad_out_ptr,  # [T, B, H] any float dtype
    grad_hn_ptr,  # [B, H] any float dtype (read only when HAS_GRAD_HN)
    out_ptr,  # [T, B, H] storage dtype, the forward outputs h_1..h_T
    w_ptr,  # [H, H] storage dtype
    dz_ptr,  # [T, B, H] state dtype
    dh0_ptr,  # [B, H] state dtype
    lengths_ptr,  # [B] int32 (read only when HAS_LENGTHS)
    T,
    B,
    H,
    stride_go_t,
    stride_go_b,
    stride_go_h,
    stride_ghn_b,
    stride_ghn_h,
    stride_out_t,
    stride_out_b,
    stride_out_h,
    stride_w_row,
    stride_w_col,
    stride_dz_t,
    stride_dz_b,
    stride_dz_h,
    stride_dh0_b,
    stride_dh0_h,
    ACTIVATION: tl.constexpr,
    HAS_GRAD_HN: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    SPLIT_K_LEVELS: tl.constexpr,
    W_HALVES: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    state_dtype = dz_ptr.dtype.element_ty
    rows, cols, col_mask, mask = program_tile(B, H, BLOCK_B, BLOCK_H)

    # W[k, n] as stored (dh_{t-1} = dz_t @ W needs W itself, not its transpose); padding is zero.
    # Staged in K halves as in the forward (see load_operator).
    w_lo, w_hi = load_operator(w_ptr, H, stride_w_row, stride_w_col, W_HALVES, BLOCK_H)

    # As in the forward, row and column offsets stay separate vectors that meet inside the loop:
    # loop-invariant [BLOCK_B, BLOCK_H] int64 offset tiles would pin registers across the loop.
    go_rows = rows[:, None] * stride_go_b  # [BLOCK_B, 1]
    go_cols = cols[None, :] * stride_go_h  # [1, BLOCK_H]
    out_rows = rows[:, None] * stride_out_b  # [BLOCK_B, 1]
    out_cols = cols[None, :] * stride_out_h  # [1, BLOCK_H]
    dz_rows = rows[:, None] * stride_dz_b  # [BLOCK_B, 1]
    dz_cols = cols[None, :] * stride_dz_h  # [1, BLOCK_H]

    # Scalar base pointers at step T, moved back one time stride per step (64-bit arithmetic).
    last = (T - 1).to(tl.int64)
    go_t_ptr = grad_out_ptr + last * stride_go_t
    out_t_ptr = out_ptr + last * stride_out_t
    dz_t_ptr = dz_ptr + last * stride_dz_t

    if HAS_LENGTHS:
        lengths = row_lengths(lengths_ptr, rows, B)  # [BLOCK_B, 1], loaded once
        go_mask = mask & (T - 1 < lengths)  # [BLOCK_B, BLOCK_H]
    else:
        go_mask = mask  # [BLOCK_B, BLOCK_H]
    dh = tl.load((go_t_ptr + go_rows) + go_cols, mask=go_mask, other=0.0).to(
        state_dtype
    )  # [BLOCK_B, BLOCK_H]
    if HAS_GRAD_HN:
        ghn_offs = rows[:, None] * stride_ghn_b + cols[None, :] * stride_ghn_h  # [BLOCK_B, BLOCK_H]
        ghn_ptrs = grad_hn_ptr + ghn_offs  # [BLOCK_B, BLOCK_H]
        dh += tl.load(ghn_ptrs, mask=mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]

    for s in range(T):
        if HAS_LENGTHS:
            t = T - 1 - s  # the step this iteration walks back through
            active = t < lengths  # [BLOCK_B, 1]
            # The output of an inactive row is not needed: not read.
            h = tl.load(
                (out_t_ptr + out_rows) + out_cols, mask=mask & active, other=0.0
            )  # [BLOCK_B, BLOCK_H]
        else:
            h = tl.load((out_t_ptr + out_rows) + out_cols, mask=mask, other=0.0)  # [BLOCK_B, BLOCK_H]
        h = h.to(state_dtype)  # [BLOCK_B, BLOCK_H]
        dz = dh * derivative_from_output(h, ACTIVATION)  # [BLOCK_B, BLOCK_H]
        if HAS_LENGTHS:
            dz = tl.where(active, dz, 0.0)  # [BLOCK_B, BLOCK_H]
        tl.store((dz_t_ptr + dz_rows) + dz_cols, dz, mask=mask)
        # As in the forward, 16-bit storage rounds only the dot operand; accumulation is fp32.
        dz_in = dz.to(w_lo.dtype)  # [BLOCK_B, BLOCK_H]
        dh_prev = operator_dot(dz_in, w_lo, w_hi, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION, state_dtype)
        # dh_prev: [BLOCK_B, BLOCK_H]
        go_t_ptr -= stride_go_t
        out_t_ptr -= stride_out_t
        dz_t_ptr -= stride_dz_t
        # grad_out of the step before, except after the first step (t = 0), where dh is dh_0.
        if HAS_LENGTHS:
            # Inactive rows carry dh unchanged; grad_out counts from the row's last active step on.
            dh = tl.where(active, dh_prev, dh)  # [BLOCK_B, BLOCK_H]
            go_mask = mask & ((s < T - 1) & (t - 1 < lengths))  # [BLOCK_B, BLOCK_H]
        else:
            dh = dh_prev  # [BLOCK_B, BLOCK_H]
            go_mask = mask & (s < T - 1)  # [BLOCK_B, BLOCK_H]
        go = tl.load((go_t_ptr + go_rows) + go_cols, mask=go_mask, other=0.0)  # [BLOCK_B, BLOCK_H]
        dh += go.to(state_dtype)  # [BLOCK_B, BLOCK_H]

    dh0_ptrs = dh0_ptr + rows[:, None] * stride_dh0_b + cols[None, :] * stride_dh0_h  # [BLOCK_B, BLOCK_H]
    tl.store(dh0_ptrs, dh, mask=mask)
