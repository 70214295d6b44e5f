"""float64 references that every backend and kernel is checked against: plain autograd over a
Python loop, written for clarity, never for speed."""

import torch


def activation(z: torch.Tensor, nonlinearity: str, act_bias: torch.Tensor | None) -> torch.Tensor:
    if nonlinearity == "tanh":
        return torch.tanh(z)
    if nonlinearity == "relu":
        return torch.relu(z)
    if nonlinearity == "identity":
        return z
    if nonlinearity == "modrelu":
        return torch.sign(z) * torch.relu(z.abs() + act_bias)
    raise ValueError(nonlinearity)


def dense_recurrence_reference(pre, weight_hh, h0=None, nonlinearity="tanh", act_bias=None):
    """z_t = pre_t + h_{t-1} @ weight_hh.T; h_t = f(z_t). Returns (outputs [T, B, H], h_n [B, H])."""
    T, B, H = pre.shape
    h = h0 if h0 is not None else pre.new_zeros(B, H)
    outputs = []
    for p in pre.unbind(0):
        h = activation(p + h @ weight_hh.T, nonlinearity, act_bias)
        outputs.append(h)
    return torch.stack(outputs), h
