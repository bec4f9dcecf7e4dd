"""Training: fastai's `fine_tune` recipe written with torch, timm and accelerate.

`prepare` finds, checks and splits the data and creates the model (`Setup`); `train` runs a
frozen phase (head and norms) then an unfrozen one with discriminative learning rates, each
under a one-cycle schedule, with a checkpoint after every epoch; `finish` evaluates, plots and
exports the result to a Hub folder with its model card.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from timm.data import create_transform, resolve_data_config
from timm.optim import param_groups_layer_decay, param_groups_weight_decay
from torch import nn
from tqdm.auto import tqdm

from models.image_classifier.checkpoint import Checkpoint, load_optimizer
from models.image_classifier.config import ModelConfig, TrainConfig
from models.image_classifier.data import (
    ImageDataset,
    Items,
    describe_skips,
    find_items,
    split,
    verify_images,
)
from models.image_classifier.evaluate import evaluate_predictions, plot_history, predict_items
from models.image_classifier.export import base_model, export, write_card, write_examples
from models.image_classifier.onnx_export import describe, export_checked
from shared import device as devices
from shared import runtime
from shared.errors import ModelError, UserError


@dataclass
class Setup:
    """What training, lr_find and evaluation share: data, classes, model, transforms."""

    items: Items
    train_idx: list[int]
    valid_idx: list[int]
    classes: list[str]
    model: nn.Module
    data_config: dict[str, Any]

    def loader(
        self, idx: list[int], *, train: bool, bs: int, workers: int
    ) -> torch.utils.data.DataLoader:
        if train:
            tf = create_transform(**self.data_config, is_training=True, scale=(0.35, 1.0))
        else:
            tf = create_transform(**self.data_config)
        lookup = {c: i for i, c in enumerate(self.classes)}
        ds = ImageDataset(
            [self.items.paths[i] for i in idx], [lookup[self.items.labels[i]] for i in idx], tf
        )
        return torch.utils.data.DataLoader(
            ds,
            batch_size=bs,
            shuffle=train,
            drop_last=train and len(ds) > bs,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
        )


def prepare(cfg: ModelConfig, *, progress: bool = True) -> Setup:
    """Find, verify and split the data; create the model with a head for its classes.
    progress: show progress and the data summary (one process of several stays quiet)."""
    items = find_items(cfg.data, **cfg.label_options())
    if not items.paths:
        raise UserError(f"No labelled images found in {cfg.data}. " + describe_skips(items))
    items = verify_images(items, progress=progress)
    if (skips := describe_skips(items)) and progress:
        tqdm.write(skips)
    counts = Counter(items.labels)
    if len(counts) < 2:
        only = f" (only '{next(iter(counts))}')" if counts else ""
        raise UserError(
            f"A classifier needs at least two classes; {cfg.data} has {len(counts)}{only}."
        )
    train_idx, valid_idx = split(items, cfg.valid_pct, cfg.seed)
    if not valid_idx or not train_idx:
        raise UserError(
            f"Too few images ({len(items.paths)}) to make a training and a validation set."
        )
    missing = sorted(set(counts) - {items.labels[i] for i in train_idx})
    if missing:
        raise UserError(f"No training images for class(es): {', '.join(missing)}.")
    classes = sorted(counts)
    if progress:
        tqdm.write(
            f"{len(items.paths)} images, {len(classes)} classes, "
            f"{len(train_idx)} for training, {len(valid_idx)} for validation"
        )
    model = create_model(cfg.arch, len(classes), pretrained=cfg.pretrained)
    data_config = resolve_data_config({"input_size": (3, cfg.size, cfg.size)}, model=model)
    return Setup(items, train_idx, valid_idx, classes, model, data_config)


def create_model(arch: str, num_classes: int, *, pretrained: bool) -> nn.Module:
    """A timm model with a new head for `num_classes` (ImageNet weights when `pretrained`)."""
    name = arch.split("hf-hub:")[-1].split(".")[0]
    if not arch.startswith(("hf-hub:", "local-dir:")) and not timm.is_model(name):
        raise UserError(f"Unknown timm architecture '{arch}' (see timm.list_models()).")
    try:
        return timm.create_model(arch, pretrained=pretrained, num_classes=num_classes)
    except Exception as e:  # no network, no cache, a broken download: say what to do
        if not pretrained:
            raise
        raise ModelError(
            f"Could not get pretrained weights for {arch} ({type(e).__name__}: {e}). "
            "Check the network, or train from scratch with --no-pretrained."
        ) from e


def freeze(model: nn.Module) -> None:
    """Train only the head and the normalisation layers (fastai's `freeze` with train_bn)."""
    trainable = {id(p) for p in model.get_classifier().parameters()}
    norms = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
    for m in model.modules():
        if isinstance(m, norms):
            trainable |= {id(p) for p in m.parameters(recurse=False)}
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)


def param_groups(
    model: nn.Module, *, lr: float, lr_mult: float, wd: float, frozen: bool
) -> list[dict]:
    """AdamW groups: no weight decay on norms and biases; when unfrozen, learning rates spread
    geometrically from lr / lr_mult (stem) to lr (head), like fastai's `slice(lr/100, lr)`."""
    if frozen or lr_mult == 1:
        groups = param_groups_weight_decay(model, wd)
        scales = [1.0] * len(groups)
    else:
        # timm numbers the layers from the stem (its group_matcher) and scales layer i of n by
        # 0.5 ** (n - 1 - i); turn that depth into a geometric spread from lr / lr_mult to lr
        groups = param_groups_layer_decay(model, wd, layer_decay=0.5)
        depths = [round(math.log2(1 / g.pop("lr_scale"))) for g in groups]
        deepest = max(depths) or 1
        scales = [lr_mult ** (-d / deepest) for d in depths]
    for g, s in zip(groups, scales, strict=True):
        g["lr"] = lr * s
    return groups


def mixed_precision() -> str | None:
    """accelerate's mixed precision: bf16 or fp16 on a GPU, none on the CPU."""
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None  # `accelerate launch --mixed_precision ...` decides
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if devices.dtype(torch.device("cuda")) == torch.bfloat16 else "fp16"


class Stopped(Exception):
    """Training was stopped (the `stop` event was set) before it finished."""


def interruptible(model: nn.Module, stop: threading.Event) -> list:
    """Make `model` raise `Stopped` soon after `stop` is set: a check before every layer's
    forward and after every parameter's gradient, so even one long batch on a slow CPU stops
    within a fraction of a second. Returns the hook handles (`.remove()` them when done)."""

    def check(*_: Any) -> None:
        if stop.is_set():
            raise Stopped

    handles = [m.register_forward_pre_hook(check) for m in model.modules()]
    return handles + [p.register_hook(check) for p in model.parameters() if p.requires_grad]


def train(
    cfg: TrainConfig,
    callback: Callable[[dict], None] | None = None,
    *,
    on_step: Callable[[dict], None] | None = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Fine-tune (fastai's `fine_tune`), evaluate and export to `cfg.out`; return the metrics.

    One-cycle phases: `freeze_epochs` with only the head (and norms) training at `lr`, then
    `epochs` with everything training at lr/2 spread over the layers (early layers lower).
    A checkpoint after every epoch in `cfg.out/checkpoints`; `cfg.resume` continues from it.
    `callback(record)` is called after each epoch's checkpoint (progress reporting);
    `on_step({"epoch", "batch", "batches", "loss"})` after every batch (a live loss curve).
    `stop`: once set, training raises `Stopped` within a layer or two (see `interruptible`).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    accelerator = Accelerator(
        mixed_precision=mixed_precision(),
        gradient_accumulation_steps=cfg.accum,
        # the frozen phase leaves body parameters without gradients
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    main = accelerator.is_main_process
    set_seed(cfg.seed)
    s = prepare(cfg, progress=accelerator.is_local_main_process)
    hooks = interruptible(s.model, stop) if stop is not None else []
    ckpt = Checkpoint(cfg.out / "checkpoints")
    state = ckpt.read(cfg, s.classes) if cfg.resume else None
    if state:
        s.model.load_state_dict(load_file(ckpt.dir / state["model"]))
        accelerator.print(
            f"resuming after epoch {state['epoch']} of {cfg.freeze_epochs + cfg.epochs}"
        )
    history: list[dict] = state["history"] if state else []

    train_dl = s.loader(s.train_idx, train=True, bs=cfg.bs, workers=cfg.workers)
    valid_dl = s.loader(s.valid_idx, train=False, bs=cfg.bs * 2, workers=cfg.workers)
    model, train_dl, valid_dl = accelerator.prepare(s.model, train_dl, valid_dl)
    raw = accelerator.unwrap_model(model)
    loss_fn = nn.CrossEntropyLoss()
    steps_per_epoch = math.ceil(len(train_dl) / cfg.accum)
    phases = [
        ("frozen", cfg.freeze_epochs, cfg.lr, 0.99),
        ("unfrozen", cfg.epochs, cfg.lr / 2, 0.25),
    ]
    done, total = len(history), cfg.freeze_epochs + cfg.epochs
    start = done  # the first epoch this run trains (after a resume, not the first one)
    first = 0  # global index of the phase's first epoch
    for phase, n_epochs, lr, pct_start in phases:
        if n_epochs == 0 or done >= first + n_epochs:
            first += n_epochs
            continue
        if phase == "frozen":
            freeze(raw)
        else:
            raw.requires_grad_(True)
        groups = param_groups(raw, lr=lr, lr_mult=cfg.lr_mult, wd=cfg.wd, frozen=phase == "frozen")
        opt = torch.optim.AdamW(groups, lr=lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=[g["lr"] for g in groups],
            total_steps=n_epochs * steps_per_epoch,
            pct_start=pct_start,
            div_factor=25,
            final_div_factor=1e5,
        )
        if state and state["phase"] == phase and done > first:  # resume inside this phase
            load_optimizer(opt, ckpt.dir / state["optimizer"])
            sched.load_state_dict(state["scheduler"])
        opt = accelerator.prepare(opt)
        for epoch in range(max(done, first), first + n_epochs):
            set_seed(cfg.seed + epoch)  # same batches and augmentations after a resume
            t0 = time.time()
            model.train()
            losses, seen = [], 0
            bar = tqdm(
                train_dl,
                desc=f"epoch {epoch + 1}/{total} ({phase})",
                leave=False,
                disable=not accelerator.is_local_main_process,
            )
            for x, y in bar:
                with accelerator.accumulate(model):
                    loss = loss_fn(model(x), y)
                    accelerator.backward(loss)
                    opt.step()
                    at_end = sched.last_epoch >= sched.total_steps - 1  # stay at the minimum
                    if accelerator.sync_gradients and not opt.step_was_skipped and not at_end:
                        sched.step()
                    opt.zero_grad(set_to_none=True)
                losses.append(loss.item())
                seen += len(y) * accelerator.num_processes
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
                if on_step:
                    info = {"epoch": epoch + 1, "batch": len(losses), "batches": len(train_dl)}
                    on_step(info | {"loss": losses[-1]})
            train_seconds = time.time() - t0
            record = {
                "epoch": epoch + 1,
                "phase": phase,
                "train_loss": float(np.mean(losses)),
                **validate(model, valid_dl, accelerator),
                "seconds": round(time.time() - t0, 1),
                "images_per_s": round(seen / train_seconds, 1),
                "step_losses": losses,
            }
            history.append(record)
            if main:
                ckpt.write(raw, opt.optimizer, sched, cfg, s.classes, history, phase)
            accelerator.wait_for_everyone()
            accelerator.print(_epoch_line(record, first_line=epoch == start))
            if callback:
                callback({k: v for k, v in record.items() if k != "step_losses"})
        done = first = first + n_epochs

    metrics: dict[str, Any] = {}
    if main:
        metrics = finish(cfg, s, raw, history)
    for hook in hooks:
        hook.remove()
    if main:
        shutil.rmtree(ckpt.dir, ignore_errors=True)  # the exported model is the result now
    accelerator.wait_for_everyone()
    return metrics


@torch.no_grad()
def validate(model: nn.Module, dl, accelerator) -> dict[str, float]:
    """Validation loss, accuracy and error rate, gathered over all processes."""
    model.eval()
    losses, correct, n = 0.0, 0, 0
    for x, y in dl:
        logits, y = accelerator.gather_for_metrics((model(x), y))
        losses += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    acc = correct / max(n, 1)
    return {"valid_loss": losses / max(n, 1), "accuracy": acc, "error_rate": 1 - acc}


def _epoch_line(r: dict, first_line: bool) -> str:
    head = "epoch  phase     train_loss  valid_loss  error_rate  accuracy    time\n"
    row = (
        f"{r['epoch']:>5}  {r['phase']:<8}  {r['train_loss']:>10.4f}  {r['valid_loss']:>10.4f}  "
        f"{r['error_rate']:>10.4f}  {r['accuracy']:>8.4f}  {r['seconds']:>5.0f}s"
    )
    return head + row if first_line else row


def finish(cfg: TrainConfig, s: Setup, model: nn.Module, history: list[dict]) -> dict[str, Any]:
    """After training: evaluate, plot, export, examples, model card, metrics.json."""
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    valid_paths = [s.items.paths[i] for i in s.valid_idx]
    lookup = {c: i for i, c in enumerate(s.classes)}
    targets = [lookup[s.items.labels[i]] for i in s.valid_idx]
    transform = create_transform(**s.data_config)
    probs = predict_items(model, transform, valid_paths, bs=cfg.bs, workers=cfg.workers)
    report = evaluate_predictions(probs, targets, s.classes, valid_paths, out)
    plot_history(history, out / "training.png")
    export(model, out, s.classes, s.data_config)
    write_examples(
        valid_paths, [s.items.labels[i] for i in s.valid_idx], out / "examples", cfg.examples
    )
    last = history[-1]
    metrics = {
        "accuracy": report["accuracy"],
        "error_rate": report["error_rate"],
        "valid_loss": report["valid_loss"],
        "train_loss": last["train_loss"],
        "epochs": len(history),
        "n_train": len(s.train_idx),
        "n_valid": len(s.valid_idx),
        "classes": s.classes,
        "per_class_accuracy": report["per_class_accuracy"],
        "most_confused": report["most_confused"],
        "confusion_matrix": report["confusion_matrix"],
        "history": [{k: v for k, v in r.items() if k != "step_losses"} for r in history],
        "skipped": {k: len(v) for k, v in s.items.skipped.items()},
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if cfg.onnx:  # the CPU fast path, shipped only if it passes its accuracy guard
        size = s.data_config["input_size"][1:]
        ship = partial(export_checked, model, out, size, transform, valid_paths, probs)
        if guard := runtime.exporting(out, ship, what=cfg.arch):
            tqdm.write(describe(guard))
    write_card(cfg, s.classes, metrics, base_model(cfg, s.model))
    keys = ("accuracy", "error_rate", "valid_loss", "train_loss", "epochs", "n_train", "n_valid")
    return {k: metrics[k] for k in keys}
