"""The model registry: every model of every demo, in one catalogue.

`load(name)` downloads a model's files from the Hugging Face Hub (or takes a local folder),
turns them into a ready predictor with the family's loader, and keeps it for the life of the
process, so every tab and every request shares one copy.

Point a demo at your own fine-tuned weights without editing code:

    DEMO_MODEL_PETS_CLASSIFIER=you/my-pets            # another repo, its main branch
    DEMO_MODEL_PETS_CLASSIFIER=you/my-pets@v2          # a branch, tag or commit
    DEMO_MODEL_PETS_CLASSIFIER=./out/image-classifier  # a local folder
    DEMO_HUB_NAMESPACE=you                             # where our own fine-tuned repos live
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAMESPACE = os.environ.get("DEMO_HUB_NAMESPACE", "fastai-course-demos")


class ModelError(RuntimeError):
    """A model could not be found, fetched or loaded; the message says how to fix it."""


@dataclass(frozen=True)
class Model:
    name: str
    task: str
    repo: str
    revision: str
    files: (
        tuple[str, ...] | Callable[[], tuple[str, ...]]
    )  # allow patterns; a callable decides at fetch time
    loader: str  # "package.module:function", called with the snapshot folder
    space: str  # folder under spaces/
    description: str


MODELS: dict[str, Model] = {
    m.name: m
    for m in [
        Model(
            name="pets-classifier",
            task="image-classification",
            repo=f"{NAMESPACE}/pets-convnext-tiny",
            revision="main",
            files=("config.json", "model.safetensors", "README.md", "examples/*"),
            loader="models.image_classifier:load",
            space="image_classifier",
            description="Oxford-IIIT pet breeds, convnext_tiny.fb_in22k fine-tuned with timm",
        ),
        Model(
            name="patent-similarity",
            task="text-classification",
            repo=f"{NAMESPACE}/patent-deberta-v3-small",
            revision="main",
            files=("*.json", "model.safetensors", "spm.model", "README.md"),
            loader="models.patent_similarity:load",
            space="patent_similarity",
            description="Patent phrase similarity, deberta-v3-small cross-encoder",
        ),
        Model(
            name="movie-recommender",
            task="recommendation",
            repo=f"{NAMESPACE}/movielens-100k-dot",
            revision="main",
            files=("*.json", "model.safetensors", "README.md"),
            loader="models.recommender:load",
            space="movie_recommender",
            description="MovieLens 100k collaborative filtering: dot product with biases + SVD++",
        ),
        Model(
            name="stable-diffusion",
            task="text-to-image",
            repo="stable-diffusion-v1-5/stable-diffusion-v1-5",
            revision="451f4fe16113bff5a5d2269ed5ad43b0592e9a14",
            # what StableDiffusionPipeline reads, in safetensors: the fp16 files on a GPU, the
            # safety checker unless DEMO_SD_SAFETY_CHECKER=0 (decided at fetch time)
            files=lambda: importlib.import_module("models.text_to_image").files(),
            loader="models.text_to_image:load",
            space="text_to_image",
            description="Stable Diffusion 1.5 (diffusers), optional LoRA via DEMO_SD_LORA",
        ),
    ]
}

_cache: dict[str, Any] = {}
_locks: dict[str, threading.Lock] = {name: threading.Lock() for name in MODELS}


def _spec(name: str) -> Model:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(MODELS)
        raise ModelError(f"Unknown model '{name}'. Known models: {known}.") from None


def env_var(name: str) -> str:
    """The environment variable that overrides where model `name` comes from."""
    return "DEMO_MODEL_" + name.upper().replace("-", "_")


def source(name: str) -> tuple[str, str | None]:
    """Where `name` comes from: (repo id, revision), or (local folder, None)."""
    spec = _spec(name)
    value = os.environ.get(env_var(name), "").strip()
    if not value:
        return spec.repo, spec.revision
    if Path(value).expanduser().is_dir():
        return str(Path(value).expanduser().resolve()), None
    repo, _, revision = value.partition("@")
    return repo, revision or "main"


def _patterns(spec: Model) -> list[str]:
    return list(spec.files() if callable(spec.files) else spec.files)


def offline() -> bool:
    """Whether HF_HUB_OFFLINE is set now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def fetch(name: str, *, force: bool = False) -> Path:
    """Download (or find in the HF cache) the files of model `name`; return the folder."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    spec = _spec(name)
    repo, revision = source(name)
    if revision is None:
        return Path(repo)
    where = f"{repo}@{revision}"
    fix = f"set {env_var(name)} to a repo you can reach or a local folder"
    try:
        folder = snapshot_download(
            repo,
            revision=revision,
            allow_patterns=_patterns(spec),
            local_files_only=offline(),
            force_download=force,
        )
    except RevisionNotFoundError:
        raise ModelError(
            f"Model '{name}': revision '{revision}' does not exist in {repo}. "
            f"Use an existing branch, tag or commit ({fix})."
        ) from None
    except RepositoryNotFoundError:
        raise ModelError(
            f"Model '{name}': repository {repo} was not found on the Hub (or it is private "
            f"and HF_TOKEN is not set). Push one with "
            f"`python -m shared.cli push FOLDER --repo {repo}`, or {fix}."
        ) from None
    except LocalEntryNotFoundError:
        how = "HF_HUB_OFFLINE is set" if offline() else "the Hub could not be reached"
        raise ModelError(
            f"Model '{name}' ({where}) is not in the local cache and {how}. "
            f"Run `python -m shared.cli pull {name}` once with network access, or {fix}."
        ) from None
    except EntryNotFoundError as e:
        raise ModelError(f"Model '{name}' ({where}): a file is missing ({e}).") from None
    return Path(folder)


def load(name: str) -> Any:
    """The ready predictor of model `name`, loaded on first use and shared by all callers."""
    spec = _spec(name)
    if name in _cache:
        return _cache[name]
    with _locks[name]:  # two concurrent first requests load once
        if name not in _cache:
            folder = fetch(name)
            module, _, func = spec.loader.partition(":")
            loader = getattr(importlib.import_module(module), func)
            try:
                _cache[name] = loader(folder)
            except ModelError:
                raise
            except Exception as e:
                raise ModelError(
                    f"Model '{name}': the files in {folder} could not be loaded "
                    f"({type(e).__name__}: {e}). They may be missing or corrupt: "
                    f"re-download them with `python -m shared.cli pull {name} --force`, "
                    f"or point {env_var(name)} at a valid model."
                ) from e
    return _cache[name]


def unload(name: str | None = None) -> None:
    """Forget loaded predictors (all, or one), so the next `load` reads the source again."""
    if name is None:
        _cache.clear()
    else:
        _cache.pop(name, None)


def is_cached(name: str) -> bool:
    """Whether model `name` can load without network access."""
    repo, revision = source(name)
    if revision is None:
        return True
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(
            repo, revision=revision, allow_patterns=_patterns(_spec(name)), local_files_only=True
        )
    except Exception:
        return False
    return True


def rows() -> list[dict[str, str]]:
    """One row per model: name, task, source, revision, cached (for `shared.cli list`)."""
    out = []
    for name, spec in MODELS.items():
        repo, revision = source(name)
        out.append(
            {
                "name": name,
                "task": spec.task,
                "repo": repo,
                "revision": revision or "(local folder)",
                "cached": "yes" if is_cached(name) else "no",
            }
        )
    return out
