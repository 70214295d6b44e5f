"""Optimizer parameter groups: orthogonal parametrisations train with a smaller learning rate
(lr/10 by default, as in expRNN and scoRNN)."""

import numbers

from torch import nn

from .parametrizations.orthogonal import Orthogonal


def _check_lr(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def orthogonal_param_groups(model: nn.Module, lr: float, orthogonal_lr: float | None = None, **group_kwargs):
    """Split `model.parameters()` into optimizer parameter groups.

    Returns a list of dicts `{"params": [...], "lr": ..., **group_kwargs}`: first the parameters
    owned by any `Orthogonal` submodule (at `orthogonal_lr`, default lr/10), then every other
    parameter (at `lr`). Each parameter appears exactly once, in `model.parameters()` order (a
    parameter shared between an Orthogonal module and another module counts as orthogonal); an
    empty group is left out. Usage: `torch.optim.Adam(orthogonal_param_groups(model, 1e-3))`."""
    _check_lr("lr", lr)
    orthogonal_lr = lr / 10 if orthogonal_lr is None else orthogonal_lr
    _check_lr("orthogonal_lr", orthogonal_lr)
    if "params" in group_kwargs:
        raise ValueError("group_kwargs must not contain 'params': the groups' parameters come from model")

    orthogonal_ids = {
        id(p) for module in model.modules() if isinstance(module, Orthogonal) for p in module.parameters()
    }
    orthogonal, other = [], []
    for p in model.parameters():
        (orthogonal if id(p) in orthogonal_ids else other).append(p)

    groups = [
        {"params": orthogonal, "lr": orthogonal_lr, **group_kwargs},
        {"params": other, "lr": lr, **group_kwargs},
    ]
    return [group for group in groups if group["params"]]
