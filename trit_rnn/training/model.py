"""The trained model: a registered cell followed by a linear readout applied at every step, with
the cell-specific practice applied once at construction (LSTM forget-gate bias 1)."""

from __future__ import annotations

import torch
from torch import nn

from .. import registry

FORGET_BIAS = 1.0


class SequenceModel(nn.Module):
    """cell (a registry entry: [T, B, I] -> ([T, B, F], state)) + nn.Linear(F, outputs) per step."""

    def __init__(self, cell: nn.Module, features: int, outputs: int, *, device=None, dtype=None):
        super().__init__()
        self.cell = cell
        self.readout = nn.Linear(features, outputs, device=device, dtype=dtype)

    def forward(self, x, state=None):
        out, state = self.cell(x) if state is None else self.cell(x, state)
        return self.readout(out), state


def detach_state(state):
    """The state with its history cut (a tensor, or a tuple of them such as the LSTM's (h, c))."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(detach_state(s) for s in state)
    return state.detach()


def choose_backend(spec: registry.CellSpec, backend: str | None, device, dtype) -> str:
    """--backend, checked against the entry; or its first backend that runs on device in dtype."""
    if backend is not None:
        ok, reason = spec.availability(backend, device, dtype)
        if not ok:
            raise ValueError(f"--backend {backend}: {reason}")
        return backend
    reasons = []
    for candidate in spec.backends:
        ok, reason = spec.availability(candidate, device, dtype)
        if ok:
            return candidate
        reasons.append(reason)
    raise ValueError(
        f"--cell {spec.name}: cannot run on {torch.device(device)} in {dtype}: {'; '.join(reasons)}"
    )


def set_lstm_forget_bias(lstm: nn.LSTM, value: float = FORGET_BIAS) -> None:
    """torch.nn.LSTM: the forget gate's bias starts at `value` (b_ih's f block; b_hh's at 0), as
    trit_rnn.LSTM(forget_bias=value) does. Gate order i, f, g, o."""
    H = lstm.hidden_size
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.startswith("bias_ih"):
                p[H : 2 * H].fill_(value)
            elif name.startswith("bias_hh"):
                p[H : 2 * H].zero_()


def build_model(cell_name: str, input_size: int, outputs: int, hidden: int, *, backend, device, dtype):
    """(SequenceModel, backend used). Cell practice: trit_rnn.LSTM gets forget_bias=1.0, the
    torch_lstm peer the same bias set by hand."""
    spec = registry.get(cell_name)
    backend = choose_backend(spec, backend, device, dtype)
    options = {"forget_bias": FORGET_BIAS} if cell_name == "lstm" else {}
    cell = spec.build(input_size, hidden, backend=backend, device=device, dtype=dtype, **options)
    if isinstance(cell, nn.LSTM):
        set_lstm_forget_bias(cell)
    model = SequenceModel(cell, spec.output_features(hidden), outputs, device=device, dtype=dtype)
    return model, backend
