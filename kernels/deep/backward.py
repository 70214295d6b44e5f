"""Persistent backward kernel of the deep-transition recurrence: walks t = T..1 in one launch with
the D (+1) matrices on chip (trit_rnn/backends/torch_deep.py states the contract). Per step, from
the top layer down:

    d a^D = dh_t * f'(h_t);   d a^{k-1} = (d a^k @ W_k) * f'(s^{k-1}_t)   (k = D..2)
    dh_{t-1} = grad_out_{t-1} + d a^1 @ W_1 [+ d a^D @ S with the shortcut];   dh_T += grad_hn

f' is read from the stored outputs h_t and layers s^k_t, so no pre-activation is ever stored. The
kernel writes d_layers [D, T, B, H] = d a^1..d a^D and d_pre [T, B, H or 2H] = (d a^1 [, d a^D]);
the weight and bias gradients are GEMMs and sums outside the kernel (trit_rnn/autograd/deep.py).

Variable lengths (HAS_LENGTHS): at a step t >= lengths[b] row b is inactive in the forward (state
carried, output and layers 0), so there grad_out is ignored, d_pre and d_layers are exactly 0 and dh
carries unchanged: grad_hn reaches the row's last active step through the inactive tail.
"""

import triton
import triton.language as tl

from ..activations import derivative_from_output
from ..dense.forward import load_operator, operator_dot, program_tile
from ..lengths import row_lengths
from .forward import load_layer_operators


@triton.jit
def _layer_down(
    d,
    w_lo,
    w_hi,
    s_ptrs,
    dl_ptrs,
    mask,
    active,
    ACTIVATION: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    HALVES: tl.constexpr,
    LEVELS: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """One layer down the chain: d a^{k-1} = (d a^k @ W_k) * f'(s^{k-1}), with s^{k-1} read from s_ptrs
    and the result stored at dl_ptrs (w_lo/w_hi: W_k as load_operator staged it). d: [BLOCK_B, BLOCK_H]
    in the state dtype. HAS_LENGTHS: the rows not active (active [BLOCK_B, 1]) get exactly 0."""
    d_in = d.to(w_lo.dtype)  # [BLOCK_B, BLOCK_H]
    dw = operator_dot(d_in, w_lo, w_hi, HALVES, LEVELS, PRECISION, d.dtype)  # [BLOCK_B, BLOCK_H]
    s = tl.load(s_ptrs, mask=mask, other=0.0).to(d.dtype)  # [BLOCK_B, BLOCK_H]
    d = dw * derivative_from_output(s, ACTIVATION)  # [BLOCK_B, BLOCK_H]
    if HAS_LENGTHS:
        d = tl.where(active, d, 0.0)  # [BLOCK_B, BLOCK_H]
    tl.store(dl_ptrs, d.to(dl_ptrs.dtype.element_ty), mask=mask)
    return d  # [BLOCK_B, BLOCK_H]


@triton.jit(do_not_specialize=["T"])
def deep_bwd_kernel(
    grad_out_ptr,  # [T, B, H] any float dtype
    grad_hn_ptr,  # [B, H] any float dtype (read only when HAS_GRAD_HN)
    out_ptr,  # [T, B, H] storage dtype: the forward outputs h_1..h_T
    layers_ptr,  # [D-1, T, B, H] state dtype: s^1..s^{D-1} (read only when DEPTH > 1)
    w_ptr,  # [H, H] storage dtype: W_1 = weight_hh[:H]
    s_ptr,  # [H, H] storage dtype: S = weight_hh[H:] (read only when SHORTCUT)
    wd_ptr,  # [D-1, H, H] storage dtype: W_2..W_D (read only when DEPTH > 1)
    d_pre_ptr,  # [T, B, H] state dtype: d_pre[..., :H] = d a^1
    d_pre_s_ptr,  # [T, B, H] state dtype: d_pre[..., H:] = d a^D (written only when SHORTCUT)
    d_layers_ptr,  # [D, T, B, H] state dtype: d a^1..d a^D
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
    stride_layers_l,
    stride_layers_t,
    stride_layers_b,
    stride_layers_h,
    stride_w_row,
    stride_w_col,
    stride_wd_l,
    stride_wd_row,
    stride_wd_col,
    stride_dpre_t,
    stride_dpre_b,
    stride_dpre_h,
    stride_dl_l,
    stride_dl_t,
    stride_dl_b,
    stride_dl_h,
    stride_dh0_b,
    stride_dh0_h,
    ACTIVATION: tl.constexpr,
    DEPTH: tl.constexpr,
    SHORTCUT: tl.constexpr,
    HAS_GRAD_HN: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    SPLIT_K_LEVELS: tl.constexpr,
    W_HALVES: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    tl.static_assert(DEPTH >= 1 and DEPTH <= 4, "the deep-transition kernels take 1 to 4 layers")
    state_dtype = dh0_ptr.dtype.element_ty
    rows, cols, col_mask, mask = program_tile(B, H, BLOCK_B, BLOCK_H)

    # M[k, n] as stored (the backward multiplies by the matrices themselves, not their transposes);
    # padding is zero. Staged on chip once, as in the forward.
    w1_lo, w1_hi = load_operator(w_ptr, H, stride_w_row, stride_w_col, W_HALVES, BLOCK_H)
    if SHORTCUT:
        sc_lo, sc_hi = load_operator(s_ptr, H, stride_w_row, stride_w_col, W_HALVES, BLOCK_H)
    w2_lo, w2_hi, w3_lo, w3_hi, w4_lo, w4_hi = load_layer_operators(
        wd_ptr, H, stride_wd_l, stride_wd_row, stride_wd_col, w1_lo, w1_hi, DEPTH, W_HALVES, BLOCK_H
    )  # [BLOCK_H (// 2), BLOCK_H] each

    # As in the forward, row and column offsets stay separate vectors that meet inside the loop.
    go_rows = rows[:, None] * stride_go_b  # [BLOCK_B, 1]
    go_cols = cols[None, :] * stride_go_h  # [1, BLOCK_H]
    out_rows = rows[:, None] * stride_out_b  # [BLOCK_B, 1]
    out_cols = cols[None, :] * stride_out_h  # [1, BLOCK_H]
    layer_rows = rows[:, None] * stride_layers_b  # [BLOCK_B, 1]
    layer_cols = cols[None, :] * stride_layers_h  # [1, BLOCK_H]
    dpre_rows = rows[:, None] * stride_dpre_b  # [BLOCK_B, 1]
    dpre_cols = cols[None, :] * stride_dpre_h  # [1, BLOCK_H]
    dl_rows = rows[:, None] * stride_dl_b  # [BLOCK_B, 1]
    dl_cols = cols[None, :] * stride_dl_h  # [1, BLOCK_H]

    # Scalar base pointers at step T, moved back one time stride per step (64-bit arithmetic); the
    # layer pointers start at the top layer (layers: s^{D-1}, d_layers: d a^D) and walk down by
    # layer strides within a step.
    last = (T - 1).to(tl.int64)
    go_t_ptr = grad_out_ptr + last * stride_go_t
    out_t_ptr = out_ptr + last * stride_out_t
    dpre_t_ptr = d_pre_ptr + last * stride_dpre_t
    dpre_s_t_ptr = d_pre_s_ptr + last * stride_dpre_t
    layers_t_ptr = layers_ptr + last * stride_layers_t
    dl_t_ptr = d_layers_ptr + last * stride_dl_t
    for _ in tl.static_range(DEPTH - 2):
        layers_t_ptr += stride_layers_l
    for _ in tl.static_range(DEPTH - 1):
        dl_t_ptr += stride_dl_l

    if HAS_LENGTHS:
        lengths = row_lengths(lengths_ptr, rows, B)  # [BLOCK_B, 1], loaded once
        go_mask = mask & (T - 1 < lengths)  # [BLOCK_B, BLOCK_H]: rows active at the last step
    else:
        go_mask = mask  # [BLOCK_B, BLOCK_H]
    dh = tl.load((go_t_ptr + go_rows) + go_cols, mask=go_mask, other=0.0)  # [BLOCK_B, BLOCK_H]
    dh = dh.to(state_dtype)  # [BLOCK_B, BLOCK_H]
    if HAS_GRAD_HN:
        # With lengths, grad_hn enters here too and is carried unchanged to the row's last step.
        ghn_offs = rows[:, None] * stride_ghn_b + cols[None, :] * stride_ghn_h  # [BLOCK_B, BLOCK_H]
        dh += tl.load(grad_hn_ptr + ghn_offs, mask=mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]

    for s in range(T):
        if HAS_LENGTHS:
            t = T - 1 - s  # the step this iteration walks back through
            active = t < lengths  # [BLOCK_B, 1]
        else:
            active = mask  # [BLOCK_B, BLOCK_H] (unused)
        # With lengths, the outputs and layers of inactive rows are read as well (the forward wrote
        # 0 there), and tl.where (a select) discards what they give: masking these loads by
        # `active` costs registers on sm_90 (see the dh carry below).
        h = tl.load((out_t_ptr + out_rows) + out_cols, mask=mask, other=0.0)  # [BLOCK_B, BLOCK_H]
        d = dh * derivative_from_output(h.to(state_dtype), ACTIVATION)  # [BLOCK_B, BLOCK_H]: d a^D
        if HAS_LENGTHS:
            d = tl.where(active, d, 0.0)  # [BLOCK_B, BLOCK_H]: every d a of an inactive row is 0
        dl_ptr = dl_t_ptr
        tl.store((dl_ptr + dl_rows) + dl_cols, d, mask=mask)
        if SHORTCUT:
            tl.store((dpre_s_t_ptr + dpre_rows) + dpre_cols, d, mask=mask)
            # The shortcut's share of dh_{t-1} first: d a^D need not stay live down the chain.
            d_top_in = d.to(sc_lo.dtype)  # [BLOCK_B, BLOCK_H]
            dh_s = operator_dot(d_top_in, sc_lo, sc_hi, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION, state_dtype)
            # dh_s: [BLOCK_B, BLOCK_H]
        l_ptr = layers_t_ptr
        if DEPTH >= 4:
            dl_ptr -= stride_dl_l
            d = _layer_down(
                d, w4_lo, w4_hi, (l_ptr + layer_rows) + layer_cols, (dl_ptr + dl_rows) + dl_cols, mask,
                active, ACTIVATION, HAS_LENGTHS, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION,
            )  # [BLOCK_B, BLOCK_H]: d a^3  # fmt: skip
            l_ptr -= stride_layers_l
        if DEPTH >= 3:
            dl_ptr -= stride_dl_l
            d = _layer_down(
                d, w3_lo, w3_hi, (l_ptr + layer_rows) + layer_cols, (dl_ptr + dl_rows) + dl_cols, mask,
                active, ACTIVATION, HAS_LENGTHS, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION,
            )  # [BLOCK_B, BLOCK_H]: d a^2  # fmt: skip
            l_ptr -= stride_layers_l
        if DEPTH >= 2:
            dl_ptr -= stride_dl_l
            d = _layer_down(
                d, w2_lo, w2_hi, (l_ptr + layer_rows) + layer_cols, (dl_ptr + dl_rows) + dl_cols, mask,
                active, ACTIVATION, HAS_LENGTHS, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION,
            )  # [BLOCK_B, BLOCK_H]: d a^1  # fmt: skip
        tl.store((dpre_t_ptr + dpre_rows) + dpre_cols, d, mask=mask)
        # As in the forward, 16-bit storage rounds only the dot operands; accumulation is fp32.
        d_in = d.to(w1_lo.dtype)  # [BLOCK_B, BLOCK_H]
        dh_prev = operator_dot(d_in, w1_lo, w1_hi, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION, state_dtype)
        # dh_prev: [BLOCK_B, BLOCK_H]
        if SHORTCUT:
            dh_prev += dh_s  # [BLOCK_B, BLOCK_H]
        if HAS_LENGTHS:
            # Inactive rows carry dh unchanged. Measured on sm_90 (depth 2 + shortcut, registers at
            # fp32 H=64 / bf16 H=128): this carry with unmasked loads 128 / 168; handing dh to dh_s
            # right after the shortcut's dot 245 / 160; this carry with loads masked by `active`
            # 128 / 222. No spills in any.
            dh = tl.where(active, dh_prev, dh)  # [BLOCK_B, BLOCK_H]
        else:
            dh = dh_prev  # [BLOCK_B, BLOCK_H]
        go_t_ptr -= stride_go_t
        out_t_ptr -= stride_out_t
        dpre_t_ptr -= stride_dpre_t
        dpre_s_t_ptr -= stride_dpre_t
        layers_t_ptr -= stride_layers_t
        dl_t_ptr -= stride_dl_t
        # grad_out of the step before, except after the first step (t = 0), where dh is dh_0; with
        # lengths, only where that step is active.
        if HAS_LENGTHS:
            go_mask = mask & ((s < T - 1) & (t - 1 < lengths))  # [BLOCK_B, BLOCK_H]
        else:
            go_mask = mask & (s < T - 1)  # [BLOCK_B, BLOCK_H]
        go = tl.load((go_t_ptr + go_rows) + go_cols, mask=go_mask, other=0.0)  # [BLOCK_B, BLOCK_H]
        dh += go.to(state_dtype)  # [BLOCK_B, BLOCK_H]

    dh0_ptrs = dh0_ptr + rows[:, None] * stride_dh0_b + cols[None, :] * stride_dh0_h  # [BLOCK_B, BLOCK_H]
    tl.store(dh0_ptrs, dh, mask=mask)
