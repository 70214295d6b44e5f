"""Training one cell on one task: the step (full or truncated BPTT), the evaluations, the
checkpoints; `train` runs every cell of a config in turn and draws the chart.

Determinism: the cell's initial weights come from torch.manual_seed(seed) and the training batches
from a torch.Generator seeded with seed, so every cell of a run sees the same batches, and the
evaluation set is drawn once from a generator seeded seed + EVAL_SEED_OFFSET (the digits tasks
evaluate on their test split). A resumed run restores both RNG states from the checkpoint and
continues bit for bit on the CPU.

Truncated BPTT (--tbptt K): each batch's sequences are cut into chunks of K steps; the state is
carried from chunk to chunk, detached, and each chunk that carries loss terms makes one update
(clipped) with its share of the sequence loss (sum of its terms / the sequence's count). A step
is one batch either way.
"""

from __future__ import annotations

import math
import time

import torch
from tqdm import tqdm

from ..tasks import make_task
from .chart import learning_curve_chart
from .checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .model import build_model, detach_state
from .optimizer import group_summary, make_optimizer
from .records import clean, write_results, write_rows

EVAL_SEED_OFFSET = 1_000_003


def _penalty(model, weight: float):
    if weight and hasattr(model.cell, "unitarity_penalty"):
        return weight * model.cell.unitarity_penalty()
    return None


def _update(model, optimizer, loss, clip: float) -> None:
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def train_step(model, optimizer, task, x, y, config: TrainConfig) -> float:
    """One batch: returns the batch's training loss (the sum of its chunks' shares)."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    count = task.target_count(y)
    chunk = config.tbptt or x.shape[0]
    state, total = None, 0.0
    for start in range(0, x.shape[0], chunk):
        out, state = model(x[start : start + chunk], state)
        terms, n = task.loss_terms(out, y, start)
        if n:
            loss = terms / count
            total += float(loss.detach())
            penalty = _penalty(model, config.unitarity_penalty)
            _update(model, optimizer, loss if penalty is None else loss + penalty, config.clip)
        state = detach_state(state)
    return total


@torch.no_grad()
def evaluate(model, task, x, y) -> tuple[float, float | None]:
    model.eval()
    out, _ = model(x)
    return float(task.loss(out, y)), task.accuracy(out, y)


def train_cell(config: TrainConfig, cell: str, task=None, *, on_row=None) -> dict:
    """Trains `cell` under `config` (resolved); returns its result dict. on_row(cell, rows) is
    called after every evaluation with the cell's rows so far."""
    task = task or make_task(config.task, config.seq_len)
    device, dtype = torch.device(config.device), config.torch_dtype
    torch.manual_seed(config.seed)
    model, backend = build_model(
        cell,
        task.input_size,
        task.output_size,
        config.hidden,
        backend=config.backend,
        device=device,
        dtype=dtype,
    )
    optimizer = make_optimizer(model, config.lr, config.orth_lr)
    data = torch.Generator().manual_seed(config.seed)
    eval_x, eval_y = task.eval_set(config.eval_batch, seed=config.seed + EVAL_SEED_OFFSET)
    eval_x, eval_y = eval_x.to(device=device, dtype=dtype), eval_y.to(device)
    view = dict(config.resume_view(), backend=backend)
    ckpt = checkpoint_path(config.out, config.run_name, cell)

    def row(step, train_loss, seconds):
        loss, accuracy = evaluate(model, task, eval_x, eval_y)
        return {"task": task.name, "cell": cell, "step": step, "seconds": round(seconds, 3),
                "train_loss": clean(train_loss), "eval_loss": clean(loss), "accuracy": accuracy,
                "baseline_loss": task.baseline_loss}  # fmt: skip

    if config.resume and ckpt.exists():
        progress = load_checkpoint(ckpt, model=model, optimizer=optimizer, data_generator=data,
                                   config_view=view, cell=cell, steps=config.steps)  # fmt: skip
    else:
        progress = {"step": 0, "seconds": 0.0, "train_sum": 0.0, "train_batches": 0, "diverged": False}
        progress["history"] = [row(0, None, 0.0)]
    if on_row:
        on_row(cell, progress["history"])

    started = time.perf_counter() - progress["seconds"]
    bar = tqdm(total=config.steps, initial=progress["step"], desc=f"{task.name} {cell}", unit="step",
               disable=not config.progress, mininterval=2.0, dynamic_ncols=True)  # fmt: skip
    step = progress["step"]
    while step < config.steps and not progress["diverged"]:
        step += 1
        x, y = task.batch(config.batch, data)
        loss = train_step(model, optimizer, task, x.to(device=device, dtype=dtype), y.to(device), config)
        progress["train_sum"] += loss
        progress["train_batches"] += 1
        progress["diverged"] = not math.isfinite(loss)
        bar.update(1)
        if step % config.eval_every == 0 or progress["diverged"]:
            train_loss = progress["train_sum"] / progress["train_batches"]
            progress["history"].append(row(step, train_loss, time.perf_counter() - started))
            progress["train_sum"], progress["train_batches"] = 0.0, 0
            bar.set_postfix(loss=f"{progress['history'][-1]['eval_loss']:.4g}", refresh=False)
            if on_row:
                on_row(cell, progress["history"])
        if step % config.checkpoint_every == 0 or step == config.steps or progress["diverged"]:
            progress["step"] = step
            progress["seconds"] = time.perf_counter() - started
            save_checkpoint(ckpt, model=model, optimizer=optimizer, data_generator=data, progress=progress,
                            config_view=view, cell=cell)  # fmt: skip
    bar.close()

    # The last step off the evaluation schedule is evaluated here, after its checkpoint: the
    # checkpoint holds the history and running sums of the schedule only, so that a resume to a
    # larger --steps continues exactly as an uninterrupted run (evaluation changes no state).
    history = list(progress["history"])
    if history[-1]["step"] != step:
        batches = progress["train_batches"]
        history.append(row(step, progress["train_sum"] / batches if batches else None, progress["seconds"]))
        if on_row:
            on_row(cell, history)
    last = history[-1]
    evaluated = [r["eval_loss"] for r in history if r["eval_loss"] is not None]
    result = {
        "task": task.name, "cell": cell, "final_loss": last["eval_loss"], "baseline_loss": task.baseline_loss,
        "loss_ratio": None if last["eval_loss"] is None else last["eval_loss"] / task.baseline_loss,
        "final_train_loss": last["train_loss"], "best_loss": min(evaluated) if evaluated else None,
        "steps": last["step"], "seconds": round(progress["seconds"], 2), "diverged": progress["diverged"],
        "loss": task.loss_name, "seq_len": task.seq_len, "hidden": config.hidden, "batch": config.batch,
        "lr": config.lr, "orth_lr": config.orth_lr, "clip": config.clip, "tbptt": config.tbptt,
        "seed": config.seed, "backend": backend, "dtype": config.dtype, "device": str(device),
        "parameters": sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()),
        "optimizer_groups": group_summary(optimizer),
    }  # fmt: skip
    if task.has_accuracy:
        result["accuracy"] = last["accuracy"]
        result["accuracy_of"] = task.accuracy_name
    result["checkpoint"] = str(ckpt)
    return result


def train(config: TrainConfig) -> list[dict]:
    """Trains every cell of `config` (resolved) in turn; writes the metrics, results and chart after
    each evaluation; returns one result per cell (with the paths written)."""
    task = make_task(config.task, config.seq_len)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    rows_by_cell: dict[str, list[dict]] = {}
    paths = {}

    def on_row(cell, rows):
        rows_by_cell[cell] = list(rows)
        jsonl, csv_path, all_rows = write_rows(config.out, config.run_name, rows_by_cell)
        chart = learning_curve_chart(
            all_rows, config.out / f"{config.run_name}.png", baseline=task.baseline_loss,
            loss_name=task.loss_name, accuracy_name=task.accuracy_name if task.has_accuracy else None,
            title=f"{task.describe()}: hidden {config.hidden}, batch {config.batch}, RMSprop lr {config.lr:g} "
                  f"(orthogonal/unitary {config.orth_lr:g}), clip {config.clip:g}"
                  + (f", TBPTT {config.tbptt}" if config.tbptt else ""),
        )  # fmt: skip
        paths.update(jsonl=str(jsonl), csv=str(csv_path), chart=str(chart))

    results = []
    for cell in config.cells:
        result = train_cell(config, cell, task, on_row=on_row)
        result.update(paths)
        results.append(result)
        result["results"] = str(write_results(config.out, config.run_name, results))
    return results
