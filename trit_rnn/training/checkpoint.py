"""Checkpoints: everything a run needs to continue exactly as if it had not stopped.

Contents: the model's and the optimizer's state_dict, the global torch RNG state (and CUDA's on a
GPU), the data generator's state, the step, the metric history so far, the running training-loss
sums since the last evaluation, the seconds spent, and the settings the run must keep
(TrainConfig.resume_view) so that a resume under different settings is refused. Written to a
temporary file and renamed, so an interrupted write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

FORMAT = 1


def checkpoint_path(out: Path, run_name: str, cell: str) -> Path:
    return Path(out) / "checkpoints" / f"{run_name}_{cell}.pt"


def save_checkpoint(
    path: Path, *, model, optimizer, data_generator, progress: dict, config_view: dict, cell: str
):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "cell": cell,
        "config": config_view,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "data_rng": data_generator.get_state(),
        "progress": progress,
    }
    tmp = path.with_suffix(".pt.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(
    path: Path, *, model, optimizer, data_generator, config_view: dict, cell: str, steps: int
) -> dict:
    """Restores model, optimizer and RNG states in place; returns the saved progress dict."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if payload.get("format") != FORMAT or payload.get("cell") != cell:
        raise ValueError(f"--resume: {path} is not a checkpoint of cell {cell!r}")
    saved = payload["config"]
    changed = [f"{key} ({saved.get(key)!r} there, {value!r} now)" for key, value in config_view.items()
               if saved.get(key) != value]  # fmt: skip
    if changed:
        raise ValueError(f"--resume: {path} was written with other settings: {', '.join(changed)}")
    progress = payload["progress"]
    if progress["step"] > steps:
        raise ValueError(f"--steps {steps}: the checkpoint {path} is already at step {progress['step']}")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["torch_rng"])
    if payload["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    data_generator.set_state(payload["data_rng"])
    return progress
