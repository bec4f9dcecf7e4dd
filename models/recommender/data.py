"""Ratings and movies: MovieLens 100k (downloaded when missing) or a ratings CSV, split in two.

`load_data` is the entry: a MovieLens folder or a ratings file, split at random (seeded) or by
explicit train/valid files, with the movies' titles and genres. `encode` and `sorted_ids` turn
the string ids into the embedding indices the models use. Torch-free.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from shared.errors import UserError

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ALIASES = {  # accepted CSV headers (MovieLens "latest" uses userId,movieId)
    "user": ("user", "userid", "user_id"),
    "item": ("item", "itemid", "item_id", "movie", "movieid", "movie_id"),
    "rating": ("rating", "stars", "score"),
    "title": ("title", "name"),
}


@dataclass
class Data:
    """Ratings split in two (columns user, item: str ids; rating: float) and the movies."""

    train: pd.DataFrame
    valid: pd.DataFrame
    items: pd.DataFrame  # index: item id (str); columns title, genres (list of str)


def download_movielens(dest: Path) -> Path:
    """Download and unpack the official GroupLens MovieLens 100k archive into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "ml-100k.zip"
    part = archive.with_suffix(".part")
    try:
        with urllib.request.urlopen(ML100K_URL, timeout=60) as r, open(part, "wb") as f:
            size = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc="ml-100k.zip") as bar:
                while chunk := r.read(1 << 16):
                    f.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as e:
        part.unlink(missing_ok=True)
        raise UserError(
            f"Could not download MovieLens 100k from {ML100K_URL} ({e}). Download and unzip it "
            f"yourself, then pass --data path/to/ml-100k."
        ) from None
    part.rename(archive)
    with zipfile.ZipFile(archive) as z:
        z.extractall(dest)
    archive.unlink()
    return dest / "ml-100k"


def movielens_folder(path: Path) -> Path:
    """The folder holding u.data: `path` itself, `path/ml-100k`, or a fresh download there."""
    path = Path(path)
    for folder in (path, path / "ml-100k"):
        if (folder / "u.data").is_file():
            return folder
    if path.exists() and any(path.iterdir()):
        raise UserError(f"{path} has no u.data: pass a MovieLens 100k folder or a ratings CSV.")
    return download_movielens(path.parent if path.name == "ml-100k" else path)


def _column(frame: pd.DataFrame, name: str) -> str | None:
    return next((c for c in frame.columns if c in ALIASES[name]), None)


def read_ratings(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Ratings from MovieLens tab format (user item rating [time]) or a CSV with a header
    `user,item,rating[,title]`. Returns (ratings, titles or None); raises UserError when
    a column is missing or a rating is not a number."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Ratings file {path} not found.")
    with open(path, encoding="latin-1") as f:
        first = f.readline()
    if "\t" in first:  # MovieLens u.data / u1.base: no header
        frame = pd.read_csv(path, sep="\t", header=None, dtype=str, encoding="latin-1")
        if frame.shape[1] < 3:
            raise UserError(
                f"{path.name}: expected tab-separated columns user, item, rating; "
                f"found {frame.shape[1]} column(s)."
            )
        frame = frame.iloc[:, :3].set_axis(["user", "item", "rating"], axis=1)
        header = 0
    else:
        frame = pd.read_csv(path, dtype=str, skipinitialspace=True, encoding="latin-1")
        frame.columns = [str(c).strip().lower() for c in frame.columns]
        found = {k: _column(frame, k) for k in ALIASES}
        missing = [k for k in ("user", "item", "rating") if found[k] is None]
        if missing:
            raise UserError(
                f"{path.name} lacks the column(s) {', '.join(missing)}: a ratings CSV needs a "
                f"header user,item,rating[,title]; it has {', '.join(frame.columns)}."
            )
        frame = frame.rename(columns={v: k for k, v in found.items() if v})
        header = 1
    if frame.empty:
        raise UserError(f"{path.name} has no ratings.")
    for col in ("user", "item"):
        blank = frame[col].isna() | (frame[col].str.strip() == "")
        if blank.any():
            line = int(np.argmax(blank.to_numpy())) + 1 + header
            raise UserError(f"{path.name}, line {line}: the {col} is empty.")
        frame[col] = frame[col].str.strip()
    stars = pd.to_numeric(frame["rating"], errors="coerce")
    bad = stars.isna() | ~np.isfinite(stars)
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise UserError(
            f"{path.name}, line {i + 1 + header}: the rating {frame['rating'].iloc[i]!r} "
            f"is not a number."
        )
    ratings = pd.DataFrame(
        {"user": frame["user"], "item": frame["item"], "rating": stars.astype("float32")}
    )
    titles = None
    if "title" in frame:
        titles = frame.dropna(subset=["title"]).drop_duplicates("item").set_index("item")
        titles = pd.DataFrame({"title": titles["title"], "genres": [[]] * len(titles)})
    return ratings, titles


def read_movielens_items(folder: Path) -> pd.DataFrame:
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


def split(ratings: pd.DataFrame, valid_pct: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded random split: (train, valid) with `valid_pct` of the ratings in valid."""
    if not 0 <= valid_pct < 1:
        raise UserError(f"valid_pct must be in [0, 1), got {valid_pct}.")
    order = np.random.default_rng(seed).permutation(len(ratings))
    n = int(round(valid_pct * len(ratings)))
    return ratings.iloc[order[n:]], ratings.iloc[order[:n]]


def load_data(
    data: str | Path | None = None,
    *,
    train: str | Path | None = None,
    valid: str | Path | None = None,
    valid_pct: float = 0.2,
    seed: int = 42,
) -> Data:
    """MovieLens 100k (folder, downloaded when missing) or a ratings file, split in two.

    `train`/`valid`: explicit files (MovieLens tab format or CSV) instead of a random split;
    `data` then only provides the titles (a MovieLens folder), if given.
    """
    if valid is not None and train is None:
        raise UserError("--valid needs --train too.")
    found = []  # title tables, first one wins
    ratings = None
    if data is not None and Path(data).is_file():
        ratings, titles = read_ratings(data)
        found.append(titles)
    elif data is not None or train is None:
        folder = movielens_folder(Path(data or "ml-100k"))
        found.append(read_movielens_items(folder))
        if train is None:
            ratings = read_ratings(folder / "u.data")[0]
    if train is not None:
        ratings, titles = read_ratings(train)
        found.append(titles)
    if valid is not None:
        va, titles = read_ratings(valid)
        found.append(titles)
        tr = ratings
    else:
        tr, va = split(ratings, valid_pct, seed)
    ids = pd.unique(pd.concat([tr["item"], va["item"]]))
    known = pd.concat([t for t in found if t is not None] or [pd.DataFrame(columns=["title"])])
    known = known[~known.index.duplicated()].reindex(ids)
    titles = [
        t if isinstance(t, str) else f"item {i}" for i, t in zip(ids, known["title"], strict=True)
    ]
    genres = [g if isinstance(g, list) else [] for g in known.get("genres", [None] * len(ids))]
    items = pd.DataFrame({"title": titles, "genres": genres}, index=pd.Index(ids, name="item"))
    return Data(tr.reset_index(drop=True), va.reset_index(drop=True), items)


def sorted_ids(ids: Any) -> list[str]:
    """Ids in a stable order: numerically when they are all numbers."""
    ids = sorted(set(ids))
    if all(i.isdigit() for i in ids):
        return sorted(ids, key=int)
    return ids


def encode(frame: pd.DataFrame, users: dict[str, int], items: dict[str, int]) -> tuple:
    """(user index, item index, rating) arrays of the rows whose user and item are known."""
    u = frame["user"].map(users)
    i = frame["item"].map(items)
    keep = (u.notna() & i.notna()).to_numpy()
    return (
        u[keep].to_numpy(np.int64),
        i[keep].to_numpy(np.int64),
        frame["rating"].to_numpy(np.float32)[keep],
    )
