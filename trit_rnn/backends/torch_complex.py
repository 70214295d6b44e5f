"""The pure-PyTorch backend of the complex dense recurrence, and the contract every complex backend
(this one, kernels/dense_complex/launch.py) implements with the same signatures.

Contract
--------
Conventions: complex64 or complex128 throughout; act_bias is REAL (float32 for complex64, float64
for complex128). Every complex gradient is PyTorch's: for a real loss L, grad x = dL/dRe x + i dL/dIm x.

    z_t = pre_t + h_{t-1} @ weight^T,   h_t = f(z_t),   t = 1..T
    f = "identity":  h = z
    f = "modrelu":   h = z * relu(|z| + b) / (|z| + eps) = s(|z|) z,  s(m) = relu(m + b) / (m + eps)

complex_forward(pre, weight, h0, act_bias, nonlinearity: str, eps: float) -> (outputs, h_n)
    pre [T, B, H], weight [H, H], h0 [B, H] or None (zeros), act_bias [H] real or None (identity).
    outputs [T, B, H] = h_1..h_T and h_n [B, H] = h_T, new tensors in pre's dtype.

complex_backward(grad_out, grad_hn, z, weight, act_bias, nonlinearity: str, eps: float) -> (dz, dh0)
    grad_out [T, B, H] (never None), grad_hn [B, H] or None (zeros), z [T, B, H] the pre-activations
    (the caller recomputes them in bulk from the saved outputs; for "identity" it passes the outputs,
    which equal z, and z is not read). The reverse loop:
        g_T = grad_out_T + grad_hn
        dz_t = VJP_f(z_t)[g_t]
        g_{t-1} = grad_out_{t-1} + dz_t @ conj(weight)
        dh0 = dz_1 @ conj(weight)
    with, for modReLU (m = |z|, u = z / m and u = 0 at z = 0, active where m + b > 0):
        dz = s(m) g + s'(m) m Re(conj(u) g) u,   s'(m) = (eps - b) / (m + eps)^2, s = s' = 0 inactive
    (at z = 0 this is s(0) g: torch's |z| has gradient 0 there, and s'(m) m -> 0).
    dz [T, B, H] and dh0 [B, H] are new tensors in grad_out's dtype; dz is the gradient of pre.
    Requirement: dz is exactly 0 (not merely small) where a unit is inactive: select s and s' with
    a where() on m + b > 0. The caller's act_bias gradient (below) relies on it, as it divides by a
    quantity that may vanish or turn negative at inactive units.

What the caller (trit_rnn/autograd/complex_gradients.py) computes in bulk, not the backend:
    z = pre + [h0, h_1..h_{T-1}] @ weight^T (one GEMM), d weight = sum_t dz_t^T conj(h_{t-1})
    (one GEMM), and d act_bias from z and dz alone:
        dL/db = sum over t, b of Re(conj(dz) z) (m + eps) / (m^2 + 2 m eps + b eps)
    (the VJP above gives Re(conj(dz) z) = (s + s'(m) m) Re(conj(g) z), and dL/db per element is
    Re(conj(g) z) / (m + eps) where active). The backend returns nothing else.

This backend
------------
Complex tensors and complex GEMMs (one [B, H] x [H, H] addmm per step), the modReLU in place on
the state. On a CPU the modReLU loops run compiled where that builds (compiled_loops.py: one GEMM
and one fused pass per step, 2.5x faster at H = 64); their step GEMM is real, on the complex rows
read as interleaved (re, im) pairs (`realified`), so no layout changes. The Python loops are the
fallback. A split realified form (a real [B, 2H] state [Re h | Im h] and a [2H, 2H] block matrix) was
measured slower on a CPU in the Python loops: its GEMM costs the same, but the layout conversions of pre, the outputs,
grad_out, z and dz cost more than they save. The backward computes its modReLU Jacobians in bulk a
chunk of steps at a time (small enough to stay in cache), then walks the chunk step by step.
"""

import torch

from ..nonlinearity import Nonlinearity
from . import compiled_loops

# Backward chunk: the modReLU Jacobians of this many (step, batch, unit) elements are computed at
# once, a few hundred KB per buffer, so that their dozen elementwise passes stay in cache.
_CHUNK_ELEMENTS = 1 << 17


class _ModReLU:
    """The in-place forward modReLU of a [B, H] state, with its [H] constants and [B, H] scratch
    buffers made once. Written as relu(1 + (b - eps) / (|z| + eps)), which equals
    relu(|z| + b) / (|z| + eps) (as |z| + eps > 0) in one op fewer: at this size each op costs
    microseconds whatever its arithmetic."""

    def __init__(self, act_bias: torch.Tensor, eps: float, batch: int):
        H = act_bias.shape[0]
        self.eps = torch.full_like(act_bias, eps)  # [H]: a tensor operand is cheaper than a float
        self.bias_minus_eps = act_bias - eps  # [H]
        self.one = torch.ones_like(act_bias)  # [H]
        self.magnitude = act_bias.new_empty((batch, H))
        self.scale = act_bias.new_empty((batch, H))

    def __call__(self, z: torch.Tensor) -> None:
        """z [B, H] complex <- modReLU(z), in place."""
        shifted = torch.abs(z, out=self.magnitude).add_(self.eps)  # |z| + eps
        z.mul_(torch.addcdiv(self.one, self.bias_minus_eps, shifted, out=self.scale).relu_())


def _compiled(x: torch.Tensor, weight: torch.Tensor, act_bias: torch.Tensor) -> bool:
    """Whether the compiled modReLU loops (compiled_loops.py) run these operands."""
    return act_bias.dtype == x.real.dtype and compiled_loops.applies(x, weight, act_bias)


def realified(a: torch.Tensor) -> torch.Tensor:
    """The real [2K, 2N] matrix M of a complex [K, N] matrix a such that for complex x [B, K],
    view_as_real(x @ a) = view_as_real(x) @ M as [B, 2N] rows (interleaved real and imaginary
    parts): block (k, j) is [[Re a, Im a], [-Im a, Re a]]_kj."""
    re, im = a.real, a.imag
    blocks = torch.stack(
        [torch.stack([re, im], dim=-1), torch.stack([-im, re], dim=-1)], dim=1
    )  # [K, 2, N, 2]
    return blocks.reshape(2 * a.shape[0], 2 * a.shape[1])


def raw_pairs(x: torch.Tensor) -> torch.Tensor:
    """x as the compiled loops read it, (re, im) pairs in memory: contiguous, no lazy conjugate."""
    return x.resolve_conj().contiguous()


def complex_forward(pre, weight, h0, act_bias, nonlinearity: str, eps: float):
    """The forward of the contract above: per step one complex addmm and an in-place modReLU, each
    state written into its slot of one preallocated [T, B, H] buffer."""
    nonlinearity = Nonlinearity(nonlinearity)
    T, B, H = pre.shape
    weight_t = weight.t().contiguous()  # [H, H]: addmm is 1.15-1.25x slower on the transposed view
    if nonlinearity is Nonlinearity.MODRELU and T > 0 and _compiled(pre, weight, act_bias):
        h = h0 if h0 is not None else pre.new_zeros((B, H))
        outputs = compiled_loops.loops().complex_modrelu_forward(
            raw_pairs(pre), realified(weight_t), raw_pairs(h), act_bias.contiguous(), eps
        )
        return outputs, outputs[T - 1].clone()
    # The buffer starts as pre (one bulk copy); each step accumulates h_{t-1} W^T into its slot.
    outputs = torch.empty((T, B, H), dtype=pre.dtype, device=pre.device)
    outputs.copy_(pre)
    h = h0 if h0 is not None else pre.new_zeros((B, H))
    modrelu = _ModReLU(act_bias, eps, B) if nonlinearity is Nonlinearity.MODRELU else None
    for h_t in outputs.unbind(0):
        h_t.addmm_(h, weight_t)
        if modrelu is not None:
            modrelu(h_t)
        h = h_t
    return outputs, outputs[T - 1].clone()


def modrelu_vjp_coefficients(z: torch.Tensor, act_bias: torch.Tensor, eps: float):
    """The modReLU VJP of z [L, B, H] as dz = p g + q conj(g), p (real-valued, stored complex so
    that the per-step product is not a mixed-dtype op) and q [L, B, H] in z's dtype.

    With m = |z|, u = z / m, k = s'(m) m: dz = s g + k Re(conj(u) g) u, and Re(conj(u) g) u =
    (g + u^2 conj(g)) / 2 for |u| = 1, so p = s + k / 2 and q = (k / 2) u^2 = (k / 2) z^2 / m^2.
    k carries a factor m, so q = 0 at z = 0 (and p = s(0): no 0/0); m^2 is clamped to the smallest
    normal number, which keeps q finite where it underflows for tiny |z|."""
    zr, zi = z.real, z.imag
    squared = torch.mul(zr, zr).addcmul_(zi, zi)  # [L, B, H] m^2
    m = squared.sqrt()
    denominator = m + eps
    shifted = m + act_bias  # the unit is active where m + b > 0
    s = torch.relu(shifted).div_(denominator)
    half_k = m.mul_((eps - act_bias) / 2).div_(denominator.square_())  # (eps - b) m / (2 (m + eps)^2)
    half_k = torch.ops.aten.threshold_backward(half_k, shifted, 0)  # 0 where inactive, as relu's gradient
    p = s.add_(half_k).to(z.dtype)
    q = torch.mul(z, z).mul_(half_k.div_(squared.clamp_min_(torch.finfo(squared.dtype).tiny)))
    return p, q


def _walk_modrelu(grad_out, last, z, act_bias, eps, weight_c, dz):
    """Fills dz [T, B, H] from the last step's g (grad_out_T + grad_hn) backwards, in chunks of steps:
    each chunk's VJP coefficients in bulk, then its steps one by one. Steps are taken from unbind()
    lists: indexing a tensor per step costs about a microsecond each time."""
    T, B, H = dz.shape
    grad_steps, dz_steps = grad_out.unbind(0), dz.unbind(0)
    g = last
    g_scratch = dz.new_empty((B, H))
    g_conj = dz.new_empty((B, H))
    chunk = max(1, _CHUNK_ELEMENTS // (B * H))
    for stop in range(T, 0, -chunk):
        start = max(0, stop - chunk)
        p, q = modrelu_vjp_coefficients(z[start:stop], act_bias, eps)  # [L, B, H] each
        steps = zip(range(stop - 1, start - 1, -1), p.unbind(0)[::-1], q.unbind(0)[::-1], strict=True)
        for t, p_t, q_t in steps:
            if t < T - 1:
                g = torch.addmm(grad_steps[t], dz_steps[t + 1], weight_c, out=g_scratch)
            torch.conj_physical(g, out=g_conj)
            torch.mul(g, p_t, out=dz_steps[t]).addcmul_(q_t, g_conj)


def complex_backward(grad_out, grad_hn, z, weight, act_bias, nonlinearity: str, eps: float):
    """The backward of the contract above: per step one complex addmm for g_t and, for modReLU, the
    VJP p g + q conj(g) in three elementwise ops."""
    nonlinearity = Nonlinearity(nonlinearity)
    T, B, H = grad_out.shape
    weight_c = weight.conj().resolve_conj()  # [H, H] conj(W), materialised (a lazy conj is slower)
    dz = torch.empty((T, B, H), dtype=grad_out.dtype, device=grad_out.device)
    last = grad_out[T - 1] if grad_hn is None else grad_out[T - 1] + grad_hn  # g_T [B, H]
    if nonlinearity is Nonlinearity.IDENTITY:
        grad_steps, dz_steps = grad_out.unbind(0), dz.unbind(0)
        dz_steps[T - 1].copy_(last)
        for t in range(T - 1, 0, -1):
            torch.addmm(grad_steps[t - 1], dz_steps[t], weight_c, out=dz_steps[t - 1])
    elif _compiled(z, weight, act_bias):
        dz = compiled_loops.loops().complex_modrelu_backward(
            raw_pairs(grad_out),
            raw_pairs(last),
            raw_pairs(z),
            realified(weight_c),
            act_bias.contiguous(),
            eps,
        )
    else:
        _walk_modrelu(grad_out, last, z, act_bias, eps, weight_c, dz)
    return dz, dz[0] @ weight_c
