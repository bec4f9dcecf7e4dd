"""Patent phrase similarity: how close are two phrases, in a given patent field?

A DeBERTa-v3 cross-encoder fine-tuned on the U.S. Patent Phrase to Phrase Matching data
(lesson 4 of fast.ai's course). Score one pair, rank many targets against one anchor, or score a
whole CSV file. The model loads on first use, never while the page builds.
"""

import sys
from pathlib import Path

here = Path(__file__).resolve().parent
# In the repo shared/ is two levels up; in a deployed Space it sits beside app.py.
if not (here / "shared").is_dir():
    sys.path.insert(0, str(here.parents[1]))

import tempfile  # noqa: E402

import gradio as gr  # noqa: E402

from shared import device, registry, serve, ui  # noqa: E402
from shared.errors import ModelError, UserError  # noqa: E402

NAME = "patent-similarity"
# Our own examples: (anchor, target, CPC class).
EXAMPLES = [
    ["rotating shaft", "spinning axle", "F16"],
    ["wireless transmitter", "radio emitter", "H04"],
    ["coffee grinder", "spice mill", "A47"],
    ["heat exchanger", "bicycle saddle", "F28"],
    ["adhesive layer", "glue film", "B32"],
    ["battery cell", "electrochemical cell", "H01"],
]
RANK_EXAMPLES = [
    [
        "battery cell",
        "H01",
        "electrochemical cell\naccumulator\npower source\nbattery housing\nsolar panel\n"
        "kitchen sink",
    ],
    ["surgical stapler", "A61", "staple applier\nsuturing device\nscalpel\noffice stapler\nsofa"],
]
MEANINGS = """| score | meaning |
|---|---|
| 1.00 | very close match: the same phrase up to grammar or small words |
| 0.75 | close synonym ("mobile phone" / "cellphone"), abbreviations |
| 0.50 | synonym with different breadth: broader or narrower (hypernym, hyponym) |
| 0.25 | somewhat related: the same domain, or antonyms |
| 0.00 | unrelated |
"""


def context_dropdown(value: str | None, codes: list[str]) -> gr.Dropdown:
    # The full CPC table comes with the model, on first focus; until then the examples' codes
    # are the choices (so the examples show them) and any typed code works.
    return gr.Dropdown(
        choices=sorted(set(codes)),
        value=value,
        allow_custom_value=True,
        filterable=True,
        label="CPC context",
        info="The patent field: type a code (A47) or words of its title (furniture).",
    )


def fill_choices(loaded: bool):
    """The CPC table for the dropdown, once per page; quiet if the model cannot load yet."""
    if loaded:
        return gr.update(), True
    try:
        choices = registry.load(NAME).choices()
    except ModelError:
        return gr.update(), False  # the Score button will say what is wrong
    return gr.Dropdown(choices=choices), True


def notes(items: list[str]) -> str:
    return "\n".join(f"- {n}" for n in items)


@ui.errors
@device.gpu(duration=30)
def score(anchor: str, target: str, context: str):
    """How similar two patent phrases are in a patent field: a score from 0 (unrelated) to 1
    (very close match), its meaning on the competition's grid, and notes on the input.

    Args:
        anchor: the first phrase, e.g. "rotating shaft".
        target: the phrase to compare with it, e.g. "spinning axle".
        context: the CPC class of the patent field, e.g. "F16" (or words of its title).
    """
    r = registry.load(NAME).score(anchor, target, context)
    return r.score, {f"{r.grid:.2f} · {r.meaning}": r.score}, notes(r.notices)


@ui.errors
@device.gpu(duration=60)
def rank(anchor: str, targets: str, context: str):
    """Rank target phrases by their similarity to one anchor phrase in a patent field: a table
    of rank, target, score (0 to 1) and meaning, most similar first.

    Args:
        anchor: the phrase to compare with, e.g. "battery cell".
        targets: the target phrases, one per line.
        context: the CPC class of the patent field, e.g. "H01" (or words of its title).
    """
    import pandas as pd

    ranked = registry.load(NAME).rank(anchor, targets or "", context)
    table = pd.DataFrame(
        [(i, r.target, round(r.score, 3), r.meaning) for i, r in enumerate(ranked, 1)],
        columns=["rank", "target", "score", "meaning"],
    )
    shown = list(dict.fromkeys(n for r in ranked for n in r.notices))
    return table, notes(shown)


@ui.errors
@device.gpu(duration=120)
def score_csv(file: str | None, progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
    """Score every row of a CSV file of phrase pairs: the file back with prediction, meaning
    and note columns, a summary, and with a score column the Pearson correlation and a plot.

    Args:
        file: a UTF-8 CSV with a header and the columns anchor, target, context (and score).
    """
    if not file:
        raise UserError("Upload a CSV file with the columns anchor, target and context.")
    predictor = registry.load(NAME)
    out = Path(tempfile.mkdtemp(prefix="patent-")) / f"{Path(file).stem}-scored.csv"
    report = predictor.score_csv(
        file, out, progress=lambda done, total: progress((done, total), desc="Scoring", unit="rows")
    )
    lines = [f"**Scored {report.scored:,} of {report.rows:,} rows.** Download the file below."]
    if report.pearson is not None:
        lines.append(
            f"- Pearson correlation with your `score` column: **{report.pearson:.3f}** "
            f"({report.labelled:,} rows)"
        )
    if report.n_skipped:
        shown = "; ".join(f"row {row}: {why}" for row, why in report.skipped)
        more = " …" if report.n_skipped > len(report.skipped) else ""
        lines.append(f"- Skipped {report.n_skipped:,} row(s) ({shown}{more})")
    if report.unknown_codes:
        codes = ", ".join(f"{c} ({n:,})" for c, n in sorted(report.unknown_codes.items())[:10])
        lines.append(f"- Unknown CPC codes, scored with the code alone: {codes}")
    if report.truncated:
        lines.append(
            f"- {report.truncated:,} row(s) had a phrase over {predictor.max_chars} characters; "
            "only its start was scored"
        )
    figure = scatter(report.sample, report.pearson) if report.pearson is not None else None
    return str(out), "\n".join(lines), gr.Plot(value=figure, visible=figure is not None)


def scatter(sample, r: float):
    """Predicted against true scores; the true ones sit on a 0.25 grid, so jitter them apart."""
    import numpy as np
    import plotly.graph_objects as go

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
        title=f"Pearson {r:.3f} ({len(sample):,} rows shown)",
        xaxis_title="your score (jittered)",
        yaxis_title="model score",
        height=420,
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
    )
    return fig


with gr.Blocks(title="Patent phrase similarity") as demo:
    gr.Markdown(
        "## Patent phrase similarity\n"
        'How similar are two phrases **in a given patent field**? "Strong material" and '
        '"steel" are close in construction, less so in textiles. A DeBERTa-v3 cross-encoder, '
        "fine-tuned on the U.S. Patent Phrase to Phrase Matching data as in lesson 4 of fast.ai's "
        "course, reads the pair with its CPC class and scores it from 0 (unrelated) to 1 (very "
        "close match).\n\n" + ui.model_info(NAME)
    )
    with gr.Tabs():
        with gr.Tab("Score a pair", elem_id="patent-score"):
            with gr.Row():
                with gr.Column():
                    anchor = gr.Textbox(label="Anchor phrase", value=EXAMPLES[0][0], max_lines=1)
                    target = gr.Textbox(label="Target phrase", value=EXAMPLES[0][1], max_lines=1)
                    context = context_dropdown(EXAMPLES[0][2], [e[2] for e in EXAMPLES])
                    go_score = gr.Button("Score", variant="primary")
                with gr.Column():
                    value = gr.Number(label="Similarity score (0–1)", precision=3, value=None)
                    label = gr.Label(label="Meaning")
                    score_notes = gr.Markdown()
            gr.Examples(EXAMPLES, [anchor, target, context], cache_examples=False)
        with gr.Tab("Rank targets", elem_id="patent-rank"):
            with gr.Row():
                with gr.Column():
                    r_anchor = gr.Textbox(label="Anchor phrase", max_lines=1)
                    r_context = context_dropdown(None, [e[1] for e in RANK_EXAMPLES])
                    r_targets = gr.Textbox(
                        label="Target phrases, one per line", lines=8, placeholder="spinning axle"
                    )
                    go_rank = gr.Button("Rank", variant="primary")
                with gr.Column():
                    ranking = gr.Dataframe(label="Targets, most similar first", interactive=False)
                    rank_notes = gr.Markdown()
            gr.Examples(RANK_EXAMPLES, [r_anchor, r_context, r_targets], cache_examples=False)
        with gr.Tab("Batch (CSV)", elem_id="patent-batch"):
            gr.Markdown(
                "Upload a UTF-8 CSV with a header row and the columns `anchor`, `target`, "
                "`context` (CPC code), and optionally `score`. You get the file back with "
                "`prediction`, `meaning` and `note` columns; with a `score` column, also the "
                "Pearson correlation and a plot. Large files stream through in batches."
            )
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label="CSV file", file_types=[".csv", ".tsv", ".txt"])
                    go_csv = gr.Button("Score file", variant="primary")
                with gr.Column():
                    scored = gr.File(label="Scored CSV")
                    summary = gr.Markdown()
            plot = gr.Plot(label="Model against your scores", visible=False)
    with gr.Accordion("What the scores mean", open=False):
        gr.Markdown(MEANINGS)

    # The first touch of a tab's inputs loads the model and its CPC table, while the user types.
    for box, fields in ((context, [anchor, target]), (r_context, [r_anchor, r_targets])):
        loaded = gr.State(False)
        gr.on(
            [f.focus for f in (*fields, box)],
            fill_choices,
            loaded,
            [box, loaded],
            show_progress="hidden",
            trigger_mode="once",
            api_visibility="private",
        )
    score_inputs = [anchor, target, context]
    go_score.click(score, score_inputs, [value, label, score_notes], api_name="score")
    anchor.submit(score, score_inputs, [value, label, score_notes], api_visibility="private")
    target.submit(score, score_inputs, [value, label, score_notes], api_visibility="private")
    go_rank.click(rank, [r_anchor, r_targets, r_context], [ranking, rank_notes], api_name="rank")
    go_csv.click(
        score_csv, upload, [scored, summary, plot], api_name="score_csv", concurrency_limit=1
    )


if __name__ == "__main__":
    serve.launch(demo)
