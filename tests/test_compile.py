"""torch.compile(fullgraph=True) traces through the custom ops: a model containing OrthogonalRNN
compiles without graph breaks and matches eager, outputs and gradients (CPU, torch backend), with
and without gradient checkpointing; so does every other module (tests/all_modules.py: the unitary
cells, the gated cells, GORU with its default FFT-style EUNN, whose gather once crashed inductor's
generated code, and the deep transition with a deep output)."""

import pytest
import torch
from torch import nn

from tests import all_modules
from tests.tolerances import assert_close
from trit_rnn import OrthogonalRNN

# Beyond the shared small builder: the LSTM stacked and bidirectional (two states per direction).
OVERRIDES = {"lstm": {"num_layers": 2, "bidirectional": True}}


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
        if h_n.is_complex():  # the unitary cells' complex state, as its real view
            h_n = torch.view_as_real(h_n)
        return self.head(out[-1]), h_n


# checkpoint_every=4 at T=6: two segments, the second one short.
@pytest.mark.parametrize("checkpoint_every", [None, 4])
def test_compiled_model_matches_eager(checkpoint_every):
    torch.manual_seed(0)
    check_compiled_matches_eager(Classifier(checkpoint_every))


@pytest.mark.parametrize("cell", all_modules.NAMES)
def test_compiled_module_matches_eager(cell):
    torch.manual_seed(0)
    check_compiled_matches_eager(Classifier(rnn=all_modules.build(cell, **OVERRIDES.get(cell, {}))))


def check_compiled_matches_eager(model):
    x = torch.randn(6, 5, 3)
    model(x)  # materialises the lazy head
    torch._dynamo.reset()  # every test compiles Classifier.forward afresh (dynamo's recompile limit is 8)
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
        assert_close(a, b, a.dtype if a.is_complex() else torch.float32, name)
