"""One optimizer for models with full-capacity unitary matrices: parameter groups marked
`"unitary": True` take the Riemannian Cayley step (trit_rnn.parametrizations.full_unitary.cayley_step)
at their group's lr; every other group takes the usual Adam or RMSprop step.

    optimizer = make_unitary_optimizer(unitary_params, other_params, lr=1e-3, rule="rmsprop")

The classes are torch.optim.Adam / RMSprop underneath, so state_dict, zero_grad and learning-rate
schedulers (which set each group's "lr", the unitary groups' included) work as usual.
"""

import numbers

import torch

from .parametrizations.full_unitary import cayley_step


class _CayleyOnUnitaryGroups:
    """Mixin in front of a torch.optim class: hides the unitary groups' gradients from the base
    class's step (it skips parameters without a gradient), then applies the Cayley step to them."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        unitary = [
            (p, p.grad, group["lr"])
            for group in self.param_groups
            if group.get("unitary", False)
            for p in group["params"]
            if p.grad is not None
        ]
        for p, _, _ in unitary:
            p.grad = None
        try:
            super().step()
        finally:
            for p, grad, _ in unitary:
                p.grad = grad
        for p, grad, lr in unitary:
            cayley_step(p, grad, lr)
        return loss


class CayleyAdam(_CayleyOnUnitaryGroups, torch.optim.Adam):
    """torch.optim.Adam, with the Cayley step on the groups marked "unitary"."""


class CayleyRMSprop(_CayleyOnUnitaryGroups, torch.optim.RMSprop):
    """torch.optim.RMSprop, with the Cayley step on the groups marked "unitary"."""


RULES = {"adam": CayleyAdam, "rmsprop": CayleyRMSprop}


def _check_lr(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}")
    return float(value)


def _check_unitary(p: torch.Tensor) -> None:
    if not (p.is_complex() and p.dim() == 2 and p.shape[0] == p.shape[1]):
        raise ValueError(
            f"the unitary parameters must be square complex matrices; got shape {tuple(p.shape)}, dtype {p.dtype}"
        )


def make_unitary_optimizer(
    unitary_params,
    other_params,
    lr: float,
    *,
    rule: str = "rmsprop",
    unitary_lr: float | None = None,
    **kwargs,
) -> torch.optim.Optimizer:
    """One optimizer: the Cayley step at `unitary_lr` (default lr) on `unitary_params` (square
    complex matrices, unitary at the start), `rule` ("rmsprop" or "adam") at `lr` on `other_params`.
    `kwargs` go to the Adam / RMSprop constructor (betas, alpha, weight_decay, ...).

    The Cayley step is not normalised the way RMSprop's and Adam's are: its size scales with the
    gradient, so unitary_lr usually wants tuning separately from lr."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(map(repr, RULES))}; got {rule!r}")
    lr = _check_lr("lr", lr)
    unitary_lr = lr if unitary_lr is None else _check_lr("unitary_lr", unitary_lr)
    unitary_params, other_params = list(unitary_params), list(other_params)
    for p in unitary_params:
        _check_unitary(p)
    groups = [
        {"params": unitary_params, "lr": unitary_lr, "unitary": True},
        {"params": other_params, "lr": lr, "unitary": False},
    ]
    groups = [group for group in groups if group["params"]]
    if not groups:
        raise ValueError("make_unitary_optimizer got no parameters")
    return RULES[rule](groups, lr=lr, **kwargs)
