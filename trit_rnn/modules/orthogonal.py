"""OrthogonalRNN: h_t = f(x_t U^T + b + h_{t-1} W^T) with W orthogonal (expRNN / scoRNN style)."""

import torch
from torch import nn

from ..amp import autocast_off
from ..dispatch import parse_backend
from ..functional import dense_rnn
from ..nonlinearity import Nonlinearity
from ..parametrizations import make_orthogonal
from ..validation import check_checkpoint_every
from .stacked import StackedRecurrence


class OrthogonalRNN(StackedRecurrence):
    """An Elman RNN whose recurrent matrix is kept exactly orthogonal by a parametrisation.

    Args follow torch.nn.RNN, plus:
        nonlinearity: "modrelu" (default, as expRNN/scoRNN), "tanh", "relu" or "identity".
        parametrization: "exp" (W = exp(A - A^T)), "cayley" or "householder"; the orthogonal
            matrix is computed once per forward for each layer and direction.
        init: initialiser of the parametrisation (e.g. "henaff", "cayley"); its default when None.
        backend: "auto", "torch" or "triton" (see trit_rnn.dispatch).
        checkpoint_every: None, or K >= 1 for gradient checkpointing: each layer and direction
            keeps its input and every K-th state for the backward instead of its outputs, and the
            backward recomputes the segments (see trit_rnn.functional.dense_rnn). Parameters and
            state_dict are the same either way.

    Parameters per layer and direction (suffix l{k} or l{k}_reverse): weight_ih [H, I]
    (Kaiming-normal), bias_ih [H] (zeros) when bias, act_bias [H] (U(-0.01, 0.01)) with modReLU,
    and `recurrent[index]`, the parametrisation module (use trit_rnn.optim.orthogonal_param_groups
    to train it at its own learning rate).
    """

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        *,
        nonlinearity="modrelu",
        parametrization="exp",
        init=None,
        bias=True,
        batch_first=False,
        bidirectional=False,
        backend="auto",
        checkpoint_every=None,
        device=None,
        dtype=None,
    ):
        super().__init__(
            input_size, hidden_size, num_layers, batch_first=batch_first, bidirectional=bidirectional
        )
        self.nonlinearity = Nonlinearity.parse(nonlinearity).value
        self.parametrization = parametrization
        self.bias = bool(bias)
        self.backend = parse_backend(backend)
        self.checkpoint_every = check_checkpoint_every(checkpoint_every)
        factory = {"device": device, "dtype": dtype}
        self.recurrent = nn.ModuleList()
        for layer in range(num_layers):
            for direction in range(self.num_directions):
                sfx = self.suffix(layer, direction)
                weight_ih = torch.empty(hidden_size, self.layer_input_size(layer), **factory)
                nn.init.kaiming_normal_(weight_ih, nonlinearity="relu")
                self.register_parameter(f"weight_ih_{sfx}", nn.Parameter(weight_ih))
                if self.bias:
                    self.register_parameter(
                        f"bias_ih_{sfx}", nn.Parameter(torch.zeros(hidden_size, **factory))
                    )
                if self.nonlinearity == Nonlinearity.MODRELU.value:
                    act_bias = torch.empty(hidden_size, **factory).uniform_(-0.01, 0.01)
                    self.register_parameter(f"act_bias_{sfx}", nn.Parameter(act_bias))
                self.recurrent.append(make_orthogonal(parametrization, hidden_size, init=init, **factory))

    def recurrent_matrix(self, layer: int = 0, direction: int = 0) -> torch.Tensor:
        """The orthogonal [H, H] matrix used as weight_hh for this layer and direction."""
        self._check_index(layer, direction)
        return self.recurrent[layer * self.num_directions + direction]()

    def _run_direction(self, layer, direction, x, h0, lengths):
        sfx = self.suffix(layer, direction)
        weight_hh = self.recurrent[layer * self.num_directions + direction]()
        # The fused layer in x's dtype even under autocast (see trit_rnn/amp.py).
        with autocast_off(x.device):
            return dense_rnn(
                x,
                getattr(self, f"weight_ih_{sfx}"),
                getattr(self, f"bias_ih_{sfx}", None),
                weight_hh.to(x.dtype),
                h0,
                nonlinearity=self.nonlinearity,
                act_bias=getattr(self, f"act_bias_{sfx}", None),
                backend=self.backend,
                checkpoint_every=self.checkpoint_every,
                lengths=lengths,
            )

    def extra_repr(self) -> str:
        s = (
            super().extra_repr()
            + f", nonlinearity={self.nonlinearity!r}, parametrization={self.parametrization!r}, backend={self.backend!r}"
        )
        if self.checkpoint_every is not None:
            s += f", checkpoint_every={self.checkpoint_every}"
        return s


__all__ = ["OrthogonalRNN"]
