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
from pathlib import Path

here = Path(__file__).resolve().parent
# in the repo shared/ is two levels up; in a deployed Space it sits beside app.py
if not (here / "shared").is_dir():
    sys.path.insert(0, str(here.parents[1]))

import gradio as gr  # noqa: E402

from models.recommender.serve.cards import (  # noqa: E402
    TABLE_CSS,
    bias_cards,
    cards,
    factor_map,
    favourites_cards,
    recs_cards,
    similar_cards,
)
from models.recommender.serve.titles import blank  # noqa: E402
from shared import limits, registry, serve, ui  # noqa: E402
from shared.errors import UserError  # noqa: E402

NAME = "movie-recommender"
MOST = limits.MOVIES.value  # the sliders' "How many" (the API checks it too)
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

INTRO = "## 🎬 Movie recommender"
LEDE = "Rate movies you know, get recommendations with their reasons (fast.ai, lessons 7–8)."
DESCRIPTION = """Collaborative filtering on MovieLens 100k, as in fast.ai's *Practical Deep
Learning* (lessons 7–8). No retraining happens: your ratings are **folded in** — with the learned
movie factors fixed, a small regularised least-squares problem finds the taste vector and bias that
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
    rec.user(user)  # a bad id or option is refused before anything is downloaded
    rec.options(n, min_ratings, rank_by)
    rec.fetch_ratings()
    return rec.user_favourites(user, n), rec.recommend_user(user, n, min_ratings, rank_by)


# --- the page's handlers: each failure on the status line beside its control (ui.reported) ----


def fill_titles(filled: bool, progress=PROGRESS):
    """Give a movie dropdown its titles (most rated first) on first use: loads the model."""
    if filled:
        return gr.skip(), True
    return gr.Dropdown(choices=model(progress).search("", limit=10_000)), True


def _recommend(rec, rows: list, n, min_ratings, rank_by) -> str:
    caption = "Recommended for you" + (" (most above the average viewer)" * (rank_by == "taste"))
    return recs_cards(rec.recommend(rows, n, min_ratings, rank_by), caption)


def add_rating(movie, stars, rows, n, min_ratings, rank_by, progress=PROGRESS):
    """Add (or update) one rating in the table, then recommend from the table."""
    from models.recommender.serve.recommender import table_rows  # torch: loaded by now

    if blank(movie):
        raise UserError("Pick a movie first: type part of its title and choose it from the list.")
    rec = model(progress)
    title = rec.titles[rec.find(movie)]
    given = int(limits.check_number(stars, "number of stars", *rec.scale))
    kept = [r for r in table_rows(rows) if not blank(r[0]) and rec.titles[rec.find(r[0])] != title]
    if len(kept) >= limits.RATINGS.value:
        raise UserError(f"You have rated the most movies allowed ({limits.RATINGS}).")
    rows = [r[:2] for r in kept] + [[title, given]]
    return rows, None, _recommend(rec, rows, n, min_ratings, rank_by)


def recommend_page(rows, n, min_ratings, rank_by, progress=PROGRESS) -> str:
    return _recommend(model(progress), rows, n, min_ratings, rank_by)


def example_page(n, min_ratings, rank_by, progress=PROGRESS):
    """The example ratings; for a model trained on other movies, its most-rated ones."""
    rec = model(progress)
    rows = EXAMPLE
    if not all(title in rec.titles for title, _ in EXAMPLE):
        rows = [[rec.titles[i], s] for i, (_, s) in zip(rec.popular, EXAMPLE, strict=False)]
    return rows, _recommend(rec, rows, n, min_ratings, rank_by)


def similar_page(movie, n, min_ratings, progress=PROGRESS) -> str:
    if blank(movie):
        raise UserError("Pick a movie: type part of its title and choose it from the list.")
    rec = model(progress)
    title = rec.titles[rec.find(movie)]
    return similar_cards(rec.similar(title, n, min_ratings), title)


def prepare_users(progress=PROGRESS):
    """On opening the "Existing user" tab: fetch the known users' ratings from GroupLens
    (cached after the first time), or hide the tab's controls and say why not."""
    try:
        rec = model(progress)
        if not rec.has_ratings:
            progress(0, desc=FETCHING)
        rec.fetch_ratings()
    except Exception as e:  # a person's reason, or a bug's reference (logged once)
        why = ui.problem(e, "prepare_users").removeprefix("⚠️ ")
        note = f"⚠️ **The existing users cannot be shown here.** {why} The other tabs still work."
        return gr.Markdown(note, visible=True), gr.Column(visible=False)
    return gr.Markdown(visible=False), gr.Column(visible=True)


def user_page(user, n, min_ratings, rank_by, progress=PROGRESS):
    favourites, recs = _for_user(model(progress), user, n, min_ratings, rank_by)
    return favourites_cards(favourites), recs_cards(recs, "Recommended for them")


def explore(dims: str, n_movies, color: str, min_ratings):
    """The PCA of the movie factors (interactive scatter) and the bias rankings."""
    rec = model()
    fig, notes = factor_map(*rec.pca(n_movies, dims=3), dims, color)
    if rec.kind != "dot":  # an EmbeddingNN has no biases: say so where the tables would be
        why = "This model (an EmbeddingNN) has no biases to rank."
        return fig, notes, cards("", [], [], why), ""
    best, worst = rec.bias_ranking(15, min_ratings)
    return (
        fig,
        notes,
        bias_cards(best, "Liked most beyond taste (highest bias)"),
        bias_cards(worst, "Liked least beyond taste (lowest bias)"),
    )


def _results(elem_id: str, text: str = "") -> gr.HTML:
    """A results table (HTML from `cards`), styled by TABLE_CSS wherever it is rendered; side
    by side in a row, two of them wrap one under the other on a phone (min_width)."""
    return gr.HTML(cards("", [], [], text), css_template=TABLE_CSS, elem_id=elem_id, min_width=300)


with gr.Blocks(title="Movie recommender") as demo:
    gr.Markdown(INTRO)
    gr.Markdown(LEDE, elem_classes=["demo-wide-only"])  # on a phone the controls come first
    with gr.Tabs(overflow_behavior="wrap"):  # short labels: one row on a phone
        with gr.Tab("Rate", id="rate"):
            filled = gr.State(False)
            gr.Markdown(HINT, elem_classes=["demo-wide-only"])  # a phone needs the room
            with gr.Row(equal_height=True):
                movie = gr.Dropdown(
                    label="Movie",
                    info="Type part of a title to search",
                    allow_custom_value=True,
                    scale=4,
                    min_width=240,
                    elem_id="rec-movie",
                )
                stars = gr.Dropdown(
                    STARS, value=4, label="Your stars", scale=1, min_width=100, elem_id="rec-stars"
                )
            with gr.Row():  # on a phone two by two: Add and Recommend first
                add = gr.Button("Add rating", min_width=120, elem_id="rec-add")
                go = gr.Button("Recommend", variant="primary", elem_id="rec-go", min_width=120)
                example = gr.Button("Example", min_width=120, elem_id="rec-example")
                clear = gr.Button("Clear", min_width=80)
            status = ui.status(elem_id="rec-status")
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=280):
                    ratings = gr.Dataframe(
                        headers=["Movie", "Stars"],
                        datatype=["str", "number"],
                        type="array",
                        interactive=True,
                        label="Your ratings (edit the stars, or clear and start again)",
                        elem_id="rec-ratings",
                    )
                    with gr.Accordion("Options", open=False):
                        top_n = gr.Slider(
                            1, limits.MOVIES.value, value=10, step=1, label="How many"
                        )
                        min_ratings = gr.Slider(
                            1, 200, value=20, step=1,
                            label="Only movies with at least this many ratings",
                        )  # fmt: skip
                        rank_by = gr.Radio(RANK_BY, value="stars", label="Rank by")
                with gr.Column(scale=3, min_width=280):
                    recs = _results("rec-results", WAITING)

        with gr.Tab("Similar", id="similar"):
            filled_similar = gr.State(False)
            similar_movie = gr.Dropdown(
                label="Movie",
                info="Type part of a title to search",
                allow_custom_value=True,
                elem_id="rec-similar-movie",
            )
            similar_go = gr.Button(
                "Find similar movies", variant="primary", elem_id="rec-similar-go"
            )
            similar_status = ui.status(elem_id="rec-similar-status")
            with gr.Accordion("Options", open=False), gr.Row():
                similar_n = gr.Slider(1, MOST, value=10, step=1, label="How many")
                similar_min = gr.Slider(1, 200, value=20, step=1, label="Minimum ratings")
            similar = _results("rec-similar", "Pick a movie to see the movies most like it.")

        with gr.Tab("Explore", id="explore") as explore_tab:
            with gr.Row():
                dims = gr.Radio(["2-D", "3-D"], value="2-D", label="PCA")
                n_movies = gr.Slider(50, 1682, value=500, step=50, label="Most-rated movies")
                color = gr.Radio(["Bias", "Mean stars", "Genre"], value="Bias", label="Colour")
                bias_min = gr.Slider(1, 200, value=20, step=1, label="Minimum ratings (tables)")
            explore_status = ui.status(elem_id="rec-explore-status")
            plot = gr.Plot(label="Movie factors, PCA")
            notes = gr.Markdown()
            gr.Markdown(
                "**Biases** say how much a movie is liked *beyond* what its factors predict from "
                "each viewer's taste: the top ones are liked even by people who do not usually "
                "like that kind of movie."
            )
            with gr.Row(equal_height=False):  # one under the other on a phone
                with gr.Column(min_width=300):
                    liked = _results("rec-liked")
                with gr.Column(min_width=300):
                    disliked = _results("rec-disliked")

        with gr.Tab("Existing user", id="user") as user_tab:
            users_note = gr.Markdown(visible=False, elem_id="rec-users-note")
            with gr.Column() as user_panel:
                gr.Markdown(
                    "MovieLens' 943 users and their ratings, downloaded from GroupLens on first "
                    "use (the model holds no ratings: MovieLens' terms forbid passing them on)."
                )
                user = gr.Number(
                    label="MovieLens user id (1-943)", value=1, precision=0, elem_id="rec-user"
                )
                user_go = gr.Button("Show", variant="primary", elem_id="rec-user-go")
                user_status = ui.status(elem_id="rec-user-status")
                with gr.Accordion("Options", open=False), gr.Row():
                    user_n = gr.Slider(1, MOST, value=10, step=1, label="How many")
                    user_min = gr.Slider(1, 200, value=20, step=1, label="Minimum ratings")
                    user_rank = gr.Radio(RANK_BY, value="stars", label="Rank by")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=280):
                        favourites = _results("rec-favourites")
                    with gr.Column(scale=3, min_width=280):
                        user_recs = _results("rec-user-results")

    with gr.Accordion("How it works", open=False):
        gr.Markdown(DESCRIPTION)
    # where the model comes from (its pinned commit) at once; its own card once the page loads
    about = gr.Markdown(ui.model_info(NAME), elem_id="rec-model")

    private = {"api_visibility": "private"}
    demo.load(lambda: ui.describe(NAME), None, about, **private)  # the served model's own card
    options = [top_n, min_ratings, rank_by]
    # The titles arrive when a dropdown is first used, never at page load (it loads the model);
    # a first use that downloads and trains shows its progress on the status line.
    for box, flag, line in (
        (movie, filled, status),
        (similar_movie, filled_similar, similar_status),
    ):
        box.focus(
            ui.reported(fill_titles, clear=(False, False)), flag, [box, flag, line],
            show_progress_on=line, **private,
        )  # fmt: skip
    on_add = ui.reported(add_rating, clear=(False, False, False))  # the table stays as it was
    add.click(on_add, [movie, stars, ratings, *options], [ratings, movie, recs, status], **private)
    on_go = ui.reported(recommend_page, clear=(True,))
    go.click(on_go, [ratings, *options], [recs, status], **private)
    on_example = ui.reported(example_page, clear=(False, True))
    example.click(on_example, options, [ratings, recs, status], **private)
    empty = cards("", [], [], WAITING)
    clear.click(lambda: ([], empty, ""), None, [ratings, recs, status], **private)

    on_similar = ui.reported(similar_page, clear=(True,))
    similar_inputs = [similar_movie, similar_n, similar_min]
    gr.on(
        [similar_go.click, similar_movie.select], on_similar, similar_inputs,
        [similar, similar_status], **private,
    )  # fmt: skip

    on_explore = ui.reported(explore, clear=(True, True, True, True))
    gr.on(
        [explore_tab.select, dims.change, color.change, n_movies.release, bias_min.release],
        on_explore, [dims, n_movies, color, bias_min],
        [plot, notes, liked, disliked, explore_status], **private,
    )  # fmt: skip

    user_tab.select(prepare_users, None, [users_note, user_panel], **private)
    on_user = ui.reported(user_page, clear=(True, True))
    gr.on(
        [user_go.click, user.submit], on_user, [user, user_n, user_min, user_rank],
        [favourites, user_recs, user_status], **private,
    )  # fmt: skip

    # The API: tables as {"headers", "data"}; a bad input raises its message (ui.errors).
    gr.api(recommend, api_name="recommend")
    gr.api(similar_movies, api_name="similar_movies")
    gr.api(user_recommendations, api_name="user_recommendations")

if __name__ == "__main__":
    serve.launch(demo)
