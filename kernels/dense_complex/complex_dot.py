"""The complex product of a step, a @ M or a @ conj(M), on real and imaginary planes.

The planes of a are stacked along the rows, A = [ar; ai] [2 * BLOCK_B, K], and multiplied by each
plane of M: P = A @ Mr = [ar Mr; ai Mr], Q = A @ Mi = [ar Mi; ai Mi]. Then

    a @ M       = (ar Mr - ai Mi) + i (ai Mr + ar Mi) = (P_top - Q_bottom) + i (P_bottom + Q_top)
    a @ conj(M) = (ar Mr + ai Mi) + i (ai Mr - ar Mi) = (P_top + Q_bottom) + i (P_bottom - Q_top)

Why this form (sm_90, complex64 H=128, BLOCK_B=16, 8 warps, K chunks of 16, ptxas of triton 3.8):
fp32 "ieee" dots are FMA loops that hold a thread's whole K extent of both operands in registers,
so what matters is how long each operand chunk stays live. Walking K in chunks where one chunk of A
feeds its two dots (Mr, then Mi) back to back keeps one A chunk and one M chunk live: 184 (forward)
/ 210 (backward) registers, no spills. Four separate [BLOCK_B, K] dots chunked the same way: 234 /
222. Two stacked dots over the whole K with a rotated copy of A ([-ai; ar] @ Mi): 249 / 18 KB of
spills (the compiler keeps the chunks of both operands live). Gauss's three-product form
(k1 = (ar + ai) Mr, k2 = ar (Mi - Mr), k3 = ai (Mr + Mi)) saves a quarter of the FMAs but stages
three planes of M: forward 188 registers and 204 KiB of shared memory instead of 184 and 144 KiB,
and its partial products can be much larger than the parts they combine into (less accurate).
"""

import triton
import triton.language as tl

from ..dense.forward import _split_columns, _split_rows


@triton.jit
def _stack_rows(top, bottom):
    """[M, K] and [M, K] -> [2M, K]: top's rows, then bottom's."""
    x = tl.permute(tl.join(top, bottom), (2, 0, 1))  # [2, M, K]
    return tl.reshape(x, (2 * top.shape[0], top.shape[1]))  # [2M, K]


@triton.jit
def _chunked_dots(a, mr, mi, p, q, LEVELS: tl.constexpr, PRECISION: tl.constexpr):
    """p += a @ mr, q += a @ mi over 2**LEVELS chunks of K, each chunk of a used by both dots in turn."""
    if LEVELS <= 0:
        p = tl.dot(a, mr, p, input_precision=PRECISION)  # [2 * BLOCK_B, BLOCK_H]
        q = tl.dot(a, mi, q, input_precision=PRECISION)  # [2 * BLOCK_B, BLOCK_H]
    else:
        a0, a1 = _split_columns(a)
        mr0, mr1 = _split_rows(mr)
        mi0, mi1 = _split_rows(mi)
        p, q = _chunked_dots(a0, mr0, mi0, p, q, LEVELS - 1, PRECISION)
        p, q = _chunked_dots(a1, mr1, mi1, p, q, LEVELS - 1, PRECISION)
    return p, q


@triton.jit
def complex_operator_dot(
    ar,
    ai,
    mr_lo,
    mr_hi,
    mi_lo,
    mi_hi,
    CONJ: tl.constexpr,
    HALVES: tl.constexpr,
    LEVELS: tl.constexpr,
    PRECISION: tl.constexpr,
    OUT_DTYPE: tl.constexpr,
):
    """(real, imag) of a @ M (CONJ: a @ conj(M)) for a = ar + i ai [BLOCK_B, K] and both planes of
    M as load_operator returned them (HALVES: two K halves each); LEVELS: total K-chunking."""
    a = _stack_rows(ar, ai)  # [2 * BLOCK_B, BLOCK_H]
    p = tl.zeros(a.shape, OUT_DTYPE)  # [2 * BLOCK_B, BLOCK_H]
    q = tl.zeros(a.shape, OUT_DTYPE)  # [2 * BLOCK_B, BLOCK_H]
    if HALVES:
        a_lo, a_hi = _split_columns(a)
        p, q = _chunked_dots(a_lo, mr_lo, mi_lo, p, q, LEVELS - 1, PRECISION)
        p, q = _chunked_dots(a_hi, mr_hi, mi_hi, p, q, LEVELS - 1, PRECISION)
    else:
        p, q = _chunked_dots(a, mr_lo, mi_lo, p, q, LEVELS, PRECISION)
    p_top, p_bottom = _split_rows(p)  # [BLOCK_B, BLOCK_H] each
    q_top, q_bottom = _split_rows(q)  # [BLOCK_B, BLOCK_H] each
    if CONJ:
        real = p_top + q_bottom  # [BLOCK_B, BLOCK_H]
        imag = p_bottom - q_top  # [BLOCK_B, BLOCK_H]
    else:
        real = p_top - q_bottom  # [BLOCK_B, BLOCK_H]
        imag = p_bottom + q_top  # [BLOCK_B, BLOCK_H]
    return real, imag
