"""Image classifier family: fine-tune a timm model on your photos, export it, serve it.

The course's first project (lessons 1-2) written with torch, timm and accelerate:

1. read images safely (`read_image`): one function for training data and user uploads;
2. find labelled data (`find_items`): class folders, a CSV, or labels from file names;
3. train with fastai's `fine_tune` recipe (`train`): a frozen epoch, then discriminative
   learning rates under a one-cycle schedule; checkpoints every epoch and resumes;
4. `lr_find`, the exponential learning-rate range test;
5. evaluate (`evaluate_predictions`): confusion matrix, per-class accuracy, top losses;
6. export a timm Hub folder (`export`) that `timm.create_model("hf-hub:...")` loads as is;
7. serve it (`load` -> `Classifier`): top-k, test-time augmentation, Grad-CAM, "not sure".
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import re
import shutil
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from safetensors.torch import load_file, save_file
from timm.data import create_transform, resolve_data_config
from timm.data.transforms import str_to_interp_mode
from timm.optim import param_groups_layer_decay, param_groups_weight_decay
from torch import nn
from tqdm.auto import tqdm

from shared import device as devices
from shared.registry import ModelError

DEFAULT_ARCH = "convnext_tiny.fb_in22k"  # fine-tunes best in the course's model comparison
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
MAX_PIXELS = 8192 * 8192  # refuse bigger images before decoding them (decompression bombs)
MIN_SIDE = 16  # smaller images carry too little to classify
# Oxford-IIIT pets: the breed is the file name before the last "_" ("great_pyrenees_12.jpg").
PETS_BREED = r"^(.+)_\d+\.\w+$"
VALID_VALUES = {"valid", "val", "validation", "test", "true", "1", "yes"}
TOP_K = 5


# --- 1. Reading images ----------------------------------------------------------------------


def read_image(path: str | Path, *, min_side: int | None = None) -> tuple[Image.Image, str | None]:
    """Open an image file as RGB, or raise ValueError with a message for a person.

    Checks the size from the header before decoding anything, so a decompression bomb is
    refused without allocating it. Converts every mode (CMYK, 16-bit, palette, grayscale,
    transparency over white) and applies the EXIF rotation of phone photos. Animated images
    give their first frame. `min_side`: JPEGs may decode at a reduced scale (DCT scaling) as
    long as both sides stay at least this big; much faster for large photos.
    Returns the image and a note for the user (or None).
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise ValueError(f"{name}: file not found.")
    if path.stat().st_size == 0:
        raise ValueError(f"{name} is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check ourselves
            im = Image.open(path)
    except Image.DecompressionBombError as e:  # over twice PIL's own limit: refused in open()
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        raise ValueError(_too_big(name, int(pixels.group(1)) if pixels else 0)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ValueError(
            f"{name} is not an image this demo can read (use JPEG, PNG, GIF, WebP, BMP or TIFF)."
        ) from None
    with im:
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise ValueError(_too_big(name, w * h, (w, h)))
        if min(w, h) < MIN_SIDE:
            raise ValueError(
                f"{name} is only {w}×{h} pixels; the classifier needs at least "
                f"{MIN_SIDE} pixels on each side."
            )
        frames = getattr(im, "n_frames", 1)
        note = (
            f"{name} is animated ({frames} frames): classified its first frame."
            if frames > 1
            else None
        )
        if min_side and im.format == "JPEG":
            im.draft("RGB", (min_side, min_side))
        try:
            im.load()
            orientation = im.getexif().get(0x0112, 1)  # phone photos are stored sideways
            if orientation != 1:
                im = ImageOps.exif_transpose(im)
            return _to_rgb(im), note
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ValueError(
                f"{name} is truncated or corrupt and cannot be decoded ({e})."
            ) from None


def _too_big(name: str, pixels: int, size: tuple[int, int] | None = None) -> str:
    dims = f"{size[0]}×{size[1]} pixels, " if size else ""
    what = f" is too large ({dims}{pixels / 1e6:.0f} megapixels)" if pixels else " is too large"
    return (
        f"{name}{what}; the limit is {MAX_PIXELS / 1e6:.0f} megapixels. "
        "Please upload a smaller image."
    )


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit or float grayscale: scale to 8 bits instead of clipping to white
        a = np.asarray(im, dtype=np.float32)
        if im.mode == "F" and a.max() <= 1.0:
            a = a * 255
        elif a.max() > 255:
            a = a / 257
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode == "P" and "transparency" in im.info
    ):
        rgba = im.convert("RGBA")
        out = Image.new("RGB", im.size, (255, 255, 255))  # transparent areas become white
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if im.mode == "RGB":
        return im
    try:
        return im.convert("RGB")
    except ValueError:
        raise ValueError(f"images in colour mode {im.mode} are not supported.") from None


# --- 2. Data --------------------------------------------------------------------------------


@dataclass
class Items:
    """Labelled images: paths, labels, which are validation (None: split at random), skips."""

    paths: list[Path]
    labels: list[str]
    valid: list[bool] | None = None
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> file names

    def skip(self, reason: str, what: str) -> None:
        self.skipped.setdefault(reason, []).append(what)


def find_items(
    data: str | Path,
    *,
    labels: str = "auto",
    label_re: str = PETS_BREED,
    path_col: str = "path",
    label_col: str = "label",
    split_col: str | None = None,
) -> Items:
    """Find labelled images in `data`.

    labels: "folder" (a folder per class; `train/` + `valid/` folders give the split),
    "csv" (`data` is a CSV of path,label[,split]), "filename" (the first group of `label_re`
    applied to each file name; default: Oxford pets breeds), "species" (Oxford pets: cat
    when the name starts with a capital, else dog), or "auto" (csv for a .csv file, folder
    when `data` has sub-folders with images, else filename).
    """
    data = Path(data)
    if not data.exists():
        raise ValueError(f"{data} does not exist.")
    if labels == "auto":
        labels = _guess_labels(data)
    if labels == "csv":
        return _from_csv(data, path_col, label_col, split_col)
    if not data.is_dir():
        raise ValueError(f"{data} is not a folder (pass a CSV file with --labels csv).")
    if labels == "folder":
        return _from_folders(data)
    if labels in ("filename", "species"):
        items = Items([], [])
        pattern = re.compile(label_re)
        for p in _images_under(data, items):
            if labels == "species":
                items.paths.append(p)
                items.labels.append("cat" if p.name[:1].isupper() else "dog")
            elif m := pattern.match(p.name):
                items.paths.append(p)
                items.labels.append(m.group(1) if m.groups() else m.group(0))
            else:
                items.skip(f"name does not match {label_re}", p.name)
        return items
    raise ValueError(f"Unknown label source '{labels}': use folder, csv, filename or species.")


def _guess_labels(data: Path) -> str:
    if data.is_file():
        return "csv"
    subdirs = [d for d in data.iterdir() if d.is_dir() and not d.name.startswith(".")]
    return "folder" if any(_has_images(d) for d in subdirs) else "filename"


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTS for p in folder.rglob("*"))


def _images_under(folder: Path, items: Items) -> list[Path]:
    found = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        if p.suffix.lower() in IMAGE_EXTS:
            found.append(p)
        else:
            items.skip("not an image file", p.name)
    return found


def _from_folders(data: Path) -> Items:
    items = Items([], [], [])
    split = {d.name.lower(): d for d in data.iterdir() if d.is_dir()}
    valid_dir = next((split[n] for n in ("valid", "val", "validation") if n in split), None)
    roots = (
        [(split["train"], False), (valid_dir, True)]
        if "train" in split and valid_dir
        else [(data, False)]
    )
    for root, is_valid in roots:
        for class_dir in sorted(
            d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
        ):
            files = _images_under(class_dir, items)
            if not files:
                items.skip("empty class folder", str(class_dir.relative_to(data)))
            for p in files:
                items.paths.append(p)
                items.labels.append(class_dir.name)
                items.valid.append(is_valid)
        for p in root.iterdir():  # loose files next to the class folders have no label
            if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
                items.skip("not in a class folder", p.name)
    if len(roots) == 1:
        items.valid = None  # no given split: random
    return items


def _from_csv(path: Path, path_col: str, label_col: str, split_col: str | None) -> Items:
    items = Items([], [], [] if split_col else None)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        for col in (path_col, label_col, split_col):
            if col and col not in cols:
                raise ValueError(f"{path.name} has no column '{col}' (columns: {', '.join(cols)}).")
        for row in reader:
            p, label = (path.parent / row[path_col].strip()), row[label_col].strip()
            if not label:
                items.skip("no label in the CSV", p.name)
            elif p.suffix.lower() not in IMAGE_EXTS:
                items.skip("not an image file", p.name)
            else:
                items.paths.append(p)
                items.labels.append(label)
                if split_col:
                    items.valid.append(row[split_col].strip().lower() in VALID_VALUES)
    return items


def verify_images(items: Items, *, workers: int = 4, progress: bool = True) -> Items:
    """Keep the images that decode (the course's `verify_images`); count the others as skipped."""

    def check(p: Path) -> str | None:
        try:
            read_image(p, min_side=MIN_SIDE)  # JPEGs decode at 1/8 scale: fast, still complete
        except ValueError as e:
            return str(e)
        return None

    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        problems = list(
            tqdm(
                pool.map(check, items.paths),
                total=len(items.paths),
                desc="verify images",
                disable=not progress,
                leave=False,
            )
        )
    keep = [i for i, problem in enumerate(problems) if problem is None]
    out = Items(
        [items.paths[i] for i in keep],
        [items.labels[i] for i in keep],
        [items.valid[i] for i in keep] if items.valid is not None else None,
        dict(items.skipped),
    )
    for problem in problems:
        if problem is not None:
            out.skip("unreadable", problem)
    return out


def split(items: Items, valid_pct: float = 0.2, seed: int = 42) -> tuple[list[int], list[int]]:
    """Train and validation indices: the given split, else a seeded split stratified by label."""
    if items.valid is not None and any(items.valid):
        valid = [i for i, v in enumerate(items.valid) if v]
        return [i for i, v in enumerate(items.valid) if not v], valid
    rng = random.Random(seed)
    by_label = defaultdict(list)
    for i, label in enumerate(items.labels):
        by_label[label].append(i)
    train, valid = [], []
    for label in sorted(by_label):
        idx = by_label[label]
        rng.shuffle(idx)
        n = round(len(idx) * valid_pct)
        if valid_pct > 0 and len(idx) >= 2:
            n = min(max(n, 1), len(idx) - 1)  # every class in both sets when it can be
        valid += idx[:n]
        train += idx[n:]
    return sorted(train), sorted(valid)


def describe_skips(items: Items) -> str:
    """One line per reason: how many files were skipped, with a few examples."""
    lines = []
    for reason, what in items.skipped.items():
        examples = "; ".join(what[:3]) + ("; ..." if len(what) > 3 else "")
        lines.append(f"skipped {len(what)} ({reason}): {examples}")
    return "\n".join(lines)


class ImageDataset(torch.utils.data.Dataset):
    """(transformed image, class index) pairs read with `read_image`."""

    def __init__(self, paths: Sequence[Path], targets: Sequence[int], transform: Callable):
        self.paths, self.targets, self.transform = list(paths), list(targets), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, _ = read_image(self.paths[i])
        return self.transform(image), self.targets[i]


# --- 3. Training ----------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Everything a training run depends on (the CLI options of `train image-classifier`)."""

    data: Path
    out: Path = Path("out/image-classifier")
    arch: str = DEFAULT_ARCH
    pretrained: bool = True
    epochs: int = 3  # unfrozen epochs, after the frozen ones
    freeze_epochs: int | None = None  # None: 1 when pretrained, 0 from scratch
    lr: float = 2e-3
    lr_mult: float | None = None  # early layers get lr / lr_mult; None: 100 pretrained, 1 scratch
    wd: float = 0.01
    size: int = 224
    bs: int = 64
    accum: int = 1  # gradient accumulation steps
    valid_pct: float = 0.2
    seed: int = 42
    labels: str = "auto"
    label_re: str = PETS_BREED
    path_col: str = "path"
    label_col: str = "label"
    split_col: str | None = None
    workers: int | None = None  # None: up to 8 data loader processes
    resume: bool = False
    examples: int = 6  # validation images copied into the model folder for the Space
    dataset_name: str | None = None
    dataset_id: str | None = None  # a Hub dataset id for the model card
    repo_id: str | None = None  # where it will be pushed, for the model card's usage

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        if self.freeze_epochs is None:
            self.freeze_epochs = 1 if self.pretrained else 0
        if self.lr_mult is None:
            self.lr_mult = 100.0 if self.pretrained else 1.0
        if self.workers is None:
            self.workers = min(8, os.cpu_count() or 1)
        if self.epochs < 0 or self.freeze_epochs < 0 or self.epochs + self.freeze_epochs < 1:
            raise ValueError("Train for at least one epoch (--epochs).")
        if not 0 < self.valid_pct < 1:
            raise ValueError("--valid-pct must be between 0 and 1.")

    def schedule(self) -> dict[str, Any]:
        """The settings a checkpoint must share to be resumed."""
        keys = (
            "arch",
            "pretrained",
            "epochs",
            "freeze_epochs",
            "lr",
            "lr_mult",
            "wd",
            "size",
            "bs",
            "accum",
            "valid_pct",
            "seed",
        )
        return {k: getattr(self, k) for k in keys}


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


def prepare(cfg: TrainConfig, *, progress: bool = True) -> Setup:
    """Find, verify and split the data; create the model with a head for its classes.
    progress: show progress and the data summary (one process of several stays quiet)."""
    items = find_items(
        cfg.data,
        labels=cfg.labels,
        label_re=cfg.label_re,
        path_col=cfg.path_col,
        label_col=cfg.label_col,
        split_col=cfg.split_col,
    )
    if not items.paths:
        raise ValueError(f"No labelled images found in {cfg.data}. " + describe_skips(items))
    items = verify_images(items, progress=progress)
    if (skips := describe_skips(items)) and progress:
        tqdm.write(skips)
    counts = Counter(items.labels)
    if len(counts) < 2:
        only = f" (only '{next(iter(counts))}')" if counts else ""
        raise ValueError(
            f"A classifier needs at least two classes; {cfg.data} has {len(counts)}{only}."
        )
    train_idx, valid_idx = split(items, cfg.valid_pct, cfg.seed)
    if not valid_idx or not train_idx:
        raise ValueError(
            f"Too few images ({len(items.paths)}) to make a training and a validation set."
        )
    missing = sorted(set(counts) - {items.labels[i] for i in train_idx})
    if missing:
        raise ValueError(f"No training images for class(es): {', '.join(missing)}.")
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
        raise ValueError(f"Unknown timm architecture '{arch}' (see timm.list_models()).")
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


def _mixed_precision() -> str | None:
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None  # `accelerate launch --mixed_precision ...` decides
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if devices.dtype(torch.device("cuda")) == torch.bfloat16 else "fp16"


def train(cfg: TrainConfig, callback: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Fine-tune (fastai's `fine_tune`), evaluate and export to `cfg.out`; return the metrics.

    One-cycle phases: `freeze_epochs` with only the head (and norms) training at `lr`, then
    `epochs` with everything training at lr/2 spread over the layers (early layers lower).
    A checkpoint after every epoch in `cfg.out/checkpoints`; `cfg.resume` continues from it.
    `callback(record)` is called after each epoch's checkpoint (progress reporting).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    accelerator = Accelerator(
        mixed_precision=_mixed_precision(),
        gradient_accumulation_steps=cfg.accum,
        # the frozen phase leaves body parameters without gradients
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    main = accelerator.is_main_process
    set_seed(cfg.seed)
    s = prepare(cfg, progress=accelerator.is_local_main_process)
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


class Checkpoint:
    """The state after each finished epoch: weights and optimizer state as safetensors, the
    rest (epoch, schedule, history) in state.json, written last so a half-written checkpoint
    is never read."""

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
            raise ValueError(
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
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        groups = json.loads(f.metadata()["param_groups"])
        state: dict[int, dict] = defaultdict(dict)
        for key in f.keys():  # noqa: SIM118 (a safetensors file, not a dict)
            i, k = key.split(".", 1)
            state[int(i)][k] = f.get_tensor(key)
    opt.load_state_dict({"state": dict(state), "param_groups": groups})


# --- 4. Learning-rate finder ----------------------------------------------------------------


def lr_find(
    cfg: TrainConfig,
    *,
    start: float = 1e-7,
    end: float = 10.0,
    num_it: int = 100,
    plot: Path | None = None,
) -> dict[str, Any]:
    """Leslie Smith's range test, as fastai's `lr_find`: raise the learning rate exponentially
    batch by batch from `start` to `end`, record the smoothed loss, stop when it explodes.
    Returns suggested learning rates and writes the loss-vs-LR plot."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(mixed_precision=_mixed_precision())
    set_seed(cfg.seed)
    s = prepare(cfg)
    if cfg.freeze_epochs:
        freeze(s.model)  # the learner as fine_tune starts it
    dl = s.loader(s.train_idx, train=True, bs=cfg.bs, workers=cfg.workers)
    groups = param_groups(s.model, lr=start, lr_mult=1, wd=cfg.wd, frozen=True)
    opt = torch.optim.AdamW(groups, lr=start)
    model, opt, dl = accelerator.prepare(s.model, opt, dl)
    model.train()
    lrs, losses, avg, best = [], [], 0.0, math.inf
    batches = iter(dl)
    for i in tqdm(range(num_it), desc="lr_find", leave=False):
        lr = start * (end / start) ** (i / (num_it - 1))
        for g in opt.param_groups:
            g["lr"] = lr
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(dl)
            x, y = next(batches)
        loss = F.cross_entropy(model(x), y)
        accelerator.backward(loss)
        opt.step()
        opt.zero_grad(set_to_none=True)
        avg = 0.98 * avg + 0.02 * loss.item()
        smooth = avg / (1 - 0.98 ** (i + 1))
        if not math.isfinite(smooth) or (i > 10 and smooth > 4 * best):
            break
        best = min(best, smooth)
        lrs.append(lr)
        losses.append(smooth)
    if len(lrs) < 5:
        raise ValueError("The loss exploded at once: lower the start of the range test.")
    result = suggest_lr(lrs, losses)
    plot = plot or cfg.out / "lr_find.png"
    _plot_lr_find(lrs, losses, result, plot)
    return {**result, "plot": str(plot)}


def suggest_lr(lrs: Sequence[float], losses: Sequence[float]) -> dict[str, float]:
    """fastai's suggestions: 'valley' (the default: in the longest stretch where the loss falls,
    a point 1/2 of the way down), 'minimum' (a tenth of the LR with the lowest loss), and
    'steep' (the steepest descent)."""
    n = len(losses)
    run = [1] * n  # longest decreasing run of losses ending at each point
    start_i = end_i = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[end_i] < run[i]:
            end_i, start_i = i, i - run[i]
    third = (end_i - start_i) / 3
    valley = lrs[min(n - 1, start_i + int(third) + int(third / 2))]
    minimum = lrs[int(np.argmin(losses))] / 10
    slopes = np.gradient(np.asarray(losses), np.log(np.asarray(lrs)))
    steep = lrs[int(np.argmin(slopes))]
    return {"valley": float(valley), "minimum": float(minimum), "steep": float(steep)}


def _plot_lr_find(lrs, losses, result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    for (name, lr), marker in zip(result.items(), "ovs", strict=False):
        ax.plot(lr, np.interp(np.log(lr), np.log(lrs), losses), marker, label=f"{name}: {lr:.1e}")
    ax.set(
        xscale="log", xlabel="learning rate", ylabel="loss (smoothed)", title="Learning rate finder"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- 5. Evaluation --------------------------------------------------------------------------


@torch.no_grad()
def predict_items(
    model: nn.Module, transform, paths: Sequence[Path], *, bs: int = 64, workers: int = 0
) -> torch.Tensor:
    """Class probabilities (N, C) for image files, in batches."""
    dl = torch.utils.data.DataLoader(
        ImageDataset(paths, [0] * len(paths), transform), batch_size=bs, num_workers=workers
    )
    dev = next(model.parameters()).device
    model.eval()
    out = [
        model(x.to(dev)).float().softmax(1).cpu() for x, _ in tqdm(dl, desc="predict", leave=False)
    ]
    return torch.cat(out)


def evaluate_predictions(
    probs: torch.Tensor,
    targets: Sequence[int],
    classes: list[str],
    paths: Sequence[Path],
    out: Path,
    *,
    top_losses: int = 9,
) -> dict[str, Any]:
    """Accuracy, loss, per-class accuracy; confusion-matrix and top-losses PNGs in `out`."""
    targets_t = torch.as_tensor(list(targets))
    preds = probs.argmax(1)
    losses = F.nll_loss(probs.clamp_min(1e-12).log(), targets_t, reduction="none")
    k = len(classes)
    cm = torch.bincount(targets_t * k + preds, minlength=k * k).reshape(k, k).numpy()
    per_class = {c: float(cm[i, i] / cm[i].sum()) for i, c in enumerate(classes) if cm[i].sum()}
    acc = float((preds == targets_t).float().mean())
    out.mkdir(parents=True, exist_ok=True)
    _plot_confusion(cm, classes, out / "confusion_matrix.png")
    order = losses.argsort(descending=True).tolist()
    wrong = [i for i in order if preds[i] != targets_t[i]][:top_losses] or order[:top_losses]
    _plot_top_losses(
        [
            (
                paths[i],
                classes[preds[i]],
                classes[targets_t[i]],
                float(losses[i]),
                float(probs[i, preds[i]]),
            )
            for i in wrong
        ],
        out / "top_losses.png",
    )
    confused = sorted(
        (
            (classes[i], classes[j], int(cm[i, j]))
            for i in range(k)
            for j in range(k)
            if i != j and cm[i, j]
        ),
        key=lambda t: -t[2],
    )[:10]
    return {
        "accuracy": acc,
        "error_rate": 1 - acc,
        "valid_loss": float(losses.mean()),
        "n_images": len(targets_t),
        "per_class_accuracy": per_class,
        "most_confused": [{"actual": a, "predicted": p, "count": c} for a, p, c in confused],
        "confusion_matrix": cm.tolist(),
    }


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_confusion(cm: np.ndarray, classes: list[str], path: Path) -> None:
    plt = _plt()
    k = len(classes)
    side = min(16, 2 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(cm, cmap="Blues")
    ax.set(
        xticks=range(k),
        yticks=range(k),
        xlabel="predicted",
        ylabel="actual",
        title="Confusion matrix",
    )
    ax.set_xticklabels(classes, rotation=90, fontsize=8 if k > 12 else 10)
    ax.set_yticklabels(classes, fontsize=8 if k > 12 else 10)
    if k <= 40:
        for i in range(k):
            for j in range(k):
                color = "white" if cm[i, j] > cm.max() / 2 else "black"
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    color=color,
                    fontsize=7 if k > 12 else 10,
                )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_top_losses(rows: list[tuple], path: Path) -> None:
    """The most confidently wrong images: where to look for mislabelled or odd data."""
    plt = _plt()
    n = len(rows)
    cols = min(3, n) or 1
    fig, axes = plt.subplots(
        math.ceil(n / cols) or 1, cols, figsize=(4 * cols, 4.3 * math.ceil(n / cols)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, (p, pred, actual, loss, prob) in zip(axes.flat, rows, strict=False):
        image, _ = read_image(p)
        image.thumbnail((320, 320))
        ax.imshow(image)
        ax.set_title(f"{pred} / {actual}\nloss {loss:.2f}, p {prob:.2f}", fontsize=10)
    fig.suptitle("Top losses: predicted / actual, loss, probability of the prediction")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_history(history: list[dict], path: Path) -> None:
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    steps, vx = [], []
    for r in history:
        start = len(steps)
        steps += r["step_losses"]
        vx.append(start + len(r["step_losses"]))
    a.plot(range(1, len(steps) + 1), steps, alpha=0.35, label="train (batch)")
    smooth = np.convolve(steps, np.ones(5) / 5, mode="valid") if len(steps) >= 5 else steps
    a.plot(range(len(steps) - len(smooth) + 1, len(steps) + 1), smooth, label="train (smoothed)")
    a.plot(vx, [r["valid_loss"] for r in history], "o-", label="valid")
    a.set(xlabel="batch", ylabel="loss", title="Loss")
    a.legend()
    b.plot([r["epoch"] for r in history], [r["error_rate"] for r in history], "o-")
    b.set(xlabel="epoch", ylabel="error rate", title="Validation error rate", ylim=(0, None))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- 6. Export ------------------------------------------------------------------------------


def export(model: nn.Module, folder: Path, classes: list[str], data_config: dict) -> Path:
    """Write `folder` in timm's Hub layout: config.json (architecture, num_classes, label_names,
    pretrained_cfg with this model's preprocessing) and model.safetensors."""
    timm.models.save_for_hf(
        model,
        folder,
        model_config={"label_names": list(classes)},
        safe_serialization=True,
        data_config=dict(data_config),
    )
    return folder


def _write_examples(
    paths: Sequence[Path], labels: Sequence[str], folder: Path, n: int
) -> list[Path]:
    """A few validation images (round robin over classes), downsized, for the Space's examples."""
    by_label = defaultdict(list)
    for p, label in zip(paths, labels, strict=True):
        by_label[label].append(p)
    chosen: list[tuple[Path, str]] = []
    while len(chosen) < n and any(by_label.values()):
        for label in sorted(by_label):
            if by_label[label] and len(chosen) < n:
                chosen.append((by_label[label].pop(0), label))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    written = []
    for i, (p, label) in enumerate(chosen, 1):
        image, _ = read_image(p)
        image.thumbnail((512, 512))
        dest = folder / f"{i:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '_', label)}.jpg"
        image.save(dest, quality=90)
        written.append(dest)
    return written


def finish(cfg: TrainConfig, s: Setup, model: nn.Module, history: list[dict]) -> dict[str, Any]:
    """After training: evaluate, plot, export, examples, model card, metrics.json."""
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    valid_paths = [s.items.paths[i] for i in s.valid_idx]
    lookup = {c: i for i, c in enumerate(s.classes)}
    targets = [lookup[s.items.labels[i]] for i in s.valid_idx]
    probs = predict_items(
        model, create_transform(**s.data_config), valid_paths, bs=cfg.bs, workers=cfg.workers
    )
    report = evaluate_predictions(probs, targets, s.classes, valid_paths, out)
    _plot_history(history, out / "training.png")
    export(model, out, s.classes, s.data_config)
    _write_examples(
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
    _write_card(cfg, s, metrics)
    return {
        k: metrics[k]
        for k in (
            "accuracy",
            "error_rate",
            "valid_loss",
            "train_loss",
            "epochs",
            "n_train",
            "n_valid",
        )
    }


def _write_card(cfg: TrainConfig, s: Setup, metrics: dict) -> None:
    from shared import hub

    base = None
    if cfg.pretrained:
        base = (s.model.pretrained_cfg.get("hf_hub_id") or f"timm/{cfg.arch}").removeprefix(
            "hf-hub:"
        )
    dataset = cfg.dataset_name or cfg.data.resolve().name
    repo = cfg.repo_id or "<your-name>/<this-repo>"
    rows = "\n".join(
        f"| {r['epoch']} | {r['phase']} | {r['train_loss']:.4f} | {r['valid_loss']:.4f} | "
        f"{r['error_rate']:.4f} | {r['seconds']:.0f}s |"
        for r in metrics["history"]
    )
    per_class = "\n".join(f"| {c} | {a:.3f} |" for c, a in metrics["per_class_accuracy"].items())
    frozen = (
        f"{cfg.freeze_epochs} epoch(s) with the body frozen (head and norm layers "
        f"training, one-cycle at lr {cfg.lr:g}), then "
        if cfg.freeze_epochs
        else ""
    )
    accum = f" x {cfg.accum} accumulation steps" if cfg.accum > 1 else ""
    base_line = f"[{base}](https://huggingface.co/{base})" if base else f"`{cfg.arch}` from scratch"
    more = " ..." if len(s.classes) > 40 else ""
    training = f"""Fine-tuned with the fast.ai `fine_tune` recipe, written with timm, torch and
accelerate: {frozen}{cfg.epochs} epoch(s) with every layer training under a one-cycle schedule
at lr {cfg.lr / 2:g} for the head, with discriminative learning rates down to
{cfg.lr / 2 / cfg.lr_mult:g} for the stem; AdamW (weight decay {cfg.wd:g}), batch size
{cfg.bs}{accum}, {cfg.size}px random-resized crops and flips.

- Base model: {base_line}
- Data: `{dataset}`, {metrics["n_train"]} training and {metrics["n_valid"]} validation images,
  {len(s.classes)} classes
- Classes: {", ".join(s.classes[:40])}{more}

| epoch | phase | train loss | valid loss | error rate | time |
|---|---|---|---|---|---|
{rows}

![Training curves](training.png)

### Per-class accuracy (validation)

| class | accuracy |
|---|---|
{per_class}

![Confusion matrix](confusion_matrix.png)

![Top losses](top_losses.png)
"""
    usage = f"""import timm, torch
from PIL import Image

model = timm.create_model("hf-hub:{repo}", pretrained=True).eval()
transform = timm.data.create_transform(**timm.data.resolve_data_config(model=model))
labels = model.pretrained_cfg["label_names"]
with torch.no_grad():
    probs = model(transform(Image.open("photo.jpg").convert("RGB"))[None]).softmax(-1)[0]
print(labels[probs.argmax()], probs.max().item())

# Or serve it with the demo:
#   DEMO_MODEL_PETS_CLASSIFIER={repo} python spaces/image_classifier/app.py"""
    hub.write_card(
        cfg.out,
        title=f"{dataset} classifier ({cfg.arch})",
        summary=(
            f"An image classifier for {len(s.classes)} classes of `{dataset}`, "
            + (f"fine-tuned from `{base}`" if base else f"a `{cfg.arch}` trained from scratch")
            + f". Validation accuracy {metrics['accuracy']:.1%}."
        ),
        base_model=base,
        datasets=[cfg.dataset_id] if cfg.dataset_id else (),
        tags=["image-classification", "timm", "fastai-course"],
        library_name="timm",
        pipeline_tag="image-classification",
        metrics={"accuracy": metrics["accuracy"], "error_rate": metrics["error_rate"]},
        task_name="Image Classification",
        dataset_name=dataset,
        training=training,
        usage=usage,
    )


# --- 7. Predictor ---------------------------------------------------------------------------


@dataclass
class Prediction:
    top: dict[str, float]  # the k most likely labels and their probabilities, best first
    label: str | None  # the answer; None means "not sure" (top probability under the threshold)
    heatmap: Image.Image | None = None  # Grad-CAM of the top class over the model's view


class Classifier:
    """A fine-tuned timm classifier, ready to answer: preprocessing from its own config."""

    def __init__(self, model: nn.Module, labels: list[str], examples: Sequence[Path] = ()):
        from torchvision import transforms as T

        self.device = devices.device()
        self.dtype = devices.dtype(self.device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.labels = list(labels)
        self.examples = list(examples)
        self.config = resolve_data_config(model=model)
        self.transform = create_transform(**self.config)
        size = self.config["input_size"][1:]
        crop_pct = self.config.get("crop_pct") or 0.875
        self.crop_mode = self.config.get("crop_mode") or "center"
        self.size = tuple(size)
        self.scale_size = tuple(math.floor(x / crop_pct) for x in size)
        interp = str_to_interp_mode(self.config["interpolation"])
        to_tensor = T.Compose([T.ToTensor(), T.Normalize(self.config["mean"], self.config["std"])])
        # test-time augmentation: the four corner crops and the centre crop, and their mirror images
        self.tta = T.Compose(
            [
                T.Resize(min(self.scale_size), interpolation=interp),
                T.TenCrop(self.size),
                T.Lambda(lambda crops: torch.stack([to_tensor(c) for c in crops])),
            ]
        )

    def __call__(self, image: Image.Image | str | Path, **kwargs: Any) -> Prediction:
        return self.predict(image, **kwargs)

    def read(self, path: str | Path) -> tuple[Image.Image, str | None]:
        """`read_image`, decoding JPEGs no bigger than this model needs."""
        return read_image(path, min_side=max(self.scale_size))

    def open(self, image: Image.Image | str | Path) -> Image.Image:
        return _to_rgb(image) if isinstance(image, Image.Image) else self.read(image)[0]

    def predict(
        self,
        image: Image.Image | str | Path,
        *,
        k: int = TOP_K,
        tta: bool = False,
        cam: bool = False,
        threshold: float = 0.0,
    ) -> Prediction:
        """Top-k labels of one image; see `predict_batch`."""
        return self.predict_batch([image], k=k, tta=tta, cam=cam, threshold=threshold)[0]

    def predict_batch(
        self,
        images: Sequence[Image.Image | str | Path],
        *,
        k: int = TOP_K,
        tta: bool = False,
        cam: bool = False,
        threshold: float = 0.0,
    ) -> list[Prediction]:
        """Top-k labels with probabilities for each image, in one forward pass.

        tta: average the probabilities of ten views (corner and centre crops, mirrored).
        cam: add a Grad-CAM heatmap of the top class. threshold: under it, `label` is None.
        """
        if not images:
            return []
        images = [self.open(im) for im in images]
        probs, heat = None, None
        if tta:
            views = torch.cat([self.tta(im) for im in images])  # (B*10, C, H, W)
            probs = torch.cat([self.probabilities(v) for v in views.split(64)])
            probs = probs.view(len(images), 10, -1).mean(1)
        if cam or not tta:  # the plain view (also the centre one of the ten TTA views)
            x = torch.stack([self.transform(im) for im in images])
            if cam:
                plain, heat = self._gradcam(x, None if probs is None else probs.argmax(1))
            else:
                plain = self.probabilities(x)
            probs = plain if probs is None else probs
        k = min(k, len(self.labels))
        top_p, top_i = probs.topk(k, dim=1)
        out = []
        for b, (ps, ix) in enumerate(zip(top_p.tolist(), top_i.tolist(), strict=True)):
            top = {self.labels[i]: p for i, p in zip(ix, ps, strict=True)}
            label = self.labels[ix[0]] if ps[0] >= threshold else None
            overlay = None
            if heat is not None:
                overlay = self._overlay(images[b], heat[b])
            out.append(Prediction(top, label, overlay))
        return out

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax of the model's logits for a batch of preprocessed images (on the CPU)."""
        with torch.inference_mode(), self._autocast():
            return self.model(x.to(self.device)).float().softmax(1).cpu()

    def _autocast(self):
        enabled = self.device.type == "cuda" and self.dtype != torch.float32
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=enabled)

    def _gradcam(
        self, x: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Grad-CAM on the last feature stage (fastbook's CAM chapter): the gradient of the target
        class's logit (default: the top one), averaged per channel, weighs that stage's
        activations. Returns the probabilities and one map per image, scaled to [0, 1]."""
        x = x.to(self.device).requires_grad_(True)  # weights stay frozen: no weight gradients
        with torch.enable_grad(), self._autocast():
            feats = self.model.forward_features(x)
            if feats.ndim == 3:  # vision transformers: tokens -> a grid, without prefix tokens
                tokens = feats[:, getattr(self.model, "num_prefix_tokens", 0) :]
                side = int(math.isqrt(tokens.shape[1]))
                feats_grid = (
                    tokens[:, : side * side].transpose(1, 2).reshape(len(x), -1, side, side)
                )
            elif feats.ndim == 4:
                feats_grid = feats
            else:
                raise ValueError("Grad-CAM is not available for this architecture.")
            feats_grid.retain_grad()
            logits = self.model.forward_head(feats)
            top = logits.argmax(1) if targets is None else targets.to(logits.device)
            logits.gather(1, top[:, None]).sum().backward()  # samples are independent: one pass
        grads, acts = feats_grid.grad.float(), feats_grid.detach().float()
        cams = F.relu((grads.mean((2, 3), keepdim=True) * acts).sum(1))
        cams = cams / cams.flatten(1).amax(1).clamp_min(1e-8)[:, None, None]
        return logits.detach().float().softmax(1).cpu(), cams.cpu()

    def crop_box(self, w: int, h: int) -> tuple[float, float, float, float]:
        """The part of a w×h image that the model sees (its centre crop), in pixels."""
        if self.crop_mode == "squash":
            fx, fy = self.size[1] / self.scale_size[1], self.size[0] / self.scale_size[0]
        elif self.crop_mode == "center":
            s = min(w, h) / min(self.scale_size)
            fx, fy = min(1.0, self.size[1] * s / w), min(1.0, self.size[0] * s / h)
        else:
            fx = fy = 1.0
        return (w * (1 - fx) / 2, h * (1 - fy) / 2, w * (1 + fx) / 2, h * (1 + fy) / 2)

    def _overlay(self, image: Image.Image, cam: torch.Tensor, alpha: float = 0.5) -> Image.Image:
        from matplotlib import colormaps

        view = image.crop(tuple(round(v) for v in self.crop_box(*image.size)))
        scale = 448 / max(view.size)  # big enough to see, small enough to send
        if scale < 1 or max(view.size) < 224:
            view = view.resize((round(view.width * scale) or 1, round(view.height * scale) or 1))
        heat = F.interpolate(
            cam[None, None], size=view.size[::-1], mode="bilinear", align_corners=False
        )[0, 0]
        colored = colormaps["jet"](heat.clamp(0, 1).numpy())[..., :3]
        mixed = (1 - alpha) * np.asarray(view, dtype=np.float32) / 255 + alpha * colored
        return Image.fromarray((mixed * 255).round().astype(np.uint8))


def load(folder: Path) -> Classifier:
    """The registry's loader: a timm Hub folder (config.json + model.safetensors) -> Classifier."""
    folder = Path(folder)
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).is_file():
            raise ModelError(
                f"{folder} has no {name}: it is not a timm model folder. Make one with "
                "`python -m shared.cli train image-classifier --data DIR`."
            )
    config = json.loads((folder / "config.json").read_text())
    if "architecture" not in config:
        raise ModelError(
            f"{folder / 'config.json'} names no architecture: not a timm model config."
        )
    model = timm.create_model(f"local-dir:{folder}", pretrained=True)
    labels = config.get("label_names") or model.pretrained_cfg.get("label_names")
    if not labels:
        if subset := timm.data.infer_imagenet_subset(model):  # e.g. a stock ImageNet checkpoint
            info = timm.data.ImageNetInfo(subset)
            labels = [info.index_to_description(i) for i in range(model.num_classes)]
        else:
            labels = [f"class {i}" for i in range(model.num_classes)]
    if isinstance(labels, dict):  # timm allows {index: name}
        labels = [labels.get(str(i), labels.get(i, f"class {i}")) for i in range(model.num_classes)]
    if len(labels) != model.num_classes:
        raise ModelError(f"{folder}: {len(labels)} label names for {model.num_classes} classes.")
    examples = sorted(p for p in (folder / "examples").glob("*") if p.suffix.lower() in IMAGE_EXTS)
    return Classifier(model, labels, examples)


# --- CLI: python -m shared.cli {train,evaluate,lr-find} image-classifier ---------------------


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder of images (a sub-folder per class, or labels in file names) or a CSV file",
    )
    p.add_argument(
        "--labels",
        default="auto",
        choices=["auto", "folder", "csv", "filename", "species"],
        help="where labels come from (auto: csv for a .csv file, folder when there are "
        "class folders, else filename)",
    )
    p.add_argument(
        "--label-re",
        default=PETS_BREED,
        help="for --labels filename: regex whose first group is the label "
        "(default: Oxford pets breed, the name before the last _)",
    )
    p.add_argument(
        "--path-col", default="path", help="CSV column with image paths (relative to the CSV)"
    )
    p.add_argument("--label-col", default="label", help="CSV column with labels")
    p.add_argument("--split-col", help="CSV column marking validation rows (valid/val/test/true/1)")
    p.add_argument(
        "--valid-pct",
        type=float,
        default=0.2,
        help="random validation share when no split is given",
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bs", type=int, default=64, help="batch size")
    p.add_argument("--workers", type=int, help="data loader processes (default: up to 8)")


def _train_config(args: argparse.Namespace, **extra: Any) -> TrainConfig:
    keys = {f for f in TrainConfig.__dataclass_fields__} & set(vars(args))
    values = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    values["pretrained"] = not getattr(args, "no_pretrained", False)
    values.pop("out", None)
    return TrainConfig(
        out=getattr(args, "out", None) or Path("out/image-classifier"), **values, **extra
    )


def add_train_args(p: argparse.ArgumentParser) -> None:
    _add_data_args(p)
    p.add_argument("--size", type=int, default=224, help="image size in pixels")
    p.add_argument(
        "--arch",
        default=DEFAULT_ARCH,
        help="timm architecture, e.g. resnet18 (default: %(default)s)",
    )
    p.add_argument(
        "--no-pretrained", action="store_true", help="train from scratch (offline, tests)"
    )
    p.add_argument("--epochs", type=int, default=3, help="epochs with all layers training")
    p.add_argument(
        "--freeze-epochs",
        type=int,
        help="epochs with the body frozen first (default 1; 0 from scratch)",
    )
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate (see lr-find)")
    p.add_argument(
        "--lr-mult",
        type=float,
        help="early layers train at lr / lr-mult (default 100; 1 from scratch)",
    )
    p.add_argument("--wd", type=float, default=0.01, help="AdamW weight decay")
    p.add_argument("--accum", type=int, default=1, help="gradient accumulation steps")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last finished epoch in OUT/checkpoints",
    )
    p.add_argument(
        "--examples", type=int, default=6, help="validation images copied to OUT/examples"
    )
    p.add_argument(
        "--dataset-name", help="data set name for the model card (default: the folder name)"
    )
    p.add_argument("--dataset-id", help="Hub dataset id for the model card metadata")


def train_cli(args: argparse.Namespace) -> dict:
    cfg = _train_config(args, repo_id=args.push_to_hub)
    return train(cfg)


def add_lr_find_args(p: argparse.ArgumentParser) -> None:
    _add_data_args(p)
    p.add_argument("--size", type=int, default=224, help="image size in pixels")
    p.add_argument("--arch", default=DEFAULT_ARCH, help="timm architecture (default: %(default)s)")
    p.add_argument("--no-pretrained", action="store_true", help="from scratch: nothing frozen")
    p.add_argument("--start", type=float, default=1e-7, help="first learning rate")
    p.add_argument("--end", type=float, default=10.0, help="last learning rate")
    p.add_argument("--num-it", type=int, default=100, help="batches (one learning rate each)")
    p.add_argument(
        "--out", type=Path, default=Path("out/image-classifier"), help="where lr_find.png goes"
    )


def lr_find_cli(args: argparse.Namespace) -> dict:
    cfg = _train_config(args)
    return lr_find(cfg, start=args.start, end=args.end, num_it=args.num_it)


def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", required=True, help="model folder, or Hub repo id (optionally @revision)"
    )
    _add_data_args(p)
    p.add_argument(
        "--split",
        default="valid",
        choices=["valid", "all"],
        help="evaluate the validation split (same seed as training) or every image",
    )
    p.add_argument(
        "--out", type=Path, default=Path("out/image-classifier-eval"), help="where the report goes"
    )


def evaluate_cli(args: argparse.Namespace) -> dict:
    folder = _model_folder(args.model)
    clf = load(folder)
    items = find_items(
        args.data,
        labels=args.labels,
        label_re=args.label_re,
        path_col=args.path_col,
        label_col=args.label_col,
        split_col=args.split_col,
    )
    items = verify_images(items)
    if skips := describe_skips(items):
        tqdm.write(skips)
    idx = (
        split(items, args.valid_pct, args.seed)[1]
        if args.split == "valid"
        else list(range(len(items.paths)))
    )
    if not idx:
        raise ValueError(f"No images to evaluate in {args.data}.")
    unknown = sorted({items.labels[i] for i in idx} - set(clf.labels))
    if unknown:
        raise ValueError(f"The data has labels the model does not know: {', '.join(unknown[:10])}.")
    lookup = {c: i for i, c in enumerate(clf.labels)}
    paths = [items.paths[i] for i in idx]
    workers = min(8, os.cpu_count() or 1) if args.workers is None else args.workers
    probs = predict_items(clf.model, clf.transform, paths, bs=args.bs, workers=workers)
    report = evaluate_predictions(
        probs, [lookup[items.labels[i]] for i in idx], clf.labels, paths, args.out
    )
    report["model"] = str(args.model)
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2))
    return {k: report[k] for k in ("accuracy", "error_rate", "valid_loss", "n_images")} | {
        "report": str(args.out)
    }


def _model_folder(model: str) -> Path:
    if Path(model).is_dir():
        return Path(model)
    from huggingface_hub import snapshot_download

    from shared.registry import MODELS

    repo, _, revision = model.partition("@")
    try:
        return Path(
            snapshot_download(
                repo,
                revision=revision or None,
                allow_patterns=list(MODELS["pets-classifier"].files),
            )
        )
    except Exception as e:
        raise ModelError(f"Could not download {model} ({type(e).__name__}: {e}).") from e
