"""Serving a trained recommender: `load(folder)` -> a `Recommender` (imports torch, on first use
of either name: the Space imports titles.py and cards.py at start-up, and those stay light).

titles.py finds movies by their titles, fold_in.py solves for a new visitor's taste,
recommender.py ranks and explains with them, and cards.py draws the results for the page.
"""

from typing import Any

__all__ = ["Recommender", "load"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from models.recommender.serve import recommender

        return getattr(recommender, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
