"""Serving a trained recommender: `load(folder)` -> a `Recommender` (imports torch).

titles.py finds movies by their titles, fold_in.py solves for a new visitor's taste, and
recommender.py ranks and explains with them.
"""

from models.recommender.serve.recommender import Recommender, load

__all__ = ["Recommender", "load"]
