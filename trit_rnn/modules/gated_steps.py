"""The step-by-step path of LSTM and GRU for the training options the fused ops do not have:
peephole connections, layer normalisation, zoneout and recurrent (variational) dropout.

One cell step per time step under ordinary autograd, so it is as slow as any Python-loop RNN; the
modules use it only when an option is on, and log why. Definitions:
- peephole (Gers & Schmidhuber 2000; LSTM): diagonal weights p_i, p_f, p_o [H]; a_i += p_i c_{t-1},
  a_f += p_f c_{t-1}, a_o += p_o c_t (the output gate peeks at the new cell).
- layer_norm (Ba, Kiros & Hinton 2016): the input and recurrent terms are normalised separately over
  all G*H gate units, a = LN_x(x W_ih^T) + LN_h(h W_hh^T) + biases; the LSTM also normalises the cell
  before its output, h = o tanh(LN_c(c)) (the carried c is not normalised). For the GRU the reset gate
  multiplies LN_h's candidate block plus b_hn.
- zoneout (Krueger et al. 2017): in training each unit keeps its previous value with probability p,
  h_t = d h_{t-1} + (1 - d) h~_t with d ~ Bernoulli(p) per unit and step (LSTM: c with zoneout_cell,
  h with zoneout); in eval the expectation, h_t = p h_{t-1} + (1 - p) h~_t.
- recurrent_dropout (Gal & Ghahramani 2016): in training h_{t-1} is multiplied by one mask
  m ~ Bernoulli(1 - p) / (1 - p) [B, H] per sequence, layer and direction before the recurrent GEMM.
"""

from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class StepOptions:
    peephole: bool = False
    layer_norm: bool = False
    zoneout: float = 0.0
    zoneout_cell: float = 0.0
    recurrent_dropout: float = 0.0

    @property
    def any(self) -> bool:
        return (
            self.peephole
            or self.layer_norm
            or bool(self.zoneout or self.zoneout_cell or self.recurrent_dropout)
        )


def check_probability(value, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{argument} must be a probability in [0, 1); got {value!r}")
    return float(value)


def recurrent_mask(options: StepOptions, training: bool, like: torch.Tensor, batch: int, hidden: int):
    """The per-sequence dropout mask [B, H] for h_{t-1}, or None."""
    p = options.recurrent_dropout
    if not (training and p):
        return None
    keep = torch.full((batch, hidden), 1 - p, dtype=like.dtype, device=like.device)
    return torch.bernoulli(keep) / (1 - p)


def zone(previous: torch.Tensor, new: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zoneout of one state: keep `previous` with probability p (training), or its expectation."""
    if not p:
        return new
    if training:
        keep = torch.bernoulli(torch.full_like(new, p))
        return new + keep * (previous - new)
    return p * previous + (1 - p) * new


def _normalise(x: torch.Tensor, norm) -> torch.Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps) if norm is not None else x


def _active_steps(lengths, x_term: torch.Tensor):
    """Per step the [B, 1] mask of the rows still running (trit_rnn.varlen), or Nones."""
    if lengths is None:
        return [None] * x_term.shape[0]
    active = torch.arange(x_term.shape[0]).unsqueeze(1) < lengths  # [T, B]
    return active.unsqueeze(-1).to(x_term.device).unbind(0)


def _step(active, previous: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """The state after a step: new where the row runs, previous past its end."""
    return new if active is None else torch.where(active, new, previous)


def _output(active, h: torch.Tensor) -> torch.Tensor:
    return h if active is None else torch.where(active, h, 0.0)


def lstm_steps(x_term, weight_hh, bias, h, c, *, options, training, peephole=None, norms=None, lengths=None):
    """x_term [T, B, 4H] (x W_ih^T, unnormalised), weight_hh [4H, H], bias [4H] or None, h, c [B, H].
    peephole: [3, H] (p_i, p_f, p_o) or None; norms: (LN_x, LN_h, LN_c) or None; lengths: None or
    the CPU [B] of trit_rnn.varlen (states kept and outputs zero past each end).
    Returns (outputs [T, B, H], h_n, c_n)."""
    norm_x, norm_h, norm_c = norms if norms is not None else (None, None, None)
    H = weight_hh.shape[1]
    mask = recurrent_mask(options, training, x_term, h.shape[0], H)
    x_term = _normalise(x_term, norm_x)
    if bias is not None:
        x_term = x_term + bias
    outputs = []
    for x_t, active in zip(x_term.unbind(0), _active_steps(lengths, x_term), strict=True):
        h_in = h * mask if mask is not None else h
        a_i, a_f, a_g, a_o = (x_t + _normalise(h_in @ weight_hh.T, norm_h)).split(H, dim=-1)
        if peephole is not None:
            a_i = a_i + peephole[0] * c
            a_f = a_f + peephole[1] * c
        c_new = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * torch.tanh(a_g)
        if peephole is not None:
            a_o = a_o + peephole[2] * c_new
        h_new = torch.sigmoid(a_o) * torch.tanh(_normalise(c_new, norm_c))
        c = _step(active, c, zone(c, c_new, options.zoneout_cell, training))
        h = _step(active, h, zone(h, h_new, options.zoneout, training))
        outputs.append(_output(active, h))
    return torch.stack(outputs), h, c


def gru_steps(x_term, weight_hh, bias_ih, bias_hh, h, *, options, training, norms=None, lengths=None):
    """x_term [T, B, 3H] (x W_ih^T, unnormalised), weight_hh [3H, H], biases [3H] or None, h [B, H].
    norms: (LN_x, LN_h) or None; lengths as in lstm_steps. Returns (outputs [T, B, H], h_n)."""
    norm_x, norm_h = norms if norms is not None else (None, None)
    H = weight_hh.shape[1]
    mask = recurrent_mask(options, training, x_term, h.shape[0], H)
    x_term = _normalise(x_term, norm_x)
    if bias_ih is not None:
        x_term = x_term + bias_ih
    outputs = []
    for x_t, active in zip(x_term.unbind(0), _active_steps(lengths, x_term), strict=True):
        h_in = h * mask if mask is not None else h
        q = _normalise(h_in @ weight_hh.T, norm_h)
        if bias_hh is not None:
            q = q + bias_hh
        p_r, p_z, p_n = x_t.split(H, dim=-1)
        q_r, q_z, q_n = q.split(H, dim=-1)
        r, z = torch.sigmoid(p_r + q_r), torch.sigmoid(p_z + q_z)
        n = torch.tanh(p_n + r * q_n)
        h = _step(active, h, zone(h, (1 - z) * n + z * h, options.zoneout, training))
        outputs.append(_output(active, h))
    return torch.stack(outputs), h
