"""Movie recommender Space: rate a few movies, get explained recommendations, explore the factors.

Collaborative filtering from fast.ai's course (lessons 7-8) on MovieLens 100k. A new visitor is
folded in from their ratings (a small least-squares solve, no retraining). The model loads from
the Hub on first use (or, while none is published, is built on this machine once); set
DEMO_MODEL_MOVIE_RECOMMENDER to serve your own. The model holds no ratings (MovieLens' terms):
the "Existing user" tab downloads them from GroupLens on first use, or says why it cannot.

The API (/recommend, /similar_movies, /user_recommendations) answers with tables and raises a
person's message on bad input; the page shows its tables as HTML that stacks into one card per
movie on a phone, and each failure on a status line beside the control that caused it.
"""

import sys
from html import escape
from pathlib import Path

here = Path(__file__).resolve().parent
# in the repo shared/ is two levels up; in a deployed Space it sits beside app.py
if not (here / "shared").is_dir():
    sys.path.insert(0, str(here.parents[1]))

import gradio as gr  # noqa: E402

from shared import registry, serve, ui  # noqa: E402
from shared.errors import UserError  # noqa: E402

NAME = "movie-recommender"
STARS = [(f"{k}★", k) for k in range(1, 6)]
EXAMPLE = [
    ["Star Wars (1977)", 5],
    ["Raiders of the Lost Ark (1981)", 5],
    ["Toy Story (1995)", 4],
    ["Fargo (1996)", 2],
    ["English Patient, The (1996)", 1],
]
RANK_BY = [
    ("Highest predicted stars", "stars"),
    ("Most above the average viewer (your taste, not your generosity)", "taste"),
]
PROGRESS = gr.Progress()  # what a first use waits for (a shared default, as gradio allows)
FETCHING = "Fetching MovieLens' ratings from GroupLens (the first time only)…"
LOADING = "Loading the model (the first time on a fresh machine: MovieLens download + training)…"

INTRO = """## 🎬 Movie recommender
Rate a few movies you know and get recommendations, each with its reason: collaborative
filtering on MovieLens 100k, from fast.ai's *Practical Deep Learning* (lessons 7–8)."""
DESCRIPTION = """No retraining happens: your ratings are **folded in** — with the learned movie
factors fixed, a small regularised least-squares problem finds the taste vector and bias that
explain your stars best. The model is a `DotProductBias` (plus SVD++'s implicit term: *which*
movies you rate says something too; and the movies' genres and release years, shared by movies of
a kind) trained on the ratings of MovieLens 100k. Movies with few ratings are left out of
recommendations (their factors are guesswork); lower the minimum under **Options** to see them.
**Rank by** "most above the average viewer" to see the movies that suit *you* rather than the
ones everyone likes."""
HINT = "Pick a movie (type part of its title), give it stars, **Add rating**; then **Recommend**."
WAITING = "Your recommendations appear here."


def model(progress: gr.Progress | None = None):
    """The shared Recommender; on a first use, `progress` says what it waits for."""
    if progress is not None and NAME not in registry._cache:
        progress(0, desc=LOADING)
    return registry.load(NAME)


# --- the API (gradio_client, MCP): tables as {"headers", "data"}; bad input raises ----------


def _json(frame) -> dict:
    rows = [[v.item() if hasattr(v, "item") else v for v in row] for row in frame.to_numpy()]
    return {"headers": [str(c) for c in frame.columns], "data": rows}


@ui.errors
def recommend(
    rows: dict | list | None, n: float = 10, min_ratings: float = 20, rank_by: str = "stars"
) -> dict:
    """Recommend movies for a new visitor from a few ratings, each with the reason.

    Args:
        rows: the visitor's ratings, a table {"headers": ["Movie", "Stars"], "data": [[title,
            stars], ...]} (or just its rows) of up to 200 (movie title, stars from 1 to 5);
            titles are matched forgivingly ("the godfather" finds "Godfather, The (1972)").
        n: how many movies to recommend (1-50).
        min_ratings: leave out movies with fewer ratings than this in the training data.
        rank_by: "stars" for the highest predicted stars, or "taste" for the movies this
            visitor would rate most above the average viewer (their generosity left out).

    Returns:
        A table: movie, predicted stars, why, stars over the average viewer, number of ratings,
        genres.
    """
    return _json(model().recommend(rows, n, min_ratings, rank_by))


@ui.errors
def similar_movies(movie: str | None, n: float = 10, min_ratings: float = 20) -> dict:
    """Find the movies most similar to one movie, by the cosine similarity of learned factors.

    Args:
        movie: a movie title (matched forgivingly, e.g. "star wars").
        n: how many similar movies to return (1-50).
        min_ratings: leave out movies with fewer ratings than this in the training data.

    Returns:
        A table: movie, similarity (-1 to 1), number of ratings, genres.
    """
    return _json(model().similar(movie, n, min_ratings))


@ui.errors
def user_recommendations(
    user: float | str | None, n: float = 10, min_ratings: float = 20, rank_by: str = "stars"
) -> tuple[dict, dict]:
    """A MovieLens 100k user's favourite movies and their recommendations.

    Args:
        user: a MovieLens 100k user id (1-943). Their ratings are downloaded from GroupLens on
            first use (the model itself holds none).
        n: how many movies in each table (1-50).
        min_ratings: leave out recommended movies with fewer ratings than this.
        rank_by: "stars" for the highest predicted stars, or "taste" for the movies this user
            would rate most above the average viewer.

    Returns:
        Two tables: the user's highest-rated movies, and their recommendations with reasons.
    """
    favourites, recs = _for_user(model(), user, n, min_ratings, rank_by)
    return _json(favourites), _json(recs)


def _for_user(rec, user, n, min_ratings, rank_by):
    rec.user(user)  # a bad id is refused before anything is downloaded
    rec.fetch_ratings()
    return rec.user_favourites(user, n), rec.recommend_user(user, n, min_ratings, rank_by)


# --- the page's tables: HTML, one card per movie on a phone ----------------------------------

TABLE_CSS = """
table { width: 100%; border-collapse: collapse; margin: 0; font-size: var(--text-md); }
caption { text-align: left; font-weight: 600; padding-bottom: 0.4rem; }
th { text-align: left; font-size: var(--text-sm); font-weight: 600; vertical-align: bottom;
     color: var(--body-text-color-subdued); padding: 0.35rem 0.5rem; }
td { vertical-align: top; padding: 0.45rem 0.5rem; border-top: 1px solid var(--border-color-primary); }
td small { display: block; color: var(--body-text-color-subdued); }
.num { text-align: right; white-space: nowrap; }
p.empty { color: var(--body-text-color-subdued); margin: 0.5rem 0; }
@media (max-width: 600px) {
  thead { display: none; }
  table, tbody, tr, td { display: block; }
  tr { border-top: 1px solid var(--border-color-primary); padding: 0.5rem 0; }
  td { border: none; padding: 0.1rem 0; }
  td.num { display: inline-block; margin-right: 1.2rem; text-align: left; }
  td[data-label]::before { content: attr(data-label) " "; color: var(--body-text-color-subdued); }
}
"""


def _movie(title: str, *notes: str) -> str:
    small = " · ".join(escape(str(n)) for n in notes if n)
    return f"<strong>{escape(str(title))}</strong>" + (f"<small>{small}</small>" if small else "")


def _ratings(count) -> str:
    return f"{int(count):,} ratings"


def cards(caption: str, headers: list[str], rows: list[list[str]], empty: str) -> str:
    """An HTML table (cells already escaped) whose rows stack into cards on a phone, each cell
    but the first labelled by its header; numbers (all cells after the first, but a last
    "Why") align right on a wide screen."""
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>'
    numeric = [0 < k and h != "Why" for k, h in enumerate(headers)]
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if num else f"<th>{escape(h)}</th>"
        for h, num in zip(headers, numeric, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{cell}</td>"
            if k == 0
            else f'<td class="{"num" if numeric[k] else "text"}" data-label="{escape(h)}">'
            f"{cell}</td>"
            for k, (h, cell) in enumerate(zip(headers, row, strict=True))
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
    f"<tbody>{body}</tbody></table>"
