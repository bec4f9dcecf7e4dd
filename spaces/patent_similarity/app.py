"""Patent phrase similarity: how close are two phrases, in a given patent field?

A DeBERTa-v3 cross-encoder fine-tuned on the U.S. Patent Phrase to Phrase Matching data
(lesson 4 of fast.ai's course). Score one pair, rank many targets against one anchor, or score a
whole CSV file. The model loads on first use, never while the page builds.

Each action has two events: the page's (private), whose failures stay in a status line under
its button (`ui.reported`), and the API's (/score, /rank, /score_csv), which raises them
(`ui.errors`). Both check their input against `shared.limits` before any work, and long work
stops when its request is cancelled (`ui.stoppable`).
"""

import re
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
# In the repo shared/ is two levels up; in a deployed Space it sits beside app.py.
if not (here / "shared").is_dir():
    sys.path.insert(0, str(here.parents[1]))

import gradio as gr  # noqa: E402

from shared import device, limits, registry, serve, ui  # noqa: E402
from shared.errors import UserError  # noqa: E402

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
# The competition's grid, as its data description words it.
GRID = [
    (1.0, "very close match", "the same phrase up to grammar or small words"),
    (0.75, "close synonym", '"mobile phone" / "cellphone"; abbreviations'),
    (0.5, "synonym with different breadth", "broader or narrower (hypernym, hyponym)"),
    (0.25, "somewhat related", "the same domain, or antonyms"),
    (0.0, "unrelated", ""),
]
MEANINGS = "| score | meaning |\n|---|---|\n" + "\n".join(
    f"| {g:.2f} | {m}{': ' + e if e else ''} |" for g, m, e in GRID
)
INTRO = (
    'How similar are two phrases **in a given patent field**? "Strong material" and "steel" '
    "are close in construction, less so in textiles. A cross-encoder fine-tuned on the U.S. "
    "Patent Phrase to Phrase Matching data, as in lesson 4 of fast.ai's course, reads the pair "
    "with its CPC class and scores it from 0 (unrelated) to 1 (very close match)."
)


# --- the checks, then the work (GPU functions: plain arguments and results) ------------------


def _pair(anchor: object, target: object, context: object) -> tuple[str, str, str]:
    """The three fields within their limits, or a UserError naming the limit (no work done)."""
    return (
        limits.check_text(anchor, "anchor", limits.PHRASE),
        limits.check_text(target, "target", limits.PHRASE),
        limits.check_text(context, "CPC context", limits.CONTEXT),
    )


def _targets(targets: object) -> list[str]:
    text = limits.check_text(targets, "list of target phrases", limits.TARGETS_TEXT)
    lines = text.splitlines()
    for i, line in enumerate(lines, 1):
        limits.check_text(line, f"target on line {i}", limits.PHRASE)
    return lines


@device.gpu(duration=30)
def _score(anchor: str, target: str, context: str):
    return registry.load(NAME).score(anchor, target, context)


@device.gpu(duration=60)
def _rank(anchor: str, targets: list[str], context: str):
    return registry.load(NAME).rank(anchor, targets, context)


@device.gpu(duration=120)
def _score_csv(src: str, dst: str, progress):
    def step(done: int, total: int) -> None:
        progress((done, total), desc="Scoring", unit="rows")

    return registry.load(NAME).score_csv(src, dst, progress=step)


def _csv_file(file: object) -> tuple[str, Path]:
    """The uploaded CSV's path and where its scored copy goes (written once, in gradio's cache)."""
    if not file:
        raise UserError("Upload a CSV file with the columns anchor, target and context.")
    if not isinstance(file, str):
        raise UserError("Send the CSV as a file (gradio_client: handle_file('pairs.csv')).")
    stem = re.sub(r"[^\w.-]+", "_", Path(file).stem)[:60] or "pairs"
    return file, ui.output_file(f"{stem}-scored.csv")


# --- what people see -------------------------------------------------------------------------


def notes(items: list[str]) -> str:
    return "\n".join(f"- {n}" for n in items)


def verdict(r) -> str:
    """The score, and its meaning as the nearest step of the competition's grid (a scale of
    meanings, not a probability)."""
    # A list, not a table: nothing to squeeze on a phone.
    steps = "\n".join(
        f"- **{g:.2f} · {m}** ◀" if g == r.grid else f"- {g:.2f} · {m}" for g, m, _ in GRID
    )
    return (
        f"### Score {r.score:.2f}\n"
        f"Nearest step of the competition's grid: **{r.grid:.2f}, {r.meaning}**.\n\n{steps}"
    )


def ranked(anchor: str, targets: str, context: str):
    """The ranking as a table (rank, target, score, meaning) and its notes."""
    import pandas as pd

    anchor, _, context = _pair(anchor, "", context)
    scored = _rank(anchor, _targets(targets), context)
    table = pd.DataFrame(
        [(i, r.target, round(r.score, 3), r.meaning) for i, r in enumerate(scored, 1)],
        columns=["rank", "target", "score", "meaning"],
    )
    return table, notes(list(dict.fromkeys(n for r in scored for n in r.notices)))


def ranked_page(anchor: str, targets: str, context: str):
    """The ranking as a numbered list: on a phone a table hides its last columns."""
    table, notices = ranked(anchor, targets, context)
    items = "\n".join(
        f"{rank}. **{score:.2f}** · {md_escape(target)} — *{meaning}*"
        for rank, target, score, meaning in table.itertuples(index=False)
    )
    return f"**Targets, most similar first**\n\n{items}", notices


def md_escape(text: str) -> str:
    """A person's text shown as text, not as markdown or HTML."""
    return re.sub(r"([\\`*_{}\[\]()<>#+!|~-])", r"\\\1", text)


def shown(report):
    """The CSV report in words, and its plot when there is a Pearson (csv_report.py)."""
    from models.patent_similarity import csv_report

    figure = csv_report.plot(report) if report.pearson is not None else None
    return csv_report.words(report), figure


# --- the API: failures raised, as messages for a person ---------------------------------------


@ui.errors
def score(anchor: str, target: str, context: str):
    """How similar two patent phrases are in a patent field: a score from 0 (unrelated) to 1
    (very close match), its meaning as the nearest step of the competition's grid (e.g.
    "0.75 · close synonym"), and notes on the input.

    Args:
        anchor: the first phrase, e.g. "rotating shaft" (at most 500 characters).
        target: the phrase to compare with it, e.g. "spinning axle" (at most 500 characters).
        context: the CPC class of the patent field, e.g. "F16".
    """
    r = _score(*_pair(anchor, target, context))
    return r.score, f"{r.grid:.2f} · {r.meaning}", notes(r.notices)


@ui.errors
@ui.stoppable
def rank(anchor: str, targets: str, context: str):
    """Rank target phrases by their similarity to one anchor phrase in a patent field: a table
    of rank, target, score (0 to 1) and meaning, most similar first.

    Args:
        anchor: the phrase to compare with, e.g. "battery cell".
        targets: the target phrases, one per line (at most 1,000).
        context: the CPC class of the patent field, e.g. "H01".
    """
    return ranked(anchor, targets, context)


@ui.errors
@ui.stoppable
def score_csv(file: str | None, progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
    """Score every row of a CSV file of phrase pairs: the file back with prediction, meaning
    and note columns, a summary, and with a score column (from 10 rows) the Pearson
    correlation and a plot.

    Args:
        file: a UTF-8 CSV with a header and the columns anchor, target, context (and score);
            at most 200,000 rows and 20 MB.
    """
    report = _score_csv(*_csv_file(file), progress)
    return str(report.path), *shown(report)


# --- the page: failures in a status line under the button, stale results cleared -------------


def score_page(anchor: str, target: str, context: str):
    r = _score(*_pair(anchor, target, context))
    return verdict(r), notes(r.notices)


@ui.stoppable
def score_csv_page(file: str | None, progress=gr.Progress()):  # noqa: B008
    yield gr.File(None, visible=False), "", gr.Plot(None, visible=False)  # nothing stale
    report = _score_csv(*_csv_file(file), progress)
    words, figure = shown(report)
    yield (
        gr.File(str(report.path), visible=True),
        words,
        gr.Plot(figure, visible=figure is not None),
    )


def fill_choices(loaded: bool):
    """The CPC table for the dropdown, once per page; quiet if the model cannot load yet (the
    Score button then says why)."""
    if loaded:
        return gr.update(), True
    try:
        choices = registry.load(NAME).choices()
    except Exception as e:
        if not isinstance(e, UserError):
            ui.problem(e, "fill_choices")  # a bug: logged with its traceback
        return gr.update(), False
    return gr.Dropdown(choices=choices), True


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


with gr.Blocks(title="Patent phrase similarity") as demo:
    gr.Markdown("## Patent phrase similarity")
    gr.Markdown(INTRO, elem_classes=["demo-wide-only"])
    with gr.Tabs():
        with gr.Tab("Score a pair", elem_id="patent-score"):
            with gr.Row():
                with gr.Column():
                    anchor = gr.Textbox(label="Anchor phrase", value=EXAMPLES[0][0], max_lines=1)
                    target = gr.Textbox(label="Target phrase", value=EXAMPLES[0][1], max_lines=1)
                    context = context_dropdown(EXAMPLES[0][2], [e[2] for e in EXAMPLES])
                    go_score = gr.Button("Score", variant="primary")
                    score_status = ui.status()
                with gr.Column():
                    result = gr.Markdown()  # nothing until a pair is scored
                    score_notes = gr.Markdown(label="notes")
            gr.Examples(
                EXAMPLES,
                [anchor, target, context],
                cache_examples=False,
                example_labels=[f"{a} ↔ {t} · {c}" for a, t, c in EXAMPLES],  # no wide table
            )
        with gr.Tab("Rank targets", elem_id="patent-rank"):
            with gr.Row():
                with gr.Column():
                    r_anchor = gr.Textbox(label="Anchor phrase", max_lines=1)
                    r_context = context_dropdown(None, [e[1] for e in RANK_EXAMPLES])
                    r_targets = gr.Textbox(
                        label="Target phrases, one per line", lines=6, placeholder="spinning axle"
                    )
                    go_rank = gr.Button("Rank", variant="primary")
                    rank_status = ui.status()
                with gr.Column():
                    ranking = gr.Markdown(elem_id="patent-ranking")  # nothing until ranked
                    rank_notes = gr.Markdown(label="notes")
            gr.Examples(
                RANK_EXAMPLES,
                [r_anchor, r_context, r_targets],
                cache_examples=False,
                example_labels=[
                    f"{a} · {c}: {t.count(chr(10)) + 1} targets" for a, c, t in RANK_EXAMPLES
                ],
            )
        with gr.Tab("Batch (CSV)", elem_id="patent-batch"):
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label="CSV file", file_types=[".csv", ".tsv", ".txt"])
                    with gr.Row():
                        go_csv = gr.Button("Score file", variant="primary")
                        stop_csv = gr.Button("Stop", variant="secondary")
                    csv_status = ui.status()
                with gr.Column():
                    gr.Markdown(
                        "A UTF-8 CSV with a header row and the columns `anchor`, `target`, "
                        "`context` (CPC code), and optionally `score` (0 to 1); at most "
                        f"{limits.CSV_ROWS} and {limits.CSV_BYTES.value // 1_000_000} MB. You get "
                        "it back with `prediction`, `meaning` and `note` columns; with 10 or more "
                        "scores, the Pearson correlation and a plot."
                    )
                    summary_md = gr.Markdown(label="summary")
                    scored = gr.File(label="Scored CSV", visible=False)
            plot = gr.Plot(label="Model against your scores", visible=False, elem_id="patent-plot")
    # Where the model comes from (its pinned commit) as the page is built; its own card and
    # measured metrics replace it when the page opens (a few kB fetched, no weights).
    model = gr.Markdown(ui.model_info(NAME), elem_id="patent-model")
    with gr.Accordion("What the scores mean", open=False):
        gr.Markdown(MEANINGS)

    page = {"api_visibility": "private"}
    demo.load(lambda: ui.describe(NAME), None, model, show_progress="hidden", **page)
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
            **page,
        )
    pair = [anchor, target, context]
    gr.on(
        [go_score.click, anchor.submit, target.submit],
        ui.reported(score_page, clear=(True, True)),
        pair,
        [result, score_notes, score_status],
        **page,
    )
    go_rank.click(
        ui.reported(ui.stoppable(ranked_page), clear=(True, True)),
        [r_anchor, r_targets, r_context],
        [ranking, rank_notes, rank_status],
        **page,
    )
    one_file = {"concurrency_limit": 1, "concurrency_id": "patent-csv"}  # one file at a time
    scoring = go_csv.click(
        ui.reported(score_csv_page, clear=(False, True, False)),
        upload,
        [scored, summary_md, plot, csv_status],
        **one_file,
        **page,
    )
    stop_csv.click(lambda: "⏹ Stopped.", None, csv_status, cancels=[scoring], queue=False, **page)

    # The API: the same work, its failures raised (no triggers: called by clients only).
    api_score = [
        gr.Number(label="score", visible=False),
        gr.Textbox(label="meaning", visible=False),
    ]
    api_score.append(score_notes)
    gr.on([], score, pair, api_score, api_name="score")
    table = gr.Dataframe(label="Targets, most similar first", visible=False)
    gr.on([], rank, [r_anchor, r_targets, r_context], [table, rank_notes], api_name="rank")
    gr.on([], score_csv, upload, [scored, summary_md, plot], api_name="score_csv", **one_file)


if __name__ == "__main__":
    serve.launch(demo)
