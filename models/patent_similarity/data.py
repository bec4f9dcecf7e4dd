"""The task: phrase pairs, the CPC table, the text the model reads, the score grid, the split,
the metric and a baseline.

Lesson 4's task, the Kaggle "U.S. Patent Phrase to Phrase Matching": each (anchor, target, CPC
context) triple becomes one text, scored 0 (unrelated) to 1 (very close match). The validation
split holds out whole anchors, so Pearson correlation on it says how well a model scores phrases
it has never seen; a character n-gram TF-IDF baseline gives the number to beat.

Torch-free (numpy, pandas; scikit-learn for the baseline, imported when used).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from shared.errors import UserError

TEMPLATE = "TEXT1: {context}; TEXT2: {target}; ANC1: {anchor}"  # the course's input text
TITLES = "cpc_titles.json"  # the CPC table, shipped with the model for the Space's dropdown
MAX_CHARS = 200  # patent phrases are a few words (the data's longest is 98 characters)
# The competition's grid: what each score means.
GRID = {
    1.0: "very close match",
    0.75: "close synonym",
    0.5: "synonym with different breadth",
    0.25: "somewhat related",
    0.0: "unrelated",
}


# ---------------------------------------------------------------------------------------------
# Reading


def read_cpc(path: str | Path) -> dict[str, str]:
    """The CPC table {code: title} from a CSV with the columns code,title (or our JSON)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"CPC table not found: {path}")
    if path.suffix == ".json":
        return {str(k).upper(): str(v) for k, v in json.loads(path.read_text()).items()}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.columns = [c.strip().lower() for c in table.columns]
    if not {"code", "title"} <= set(table.columns):
        raise UserError(f"{path} needs the columns code,title; it has {', '.join(table.columns)}")
    pairs = zip(table.code, table.title, strict=True)
    return {c.strip().upper(): t.strip() for c, t in pairs if c.strip()}


def read_pairs(path: str | Path, *, labelled: bool = True) -> pd.DataFrame:
    """Phrase pairs (anchor, target, context[, score]) from a CSV like the competition's."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Data file not found: {path}")
    df = pd.read_csv(
        path, dtype={"anchor": str, "target": str, "context": str}, keep_default_na=False
    )
    df.columns = [c.strip().lower() for c in df.columns]
    need = ["anchor", "target", "context"] + (["score"] if labelled else [])
    if missing := [c for c in need if c not in df.columns]:
        raise UserError(
            f"{path} lacks the column(s) {', '.join(missing)}; it needs {', '.join(need)}"
        )
    if labelled:
        df["score"] = pd.to_numeric(df["score"], errors="coerce")
        bad = df["score"].isna() | ~df["score"].between(0, 1)
        if bad.any():
            raise UserError(f"{path}: {bad.sum()} row(s) have no score between 0 and 1")
    return df.reset_index(drop=True)


def clean(phrase: object) -> str:
    """One line of text with single spaces."""
    return " ".join(str(phrase).split()) if phrase is not None else ""


def cpc_text(code: str, titles: dict[str, str], use_titles: bool) -> str:
    """What the model reads as context: the code, or its title (in lower case, like the phrases)."""
    return titles[code].lower() if use_titles and code in titles else code


def meaning(score: float) -> tuple[float, str]:
    """The nearest point of the competition's 0.25 grid, and what it means."""
    grid = min(max(round(score * 4) / 4, 0.0), 1.0)
    return grid, GRID[grid]


# ---------------------------------------------------------------------------------------------
# Validation split: whole anchors go to one side, so the score measures unseen phrases


def split_by_anchor(
    anchors: Sequence[str], valid_frac: float = 0.25, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, valid); every anchor's rows all land on the same side.

    The side of an anchor is decided by a seeded hash of the anchor itself, so the split is the
    same whatever the row order or subset: `evaluate` finds exactly the anchors `train` held out.
    """
    if not 0 < valid_frac < 1:
        raise UserError("valid_frac must be between 0 and 1")

    def valid(anchor: str) -> bool:
        digest = hashlib.sha256(f"{seed}:{anchor}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < valid_frac

    side = {a: valid(a) for a in set(anchors)}
    is_valid = np.array([side[a] for a in anchors], dtype=bool)
    if is_valid.all() or not is_valid.any():
        raise UserError(
            f"{len(side)} distinct anchor(s) are too few to hold some out for validation; "
            "use more data"
        )
    return np.flatnonzero(~is_valid), np.flatnonzero(is_valid)


# ---------------------------------------------------------------------------------------------
# The metric


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation, the competition's metric (nan when either side is constant)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((dx * dx).sum() * (dy * dy).sum()))
    return float((dx * dy).sum() / denom) if denom > 0 else float("nan")


class RunningPearson:
    """Pearson correlation over chunks, with constant memory (merged co-moments)."""

    def __init__(self) -> None:
        self.n, self.mx, self.my, self.sxx, self.syy, self.sxy = 0, 0.0, 0.0, 0.0, 0.0, 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        m = len(x)
        if not m:
            return
        mx, my = x.mean(), y.mean()
        n = self.n + m
        ddx, ddy = mx - self.mx, my - self.my
        w = self.n * m / n
        self.sxx += ((x - mx) ** 2).sum() + ddx * ddx * w
        self.syy += ((y - my) ** 2).sum() + ddy * ddy * w
        self.sxy += ((x - mx) * (y - my)).sum() + ddx * ddy * w
        self.mx += ddx * m / n
        self.my += ddy * m / n
        self.n = n

    @property
    def value(self) -> float:
        denom = math.sqrt(self.sxx * self.syy)
        return self.sxy / denom if denom > 0 else float("nan")


# ---------------------------------------------------------------------------------------------
# Baseline: what you get without any neural network


def baseline_scores(
    anchors: Sequence[str], targets: Sequence[str], fit_on: Sequence[str]
) -> np.ndarray:
    """Cosine similarity of character n-gram TF-IDF vectors of anchor and target."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    vec.fit(list(fit_on))
    a = vec.transform([clean(s).lower() for s in anchors])  # rows are L2-normalised
    b = vec.transform([clean(s).lower() for s in targets])
    return np.asarray(a.multiply(b).sum(axis=1)).ravel()


def baseline_pearson(train: pd.DataFrame, valid: pd.DataFrame) -> float:
    """The baseline's Pearson on `valid`, its vocabulary fitted on the training phrases only."""
    fit_on = pd.concat([train.anchor, train.target]).str.lower().tolist()
    return pearson(baseline_scores(valid.anchor, valid.target, fit_on), valid.score)
