"""Photos from a public Hub dataset in imagefolder layout (`[split/]category/photo.jpg`).

Only public datasets, read anonymously (the server's own token is never used for a visitor's
request); each file goes through `Workspace.add` like any upload, within the caps, and is
deleted from the download folder at once. Torch-free.
"""

from __future__ import annotations

import shutil
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from models.image_classifier.fetch import mb
from models.image_classifier.images import IMAGE_EXTS
from models.image_classifier.workspace import Workspace, clean_label
from shared import limits
from shared.errors import UserError

SPLITS = {"train", "training", "valid", "val", "validation", "test", "data"}


def categories(files: list[str]) -> dict[str, list[str]]:
    """{category: files} of an imagefolder listing: the folder holding each photo."""
    found: dict[str, list[str]] = defaultdict(list)
    for f in files:
        path = PurePosixPath(f)
        if path.suffix.lower() in IMAGE_EXTS and len(path.parts) >= 2:
            folder = path.parent.name
            if folder.lower() not in SPLITS:
                found[folder].append(f)
    return dict(found)


def collect(
    ws: Workspace, dataset: str, per_class: int, stop: threading.Event | None = None
) -> Iterator[tuple[int, int, Counter]]:
    """Add up to `per_class` photos of each category of `dataset` ("owner/name[@revision]")
    to `ws`; yields (done, total, outcomes) as it goes."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    repo, _, revision = dataset.strip().partition("@")
    api = HfApi(token=False)  # anonymous: a visitor's request never uses the server's token
    try:
        files = api.list_repo_files(repo, repo_type="dataset", revision=revision or None)
    except (HfHubHTTPError, HFValidationError, ValueError):
        raise UserError(
            f"The dataset '{dataset[:80]}' was not found on the Hub (or it is private). "
            "Give the id of a public dataset, like owner/name."
        ) from None
    found = categories(files)
    if not found:
        raise UserError(
            f"{repo} has no photos in folders (imagefolder layout: category/photo.jpg). "
            "Datasets stored as Parquet are not supported here; upload a zip instead."
        )
    if len(found) > limits.BUILD_CLASSES.value:
        raise UserError(
            f"{repo} has {len(found)} categories; the cap is {limits.BUILD_CLASSES} "
            f"({limits.BUILD_CLASSES.reason})."
        )
    per_class = int(min(per_class, limits.BUILD_PHOTOS_PER_CLASS.value))
    chosen = [(label, f) for label, fs in sorted(found.items()) for f in sorted(fs)[:per_class]]
    outcomes: Counter = Counter()
    tmp = ws.dir / "incoming" / "hub"
    source = f"Hub dataset {repo}"
    try:
        for i, (folder, name) in enumerate(chosen, 1):
            if stop is not None and stop.is_set():
                break
            try:
                path = Path(
                    hf_hub_download(
                        repo,
                        name,
                        repo_type="dataset",
                        revision=revision or None,
                        local_dir=tmp,
                        token=False,
                    )
                )
            except HfHubHTTPError:
                outcomes[ws.skip("could not be downloaded")] += 1
                continue
            if path.stat().st_size > limits.BUILD_PHOTO_BYTES.value:
                outcomes[ws.skip(f"larger than {mb(limits.BUILD_PHOTO_BYTES.value)}")] += 1
            else:
                outcomes[ws.add(path.read_bytes(), clean_label(folder), source) or "kept"] += 1
            path.unlink(missing_ok=True)
            yield i, len(chosen), outcomes
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        ws.save()
