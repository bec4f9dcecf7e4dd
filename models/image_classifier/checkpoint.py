"""Checkpoints after every epoch, so that `train --resume` loses no finished epoch.

Weights and optimizer state are written as safetensors (no pickle); the rest (epoch, schedule,
history) goes to state.json, written last, so a half-written checkpoint is never read.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from models.image_classifier.config import TrainConfig
from shared.errors import UserError


class Checkpoint:
    """The state after each finished epoch, in `folder` (OUT/checkpoints)."""

    def __init__(self, folder: Path):
        self.dir = folder

    def write(self, model, opt, sched, cfg: TrainConfig, classes, history, phase) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        n = len(history)
        model_file, opt_file = f"epoch-{n}.model.safetensors", f"epoch-{n}.optimizer.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, self.dir / model_file)
        save_optimizer(opt, self.dir / opt_file)
        state = {
            "epoch": n,
            "phase": phase,
            "model": model_file,
            "optimizer": opt_file,
            "scheduler": sched.state_dict(),
            "schedule": cfg.schedule(),
            "classes": classes,
            "history": history,
        }
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.dir / "state.json")
        for old in self.dir.glob("epoch-*.safetensors"):
            if old.name not in (model_file, opt_file):
                old.unlink()

    def read(self, cfg: TrainConfig, classes: list[str]) -> dict | None:
        """The last state, if any; an error if it was made with other settings or classes."""
        path = self.dir / "state.json"
        if not path.is_file():
            tqdm.write(f"no checkpoint in {self.dir}: starting from the beginning")
            return None
        state = json.loads(path.read_text())
        saved = state["schedule"]
        changed = [
            f"{k} {saved.get(k)!r} -> {v!r}" for k, v in cfg.schedule().items() if saved.get(k) != v
        ]
        if state["classes"] != classes:
            changed.append("the classes in the data")
        if changed:
            raise UserError(
                f"The checkpoint in {self.dir} was made with other settings "
                f"({'; '.join(changed)}). "
                "Use the same options to resume, or train without --resume to start again."
            )
        return state


def save_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    """Optimizer state as safetensors (no pickle): tensors by '<param>.<key>', groups as JSON."""
    sd = opt.state_dict()
    tensors = {
        f"{i}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)).contiguous()
        for i, s in sd["state"].items()
        for k, v in s.items()
    }
    save_file(tensors, path, metadata={"param_groups": json.dumps(sd["param_groups"])})


def load_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    """The optimizer state written by `save_optimizer`, loaded into `opt`."""
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        groups = json.loads(f.metadata()["param_groups"])
        state: dict[int, dict] = defaultdict(dict)
        for key in f.keys():  # noqa: SIM118 (a safetensors file, not a dict)
            i, k = key.split(".", 1)
            state[int(i)][k] = f.get_tensor(key)
    opt.load_state_dict({"state": dict(state), "param_groups": groups})
