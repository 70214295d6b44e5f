"""torch.compile(fullgraph=True) traces through the custom ops: a model containing OrthogonalRNN
compiles without graph breaks and matches eager, outputs and gradients (CPU, torch backend), with
and without gradient checkpointing; so do the gated and deep cells (GORU with its default FFT-style
EUNN, whose gather once crashed inductor's generated code)."""

import pytest
import torch
from torch import nn

from tests.tolerances import assert_close
from trit_rnn import GORU, GRU, LSTM, DeepTransitionRNN, OrthogonalRNN

CELLS = {
    "lstm": lambda: LSTM(3, 16, num_layers=2, bidirectional=True, backend="torch"),
    "gru": lambda: GRU(3, 16, backend="torch"),
    "goru": lambda: GORU(3, 16, backend="torch"),
    "deep_transition": lambda: DeepTransitionRNN(3, 16, depth=2, backend="torch"),
}


class Classifier(nn.Module):
    def __init__(self, checkpoint_every=None, rnn=None):
        super().__init__()
        self.rnn = rnn or OrthogonalRNN(
            3, 16, num_layers=2, bidirectional=True, backend="torch", checkpoint_every=checkpoint_every
        )
        self.head = nn.LazyLinear(4)

    def forward(self, x):
        out, state = self.rnn(x)
        h_n = state[0] if isinstance(state, tuple) else state
        return self.head(out[-1]), h_n


# checkpoint_every=4 at T=6: two segments, the second one short.
@pytest.mark.parametrize("checkpoint_every", [None, 4])
def test_compiled_model_matches_eager(checkpoint_every):
    torch.manual_seed(0)
    check_compiled_matches_eager(Classifier(checkpoint_every))


@pytest.mark.parametrize("cell", list(CELLS))
def test_compiled_gated_and_deep_cells_match_eager(cell):
    torch.manual_seed(0)
    check_compiled_matches_eager(Classifier(rnn=CELLS[cell]()))


def check_compiled_matches_eager(model):
    x = torch.randn(6, 5, 3)
    model(x)  # materialises the lazy head
    compiled = torch.compile(model, fullgraph=True, dynamic=False)

    def run(fn):
        model.zero_grad(set_to_none=True)
        logits, h_n = fn(x)
        (logits.square().sum() + h_n.sum()).backward()
        return [logits.detach(), h_n.detach()] + [p.grad.clone() for p in model.parameters()]

    eager = run(model)
    traced = run(compiled)
    names = ["logits", "h_n"] + [n for n, _ in model.named_parameters()]
    for name, a, b in zip(names, traced, eager, strict=True):
        assert_close(a, b, torch.float32, name)
