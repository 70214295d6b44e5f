"""Complex activations of the dense complex family on (real, imaginary) planes, and their VJPs.

    modReLU: h = z * relu(|z| + b) / (|z| + eps) = s(|z|) * z, with s(m) = relu(m + b) / (m + eps).

VJP in PyTorch's convention (g = dL/dRe h + i dL/dIm h, dz likewise), from the real 2x2 Jacobian
of (hr, hi) = s(m) (zr, zi) with m = |z|, dm/dzr = zr / m, dm/dzi = zi / m:

    dL/dzr = s gr + s'(m) (zr / m) (zr gr + zi gi), dL/dzi likewise, i.e.
    dz = s(m) g + (s'(m) m) Re(conj(u) g) u,  u = z / |z|

where active (m + b > 0) s'(m) = (eps - b) / (m + eps)^2, elsewhere s = s' = 0. Written with the
unit vector u (|u| <= 1, set to 0 at z = 0) and the bounded factor s'(m) m, nothing divides by |z|
unguarded: at z = 0 the second term vanishes (its limit for eps > 0; torch's |z| has gradient 0
there too) and dz = s(0) g. A zero denominator m + eps (z = 0 with eps = 0) is replaced by 1, so
h(0) = 0 and every value stays finite.

Codes are those of kernels/activations.py (identity 0, modrelu 3); the complex family has no other.
"""

import triton
import triton.language as tl

from ..activations import MODRELU


@triton.jit
def _magnitude(zr, zi):
    """|z|, correctly rounded: tl.sqrt of fp32 is an approximation on a GPU, tl.sqrt_rn takes fp32
    only (fp64 tl.sqrt is already correctly rounded)."""
    sq = zr * zr + zi * zi  # [BLOCK_B, BLOCK_H]
    if sq.dtype == tl.float32:
        m = tl.sqrt_rn(sq)  # [BLOCK_B, BLOCK_H]
    else:
        m = tl.sqrt(sq)  # [BLOCK_B, BLOCK_H]
    return m


@triton.jit
def _modrelu_parts(zr, zi, act_bias, eps):
    """(ur, ui, s, s' m): the unit vector u = z / |z| (0 at z = 0), s(|z|) and s'(|z|) |z|, with
    s = s' = 0 where inactive."""
    m = _magnitude(zr, zi)  # [BLOCK_B, BLOCK_H]
    nonzero = m > 0  # [BLOCK_B, BLOCK_H]
    m_safe = tl.where(nonzero, m, 1.0)  # [BLOCK_B, BLOCK_H]
    ur = tl.where(nonzero, zr / m_safe, 0.0)  # [BLOCK_B, BLOCK_H]
    ui = tl.where(nonzero, zi / m_safe, 0.0)  # [BLOCK_B, BLOCK_H]
    denom = m + eps  # [BLOCK_B, BLOCK_H]
    denom = tl.where(denom > 0, denom, 1.0)  # [BLOCK_B, BLOCK_H]
    active = m + act_bias > 0  # [BLOCK_B, BLOCK_H]
    s = tl.where(active, (m + act_bias) / denom, 0.0)  # [BLOCK_B, BLOCK_H]
    ds_m = tl.where(active, (eps - act_bias) / (denom * denom) * m, 0.0)  # [BLOCK_B, BLOCK_H]
    return ur, ui, s, ds_m


@triton.jit
def complex_activate(zr, zi, act_bias, eps, ACTIVATION: tl.constexpr):
    """(hr, hi) = f(zr + i zi); act_bias [1, BLOCK_H] and eps are read by modrelu only.
    Padded units (z = 0, act_bias = 0) stay 0."""
    if ACTIVATION == MODRELU:
        m = _magnitude(zr, zi)  # [BLOCK_B, BLOCK_H]
        denom = m + eps  # [BLOCK_B, BLOCK_H]
        denom = tl.where(denom > 0, denom, 1.0)  # [BLOCK_B, BLOCK_H]
        s = tl.maximum(m + act_bias, 0.0) / denom  # [BLOCK_B, BLOCK_H]
        hr = zr * s  # [BLOCK_B, BLOCK_H]
        hi = zi * s  # [BLOCK_B, BLOCK_H]
    else:
        hr = zr  # [BLOCK_B, BLOCK_H]
        hi = zi  # [BLOCK_B, BLOCK_H]
    return hr, hi


@triton.jit
def complex_activation_vjp(zr, zi, gr, gi, act_bias, eps, ACTIVATION: tl.constexpr):
    """(dzr, dzi): the VJP of f at z applied to g, in PyTorch's complex gradient convention."""
    if ACTIVATION == MODRELU:
        ur, ui, s, ds_m = _modrelu_parts(zr, zi, act_bias, eps)
        radial = ds_m * (ur * gr + ui * gi)  # [BLOCK_B, BLOCK_H]
        dzr = s * gr + radial * ur  # [BLOCK_B, BLOCK_H]
        dzi = s * gi + radial * ui  # [BLOCK_B, BLOCK_H]
    else:
        dzr = gr  # [BLOCK_B, BLOCK_H]
        dzi = gi  # [BLOCK_B, BLOCK_H]
    return dzr, dzi
