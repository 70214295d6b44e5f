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


def complex_activation(z, nonlinearity: str, act_bias, eps: float):
    if nonlinearity == "identity":
        return z
    if nonlinearity == "modrelu":
        magnitude = z.abs()
        return z * torch.relu(magnitude + act_bias) / (magnitude + eps)
    raise ValueError(nonlinearity)


def complex_dense_recurrence_reference(
    pre, weight_hh, h0=None, nonlinearity="modrelu", act_bias=None, eps=1e-5
):
    """The complex recurrence z_t = pre_t + h_{t-1} @ weight_hh.T; h_t = f(z_t), modReLU written as
    z * relu(|z| + b) / (|z| + eps). Returns (outputs [T, B, H], h_n [B, H])."""
    T, B, H = pre.shape
    h = h0 if h0 is not None else pre.new_zeros(B, H)
    outputs = []
    for p in pre.unbind(0):
        h = complex_activation(p + h @ weight_hh.T, nonlinearity, act_bias, eps)
        outputs.append(h)
    return torch.stack(outputs), h
