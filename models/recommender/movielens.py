"""MovieLens 100k from its official source: GroupLens' archive, downloaded once into a cache.

GroupLens' terms forbid redistributing the data, so nothing here ships it: `folder()` downloads
the archive from GroupLens (or the mirror named by DEMO_MOVIELENS_URL) into the Hugging Face
cache once, with a progress bar, checks the sha256 of the files we read, and only then moves it
into place, so a failed or corrupt download leaves nothing behind. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from shared.errors import UserError

NAME = "movielens-100k"  # what a model's config.json records as its data set
URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
URL_VAR = "DEMO_MOVIELENS_URL"  # a mirror of the archive (the tests serve one on 127.0.0.1)
SHA256_VAR = "DEMO_MOVIELENS_SHA256"  # {file: sha256} of a mirror that serves other data
# The files we read, as GroupLens publishes them (identical in independent copies).
SHA256 = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
}
TERMS = "https://files.grouplens.org/datasets/movielens/ml-100k-README.txt"
CITATION = (
    "F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and "
    "Context. ACM Transactions on Interactive Intelligent Systems (TiiS) 5, 4: 19:1-19:19."
)


class DownloadError(UserError):
    """The archive could not be fetched, or is not GroupLens' data; `reason` says which."""

    def __init__(self, source: str, reason: str, fix: str) -> None:
        super().__init__(f"{reason} {fix}")
        self.source, self.reason = source, reason


def url() -> str:
    return os.environ.get(URL_VAR, "").strip() or URL


def checksums() -> dict[str, str]:
    value = os.environ.get(SHA256_VAR, "").strip()
    return json.loads(value) if value else SHA256


def cache() -> Path:
    """Where the download goes: beside the models in the Hugging Face cache (HF_HOME)."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "demos" / "ml-100k"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fetch(source: str, archive: Path) -> None:
    with urllib.request.urlopen(source, timeout=60) as r, open(archive, "wb") as f:
        size = int(r.headers.get("Content-Length") or 0) or None
        with tqdm(total=size, unit="B", unit_scale=True, desc="MovieLens 100k") as bar:
            while chunk := r.read(1 << 16):
                f.write(chunk)
                bar.update(len(chunk))


def download(dest: Path) -> Path:
    """Download the archive, check it and unpack it as the folder `dest` (holding u.data)."""
    from filelock import FileLock

    dest = Path(dest).absolute()
    lock = cache().parent / ".ml-100k.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):  # two processes starting at once download once
        if (dest / "u.data").is_file():
            return dest
        made = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".ml-100k-") as tmp:
                _unpack_checked(Path(tmp))
                if dest.is_dir():
                    dest.rmdir()  # an empty folder given as --data
                shutil.move(Path(tmp) / "ml-100k", dest)
        except BaseException:
            for p in made:  # a failed download leaves no empty folders behind
                if p.is_dir() and not any(p.iterdir()):
                    p.rmdir()
            raise
    return dest


def _unpack_checked(tmp: Path) -> None:
    source = url()
    archive = tmp / "ml-100k.zip"
    try:
        _fetch(source, archive)
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
    except (urllib.error.URLError, OSError, zipfile.BadZipFile) as e:
        raise DownloadError(
            source,
            f"Could not download MovieLens 100k from {source} ({e}).",
            "Download and unzip it yourself, then pass --data path/to/ml-100k.",
        ) from None
    for name, expected in sorted(checksums().items()):
        path = tmp / "ml-100k" / name
        if not path.is_file() or _sha256(path) != expected:
            state = "different" if path.is_file() else "missing"
            raise DownloadError(
                source,
                f"The MovieLens 100k download from {source} is not GroupLens' data: {name} is "
                f"{state} (sha256 check).",
                "Nothing was kept; try again later.",
            )


def folder(path: str | Path | None = None) -> Path:
    """The folder holding u.data: `path` itself or `path/ml-100k`, downloaded into `path` when
    it does not exist; with no path, the cached download (made on first use)."""
    if path is None:
        return cached()
    path = Path(path)
    for found in (path, path / "ml-100k"):
        if (found / "u.data").is_file():
            return found
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"{path} has no u.data: pass a MovieLens 100k folder or a ratings CSV.")
    return download(path)


def cached() -> Path:
    """The cached download, made now if needed."""
    dest = cache()
    return dest if (dest / "u.data").is_file() else download(dest)


def is_cached() -> bool:
    return (cache() / "u.data").is_file()


def read_items(folder: Path) -> pd.DataFrame:
    """Titles (latin-1, with the year) and genres from u.item and u.genre."""
    genres = pd.read_csv(folder / "u.genre", sep="|", header=None, encoding="latin-1")[0].tolist()
    items = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1", dtype={0: str})
    flags = items.iloc[:, 5 : 5 + len(genres)].to_numpy()
    return pd.DataFrame(
        {
            "title": items[1].to_numpy(),
            "genres": [[g for g, f in zip(genres, row, strict=True) if f] for row in flags],
        },
        index=pd.Index(items[0].to_numpy(), name="item"),
    )
