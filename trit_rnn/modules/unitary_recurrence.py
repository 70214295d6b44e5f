"""UnitaryRecurrence: what URNN, FullCapacityURNN, EUNN and KRU share.

h_t = modReLU(x_t V^T + c + h_{t-1} W^T, b) with a complex state h, a real input projection V into
it and a unitary W (materialised once per forward by the cell's parametrisation, then run by the
dense op). Complex modReLU: z * relu(|z| + b) / (|z| + eps).
"""

import torch
from torch import nn
from torch.nn import functional as F

from ..dispatch import parse_backend
from ..functional import dense_recurrence
from ..parametrizations.unitary import COMPLEX_OF, check_real_dtype
from ..validation import check_checkpoint_every, check_eps
from .stacked import StackedRecurrence

READOUTS = ("re_im", "real", "complex")


def check_readout(readout, complex_state: bool) -> str:
    if not complex_state:
        if readout not in (None, "real"):
            raise ValueError(
                f"a real-state cell (complex=False) outputs its state h itself: readout must be None or "
                f"'real'; got {readout!r}"
            )
        return "real"
    readout = "re_im" if readout is None else readout
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {', '.join(map(repr, READOUTS))}; got {readout!r}")
    return readout


def _complex_projection(x, weight_ih, bias_ih):
    """x [T, B, I] @ weight_ih^T + bias_ih as a complex [T, B, H] (rows :H of weight_ih [2H, I] give
    Re, rows H: Im). The rows are interleaved (Re_0, Im_0, Re_1, ...) so that the real GEMM's output
    is the complex tensor's memory: a view, where torch.complex(re, im) would copy and keep both
    real halves alive for its backward."""
    two_h, input_size = weight_ih.shape
    interleaved = weight_ih.view(2, two_h // 2, input_size).transpose(0, 1).reshape(two_h, input_size)
    bias = None if bias_ih is None else bias_ih.view(2, two_h // 2).t().reshape(two_h)
    pre = F.linear(x, interleaved, bias)  # [T, B, 2H]: (Re, Im) pairs
    return torch.view_as_complex(pre.view(*pre.shape[:-1], two_h // 2, 2))


class UnitaryRecurrence(StackedRecurrence):
    """Base class of the unitary RNNs; follows torch.nn.RNN's call convention.

    Options every subclass takes (keyword-only):
        bias: learn the input projection's bias c (default True).
        batch_first, bidirectional: as torch.nn.RNN.
        readout: what the last layer outputs per direction: "re_im" (default) [Re h, Im h], 2H
            features; "real" Re h, H features; "complex" h itself, H complex features. Layers pass
            [Re h, Im h] to the next one whatever the readout.
        eps: modReLU's eps (default 1e-5 as uRNN; the EUNN authors raised it to 1e-2 after NaNs).
        backend: "auto", "torch" or "triton" (see trit_rnn.dispatch).
        checkpoint_every: None, or K >= 1 for gradient checkpointing: each layer and direction keeps
            its pre-activations and every K-th state for the backward instead of its outputs, and
            the backward recomputes the segments (see trit_rnn.dense_recurrence).
        device, dtype: of the real parameters; dtype float32 (default) or float64 gives a complex64
            or complex128 state. The input must have that dtype.

    Parameters per layer and direction (suffix l{k} or l{k}_reverse): weight_ih [2H, I] (rows :H
    give Re, rows H: give Im of the projection; Glorot-uniform, as the uRNN reference code),
    bias_ih [2H] (zeros) when bias, act_bias [H] (modReLU's b, U(-0.01, 0.01)), and
    `recurrent[index]` (index = layer * num_directions + direction), the parametrisation that
    returns W. h_n is [L*D, B, H] in the state dtype; hx, when given, must have that dtype too.

    A real-state subclass (the orthogonal EUNN) passes complex_state=False: weight_ih is [H, I], the
    state and h_n are real, real modReLU sign(z) relu(|z| + b), and the output is h.
    """

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        *,
        complex_state=True,
        readout=None,
        bias=True,
        batch_first=False,
        bidirectional=False,
        eps=1e-5,
        backend="auto",
        checkpoint_every=None,
        device=None,
        dtype=None,
    ):
        super().__init__(
            input_size, hidden_size, num_layers, batch_first=batch_first, bidirectional=bidirectional
        )
        self.complex_state = complex_state
        self.readout = check_readout(readout, complex_state)
        self.bias = bool(bias)
        self.eps = check_eps(eps)
        self.backend = parse_backend(backend)
        self.checkpoint_every = check_checkpoint_every(checkpoint_every)
        self.real_dtype = check_real_dtype(dtype)
        self.recurrent = nn.ModuleList()
        self._factory = {"device": device, "dtype": self.real_dtype}

    def _build(self, make_unitary) -> None:
        """Creates each layer's and direction's parameters; make_unitary(device=, dtype=) returns the
        parametrisation of one recurrent matrix (a trit_rnn.parametrizations.Unitary)."""
        projected = 2 * self.hidden_size if self.complex_state else self.hidden_size
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                sfx = self.suffix(layer, direction)
                weight_ih = torch.empty(projected, self.layer_input_size(layer), **self._factory)
                nn.init.xavier_uniform_(weight_ih)
                self.register_parameter(f"weight_ih_{sfx}", nn.Parameter(weight_ih))
                if self.bias:
                    self.register_parameter(
                        f"bias_ih_{sfx}", nn.Parameter(torch.zeros(projected, **self._factory))
                    )
                act_bias = torch.empty(self.hidden_size, **self._factory).uniform_(-0.01, 0.01)
                self.register_parameter(f"act_bias_{sfx}", nn.Parameter(act_bias))
                self.recurrent.append(make_unitary(**self._factory))

    @property
    def complex_dtype(self) -> torch.dtype:
        return COMPLEX_OF[self.real_dtype]

    @property
    def output_features(self) -> int:
        """Features of the output's last dimension (all directions)."""
        per_direction = 2 * self.hidden_size if self.readout == "re_im" else self.hidden_size
        return per_direction * self.num_directions

    def direction_features(self) -> int:
        return 2 * self.hidden_size if self.complex_state else self.hidden_size

    def state_dtype(self, input_dtype: torch.dtype) -> torch.dtype:
        return self.complex_dtype if self.complex_state else self.real_dtype

    def recurrent_matrix(self, layer: int = 0, direction: int = 0) -> torch.Tensor:
        """The [H, H] matrix used as weight_hh for this layer and direction: unitary (complex), or
        orthogonal (real) for a real-state cell."""
        self._check_index(layer, direction)
        return self.recurrent[layer * self.num_directions + direction]()

    def recurrent_parameters(self):
        """The parameters of every recurrent parametrisation (e.g. for their own learning rate)."""
        return self.recurrent.parameters()

    def _direction_output(self, outputs, last_layer):
        if not self.complex_state or (last_layer and self.readout == "complex"):
            return outputs
        if last_layer and self.readout == "real":
            return outputs.real
        return torch.cat([outputs.real, outputs.imag], dim=-1)

    def _run_direction(self, layer, direction, x, h0, lengths):
        sfx = self.suffix(layer, direction)
        weight_ih = getattr(self, f"weight_ih_{sfx}")
        bias_ih = getattr(self, f"bias_ih_{sfx}", None)
        act_bias = getattr(self, f"act_bias_{sfx}")
        weight_hh = self.recurrent[layer * self.num_directions + direction]()
        options = {
            "act_bias": act_bias,
            "backend": self.backend,
            "checkpoint_every": self.checkpoint_every,
            "lengths": lengths,
        }
        if not self.complex_state:
            # Under autocast F.linear is bfloat16/float16; the recurrence runs in W's dtype, as in
            # the complex projection below (autocast casts view_as_complex's input to float32).
            pre = F.linear(x, weight_ih, bias_ih).to(weight_hh.dtype)
            return dense_recurrence(pre, weight_hh, h0, nonlinearity="modrelu", **options)
        pre = _complex_projection(x, weight_ih, bias_ih)
        return dense_recurrence(pre, weight_hh, h0, nonlinearity="modrelu", eps=self.eps, **options)

    def extra_repr(self) -> str:
        s = super().extra_repr() + f", readout={self.readout!r}, backend={self.backend!r}"
        if self.complex_state:
            s += f", eps={self.eps}"
        if self.checkpoint_every is not None:
            s += f", checkpoint_every={self.checkpoint_every}"
        return s
