"""Image classifier family: fine-tune a timm model on your photos, export it, serve it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.registry import Spec

NAME = "pets-classifier"


def load(folder: Path) -> Any:
    """The registry's loader: a timm Hub folder -> a ready `Classifier` (imports torch)."""
    from models.image_classifier.core import load as load_classifier

    return load_classifier(folder)


SPEC = Spec(
    name=NAME,
    task="image-classification",
    repo="pets-convnext-tiny",
    revision="main",
    files=("config.json", "model.safetensors", "README.md", "examples/*"),
    load=load,
    space="image_classifier",
    description="Oxford-IIIT pet breeds, convnext_tiny.fb_in22k fine-tuned with timm",
)
