"""The main job until the perf harness lands: train an OrthogonalRNN on the adding problem and
report its loss against the baseline and its training throughput."""

import time

import torch
from torch import nn
from tqdm import tqdm

from .modules.orthogonal import OrthogonalRNN
from .optim import orthogonal_param_groups
from .tasks import ADDING_BASELINE_MSE, adding_batch


class AddingModel(nn.Module):
    def __init__(self, hidden_size: int, nonlinearity: str, parametrization: str, backend: str):
        super().__init__()
        self.rnn = OrthogonalRNN(
            2, hidden_size, nonlinearity=nonlinearity, parametrization=parametrization, backend=backend
        )
        self.readout = nn.Linear(hidden_size, 1)

    def forward(self, x):
        _, h_n = self.rnn(x)
        return self.readout(h_n[-1]).squeeze(-1)


def run_demo(
    *,
    steps: int,
    seq_len: int,
    hidden: int,
    batch: int,
    lr: float,
    nonlinearity: str,
    parametrization: str,
    backend: str,
    seed: int,
    log_every: int,
) -> dict:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = AddingModel(hidden, nonlinearity, parametrization, backend)
    optimizer = torch.optim.Adam(orthogonal_param_groups(model, lr=lr))
    history = []
    start = time.perf_counter()
    bar = tqdm(range(1, steps + 1), desc=f"adding T={seq_len}", unit="step")
    for step in bar:
        x, y = adding_batch(batch, seq_len, generator=gen)
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
        if step % log_every == 0 or step == steps:
            recent = sum(history[-log_every:]) / len(history[-log_every:])
            bar.set_postfix(mse=f"{recent:.4f}", baseline=f"{ADDING_BASELINE_MSE:.4f}")
    seconds = time.perf_counter() - start
    with torch.no_grad():
        x, y = adding_batch(1000, seq_len, generator=gen)
        test_mse = nn.functional.mse_loss(model(x), y).item()
    return {
        "task": "adding",
        "seq_len": seq_len,
        "nonlinearity": nonlinearity,
        "parametrization": parametrization,
        "hidden": hidden,
        "steps": steps,
        "first_mse": sum(history[:log_every]) / min(log_every, len(history)),
        "final_train_mse": sum(history[-log_every:]) / min(log_every, len(history)),
        "test_mse": test_mse,
        "baseline_mse": ADDING_BASELINE_MSE,
        "seconds": seconds,
        "tokens_per_s": steps * batch * seq_len / seconds,
    }
