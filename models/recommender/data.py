"""Ratings and movies: MovieLens 100k (movielens.py) or a ratings CSV, split in two.

`load_data` is the entry: a MovieLens folder or a ratings file, split at random (seeded), by a
canonical fold or by explicit train/valid files, with the movies' titles and genres.
`item_features` turns genres and release years into the movies' side features; `encode` and
`sorted_ids` turn the string ids into the embedding indices the models use. Torch-free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.recommender import movielens
from shared.errors import UserError

FOLDS = 5  # canonical folds: five blocks of the ratings in file order (MovieLens u1..u5)
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
    source: str | None = None  # movielens.NAME when the ratings are MovieLens 100k's u.data


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


def split(ratings: pd.DataFrame, valid_pct: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded random split: (train, valid) with `valid_pct` of the ratings in valid."""
    if not 0 <= valid_pct < 1:
        raise UserError(f"valid_pct must be in [0, 1), got {valid_pct}.")
    order = np.random.default_rng(seed).permutation(len(ratings))
    n = int(round(valid_pct * len(ratings)))
    return ratings.iloc[order[n:]], ratings.iloc[order[:n]]


def fold_split(ratings: pd.DataFrame, fold: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The canonical split `fold` (1-5): valid = the fold-th fifth of the ratings in file order.
    For MovieLens 100k's u.data these are GroupLens' u1..u5 base/test pairs (mku.sh: test =
    lines 20,000·(fold-1)+1 to 20,000·fold)."""
    if fold not in range(1, FOLDS + 1):
        raise UserError(f"fold must be 1 to {FOLDS} (0: a random split), got {fold}.")
    n = len(ratings) // FOLDS
    test = np.zeros(len(ratings), bool)
    test[n * (fold - 1) : n * fold if fold < FOLDS else len(ratings)] = True
    return ratings[~test], ratings[test]


def load_data(
    data: str | Path | None = None,
    *,
    train: str | Path | None = None,
    valid: str | Path | None = None,
    valid_pct: float = 0.2,
    seed: int = 42,
    fold: int = 0,
) -> Data:
    """MovieLens 100k (a folder, or the cached download when `data` is None) or a ratings file,
    split in two: at random (`valid_pct`, `seed`), by canonical `fold` (1-5), or as the explicit
    `train`/`valid` files (MovieLens tab format or CSV); `data` then only provides the titles
    (a MovieLens folder), if given.
    """
    if valid is not None and train is None:
        raise UserError("--valid needs --train too.")
    found = []  # title tables, first one wins
    ratings, source = None, None
    if data is not None and Path(data).is_file():
        ratings, titles = read_ratings(data)
        found.append(titles)
    elif data is not None or train is None:
        folder = movielens.folder(data)
        found.append(movielens.read_items(folder))
        if train is None:
            ratings, source = read_ratings(folder / "u.data")[0], movielens.NAME
    if train is not None:
        ratings, titles = read_ratings(train)
        found.append(titles)
    if valid is not None:
        va, titles = read_ratings(valid)
        found.append(titles)
        tr = ratings
    elif fold:
        tr, va = fold_split(ratings, fold)
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
    return Data(tr.reset_index(drop=True), va.reset_index(drop=True), items, source)


def item_features(items: pd.DataFrame) -> np.ndarray | None:
    """Movie side features, one row per movie of `items`: its genres (weights summing to 1) and
    its release-year decile (one-hot, from the "(1995)" in its title). None when there are none.
    """
    genres = sorted({g for gs in items["genres"] for g in gs})
    column = {g: n for n, g in enumerate(genres)}
    years = np.array([_year(t) for t in items["title"]], dtype=float)
    known = years[~np.isnan(years)]
    edges = np.unique(np.quantile(known, np.linspace(0, 1, 11)[1:-1])) if len(known) else []
    width = len(genres) + (len(edges) + 1 if len(known) else 0)
    if not width:
        return None
    out = np.zeros((len(items), width), np.float32)
    for row, gs in enumerate(items["genres"]):
        for g in gs:
            out[row, column[g]] = 1 / len(gs)
    has = ~np.isnan(years)
    out[np.flatnonzero(has), len(genres) + np.searchsorted(edges, years[has], side="right")] = 1
    return out


def _year(title: str) -> float:
    found = re.findall(r"\((\d{4})\)", str(title))
    return float(found[-1]) if found else np.nan


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
