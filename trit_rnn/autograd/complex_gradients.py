"""The parts of the complex dense backward that are not sequential, over all steps at once: the
pre-activations recomputed from the saved outputs, the weight gradient and the modReLU bias gradient.
Gradients follow PyTorch's complex convention (dL/dRe + i dL/dIm); see backends/torch_complex.py."""

import torch

from ..backends import compiled_loops, torch_complex
from ..nonlinearity import Nonlinearity


def preactivations(pre, outputs, h0, weight, nonlinearity: str) -> torch.Tensor:
    """z [T, B, H] = pre + [h0, h_1..h_{T-1}] @ weight^T: one GEMM for steps 2..T, one for step 1.
    For identity z is the outputs themselves."""
    if Nonlinearity(nonlinearity) is Nonlinearity.IDENTITY:
        return outputs
    T, B, H = pre.shape
    weight_t = weight.t()
    z = torch.empty((T, B, H), dtype=pre.dtype, device=pre.device)
    torch.addmm(pre[1:].reshape(-1, H), outputs[:-1].reshape(-1, H), weight_t, out=z[1:].view(-1, H))
    if h0 is None:
        z[0] = pre[0]
    else:
        torch.addmm(pre[0], h0, weight_t, out=z[0])
    return z


def weight_grad(dz: torch.Tensor, outputs: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    """[H, H] = sum_t dz_t^T conj(h_{t-1}), computed as its transpose sum_t h_{t-1}^H dz_t: BLAS reads
    the conjugate transpose in place, where conj(h) itself would be a copy."""
    H = dz.shape[-1]
    transposed = outputs[:-1].reshape(-1, H).mH @ dz[1:].reshape(-1, H)  # [H, H]
    if h0 is not None:
        transposed = transposed.addmm_(h0.mH, dz[0])
    return transposed.mT


def act_bias_grad(z: torch.Tensor, dz: torch.Tensor, act_bias: torch.Tensor, eps: float) -> torch.Tensor:
    """dL/db [H] (real) from z and dz, without the upstream gradient g.

    dL/db = Re(conj(g) z) / (m + eps) where active (m = |z|, m + b > 0). The VJP dz = s g + k Re(conj(u) g) u
    (backends/torch_complex.py) gives Re(conj(dz) z) = (s + k) Re(conj(g) z) with
    (s + k)(m + eps) = (m^2 + 2 m eps + b eps) / (m + eps), which is > 0 where active, so
        dL/db = Re(conj(dz) z) (m + eps) / (m^2 + 2 m eps + b eps).
    Where inactive the backend's dz is exactly 0, and so is this (the denominator, which may be <= 0
    there, is clamped to a positive number): no mask needed. At z = 0 both sides are 0.
    On a CPU with the compiled loops this is one fused pass (summed in float64), else the bulk ops."""
    if act_bias.dtype == z.real.dtype and compiled_loops.applies(z, dz, act_bias):
        pairs = (torch_complex.raw_pairs(x) for x in (z, dz))
        return compiled_loops.loops().complex_modrelu_bias_grad(*pairs, act_bias.contiguous(), eps)
    zr, zi = z.real, z.imag
    along = torch.mul(dz.real, zr).addcmul_(dz.imag, zi)  # [T, B, H] Re(conj(dz) z)
    shifted = torch.mul(zr, zr).addcmul_(zi, zi).sqrt_().add_(eps)  # m + eps
    # m^2 + 2 m eps + b eps = (m + eps)^2 + eps (b - eps)
    denominator = torch.addcmul(eps * (act_bias - eps), shifted, shifted)
    denominator = denominator.clamp_min_(torch.finfo(denominator.dtype).tiny)
    return along.mul_(shifted).div_(denominator).sum((0, 1))
