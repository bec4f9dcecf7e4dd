"""Hub I/O: push model folders, write model cards, deploy Spaces.

The token comes only from the environment (HF_TOKEN) or the user's `hf auth login`;
huggingface_hub reads it itself and we never print it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, SpaceCard, SpaceCardData

from shared.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
# What a deployed Space needs beside its own folder.
SPACE_PAYLOAD = ("shared", "models", "requirements.txt")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store")


def push(
    folder: str | Path,
    repo_id: str,
    *,
    message: str = "Upload model",
    repo_type: str = "model",
    private: bool | None = None,
) -> str:
    """Upload `folder` to `repo_id` (created if needed) and return the head commit id.

    Files already on the Hub with the same content are skipped; a push that changes nothing
    makes no commit and returns the current head.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder.")
    api = HfApi()
    kwargs = {"space_sdk": "gradio"} if repo_type == "space" else {}
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **kwargs)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type=repo_type,
        commit_message=message,
        ignore_patterns=["__pycache__/*", "*.pyc", "checkpoints/*", ".*"],
    )
    return info.oid


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
    license: str = "apache-2.0",
    metrics: dict[str, float] | None = None,
) -> Path:
    """Write README.md (the model card) into `folder`: Hub metadata plus a human description."""
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
    data = ModelCardData(
        model_name=title,
        library_name=library_name,
        pipeline_tag=pipeline_tag,
        tags=["fastai-course-demos", *tags],
        datasets=datasets or None,
        base_model=base_model,
        license=license,
        eval_results=results or None,
        metrics=list(metrics) or None,
    )
    table = "\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items())
    body = f"""# {title}

{summary}

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
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    path = Path(folder) / "README.md"
    card.save(path)
    return path


def assemble_space(space: str, dest: Path) -> Path:
    """Lay out the Space `space` as the Hub expects it: its app.py at the root, plus the code."""
    from shared import registry

    src = ROOT / "spaces" / space
    if not (src / "app.py").is_file():
        known = ", ".join(sorted(p.parent.name for p in (ROOT / "spaces").glob("*/app.py")))
        raise UserError(f"No Space '{space}' (spaces/{space}/app.py). Known Spaces: {known}.")
    shutil.copytree(src, dest, dirs_exist_ok=True, ignore=IGNORE)
    for item in SPACE_PAYLOAD:
        path = ROOT / item
        if path.is_dir():
            shutil.copytree(path, dest / item, dirs_exist_ok=True, ignore=IGNORE)
        else:
            shutil.copy2(path, dest / item)

    readme = src / "README.md"
    card = SpaceCard.load(readme) if readme.is_file() else None
    front, body = (card.data.to_dict(), card.text) if card else ({}, "")
    front.update(
        sdk="gradio",
        sdk_version=metadata.version("gradio"),
        app_file="app.py",
        models=[
            repo
            for m in registry.specs().values()
            if m.space == space
            for repo, revision in [registry.source(m.name)]
            if revision is not None  # a local folder is no Hub model
        ],
    )
    front.setdefault("title", space.replace("_", " ").title())
    front.setdefault("emoji", "🤗")
    front.setdefault("suggested_hardware", "cpu-basic")
    front.setdefault("short_description", front["title"])
    text = f"---\n{SpaceCardData(**front).to_yaml()}\n---\n{body}"
    SpaceCard(text).save(dest / "README.md")
    return dest


def deploy(space: str, repo_id: str) -> str:
    """Push the Space `space` to the Hub Space `repo_id`; return the commit id."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = assemble_space(space, Path(tmp) / space)
        return push(folder, repo_id, repo_type="space", message=f"Deploy {space}")
