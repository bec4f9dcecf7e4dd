"""Movie recommender family: collaborative filtering on MovieLens 100k (lessons 7-8).

Light (no torch): the registry entry `SPEC` and its loader. The rest, top to bottom:
config.py (recipe and CLI options, torch-free), movielens.py (GroupLens' download, cached),
data.py (MovieLens or a ratings CSV, split, side features), modules.py (DotProductBias,
EmbeddingNN), train.py (fit, evaluate, cross-validate), export.py (Hub layout and model card),
build.py (the default model built locally while unpublished), serve/ (the `Recommender`: title
search, fold-in, ranking) and cli.py (`train` and `evaluate recommender`).
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


def build_default() -> Path:
    """The registry's builder, used only while the default repo does not exist on the Hub:
    MovieLens 100k from GroupLens + the shipped recipe, trained once into the cache (build.py).
    """
    from models.recommender.build import build

    return build()


SPEC = Spec(
    name=NAME,
    task="recommendation",
    repo="movielens-100k-dot",
    revision="main",
    files=("*.json", "model.safetensors", "README.md"),
    load=load,
    space="movie_recommender",
    description="MovieLens 100k collaborative filtering: dot product with biases + SVD++",
    build=build_default,
)
