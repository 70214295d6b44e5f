"""Persistent forward kernel of the gated recurrences (LSTM, GRU): one template for both cells.

    LSTM (G = 4): a_t = pre_t + h_{t-1} @ weight_hh^T;  (i, f, g, o, c_t, h_t) = lstm_step(a_t, c_{t-1})
    GRU  (G = 3): q_t = h_{t-1} @ weight_hh^T + bias_hh;  (r, z, n, h_t) = gru_step(pre_t, q_t, h_{t-1})
                  (candidate activation ACTIVATION: tanh, or modReLU with act_bias for the GORU)

(cells.py). Every [T, B, G*H] tensor is read as [T, B, G, H] (a gate-block stride) and weight_hh
[G*H, H] as G blocks W_g [H, H]. One program owns BLOCK_B batch rows and the whole (padded) hidden
dimension, loads the G transposed blocks W_g^T once (each its own on-chip operand) and walks all T
steps in a single launch: per step G dots h_{t-1} @ W_g^T, then the cell's pointwise step. It
stores the outputs h_t and, for the backward, the activated gates and one [B, H] tensor per step
(LSTM: c_t, GRU: q_n, the recurrent part of the candidate with its bias).

Variable lengths (HAS_LENGTHS): row b is active at step t (0-based) iff t < lengths[b]. An inactive
row keeps its state (h, and c for the LSTM), does not read pre, and writes exactly 0 as its output
and as its saved activations (gates, aux), so h_n (c_n) is the state after the row's last active
step. The mask is per row, [BLOCK_B, 1], inside the one time loop.
"""

import triton
import triton.language as tl

from ..activations import MODRELU
from ..dense.forward import _split_columns, _split_rows, load_operator, program_tile
from ..lengths import row_lengths
from .cells import LSTM, gru_step, lstm_step


@triton.jit
def load_gate_operators(
    w_ptr, H, stride_g, stride_k, stride_n, CELL: tl.constexpr, HALVES: tl.constexpr, BLOCK_H: tl.constexpr
):
    """The G right-hand operands M_g[k, n] = w_ptr[g * stride_g + k * stride_k + n * stride_n], each
    as load_operator returns it (two K halves, or the whole matrix twice): 8 tensors, the last pair
    a copy of the third for a 3-gate cell. Padding outside H x H is zero."""
    m0_lo, m0_hi = load_operator(w_ptr, H, stride_k, stride_n, HALVES, BLOCK_H)
    w_ptr += stride_g
    m1_lo, m1_hi = load_operator(w_ptr, H, stride_k, stride_n, HALVES, BLOCK_H)
    w_ptr += stride_g
    m2_lo, m2_hi = load_operator(w_ptr, H, stride_k, stride_n, HALVES, BLOCK_H)
    if CELL == LSTM:
        w_ptr += stride_g
        m3_lo, m3_hi = load_operator(w_ptr, H, stride_k, stride_n, HALVES, BLOCK_H)
    else:
        m3_lo = m2_lo  # [BLOCK_H (// 2), BLOCK_H]
        m3_hi = m2_hi  # [BLOCK_H (// 2), BLOCK_H]
    return m0_lo, m0_hi, m1_lo, m1_hi, m2_lo, m2_hi, m3_lo, m3_hi


@triton.jit
def _chunked_gate_dots(
    a, m0, m1, m2, m3, q0, q1, q2, q3, CELL: tl.constexpr, LEVELS: tl.constexpr, PRECISION: tl.constexpr
):
    """q_g += a @ m_g for the G gates over 2**LEVELS chunks of K, each chunk of a feeding the G dots
    back to back (q3 and m3 pass through untouched for a 3-gate cell)."""
    if LEVELS <= 0:
        q0 = tl.dot(a, m0, q0, input_precision=PRECISION)  # [BLOCK_B, BLOCK_H]
        q1 = tl.dot(a, m1, q1, input_precision=PRECISION)  # [BLOCK_B, BLOCK_H]
        q2 = tl.dot(a, m2, q2, input_precision=PRECISION)  # [BLOCK_B, BLOCK_H]
        if CELL == LSTM:
            q3 = tl.dot(a, m3, q3, input_precision=PRECISION)  # [BLOCK_B, BLOCK_H]
    else:
        a0, a1 = _split_columns(a)  # [BLOCK_B, K // 2] each
        m0_0, m0_1 = _split_rows(m0)  # [K // 2, BLOCK_H] each
        m1_0, m1_1 = _split_rows(m1)  # [K // 2, BLOCK_H] each
        m2_0, m2_1 = _split_rows(m2)  # [K // 2, BLOCK_H] each
        m3_0, m3_1 = _split_rows(m3)  # [K // 2, BLOCK_H] each
        q0, q1, q2, q3 = _chunked_gate_dots(
            a0, m0_0, m1_0, m2_0, m3_0, q0, q1, q2, q3, CELL, LEVELS - 1, PRECISION
        )
        q0, q1, q2, q3 = _chunked_gate_dots(
            a1, m0_1, m1_1, m2_1, m3_1, q0, q1, q2, q3, CELL, LEVELS - 1, PRECISION
        )
    return q0, q1, q2, q3


@triton.jit
def gate_dots(
    a,
    m0_lo, m0_hi, m1_lo, m1_hi, m2_lo, m2_hi, m3_lo, m3_hi,
    CELL: tl.constexpr,
    HALVES: tl.constexpr,
    LEVELS: tl.constexpr,
    PRECISION: tl.constexpr,
    OUT_DTYPE: tl.constexpr,
):  # fmt: skip
    """(a @ M_0, ..., a @ M_3) for the G operators as load_gate_operators returned them (the fourth
    is a copy of the third for a 3-gate cell); LEVELS is split_k_dot's total K-chunking.

    Why K-chunk-major (every gate's dot on one chunk of a before the next chunk): the G dots share
    their left operand, and an fp32 "ieee" dot on a GPU is an FMA loop that holds a thread's whole
    K extent of it in registers. Gate-major (G operator_dot calls) keeps every chunk of a live
    across all G dots: the sm_90 LSTM forward at fp32 H=64 (BLOCK_B=16, 8 warps) then needs 255
    registers and spills; chunk-major keeps one chunk live (see the AOT numbers in launch.py)."""
    q0 = tl.zeros((a.shape[0], m0_lo.shape[1]), OUT_DTYPE)  # [BLOCK_B, BLOCK_H]
    q1 = tl.zeros((a.shape[0], m0_lo.shape[1]), OUT_DTYPE)  # [BLOCK_B, BLOCK_H]
    q2 = tl.zeros((a.shape[0], m0_lo.shape[1]), OUT_DTYPE)  # [BLOCK_B, BLOCK_H]
    q3 = tl.zeros((a.shape[0], m0_lo.shape[1]), OUT_DTYPE)  # [BLOCK_B, BLOCK_H]
    if HALVES:
        a_lo, a_hi = _split_columns(a)  # [BLOCK_B, BLOCK_H // 2] each
        q0, q1, q2, q3 = _chunked_gate_dots(
            a_lo, m0_lo, m1_lo, m2_lo, m3_lo, q0, q1, q2, q3, CELL, LEVELS - 1, PRECISION
        )
        q0, q1, q2, q3 = _chunked_gate_dots(
            a_hi, m0_hi, m1_hi, m2_hi, m3_hi, q0, q1, q2, q3, CELL, LEVELS - 1, PRECISION
        )
    else:
        q0, q1, q2, q3 = _chunked_gate_dots(
            a, m0_lo, m1_lo, m2_lo, m3_lo, q0, q1, q2, q3, CELL, LEVELS, PRECISION
        )
    return q0, q1, q2, q3


@triton.jit
def load_gate_tiles(ptrs, stride_g, mask, CELL: tl.constexpr, DTYPE: tl.constexpr):
    """The G gate blocks [BLOCK_B, BLOCK_H] at ptrs + g * stride_g (pointer steps, no g * stride
    product), in DTYPE; the fourth is a copy of the third for a 3-gate cell."""
    x0 = tl.load(ptrs, mask=mask, other=0.0).to(DTYPE)  # [BLOCK_B, BLOCK_H]
    ptrs += stride_g
    x1 = tl.load(ptrs, mask=mask, other=0.0).to(DTYPE)  # [BLOCK_B, BLOCK_H]
    ptrs += stride_g
    x2 = tl.load(ptrs, mask=mask, other=0.0).to(DTYPE)  # [BLOCK_B, BLOCK_H]
    if CELL == LSTM:
        ptrs += stride_g
        x3 = tl.load(ptrs, mask=mask, other=0.0).to(DTYPE)  # [BLOCK_B, BLOCK_H]
    else:
        x3 = x2  # [BLOCK_B, BLOCK_H]
    return x0, x1, x2, x3


@triton.jit
def zero_inactive(active, x0, x1, x2, x3, CELL: tl.constexpr):
    """The G gate blocks with the inactive rows (active [BLOCK_B, 1] false) set to exactly 0 (the
    fourth passes through for a 3-gate cell)."""
    x0 = tl.where(active, x0, 0.0)  # [BLOCK_B, BLOCK_H]
    x1 = tl.where(active, x1, 0.0)  # [BLOCK_B, BLOCK_H]
    x2 = tl.where(active, x2, 0.0)  # [BLOCK_B, BLOCK_H]
    if CELL == LSTM:
        x3 = tl.where(active, x3, 0.0)  # [BLOCK_B, BLOCK_H]
    return x0, x1, x2, x3


@triton.jit
def store_gate_tiles(ptrs, stride_g, mask, x0, x1, x2, x3, CELL: tl.constexpr):
    """Stores the G gate blocks [BLOCK_B, BLOCK_H] at ptrs + g * stride_g (x3 only for a 4-gate cell)."""
    tl.store(ptrs, x0.to(ptrs.dtype.element_ty), mask=mask)
    ptrs += stride_g
    tl.store(ptrs, x1.to(ptrs.dtype.element_ty), mask=mask)
    ptrs += stride_g
    tl.store(ptrs, x2.to(ptrs.dtype.element_ty), mask=mask)
    if CELL == LSTM:
        ptrs += stride_g
        tl.store(ptrs, x3.to(ptrs.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["T"])
def gated_fwd_kernel(
    pre_ptr,  # [T, B, G, H] storage dtype
    w_ptr,  # [G, H, H] storage dtype
    bias_ptr,  # [G, H] state dtype (GRU bias_hh; read only when HAS_BIAS)
    act_bias_ptr,  # [H] state dtype (GRU candidate modReLU bias; read only for modrelu)
    h0_ptr,  # [B, H] state dtype (read only when HAS_H0)
    c0_ptr,  # [B, H] state dtype (LSTM; read only when HAS_C0)
    out_ptr,  # [T, B, H] storage dtype
    hn_ptr,  # [B, H] storage dtype
    cn_ptr,  # [B, H] storage dtype (LSTM only)
    gates_ptr,  # [T, B, G, H] state dtype
    aux_ptr,  # [T, B, H] state dtype: LSTM c_t, GRU q_n
    lengths_ptr,  # [B] int32 (read only when HAS_LENGTHS)
    T,
    B,
    H,
    stride_pre_t,
    stride_pre_b,
    stride_pre_g,
    stride_pre_h,
    stride_w_g,
    stride_w_row,
    stride_w_col,
    stride_bias_g,
    stride_bias_h,
    stride_act_bias_h,
    stride_h0_b,
    stride_h0_h,
    stride_c0_b,
    stride_c0_h,
    stride_out_t,
    stride_out_b,
    stride_out_h,
    stride_hn_b,
    stride_hn_h,
    stride_cn_b,
    stride_cn_h,
    stride_gates_t,
    stride_gates_b,
    stride_gates_g,
    stride_gates_h,
    stride_aux_t,
    stride_aux_b,
    stride_aux_h,
    CELL: tl.constexpr,
    ACTIVATION: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_C0: tl.constexpr,
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

    # W_g^T[k, n] = W_g[n, k] for each gate block, staged on chip once (padding zero, so padded
    # hidden units never feed real ones). W_HALVES: see load_operator.
    w0_lo, w0_hi, w1_lo, w1_hi, w2_lo, w2_hi, w3_lo, w3_hi = load_gate_operators(
        w_ptr, H, stride_w_g, stride_w_col, stride_w_row, CELL, W_HALVES, BLOCK_H
    )  # [BLOCK_H (// 2), BLOCK_H] each

    if HAS_BIAS:
        b_ptrs = bias_ptr + cols * stride_bias_h  # [BLOCK_H]
        b0 = tl.load(b_ptrs, mask=col_mask, other=0.0).to(state_dtype)[None, :]  # [1, BLOCK_H]
        b_ptrs += stride_bias_g
        b1 = tl.load(b_ptrs, mask=col_mask, other=0.0).to(state_dtype)[None, :]  # [1, BLOCK_H]
        b_ptrs += stride_bias_g
        b2 = tl.load(b_ptrs, mask=col_mask, other=0.0).to(state_dtype)[None, :]  # [1, BLOCK_H]
    else:
        b0 = tl.zeros((1, BLOCK_H), dtype=state_dtype)  # [1, BLOCK_H]
        b1 = b0  # [1, BLOCK_H]
        b2 = b0  # [1, BLOCK_H]

    if ACTIVATION == MODRELU:
        act_bias = tl.load(act_bias_ptr + cols * stride_act_bias_h, mask=col_mask, other=0.0)  # [BLOCK_H]
        act_bias = act_bias.to(state_dtype)[None, :]  # [1, BLOCK_H]
    else:
        act_bias = tl.zeros((1, BLOCK_H), dtype=state_dtype)  # [1, BLOCK_H]

    if HAS_H0:
        h0_ptrs = h0_ptr + rows[:, None] * stride_h0_b + cols[None, :] * stride_h0_h  # [BLOCK_B, BLOCK_H]
        h = tl.load(h0_ptrs, mask=mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
    else:
        h = tl.zeros((BLOCK_B, BLOCK_H), dtype=state_dtype)  # [BLOCK_B, BLOCK_H]
    if CELL == LSTM:
        if HAS_C0:
            c0_ptrs = c0_ptr + rows[:, None] * stride_c0_b + cols[None, :] * stride_c0_h  # [BLOCK_B, BLOCK_H]
            c = tl.load(c0_ptrs, mask=mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
        else:
            c = tl.zeros((BLOCK_B, BLOCK_H), dtype=state_dtype)  # [BLOCK_B, BLOCK_H]

    # Row and column offsets stay separate vectors that meet inside the loop, and scalar base
    # pointers advance one time stride per step, as in the dense forward (loop-invariant int64
    # offset tiles would pin registers; no t * stride product).
    pre_rows = rows[:, None] * stride_pre_b  # [BLOCK_B, 1]
    pre_cols = cols[None, :] * stride_pre_h  # [1, BLOCK_H]
    gates_rows = rows[:, None] * stride_gates_b  # [BLOCK_B, 1]
    gates_cols = cols[None, :] * stride_gates_h  # [1, BLOCK_H]
    aux_rows = rows[:, None] * stride_aux_b  # [BLOCK_B, 1]
    aux_cols = cols[None, :] * stride_aux_h  # [1, BLOCK_H]
    out_rows = rows[:, None] * stride_out_b  # [BLOCK_B, 1]
    out_cols = cols[None, :] * stride_out_h  # [1, BLOCK_H]
    pre_t_ptr = pre_ptr
    gates_t_ptr = gates_ptr
    aux_t_ptr = aux_ptr
    out_t_ptr = out_ptr
    if HAS_LENGTHS:
        lengths = row_lengths(lengths_ptr, rows, B)  # [BLOCK_B, 1], loaded once
    for t in range(T):
        # The state stays in fp32/fp64; for 16-bit storage it is rounded to W's dtype only as the
        # dot operand (fp32 accumulation).
        h_in = h.to(w0_lo.dtype)  # [BLOCK_B, BLOCK_H]
        q0, q1, q2, q3 = gate_dots(
            h_in, w0_lo, w0_hi, w1_lo, w1_hi, w2_lo, w2_hi, w3_lo, w3_hi,
            CELL, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION, state_dtype,
        )  # [BLOCK_B, BLOCK_H] each (q3: LSTM only)  # fmt: skip
        if HAS_LENGTHS:
            active = t < lengths  # [BLOCK_B, 1]
            # pre of an inactive row is not needed: not read.
            p0, p1, p2, p3 = load_gate_tiles(
                (pre_t_ptr + pre_rows) + pre_cols, stride_pre_g, mask & active, CELL, state_dtype
            )  # [BLOCK_B, BLOCK_H] each
        else:
            p0, p1, p2, p3 = load_gate_tiles(
                (pre_t_ptr + pre_rows) + pre_cols, stride_pre_g, mask, CELL, state_dtype
            )  # [BLOCK_B, BLOCK_H] each
        if CELL == LSTM:
            y0, y1, y2, y3, c_new, h_new = lstm_step(
                p0 + q0, p1 + q1, p2 + q2, p3 + q3, c
            )  # [BLOCK_B, BLOCK_H] each
            if HAS_LENGTHS:
                # Inactive rows carry (h, c). h is carried as its dot operand h_in: the same value
                # for fp32/fp64 state; for 16-bit storage h only ever leaves the kernel rounded to
                # the storage dtype (h_in's), as the next dot operand and as h_n, so the carry is
                # exact while the fp32 h need not stay live across the G dots (sm_90, bf16 H=128:
                # 203 registers, 208 carrying h; no spills either way).
                c = tl.where(active, c_new, c)  # [BLOCK_B, BLOCK_H]
                h = tl.where(active, h_new, h_in.to(state_dtype))  # [BLOCK_B, BLOCK_H]
            else:
                c = c_new  # [BLOCK_B, BLOCK_H]
                h = h_new  # [BLOCK_B, BLOCK_H]
            aux = c_new  # [BLOCK_B, BLOCK_H]
        else:
            aux = q2 + b2  # [BLOCK_B, BLOCK_H]
            y0, y1, y2, h_new = gru_step(
                p0, p1, p2, q0 + b0, q1 + b1, aux, h, act_bias, ACTIVATION
            )  # [BLOCK_B, BLOCK_H] each
            y3 = y2  # [BLOCK_B, BLOCK_H]
            if HAS_LENGTHS:
                h = tl.where(active, h_new, h)  # [BLOCK_B, BLOCK_H]: inactive rows carry h
            else:
                h = h_new  # [BLOCK_B, BLOCK_H]
        if HAS_LENGTHS:
            # Inactive rows write exactly 0: the output and every saved activation.
            y0, y1, y2, y3 = zero_inactive(active, y0, y1, y2, y3, CELL)  # [BLOCK_B, BLOCK_H] each
            aux = tl.where(active, aux, 0.0)  # [BLOCK_B, BLOCK_H]
            h_new = tl.where(active, h_new, 0.0)  # [BLOCK_B, BLOCK_H]
        # Padded rows and columns hold finite values that are never stored and, W's padding being
        # zero, never reach a real unit.
        store_gate_tiles((gates_t_ptr + gates_rows) + gates_cols, stride_gates_g, mask, y0, y1, y2, y3, CELL)
        tl.store((aux_t_ptr + aux_rows) + aux_cols, aux.to(aux_ptr.dtype.element_ty), mask=mask)
        tl.store((out_t_ptr + out_rows) + out_cols, h_new.to(out_ptr.dtype.element_ty), mask=mask)
        pre_t_ptr += stride_pre_t
        gates_t_ptr += stride_gates_t
        aux_t_ptr += stride_aux_t
        out_t_ptr += stride_out_t

    hn_ptrs = hn_ptr + rows[:, None] * stride_hn_b + cols[None, :] * stride_hn_h  # [BLOCK_B, BLOCK_H]
    tl.store(hn_ptrs, h.to(hn_ptr.dtype.element_ty), mask=mask)
    if CELL == LSTM:
        cn_ptrs = cn_ptr + rows[:, None] * stride_cn_b + cols[None, :] * stride_cn_h  # [BLOCK_B, BLOCK_H]
        tl.store(cn_ptrs, c.to(cn_ptr.dtype.element_ty), mask=mask)
