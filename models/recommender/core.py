"""Movie recommender family: collaborative filtering on MovieLens 100k (fast.ai lessons 7-8).

Top to bottom:

1. data: MovieLens 100k (the GroupLens archive, downloaded when missing) or a ratings CSV,
   split at random (seeded) or by explicit train/valid files;
2. models: `DotProductBias` (latent factors + biases through a sigmoid range) and `EmbeddingNN`
   (concatenated embeddings + MLP), both `PyTorchModelHubMixin` modules;
3. training: AdamW + one-cycle with weight decay, RMSE per epoch, a training-curve plot;
   evaluation on a split or as k-fold means;
4. export in Hub layout: config.json + model.safetensors, with the id maps, titles and the
   training ratings as JSON beside them, and a model card;
5. serving (`load` -> `Recommender`): recommendations for a known user, similar movies, the bias
   ranking, a PCA of the movie factors, and fold-in of a new visitor from a few ratings (a small
   regularised least-squares solve, no retraining), each recommendation explained;
6. the CLI: `python -m shared.cli train|evaluate recommender ...`.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import math
import re
import time
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from safetensors.torch import load_model
from torch import nn
from tqdm.auto import tqdm

from shared.registry import ModelError

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
Y_RANGE = (0.0, 5.5)  # fast.ai's sigmoid range: a little beyond the 1-5 stars at both ends
MIN_RATINGS = 20  # recommendations skip movies with fewer ratings (obscure one-rating titles)
TOP_N = 10
SIMILAR = 0.2  # cosine similarity from which a rated movie explains a recommendation
RANK_BY = ("stars", "taste")
ALIASES = {  # accepted CSV headers (MovieLens "latest" uses userId,movieId)
    "user": ("user", "userid", "user_id"),
    "item": ("item", "itemid", "item_id", "movie", "movieid", "movie_id"),
    "rating": ("rating", "stars", "score"),
    "title": ("title", "name"),
}
FILES = ("config.json", "model.safetensors", "users.json", "items.json", "ratings.json")


# --- 1. Data ----------------------------------------------------------------------------------


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
        raise ValueError(
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
        raise ValueError(f"{path} has no u.data: pass a MovieLens 100k folder or a ratings CSV.")
    return download_movielens(path.parent if path.name == "ml-100k" else path)


def _column(frame: pd.DataFrame, name: str) -> str | None:
    return next((c for c in frame.columns if c in ALIASES[name]), None)


def read_ratings(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Ratings from MovieLens tab format (user item rating [time]) or a CSV with a header
    `user,item,rating[,title]`. Returns (ratings, titles or None); raises ValueError when
    a column is missing or a rating is not a number."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Ratings file {path} not found.")
    with open(path, encoding="latin-1") as f:
        first = f.readline()
    if "\t" in first:  # MovieLens u.data / u1.base: no header
        frame = pd.read_csv(path, sep="\t", header=None, dtype=str, encoding="latin-1")
        if frame.shape[1] < 3:
            raise ValueError(
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
            raise ValueError(
                f"{path.name} lacks the column(s) {', '.join(missing)}: a ratings CSV needs a "
                f"header user,item,rating[,title]; it has {', '.join(frame.columns)}."
            )
        frame = frame.rename(columns={v: k for k, v in found.items() if v})
        header = 1
    if frame.empty:
        raise ValueError(f"{path.name} has no ratings.")
    for col in ("user", "item"):
        blank = frame[col].isna() | (frame[col].str.strip() == "")
        if blank.any():
            line = int(np.argmax(blank.to_numpy())) + 1 + header
            raise ValueError(f"{path.name}, line {line}: the {col} is empty.")
        frame[col] = frame[col].str.strip()
    stars = pd.to_numeric(frame["rating"], errors="coerce")
    bad = stars.isna() | ~np.isfinite(stars)
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise ValueError(
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
        raise ValueError(f"valid_pct must be in [0, 1), got {valid_pct}.")
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
        raise ValueError("--valid needs --train too.")
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


# --- 2. Models ----------------------------------------------------------------------------------

CARD_TAGS = ["recommendation", "collaborative-filtering", "movielens", "fastai-course"]


def emb_size(n: int) -> int:
    """fast.ai's rule of thumb for an embedding width of `n` categories."""
    return min(600, round(1.6 * n**0.56))


class DotProductBias(nn.Module, PyTorchModelHubMixin, library_name="pytorch", tags=CARD_TAGS):
    """rating = sigmoid_range(user · item + user bias + item bias + global bias).

    implicit=True adds what a user chose to rate to their vector (Koren's SVD++): user =
    own factors + the normalised sum of `item_implicit` over the movies they rated. Training
    adds that sum through `offset`; `bake` then folds it into `user_factors`, so the saved model
    predicts for known users like a plain dot product, and `item_implicit` is kept for new
    users (fold-in).
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int = 50,
        y_range: tuple = Y_RANGE,
        implicit: bool = False,
    ) -> None:
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        # The global bias lets the user/item biases stay small (they are decayed towards 0).
        self.bias = nn.Parameter(torch.zeros(()))
        self.y_range = tuple(y_range)
        nn.init.normal_(self.user_factors.weight, std=0.01)
        nn.init.normal_(self.item_factors.weight, std=0.01)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.item_implicit = nn.Embedding(n_items, n_factors) if implicit else None
        if implicit:
            nn.init.zeros_(self.item_implicit.weight)
        self.offset: torch.Tensor | None = None  # per-user implicit term while training

    def implicit_offsets(self, rated: torch.Tensor) -> torch.Tensor:
        """Each user's implicit term: `rated` (users x items, sparse) @ item_implicit."""
        return torch.sparse.mm(rated, self.item_implicit.weight)

    @torch.no_grad()
    def bake(self, rated: torch.Tensor) -> None:
        """Fold the implicit terms into the user factors (end of training)."""
        self.user_factors.weight += self.implicit_offsets(rated)
        self.offset = None

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        u = self.user_factors(users)
        if self.offset is not None:
            u = u + self.offset[users]
        dot = (u * self.item_factors(items)).sum(-1)
        z = dot + self.user_bias(users)[..., 0] + self.item_bias(items)[..., 0] + self.bias
        return sigmoid_range(z, self.y_range)


def rated_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> torch.Tensor:
    """Who rated what, as a sparse users x items matrix with rows scaled by 1/sqrt(count)."""
    counts = np.bincount(users, minlength=n_users).astype(np.float32)
    weights = torch.tensor(1 / np.sqrt(counts[users]))
    index = torch.tensor(np.stack([users, items]), dtype=torch.int64)
    shape = (n_users, n_items)
    return torch.sparse_coo_tensor(index, weights, shape, check_invariants=True).coalesce()


class EmbeddingNN(nn.Module, PyTorchModelHubMixin, library_name="pytorch", tags=CARD_TAGS):
    """rating = sigmoid_range(MLP([user embedding, item embedding])), fast.ai's CollabNN."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        user_size: int,
        item_size: int,
        hidden: tuple = (100,),
        dropout: float = 0.3,
        emb_dropout: float = 0.2,
        y_range: tuple = Y_RANGE,
    ) -> None:
        super().__init__()
        self.user_factors = nn.Embedding(n_users, user_size)
        self.item_factors = nn.Embedding(n_items, item_size)
        self.emb_dropout = nn.Dropout(emb_dropout)
        layers, width = [], user_size + item_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.layers = nn.Sequential(*layers, nn.Linear(width, 1))
        self.y_range = tuple(y_range)
        nn.init.normal_(self.user_factors.weight, std=0.01)
        nn.init.normal_(self.item_factors.weight, std=0.01)

    def score(self, user_vecs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Ratings from user embeddings (one per item, or one broadcast to all)."""
        item_vecs = self.item_factors(items)
        user_vecs = user_vecs.expand(len(item_vecs), -1)
        x = self.emb_dropout(torch.cat([user_vecs, item_vecs], -1))
        return sigmoid_range(self.layers(x)[..., 0], self.y_range)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.score(self.user_factors(users), items)


def sigmoid_range(x: torch.Tensor, y_range: tuple) -> torch.Tensor:
    lo, hi = y_range
    return torch.sigmoid(x) * (hi - lo) + lo


MODEL_TYPES = {"dot": DotProductBias, "nn": EmbeddingNN}


# --- 3. Training and evaluation -----------------------------------------------------------------


@dataclass
class Recipe:
    """How to train. The defaults were tuned on random 80/20 splits of MovieLens 100k
    (bench/recommender.py); each model trains in seconds on a CPU."""

    model: str = "dot"
    factors: int = 50  # dot: latent factors; nn: ignored (fast.ai's embedding-width rule)
    hidden: tuple = (100,)  # nn: MLP widths
    dropout: float = 0.3  # nn: MLP dropout
    emb_dropout: float = 0.2  # nn: embedding dropout
    epochs: int = 30
    lr: float = 3e-2
    wd: float = 3.0  # AdamW weight decay of factors (and MLP weights)
    bias_wd: float = 0.03  # biases: a little decay only, they carry the popularity signal
    implicit: bool = True  # dot: add what each user rated to their vector (SVD++)
    implicit_wd: float = 10.0  # dot: weight decay of the implicit item factors
    bs: int = 4096  # large batches: few optimiser steps, fast on a CPU
    seed: int = 42
    valid_pct: float = 0.2

    @classmethod
    def default(cls, model: str = "dot", **changes: Any) -> Recipe:
        if model not in MODEL_TYPES:
            raise ValueError(f"Unknown model '{model}': choose dot or nn.")
        base = {"nn": {"lr": 1e-2}}.get(model, {})
        return cls(model=model, **{**base, **{k: v for k, v in changes.items() if v is not None}})


def build(recipe: Recipe, n_users: int, n_items: int, y_range: tuple = Y_RANGE) -> nn.Module:
    if recipe.model == "dot":
        return DotProductBias(n_users, n_items, recipe.factors, y_range, recipe.implicit)
    return EmbeddingNN(
        n_users, n_items, emb_size(n_users), emb_size(n_items),
        tuple(recipe.hidden), recipe.dropout, recipe.emb_dropout, y_range,
    )  # fmt: skip


@torch.no_grad()
def predict(model: nn.Module, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Predicted ratings for (user index, item index) pairs."""
    model.eval()
    out = [
        model(torch.tensor(users[s : s + 65536]), torch.tensor(items[s : s + 65536]))
        for s in range(0, len(users), 65536)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    err = pred - truth
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


def fit(
    model: nn.Module,
    train: tuple,
    valid: tuple | None,
    recipe: Recipe,
    *,
    progress: bool = True,
) -> list[dict[str, float]]:
    """AdamW + one-cycle on (users, items, ratings) arrays; returns one dict per epoch."""
    # Small ops: one thread is as fast as two on an idle CPU and far faster on a busy one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(model, train, valid, recipe, progress)
    finally:
        torch.set_num_threads(threads)


def _fit(model: nn.Module, train: tuple, valid: tuple | None, recipe: Recipe, progress: bool):
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    users, items, ratings = (torch.tensor(a) for a in train)
    decay = {"bias": recipe.bias_wd, "implicit": recipe.implicit_wd}
    groups: dict[float, list] = {}
    for name, p in model.named_parameters():
        wd = next((v for k, v in decay.items() if k in name), recipe.wd)
        groups.setdefault(wd, []).append(p)
    groups = [{"params": ps, "weight_decay": wd} for wd, ps in groups.items()]
    rated = None
    if getattr(model, "item_implicit", None) is not None:
        n_users, n_items = model.user_factors.num_embeddings, model.item_factors.num_embeddings
        rated = rated_matrix(train[0], train[1], n_users, n_items)
    opt = torch.optim.AdamW(groups, lr=recipe.lr)
    steps = math.ceil(len(ratings) / recipe.bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=recipe.epochs * steps)
    history = []
    bar = tqdm(range(recipe.epochs), desc=f"train {recipe.model}", disable=not progress)
    for epoch in bar:
        model.train()
        total = 0.0
        for idx in torch.randperm(len(ratings), generator=gen).split(recipe.bs):
            if rated is not None:
                model.offset = model.implicit_offsets(rated)
            loss = F.mse_loss(model(users[idx], items[idx]), ratings[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        row = {"epoch": epoch + 1, "train_rmse": math.sqrt(total / len(ratings))}
        if rated is not None:
            with torch.no_grad():
                model.offset = model.implicit_offsets(rated)
        if valid is not None and len(valid[2]):
            m = scores(predict(model, valid[0], valid[1]), valid[2])
            row.update(valid_rmse=m["rmse"], valid_mae=m["mae"])
        history.append(row)
        bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k != "epoch"})
    if rated is not None:
        model.bake(rated)
    model.eval()
    return history


@dataclass
class Trained:
    model: nn.Module
    users: list[str]
    items: list[str]
    data: Data
    history: list[dict[str, float]]
    metrics: dict[str, float]
    seconds: float


def train(recipe: Recipe, data: Data, *, progress: bool = True) -> Trained:
    """Train `recipe` on `data.train`; measure RMSE/MAE on `data.valid`."""
    both = pd.concat([data.train, data.valid])
    # Like fast.ai, every id of the data gets an embedding; ids only in valid stay near the
    # mean through weight decay.
    users, items = sorted_ids(both["user"]), sorted_ids(both["item"])
    uix, iix = {u: n for n, u in enumerate(users)}, {i: n for n, i in enumerate(items)}
    tr, va = encode(data.train, uix, iix), encode(data.valid, uix, iix)
    if not len(tr[2]):
        raise ValueError("No training ratings.")
    lo, hi = float(tr[2].min()), float(tr[2].max())
    y_range = Y_RANGE if (lo >= 0.5 and hi <= 5) else (lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
    model = build(recipe, len(users), len(items), y_range)
    start = time.perf_counter()
    history = fit(model, tr, va, recipe, progress=progress)
    seconds = time.perf_counter() - start
    metrics = {
        "train_rmse": scores(predict(model, tr[0], tr[1]), tr[2])["rmse"],
        "train_seconds": round(seconds, 2),
    }
    if len(va[2]):
        m = scores(predict(model, va[0], va[1]), va[2])
        metrics.update(valid_rmse=m["rmse"], valid_mse=m["rmse"] ** 2, valid_mae=m["mae"])
    return Trained(model, users, items, data, history, metrics, seconds)


def cross_validate(
    recipe: Recipe, ratings: pd.DataFrame, items: pd.DataFrame, folds: int = 5
) -> dict[str, float]:
    """k-fold means (and spreads) of RMSE and MAE: each rating is in exactly one valid fold."""
    if folds < 2:
        raise ValueError("--folds must be at least 2.")
    order = np.random.default_rng(recipe.seed).permutation(len(ratings))
    results = []
    for k, part in enumerate(np.array_split(order, folds)):
        valid = ratings.iloc[part]
        train_ = ratings.drop(ratings.index[part])
        t = train(recipe, Data(train_, valid, items), progress=False)
        results.append((t.metrics["valid_rmse"], t.metrics["valid_mae"]))
        print(f"fold {k + 1}/{folds}: rmse {results[-1][0]:.4f}  mae {results[-1][1]:.4f}")
    rmse, mae = np.array(results).T
    return {
        "folds": folds,
        "rmse_mean": float(rmse.mean()),
        "rmse_std": float(rmse.std()),
        "mae_mean": float(mae.mean()),
        "mae_std": float(mae.std()),
    }


def plot_history(history: list[dict[str, float]], path: Path) -> Path:
    """The training curve (RMSE per epoch) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(epochs, [h["train_rmse"] for h in history], label="train")
    if "valid_rmse" in history[0]:
        ax.plot(epochs, [h["valid_rmse"] for h in history], label="valid")
        best = min(history, key=lambda h: h["valid_rmse"])
        ax.annotate(f"{best['valid_rmse']:.3f}", (best["epoch"], best["valid_rmse"]),
                    textcoords="offset points", xytext=(0, -14), ha="center")  # fmt: skip
    ax.set(xlabel="epoch", ylabel="RMSE (stars)", title="Training curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --- 4. Export in Hub layout --------------------------------------------------------------------


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(float(x), 3)


def save(trained: Trained, folder: str | Path, recipe: Recipe) -> Path:
    """Write the model folder: weights, id maps, titles, training ratings, metrics, plot."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = trained.model
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = recipe.model  # which class `load` builds
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))

    data = trained.data
    uix = {u: n for n, u in enumerate(trained.users)}
    iix = {i: n for n, i in enumerate(trained.items)}
    u, i, r = encode(data.train, uix, iix)
    counts = np.bincount(i, minlength=len(trained.items))
    sums = np.bincount(i, weights=r, minlength=len(trained.items))
    items = [
        {
            "id": item,
            "title": data.items.at[item, "title"],
            "genres": list(data.items.at[item, "genres"]),
            "ratings": int(n),
            "mean": round(float(s / n), 3) if n else None,
        }
        for item, n, s in zip(trained.items, counts, sums, strict=True)
    ]

    def write(name: str, obj: Any) -> None:
        (folder / name).write_text(json.dumps(obj, ensure_ascii=False))

    write("users.json", trained.users)
    write("items.json", items)
    # The training ratings: who rated what, for "unrated items only" and a user's favourites.
    write(
        "ratings.json", {"user": u.tolist(), "item": i.tolist(), "rating": [_number(x) for x in r]}
    )
    write("recipe.json", asdict(recipe))
    (folder / "metrics.json").write_text(json.dumps(trained.metrics, indent=2))
    if trained.history:
        plot_history(trained.history, folder / "training.png")
    return folder


def write_card(folder: Path, recipe: Recipe, trained: Trained, repo_id: str | None) -> None:
    """The model card (README.md): what the model does, how it was trained, its metrics."""
    from shared import hub, registry

    kind = {"dot": f"DotProductBias ({recipe.factors} factors)", "nn": "EmbeddingNN"}[recipe.model]
    implicit = ""
    if getattr(trained.model, "item_implicit", None) is not None:
        implicit = (
            "with implicit feedback (SVD++: each user's vector adds the normalised sum of "
            f"implicit factors of the movies they rated, weight decay {recipe.implicit_wd}), "
        )
    m = trained.metrics
    repo = repo_id or registry.MODELS["movie-recommender"].repo
    hub.write_card(
        folder,
        title=f"MovieLens 100k recommender — {kind}",
        summary=(
            "Collaborative filtering from fast.ai's *Practical Deep Learning* course "
            "(lessons 7-8): predicts how many stars a user gives a movie from learned latent "
            "factors. The repo also holds the id maps (`users.json`), the titles, genres and "
            "rating counts (`items.json`) and the training ratings (`ratings.json`), so the demo "
            "can recommend for known users, find similar movies and fold in a new visitor's "
            "ratings without retraining.\n\nMovieLens data: F. M. Harper and J. A. Konstan, 2015, "
            "*The MovieLens Datasets: History and Context*, ACM TiiS 5(4). GroupLens' terms "
            "apply to the data (research use, no endorsement implied)."
        ),
        library_name="pytorch",
        pipeline_tag="tabular-regression",
        task_name="Rating prediction",
        dataset_name="MovieLens 100k",
        datasets=["movielens-100k"],
        tags=CARD_TAGS,
        license="other",
        metrics={k: v for k, v in m.items() if k in ("valid_rmse", "valid_mae")},
        training=(
            f"{kind}, trained {trained.seconds:.1f} s on a CPU: AdamW with a one-cycle schedule, "
            f"{recipe.epochs} epochs, batch size {recipe.bs}, max learning rate {recipe.lr}, "
            f"weight decay {recipe.wd} (biases {recipe.bias_wd}), seed {recipe.seed}, MSE loss, "
            f"{implicit}"
            f"sigmoid range {list(trained.model.y_range)}. Validation: a random "
            f"{recipe.valid_pct:.0%} of the ratings (seed {recipe.seed}).\n\n"
            "![training curve](training.png)"
        ),
        usage=f"""
from huggingface_hub import snapshot_download
from models.recommender import DotProductBias, load  # github.com/fastai-course-demos

model = DotProductBias.from_pretrained("{repo}")  # the bare PyTorch module
rec = load(snapshot_download("{repo}"))  # with titles: recommendations, fold-in
rec.recommend([("Star Wars (1977)", 5), ("Toy Story (1995)", 4), ("Fargo (1996)", 5)])
""",
    )


# --- 5. Serving ---------------------------------------------------------------------------------


# MovieLens writes "Godfather, The (1972)"; people type "The Godfather" or "godfather".
ARTICLES = re.compile(r", (the|a|an|les|la|le|l'|il|das|der|die|el|los)")


def _norm(title: str) -> str:
    """A forgiving key for titles: case, year, punctuation and "Godfather, The" forms."""
    t = re.sub(r"\(\d{4}\)", "", title.lower()).strip()
    t = re.sub(r"^(the|a|an) ", "", re.sub(ARTICLES.pattern + "$", "", t))
    return " ".join(re.findall(r"[a-z0-9]+", t))


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == ""


def _round(x: np.ndarray, digits: int) -> np.ndarray:
    return np.round(x.astype(np.float64), digits)  # float32 would print 0.925000011920929


def _stars(x: float) -> str:
    return f"{x:g}★"


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
    if kind not in MODEL_TYPES:
        raise ModelError(f"{folder}/config.json: unknown model_type '{kind}' (dot or nn).")
    # What from_pretrained does for a local folder, minus its print to stdout.
    cls = MODEL_TYPES[kind]
    params = inspect.signature(cls.__init__).parameters
    model = cls(**{k: v for k, v in config.items() if k in params})
    load_model(model, folder / "model.safetensors")
    users, items, ratings = (
        json.loads((folder / f"{name}.json").read_text()) for name in ("users", "items", "ratings")
    )
    return Recommender(model.eval(), users, items, ratings)


class Recommender:
    """What the Space needs: recommendations, explanations, similar movies, biases, PCA."""

    def __init__(self, model: nn.Module, users: list, items: list[dict], ratings: dict) -> None:
        self.model = model
        self.kind = "dot" if isinstance(model, DotProductBias) else "nn"
        self.users = [str(u) for u in users]
        self.user_index = {u: n for n, u in enumerate(self.users)}
        n_users, n_items = model.user_factors.num_embeddings, model.item_factors.num_embeddings
        if (len(self.users), len(items)) != (n_users, n_items):
            raise ModelError(
                f"The id maps ({len(self.users)} users, {len(items)} movies) do not match the "
                f"weights ({n_users} users, {n_items} movies): the model folder is inconsistent."
            )
        titles = [str(it["title"]) for it in items]
        dupes = {t for t, c in Counter(titles).items() if c > 1}
        # Unique display names: a title shared by two ids gets the id appended.
        self.titles = [
            f"{t} [{it['id']}]" if t in dupes else t for t, it in zip(titles, items, strict=True)
        ]
        self.genres = [", ".join(it.get("genres") or []) for it in items]
        self.counts = np.array([it.get("ratings") or 0 for it in items])
        self.means = np.array([it.get("mean") or np.nan for it in items], dtype=float)
        self.exact = {t.lower(): n for n, t in enumerate(self.titles)}
        self.base = titles
        self.keys = [_norm(t) for t in titles]
        self.fuzzy: dict[str, list[int]] = {}
        for n, t in enumerate(titles):
            self.fuzzy.setdefault(_norm(t), []).append(n)
        self.popular = sorted(range(len(items)), key=lambda n: -self.counts[n])

        u = np.asarray(ratings["user"], dtype=np.int64)
        order = np.argsort(u, kind="stable")
        self.rated_items = np.asarray(ratings["item"], dtype=np.int64)[order]
        self.rated_stars = np.asarray(ratings["rating"], dtype=np.float32)[order]
        self.user_start = np.searchsorted(u[order], np.arange(n_users + 1))
        self.scale = (
            (float(self.rated_stars.min()), float(self.rated_stars.max()))
            if len(self.rated_stars) else (1.0, 5.0)
        )  # fmt: skip

        w = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
        self.y_range = model.y_range
        self.item_vecs = w["item_factors.weight"]
        self.user_vecs = w["user_factors.weight"]
        norms = np.linalg.norm(self.item_vecs, axis=1, keepdims=True)
        self.unit = self.item_vecs / np.maximum(norms, 1e-12)
        if self.kind == "dot":
            self.item_bias = w["item_bias.weight"][:, 0]
            self.user_bias = w["user_bias.weight"][:, 0]
            self.bias = float(w["bias"])
            self.implicit = w.get("item_implicit.weight")  # SVD++ models only
            own = self.user_vecs
            if self.implicit is not None:  # a known user's own factors, without what they rated
                rated = np.asarray(ratings["item"], dtype=np.int64)
                own = own - self.implicit_offset(u, rated, n_users)
            users_ = np.c_[own, self.user_bias]  # a user = (own factors, bias)
            average = np.r_[self.user_vecs.mean(0), self.user_bias.mean()]
        else:
            users_ = self.user_vecs
            average = users_.mean(0)
        # Fold-in prior: a Gaussian fitted to the known users; noise: the training residuals.
        self.prior_mean = users_.mean(0)
        cov = np.cov(users_, rowvar=False) + 1e-6 * np.eye(users_.shape[1])
        self.prior_prec = np.linalg.inv(cov)
        fitted = predict(model, u, np.asarray(ratings["item"], dtype=np.int64))
        resid = fitted - np.asarray(ratings["rating"], dtype=np.float32)
        self.noise = float(np.mean(resid**2)) if len(resid) else 1.0
        self.average = self._predict_all(average)  # the average viewer's stars

    # Looking things up ------------------------------------------------------------------------

    def find(self, title: str) -> int:
        """The movie called `title` (forgiving about case, year, "The ..."); else a ValueError
        that suggests close matches."""
        title = str(title or "").strip()
        if not title:
            raise ValueError("A movie title is empty: pick a movie from the list.")
        if (n := self.exact.get(title.lower())) is not None:
            return n
        hits = self.fuzzy.get(_norm(title), [])
        if len(hits) == 1 or len({self.base[n] for n in hits}) == 1:
            return max(hits, key=lambda n: self.counts[n])  # one movie listed twice: its main id
        if hits:
            names = "; ".join(self.titles[n] for n in hits)
            raise ValueError(f"'{title}' matches several movies: {names}. Pick one.")
        close = self.search(title, limit=5)
        hint = (
            f" Did you mean: {'; '.join(close)}?" if close else " Type part of a title to search."
        )
        raise ValueError(f"Unknown movie '{title}'.{hint}")

    def search(self, query: str, limit: int = 20) -> list[str]:
        """Titles matching `query`: substring hits by popularity, then close spellings."""
        key = _norm(query)
        if not key:
            return [self.titles[n] for n in self.popular[:limit]]
        word = re.compile(rf"\b{re.escape(key)}")  # matches at the start of a word
        hits = [n for n in self.popular if word.search(self.keys[n])][:limit]
        if len(hits) < limit:
            close = difflib.get_close_matches(key, list(self.fuzzy), n=limit, cutoff=0.6)
            hits += [n for c in close for n in self.fuzzy[c] if n not in hits]
        return [self.titles[n] for n in hits[:limit]]

    def user(self, user: Any) -> int:
        """The index of a known user id (an int or a string)."""
        if isinstance(user, float) and not math.isnan(user) and user.is_integer():
            user = int(user)
        key = str(user).strip()
        if _blank(user):
            raise ValueError("Enter a user id.")
        if key in self.user_index:
            return self.user_index[key]
        numeric = [int(u) for u in self.users if u.isdigit()]
        if len(numeric) == len(self.users) and numeric:
            raise ValueError(
                f"User {key} does not exist: user ids run from {min(numeric)} to {max(numeric)}."
            )
        raise ValueError(f"Unknown user '{key}' (e.g. {', '.join(self.users[:3])}).")

    def ratings_of(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = self.user_start[user], self.user_start[user + 1]
        return self.rated_items[s:e], self.rated_stars[s:e]

    def parse(self, ratings: Any) -> tuple[np.ndarray, np.ndarray]:
        """(title, stars) pairs (a list, or a table's rows) -> (item indices, stars).

        Blank rows are skipped; unknown titles, stars outside the scale, a movie rated twice
        and an empty list raise ValueError with a message for a person."""
        if isinstance(ratings, pd.DataFrame):
            ratings = ratings.to_numpy().tolist()
        lo, hi = self.scale
        idx, stars = [], []
        for row in ratings or []:
            title, value = (list(row) + [None, None])[:2]
            if _blank(title) and _blank(value):
                continue
            n = self.find(title)
            if _blank(value):
                raise ValueError(f"Give '{self.titles[n]}' {lo:g} to {hi:g} stars.")
            try:
                s = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"Stars for '{self.titles[n]}' must be a number, got {value!r}."
                ) from None
            if not lo <= s <= hi or math.isnan(s):
                raise ValueError(
                    f"Stars must be between {lo:g} and {hi:g}; '{self.titles[n]}' has {value!r}."
                )
            if n in idx:
                raise ValueError(f"'{self.titles[n]}' is rated twice: rate each movie once.")
            idx.append(n)
            stars.append(s)
        if not idx:
            raise ValueError("Rate at least one movie (pick a title and give it 1 to 5 stars).")
        return np.array(idx), np.array(stars, dtype=np.float32)

    # Scoring -----------------------------------------------------------------------------------

    def _predict_all(self, vec: np.ndarray) -> np.ndarray:
        """Predicted stars of every movie for a user vector (dot: factors + bias)."""
        lo, hi = self.y_range
        if self.kind == "dot":
            z = self.item_vecs @ vec[:-1] + vec[-1] + self.item_bias + self.bias
            return lo + (hi - lo) / (1 + np.exp(-z))
        with torch.no_grad():
            items = torch.arange(len(self.titles))
            return self.model.score(torch.as_tensor(vec, dtype=torch.float32), items).numpy()

    def implicit_offset(self, users: np.ndarray, items: np.ndarray, n: int) -> np.ndarray:
        """Per user (0..n-1): the normalised sum of the implicit factors of what they rated."""
        counts = np.bincount(users, minlength=n).astype(np.float64)
        out = np.zeros((n, self.implicit.shape[1]))
        np.add.at(out, users, self.implicit[items] / np.sqrt(counts[users])[:, None])
        return out

    def fold_in(self, items: np.ndarray, stars: np.ndarray) -> np.ndarray:
        """A new user's vector (factors + bias) from a few ratings, movies fixed (no retraining).

        Maximum a posteriori under a Gaussian prior fitted to the known users: a regularised
        least-squares problem, solved by a few Gauss-Newton steps through the sigmoid (each a
        (factors + 1)-sized linear solve), or by L-BFGS for the MLP model. With implicit
        factors, what the visitor chose to rate adds its term as it does for known users."""
        theta = self.prior_mean.astype(np.float64).copy()
        lo, hi = self.y_range
        if self.kind == "dot":
            # user vector = own factors (solved for) + the implicit term of what they rated
            implicit = np.zeros(self.item_vecs.shape[1])
            if self.implicit is not None:
                implicit = self.implicit_offset(np.zeros(len(items), np.int64), items, 1)[0]
            q = np.c_[self.item_vecs[items], np.ones(len(items))].astype(np.float64)
            offset = self.item_bias[items] + self.bias + self.item_vecs[items] @ implicit
            for _ in range(10):
                p = 1 / (1 + np.exp(-(q @ theta + offset)))
                resid = stars - (lo + (hi - lo) * p)
                jac = q * ((hi - lo) * p * (1 - p))[:, None]
                lhs = jac.T @ jac / self.noise + self.prior_prec
                rhs = jac.T @ resid / self.noise - self.prior_prec @ (theta - self.prior_mean)
                step = np.linalg.solve(lhs, rhs)
                theta += step
                if np.abs(step).max() < 1e-6:
                    break
            theta[:-1] += implicit
            return theta
        mean = torch.as_tensor(self.prior_mean, dtype=torch.float32)
        prec = torch.as_tensor(self.prior_prec, dtype=torch.float32)
        vec = mean.clone().requires_grad_()
        opt = torch.optim.LBFGS([vec], max_iter=50, line_search_fn="strong_wolfe")
        items_t, stars_t = torch.as_tensor(items), torch.as_tensor(stars)

        def loss() -> torch.Tensor:
            opt.zero_grad()
            d = vec - mean
            value = (
                (self.model.score(vec, items_t) - stars_t) ** 2
            ).sum() / self.noise + d @ prec @ d
            value.backward()
            return value

        opt.step(loss)
        return vec.detach().numpy()

    def _explain(
        self, recs: np.ndarray, items: np.ndarray, stars: np.ndarray, lift: np.ndarray
    ) -> list[str]:
        """Why each recommendation: the liked movie it is most similar to, when one is close
        enough to count; otherwise it is a crowd favourite (its bias, not taste, carries it)."""
        liked = stars >= min(4, stars.max())  # 4-5 stars, or the user's best if all are lower
        items, stars = items[liked], stars[liked]
        sims = self.unit[recs] @ self.unit[items].T
        out = []
        for k, j in enumerate(recs):
            b = sims[k].argmax()
            if sims[k, b] >= SIMILAR:
                out.append(
                    f"because you rated {self.titles[items[b]]} {_stars(stars[b])} "
                    f"(similarity {sims[k, b]:.2f})"
                )
            elif lift[j] > 0:
                out.append(f"fits your taste; a crowd favourite ({self.means[j]:.1f}★ average)")
            else:
                out.append(f"a crowd favourite: {self.means[j]:.1f}★ average")
        return out

    def _top(self, score: np.ndarray, exclude: np.ndarray, n: int, min_ratings: int) -> np.ndarray:
        score = score.copy()
        score[self.counts < min_ratings] = -np.inf
        score[exclude] = -np.inf
        top = np.argsort(-score, kind="stable")[: int(n)]
        return top[np.isfinite(score[top])]

    def _rank(self, vec, items, stars, n, min_ratings, rank_by) -> pd.DataFrame:
        if rank_by not in RANK_BY:
            raise ValueError(f"rank_by must be one of {', '.join(RANK_BY)}, got {rank_by!r}.")
        pred = self._predict_all(vec)
        lift = pred - self.average  # how much more than the average viewer
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
        would give (favours movies for this visitor over movies everyone likes)."""
        items, stars = self.parse(ratings)
        return self._rank(self.fold_in(items, stars), items, stars, n, min_ratings, rank_by)

    def recommend_user(
        self, user: Any, n: int = TOP_N, min_ratings: int = MIN_RATINGS, rank_by: str = "stars"
    ) -> pd.DataFrame:
        """Top-`n` movies a known user has not rated, explained by their own ratings."""
        u = self.user(user)
        items, stars = self.ratings_of(u)
        vec = self.user_vecs[u]
        if self.kind == "dot":
            vec = np.r_[vec, self.user_bias[u]]
        return self._rank(vec, items, stars, n, min_ratings, rank_by)

    def user_favourites(self, user: Any, n: int = TOP_N) -> pd.DataFrame:
        """A known user's highest-rated movies (their training ratings)."""
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
            raise ValueError(
                "The bias ranking needs a DotProductBias model; this one is an EmbeddingNN."
            )
        keep = np.flatnonzero(self.counts >= min_ratings)
        order = keep[np.argsort(-self.item_bias[keep], kind="stable")]

        def table(idx: np.ndarray) -> pd.DataFrame:
            return pd.DataFrame(
                {
                    "Movie": [self.titles[i] for i in idx],
                    "Bias": _round(self.item_bias[idx], 3),
                    "Mean stars": _round(self.means[idx], 2),
                    "Ratings": self.counts[idx],
                }
            )

        return table(order[: int(n)]), table(order[::-1][: int(n)])

    def pca(self, n_movies: int = 500, dims: int = 3) -> tuple[pd.DataFrame, list[float]]:
        """PCA of the factors of the `n_movies` most-rated movies; returns the coordinates and
        the share of variance each component explains."""
        top = np.array(self.popular[: int(n_movies)])
        x = self.item_vecs[top] - self.item_vecs[top].mean(0)
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        coords = x @ vt[:dims].T
        share = (s**2 / (s**2).sum())[:dims]
        frame = pd.DataFrame(coords, columns=[f"PC{k + 1}" for k in range(coords.shape[1])])
        frame.insert(0, "Movie", [self.titles[i] for i in top])
        frame["Ratings"] = self.counts[top]
        frame["Mean stars"] = self.means[top]
        frame["Bias"] = self.item_bias[top] if self.kind == "dot" else np.nan
        frame["Genres"] = [self.genres[i] for i in top]
        return frame, [float(v) for v in share]


# --- 6. CLI -------------------------------------------------------------------------------------


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", type=Path, default=None,
        help="MovieLens 100k folder (downloaded there when missing; default ./ml-100k) or a "
        "ratings CSV with a header user,item,rating[,title]",
    )  # fmt: skip
    p.add_argument("--train", type=Path, help="training ratings (MovieLens tab format or CSV)")
    p.add_argument("--valid", type=Path, help="validation ratings (instead of a random split)")
    p.add_argument("--valid-pct", type=float, default=0.2, help="random validation share")


def add_train_args(p: argparse.ArgumentParser) -> None:
    _add_data_args(p)
    p.add_argument("--model", choices=sorted(MODEL_TYPES), default="dot")
    p.add_argument("--factors", type=int, help="latent factors (dot), default 50")
    p.add_argument("--epochs", type=int, help="default 30")
    p.add_argument("--lr", type=float, help="max learning rate (dot 3e-2, nn 1e-2)")
    p.add_argument("--wd", type=float, help="weight decay (default 3)")
    p.add_argument("--bias-wd", type=float, help="weight decay of the biases, default 0.03")
    p.add_argument(
        "--implicit", action=argparse.BooleanOptionalAction, default=None,
        help="dot: add what each user rated to their vector (SVD++; default on)",
    )  # fmt: skip
    p.add_argument("--implicit-wd", type=float, help="dot: implicit factors' decay, default 10")
    p.add_argument("--bs", type=int, help="batch size, default 4096")
    p.add_argument("--seed", type=int, default=42)


def _recipe(args: argparse.Namespace) -> Recipe:
    return Recipe.default(
        args.model, factors=args.factors, epochs=args.epochs, lr=args.lr, wd=args.wd,
        bias_wd=args.bias_wd, implicit=args.implicit, implicit_wd=args.implicit_wd, bs=args.bs,
        seed=args.seed, valid_pct=args.valid_pct,
    )  # fmt: skip


def train_cli(args: argparse.Namespace) -> dict:
    recipe = _recipe(args)
    data = load_data(
        args.data, train=args.train, valid=args.valid, valid_pct=recipe.valid_pct, seed=recipe.seed
    )
    trained = train(recipe, data)
    save(trained, args.out, recipe)
    write_card(Path(args.out), recipe, trained, getattr(args, "push_to_hub", None))
    return {**trained.metrics, "out": str(args.out)}


def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model-dir", default=None,
        help="a trained model folder or Hub repo id (default: the registry's movie-recommender)",
    )  # fmt: skip
    _add_data_args(p)
    p.add_argument(
        "--folds", type=int, default=0,
        help="k-fold cross-validation: retrain the model's recipe k times on --data",
    )  # fmt: skip


def _model_folder(name: str | None) -> Path:
    from shared import registry

    if name is None:
        return registry.fetch("movie-recommender")
    if Path(name).is_dir():
        return Path(name)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name))


def evaluate_cli(args: argparse.Namespace) -> dict:
    folder = _model_folder(args.model_dir)
    rec = load(folder)
    recipe = Recipe(**json.loads((folder / "recipe.json").read_text()))
    recipe.hidden = tuple(recipe.hidden)
    if args.folds:
        data = load_data(args.data, train=args.train, valid_pct=0.0, seed=recipe.seed)
        return cross_validate(recipe, data.train, data.items, args.folds)
    data = load_data(
        args.data, train=args.train, valid=args.valid, valid_pct=recipe.valid_pct, seed=recipe.seed
    )
    u, i, r = encode(data.valid, rec.user_index, {it: n for n, it in enumerate(_item_ids(folder))})
    if not len(r):
        raise ValueError("No validation rating has a user and a movie known to the model.")
    return {
        **scores(predict(rec.model, u, i), r),
        "ratings": len(r),
        "skipped": len(data.valid) - len(r),
    }


def _item_ids(folder: Path) -> list[str]:
    return [it["id"] for it in json.loads((folder / "items.json").read_text())]
