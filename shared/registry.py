"""The model registry: every model of every demo, in one catalogue.

Each family package under models/ declares its entry (`SPEC`: repo, revision, allow-list,
loader, Space); the registry collects them in the order of `models.FAMILIES` and never reaches
into a family's other modules. `load(name)` downloads a model's files from the Hugging Face Hub
(or takes a local folder), turns them into a ready predictor with the family's loader, and keeps
it for the life of the process, so every tab and every request shares one copy.

Point a demo at your own fine-tuned weights without editing code:

    DEMO_MODEL_PETS_CLASSIFIER=you/my-pets            # another repo, its main branch
    DEMO_MODEL_PETS_CLASSIFIER=you/my-pets@v2          # a branch, tag or commit
    DEMO_MODEL_PETS_CLASSIFIER=./out/image-classifier  # a local folder
    DEMO_HUB_NAMESPACE=you                             # where our own fine-tuned repos live
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import ModelError, UserError

DEFAULT_NAMESPACE = "fastai-course-demos"
# A deployed Space pins the models it serves to exact commits in this file beside app.py.
PINS = "pins.json"
ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("demos")


@dataclass(frozen=True)
class Spec:
    """One model of the catalogue, declared by its family."""

    name: str  # registry name, e.g. "pets-classifier"
    task: str  # the Hub's pipeline tag
    repo: str  # "owner/name"; a bare "name" is one of ours, under `namespace()`
    revision: str
    files: tuple[str, ...] | Callable[[], tuple[str, ...]]  # allow patterns, decided at fetch
    load: Callable[[Path], Any]  # the snapshot folder -> a ready predictor
    space: str  # the folder under spaces/ that serves it
    description: str
    # Builds the model into a local folder when its default repo does not exist on the Hub
    # (only then), so that a demo works on a fresh machine before anything is published.
    build: Callable[[], Path] | None = None

    def patterns(self) -> list[str]:
        return list(self.files() if callable(self.files) else self.files)


def namespace() -> str:
    """Where our own fine-tuned repos live (DEMO_HUB_NAMESPACE)."""
    return os.environ.get("DEMO_HUB_NAMESPACE", "").strip() or DEFAULT_NAMESPACE


_specs: dict[str, Spec] | None = None
_cache: dict[str, Any] = {}
_locks: dict[str, threading.Lock] = {}
_lock = threading.Lock()


def specs() -> dict[str, Spec]:
    """Every model, in family order. The family packages are imported on first use; their
    `__init__` modules are light (no torch), so listing models stays fast."""
    global _specs
    if _specs is None:
        found = {}
        for family in importlib.import_module("models").FAMILIES:
            module = importlib.import_module(f"models.{family}")
            for spec in getattr(module, "SPECS", None) or (module.SPEC,):
                found[spec.name] = spec
        _specs = found
    return _specs


def spec(name: str) -> Spec:
    try:
        return specs()[name]
    except KeyError:
        raise ModelError(f"Unknown model '{name}'. Known models: {', '.join(specs())}.") from None


def env_var(name: str) -> str:
    """The environment variable that overrides where model `name` comes from."""
    return "DEMO_MODEL_" + name.upper().replace("-", "_")


def default_repo(s: Spec) -> str:
    return s.repo if "/" in s.repo else f"{namespace()}/{s.repo}"


def _looks_like_path(value: str) -> bool:
    return (
        value.startswith(("/", ".", "~"))
        or "\\" in value
        or value.count("/") > 1
        or Path(value).exists()
    )


def parse(value: str) -> tuple[str, str | None]:
    """A model source as (repo id, revision), or (absolute folder, None) for a local folder.

    Accepts `owner/name`, `owner/name@revision` or a folder. Something that looks like a path
    but is no folder is an error here, not a Hub lookup of a strange repo id."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    value = value.strip()
    path = Path(value).expanduser()
    if path.is_dir():
        return str(path.resolve()), None
    if _looks_like_path(value):
        what = "is a file, not a model folder" if path.exists() else "was not found"
        raise ModelError(f"The folder {value} {what}. Check the path (or use a Hub repo id).")
    repo, _, revision = value.partition("@")
    try:
        validate_repo_id(repo)
    except HFValidationError:
        raise ModelError(
            f"'{value}' is neither a local folder nor a Hub repo id (owner/name[@revision])."
        ) from None
    return repo, revision or "main"


def pins() -> dict[str, str]:
    """{model name: "repo@commit"} of a deployed Space (pins.json), or {} in a checkout."""
    path = ROOT / PINS
    if not path.is_file():
        return {}
    try:
        return {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError):
        raise ModelError(f"{path} is not a JSON object of model pins.") from None


def source(name: str) -> tuple[str, str | None]:
    """Where model `name` comes from now: (repo id, revision), or (local folder, None).
    The environment (DEMO_MODEL_*) wins over the Space's pins, which win over the default."""
    s = spec(name)
    value = os.environ.get(env_var(name), "").strip() or pins().get(name, "")
    return parse(value) if value else (default_repo(s), s.revision)


def is_default(name: str) -> bool:
    """Whether model `name` comes from its catalogue default (nothing set, nothing pinned)."""
    return not os.environ.get(env_var(name), "").strip() and name not in pins()


def offline() -> bool:
    """Whether HF_HUB_OFFLINE is set now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def resolve(
    value: str, patterns: Sequence[str], *, name: str | None = None, force: bool = False
) -> Path:
    """The local folder holding the files of a model source (repo, repo@revision or folder):
    only the files matching `patterns` are downloaded (or found in the HF cache).

    `name`: the registry model this is for, so that messages can name its setting."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, revision = parse(value)
    if revision is None:
        return Path(repo)
    where = f"{repo}@{revision}"
    what = f"Model '{name}' ({where})" if name else where
    fix = f" Or set {env_var(name)} to a repo you can reach or a local folder." if name else ""
    pull = f"python -m shared.cli pull {name}" if name else "this command"
    try:
        folder = snapshot_download(
            repo,
            revision=revision,
            allow_patterns=list(patterns),
            local_files_only=offline(),
            force_download=force,
        )
    except RevisionNotFoundError:
        raise ModelError(
            f"{what}: revision '{revision}' does not exist. Use an existing branch, tag or "
            f"commit.{fix}"
        ) from None
    except RepositoryNotFoundError:
        # "out/pets-typo" with a local out/: most likely a mistyped folder
        local = f" There is no folder {repo} here either." if Path(repo).parent.is_dir() else ""
        if name and is_default(name):
            raise RepoNotFound(
                f"{what}: this demo's model has not been published yet. Publish every model "
                f"with one command, `make publish NAMESPACE=<your Hub name>` (README: "
                f"'Publish your own copy'), then set DEMO_HUB_NAMESPACE to that name.{fix}"
            ) from None
        raise RepoNotFound(
            f"{what}: the repository was not found on the Hub (or it is private and HF_TOKEN "
            f"is not set).{local} Push one with `python -m shared.cli push FOLDER --repo "
            f"{repo}`.{fix}"
        ) from None
    except LocalEntryNotFoundError:
        if offline():
            how = f"HF_HUB_OFFLINE is set: unset it and run `{pull}` once with network access."
        else:
            how = f"the Hub could not be reached: check the network, then run `{pull}`."
        raise ModelError(f"{what} is not in the local cache and {how}{fix}") from None
    except EntryNotFoundError as e:
        raise ModelError(f"{what}: a file is missing ({e}).") from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "no response"
        raise ModelError(f"{what}: the Hub answered with an error ({status}).{fix}") from None
    return Path(folder)


class RepoNotFound(ModelError):
    """The repository does not exist on the Hub (or is private)."""


def fetch(name: str, *, force: bool = False) -> Path:
    """Download (or find in the HF cache) the files of model `name`; return the folder.

    A model whose default repo does not exist yet and that can build itself (`Spec.build`)
    is built into the local cache instead, once."""
    s = spec(name)
    repo, revision = source(name)
    value = repo if revision is None else f"{repo}@{revision}"
    try:
        return resolve(value, s.patterns(), name=name, force=force)
    except RepoNotFound:
        if s.build is None or not is_default(name):
            raise
        log.info("Model %s: %s is not on the Hub; building it locally", name, repo)
        return s.build()


def load(name: str) -> Any:
    """The ready predictor of model `name`, loaded on first use and shared by all callers."""
    if name in _cache:
        return _cache[name]
    s = spec(name)
    with _lock:
        lock = _locks.setdefault(name, threading.Lock())
    with lock:  # two concurrent first requests load once
        if name not in _cache:
            folder = fetch(name)
            try:
                _cache[name] = s.load(folder)
            except UserError:
                raise
            except Exception as e:
                log.exception("Model %s: loading %s failed", name, folder)
                raise ModelError(
                    f"Model '{name}': its files could not be loaded ({type(e).__name__}). "
                    f"They may be missing or corrupt: re-download them with "
                    f"`python -m shared.cli pull {name} --force`, or point {env_var(name)} at "
                    "a valid model."
                ) from e
    return _cache[name]


def loaded(name: str) -> bool:
    """Whether model `name` is loaded in this process (its next `load` is instant)."""
    return name in _cache


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
            repo, revision=revision, allow_patterns=spec(name).patterns(), local_files_only=True
        )
    except Exception:
        return False
    return True


def rows() -> list[dict[str, str]]:
    """One row per model: name, task, source, revision, cached (for `shared.cli list`)."""
    out = []
    for name, s in specs().items():
        try:
            repo, revision = source(name)
        except UserError as e:  # a bad DEMO_MODEL_* value: show it, list the rest
            repo, revision = f"({e})", "-"
        out.append(
            {
                "name": name,
                "task": s.task,
                "repo": repo,
                "revision": revision or "(local folder)",
                "cached": "yes" if revision != "-" and is_cached(name) else "no",
            }
        )
    return out
