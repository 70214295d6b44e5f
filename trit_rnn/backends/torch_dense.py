"""The pure-PyTorch backend of the dense recurrence: the CPU product and the GPU fallback.

Not autograd over a loop: the forward writes each state in place into one preallocated
[T, B, H] buffer (one addmm and one in-place activation per step), the backward walks the steps in
reverse with one fused activation-backward and one addmm per step, and everything that is not
sequential (weight and bias gradients) is done by the caller as GEMMs over all steps at once.
"""

import torch

from ..nonlinearity import Nonlinearity


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision of the state and the accumulation: float64 stays, everything else is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _modrelu_(z: torch.Tensor, act_bias: torch.Tensor, scratch: torch.Tensor) -> None:
    """z <- sign(z) * relu(|z| + act_bias), in place, with one [B, H] scratch buffer."""
    torch.abs(z, out=scratch)
    scratch.add_(act_bias).relu_()
    z.sign_().mul_(scratch)


def dense_forward(pre, weight, h0, act_bias, nonlinearity: str):
    """h_t = f(pre_t + h_{t-1} @ weight.T) for t = 1..T.

    pre [T, B, H], weight [H, H], h0 [B, H] or None, act_bias [H] or None.
    Returns (outputs [T, B, H], h_n [B, H]) in pre's dtype; the state is kept in compute_dtype.
    """
    nonlinearity = Nonlinearity(nonlinearity)
    T, B, H = pre.shape
    dtype = compute_dtype(pre.dtype)
    pre_c = pre.to(dtype)
    weight_t = weight.to(dtype).t()  # addmm reads the transposed view without a copy
    # float32 tanh on the CPU costs 2-3x a sigmoid: compute 2z (scaling by 2 is exact) and take
    # tanh(z) = 2 sigmoid(2z) - 1, absolute error ~1 ulp. float64 keeps the exact tanh.
    fast_tanh = nonlinearity is Nonlinearity.TANH and dtype == torch.float32 and pre.device.type == "cpu"
    if fast_tanh:
        pre_c, weight_t = pre_c * 2, weight_t * 2
        minus_one = torch.tensor(-1.0, dtype=dtype)
    outputs = torch.empty((T, B, H), dtype=dtype, device=pre.device)
    h = h0.to(dtype) if h0 is not None else torch.zeros((B, H), dtype=dtype, device=pre.device)
    bias = act_bias.to(dtype) if act_bias is not None else None
    scratch = (
        torch.empty((B, H), dtype=dtype, device=pre.device) if nonlinearity is Nonlinearity.MODRELU else None
    )
    for p_t, h_t in zip(pre_c.unbind(0), outputs.unbind(0), strict=True):
        torch.addmm(p_t, h, weight_t, out=h_t)
        if fast_tanh:
            torch.add(minus_one, h_t.sigmoid_(), alpha=2, out=h_t)
        elif nonlinearity is Nonlinearity.TANH:
            h_t.tanh_()
        elif nonlinearity is Nonlinearity.RELU:
            h_t.relu_()
        elif nonlinearity is Nonlinearity.MODRELU:
            _modrelu_(h_t, bias, scratch)
        h = h_t
    return outputs.to(pre.dtype), h.to(pre.dtype, copy=True)


def _activation_backward(dh, h, nonlinearity: Nonlinearity, out):
    """out <- dh * f'(z), written from the output h = f(z) alone."""
    if nonlinearity is Nonlinearity.TANH:
        torch.ops.aten.tanh_backward.grad_input(dh, h, grad_input=out)
    elif nonlinearity is Nonlinearity.RELU:
        torch.ops.aten.threshold_backward.grad_input(dh, h, 0, grad_input=out)
    elif nonlinearity is Nonlinearity.MODRELU:
        # d modReLU/dz is 1 where the unit is active (h != 0) and 0 elsewhere.
        torch.mul(dh, h != 0, out=out)
    else:
        out.copy_(dh)


def dense_backward(grad_out, grad_hn, outputs, weight, nonlinearity: str):
    """The reverse loop: dz_t = dh_t * f'(h_t), dh_{t-1} = grad_out_{t-1} + dz_t @ weight.

    Returns (dz [T, B, H], dh0 [B, H]) in compute_dtype; dz is the gradient of pre.
    """
    nonlinearity = Nonlinearity(nonlinearity)
    T, B, H = outputs.shape
    dtype = compute_dtype(outputs.dtype)
    w = weight.to(dtype)
    outs = outputs.to(dtype).unbind(0)
    grads = grad_out.to(dtype).unbind(0)
    dz = torch.empty((T, B, H), dtype=dtype, device=outputs.device)
    dzs = dz.unbind(0)
    dh = grads[T - 1].clone()
    if grad_hn is not None:
        dh.add_(grad_hn.to(dtype))
    for t in range(T - 1, 0, -1):
        _activation_backward(dh, outs[t], nonlinearity, dzs[t])
        torch.addmm(grads[t - 1], dzs[t], w, out=dh)
    _activation_backward(dh, outs[0], nonlinearity, dzs[0])
    return dz, dzs[0] @ w
