"""Movie recommender family: collaborative filtering on MovieLens 100k (lessons 7-8).

Light (no torch): the registry entry `SPEC` and its loader. The rest, top to bottom:
config.py (recipe and CLI options, torch-free), data.py (MovieLens or a ratings CSV, split),
modules.py (DotProductBias, EmbeddingNN), train.py (fit, evaluate, cross-validate), export.py
(Hub layout and model card), serve/ (the `Recommender`: title search, fold-in, ranking) and
cli.py (`train` and `evaluate recommender`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.registry import Spec

NAME = "movie-recommender"


def load(folder: str | Path) -> Any:
    """The registry's loader: a model folder -> a ready `Recommender` (imports torch)."""
    from models.recommender.serve import load as load_recommender

    return load_recommender(folder)


SPEC = Spec(
    name=NAME,
    task="recommendation",
    repo="movielens-100k-dot",
    revision="main",
    files=("*.json", "model.safetensors", "README.md"),
    load=load,
    space="movie_recommender",
    description="MovieLens 100k collaborative filtering: dot product with biases + SVD++",
)
