"""Patent phrase similarity family: a cross-encoder fine-tuned on the USPPPM data (lesson 4).

    config.py       TrainConfig, EvalConfig: the settings, also the CLI's options (torch-free)
    data.py         pairs and CPC table, the model's input text, score grid, split, metric,
                    TF-IDF baseline (torch-free)
    train.py        fine-tuning with the transformers Trainer, training plot, model card
    predict.py      Predictor (text, score_texts, score, rank) and `load`, what the Space serves
    onnx_export.py  the CPU fast path at train time: model.onnx (int8 where it passes its
                    accuracy guard)
    runtime.py      the CPU fast path at serve time: model.onnx on ONNX Runtime
    csv_scoring.py  scoring a whole CSV in chunks, with its checks and report
    cli.py          COMMANDS: train, evaluate

This module stays light (no torch): the suite imports it at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.registry import Spec

NAME = "patent-similarity"
FILES = ("*.json", "model.safetensors", "spm.model", "README.md")


def files() -> tuple[str, ...]:
    """The allow-list: transformers' layout, plus the exported graph (model.onnx, the CPU fast
    path) unless a GPU will serve (PyTorch does there: no need to download it)."""
    from shared import device, runtime

    if device.likely_gpu() and runtime.wanted() != "onnx":
        return FILES
    return (*FILES, runtime.EXPORT)


def load(folder: Path) -> Any:
    """The registry's loader: a transformers folder -> a ready `Predictor` (imports torch)."""
    from models.patent_similarity.predict import load as load_predictor

    return load_predictor(folder)


SPEC = Spec(
    name=NAME,
    task="text-classification",
    repo="patent-deberta-v3-small",
    revision="main",
    files=files,
    load=load,
    space="patent_similarity",
    description="Patent phrase similarity, deberta-v3-small cross-encoder",
)
