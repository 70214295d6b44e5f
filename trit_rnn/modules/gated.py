"""LSTM and GRU: drop-in replacements for torch.nn.LSTM / torch.nn.GRU on the fused gated ops.

Same constructor arguments, call convention, return values, parameter names, shapes and default
initialisation (every parameter U(-1/sqrt(H), 1/sqrt(H)), drawn in torch's order, so the same seed
gives the same weights), so that `ours.load_state_dict(torch_module.state_dict())` gives the same
function. Extra keyword-only options are off by default:
    backend: "auto", "torch" or "triton" (see trit_rnn.dispatch).
    forget_bias (LSTM): None, or the value the forget gate's bias starts at (b_ih's f block; b_hh's
        f block starts at 0). 1.0 is the usual practice (Gers et al. 2000; Jozefowicz et al. 2015).
    recurrent_init: "uniform" (torch's) or "orthogonal": each gate's [H, H] block of weight_hh
        starts as a Haar-random orthogonal matrix.
    layer_norm, zoneout, recurrent_dropout, and for the LSTM peephole and zoneout_cell: the training
        practice of trit_rnn/modules/gated_steps.py (definitions there). With any of them on, the
        module runs that step-by-step autograd path instead of the fused op (logged once): the fused
        ops and kernels implement the plain cells only. Their parameters (peephole_{sfx} [3, H],
        layer_norm_{ih,hh,c}_{sfx}) come after torch.nn's, so the plain ones still load from a
        torch.nn state_dict with strict=False.
"""

import math

import torch
from torch import nn

from ..dispatch import logger, parse_backend
from ..functional import input_projection
from ..functional_gated import gru_recurrence, lstm_recurrence
from .gated_steps import StepOptions, check_probability, gru_steps, lstm_steps
from .stacked import StackedRecurrence

RECURRENT_INITS = ("uniform", "orthogonal")


class _GatedRNN(StackedRecurrence):
    """What LSTM and GRU share: G gate blocks per layer and direction, torch.nn's parameters."""

    gates: int

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        device=None,
        dtype=None,
        *,
        backend="auto",
        recurrent_init="uniform",
        layer_norm=False,
        zoneout=0.0,
        recurrent_dropout=0.0,
        step_options=None,
    ):
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            batch_first=batch_first,
            bidirectional=bidirectional,
            dropout=dropout,
        )
        if not isinstance(layer_norm, bool):
            raise TypeError(f"layer_norm must be a bool; got {layer_norm!r}")
        self.step_options = step_options or StepOptions(
            layer_norm=layer_norm,
            zoneout=check_probability(zoneout, "zoneout"),
            recurrent_dropout=check_probability(recurrent_dropout, "recurrent_dropout"),
        )
        self._logged_step_path = False
        if recurrent_init not in RECURRENT_INITS:
            raise ValueError(f"recurrent_init must be one of {RECURRENT_INITS}; got {recurrent_init!r}")
        self.bias = bool(bias)
        self.backend = parse_backend(backend)
        self.recurrent_init = recurrent_init
        factory = {"device": device, "dtype": dtype}
        width = self.gates * hidden_size
        for layer in range(num_layers):
            for direction in range(self.num_directions):
                sfx = self.suffix(layer, direction)
                # torch.nn's registration order, which reset_parameters draws in.
                self.register_parameter(
                    f"weight_ih_{sfx}",
                    nn.Parameter(torch.empty(width, self.layer_input_size(layer), **factory)),
                )
                self.register_parameter(
                    f"weight_hh_{sfx}", nn.Parameter(torch.empty(width, hidden_size, **factory))
                )
                if self.bias:
                    self.register_parameter(f"bias_ih_{sfx}", nn.Parameter(torch.empty(width, **factory)))
                    self.register_parameter(f"bias_hh_{sfx}", nn.Parameter(torch.empty(width, **factory)))
        self._torch_parameters = [p for _, p in self.named_parameters()]
        for layer in range(num_layers):
            for direction in range(self.num_directions):
                sfx = self.suffix(layer, direction)
                if self.step_options.peephole:
                    self.register_parameter(
                        f"peephole_{sfx}", nn.Parameter(torch.empty(3, hidden_size, **factory))
                    )
                if self.step_options.layer_norm:
                    self.add_module(f"layer_norm_ih_{sfx}", nn.LayerNorm(width, **factory))
                    self.add_module(f"layer_norm_hh_{sfx}", nn.LayerNorm(width, **factory))
                    if self.gates == 4:
                        self.add_module(f"layer_norm_c_{sfx}", nn.LayerNorm(hidden_size, **factory))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """torch.nn's initialisation, then the options' (recurrent_init, forget_bias)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self._torch_parameters:  # torch.nn's draws, in its order
            nn.init.uniform_(weight, -bound, bound)
        for name, weight in self.named_parameters():
            if name.startswith("peephole_"):
                nn.init.uniform_(weight, -bound, bound)
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                module.reset_parameters()
        H = self.hidden_size
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                sfx = self.suffix(layer, direction)
                if self.recurrent_init == "orthogonal":
                    for block in getattr(self, f"weight_hh_{sfx}").split(H):
                        nn.init.orthogonal_(block)
                self._init_biases(sfx)

    def _init_biases(self, sfx: str) -> None:
        pass

    def _weights(self, layer: int, direction: int):
        sfx = self.suffix(layer, direction)
        return (
            getattr(self, f"weight_ih_{sfx}"),
            getattr(self, f"weight_hh_{sfx}"),
            getattr(self, f"bias_ih_{sfx}", None),
            getattr(self, f"bias_hh_{sfx}", None),
        )

    def _use_steps(self) -> bool:
        """Whether an option needs the step-by-step path; logs the reason once."""
        if not self.step_options.any:
            return False
        if not self._logged_step_path:
            logger.info(
                "%s: %s needs the step-by-step path (the fused op has no such option)",
                type(self).__name__,
                self.step_options,
            )
            self._logged_step_path = True
        return True

    def _norms(self, sfx: str, names: tuple[str, ...]):
        if not self.step_options.layer_norm:
            return None
        return tuple(getattr(self, f"layer_norm_{name}_{sfx}") for name in names)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if not self.bias:
            s += ", bias=False"
        s += f", backend={self.backend!r}"
        if self.recurrent_init != "uniform":
            s += f", recurrent_init={self.recurrent_init!r}"
        defaults = StepOptions()
        for name in ("peephole", "layer_norm", "zoneout", "zoneout_cell", "recurrent_dropout"):
            value = getattr(self.step_options, name)
            if value != getattr(defaults, name):
                s += f", {name}={value}"
        return s


class LSTM(_GatedRNN):
    """torch.nn.LSTM on the fused LSTM recurrence (gate order i, f, g, o).

    Args: as torch.nn.LSTM (proj_size must be 0), plus the keyword-only options of the module
    docstring (backend, forget_bias, recurrent_init, peephole, layer_norm, zoneout, zoneout_cell,
    recurrent_dropout). Call: (input, (h_0, c_0)) or (input,);
    returns (output, (h_n, c_n)).
    """

    gates = 4
    state_names = ("h_0", "c_0")

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        proj_size=0,
        device=None,
        dtype=None,
        *,
        backend="auto",
        forget_bias=None,
        recurrent_init="uniform",
        peephole=False,
        layer_norm=False,
        zoneout=0.0,
        zoneout_cell=0.0,
        recurrent_dropout=0.0,
    ):
        if proj_size != 0:
            raise ValueError(
                f"proj_size is not supported (the projected LSTM has no fused kernel); got {proj_size!r}"
            )
        if forget_bias is not None and (
            isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float))
        ):
            raise ValueError(f"forget_bias must be None or a number (e.g. 1.0); got {forget_bias!r}")
        if forget_bias is not None and not bias:
            raise ValueError("forget_bias needs bias=True")
        self.forget_bias = forget_bias
        if not isinstance(peephole, bool) or not isinstance(layer_norm, bool):
            raise TypeError(f"peephole and layer_norm must be bools; got {peephole!r}, {layer_norm!r}")
        options = StepOptions(
            peephole=peephole,
            layer_norm=layer_norm,
            zoneout=check_probability(zoneout, "zoneout"),
            zoneout_cell=check_probability(zoneout_cell, "zoneout_cell"),
            recurrent_dropout=check_probability(recurrent_dropout, "recurrent_dropout"),
        )
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device, dtype,
            backend=backend, recurrent_init=recurrent_init, step_options=options,
        )  # fmt: skip

    def _init_biases(self, sfx: str) -> None:
        if self.forget_bias is None:
            return
        H = self.hidden_size
        getattr(self, f"bias_ih_{sfx}")[H : 2 * H].fill_(self.forget_bias)
        getattr(self, f"bias_hh_{sfx}")[H : 2 * H].zero_()

    def _run_direction(self, layer, direction, x, state, lengths):
        weight_ih, weight_hh, bias_ih, bias_hh = self._weights(layer, direction)
        h0, c0 = state
        bias = bias_ih + bias_hh if bias_ih is not None else None
        if self._use_steps():
            sfx = self.suffix(layer, direction)
            zeros = x.new_zeros((x.shape[1], self.hidden_size))
            outputs, h_n, c_n = lstm_steps(
                input_projection(x, weight_ih), weight_hh, bias,
                h0 if h0 is not None else zeros, c0 if c0 is not None else zeros,
                options=self.step_options, training=self.training,
                peephole=getattr(self, f"peephole_{sfx}", None), norms=self._norms(sfx, ("ih", "hh", "c")),
                lengths=lengths,
            )  # fmt: skip
            return outputs, (h_n, c_n)
        # The bias goes where it is free: a CPU loop adds it in its pass and sums its gradient
        # there (two passes over [T, B, 4H] fewer), a GPU GEMM in its epilogue; 16-bit storage
        # keeps it in the projection, rounded once.
        in_loop = bias is not None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
        # [T, B, 4H]; in x's dtype under autocast too, whose F.linear would hand on bfloat16.
        pre = input_projection(x, weight_ih, None if in_loop else bias).to(x.dtype)
        outputs, h_n, c_n = lstm_recurrence(
            pre, weight_hh, h0, c0, bias=bias if in_loop else None, backend=self.backend, lengths=lengths
        )
        return outputs, (h_n, c_n)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if self.forget_bias is not None:
            s += f", forget_bias={self.forget_bias}"
        return s


class GRU(_GatedRNN):
    """torch.nn.GRU on the fused GRU recurrence (gate order r, z, n; reset applied after the
    recurrent product, as torch.nn.GRU and cuDNN).

    Args: as torch.nn.GRU, plus the keyword-only options of the module docstring (backend,
    recurrent_init, layer_norm, zoneout, recurrent_dropout). Returns (output, h_n).
    """

    gates = 3

    def _run_direction(self, layer, direction, x, h0, lengths):
        weight_ih, weight_hh, bias_ih, bias_hh = self._weights(layer, direction)
        if self._use_steps():
            return gru_steps(
                input_projection(x, weight_ih), weight_hh, bias_ih, bias_hh,
                h0 if h0 is not None else x.new_zeros((x.shape[1], self.hidden_size)),
                options=self.step_options, training=self.training,
                norms=self._norms(self.suffix(layer, direction), ("ih", "hh")), lengths=lengths,
            )  # fmt: skip
        pre = input_projection(x, weight_ih, bias_ih).to(x.dtype)  # [T, B, 3H] (as the LSTM's)
        return gru_recurrence(pre, weight_hh, bias_hh, h0, backend=self.backend, lengths=lengths)


__all__ = ["GRU", "LSTM"]
