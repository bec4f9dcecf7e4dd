"""The default model, built on this machine when it has not been published (`Spec.build`).

The registry calls `build` only when the default repo does not exist on the Hub: it downloads
MovieLens 100k from GroupLens into the cache, trains the shipped recipe (seconds on a CPU) and
saves the model folder under HF_HOME, once per machine and recipe; later loads reuse it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from models.recommender.config import Recipe

log = logging.getLogger("demos")


def folder(recipe: Recipe | None = None) -> Path:
    """Where the model of `recipe` (default: the shipped one) is built: one folder per recipe."""
    from huggingface_hub import constants

    recipe = recipe or Recipe()
    key = hashlib.sha256(json.dumps(asdict(recipe), sort_keys=True).encode()).hexdigest()[:12]
    return Path(constants.HF_HOME) / "demos" / "movie-recommender" / key


def is_built(path: str | Path | None) -> bool:
    """Whether `path` is a model folder that `build` made."""
    if path is None:
        return False
    root = folder().parent.resolve()
    return Path(path).resolve().parent == root


def build() -> Path:
    """The shipped recipe trained on MovieLens 100k: the cached folder, or built now."""
    from filelock import FileLock

    dest = folder()
    if (dest / "config.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):  # two processes starting at once build once
        if (dest / "config.json").is_file():
            return dest
        from models.recommender.data import load_data
        from models.recommender.export import save, write_card
        from models.recommender.train import train

        recipe = Recipe()
        log.info("Building the movie recommender: MovieLens 100k from GroupLens, then training")
        data = load_data(None, valid_pct=recipe.valid_pct, seed=recipe.seed)
        trained = train(recipe, data)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".build-"))
        try:
            save(trained, tmp, recipe)
            write_card(tmp, recipe, trained, None)
            tmp.rename(dest)  # whole or not at all: a crash leaves no half-built folder
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("Movie recommender built in %s (%.1f s of training)", dest, trained.seconds)
    return dest
