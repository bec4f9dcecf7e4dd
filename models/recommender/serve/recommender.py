"""The `Recommender` the Space serves, and `load`, the registry's loader that builds it.

It composes the movie catalogue (titles.py) and the users' taste (fold_in.py), and ranks:
recommendations for a new visitor's (title, stars) or a known user, each explained by the rated
movie it resembles most; a user's favourites; similar movies; the bias ranking; a PCA of the
movie factors. The known users' ratings are not in the model folder (MovieLens' terms):
`fetch_ratings` downloads them from GroupLens (cached) and attaches them.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.torch import load_model
from torch import nn

from models.recommender import movielens
from models.recommender.config import MODELS
from models.recommender.data import read_ratings
from models.recommender.export import FILES
from models.recommender.modules import MODEL_TYPES
from models.recommender.serve.fold_in import Taste
from models.recommender.serve.titles import Catalogue, blank
from shared import limits
from shared.errors import ModelError, UserError

log = logging.getLogger("demos")
MIN_RATINGS = 20  # recommendations skip movies with fewer ratings (obscure one-rating titles)
TOP_N = 10
SIMILAR = 0.2  # cosine similarity from which a rated movie explains a recommendation
FITS = 0.1  # stars over the average viewer from which a movie "fits your taste"
CROWD = 4.0  # mean stars from which a movie is a crowd favourite
RANK_BY = ("stars", "taste")


def _round(x: np.ndarray, digits: int) -> np.ndarray:
    return np.round(x.astype(np.float64), digits)  # float32 would print 0.925000011920929


def _stars(x: float) -> str:
    return f"{x:g}★"


def shown(value: object, chars: int = 20) -> str:
    """A short excerpt of what someone sent, safe to echo (no lone surrogates)."""
    text = limits.excerpt(str(value)[: chars * 4], chars)
    return text.encode("utf-8", "replace").decode("utf-8")


def count(value: object, what: str, limit: limits.Limit, low: int = 1) -> int:
    """A whole number from `low` to `limit` (a slider's value, or anything an API caller sends),
    else a `UserError` saying what is wrong."""
    return int(limits.check_number(value, what, low, limit.value))


def table_rows(ratings: Any) -> list:
    """The rows of a ratings table: a list of (title, stars) rows, a DataFrame, or gradio's
    table form {"headers": [...], "data": [...]}; over `limits.RATINGS` rows is refused."""
    if isinstance(ratings, pd.DataFrame):
        ratings = ratings.to_numpy().tolist()
    elif isinstance(ratings, dict):
        ratings = ratings.get("data")
    if ratings is None:
        return []
    if not isinstance(ratings, list | tuple):
        raise UserError("The ratings must be a table: rows of (movie title, stars from 1 to 5).")
    if len(ratings) > limits.RATINGS.value:
        raise UserError(
            f"{len(ratings):,} ratings is over the limit of {limits.RATINGS} "
            f"({limits.RATINGS.reason})."
        )
    for k, row in enumerate(ratings, 1):
        if not isinstance(row, list | tuple):
            raise UserError(f"Row {k} of the ratings is not a (movie title, stars) pair.")
    return [list(row) for row in ratings]


def load(folder: str | Path) -> Recommender:
    """Registry loader: a model folder (Hub layout) -> a ready `Recommender`."""
    folder = Path(folder)
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise ModelError(
            f"{folder} is not a recommender model folder: {', '.join(missing)} missing. "
            f"Train one with `python -m shared.cli train recommender --out DIR`."
        )
    config = json.loads((folder / "config.json").read_text())
    kind = config.get("model_type", "dot")
    if kind not in MODELS:
        raise ModelError(f"{folder}/config.json: unknown model_type '{kind}' (dot or nn).")
    # What from_pretrained does for a local folder, minus its print to stdout.
    cls = MODEL_TYPES[kind]
    params = inspect.signature(cls.__init__).parameters
    model = cls(**{k: v for k, v in config.items() if k in params})
    load_model(model, folder / "model.safetensors")
    users, items, prior = (
        json.loads((folder / f"{name}.json").read_text()) for name in ("users", "items", "taste")
    )
    rec = Recommender(model.eval(), users, items, prior, dataset=config.get("dataset"))
    rec.folder = folder
    return rec


class Recommender:
    """What the Space needs: recommendations, explanations, similar movies, biases, PCA.
    `dataset`: the data set the model was trained on (movielens.NAME: its users' ratings can be
    downloaded for `recommend_user` and `user_favourites`)."""

    def __init__(
        self,
        model: nn.Module,
        users: list,
        items: list[dict],
        prior: dict,
        *,
        dataset: str | None = None,
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.folder: Path | None = None
        self.users = [str(u) for u in users]
        self.user_index = {u: n for n, u in enumerate(self.users)}
        n_users, n_items = model.user_factors.num_embeddings, model.item_factors.num_embeddings
        if (len(self.users), len(items)) != (n_users, n_items):
            raise ModelError(
                f"The id maps ({len(self.users)} users, {len(items)} movies) do not match the "
                f"weights ({n_users} users, {n_items} movies): the model folder is inconsistent."
            )
        self.movies = Catalogue(items)
        self.item_index = {i: n for n, i in enumerate(self.movies.ids)}
        # the columns the rankings read, by movie index
        self.titles, self.genres = self.movies.titles, self.movies.genres
        self.counts, self.means, self.popular = (
            self.movies.counts, self.movies.means, self.movies.popular
        )  # fmt: skip

        self.taste = Taste(model, prior)
        self.kind = self.taste.kind
        self.scale = self.taste.scale
        vecs = self.taste.item_vecs
        self.unit = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        self.user_start: np.ndarray | None = None  # the known users' ratings, once attached
        self._attach = threading.Lock()

    def attach_ratings(self, ratings: pd.DataFrame) -> None:
        """The known users' ratings (columns user, item: ids; rating), for `recommend_user` and
        `user_favourites`; ratings of ids the model does not know are left out."""
        u = ratings["user"].astype(str).map(self.user_index)
        i = ratings["item"].astype(str).map(self.item_index)
        keep = (u.notna() & i.notna()).to_numpy()
        u = u[keep].to_numpy(np.int64)
        order = np.argsort(u, kind="stable")
        with self._attach:
            self.rated_items = i[keep].to_numpy(np.int64)[order]
            self.rated_stars = ratings["rating"].to_numpy(np.float32)[keep][order]
            self.user_start = np.searchsorted(u[order], np.arange(len(self.users) + 1))

    @property
    def has_ratings(self) -> bool:
        return self.user_start is not None

    def fetch_ratings(self) -> None:
        """Attach the known users' ratings from GroupLens' MovieLens 100k download (cached in
        HF_HOME; downloaded on first use, with a progress bar). UserError when the model was not
        trained on MovieLens 100k or the download fails."""
        if self.has_ratings:
            return
        if self.dataset != movielens.NAME:
            raise UserError(
                "This model was not trained on MovieLens 100k, so its users' ratings cannot be "
                "downloaded (a model folder holds no ratings): only new visitors can be served."
            )
        try:
            folder = movielens.cached()
        except movielens.DownloadError as e:  # said as a visitor needs: no --data advice, no
            # library message (the details go to the log)
            log.warning("MovieLens 100k download failed: %s", e.reason)
            why = "its files did not match" if "sha256" in e.reason else "it could not be reached"
            raise UserError(
                "The known users' ratings come from GroupLens' MovieLens 100k download, which "
                f"failed: {why}. Try again later."
            ) from None
        self.attach_ratings(read_ratings(folder / "u.data")[0])

    # Looking things up ------------------------------------------------------------------------

    def find(self, title: str) -> int:
        """The index of the movie called `title` (forgiving: see `Catalogue.find`)."""
        return self.movies.find(title)

    def search(self, query: str, limit: int = 20) -> list[str]:
        """Titles matching `query`: substring hits by popularity, then close spellings."""
        return self.movies.search(query, limit)

    def user(self, user: Any) -> int:
        """The index of a known user id (an int or a string)."""
        if isinstance(user, bool) or not isinstance(user, int | float | str | None):
            raise UserError("A user id is a number or a name, not a list or a table.")
        if isinstance(user, float) and not math.isnan(user) and user.is_integer():
            user = int(user)
        if isinstance(user, str):  # no id is longer than a title: a long one is refused at once
            user = limits.check_text(user, "user id", limits.TITLE)
        key = str(user).strip()
        if blank(user):
            raise UserError("Enter a user id.")
        if key in self.user_index:
            return self.user_index[key]
        numeric = [int(u) for u in self.users if u.isdigit()]
        shown_key = shown(key)
        if len(numeric) == len(self.users) and numeric:
            raise UserError(
                f"User {shown_key} does not exist: user ids run from {min(numeric)} "
                f"to {max(numeric)}."
            )
        raise UserError(f"Unknown user '{shown_key}' (e.g. {', '.join(self.users[:3])}).")

    def ratings_of(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """A known user's ratings (attached): (item indices, stars)."""
        if self.user_start is None:
            raise UserError(
                "The known users' ratings are not loaded: this demo gets them from GroupLens' "
                "MovieLens download, which is not available here."
            )
        s, e = self.user_start[user], self.user_start[user + 1]
        return self.rated_items[s:e], self.rated_stars[s:e]

    def parse(self, ratings: Any) -> tuple[np.ndarray, np.ndarray]:
        """(title, stars) pairs (see `table_rows`) -> (item indices, stars).

        Blank rows are skipped; unknown titles, stars outside the scale, a movie rated twice,
        an empty list and more than `limits.RATINGS` rows raise UserError with a message for a
        person."""
        lo, hi = self.scale
        idx, stars = [], []
        for row in table_rows(ratings):
            title, value = (row + [None, None])[:2]
            if blank(title) and blank(value):
                continue
            n = self.find(title)
            if blank(value):
                raise UserError(f"Give '{self.titles[n]}' {lo:g} to {hi:g} stars.")
            stars_sent = shown(value)
            try:
                if isinstance(value, bool) or not isinstance(value, int | float | str):
                    raise TypeError
                s = float(value)
            except (TypeError, ValueError):
                raise UserError(
                    f"Stars for '{self.titles[n]}' must be a number, got '{stars_sent}'."
                ) from None
            if not lo <= s <= hi or math.isnan(s):
                raise UserError(
                    f"Stars must be between {lo:g} and {hi:g}; '{self.titles[n]}' has {stars_sent}."
                )
            if n in idx:
                raise UserError(f"'{self.titles[n]}' is rated twice: rate each movie once.")
            idx.append(n)
            stars.append(s)
        if not idx:
            raise UserError("Rate at least one movie (pick a title and give it 1 to 5 stars).")
        return np.array(idx), np.array(stars, dtype=np.float32)

    # Ranking -----------------------------------------------------------------------------------

    def _explain(self, recs: np.ndarray, items: np.ndarray, stars: np.ndarray, lift) -> list[str]:
        """Why each recommendation, always something true: the liked movie it is most similar
        to, when one is close enough to count; else that it fits the visitor's taste (their
        lift over the average viewer); else that it is a crowd favourite, when it is one."""
        liked = stars >= min(4, stars.max())  # 4-5 stars, or the user's best if all are lower
        items, stars = items[liked], stars[liked]
        sims = self.unit[recs] @ self.unit[items].T
        out = []
        for k, j in enumerate(recs):
            b = sims[k].argmax()
            average = f"{self.taste.average[j]:.1f}★"
            if sims[k, b] >= SIMILAR:
                out.append(
                    f"because you rated {self.titles[items[b]]} {_stars(stars[b])} "
                    f"(similarity {sims[k, b]:.2f})"
                )
            elif lift[j] >= FITS:
                out.append(f"fits your taste: +{lift[j]:.1f}★ over the average viewer ({average})")
            elif self.means[j] >= CROWD:
                out.append(f"a crowd favourite: {self.means[j]:.1f}★ average")
            else:
                out.append(f"the average viewer would give it {average}")
        return out

    def _top(self, score: np.ndarray, exclude: np.ndarray, n: int, min_ratings: int) -> np.ndarray:
        score = score.copy()
        score[self.counts < min_ratings] = -np.inf
        score[exclude] = -np.inf
        top = np.argsort(-score, kind="stable")[: int(n)]
        return top[np.isfinite(score[top])]

    @staticmethod
    def options(n: Any, min_ratings: Any, rank_by: Any) -> tuple[int, int, str]:
        """A ranking's options checked (before any work), else a `UserError`."""
        if not isinstance(rank_by, str) or rank_by not in RANK_BY:
            raise UserError(f"rank_by must be one of {', '.join(RANK_BY)}, got '{shown(rank_by)}'.")
        n = count(n, "number of movies", limits.MOVIES)
        min_ratings = count(min_ratings, "minimum number of ratings", limits.MIN_RATINGS, 0)
        return n, min_ratings, rank_by

    def _rank(self, vec, items, stars, n, min_ratings, rank_by) -> pd.DataFrame:
        n, min_ratings, rank_by = self.options(n, min_ratings, rank_by)
        pred, lift = self.taste.compare(vec)  # lift: stars over the average viewer, by taste
        top = self._top(pred if rank_by == "stars" else lift, items, n, min_ratings)
        lo, hi = self.scale
        return pd.DataFrame(
            {
                "Movie": [self.titles[i] for i in top],
                "Predicted stars": _round(np.clip(pred[top], lo, hi), 2),
                "Why": self._explain(top, items, stars, lift) if len(items) else [""] * len(top),
                "vs. average viewer": _round(lift[top], 2),
                "Ratings": self.counts[top],
                "Genres": [self.genres[i] for i in top],
            }
        )

    def recommend(
        self,
        ratings: Any,
        n: int = TOP_N,
        min_ratings: int = MIN_RATINGS,
        rank_by: str = "stars",
    ) -> pd.DataFrame:
        """Top-`n` unrated movies for a new visitor's (title, stars) ratings, explained.

        rank_by "stars": highest predicted stars; "taste": most above what the average viewer
        would give, the visitor's overall generosity left out (`Taste.compare`): movies for
        this visitor rather than movies everyone likes."""
        self.options(n, min_ratings, rank_by)
        items, stars = self.parse(ratings)
        vec = self.taste.fold_in(items, stars)
        return self._rank(vec, items, stars, n, min_ratings, rank_by)

    def recommend_user(
        self, user: Any, n: int = TOP_N, min_ratings: int = MIN_RATINGS, rank_by: str = "stars"
    ) -> pd.DataFrame:
        """Top-`n` movies a known user has not rated, explained by their own ratings."""
        u = self.user(user)
        items, stars = self.ratings_of(u)
        return self._rank(self.taste.user_vector(u), items, stars, n, min_ratings, rank_by)

    def user_favourites(self, user: Any, n: int = TOP_N) -> pd.DataFrame:
        """A known user's highest-rated movies (their attached ratings)."""
        n = count(n, "number of movies", limits.MOVIES)
        items, stars = self.ratings_of(self.user(user))
        order = np.lexsort((-self.counts[items], -stars))[: int(n)]
        return pd.DataFrame(
            {
                "Movie": [self.titles[i] for i in items[order]],
                "Stars": stars[order].astype(np.float64),
                "Genres": [self.genres[i] for i in items[order]],
            }
        )

    def similar(self, title: str, n: int = TOP_N, min_ratings: int = MIN_RATINGS) -> pd.DataFrame:
        """The `n` movies closest to `title` by cosine similarity of their factors."""
        i = self.find(title)
        n = count(n, "number of movies", limits.MOVIES)
        min_ratings = count(min_ratings, "minimum number of ratings", limits.MIN_RATINGS, 0)
        sims = self.unit @ self.unit[i]
        top = self._top(sims, np.array([i]), n, min_ratings)
        return pd.DataFrame(
            {
                "Movie": [self.titles[j] for j in top],
                "Similarity": _round(sims[top], 3),
                "Ratings": self.counts[top],
                "Genres": [self.genres[j] for j in top],
            }
        )

    def bias_ranking(
        self, n: int = 15, min_ratings: int = MIN_RATINGS
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Movies liked most and least beyond what taste predicts (their learned biases)."""
        if self.kind != "dot":
            raise UserError(
                "The bias ranking needs a DotProductBias model; this one is an EmbeddingNN."
            )
        n = count(n, "number of movies", limits.MOVIES)
        min_ratings = count(min_ratings, "minimum number of ratings", limits.MIN_RATINGS, 0)
        bias = self.taste.item_bias
        keep = np.flatnonzero(self.counts >= min_ratings)
        order = keep[np.argsort(-bias[keep], kind="stable")]

        def table(idx: np.ndarray) -> pd.DataFrame:
            return pd.DataFrame(
                {
                    "Movie": [self.titles[i] for i in idx],
                    "Bias": _round(bias[idx], 3),
                    "Mean stars": _round(self.means[idx], 2),
                    "Ratings": self.counts[idx],
                }
            )

        return table(order[: int(n)]), table(order[::-1][: int(n)])

    def pca(self, n_movies: int = 500, dims: int = 3) -> tuple[pd.DataFrame, list[float]]:
        """PCA of the factors of the `n_movies` most-rated movies; returns the coordinates and
        the share of variance each component explains."""
        n_movies = count(n_movies, "number of movies on the map", limits.MAP_MOVIES, dims + 1)
        top = np.array(self.popular[:n_movies])
        vecs = self.taste.item_vecs[top]
        x = vecs - vecs.mean(0)
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        coords = x @ vt[:dims].T
        share = (s**2 / (s**2).sum())[:dims]
        frame = pd.DataFrame(coords, columns=[f"PC{k + 1}" for k in range(coords.shape[1])])
        frame.insert(0, "Movie", [self.titles[i] for i in top])
        frame["Ratings"] = self.counts[top]
        frame["Mean stars"] = self.means[top]
        frame["Bias"] = self.taste.item_bias[top] if self.kind == "dot" else np.nan
        frame["Genres"] = [self.genres[i] for i in top]
        return frame, [float(v) for v in share]
