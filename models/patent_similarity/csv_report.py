"""A CSV report (csv_scoring.py) for people: in words, every kind of row that needs a look
named by line, and as a plot of the model's scores against the file's own. No gradio here."""

from __future__ import annotations

from models.patent_similarity.csv_scoring import MIN_PEARSON, CsvReport


def by_line(items: list[tuple[int, str]], total: int, shown: int = 5) -> str:
    listed = "; ".join(f"line {line}: {why}" for line, why in items[:shown])
    return listed + (" …" if total > shown else "")


def words(report: CsvReport) -> str:
    """The CSV report in words: what was scored, the Pearson (from enough labelled rows, with
    its n), and every kind of row that needs a look, by line."""
    lines = [f"**Scored {report.scored:,} of {report.rows:,} rows.** Download the file below."]
    n = report.labelled
    if report.pearson is not None:
        lines.append(
            f"- Pearson correlation with your `score` column: **{report.pearson:.3f}** "
            f"(n = {n:,} rows)"
        )
    elif n >= MIN_PEARSON:
        lines.append(
            f"- Pearson correlation: undefined (n = {n:,} rows): your scores, or the model's, "
            "are all the same."
        )
    elif report.score_column:
        lines.append(
            f"- No Pearson correlation: n = {n:,} row(s) with a score in 0–1; it takes at least "
            f"{MIN_PEARSON} to mean something."
        )
    if report.n_bad_labels:
        lines.append(
            f"- Left out of the Pearson: {report.n_bad_labels:,} score(s) that are not a number "
            f"from 0 to 1 ({by_line(report.bad_labels, report.n_bad_labels)})"
        )
    if report.n_skipped:
        lines.append(
            f"- Not scored: {report.n_skipped:,} row(s) "
            f"({by_line(report.skipped, report.n_skipped)})"
        )
    if report.unknown_codes:
        codes = ", ".join(f"{c} ({k:,})" for c, k in sorted(report.unknown_codes.items())[:10])
        lines.append(f"- Unknown CPC codes, scored with the code alone: {codes}")
    if report.truncated:
        lines.append(
            f"- {report.truncated:,} row(s) had a phrase longer than the model reads; only its "
            "start was scored"
        )
    if report.cut:
        lines.append(f"- {report.cut:,} row(s) were longer than the model reads: their end was cut")
    if report.neutralised:
        lines.append(
            f"- {report.neutralised:,} cell(s) began with =, +, -, @, a tab or a return, which a "
            "spreadsheet runs as a formula: the file has them with a leading ' (as text)"
        )
    return "\n".join(lines)


def plot(report: CsvReport):
    """Predicted against true scores; the true ones sit on a 0.25 grid, so jitter them apart."""
    import numpy as np
    import plotly.graph_objects as go

    sample = report.sample
    jitter = np.random.default_rng(0).uniform(-0.06, 0.06, len(sample))
    fig = go.Figure(
        [
            go.Scatter(
                x=sample["score"] + jitter,
                y=sample["prediction"],
                mode="markers",
                marker={"size": 5, "opacity": 0.35},
                name="rows",
            ),
            go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash"}, name="perfect"),
        ]
    )
    fig.update_layout(
        title=f"Pearson {report.pearson:.3f} (n = {report.labelled:,}; {len(sample):,} shown)",
        xaxis_title="your score (jittered)",
        yaxis_title="model score",
        height=420,
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
