"""make_unitary_optimizer: the Cayley step on the unitary groups, Adam/RMSprop on the rest, in one
torch.optim.Optimizer (state_dict, schedulers, closures)."""

import pytest
import torch
from torch import nn

from trit_rnn.parametrizations import FullUnitary, unitarity_error
from trit_rnn.unitary_optim import CayleyAdam, CayleyRMSprop, make_unitary_optimizer


class TinyUnitaryModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.recurrent = FullUnitary(6)
        self.linear = nn.Linear(6, 6)

    def loss(self):
        x = torch.eye(6, dtype=torch.complex64)
        y = self.linear(torch.view_as_real(x @ self.recurrent().T).sum(-1))
        return (y**2).mean()


def optimizer_for(model, rule="adam", **kwargs):
    return make_unitary_optimizer(
        model.recurrent.parameters(), model.linear.parameters(), 1e-2, rule=rule, **kwargs
    )


@pytest.mark.parametrize("rule,cls", [("adam", CayleyAdam), ("rmsprop", CayleyRMSprop)])
def test_step_moves_both_kinds_and_keeps_w_unitary(rule, cls):
    torch.manual_seed(0)
    model = TinyUnitaryModel()
    optimizer = optimizer_for(model, rule)
    assert isinstance(optimizer, cls)
    w0, b0 = model.recurrent.weight.detach().clone(), model.linear.bias.detach().clone()
    first = model.loss().item()
    for _ in range(20):
        optimizer.zero_grad()
        model.loss().backward()
        optimizer.step()
    assert model.loss().item() < first
    assert not torch.allclose(model.recurrent.weight, w0) and not torch.allclose(model.linear.bias, b0)
    assert unitarity_error(model.recurrent.weight) < 10 * 6 * torch.finfo(torch.float32).eps
    assert model.recurrent.weight.grad is not None  # the gradient is restored after the step
    assert model.recurrent.weight not in optimizer.state  # no Adam/RMSprop state for W


def test_unitary_group_takes_the_cayley_step_at_its_own_lr():
    torch.manual_seed(0)
    model = TinyUnitaryModel()
    optimizer = optimizer_for(model, unitary_lr=0.05)
    model.loss().backward()
    g = model.recurrent.weight.grad.to(torch.complex128)
    w = model.recurrent.weight.detach().to(torch.complex128)
    a = g @ w.mH - w @ g.mH
    eye = torch.eye(6, dtype=torch.complex128)
    expected = torch.linalg.solve(eye + 0.025 * a, (eye - 0.025 * a) @ w)
    optimizer.step()
    torch.testing.assert_close(
        model.recurrent.weight.detach().to(torch.complex128), expected, rtol=0, atol=1e-6
    )


def test_scheduler_closure_and_state_dict():
    torch.manual_seed(0)
    model = TinyUnitaryModel()
    optimizer = optimizer_for(model)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)

    def closure():
        optimizer.zero_grad()
        loss = model.loss()
        loss.backward()
        return loss

    assert optimizer.step(closure) is not None
    scheduler.step()
    assert [group["lr"] for group in optimizer.param_groups] == [5e-3, 5e-3]
    restored = optimizer_for(TinyUnitaryModel())
    restored.load_state_dict(optimizer.state_dict())
    assert restored.param_groups[0]["unitary"] and restored.param_groups[0]["lr"] == 5e-3


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"rule": "sgd"}, "rule"),
        ({"unitary_lr": -1.0}, "unitary_lr"),
    ],
)
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        optimizer_for(TinyUnitaryModel(), **kwargs)


def test_unitary_parameters_must_be_square_complex():
    with pytest.raises(ValueError, match="square complex"):
        make_unitary_optimizer([nn.Parameter(torch.randn(3, 3))], [], 1e-2)
    with pytest.raises(ValueError, match="no parameters"):
        make_unitary_optimizer([], [], 1e-2)
