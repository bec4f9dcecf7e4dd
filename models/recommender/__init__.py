"""Movie recommender family: collaborative filtering on MovieLens 100k (lessons 7-8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.registry import Spec

NAME = "movie-recommender"


def load(folder: Path) -> Any:
    """The registry's loader: a model folder -> a ready `Recommender` (imports torch)."""
    from models.recommender.core import load as load_recommender

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
