"""DeepTransitionRNN: Pascanu, Gulcehre, Cho & Bengio (2013)'s DT(S)-RNN, with their deep output
(DOT) and stacking (sRNN, num_layers), on the fused deep-transition recurrence."""

import math

import torch
from torch import nn

from ..dispatch import parse_backend
from ..functional import input_projection
from ..functional_gated import deep_transition_recurrence
from ..nonlinearity import Nonlinearity
from ..parametrizations import PARAMETRIZATIONS, make_orthogonal
from ..validation import check_positive_int
from .stacked import StackedRecurrence


class DeepTransitionRNN(StackedRecurrence):
    """An RNN whose transition h_{t-1} -> h_t is an MLP of `depth` layers; torch.nn.RNN's call
    convention.

        s^1_t = f(x_t U_1^T + b_1 + h_{t-1} W_1^T)
        s^k_t = f(s^{k-1}_t W_k^T + b_k [+ x_t U_s^T + h_{t-1} S^T on the top layer, shortcut])
        h_t = s^depth_t,   output y_t = g(V_L ... g(V_1 h_t))  (deep_output = L layers, g = f)

    Args: input_size, hidden_size, depth (>= 1; 1 with no shortcut is an Elman RNN), and keyword-only:
        shortcut: the DT(S) shortcut from h_{t-1} and x_t to the top layer (default True).
        deep_output: layers of the deep output MLP (DOT-RNN) on the last layer's output (default 0).
        num_layers: stacked deep-transition layers (sRNN).
        nonlinearity: "tanh" (default), "relu" or "identity".
        orthogonal: None (dense transition matrices), or "exp", "cayley", "householder": every square
            transition matrix W_1..W_depth is orthogonal through that parametrisation.
        bias, batch_first, dropout, bidirectional: as torch.nn.RNN.
        backend: "auto", "torch" or "triton" (see trit_rnn.dispatch).
        device, dtype.

    Parameters per layer and direction (suffix l{k} or l{k}_reverse), all U(-1/sqrt(H), 1/sqrt(H))
    as torch.nn.RNN unless orthogonal: weight_ih [H or 2H, I] (U_1 [; U_s]), bias_ih [H or 2H]
    when bias; weight_hh [H, H] (W_1) and weight_deep [depth-1, H, H] (W_2..) unless orthogonal,
    else `transition[index][k]` parametrises W_{k+1}; shortcut_weight_hh [H, H] (S) with the
    shortcut; bias_deep [depth-1, H] when bias (weight_deep and bias_deep exist for depth > 1). The
    deep output's layers are `output_layers` (nn.Linear of the output width).
    """

    def __init__(
        self,
        input_size,
        hidden_size,
        depth=2,
        *,
        shortcut=True,
        deep_output=0,
        num_layers=1,
        nonlinearity="tanh",
        orthogonal=None,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        backend="auto",
        device=None,
        dtype=None,
    ):
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            batch_first=batch_first,
            bidirectional=bidirectional,
            dropout=dropout,
        )
        self.depth = check_positive_int(depth, "depth")
        if not isinstance(shortcut, bool):
            raise TypeError(f"shortcut must be a bool; got {shortcut!r}")
        if isinstance(deep_output, bool) or not isinstance(deep_output, int) or deep_output < 0:
            raise ValueError(
                f"deep_output must be a non-negative int (layers of the output MLP); got {deep_output!r}"
            )
        nl = Nonlinearity.parse(nonlinearity)
        if nl not in (Nonlinearity.TANH, Nonlinearity.RELU, Nonlinearity.IDENTITY):
            raise ValueError(f"nonlinearity must be 'tanh', 'relu' or 'identity'; got {nonlinearity!r}")
        if orthogonal is not None and orthogonal not in PARAMETRIZATIONS:
            raise ValueError(
                f"orthogonal must be None or one of {sorted(PARAMETRIZATIONS)}; got {orthogonal!r}"
            )
        self.shortcut = shortcut
        self.deep_output = deep_output
        self.nonlinearity = nl.value
        self.orthogonal = orthogonal
        self.bias = bool(bias)
        self.backend = parse_backend(backend)
        factory = {"device": device, "dtype": dtype}
        H = hidden_size
        bound = 1.0 / math.sqrt(H)

        def uniform(*shape):
            return nn.Parameter(torch.empty(*shape, **factory).uniform_(-bound, bound))

        width = 2 * H if shortcut else H
        self.transition = nn.ModuleList()
        for layer in range(num_layers):
            for direction in range(self.num_directions):
                sfx = self.suffix(layer, direction)
                self.register_parameter(f"weight_ih_{sfx}", uniform(width, self.layer_input_size(layer)))
                if self.bias:
                    self.register_parameter(f"bias_ih_{sfx}", uniform(width))
                if orthogonal is None:
                    self.register_parameter(f"weight_hh_{sfx}", uniform(H, H))
                    if depth > 1:
                        self.register_parameter(f"weight_deep_{sfx}", uniform(depth - 1, H, H))
                else:
                    self.transition.append(
                        nn.ModuleList(make_orthogonal(orthogonal, H, **factory) for _ in range(depth))
                    )
                if shortcut:
                    self.register_parameter(f"shortcut_weight_hh_{sfx}", uniform(H, H))
                if depth > 1 and self.bias:
                    self.register_parameter(f"bias_deep_{sfx}", uniform(depth - 1, H))
        features = H * self.num_directions
        self.output_layers = nn.ModuleList(
            nn.Linear(features, features, **factory) for _ in range(deep_output)
        )

    def transition_matrices(self, layer: int = 0, direction: int = 0) -> list[torch.Tensor]:
        """[W_1, ..., W_depth] [H, H] of this layer and direction (orthogonal when `orthogonal` is set)."""
        self._check_index(layer, direction)
        if self.orthogonal is not None:
            return [w() for w in self.transition[layer * self.num_directions + direction]]
        sfx = self.suffix(layer, direction)
        deep = getattr(self, f"weight_deep_{sfx}", None)
        return [getattr(self, f"weight_hh_{sfx}"), *(deep.unbind(0) if deep is not None else ())]

    def _run_direction(self, layer, direction, x, h0, lengths):
        sfx = self.suffix(layer, direction)
        pre = input_projection(x, getattr(self, f"weight_ih_{sfx}"), getattr(self, f"bias_ih_{sfx}", None))
        pre = pre.to(x.dtype)  # under autocast F.linear hands on bfloat16; the recurrence runs in x's dtype
        first, *deep = (w.to(x.dtype) for w in self.transition_matrices(layer, direction))
        weight_hh = torch.cat([first, getattr(self, f"shortcut_weight_hh_{sfx}")]) if self.shortcut else first
        H = self.hidden_size
        weights_deep = torch.stack(deep) if deep else first.new_empty((0, H, H))
        biases_deep = getattr(self, f"bias_deep_{sfx}", None)
        if biases_deep is None:
            biases_deep = first.new_zeros((self.depth - 1, H))
        return deep_transition_recurrence(
            pre, weight_hh, weights_deep, biases_deep, h0,
            nonlinearity=self.nonlinearity, backend=self.backend, lengths=lengths,
        )  # fmt: skip

    def _output_layers(self, output, lengths):
        """The deep output MLP (deep_output layers) on every step's output; zero past each end."""
        if not self.output_layers:
            return output
        features = output
        for linear in self.output_layers:
            features = _activation(linear(features), self.nonlinearity)
        if lengths is None:
            return features
        active = torch.arange(output.shape[0]).unsqueeze(1) < lengths  # [T, B]
        return torch.where(active.unsqueeze(-1).to(output.device), features, 0.0)

    def extra_repr(self) -> str:
        s = super().extra_repr() + f", depth={self.depth}, shortcut={self.shortcut}"
        if self.deep_output:
            s += f", deep_output={self.deep_output}"
        s += f", nonlinearity={self.nonlinearity!r}"
        if self.orthogonal is not None:
            s += f", orthogonal={self.orthogonal!r}"
        return s + f", backend={self.backend!r}"


def _activation(x: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    if nonlinearity == "tanh":
        return torch.tanh(x)
    if nonlinearity == "relu":
        return torch.relu(x)
    return x


__all__ = ["DeepTransitionRNN"]
