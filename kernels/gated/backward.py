"""Persistent backward kernel of the gated recurrences (LSTM, GRU): walks t = T..1 in one launch with
the G blocks W_g of weight_hh on chip. One template for both cells (equations: cells.py and the
contract at the top of trit_rnn/backends/torch_gated.py):

    LSTM: dh_T = grad_out_T + grad_hn,  dc = grad_cn;  per step
          (d a_t, dc) = lstm_step_backward(dh_t, dc, gates_t, c_t, c_{t-1})
          dh_{t-1} = grad_out_{t-1} + sum_g d a_{t,g} @ W_g;   dh0 = sum_g d a_{1,g} @ W_g, dc0 = dc
    GRU:  dh_T = grad_out_T + grad_hn;  per step
          (d a_r, d a_z, d a_n, d q_n, dh z) = gru_step_backward(dh_t, gates_t, q_n, h_{t-1})
          dh_{t-1} = grad_out_{t-1} + dh_t z + sum_g d q_{t,g} @ W_g;   dh0 likewise at t = 1

The step reads the state before it from a sequence and its initial value (LSTM: cells c_1..c_T and
c0, GRU: outputs h_1..h_T and h0); the LSTM carries c_t from one step to the next instead of
reading it twice. The weight gradient sum_t d_t^T h_{t-1} is one GEMM outside the kernel.

Variable lengths (HAS_LENGTHS): at a step t >= lengths[b] row b is inactive in the forward (state
carried, output and saved activations 0), so there grad_out is ignored, every per-step gradient
(d_gates, d_pre) is exactly 0 and dh (and the LSTM's dc) carry unchanged: grad_hn and grad_cn reach
the row's last active step through the inactive tail. The carries that multiply by the next step's
gates (dc f_{t+1}, dh z_{t+1}) are the ones an inactive step must not apply.
"""

import triton
import triton.language as tl

from ..dense.forward import operator_dot, program_tile
from ..lengths import row_lengths
from .cells import LSTM, gru_step_backward, lstm_step_backward
from .forward import load_gate_operators, load_gate_tiles, store_gate_tiles, zero_inactive


@triton.jit(do_not_specialize=["T"])
def gated_bwd_kernel(
    grad_out_ptr,  # [T, B, H] any float dtype
    grad_hn_ptr,  # [B, H] any float dtype (read only when HAS_GRAD_HN)
    grad_cn_ptr,  # [B, H] any float dtype (LSTM; read only when HAS_GRAD_CN)
    gates_ptr,  # [T, B, G, H] state dtype: the forward's activated gates
    aux_ptr,  # [T, B, H] state dtype: GRU q_n (LSTM: not read)
    seq_ptr,  # [T, B, H] the state before each step, shifted: LSTM cells (state dtype), GRU outputs
    s0_ptr,  # [B, H] state dtype: LSTM c0, GRU h0 (read only when HAS_S0)
    w_ptr,  # [G, H, H] storage dtype
    dgates_ptr,  # [T, B, G, H] state dtype: LSTM d a (d_gates), GRU d q (d_hidden)
    dpre_ptr,  # [T, B, G, H] state dtype: GRU d pre (LSTM: not written)
    dh0_ptr,  # [B, H] state dtype
    dc0_ptr,  # [B, H] state dtype (LSTM only)
    lengths_ptr,  # [B] int32 (read only when HAS_LENGTHS)
    T,
    B,
    H,
    stride_go_t,
    stride_go_b,
    stride_go_h,
    stride_ghn_b,
    stride_ghn_h,
    stride_gcn_b,
    stride_gcn_h,
    stride_gates_t,
    stride_gates_b,
    stride_gates_g,
    stride_gates_h,
    stride_aux_t,
    stride_aux_b,
    stride_aux_h,
    stride_seq_t,
    stride_seq_b,
    stride_seq_h,
    stride_s0_b,
    stride_s0_h,
    stride_w_g,
    stride_w_row,
    stride_w_col,
    stride_dg_t,
    stride_dg_b,
    stride_dg_g,
    stride_dg_h,
    stride_dpre_t,
    stride_dpre_b,
    stride_dpre_g,
    stride_dpre_h,
    stride_dh0_b,
    stride_dh0_h,
    stride_dc0_b,
    stride_dc0_h,
    CELL: tl.constexpr,
    ACTIVATION: tl.constexpr,
    HAS_GRAD_HN: tl.constexpr,
    HAS_GRAD_CN: tl.constexpr,
    HAS_S0: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    SPLIT_K_LEVELS: tl.constexpr,
    W_HALVES: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    state_dtype = dh0_ptr.dtype.element_ty
    rows, cols, col_mask, mask = program_tile(B, H, BLOCK_B, BLOCK_H)

    # W_g[k, n] as stored (dh_{t-1} = d_g @ W_g needs W_g itself, not its transpose); padding is
    # zero. Staged as in the forward (see load_operator).
    w0_lo, w0_hi, w1_lo, w1_hi, w2_lo, w2_hi, w3_lo, w3_hi = load_gate_operators(
        w_ptr, H, stride_w_g, stride_w_row, stride_w_col, CELL, W_HALVES, BLOCK_H
    )  # [BLOCK_H (// 2), BLOCK_H] each

    # As in the forward, row and column offsets stay separate vectors that meet inside the loop.
    go_rows = rows[:, None] * stride_go_b  # [BLOCK_B, 1]
    go_cols = cols[None, :] * stride_go_h  # [1, BLOCK_H]
    gates_rows = rows[:, None] * stride_gates_b  # [BLOCK_B, 1]
    gates_cols = cols[None, :] * stride_gates_h  # [1, BLOCK_H]
    seq_rows = rows[:, None] * stride_seq_b  # [BLOCK_B, 1]
    seq_cols = cols[None, :] * stride_seq_h  # [1, BLOCK_H]
    s0_rows = rows[:, None] * stride_s0_b  # [BLOCK_B, 1]
    s0_cols = cols[None, :] * stride_s0_h  # [1, BLOCK_H]
    dg_rows = rows[:, None] * stride_dg_b  # [BLOCK_B, 1]
    dg_cols = cols[None, :] * stride_dg_h  # [1, BLOCK_H]

    # Scalar base pointers at step T, moved back one time stride per step (64-bit arithmetic).
    last = (T - 1).to(tl.int64)
    go_t_ptr = grad_out_ptr + last * stride_go_t
    gates_t_ptr = gates_ptr + last * stride_gates_t
    seq_t_ptr = seq_ptr + last * stride_seq_t
    dg_t_ptr = dgates_ptr + last * stride_dg_t
    if CELL != LSTM:
        aux_rows = rows[:, None] * stride_aux_b  # [BLOCK_B, 1]
        aux_cols = cols[None, :] * stride_aux_h  # [1, BLOCK_H]
        dpre_rows = rows[:, None] * stride_dpre_b  # [BLOCK_B, 1]
        dpre_cols = cols[None, :] * stride_dpre_h  # [1, BLOCK_H]
        aux_t_ptr = aux_ptr + last * stride_aux_t
        dpre_t_ptr = dpre_ptr + last * stride_dpre_t

    if HAS_LENGTHS:
        lengths = row_lengths(lengths_ptr, rows, B)  # [BLOCK_B, 1], loaded once
        last_mask = mask & (T - 1 < lengths)  # [BLOCK_B, BLOCK_H]: rows active at step T
    else:
        last_mask = mask  # [BLOCK_B, BLOCK_H]
    dh = tl.load((go_t_ptr + go_rows) + go_cols, mask=last_mask, other=0.0)  # [BLOCK_B, BLOCK_H]
    dh = dh.to(state_dtype)  # [BLOCK_B, BLOCK_H]
    if HAS_GRAD_HN:
        # With lengths, grad_hn enters here too and is carried unchanged to the row's last step.
        ghn_ptrs = (
            grad_hn_ptr + rows[:, None] * stride_ghn_b + cols[None, :] * stride_ghn_h
        )  # [BLOCK_B, BLOCK_H]
        dh += tl.load(ghn_ptrs, mask=mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
    if CELL == LSTM:
        # dc: the part of dL/dc_t that comes from step t + 1 (grad_cn at t = T); c = c_t.
        if HAS_GRAD_CN:
            gcn_ptrs = (
                grad_cn_ptr + rows[:, None] * stride_gcn_b + cols[None, :] * stride_gcn_h
            )  # [BLOCK_B, BLOCK_H]
            dc = tl.load(gcn_ptrs, mask=mask, other=0.0).to(state_dtype)  # [BLOCK_B, BLOCK_H]
        else:
            dc = tl.zeros((BLOCK_B, BLOCK_H), dtype=state_dtype)  # [BLOCK_B, BLOCK_H]
        c = tl.load((seq_t_ptr + seq_rows) + seq_cols, mask=last_mask, other=0.0).to(
            state_dtype
        )  # [BLOCK_B, BLOCK_H]

    for s in range(T):
        if HAS_LENGTHS:
            t = T - 1 - s  # the step this iteration walks back through
            active = t < lengths  # [BLOCK_B, 1]
            step_mask = mask & active  # [BLOCK_B, BLOCK_H]: inactive rows read nothing of step t
            # The state before the step is read where step t - 1 is active: the LSTM carries c_{t-1}
            # into step t - 1 even from an inactive step t (t = lengths[b]).
            prev_mask = mask & ((s < T - 1) & (t - 1 < lengths))  # [BLOCK_B, BLOCK_H]
        else:
            step_mask = mask  # [BLOCK_B, BLOCK_H]
            prev_mask = mask & (s < T - 1)  # [BLOCK_B, BLOCK_H]
        # The state before this step: s_{t-1} from the sequence, the initial state at t = 1 (the
        # sequence pointer then points before the buffer, and its load is fully masked).
        seq_t_ptr -= stride_seq_t
        s_prev = tl.load((seq_t_ptr + seq_rows) + seq_cols, mask=prev_mask, other=0.0)  # [BLOCK_B, BLOCK_H]
        s_prev = s_prev.to(state_dtype)  # [BLOCK_B, BLOCK_H]
        if HAS_S0:
            s0 = tl.load(
                (s0_ptr + s0_rows) + s0_cols, mask=mask & (s == T - 1), other=0.0
            )  # [BLOCK_B, BLOCK_H]
            s_prev += s0.to(state_dtype)  # [BLOCK_B, BLOCK_H]
        y0, y1, y2, y3 = load_gate_tiles(
            (gates_t_ptr + gates_rows) + gates_cols, stride_gates_g, step_mask, CELL, state_dtype
        )  # [BLOCK_B, BLOCK_H] each
        if CELL == LSTM:
            d0, d1, d2, d3, dc_new = lstm_step_backward(
                dh, dc, y0, y1, y2, y3, c, s_prev
            )  # [BLOCK_B, BLOCK_H] each
            if HAS_LENGTHS:
                # Inactive rows: d a = 0, and dc carries unchanged (no f_{t+1} factor).
                d0, d1, d2, d3 = zero_inactive(active, d0, d1, d2, d3, CELL)  # [BLOCK_B, BLOCK_H] each
                dc = tl.where(active, dc_new, dc)  # [BLOCK_B, BLOCK_H]
            else:
                dc = dc_new  # [BLOCK_B, BLOCK_H]
            c = s_prev  # [BLOCK_B, BLOCK_H]
            dh_direct = tl.zeros((1, 1), dtype=state_dtype)  # [1, 1]
        else:
            q_n = tl.load((aux_t_ptr + aux_rows) + aux_cols, mask=step_mask, other=0.0).to(
                state_dtype
            )  # [BLOCK_B, BLOCK_H]
            d0, d1, d_n, d2, dh_direct = gru_step_backward(
                dh, y0, y1, y2, q_n, s_prev, ACTIVATION
            )  # [BLOCK_B, BLOCK_H] each
            if HAS_LENGTHS:
                # Inactive rows: d pre = d q = 0, and dh carries unchanged: its direct part is dh
                # itself (no z_{t+1} factor), and the zero d q add nothing to it below.
                # (four tiles: d_n is the fourth, as for a 4-gate cell)
                d0, d1, d2, d_n = zero_inactive(active, d0, d1, d2, d_n, LSTM)  # [BLOCK_B, BLOCK_H] each
                dh_direct = tl.where(active, dh_direct, dh)  # [BLOCK_B, BLOCK_H]
            d3 = d2  # [BLOCK_B, BLOCK_H]
            store_gate_tiles(
                (dpre_t_ptr + dpre_rows) + dpre_cols, stride_dpre_g, mask, d0, d1, d_n, d_n, CELL
            )
            aux_t_ptr -= stride_aux_t
            dpre_t_ptr -= stride_dpre_t
        store_gate_tiles((dg_t_ptr + dg_rows) + dg_cols, stride_dg_g, mask, d0, d1, d2, d3, CELL)

        # As in the forward, 16-bit storage rounds only the dot operands; accumulation is fp32.
        dh_prev = dh_direct + operator_dot(
            d0.to(w0_lo.dtype), w0_lo, w0_hi, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION, state_dtype
        )  # [BLOCK_B, BLOCK_H]
        dh_prev += operator_dot(
            d1.to(w1_lo.dtype), w1_lo, w1_hi, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION, state_dtype
        )  # [BLOCK_B, BLOCK_H]
        dh_prev += operator_dot(
            d2.to(w2_lo.dtype), w2_lo, w2_hi, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION, state_dtype
        )  # [BLOCK_B, BLOCK_H]
        if CELL == LSTM:
            dh_prev += operator_dot(
                d3.to(w3_lo.dtype), w3_lo, w3_hi, W_HALVES, SPLIT_K_LEVELS, DOT_PRECISION, state_dtype
            )  # [BLOCK_B, BLOCK_H]
            if HAS_LENGTHS:
                dh = tl.where(active, dh_prev, dh)  # [BLOCK_B, BLOCK_H]: inactive rows carry dh
            else:
                dh = dh_prev  # [BLOCK_B, BLOCK_H]
        else:
            dh = dh_prev  # [BLOCK_B, BLOCK_H] (inactive rows: dh_direct = dh, plus zero dots)
        go_t_ptr -= stride_go_t
        gates_t_ptr -= stride_gates_t
        dg_t_ptr -= stride_dg_t
        # grad_out of the step before, except after the first step (t = 1), where dh is dh0; with
        # lengths, only where that step is active.
        go = tl.load((go_t_ptr + go_rows) + go_cols, mask=prev_mask, other=0.0)  # [BLOCK_B, BLOCK_H]
        dh += go.to(state_dtype)  # [BLOCK_B, BLOCK_H]

    dh0_ptrs = dh0_ptr + rows[:, None] * stride_dh0_b + cols[None, :] * stride_dh0_h  # [BLOCK_B, BLOCK_H]
    tl.store(dh0_ptrs, dh, mask=mask)
    if CELL == LSTM:
        dc0_ptrs = dc0_ptr + rows[:, None] * stride_dc0_b + cols[None, :] * stride_dc0_h  # [BLOCK_B, BLOCK_H]
        tl.store(dc0_ptrs, dc, mask=mask)
