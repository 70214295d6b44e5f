"""Persistent forward kernel of the deep-transition recurrence (Pascanu et al. 2013, DT(S)-RNN):

    s^1_t = f(pre_t[:, :H] + h_{t-1} @ W_1^T)
    s^k_t = f(s^{k-1}_t @ W_k^T + b_k [+ pre_t[:, H:] + h_{t-1} @ S^T if k = D and SHORTCUT])
    h_t = s^D_t

(trit_rnn/backends/torch_deep.py states the contract). One program owns BLOCK_B batch rows and the
whole (padded) hidden dimension, stages the D (+1 with the shortcut) transposed matrices W_1^T
(, S^T), W_2^T..W_D^T on chip once and walks all T steps in a single launch: per step one dot per
matrix, the layers one after the other. It stores h_t and, for the backward, the intermediate
layers s^1_t..s^{D-1}_t in the state dtype. DEPTH (1..4) and SHORTCUT are constexprs: the layer
chain is unrolled, and the operators of absent layers alias present ones (never used).

Variable lengths (HAS_LENGTHS): row b is active at step t (0-based) iff t < lengths[b]. An inactive
row keeps its state h and writes exactly 0 as its output and its layers, so h_n is the state after
the row's last active step. The mask is per row, [BLOCK_B, 1], inside the one time loop.
"""

import triton
import triton.language as tl

from ..activations import activate
from ..dense.forward import _split_columns, _split_rows, load_operator, operator_dot, program_tile
from ..lengths import row_lengths


@triton.jit
def load_layer_operators(
    wd_ptr,
    H,
    stride_l,
    stride_k,
    stride_n,
    m_lo,
    m_hi,
    DEPTH: tl.constexpr,
    HALVES: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    """The operators of W_2..W_4 (M_l[k, n] = wd_ptr[l * stride_l + k * stride_k + n * stride_n]),
    each as load_operator returns it: 6 tensors. Those of layers beyond DEPTH are (m_lo, m_hi)."""
    if DEPTH >= 2:
        w2_lo, w2_hi = load_operator(wd_ptr, H, stride_k, stride_n, HALVES, BLOCK_H)
    else:
        w2_lo = m_lo  # [BLOCK_H (// 2), BLOCK_H]
        w2_hi = m_hi  # [BLOCK_H (// 2), BLOCK_H]
    if DEPTH >= 3:
        wd_ptr += stride_l
        w3_lo, w3_hi = load_operator(wd_ptr, H, stride_k, stride_n, HALVES, BLOCK_H)
    else:
        w3_lo = w2_lo  # [BLOCK_H (// 2), BLOCK_H]
        w3_hi = w2_hi  # [BLOCK_H (// 2), BLOCK_H]
    if DEPTH >= 4:
        wd_ptr += stride_l
        w4_lo, w4_hi = load_operator(wd_ptr, H, stride_k, stride_n, HALVES, BLOCK_H)
    else:
        w4_lo = w3_lo  # [BLOCK_H (// 2), BLOCK_H]
        w4_hi = w3_hi  # [BLOCK_H (// 2), BLOCK_H]
    return w2_lo, w2_hi, w3_lo, w3_hi, w4_lo, w4_hi


@triton.jit
def _chunked_pair_dot(a, m, n, p, q, LEVELS: tl.constexpr, PRECISION: tl.constexpr):
    """(p + a @ m, q + a @ n) over 2**LEVELS chunks of K, each chunk of a feeding both dots back to back."""
    if LEVELS <= 0:
        p = tl.dot(a, m, p, input_precision=PRECISION)  # [BLOCK_B, BLOCK_H]
        q = tl.dot(a, n, q, input_precision=PRECISION)  # [BLOCK_B, BLOCK_H]
    else:
        a0, a1 = _split_columns(a)  # [BLOCK_B, K // 2] each
        m0, m1 = _split_rows(m)  # [K // 2, BLOCK_H] each
        n0, n1 = _split_rows(n)  # [K // 2, BLOCK_H] each
        p, q = _chunked_pair_dot(a0, m0, n0, p, q, LEVELS - 1, PRECISION)
        p, q = _chunked_pair_dot(a1, m1, n1, p, q, LEVELS - 1, PRECISION)
    return p, q


@triton.jit
def pair_dot(
    a,
    m_lo,
    m_hi,
    n_lo,
    n_hi,
    HALVES: tl.constexpr,
    LEVELS: tl.constexpr,
    PRECISION: tl.constexpr,
    OUT_DTYPE: tl.constexpr,
):
    """(a @ M, a @ N) for two operators as load_operator staged them, sharing the left operand a.

    Why K-chunk-major (both dots on one chunk of a before the next chunk): an fp32 "ieee" dot on a
    GPU is an FMA loop holding a thread's K extent of a in registers; two operator_dot calls keep
    every chunk of a live across both (sm_90, fp32 H=64, BLOCK_B=16, 4 warps: the shortcut forward
    then spills ~4.7 KB). Same remedy as the gated family's gate_dots."""
    p = tl.zeros((a.shape[0], m_lo.shape[1]), OUT_DTYPE)  # [BLOCK_B, BLOCK_H]
    q = tl.zeros((a.shape[0], m_lo.shape[1]), OUT_DTYPE)  # [BLOCK_B, BLOCK_H]
    if HALVES:
        a_lo, a_hi = _split_columns(a)  # [BLOCK_B, BLOCK_H // 2] each
        p, q = _chunked_pair_dot(a_lo, m_lo, n_lo, p, q, LEVELS - 1, PRECISION)
        p, q = _chunked_pair_dot(a_hi, m_hi, n_hi, p, q, LEVELS - 1, PRECISION)
    else:
        p, q = _chunked_pair_dot(a, m_lo, n_lo, p, q, LEVELS, PRECISION)
    return p, q


@triton.jit
def _load_bias(b_ptr, cols, col_mask, DTYPE: tl.constexpr):
    """b [1, BLOCK_H] in DTYPE, zero on padded columns."""
    return tl.load(b_ptr + cols, mask=col_mask, other=0.0).to(DTYPE)[None, :]  # [1, BLOCK_H]


@triton.jit
def _layer_up(
    a,
    w_lo,
    w_hi,
    b,
    s_ptrs,
    mask,
    active,
    ACTIVATION: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    HALVES: tl.constexpr,
    LEVELS: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """One layer up the chain: s = f(a) is stored at s_ptrs (exactly 0 for the rows not active, with
    HAS_LENGTHS; active [BLOCK_B, 1]); returns s @ W^T + b (w_lo/w_hi: W^T as load_operator staged
    it). a: [BLOCK_B, BLOCK_H] in the state dtype."""
    s = activate(a, 0.0, ACTIVATION)  # [BLOCK_B, BLOCK_H]
    if HAS_LENGTHS:
        tl.store(s_ptrs, tl.where(active, s, 0.0).to(s_ptrs.dtype.element_ty), mask=mask)
    else:
        tl.store(s_ptrs, s.to(s_ptrs.dtype.element_ty), mask=mask)
    s_in = s.to(w_lo.dtype)  # [BLOCK_B, BLOCK_H]
    sw = operator_dot(s_in, w_lo, w_hi, HALVES, LEVELS, PRECISION, a.dtype)  # [BLOCK_B, BLOCK_H]
    return sw + b  # [BLOCK_B, BLOCK_H]


@triton.jit(do_not_specialize=["T"])
def deep_fwd_kernel(
    pre_ptr,  # [T, B, H] storage dtype: pre[..., :H], the first layer's input term
    pre_s_ptr,  # [T, B, H] storage dtype: pre[..., H:], the shortcut's (read only when SHORTCUT)
    w_ptr,  # [H, H] storage dtype: W_1 = weight_hh[:H]
    s_ptr,  # [H, H] storage dtype: S = weight_hh[H:] (read only when SHORTCUT)
    wd_ptr,  # [D-1, H, H] storage dtype: W_2..W_D (read only when DEPTH > 1)
    bd_ptr,  # [D-1, H] storage dtype: b_2..b_D (read only when DEPTH > 1)
    h0_ptr,  # [B, H] state dtype (read only when HAS_H0)
    out_ptr,  # [T, B, H] storage dtype: h_1..h_T
    hn_ptr,  # [B, H] storage dtype
    layers_ptr,  # [D-1, T, B, H] state dtype: s^1..s^{D-1} of every step (written when DEPTH > 1)
    lengths_ptr,  # [B] int32 (read only when HAS_LENGTHS)
    T,
    B,
    H,
    stride_pre_t,
    stride_pre_b,
    stride_pre_h,
    stride_w_row,
    stride_w_col,
    stride_wd_l,
    stride_wd_row,
    stride_wd_col,
    stride_bd_l,
    stride_bd_h,
    stride_h0_b,
    stride_h0_h,
    stride_out_t,
    stride_out_b,
    stride_out_h,
    stride_hn_b,
    stride_hn_h,
    stride_layers_l,
    stride_layers_t,
    stride_layers_b,
    stride_layers_h,
    ACTIVATION: tl.constexpr,
    DEPTH: tl.constexpr,
    SHORTCUT: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    STATE_FP64: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    SPLIT_K_LEVELS: tl.constexpr,
    W_HALVES: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    tl.static_assert(DEPTH >= 1 and DEPTH <= 4, "the deep-transition kernels take 1 to 4 layers")
    state_dtype = tl.float64 if STATE_FP64 else tl.float32
    rows, cols, col_mask, mask = program_tile(B, H, BLOCK_B, BLOCK_H)

    # M^T[k, n] = M[n, k] for every matrix, read through the strides and staged on chip once.
    # Padded rows and columns are zero, so padded hidden units never feed real ones. W_HALVES:
    # see load_operator (the launcher sets it for tensor-core dots only).
    w1_lo, w1_hi = load_operator(w_ptr, H, stride_w_col, stride_w_row, W_HALVES, BLOCK_H)
    if SHORTCUT:
        sc_lo, sc_hi = load_operator(s_ptr, H, stride_w_col, stride_w_row, W_HALVES, BLOCK_H)
    w2_lo, w2_hi, w3_lo, w3_hi, w4_lo, w4_hi = load_layer_operators(
        wd_ptr, H, stride_wd_l, stride_wd_col, stride_wd_row, w1_lo, w1_hi, DEPTH, W_HALVES, BLOCK_H
    )  # [BLOCK_H (// 2), BLOCK_H] each
    bd_cols = cols * stride_bd_h  # [BLOCK_H]
    if DEPTH >= 2:
        b2 = _load_bias(bd_ptr, bd_cols, col_mask, state_dtype)  # [1, BLOCK_H]
    if DEPTH >= 3:
        b3 = _load_bias(bd_ptr + stride_bd_l, bd_cols, col_mask, state_dtype)  # [1, BLOCK_H]
    if DEPTH >= 4:
        b4 = _load_bias((bd_ptr + stride_bd_l) + stride_bd_l, bd_cols, col_mask, state_dtype)  # [1, BLOCK_H]

    if HAS_H0:
        h0_ptrs = h0_ptr + rows[:, None] * stride_h0_b + cols[None, :] * stride_h0_h  # [BLOCK_B, BLOCK_H]
        h = tl.load(h0_ptrs, mask=mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
    else:
        h = tl.zeros((BLOCK_B, BLOCK_H), dtype=state_dtype)  # [BLOCK_B, BLOCK_H]

    # Row and column offsets stay separate vectors that meet inside the loop, and scalar base
    # pointers advance one time (or layer) stride at a time, as in the dense forward: no
    # loop-invariant int64 offset tiles pinning registers, no t * stride product.
    pre_rows = rows[:, None] * stride_pre_b  # [BLOCK_B, 1]
    pre_cols = cols[None, :] * stride_pre_h  # [1, BLOCK_H]
    out_rows = rows[:, None] * stride_out_b  # [BLOCK_B, 1]
    out_cols = cols[None, :] * stride_out_h  # [1, BLOCK_H]
    layer_rows = rows[:, None] * stride_layers_b  # [BLOCK_B, 1]
    layer_cols = cols[None, :] * stride_layers_h  # [1, BLOCK_H]
    pre_t_ptr = pre_ptr
    pre_s_t_ptr = pre_s_ptr
    out_t_ptr = out_ptr
    layers_t_ptr = layers_ptr
    if HAS_LENGTHS:
        lengths = row_lengths(lengths_ptr, rows, B)  # [BLOCK_B, 1], loaded once
    for t in range(T):
        if HAS_LENGTHS:
            active = t < lengths  # [BLOCK_B, 1]
        else:
            active = mask  # [BLOCK_B, BLOCK_H] (unused)
        # pre is read for inactive rows too: whatever it holds there (NaN included) reaches only
        # that row's h_new and layers, which tl.where discards (a select, not a product). Masking
        # these loads by `active` costs registers on sm_90 (bf16 H=128, depth 2 + shortcut: 218
        # against 156).
        p = tl.load((pre_t_ptr + pre_rows) + pre_cols, mask=mask, other=0.0)  # [BLOCK_B, BLOCK_H]
        # The state stays in fp32/fp64; for 16-bit storage it is rounded to W's dtype only as the
        # dot operand (fp32 accumulation).
        h_in = h.to(w1_lo.dtype)  # [BLOCK_B, BLOCK_H]
        if SHORTCUT:
            hw, hs = pair_dot(
                h_in, w1_lo, w1_hi, sc_lo, sc_hi, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION, state_dtype
            )  # [BLOCK_B, BLOCK_H] each
            ps = tl.load((pre_s_t_ptr + pre_rows) + pre_cols, mask=mask, other=0.0)  # [BLOCK_B, BLOCK_H]
            top = ps.to(state_dtype) + hs  # [BLOCK_B, BLOCK_H]: the top layer's shortcut term
        else:
            hw = operator_dot(h_in, w1_lo, w1_hi, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION, state_dtype)
            # hw: [BLOCK_B, BLOCK_H]
        a = p.to(state_dtype) + hw  # [BLOCK_B, BLOCK_H]: a^1
        # Layer k stores s^{k-1} and returns a^k. Padded columns stay 0 (zero pre, zero W and b
        # padding, f(0) = 0); padded batch rows hold finite values that are never stored.
        l_ptr = layers_t_ptr
        if DEPTH >= 2:
            a = _layer_up(
                a, w2_lo, w2_hi, b2, (l_ptr + layer_rows) + layer_cols, mask, active,
                ACTIVATION, HAS_LENGTHS, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION,
            )  # [BLOCK_B, BLOCK_H]: a^2  # fmt: skip
            l_ptr += stride_layers_l
        if DEPTH >= 3:
            a = _layer_up(
                a, w3_lo, w3_hi, b3, (l_ptr + layer_rows) + layer_cols, mask, active,
                ACTIVATION, HAS_LENGTHS, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION,
            )  # [BLOCK_B, BLOCK_H]: a^3  # fmt: skip
            l_ptr += stride_layers_l
        if DEPTH >= 4:
            a = _layer_up(
                a, w4_lo, w4_hi, b4, (l_ptr + layer_rows) + layer_cols, mask, active,
                ACTIVATION, HAS_LENGTHS, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION,
            )  # [BLOCK_B, BLOCK_H]: a^4  # fmt: skip
        if SHORTCUT:
            a += top  # [BLOCK_B, BLOCK_H]
        h_new = activate(a, 0.0, ACTIVATION)  # [BLOCK_B, BLOCK_H]: h_t = s^D_t
        if HAS_LENGTHS:
            # Inactive rows carry h and write an output of exactly 0.
            h = tl.where(active, h_new, h)  # [BLOCK_B, BLOCK_H]
            h_new = tl.where(active, h_new, 0.0)  # [BLOCK_B, BLOCK_H]
        else:
            h = h_new  # [BLOCK_B, BLOCK_H]
        tl.store((out_t_ptr + out_rows) + out_cols, h_new.to(out_ptr.dtype.element_ty), mask=mask)
        pre_t_ptr += stride_pre_t
        pre_s_t_ptr += stride_pre_t
        out_t_ptr += stride_out_t
        layers_t_ptr += stride_layers_t

    hn_ptrs = hn_ptr + rows[:, None] * stride_hn_b + cols[None, :] * stride_hn_h  # [BLOCK_B, BLOCK_H]
    tl.store(hn_ptrs, h.to(hn_ptr.dtype.element_ty), mask=mask)
