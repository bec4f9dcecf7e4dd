"""`demos {train,evaluate,lr-find} image-classifier`: each command's options are its config.

Torch-free at import (`demos --help` lists every family's options); a command imports the
training or evaluation code when it runs.
"""

from __future__ import annotations

from typing import Any

from models.image_classifier.config import EvalConfig, LrFindConfig, TrainConfig
from shared.options import Command


def run_train(cfg: TrainConfig) -> dict[str, Any]:
    from models.image_classifier.train import train

    return train(cfg)


def run_lr_find(cfg: LrFindConfig) -> dict[str, Any]:
    from models.image_classifier.lr_find import lr_find

    return lr_find(cfg.train_config(), start=cfg.start, end=cfg.end, num_it=cfg.num_it)


def run_evaluate(cfg: EvalConfig) -> dict[str, Any]:
    from models.image_classifier.evaluate import evaluate

    return evaluate(cfg)


COMMANDS = {
    "train": Command(
        TrainConfig, run_train, "fine-tune a timm model on labelled photos (fastai's fine_tune)"
    ),
    "evaluate": Command(
        EvalConfig, run_evaluate, "accuracy, confusion matrix and top losses of a classifier"
    ),
    "lr-find": Command(
        LrFindConfig, run_lr_find, "the learning-rate range test: loss against learning rate"
    ),
}
