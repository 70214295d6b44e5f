"""The pure-PyTorch backend of the deep-transition recurrence (Pascanu et al. 2013, DT(S)-RNN), and
the contract every deep-transition backend implements with the same signatures.

Contract
--------
A transition of D >= 1 layers between h_{t-1} and h_t, with an optional shortcut from h_{t-1}
(and x_t, through pre) to the top layer:
    s^1_t = f(pre_t[:, :H] + h_{t-1} @ W_1^T)
    s^k_t = f(s^{k-1}_t @ W_k^T + b_k [+ pre_t[:, H:] + h_{t-1} @ S^T if k = D and shortcut])
    h_t = s^D_t
(with D = 1 and a shortcut the two terms of the top layer simply add.) pre [T, B, H] without the
shortcut, [T, B, 2H] with it; weight_hh [H, H] = W_1, or [2H, H] = [W_1; S] with the shortcut (one
GEMM on h_{t-1} feeds both); weights_deep [D-1, H, H] = W_2..W_D and biases_deep [D-1, H] = b_2..b_D.
f is "tanh", "relu" or "identity".

deep_forward(pre, weight_hh, weights_deep, biases_deep, h0, nonlinearity)
        -> (outputs, h_n, layers)
    outputs [T, B, H] = h_1..h_T and h_n [B, H] in pre's dtype; layers [D-1, T, B, H] = s^1..s^{D-1}
    of every step in compute_dtype (what the backward reads with outputs; [0, T, B, H] for D = 1).
deep_backward(grad_out, grad_hn, outputs, layers, h0, weight_hh, weights_deep, nonlinearity)
        -> (d_pre, d_layers, dh0)
    d_layers [D, T, B, H] are the gradients of the pre-activations a^1..a^D (a^D's is also that of
    pre[:, :, H:] and of the shortcut); d_pre [T, B, H or 2H] is (d a^1 [, d a^D]); dh0 [B, H].
    Per step, from the top: d a^D = dh_t f'(h_t); d a^{k-1} = (d a^k @ W_k) f'(s^{k-1});
    dh_{t-1} = grad_out_{t-1} + [d a^1, (d a^D)] @ weight_hh.

What the caller (trit_rnn/autograd/deep.py) computes in bulk: d weight_hh = sum_t
[d a^1, (d a^D)]_t^T h_{t-1}, d W_k = sum_t d a^k_t^T s^{k-1}_t, d b_k = sum d a^k.
"""

import torch

from ..nonlinearity import Nonlinearity
from .cpu_gemm import StepGemm
from .torch_dense import compute_dtype

DEEP_NONLINEARITIES = (Nonlinearity.TANH, Nonlinearity.RELU, Nonlinearity.IDENTITY)


def _activate_(a: torch.Tensor, nonlinearity: Nonlinearity) -> torch.Tensor:
    if nonlinearity is Nonlinearity.TANH:
        return a.tanh_()
    if nonlinearity is Nonlinearity.RELU:
        return a.relu_()
    return a


def _activation_backward_(d: torch.Tensor, s: torch.Tensor, nonlinearity: Nonlinearity) -> torch.Tensor:
    """d <- d * f'(a) in place, from the output s = f(a)."""
    if nonlinearity is Nonlinearity.TANH:
        return torch.ops.aten.tanh_backward.grad_input(d, s, grad_input=d)
    if nonlinearity is Nonlinearity.RELU:
        return torch.ops.aten.threshold_backward.grad_input(d, s, 0, grad_input=d)
    return d


def deep_forward(pre, weight_hh, weights_deep, biases_deep, h0, nonlinearity: str):
    """The deep-transition forward of the contract above."""
    nonlinearity = Nonlinearity(nonlinearity)
    T, B, width = pre.shape
    H = weight_hh.shape[1]
    shortcut = width == 2 * H
    depth = weights_deep.shape[0] + 1
    dtype = compute_dtype(pre.dtype)
    recurrent = StepGemm(weight_hh.to(dtype), B)  # h_{t-1} -> [a^1 (, shortcut)]
    deep = [StepGemm(w.to(dtype), B, b.to(dtype)) for w, b in zip(weights_deep, biases_deep, strict=True)]
    pre_c = pre.to(dtype)
    layers = torch.empty((depth - 1, T, B, H), dtype=dtype, device=pre.device)
    outputs = torch.empty((T, B, H), dtype=dtype, device=pre.device)
    h = h0.to(dtype) if h0 is not None else torch.zeros((B, H), dtype=dtype, device=pre.device)
    for t in range(T):
        from_h = recurrent(h, pre_c[t])  # [B, H or 2H]: pre_t + h_{t-1} [W_1; S]^T
        a = from_h[:, :H]
        for k in range(depth - 1):
            s = _activate_(a, nonlinearity)
            layers[k, t] = s
            a = deep[k](s)
        if shortcut:
            a = a + from_h[:, H:]
        outputs[t] = _activate_(a, nonlinearity)
        h = outputs[t]
    return outputs.to(pre.dtype), h.to(pre.dtype, copy=True), layers


def deep_backward(grad_out, grad_hn, outputs, layers, h0, weight_hh, weights_deep, nonlinearity: str):
    """The deep-transition backward of the contract above."""
    nonlinearity = Nonlinearity(nonlinearity)
    T, B, H = outputs.shape
    shortcut = weight_hh.shape[0] == 2 * H
    depth = weights_deep.shape[0] + 1
    dtype = layers.dtype
    states = outputs.to(dtype)
    grad_steps = grad_out.to(dtype)
    recurrent = StepGemm(weight_hh.to(dtype).t(), B)  # [d a^1 (, d a^D)] @ [W_1; S]
    deep = [StepGemm(w.to(dtype).t(), B) for w in weights_deep]  # d a^k @ W_k
    d_layers = torch.empty((depth, T, B, H), dtype=dtype, device=outputs.device)
    d_pre = torch.empty((T, B, 2 * H if shortcut else H), dtype=dtype, device=outputs.device)
    dh = grad_steps[T - 1] if grad_hn is None else grad_steps[T - 1] + grad_hn.to(dtype)
    for t in range(T - 1, -1, -1):
        d = _activation_backward_(dh.clone(), states[t], nonlinearity)  # d a^D
        d_layers[depth - 1, t] = d
        if shortcut:
            d_pre[t, :, H:] = d
        for k in range(depth - 1, 0, -1):
            d = _activation_backward_(deep[k - 1](d), layers[k - 1, t], nonlinearity)  # d a^k
            d_layers[k - 1, t] = d
        d_pre[t, :, :H] = d
        dh = recurrent(d_pre[t], grad_steps[t - 1] if t > 0 else None)
    return d_pre, d_layers, dh
