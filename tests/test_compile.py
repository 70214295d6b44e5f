"""torch.compile(fullgraph=True) traces through the custom ops: a model containing OrthogonalRNN
compiles without graph breaks and matches eager, outputs and gradients (CPU, torch backend), with
and without gradient checkpointing."""

import pytest
import torch
from torch import nn

from tests.tolerances import assert_close
from trit_rnn import OrthogonalRNN


class Classifier(nn.Module):
    def __init__(self, checkpoint_every=None):
        super().__init__()
        self.rnn = OrthogonalRNN(
            3, 16, num_layers=2, bidirectional=True, backend="torch", checkpoint_every=checkpoint_every
        )
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        out, h_n = self.rnn(x)
        return self.head(out[-1]), h_n


# checkpoint_every=4 at T=6: two segments, the second one short.
@pytest.mark.parametrize("checkpoint_every", [None, 4])
def test_compiled_model_matches_eager(checkpoint_every):
    torch.manual_seed(0)
    model = Classifier(checkpoint_every)
    x = torch.randn(6, 5, 3)
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
