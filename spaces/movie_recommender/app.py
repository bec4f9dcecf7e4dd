"""Movie recommender Space: rate a few movies, get explained recommendations, explore the factors.

Collaborative filtering from fast.ai's course (lessons 7-8) on MovieLens 100k. A new visitor is
folded in from their ratings (a small least-squares solve, no retraining). The model loads from
the Hub on first use (or, while none is published, is built on this machine once); set
DEMO_MODEL_MOVIE_RECOMMENDER to serve your own. The model holds no ratings (MovieLens' terms):
the "Existing user" tab downloads them from GroupLens on first use, or says why it cannot.
"""

import sys
from pathlib import Path

here = Path(__file__).resolve().parent
# in the repo shared/ is two levels up; in a deployed Space it sits beside app.py
if not (here / "shared").is_dir():
    sys.path.insert(0, str(here.parents[1]))

import gradio as gr  # noqa: E402

from models.recommender import build  # noqa: E402
from shared import registry, serve, ui  # noqa: E402
from shared.errors import UserError  # noqa: E402

NAME = "movie-recommender"
HEADERS = ["Movie", "Stars"]
STARS = [("★", 1), ("★★", 2), ("★★★", 3), ("★★★★", 4), ("★★★★★", 5)]
EXAMPLE = [
    ["Star Wars (1977)", 5],
    ["Raiders of the Lost Ark (1981)", 5],
    ["Toy Story (1995)", 4],
    ["Fargo (1996)", 2],
    ["English Patient, The (1996)", 1],
]
# Movie, predicted stars, why, vs. average viewer, ratings, genres
REC_WIDTHS = ["26%", "9%", "33%", "9%", "8%", "15%"]
RANK_BY = [
    ("Highest predicted stars", "stars"),
    ("Most above the average viewer (your taste, not your generosity)", "taste"),
]
PROGRESS = gr.Progress()  # what a first use waits for (a shared default, as gradio allows)
FETCHING = "Fetching MovieLens' ratings from GroupLens (the first time only)…"
LOADING = "Loading the model (the first time on a fresh machine: MovieLens download + training)…"

DESCRIPTION = """Rate a handful of movies and get recommendations, each with the movie you rated
that it resembles most. No retraining happens: your ratings are **folded in** — with the learned
movie factors fixed, a small regularised least-squares problem finds the taste vector and bias
that explain your stars best. This is the collaborative filtering of fast.ai's *Practical Deep
Learning* (lessons 7–8): a `DotProductBias` model (plus SVD++'s implicit term: *which* movies
you rate says something too; and the movies' genres and release years, shared by movies of a
kind) trained on the ratings of MovieLens 100k. Movies with few ratings are left out of
recommendations (their factors are guesswork); lower the minimum to see them."""
HINT = "Type part of a title, pick the movie, give it stars and **Add rating**; then **Recommend**."
BUILT = """ℹ️ **No model is published at `{repo}` yet**, so this one was built on this machine on
first use (MovieLens 100k downloaded from GroupLens, then seconds of training) and is reused from
now on. Publish one with `make publish NAMESPACE=<your Hub name>`."""


_loaded = set()  # the models this process has loaded once: later calls wait for nothing


def model(progress: gr.Progress | None = None):
    """The shared Recommender; on a first use, `progress` says what it waits for."""
    if progress is not None and NAME not in _loaded:
        progress(0, desc=LOADING)
    rec = registry.load(NAME)
    _loaded.add(NAME)
    return rec


def origin() -> str:
    """The tab's status line: the hint, and a note when the served model was built on this
    machine (nothing published yet)."""
    try:
        rec = model()
    except Exception:  # the handler that loaded it has shown why
        return HINT
    if not build.is_built(rec.folder):
        return HINT
    return BUILT.format(repo=registry.default_repo(registry.spec(NAME))) + "\n\n" + HINT


def _table(rows) -> list[list]:
    """The ratings table's rows without the blank ones the editor leaves."""
    return [list(r[:2]) for r in rows or [] if any(str(v).strip() for v in r[:2] if v is not None)]


@ui.errors
def fill_titles(filled: bool, progress=PROGRESS):
    """Give a movie dropdown its titles (most rated first) on first use: loads the model."""
    if filled:
        return gr.skip(), True, gr.skip()
    return gr.Dropdown(choices=model(progress).search("", limit=10_000)), True, origin()


@ui.errors
def add_rating(movie: str | None, stars: int, rows):
    """Add (or update) one rating in the table; the title may be typed loosely."""
    if not movie:
        raise UserError("Pick a movie first: type part of its title and choose it from the list.")
    rec = model()
    title = rec.titles[rec.find(movie)]
    rows = [r for r in _table(rows) if str(r[0]).strip() and rec.titles[rec.find(r[0])] != title]
    return rows + [[title, int(stars)]], None


@ui.errors
def recommend(rows, n: float, min_ratings: float, rank_by: str, progress=PROGRESS):
    """Recommend movies for a new visitor from a few ratings, each with the reason.

    Args:
        rows: the visitor's ratings, a table of (movie title, stars from 1 to 5); titles are
            matched forgivingly ("the godfather" finds "Godfather, The (1972)").
        n: how many movies to recommend (1-50).
        min_ratings: leave out movies with fewer ratings than this in the training data.
        rank_by: "stars" for the highest predicted stars, or "taste" for the movies this
            visitor would rate most above the average viewer (their generosity left out).

    Returns:
        A table: movie, predicted stars, why, stars over the average viewer, number of ratings,
        genres.
    """
    return model(progress).recommend(_table(rows), int(n), int(min_ratings), rank_by)


def recommend_if_rated(rows, n, min_ratings, rank_by):
    return recommend(rows, n, min_ratings, rank_by) if _table(rows) else None


@ui.errors
def similar_movies(movie: str | None, n: float, min_ratings: float, progress=PROGRESS):
    """Find the movies most similar to one movie, by the cosine similarity of learned factors.

    Args:
        movie: a movie title (matched forgivingly, e.g. "star wars").
        n: how many similar movies to return (1-50).
        min_ratings: leave out movies with fewer ratings than this in the training data.

    Returns:
        A table: movie, similarity (-1 to 1), number of ratings, genres.
    """
    if not movie:
        raise UserError("Pick a movie: type part of its title and choose it from the list.")
    return model(progress).similar(movie, int(n), int(min_ratings))


def prepare_users(progress=PROGRESS):
    """On opening the "Existing user" tab: fetch the known users' ratings from GroupLens
    (cached after the first time), or hide the tab's controls and say why not."""
    try:
        rec = model(progress)
        if not rec.has_ratings:
            progress(0, desc=FETCHING)
        rec.fetch_ratings()
    except UserError as e:
        note = f"⚠️ **The existing users cannot be shown here.** {e} The other tabs still work."
        return gr.Markdown(note, visible=True), gr.Column(visible=False)
    except Exception as e:
        ui.to_gr_error(e, "prepare_users")  # logs the bug and its reference
        note = "⚠️ **The existing users cannot be shown here** (a bug on our side; see the log)."
        return gr.Markdown(note, visible=True), gr.Column(visible=False)
    return gr.Markdown(visible=False), gr.Column(visible=True)


@ui.errors
def user_recommendations(
    user: float | None,
    n: float,
    min_ratings: float,
    rank_by: str,
    progress=PROGRESS,
):
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
    if user is None:
        raise UserError("Enter a user id (MovieLens 100k users are numbered 1 to 943).")
    rec = model(progress)
    if not rec.has_ratings:
        progress(0, desc=FETCHING)
    rec.fetch_ratings()
    return rec.user_favourites(user, int(n)), rec.recommend_user(
        user, int(n), int(min_ratings), rank_by
    )


@ui.errors
def explore(dims: str, n_movies: float, color: str, min_ratings: float):
    """The PCA of the movie factors (interactive scatter) and the bias rankings."""
    import plotly.express as px

    rec = model()
    frame, share = rec.pca(int(n_movies), dims=3)
    if color == "Bias" and frame["Bias"].isna().all():
        color = "Mean stars"  # an EmbeddingNN has no biases
    frame["First genre"] = frame["Genres"].str.split(", ").str[0].replace("", "unknown")
    axes = {f"PC{k + 1}": f"PC{k + 1} ({s:.0%} of variance)" for k, s in enumerate(share)}
    common = dict(
        hover_name="Movie",
        hover_data={"Ratings": True, "Mean stars": ":.2f", "Genres": True, "Bias": ":.2f"},
        color="First genre" if color == "Genre" else color,
        labels=axes,
        height=620,
    )
    if color != "Genre":
        common["color_continuous_scale"] = "RdYlBu_r"
    if dims == "3-D":
        fig = px.scatter_3d(frame, x="PC1", y="PC2", z="PC3", **common)
        fig.update_traces(marker={"size": 3})
    else:
        fig = px.scatter(frame, x="PC1", y="PC2", **common)
        fig.update_traces(marker={"size": 7, "opacity": 0.8})
    fig.update_layout(margin={"l": 0, "r": 0, "t": 30, "b": 0})
    ends = []
    for k in range(2 if dims == "2-D" else 3):
        order = frame.sort_values(f"PC{k + 1}")["Movie"]
        ends.append(
            f"- **PC{k + 1}** runs from *{'; '.join(order[:3])}* to *{'; '.join(order[::-1][:3])}*"
        )
    notes = (
        f"The {len(frame)} most-rated movies, placed by the first principal components of their "
        "learned factors: movies close together are liked by the same people. Hover for "
        "titles.\n" + "\n".join(ends)
    )
    try:
        best, worst = rec.bias_ranking(15, int(min_ratings))
    except UserError as e:  # an EmbeddingNN has no biases
        gr.Warning(str(e))
        best = worst = None
    return fig, notes, best, worst


with gr.Blocks(title="Movie recommender") as demo:
    gr.Markdown("## 🎬 Movie recommender")
    gr.Markdown(DESCRIPTION)
    gr.Markdown(ui.model_info(NAME))
    with gr.Tabs():
        with gr.Tab("Rate some movies", id="rate"):
            filled = gr.State(False)
            status = gr.Markdown(HINT, elem_id="rec-status")
            with gr.Row(equal_height=True):
                movie = gr.Dropdown(
                    label="Movie",
                    info="Type part of a title to search",
                    allow_custom_value=True,
                    scale=3,
                    elem_id="rec-movie",
                )
                stars = gr.Radio(STARS, value=4, label="Your stars", scale=2, elem_id="rec-stars")
                add = gr.Button("Add rating", variant="secondary", scale=1, elem_id="rec-add")
            with gr.Row(equal_height=False):
                with gr.Column(scale=2):
                    ratings = gr.Dataframe(
                        headers=HEADERS,
                        datatype=["str", "number"],
                        type="array",
                        interactive=True,
                        label="Your ratings (edit the stars, or clear and start again)",
                        elem_id="rec-ratings",
                    )
                    with gr.Row():
                        go = gr.Button("Recommend", variant="primary", elem_id="rec-go")
                        example = gr.Button("Try an example")
                        clear = gr.Button("Clear")
                    with gr.Accordion("Options", open=False):
                        top_n = gr.Slider(1, 50, value=10, step=1, label="How many")
                        min_ratings = gr.Slider(
                            1, 200, value=20, step=1,
                            label="Only movies with at least this many ratings",
                        )  # fmt: skip
                        rank_by = gr.Radio(RANK_BY, value="stars", label="Rank by")
                with gr.Column(scale=3):
                    recs = gr.Dataframe(
                        label="Recommended for you",
                        interactive=False,
                        wrap=True,
                        column_widths=REC_WIDTHS,
                        elem_id="rec-results",
                    )

        with gr.Tab("Similar movies", id="similar"):
            filled_similar = gr.State(False)
            with gr.Row():
                similar_movie = gr.Dropdown(
                    label="Movie", info="Type part of a title to search", allow_custom_value=True
                )
                similar_n = gr.Slider(1, 50, value=10, step=1, label="How many")
                similar_min = gr.Slider(1, 200, value=20, step=1, label="Minimum ratings")
            similar_go = gr.Button("Find similar movies", variant="primary")
            similar = gr.Dataframe(label="Nearest neighbours (cosine similarity of the factors)")

        with gr.Tab("Explore", id="explore") as explore_tab:
            with gr.Row():
                dims = gr.Radio(["2-D", "3-D"], value="2-D", label="PCA")
                n_movies = gr.Slider(50, 1682, value=500, step=50, label="Most-rated movies")
                color = gr.Radio(["Bias", "Mean stars", "Genre"], value="Bias", label="Colour")
                bias_min = gr.Slider(1, 200, value=20, step=1, label="Minimum ratings (tables)")
            plot = gr.Plot(label="Movie factors, PCA")
            notes = gr.Markdown()
            gr.Markdown(
                "**Biases** say how much a movie is liked *beyond* what its factors predict from "
                "each viewer's taste: the top ones are liked even by people who do not usually "
                "like that kind of movie."
            )
            with gr.Row():
                liked = gr.Dataframe(label="Liked most beyond taste (highest bias)")
                disliked = gr.Dataframe(label="Liked least beyond taste (lowest bias)")

        with gr.Tab("Existing user", id="user") as user_tab:
            users_note = gr.Markdown(visible=False, elem_id="rec-users-note")
            with gr.Column() as user_panel:
                gr.Markdown(
                    "MovieLens' 943 users and their ratings, downloaded from GroupLens on first "
                    "use (the model holds no ratings: MovieLens' terms forbid passing them on)."
                )
                with gr.Row():
                    user = gr.Number(label="MovieLens user id (1-943)", value=1, precision=0)
                    user_n = gr.Slider(1, 50, value=10, step=1, label="How many")
                    user_min = gr.Slider(1, 200, value=20, step=1, label="Minimum ratings")
                    user_rank = gr.Radio(RANK_BY, value="stars", label="Rank by")
                user_go = gr.Button("Show", variant="primary")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2):
                        favourites = gr.Dataframe(label="Their highest-rated movies", wrap=True)
                    with gr.Column(scale=3):
                        user_recs = gr.Dataframe(
                            label="Recommended for them", wrap=True, column_widths=REC_WIDTHS
                        )

    private = {"api_visibility": "private"}
    options = [top_n, min_ratings, rank_by]
    # The titles arrive when a dropdown is first used, never at page load (it loads the model).
    # No spinner over the box being typed in; a first use that downloads and trains shows its
    # progress on the status line instead.
    quiet = {**private, "show_progress_on": status}
    movie.focus(fill_titles, filled, [movie, filled, status], **quiet)
    similar_movie.focus(
        fill_titles, filled_similar, [similar_movie, filled_similar, status], **quiet
    )

    go.click(recommend, [ratings, *options], recs, api_name="recommend").success(
        origin, None, status, **private
    )
    add.click(add_rating, [movie, stars, ratings], [ratings, movie], **private).success(
        recommend_if_rated, [ratings, *options], recs, **private
    )
    example.click(lambda: EXAMPLE, None, ratings, **private).then(
        recommend, [ratings, *options], recs, **private
    )
    clear.click(lambda: ([], None), None, [ratings, recs], **private)

    similar_inputs = [similar_movie, similar_n, similar_min]
    similar_go.click(similar_movies, similar_inputs, similar, api_name="similar_movies")
    similar_movie.select(similar_movies, similar_inputs, similar, **private)

    explore_inputs = [dims, n_movies, color, bias_min]
    explore_outputs = [plot, notes, liked, disliked]
    gr.on(
        [explore_tab.select, dims.change, color.change, n_movies.release, bias_min.release],
        explore, explore_inputs, explore_outputs, **private,
    )  # fmt: skip

    user_tab.select(prepare_users, None, [users_note, user_panel], **private)
    user_inputs = [user, user_n, user_min, user_rank]
    gr.on(
        [user_go.click, user.submit], user_recommendations, user_inputs, [favourites, user_recs],
        api_name="user_recommendations",
    )  # fmt: skip

if __name__ == "__main__":
    serve.launch(demo)
