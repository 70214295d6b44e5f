"""Persistent backward kernel of the complex dense recurrence: walks t = T..1 in one launch with both
planes of W on chip.

Gradients follow PyTorch's complex convention (grad = dL/dRe + i dL/dIm). For a real loss L and
z = h @ W^T, i.e. z[b, n] = sum_k h[b, k] W[n, k], the chain rule on real and imaginary parts gives
dL/dRe h + i dL/dIm h = sum_n (dL/dRe z + i dL/dIm z)[b, n] * conj(W[n, k]), so the carry is
dz @ conj(W) (checked against torch autograd in tests/kernels/test_complex_dense_kernels.py):

    g_T = grad_out_T + grad_hn;  dz_t = VJP_f(z_t)[g_t];  g_{t-1} = grad_out_{t-1} + dz_t @ conj(W);
    dh0 = dz_1 @ conj(W).

z_t (the pre-activation) is an input: the host recomputes it in bulk. dL/dpre_t = dz_t; the weight
gradient sum_t dz_t^T conj(h_{t-1}) is one GEMM outside the kernel.

Variable lengths (HAS_LENGTHS): at a step t >= lengths[b] row b is inactive in the forward, so there
grad_out and z are not read, dz_t = 0 and g is carried unchanged: grad_hn reaches the row's last
active step through the inactive tail. Through that tail g is grad_hn alone and the row of
dz_t @ conj(W) is exactly 0, so the kernel adds grad_hn back to the inactive rows after the dot
(a masked load of grad_hn each step) instead of keeping both planes of the previous g live across
the dot. Why (sm_90, complex64 H=128, BLOCK_B=16, 8 warps, triton 3.8 ptxas): carrying g gives 255
registers and 8 B of spills; adding grad_hn back gives 254 registers, no spills (plain: 210).
The real dense backward carries dh instead, which costs it fewer registers than the reload.
"""

import triton
import triton.language as tl

from ..activations import MODRELU
from ..dense.forward import load_operator, program_tile
from ..lengths import row_lengths
from .activation import complex_activation_vjp
from .complex_dot import complex_operator_dot
from .forward import IMAG


@triton.jit(do_not_specialize=["T"])
def dense_complex_bwd_kernel(
    grad_out_ptr,  # [T, B, H, 2] real planes of complex grad_out
    grad_hn_ptr,  # [B, H, 2] (read only when HAS_GRAD_HN)
    z_ptr,  # [T, B, H, 2] pre-activations z_1..z_T (read only for modrelu)
    w_ptr,  # [H, H, 2]
    act_bias_ptr,  # [H] real (read only for modrelu)
    dz_ptr,  # [T, B, H, 2]
    dh0_ptr,  # [B, H, 2]
    lengths_ptr,  # [B] int32 (read only when HAS_LENGTHS)
    T,
    B,
    H,
    eps: tl.float64,
    stride_go_t,
    stride_go_b,
    stride_go_h,
    stride_ghn_b,
    stride_ghn_h,
    stride_z_t,
    stride_z_b,
    stride_z_h,
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

    # Both planes of W[k, n] as stored (the carry multiplies by conj(W), not its transpose).
    wr_lo, wr_hi = load_operator(w_ptr, H, stride_w_row, stride_w_col, W_HALVES, BLOCK_H)
    wi_lo, wi_hi = load_operator(w_ptr + IMAG, H, stride_w_row, stride_w_col, W_HALVES, BLOCK_H)

    eps_s = tl.full((1, 1), eps, state_dtype)  # [1, 1] (fp64 argument, see the forward)
    if ACTIVATION == MODRELU:
        act_bias = tl.load(act_bias_ptr + cols, mask=col_mask, other=0.0).to(state_dtype)  # [BLOCK_H]
        act_bias = act_bias[None, :]  # [1, BLOCK_H]
    else:
        act_bias = tl.zeros((1, BLOCK_H), dtype=state_dtype)  # [1, BLOCK_H]

    # Separate row and column offset vectors, scalar base pointers at step T moved back one time
    # stride per step (as in the real dense backward).
    go_rows = rows[:, None] * stride_go_b  # [BLOCK_B, 1]
    go_cols = cols[None, :] * stride_go_h  # [1, BLOCK_H]
    z_rows = rows[:, None] * stride_z_b  # [BLOCK_B, 1]
    z_cols = cols[None, :] * stride_z_h  # [1, BLOCK_H]
    dz_rows = rows[:, None] * stride_dz_b  # [BLOCK_B, 1]
    dz_cols = cols[None, :] * stride_dz_h  # [1, BLOCK_H]
    last = (T - 1).to(tl.int64)
    go_t_ptr = grad_out_ptr + last * stride_go_t
    z_t_ptr = z_ptr + last * stride_z_t
    dz_t_ptr = dz_ptr + last * stride_dz_t

    if HAS_LENGTHS:
        lengths = row_lengths(lengths_ptr, rows, B)  # [BLOCK_B, 1], loaded once
        go_mask = mask & (T - 1 < lengths)  # [BLOCK_B, BLOCK_H]
        if HAS_GRAD_HN:
            ghn_rows = rows[:, None] * stride_ghn_b  # [BLOCK_B, 1]
            ghn_cols = cols[None, :] * stride_ghn_h  # [1, BLOCK_H]
    else:
        go_mask = mask  # [BLOCK_B, BLOCK_H]
    go_ptrs = (go_t_ptr + go_rows) + go_cols  # [BLOCK_B, BLOCK_H]
    gr = tl.load(go_ptrs, mask=go_mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
    gi = tl.load(go_ptrs + IMAG, mask=go_mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
    if HAS_GRAD_HN:
        ghn_ptrs = grad_hn_ptr + (
            rows[:, None] * stride_ghn_b + cols[None, :] * stride_ghn_h
        )  # [BLOCK_B, BLOCK_H]
        gr += tl.load(ghn_ptrs, mask=mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
        gi += tl.load(ghn_ptrs + IMAG, mask=mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]

    for s in range(T):
        if HAS_LENGTHS:
            t = T - 1 - s  # the step this iteration walks back through
            active = t < lengths  # [BLOCK_B, 1]
            z_mask = mask & active  # [BLOCK_B, BLOCK_H] (z of an inactive row is not read)
        else:
            z_mask = mask  # [BLOCK_B, BLOCK_H]
        if ACTIVATION == MODRELU:
            z_ptrs = (z_t_ptr + z_rows) + z_cols  # [BLOCK_B, BLOCK_H]
            zr = tl.load(z_ptrs, mask=z_mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
            zi = tl.load(z_ptrs + IMAG, mask=z_mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
        else:  # the identity's VJP is g itself: z is not read
            zr = gr  # [BLOCK_B, BLOCK_H]
            zi = gi  # [BLOCK_B, BLOCK_H]
        dzr, dzi = complex_activation_vjp(
            zr, zi, gr, gi, act_bias, eps_s, ACTIVATION
        )  # [BLOCK_B, BLOCK_H] each
        if HAS_LENGTHS:
            dzr = tl.where(active, dzr, 0.0)  # [BLOCK_B, BLOCK_H]
            dzi = tl.where(active, dzi, 0.0)  # [BLOCK_B, BLOCK_H]
        dz_ptrs = (dz_t_ptr + dz_rows) + dz_cols  # [BLOCK_B, BLOCK_H]
        tl.store(dz_ptrs, dzr, mask=mask)
        tl.store(dz_ptrs + IMAG, dzi, mask=mask)
        gr, gi = complex_operator_dot(
            dzr, dzi, wr_lo, wr_hi, wi_lo, wi_hi, True, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION, state_dtype
        )  # [BLOCK_B, BLOCK_H] each
        go_t_ptr -= stride_go_t
        z_t_ptr -= stride_z_t
        dz_t_ptr -= stride_dz_t
        # grad_out of the step before, except after the first step (t = 1), where g is dh0.
        if HAS_LENGTHS:
            # Inactive rows: g is exactly 0 here (dz is) and carries grad_hn alone, added back;
            # grad_out counts from the row's last active step on.
            if HAS_GRAD_HN:
                tail = mask & (t >= lengths)  # [BLOCK_B, BLOCK_H]
                ghn_ptrs = (grad_hn_ptr + ghn_rows) + ghn_cols  # [BLOCK_B, BLOCK_H]
                gr += tl.load(ghn_ptrs, mask=tail, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
                gi += tl.load(ghn_ptrs + IMAG, mask=tail, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
            go_mask = mask & ((s < T - 1) & (t - 1 < lengths))  # [BLOCK_B, BLOCK_H]
        else:
            go_mask = mask & (s < T - 1)  # [BLOCK_B, BLOCK_H]
        go_ptrs = (go_t_ptr + go_rows) + go_cols  # [BLOCK_B, BLOCK_H]
        gr += tl.load(go_ptrs, mask=go_mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
        gi += tl.load(go_ptrs + IMAG, mask=go_mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]

    dh0_ptrs = dh0_ptr + rows[:, None] * stride_dh0_b + cols[None, :] * stride_dh0_h  # [BLOCK_B, BLOCK_H]
    tl.store(dh0_ptrs, gr, mask=mask)
    tl.store(dh0_ptrs + IMAG, gi, mask=mask)
