"""GORU (Jing, Gulcehre, Peurifoy, Shen, Tegmark, Soljacic, Bengio 2019): a GRU whose candidate path
is orthogonal, run by the fused GRU recurrence with a modReLU candidate."""

import torch
from torch import nn

from ..dispatch import parse_backend
from ..functional import input_projection
from ..functional_gated import gru_recurrence
from ..parametrizations import EUNNUnitary, make_orthogonal
from .stacked import StackedRecurrence

# name -> builder of the orthogonal parametrisation of U [H, H]
ORTHOGONAL = {
    "eunn_fft": lambda size, **factory: EUNNUnitary(size, fft=True, complex=False, **factory),
    "eunn": lambda size, **factory: EUNNUnitary(size, complex=False, **factory),
    "exp": lambda size, **factory: make_orthogonal("exp", size, **factory),
    "cayley": lambda size, **factory: make_orthogonal("cayley", size, **factory),
    "householder": lambda size, **factory: make_orthogonal("householder", size, **factory),
}


class GORU(StackedRecurrence):
    """The gated orthogonal recurrent unit; follows torch.nn.GRU's call convention.

        r_t = sigmoid(h_{t-1} W_r^T + x_t U_r^T + b_r)             reset gate, W_r dense
        g_t = sigmoid(h_{t-1} W_g^T + x_t U_g^T + b_g)             update gate, W_g dense
        c_t = modReLU(r_t * (h_{t-1} U^T) + x_t U_c^T + b_x, b_c)  U orthogonal
        h_t = g_t * h_{t-1} + (1 - g_t) * c_t

    The reset gate applies after the orthogonal product, as the reference; only the candidate path
    is orthogonal (the gate matrices are dense).

    Args: input_size, hidden_size, num_layers, and keyword-only:
        orthogonal: U's parametrisation: "eunn_fft" (default, the paper's; a power-of-two
            hidden_size), "eunn" (tunable, capacity 2), "exp", "cayley" or "householder".
        bias, batch_first, dropout, bidirectional: as torch.nn.GRU.
        backend: "auto", "torch" or "triton" (see trit_rnn.dispatch).
        device, dtype.

    Parameters per layer and direction (suffix l{k} or l{k}_reverse): weight_ih [3H, I] (U_r, U_g,
    U_c) and gate_weight_hh [2H, H] (W_r, W_g), both U(-0.01, 0.01); bias_ih [3H] (b_r = 2, b_g = 0,
    b_x = 0) when bias; act_bias [H] (modReLU's b_c = 0.01); and `recurrent[index]`, U's
    parametrisation. Initialisation as the reference.
    """

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        *,
        orthogonal="eunn_fft",
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
        if orthogonal not in ORTHOGONAL:
            raise ValueError(f"orthogonal must be one of {sorted(ORTHOGONAL)}; got {orthogonal!r}")
        self.orthogonal = orthogonal
        self.bias = bool(bias)
        self.backend = parse_backend(backend)
        factory = {"device": device, "dtype": dtype}
        H = hidden_size
        self.recurrent = nn.ModuleList()
        for layer in range(num_layers):
            for direction in range(self.num_directions):
                sfx = self.suffix(layer, direction)
                weight_ih = torch.empty(3 * H, self.layer_input_size(layer), **factory).uniform_(-0.01, 0.01)
                self.register_parameter(f"weight_ih_{sfx}", nn.Parameter(weight_ih))
                gate_weight = torch.empty(2 * H, H, **factory).uniform_(-0.01, 0.01)
                self.register_parameter(f"gate_weight_hh_{sfx}", nn.Parameter(gate_weight))
                if self.bias:
                    bias_ih = torch.zeros(3 * H, **factory)
                    bias_ih[:H] = 2.0
                    self.register_parameter(f"bias_ih_{sfx}", nn.Parameter(bias_ih))
                self.register_parameter(f"act_bias_{sfx}", nn.Parameter(torch.full((H,), 0.01, **factory)))
                self.recurrent.append(ORTHOGONAL[orthogonal](H, **factory))

    def recurrent_matrix(self, layer: int = 0, direction: int = 0) -> torch.Tensor:
        """The orthogonal [H, H] matrix U of the candidate path for this layer and direction."""
        self._check_index(layer, direction)
        return self.recurrent[layer * self.num_directions + direction]()

    def recurrent_parameters(self):
        """The parameters of every orthogonal parametrisation (e.g. for their own learning rate)."""
        return self.recurrent.parameters()

    def _run_direction(self, layer, direction, x, h0, lengths):
        sfx = self.suffix(layer, direction)
        pre = input_projection(x, getattr(self, f"weight_ih_{sfx}"), getattr(self, f"bias_ih_{sfx}", None))
        pre = pre.to(x.dtype)  # under autocast F.linear hands on bfloat16; the recurrence runs in x's dtype
        orthogonal = self.recurrent[layer * self.num_directions + direction]().to(x.dtype)
        weight_hh = torch.cat([getattr(self, f"gate_weight_hh_{sfx}"), orthogonal])  # [3H, H]
        act_bias = getattr(self, f"act_bias_{sfx}")
        return gru_recurrence(
            pre, weight_hh, None, h0, nonlinearity="modrelu", act_bias=act_bias, backend=self.backend,
            lengths=lengths,
        )  # fmt: skip

    def extra_repr(self) -> str:
        s = super().extra_repr() + f", orthogonal={self.orthogonal!r}, backend={self.backend!r}"
        if not self.bias:
            s += ", bias=False"
        return s


__all__ = ["GORU"]
