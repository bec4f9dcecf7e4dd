"""The recommender's results drawn for the page. The tables are HTML: readable at 1280 px
(short headers that never break mid-word; the reason and genres under each title rather than in
columns of their own) and stacked into one card per movie on a phone, each number labelled. The
factor map is a plotly scatter. The API returns the tables themselves."""

from __future__ import annotations

from html import escape
from typing import Any

import pandas as pd

TABLE_CSS = """
.rec-table table { width: 100%; border-collapse: collapse; margin: 0; padding: 0; border: none; }
.rec-table thead, .rec-table tbody, .rec-table tr { border: none; }
.rec-table caption { text-align: left; font-weight: 600; padding-bottom: 0.4rem; }
.rec-table th { border: none; text-align: left; font-size: var(--text-sm); font-weight: 600;
  white-space: nowrap; color: var(--body-text-color-subdued); padding: 0.35rem 0.5rem;
  vertical-align: bottom; }
.rec-table td { vertical-align: top; padding: 0.45rem 0.5rem; border: none;
  border-top: 1px solid var(--border-color-primary); }
.rec-table td small { display: block; color: var(--body-text-color-subdued); }
.rec-table .num { text-align: right; white-space: nowrap; }
.rec-table p.empty { color: var(--body-text-color-subdued); margin: 0.5rem 0; }
@media (max-width: 600px) {
  .rec-table thead { display: none; }
  .rec-table table, .rec-table caption, .rec-table tbody, .rec-table tr, .rec-table td {
    display: block; width: auto; margin: 0; }
  .rec-table tr { border-top: 1px solid var(--border-color-primary); padding: 0.5rem 0; }
  .rec-table td { border: none; padding: 0.1rem 0; }
  .rec-table td.num { display: inline-block; margin-right: 1.2rem; text-align: left; }
  .rec-table td[data-label]::before { content: attr(data-label) ": ";
    color: var(--body-text-color-subdued); }
}
"""


def _movie(title: object, *lines: object) -> str:
    """A movie's cell: its title, then a line for each note (why, genres)."""
    small = "".join(f"<small>{escape(str(x))}</small>" for x in lines if x)
    return f"<strong>{escape(str(title))}</strong>{small}"


def cards(caption: str, headers: list[str], rows: list[list[str]], empty: str) -> str:
    """An HTML table (cells already escaped; the first the movie, the others numbers) whose
    rows stack into cards on a phone, each number labelled by its header."""
    if not rows:
        return f'<div class="rec-table"><p class="empty">{escape(empty)}</p></div>'
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if k else f"<th>{escape(h)}</th>"
        for k, h in enumerate(headers)
    )
    body = "".join(
        f"<tr><td>{row[0]}</td>"
        + "".join(
            f'<td class="num" data-label="{escape(h)}">{cell}</td>'
            for h, cell in zip(headers[1:], row[1:], strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="rec-table"><table><caption>{escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _count(value: object) -> str:
    return f"{int(value):,}"


def recs_cards(frame: pd.DataFrame, caption: str) -> str:
    """Recommendations: movie (why, genres), predicted stars, lift, number of ratings."""
    rows = [
        [
            _movie(r["Movie"], r["Why"], r["Genres"]),
            f"{r['Predicted stars']:.1f}★",
            f"{round(r['vs. average viewer'], 1) + 0.0:+.1f}★",  # + 0.0: no "-0.0"
            _count(r["Ratings"]),
        ]
        for _, r in frame.iterrows()
    ]
    headers = ["Movie", "Predicted", "vs. average viewer", "Ratings"]
    return cards(caption, headers, rows, "No movie passes the filters: lower the minimum ratings.")


def similar_cards(frame: pd.DataFrame, movie: str) -> str:
    rows = [
        [_movie(r["Movie"], r["Genres"]), f"{r['Similarity']:.2f}", _count(r["Ratings"])]
        for _, r in frame.iterrows()
    ]
    return cards(
        f"Nearest to {movie} (cosine similarity of the learned factors)",
        ["Movie", "Similarity", "Ratings"],
        rows,
        "No movie passes the filters: lower the minimum ratings.",
    )


def favourites_cards(frame: pd.DataFrame) -> str:
    rows = [
        [_movie(r["Movie"], r["Genres"]), f"{round(r['Stars'], 1):g}★"] for _, r in frame.iterrows()
    ]
    return cards("Their highest-rated movies", ["Movie", "Stars"], rows, "No ratings.")


def bias_cards(frame: pd.DataFrame, caption: str) -> str:
    rows = [
        [_movie(r["Movie"]), f"{r['Bias']:+.2f}", f"{r['Mean stars']:.2f}★", _count(r["Ratings"])]
        for _, r in frame.iterrows()
    ]
    headers = ["Movie", "Bias", "Mean stars", "Ratings"]
    return cards(caption, headers, rows, "No movie passes the filters: lower the minimum ratings.")


def factor_map(frame: pd.DataFrame, share: list[float], dims: str, color: str) -> tuple[Any, str]:
    """The PCA of the movie factors (`Recommender.pca`) as an interactive plotly scatter, 2-D or
    3-D, coloured by bias, mean stars or genre; and a note on what each axis runs between."""
    import plotly.express as px  # only when the Explore tab is opened

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
    return fig, notes
