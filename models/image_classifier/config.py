"""The settings of `train`, `lr-find` and `evaluate`: one dataclass each, also the CLI's options.

Torch-free: `shared.cli` imports this to build its options (shared.options), so every default is
written once, here. The three share the data options (`DataConfig`); training and the
learning-rate finder share the model options (`ModelConfig`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.image_classifier import sources
from shared.errors import UserError
from shared.options import option

DEFAULT_ARCH = "convnext_tiny.fb_in22k"  # fine-tunes best in the course's model comparison
# Oxford-IIIT pets: the breed is the file name before the last "_" ("great_pyrenees_12.jpg").
PETS_BREED = r"^(.+)_\d+\.\w+$"
LABEL_SOURCES = ("auto", "folder", "csv", "filename", "species")
OUT = Path("out/image-classifier")


@dataclass
class DataConfig:
    """Where the labelled images are, how to read their labels and how to split them."""

    data: Path = option(
        help="folder of images (a sub-folder per class, or labels in file names), a CSV file, "
        "or a Hub image dataset, downloaded once: hf://datasets/OWNER/NAME[@REVISION]"
    )
    labels: str = option(
        "auto",
        help="where labels come from (auto: csv for a .csv file, folder when there are "
        "class folders, else filename)",
        choices=LABEL_SOURCES,
    )
    label_re: str = option(
        PETS_BREED,
        help="for --labels filename: regex whose first group is the label "
        "(Oxford pets breed: the name before the last _)",
    )
    path_col: str = option("path", help="CSV column with image paths (relative to the CSV)")
    label_col: str = option("label", help="CSV column with labels")
    split_col: str | None = option(
        None, help="CSV column marking validation rows (valid/val/test/true/1)"
    )
    valid_pct: float = option(0.2, help="random validation share when no split is given")
    seed: int = option(42, help="seed of the split (and of training)")
    bs: int = option(64, help="batch size")
    workers: int | None = option(None, help="data loader processes (default: up to 8)")

    def __post_init__(self) -> None:
        # a public data set's address (hf://datasets/...) -> its local copy, downloaded once
        self.data = sources.fetch(self.data)
        if self.workers is None:
            self.workers = min(8, os.cpu_count() or 1)

    def label_options(self) -> dict[str, Any]:
        """The options of `data.find_items`: where the labels come from."""
        keys = ("labels", "label_re", "path_col", "label_col", "split_col")
        return {k: getattr(self, k) for k in keys}


@dataclass
class ModelConfig(DataConfig):
    """The data options plus the model: a timm architecture, pretrained or not, at a size."""

    arch: str = option(DEFAULT_ARCH, help="timm architecture, e.g. resnet18")
    pretrained: bool = option(
        True, help="start from ImageNet weights (--no-pretrained: from scratch, offline)"
    )
    size: int = option(224, help="image size in pixels")


@dataclass
class TrainConfig(ModelConfig):
    """Fine-tune a timm model on labelled images (fastai's `fine_tune`), export it for the Hub."""

    out: Path = option(OUT, help="where to write the model folder (Hub layout)")
    epochs: int = option(3, help="epochs with all layers training")
    freeze_epochs: int | None = option(
        None, help="epochs with the body frozen first (default 1; 0 from scratch)"
    )
    lr: float = option(2e-3, help="learning rate (see lr-find)")
    lr_mult: float | None = option(
        None, help="early layers train at lr / lr-mult (default 100; 1 from scratch)"
    )
    wd: float = option(0.01, help="AdamW weight decay")
    accum: int = option(1, help="gradient accumulation steps")
    resume: bool = option(False, help="continue from the last finished epoch in OUT/checkpoints")
    examples: int = option(6, help="validation images copied to OUT/examples")
    onnx: bool = option(
        True, help="export model.onnx, the CPU fast path, if it agrees with PyTorch"
    )
    dataset_name: str | None = option(
        None, help="data set name for the model card (default: the folder name)"
    )
    dataset_id: str | None = option(None, help="Hub dataset id for the model card metadata")
    push_to_hub: str | None = option(
        None, help="push the trained model to this Hub repo (named in the card)", metavar="REPO"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.out = Path(self.out)
        if self.freeze_epochs is None:
            self.freeze_epochs = 1 if self.pretrained else 0
        if self.lr_mult is None:
            self.lr_mult = 100.0 if self.pretrained else 1.0
        if self.epochs < 0 or self.freeze_epochs < 0 or self.epochs + self.freeze_epochs < 1:
            raise UserError("Train for at least one epoch (--epochs).")
        if not 0 < self.valid_pct < 1:
            raise UserError("--valid-pct must be between 0 and 1.")

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
class LrFindConfig(ModelConfig):
    """The learning-rate range test on the model as `train` starts it (the body frozen when
    pretrained): loss against an exponentially growing learning rate, and suggestions."""

    out: Path = option(OUT, help="where lr_find.png goes")
    start: float = option(1e-7, help="first learning rate")
    end: float = option(10.0, help="last learning rate")
    num_it: int = option(100, help="batches (one learning rate each)")

    def train_config(self) -> TrainConfig:
        """The training run this test is for: the same data, model and batches."""
        shared = {k: getattr(self, k) for k in ModelConfig.__dataclass_fields__}
        return TrainConfig(**shared, out=self.out)


@dataclass
class EvalConfig(DataConfig):
    """Accuracy, per-class accuracy, confusion matrix and top losses of a model on labelled
    images (the validation split made with the training seed, or every image)."""

    model: str | None = option(
        None,
        help="model folder, or Hub repo id (optionally @revision); default: the registry's",
    )
    split: str = option(
        "valid",
        help="evaluate the validation split (same seed as training) or every image",
        choices=("valid", "all"),
    )
    out: Path = option(Path("out/image-classifier-eval"), help="where the report goes")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.out = Path(self.out)
