"""Public image data behind `--data`: a Hub dataset of parquet files, downloaded once.

`--data hf://datasets/OWNER/NAME[@REVISION]` names an image-classification dataset on the Hub
laid out as the `datasets` library writes it: parquet files with an `image` column (the encoded
file's bytes and its name) and a `label` column (a class index, its names in the parquet's
metadata or the dataset card; or the label itself). The course's Oxford-IIIT Pet is
`hf://datasets/timm/oxford-iiit-pet` (CC BY-SA 4.0, from the VGG group's archives).

The parquet files download once into the Hugging Face cache (with its progress bar); each is
checked against the sha256 the Hub records for it, then unpacked into a folder per class under
$DEMO_DATA_CACHE (default ~/.cache/fastai-course-demos), where `checksums.json` marks a complete
copy. Anything else passed as `--data` is a local path and is returned as it is.
Torch-free: huggingface_hub and pyarrow, imported when a dataset is fetched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from shared.errors import UserError

# argparse hands the value over as a Path, which folds "//" into "/": accept both.
HF_DATASET = re.compile(r"hf:/+datasets/([\w.-]+/[\w.-]+?)(?:@([\w./-]+))?/?")
MARKER = "checksums.json"
PETS = "timm/oxford-iiit-pet"
# What a model card says about the data sets we know: licence and source (markdown).
TERMS = {
    PETS: {
        "license": "cc-by-sa-4.0",
        "name": "Oxford-IIIT Pet",
        "text": (
            "The [Oxford-IIIT Pet](https://www.robots.ox.ac.uk/~vgg/data/pets/) data set "
            "(O. M. Parkhi, A. Vedaldi, A. Zisserman and C. V. Jawahar, *Cats and Dogs*, CVPR "
            "2012): 7,349 photos of 37 cat and dog breeds, here from the Hub dataset "
            "[timm/oxford-iiit-pet](https://huggingface.co/datasets/timm/oxford-iiit-pet), "
            "under the [CC BY-SA 4.0](https://creativecommons.org/licenses/by-sa/4.0/) licence; "
            "the photos' copyright stays with their owners. The example photos in `examples/` "
            "are images of that data set, shared under the same licence with this attribution, "
            "downsized. This model, trained on it, is shared alike under CC BY-SA 4.0."
        ),
    },
}


def fetch(data: str | Path) -> Path:
    """The local folder of `data`: a Hub dataset's unpacked copy, or `data` itself."""
    m = HF_DATASET.fullmatch(str(data))
    return hub_dataset(m[1], m[2] or "main") if m else Path(data)


def origin(folder: Path) -> dict | None:
    """Where an unpacked copy came from ({"dataset", "commit", ...}), or None for other data."""
    marker = Path(folder).parent / MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("DEMO_DATA_CACHE") or default / "fastai-course-demos")


def hub_dataset(repo: str, revision: str = "main") -> Path:
    """Download the parquet files of the Hub dataset `repo` at `revision` (once), check their
    sha256, unpack the images into a folder per class; return that folder."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    where = f"hf://datasets/{repo}@{revision}"
    done = cache_root() / "hf" / repo.replace("/", "--") / revision
    if re.fullmatch(r"[0-9a-f]{40}", revision) and (done / MARKER).is_file():
        return done / "images"  # a pinned commit, already here: no network needed
    api = HfApi()
    try:
        commit = api.dataset_info(repo, revision=revision).sha
        files = [
            f
            for f in api.list_repo_tree(repo, repo_type="dataset", revision=commit, recursive=True)
            if f.path.endswith(".parquet") and hasattr(f, "lfs")
        ]
    except RepositoryNotFoundError:
        raise UserError(f"{where}: no such dataset on the Hub (or it is private).") from None
    except HfHubHTTPError as e:
        raise UserError(f"{where}: the Hub could not list its files ({e}).") from None
    dest = cache_root() / "hf" / repo.replace("/", "--") / commit
    if (dest / MARKER).is_file():
        return dest / "images"
    if not files:
        raise UserError(f"{where} has no parquet files: it is not an image dataset this reads.")

    tmp = dest.with_name(dest.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    checksums, count = {}, 0
    for f in sorted(files, key=lambda f: f.path):
        local = Path(hf_hub_download(repo, f.path, repo_type="dataset", revision=commit))
        checksums[f.path] = sha256(local)
        expected = f.lfs.sha256 if f.lfs else None
        if expected and checksums[f.path] != expected:
            raise UserError(
                f"{where}: {f.path} does not match the Hub's checksum (sha256 {expected}); "
                f"delete it from the Hugging Face cache ({local}) and run again."
            )
        count += unpack(
            local, tmp / "images", split=Path(f.path).stem.split("-")[0], repo=repo, revision=commit
        )
    if not count:
        raise UserError(f"{where}: no labelled image found in its parquet files.")
    record = {"dataset": repo, "commit": commit, "images": count, "sha256": checksums}
    (tmp / MARKER).write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    print(f"{where}: {count} images in {dest / 'images'}")
    return dest / "images"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def unpack(parquet: Path, dest: Path, *, split: str, repo: str, revision: str) -> int:
    """Write the images of one parquet file into `dest/<label>/`; return how many."""
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    table = pq.ParquetFile(parquet)
    columns = table.schema_arrow.names
    if "image" not in columns or "label" not in columns:
        raise UserError(
            f"{parquet.name} has the columns {', '.join(columns)}; an image dataset needs an "
            "`image` column (bytes) and a `label` column."
        )
    names = class_names(table, repo, revision)
    wanted = ["image", "label"] + (["image_id"] if "image_id" in columns else [])
    count = 0
    with tqdm(total=table.metadata.num_rows, desc=f"unpacking {parquet.name}", unit="img") as bar:
        for batch in table.iter_batches(batch_size=256, columns=wanted):
            rows = batch.to_pylist()
            for row in rows:
                image, label = row["image"] or {}, row["label"]
                if not image.get("bytes") or label is None:
                    continue
                if isinstance(label, int) and names:
                    label = names[label] if 0 <= label < len(names) else f"class {label}"
                folder = dest / (re.sub(r"[^\w .-]+", "_", str(label)).strip() or "unlabelled")
                folder.mkdir(parents=True, exist_ok=True)
                (folder / file_name(row, split, count)).write_bytes(image["bytes"])
                count += 1
            bar.update(len(rows))
    return count


def file_name(row: dict, split: str, index: int) -> str:
    """The image's own file name when the dataset keeps it, else a numbered one."""
    original = Path((row["image"] or {}).get("path") or "").name
    stem = row.get("image_id") or Path(original).stem or f"{split}-{index:06d}"
    suffix = Path(original).suffix.lower() or ".jpg"
    return re.sub(r"[^\w.-]+", "_", str(stem)) + suffix


def class_names(table, repo: str, revision: str) -> list[str]:
    """The label names of a ClassLabel column: from the parquet's `datasets` metadata, else
    from the dataset card's `dataset_info`; [] when the labels are the names themselves."""
    meta = (table.schema_arrow.metadata or {}).get(b"huggingface")
    if meta:
        feature = json.loads(meta).get("info", {}).get("features", {}).get("label", {})
        if feature.get("names"):
            return list(feature["names"])
    from huggingface_hub import DatasetCard

    try:
        card = DatasetCard.load(repo, repo_type="dataset", revision=revision)
    except Exception:  # no card: the labels must be names
        return []
    infos = card.data.to_dict().get("dataset_info") or []
    for info in infos if isinstance(infos, list) else [infos]:
        for feature in info.get("features", []):
            names = ((feature.get("dtype") or {}).get("class_label") or {}).get("names")
            if feature.get("name") == "label" and names:
                return [names[k] for k in sorted(names, key=int)]
    return []
