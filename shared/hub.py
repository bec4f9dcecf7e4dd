"""Hub I/O: push model folders, write model cards, deploy Spaces.

The token comes only from the environment (HF_TOKEN) or the user's `hf auth login`;
huggingface_hub reads it itself and we never print it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterable
from fnmatch import fnmatch
from importlib import metadata
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, SpaceCard, SpaceCardData

from shared.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store")


# What a model push uploads by default: weights, configs, tokenizers, exports, the card and its
# pictures. Anything else in the folder (notes, logs, a stray token file) stays local.
MODEL_FILES = (
    "*.safetensors",
    "*.json",
    "*.onnx",
    "*.onnx.data",
    "*.model",
    "README.md",
    "*.png",
    "*.jpg",
    "*.jpeg",
)


def push(
    folder: str | Path,
    repo_id: str,
    *,
    message: str = "Upload model",
    repo_type: str = "model",
    private: bool | None = None,
    patterns: Iterable[str] | None = MODEL_FILES,
    token: str | None = None,
) -> str:
    """Make `repo_id` (created if needed) hold exactly the files of `folder` that match
    `patterns` (None: every file), deleting the repo's other files; return the head commit id.

    Files already on the Hub with the same content are skipped; a push that changes nothing
    makes no commit and returns the current head. `token`: a visitor's OAuth token; by default
    huggingface_hub reads HF_TOKEN or the `hf auth login` token itself.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder.")
    allow = None if patterns is None else list(patterns)
    if allow is not None and not any(_matches(p, allow) for p in _files(folder)):
        raise UserError(f"{folder} holds no model files ({', '.join(allow)}).")
    api = HfApi(token=token)
    kwargs = {"space_sdk": "gradio"} if repo_type == "space" else {}
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **kwargs)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type=repo_type,
        commit_message=message,
        allow_patterns=allow,
        ignore_patterns=["__pycache__/*", "*.pyc", "checkpoints/*", ".*", "*/.*"],
        delete_patterns="*",  # what the folder no longer has goes (.gitattributes stays)
    )
    return info.oid


def _files(folder: Path) -> list[str]:
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]


def _matches(path: str, patterns: list[str]) -> bool:
    return any(fnmatch(path, p) for p in patterns)


def left_out(folder: str | Path, patterns: Iterable[str] = MODEL_FILES) -> list[str]:
    """The files of `folder` a model push would not upload."""
    allow = list(patterns)
    return sorted(p for p in _files(Path(folder)) if not _matches(p, allow))


def write_card(
    folder: str | Path,
    *,
    title: str,
    summary: str,
    library_name: str,
    pipeline_tag: str,
    task_name: str,
    dataset_name: str,
    training: str,
    usage: str,
    base_model: str | None = None,
    datasets: Iterable[str] = (),
    tags: Iterable[str] = (),
    license: str = "other",
    license_name: str | None = None,
    license_link: str | None = None,
    data: str = "",
    metrics: dict[str, float] | None = None,
) -> Path:
    """Write README.md (the model card) into `folder`: Hub metadata plus a human description.

    The licence is each family's deliberate choice, from its data's terms: `license` is a Hub
    licence id, or "other" with a `license_name` (a slug) and a `license_link`; never a code
    licence by default. `data`: where the training data comes from and under which terms
    (markdown), for the card's own section.
    """
    metrics = metrics or {}
    datasets = list(datasets)
    results = [
        EvalResult(
            task_type=pipeline_tag,
            task_name=task_name,
            dataset_type=datasets[0] if datasets else dataset_name,
            dataset_name=dataset_name,
            metric_type=key,
            metric_value=round(float(value), 4),
        )
        for key, value in metrics.items()
    ]
    meta = ModelCardData(
        model_name=title,
        library_name=library_name,
        pipeline_tag=pipeline_tag,
        tags=["fastai-course-demos", *tags],
        datasets=datasets or None,
        base_model=base_model,
        license=license,
        license_name=license_name if license == "other" else None,
        license_link=license_link if license == "other" else None,
        eval_results=results or None,
        metrics=list(metrics) or None,
    )
    table = "\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items())
    terms = f"[{license_name}]({license_link})" if license_name and license_link else license
    body = f"""# {title}

{summary}

## Data and licence

{data or "See the training section for the data."}

Licence of this model: {terms}.

## Training

{training}

## Metrics

| metric | value |
|---|---|
{table or "| (none measured) | |"}

## How to use

```python
{usage.strip()}
```

Made with the [fast.ai course demos](https://github.com/fastai-course-demos) suite.
"""
    card = ModelCard(f"---\n{meta.to_yaml()}\n---\n\n{body}")
    path = Path(folder) / "README.md"
    card.save(path)
    return path


def space_names() -> list[str]:
    """The Spaces under spaces/ (each a folder with an app.py)."""
    return sorted(p.parent.name for p in (ROOT / "spaces").glob("*/app.py"))


def space_repo(namespace: str, space: str) -> str:
    """The Hub id a Space is published under: `you/image-classifier` for spaces/image_classifier."""
    return f"{namespace}/{space.replace('_', '-')}"


def space_models(space: str | None = None) -> list[str]:
    """The registry models that the Space `space` serves (None: the whole suite, every model)."""
    from shared import registry

    return [m.name for m in registry.specs().values() if space is None or m.space == space]


def pin(names: Iterable[str], *, token: str | None = None) -> dict[str, str]:
    """The exact commit each model is served from now: {name: "repo@commit"}.

    A model whose default repo does not exist yet but that builds itself (`Spec.build`) is left
    out; a local folder, or another missing repo, is an error: a Space can only serve models
    that are on the Hub."""
    from shared import registry

    api, pins = HfApi(token=token), {}
    for name in names:
        repo, revision = registry.source(name)
        if revision is None:
            raise UserError(
                f"Model '{name}' comes from a local folder ({repo}); push it to the Hub and "
                f"set {registry.env_var(name)} to that repo before deploying."
            )
        try:
            commit = api.repo_info(repo, revision=revision).sha
        except Exception as e:
            if registry.spec(name).build is not None and registry.is_default(name):
                continue  # it builds itself on first use (and says so)
            raise UserError(
                f"Model '{name}' ({repo}@{revision}) could not be found on the Hub "
                f"({type(e).__name__}); publish it before deploying a Space that serves it."
            ) from None
        pins[name] = f"{repo}@{commit}"
    return pins


def assemble_space(
    space: str, dest: Path, pins: dict[str, str] | None = None, *, token: str | None = None
) -> Path:
    """Lay out the Space `space` as the Hub expects it: its app.py at the root, the code, its
    own requirements, the models it serves pinned to exact commits (pins.json, read by the
    registry), and the card's front matter naming them."""
    src = ROOT / "spaces" / space
    if not (src / "app.py").is_file():
        known = ", ".join(space_names())
        raise UserError(f"No Space '{space}' (spaces/{space}/app.py). Known Spaces: {known}.")
    shutil.copytree(src, dest, dirs_exist_ok=True, ignore=IGNORE)
    _copy_code(dest)
    if not (dest / "requirements.txt").exists():
        shutil.copy2(ROOT / "requirements.txt", dest / "requirements.txt")
    pins = pin(space_models(space), token=token) if pins is None else pins
    front, body = _card(src / "README.md")
    front.setdefault("title", space.replace("_", " ").title())
    _finish(dest, pins, front, body, token)
    return dest


# The whole suite as one Space: every demo as a tab (app.py at the repo root).
SUITE = "fastai-course-demos"
SUITE_CARD = {
    "title": "Practical Deep Learning — live demos",
    "emoji": "🎓",
    "colorFrom": "yellow",
    "colorTo": "indigo",
    "short_description": "The fast.ai course's applications, one tab each",
    # the text-to-image tab wants a GPU; the others run on its CPU as well
    "suggested_hardware": "zero-a10g",
    "license": "apache-2.0",
    "tags": ["mcp-server", "fastai"],
}


def assemble_suite(
    dest: Path, pins: dict[str, str] | None = None, *, token: str | None = None
) -> Path:
    """Lay out the whole suite as one Space: app.py, every Space under spaces/, the code, the
    union of the Spaces' requirements, every model pinned."""
    from shared.suite import HEADER

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "app.py", dest / "app.py")
    shutil.copytree(ROOT / "spaces", dest / "spaces", dirs_exist_ok=True, ignore=IGNORE)
    _copy_code(dest)
    lines = {  # the requirements, without their comments
        line.partition("#")[0].strip()
        for path in sorted((ROOT / "spaces").glob("*/requirements.txt"))
        for line in path.read_text().splitlines()
    } - {""}
    (dest / "requirements.txt").write_text("\n".join(sorted(lines, key=str.lower)) + "\n")
    pins = pin(space_models(), token=token) if pins is None else pins
    body = HEADER.replace("# Practical", "# 🎓 Practical", 1)
    _finish(dest, pins, dict(SUITE_CARD), body, token)
    return dest


def _copy_code(dest: Path) -> None:
    for item in ("shared", "models"):
        shutil.copytree(ROOT / item, dest / item, dirs_exist_ok=True, ignore=IGNORE)


def _card(readme: Path) -> tuple[dict, str]:
    """A Space README's front matter and body (SpaceCard reads CRLF and files without a final
    newline alike)."""
    if not readme.is_file():
        return {}, ""
    card = SpaceCard.load(readme)
    return card.data.to_dict(), card.text


def _finish(dest: Path, pins: dict[str, str], front: dict, body: str, token: str | None) -> None:
    """pins.json, and the card's front matter: the SDK, Python, the pinned models to preload."""
    from shared import registry

    (dest / registry.PINS).write_text(json.dumps(pins, indent=2, sort_keys=True) + "\n")
    repos = [value.partition("@") for value in pins.values()]
    front.update(
        sdk="gradio",
        sdk_version=metadata.version("gradio"),
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        app_file="app.py",
        models=[repo for repo, _, _ in repos] or None,
        preload_from_hub=[
            f"{repo} {','.join(_model_files(name, repo, commit, token))} {commit}"
            for name, (repo, _, commit) in zip(pins, repos, strict=True)
        ]
        or None,
    )
    front.setdefault("emoji", "🤗")
    front.setdefault("suggested_hardware", "cpu-basic")
    front.setdefault("short_description", front["title"])
    front = {k: v for k, v in front.items() if v is not None}
    text = f"---\n{SpaceCardData(**front).to_yaml()}\n---\n{body}"
    SpaceCard(text).save(dest / "README.md")


def _model_files(name: str, repo: str, commit: str, token: str | None = None) -> list[str]:
    """The files of model `name` at `commit` that the registry downloads (for preloading)."""
    from shared import registry

    patterns = registry.spec(name).patterns()
    files = HfApi(token=token).list_repo_files(repo, revision=commit)
    return [f for f in files if _matches(f, patterns)]


def deploy(
    space: str,
    repo_id: str,
    *,
    pins: dict[str, str] | None = None,
    private: bool | None = None,
    token: str | None = None,
) -> str:
    """Push the Space `space` (or `SUITE`, the whole suite) to the Hub Space `repo_id`; return
    the commit id.

    `pins` ({model name: "repo@commit"}): the models the Space serves; by default the exact
    commits the registry's current sources point at. Files the Space no longer has are
    deleted from its repo; a deploy that changes nothing makes no commit."""
    with tempfile.TemporaryDirectory() as tmp:
        if space == SUITE:
            folder = assemble_suite(Path(tmp) / space, pins, token=token)
        else:
            folder = assemble_space(space, Path(tmp) / space, pins, token=token)
        return push(
            folder,
            repo_id,
            repo_type="space",
            message=f"Deploy {space}",
            private=private,
            patterns=None,
            token=token,
        )
