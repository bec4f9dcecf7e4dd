"""Patent phrase similarity family: a cross-encoder fine-tuned on the USPPPM data (lesson 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.registry import Spec

NAME = "patent-similarity"


def load(folder: Path) -> Any:
    """The registry's loader: a transformers folder -> a ready `Predictor` (imports torch)."""
    from models.patent_similarity.core import load as load_predictor

    return load_predictor(folder)


SPEC = Spec(
    name=NAME,
    task="text-classification",
    repo="patent-deberta-v3-small",
    revision="main",
    files=("*.json", "model.safetensors", "spm.model", "README.md"),
    load=load,
    space="patent_similarity",
    description="Patent phrase similarity, deberta-v3-small cross-encoder",
)
