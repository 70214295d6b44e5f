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


def lstm_reference(pre, weight_hh, h0=None, c0=None):
    """torch.nn.LSTM's step on pre [T, B, 4H] (both biases inside), gates (i, f, g, o).
    Returns (outputs [T, B, H], h_n, c_n)."""
    T, B, G = pre.shape
    H = G // 4
    h = h0 if h0 is not None else pre.new_zeros(B, H)
    c = c0 if c0 is not None else pre.new_zeros(B, H)
    outputs = []
    for p in pre.unbind(0):
        i, f, g, o = (p + h @ weight_hh.T).split(H, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs), h, c


def gru_reference(pre, weight_hh, bias_hh=None, h0=None, nonlinearity="tanh", act_bias=None):
    """torch.nn.GRU's step on pre [T, B, 3H] (gates r, z, n; reset after the recurrent product),
    with the candidate's activation `nonlinearity` (GORU: modReLU). Returns (outputs, h_n)."""
    T, B, G = pre.shape
    H = G // 3
    h = h0 if h0 is not None else pre.new_zeros(B, H)
    outputs = []
    for p in pre.unbind(0):
        q = h @ weight_hh.T + (bias_hh if bias_hh is not None else 0)
        p_r, p_z, p_n = p.split(H, dim=-1)
        q_r, q_z, q_n = q.split(H, dim=-1)
        r, z = torch.sigmoid(p_r + q_r), torch.sigmoid(p_z + q_z)
        n = activation(p_n + r * q_n, nonlinearity, act_bias)
        h = (1 - z) * n + z * h
        outputs.append(h)
    return torch.stack(outputs), h


def deep_transition_reference(pre, weight_hh, weights_deep, biases_deep, h0=None, nonlinearity="tanh"):
    """Pascanu's DT(S) step: s^1 = f(pre[:H] + h W_1^T), s^k = f(s^{k-1} W_k^T + b_k), the top layer
    also taking pre[H:] + h S^T when pre is [T, B, 2H]. Returns (outputs, h_n)."""
    T, B, width = pre.shape
    H = weight_hh.shape[1]
    shortcut = width == 2 * H
    w_1, s = weight_hh[:H], weight_hh[H:]
    h = h0 if h0 is not None else pre.new_zeros(B, H)
    outputs = []
    for p in pre.unbind(0):
        a = p[:, :H] + h @ w_1.T
        for w, b in zip(weights_deep, biases_deep, strict=True):
            a = activation(a, nonlinearity, None) @ w.T + b
        if shortcut:
            a = a + p[:, H:] + h @ s.T
        h = activation(a, nonlinearity, None)
        outputs.append(h)
    return torch.stack(outputs), h
