"""Labelled images: find them, check they decode, split them, and serve them to torch.

Labels come from class folders, a CSV, or file names (`find_items`); `verify_images` drops the
files that do not decode (counted as skipped, with the reason); `split` keeps a given split or
makes a seeded one, stratified by label; `ImageDataset` reads with `read_image`.
"""

from __future__ import annotations

import csv
import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from models.image_classifier.config import PETS_BREED
from models.image_classifier.images import IMAGE_EXTS, MIN_SIDE, read_image
from shared.errors import UserError

VALID_VALUES = {"valid", "val", "validation", "test", "true", "1", "yes"}


@dataclass
class Items:
    """Labelled images: paths, labels, which are validation (None: split at random), skips."""

    paths: list[Path]
    labels: list[str]
    valid: list[bool] | None = None
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> file names

    def skip(self, reason: str, what: str) -> None:
        self.skipped.setdefault(reason, []).append(what)


def find_items(
    data: str | Path,
    *,
    labels: str = "auto",
    label_re: str = PETS_BREED,
    path_col: str = "path",
    label_col: str = "label",
    split_col: str | None = None,
) -> Items:
    """Find labelled images in `data`.

    labels: "folder" (a folder per class; `train/` + `valid/` folders give the split),
    "csv" (`data` is a CSV of path,label[,split]), "filename" (the first group of `label_re`
    applied to each file name; default: Oxford pets breeds), "species" (Oxford pets: cat
    when the name starts with a capital, else dog), or "auto" (csv for a .csv file, folder
    when `data` has sub-folders with images, else filename).
    """
    data = Path(data)
    if not data.exists():
        raise UserError(f"{data} does not exist.")
    if labels == "auto":
        labels = _guess_labels(data)
    if labels == "csv":
        return _from_csv(data, path_col, label_col, split_col)
    if not data.is_dir():
        raise UserError(f"{data} is not a folder (pass a CSV file with --labels csv).")
    if labels == "folder":
        return _from_folders(data)
    if labels in ("filename", "species"):
        items = Items([], [])
        pattern = re.compile(label_re)
        for p in _images_under(data, items):
            if labels == "species":
                items.paths.append(p)
                items.labels.append("cat" if p.name[:1].isupper() else "dog")
            elif m := pattern.match(p.name):
                items.paths.append(p)
                items.labels.append(m.group(1) if m.groups() else m.group(0))
            else:
                items.skip(f"name does not match {label_re}", p.name)
        return items
    raise UserError(f"Unknown label source '{labels}': use folder, csv, filename or species.")


def _guess_labels(data: Path) -> str:
    if data.is_file():
        return "csv"
    subdirs = [d for d in data.iterdir() if d.is_dir() and not d.name.startswith(".")]
    return "folder" if any(_has_images(d) for d in subdirs) else "filename"


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTS for p in folder.rglob("*"))


def _images_under(folder: Path, items: Items) -> list[Path]:
    found = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        if p.suffix.lower() in IMAGE_EXTS:
            found.append(p)
        else:
            items.skip("not an image file", p.name)
    return found


def _from_folders(data: Path) -> Items:
    items = Items([], [], [])
    split = {d.name.lower(): d for d in data.iterdir() if d.is_dir()}
    valid_dir = next((split[n] for n in ("valid", "val", "validation") if n in split), None)
    roots = (
        [(split["train"], False), (valid_dir, True)]
        if "train" in split and valid_dir
        else [(data, False)]
    )
    for root, is_valid in roots:
        for class_dir in sorted(
            d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
        ):
            files = _images_under(class_dir, items)
            if not files:
                items.skip("empty class folder", str(class_dir.relative_to(data)))
            for p in files:
                items.paths.append(p)
                items.labels.append(class_dir.name)
                items.valid.append(is_valid)
        for p in root.iterdir():  # loose files next to the class folders have no label
            if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
                items.skip("not in a class folder", p.name)
    if len(roots) == 1:
        items.valid = None  # no given split: random
    return items


def _from_csv(path: Path, path_col: str, label_col: str, split_col: str | None) -> Items:
    items = Items([], [], [] if split_col else None)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        for col in (path_col, label_col, split_col):
            if col and col not in cols:
                raise UserError(f"{path.name} has no column '{col}' (columns: {', '.join(cols)}).")
        for row in reader:
            p, label = (path.parent / row[path_col].strip()), row[label_col].strip()
            if not label:
                items.skip("no label in the CSV", p.name)
            elif p.suffix.lower() not in IMAGE_EXTS:
                items.skip("not an image file", p.name)
            else:
                items.paths.append(p)
                items.labels.append(label)
                if split_col:
                    items.valid.append(row[split_col].strip().lower() in VALID_VALUES)
    return items


def verify_images(items: Items, *, workers: int = 4, progress: bool = True) -> Items:
    """Keep the images that decode (the course's `verify_images`); count the others as skipped."""

    def check(p: Path) -> str | None:
        try:
            read_image(p, min_side=MIN_SIDE)  # JPEGs decode at 1/8 scale: fast, still complete
        except UserError as e:
            return str(e)
        return None

    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        problems = list(
            tqdm(
                pool.map(check, items.paths),
                total=len(items.paths),
                desc="verify images",
                disable=not progress,
                leave=False,
            )
        )
    keep = [i for i, problem in enumerate(problems) if problem is None]
    out = Items(
        [items.paths[i] for i in keep],
        [items.labels[i] for i in keep],
        [items.valid[i] for i in keep] if items.valid is not None else None,
        dict(items.skipped),
    )
    for problem in problems:
        if problem is not None:
            out.skip("unreadable", problem)
    return out


def split(items: Items, valid_pct: float = 0.2, seed: int = 42) -> tuple[list[int], list[int]]:
    """Train and validation indices: the given split, else a seeded split stratified by label."""
    if items.valid is not None and any(items.valid):
        valid = [i for i, v in enumerate(items.valid) if v]
        return [i for i, v in enumerate(items.valid) if not v], valid
    rng = random.Random(seed)
    by_label = defaultdict(list)
    for i, label in enumerate(items.labels):
        by_label[label].append(i)
    train, valid = [], []
    for label in sorted(by_label):
        idx = by_label[label]
        rng.shuffle(idx)
        n = round(len(idx) * valid_pct)
        if valid_pct > 0 and len(idx) >= 2:
            n = min(max(n, 1), len(idx) - 1)  # every class in both sets when it can be
        valid += idx[:n]
        train += idx[n:]
    return sorted(train), sorted(valid)


def describe_skips(items: Items) -> str:
    """One line per reason: how many files were skipped, with a few examples."""
    lines = []
    for reason, what in items.skipped.items():
        examples = "; ".join(what[:3]) + ("; ..." if len(what) > 3 else "")
        lines.append(f"skipped {len(what)} ({reason}): {examples}")
    return "\n".join(lines)


class ImageDataset(torch.utils.data.Dataset):
    """(transformed image, class index) pairs read with `read_image`."""

    def __init__(self, paths: Sequence[Path], targets: Sequence[int], transform: Callable):
        self.paths, self.targets, self.transform = list(paths), list(targets), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, _ = read_image(self.paths[i])
        return self.transform(image), self.targets[i]
