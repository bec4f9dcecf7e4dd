"""The movies of a model: unique display titles, genres, rating counts, and finding one by title.

MovieLens writes "Godfather, The (1972)"; people type "The Godfather" or "godfather". `find`
forgives case, the year, punctuation and moved articles, and suggests close spellings when it
finds nothing; `search` is what the Space's title box offers as one types. Torch-free.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from typing import Any

import numpy as np

from shared import limits
from shared.errors import UserError

# An article moved behind the title, as in "Godfather, The" or "Mépris, Le".
ARTICLES = re.compile(r", (the|a|an|les|la|le|l'|il|das|der|die|el|los)")


def norm(title: str) -> str:
    """A forgiving key for titles: case, year, punctuation and "Godfather, The" forms."""
    t = re.sub(r"\(\d{4}\)", "", title.lower()).strip()
    t = re.sub(r"^(the|a|an) ", "", re.sub(ARTICLES.pattern + "$", "", t))
    return " ".join(re.findall(r"[a-z0-9]+", t))


def blank(v: Any) -> bool:
    """Whether a cell of a table is empty (None, NaN or only spaces)."""
    return v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == ""


class Catalogue:
    """The movies of items.json, by index: `titles` (unique: a title shared by two ids gets the
    id appended), `genres`, `counts` and `means` of their training ratings, `popular` (indices,
    most rated first)."""

    def __init__(self, items: list[dict]) -> None:
        self.ids = [str(it["id"]) for it in items]
        base = [str(it["title"]) for it in items]
        dupes = {t for t, c in Counter(base).items() if c > 1}
        self.titles = [
            f"{t} [{it['id']}]" if t in dupes else t for t, it in zip(base, items, strict=True)
        ]
        self.genres = [", ".join(it.get("genres") or []) for it in items]
        self.counts = np.array([it.get("ratings") or 0 for it in items])
        self.means = np.array([it.get("mean") or np.nan for it in items], dtype=float)
        self.popular = sorted(range(len(items)), key=lambda n: -self.counts[n])
        self._base = base
        self._exact = {t.lower(): n for n, t in enumerate(self.titles)}
        self._keys = [norm(t) for t in base]
        self._fuzzy: dict[str, list[int]] = {}
        for n, t in enumerate(base):
            self._fuzzy.setdefault(norm(t), []).append(n)

    def __len__(self) -> int:
        return len(self.titles)

    def find(self, title: object) -> int:
        """The movie called `title` (forgiving about case, year, "The ..."); else a UserError
        that suggests close matches. Text over `limits.TITLE` is refused before any work."""
        title = limits.check_text(title, "movie title", limits.TITLE).strip()
        if not title:
            raise UserError("A movie title is empty: pick a movie from the list.")
        if (n := self._exact.get(title.lower())) is not None:
            return n
        hits = self._fuzzy.get(norm(title), [])
        if len(hits) == 1 or len({self._base[n] for n in hits}) == 1:
            return max(hits, key=lambda n: self.counts[n])  # one movie listed twice: its main id
        if hits:
            names = "; ".join(self.titles[n] for n in hits)
            raise UserError(f"'{limits.excerpt(title)}' matches several movies: {names}. Pick one.")
        close = self.search(title, limit=5)
        hint = (
            f" Did you mean: {'; '.join(close)}?" if close else " Type part of a title to search."
        )
        raise UserError(f"Unknown movie '{limits.excerpt(title)}'.{hint}")

    def search(self, query: str, limit: int = 20) -> list[str]:
        """Titles matching `query`: substring hits by popularity, then close spellings. Only the
        first `limits.TITLE` characters count (no title is longer), so a long query stays fast."""
        key = norm(str(query or "")[: limits.TITLE.value])
        if not key:
            return [self.titles[n] for n in self.popular[:limit]]
        word = re.compile(rf"\b{re.escape(key)}")  # matches at the start of a word
        hits = [n for n in self.popular if word.search(self._keys[n])][:limit]
        if len(hits) < limit:
            close = difflib.get_close_matches(key, list(self._fuzzy), n=limit, cutoff=0.6)
            hits += [n for c in close for n in self._fuzzy[c] if n not in hits]
        return [self.titles[n] for n in hits[:limit]]
