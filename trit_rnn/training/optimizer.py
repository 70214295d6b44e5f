"""One optimizer rule for every cell (RMSprop), with each cell's recurrent parametrisation at its
own learning rate:

- cells with `make_optimizer` (FullCapacityURNN): theirs, the Cayley step on U(n) at orth_lr for
  the unitary matrices and RMSprop at lr for the rest (the readout included);
- cells with `recurrent_parameters()` (the unitary cells, GORU): those at orth_lr;
- other cells: trit_rnn.optim.orthogonal_param_groups (OrthogonalRNN's Orthogonal modules at
  orth_lr), plus the peers' parametrised matrices (naive_loop's `skew`, geotorch's
  `parametrizations.*`) at orth_lr;
- everything else (input weights, biases, gates, LSTM/GRU weights, the readout) at lr.
"""

from __future__ import annotations

import torch

from ..optim import orthogonal_param_groups


def _peer_orthogonal(cell) -> list:
    return [p for name, p in cell.named_parameters() if name == "skew" or "parametrizations." in name]


def make_optimizer(model, lr: float, orth_lr: float) -> torch.optim.Optimizer:
    """RMSprop (torch's defaults: alpha 0.99, eps 1e-8) over model = SequenceModel(cell, readout)."""
    cell = model.cell
    if hasattr(cell, "make_optimizer"):
        return cell.make_optimizer(
            lr, rule="rmsprop", unitary_lr=orth_lr, extra_params=model.readout.parameters()
        )
    if hasattr(cell, "recurrent_parameters"):
        special = list(cell.recurrent_parameters())
    else:
        special = _peer_orthogonal(cell)
    if not special:
        return torch.optim.RMSprop(orthogonal_param_groups(model, lr, orth_lr), lr=lr)
    ids = {id(p) for p in special}
    others = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": special, "lr": orth_lr}, {"params": others, "lr": lr}]
    return torch.optim.RMSprop([g for g in groups if g["params"]], lr=lr)


def group_summary(optimizer: torch.optim.Optimizer) -> list[dict]:
    """[{"lr", "parameters", "unitary"}] per group, for the run's record."""
    return [
        {
            "lr": g["lr"],
            "parameters": sum(p.numel() for p in g["params"]),
            "unitary": bool(g.get("unitary", False)),
        }
        for g in optimizer.param_groups
    ]
