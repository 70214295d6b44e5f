"""orthogonal_param_groups: orthogonal parameters at orthogonal_lr, the rest at lr, each once."""

import pytest
import torch
from torch import nn

from trit_rnn.optim import orthogonal_param_groups
from trit_rnn.parametrizations import CayleyOrthogonal, ExpOrthogonal, HouseholderOrthogonal


class TinyOrthogonalRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.input = nn.Linear(3, 4)
        self.recurrent = ExpOrthogonal(4)
        self.act_bias = nn.Parameter(torch.zeros(4))
        self.stack = nn.ModuleList([CayleyOrthogonal(4, num_negative=1), HouseholderOrthogonal(4, 2)])
        self.readout = nn.Linear(4, 2)
        self.frozen = nn.Parameter(torch.ones(1), requires_grad=False)


def ids(params):
    return [id(p) for p in params]


def test_groups_split_orthogonal_from_the_rest():
    model = TinyOrthogonalRNN()
    groups = orthogonal_param_groups(model, lr=1e-2, weight_decay=0.0, betas=(0.9, 0.99))
    assert len(groups) == 2
    orthogonal, other = groups
    assert ids(orthogonal["params"]) == ids(
        [model.recurrent.weight, model.stack[0].weight, model.stack[1].reflectors]
    )
    # model.parameters() order: the model's own parameters first, then submodules'.
    assert ids(other["params"]) == ids(
        [
            model.act_bias,
            model.frozen,
            model.input.weight,
            model.input.bias,
            model.readout.weight,
            model.readout.bias,
        ]
    )
    assert orthogonal["lr"] == pytest.approx(1e-3) and other["lr"] == 1e-2
    assert all(g["weight_decay"] == 0.0 and g["betas"] == (0.9, 0.99) for g in groups)
    # Buffers (Cayley's D) are not parameters.
    assert id(model.stack[0].diagonal) not in ids(orthogonal["params"]) + ids(other["params"])


def test_no_parameter_twice_none_lost_and_optimizer_accepts_groups():
    model = TinyOrthogonalRNN()
    model.shared = model.recurrent  # the same Orthogonal module reachable twice
    model.tied = nn.Linear(4, 4)
    model.tied.weight = model.recurrent.weight  # a parameter shared with a plain module
    groups = orthogonal_param_groups(model, lr=0.1, orthogonal_lr=0.05)
    grouped = [id(p) for g in groups for p in g["params"]]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == set(ids(model.parameters()))
    assert id(model.tied.weight) in ids(groups[0]["params"])  # owned by an Orthogonal: orthogonal
    optimizer = torch.optim.Adam(groups)
    assert [g["lr"] for g in optimizer.param_groups] == [0.05, 0.1]


def test_empty_groups_are_omitted():
    plain = nn.Linear(3, 3)
    groups = orthogonal_param_groups(plain, lr=1.0)
    assert len(groups) == 1 and groups[0]["lr"] == 1.0 and len(groups[0]["params"]) == 2
    only_orthogonal = ExpOrthogonal(3)
    groups = orthogonal_param_groups(only_orthogonal, lr=1.0)
    assert len(groups) == 1 and groups[0]["lr"] == pytest.approx(0.1)
    assert groups[0]["params"][0] is only_orthogonal.weight
    assert orthogonal_param_groups(nn.ReLU(), lr=1.0) == []


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(lr=0.0), "lr"),
        (dict(lr=-1.0), "lr"),
        (dict(lr="0.1"), "lr"),
        (dict(lr=0.1, orthogonal_lr=0.0), "orthogonal_lr"),
        (dict(lr=0.1, params=[]), "params"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        orthogonal_param_groups(TinyOrthogonalRNN(), **kwargs)
