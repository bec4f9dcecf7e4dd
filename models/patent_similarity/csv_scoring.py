"""Scoring a whole CSV file: streamed in chunks, so memory stays flat however long it is.

`score_csv(predictor, src, dst)` checks the file first (its size and lines within
`shared.limits`, UTF-8 text, not binary, a header with anchor, target and context), then
reads, scores and appends `CHUNK_ROWS` rows at a time, stopping between chunks and batches
when the request is cancelled. Every row keeps its place: one that cannot be scored (a missing
phrase, more or fewer fields than the header) gets a note naming its line, never a shifted
score. Cells a spreadsheet would run as a formula are neutralised (OWASP's CSV-injection rule).
With a `score` column the report carries the Pearson correlation (merged over chunks, from
`MIN_PEARSON` labelled rows) and a sample for a plot; a score that is not a number in 0–1 is
left out of it and reported by line.
"""

from __future__ import annotations

import codecs
import csv
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from models.patent_similarity.data import GRID, RunningPearson, meaning
from shared import cancel, limits
from shared.errors import UserError

if TYPE_CHECKING:
    from models.patent_similarity.predict import Predictor

CHUNK_ROWS = 4096  # CSV rows read, scored and written at a time: memory stays flat
SAMPLE = 5000  # rows of (score, prediction) kept for the plot, at most (about)
MIN_PEARSON = 10  # labelled rows below which a correlation says nothing (2 rows give ±1)
MAX_CODES = 100  # distinct unknown CPC codes counted for the report
SHOWN = 10  # problems the report lists by line (the file's note column has every one)
ADDED = ("prediction", "meaning", "note")  # the columns the scored file gains
# A cell starting with one of these is run as a formula by spreadsheets (OWASP): unless it is a
# plain number, the scored file gets it with a leading apostrophe, shown as text.
FORMULA = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass
class CsvReport:
    path: Path  # the scored CSV
    rows: int  # data rows read (blank lines aside)
    scored: int
    skipped: list[tuple[int, str]]  # (line, reason) of rows not scored, the first SHOWN
    n_skipped: int
    truncated: int  # rows with a phrase cut to the model's characters
    cut: int  # rows longer than the tokens the model reads
    unknown_codes: dict[str, int]
    score_column: bool  # whether the file has a score column
    labelled: int  # scored rows whose score is a number in 0–1: what the Pearson is over
    bad_labels: list[tuple[int, str]]  # (line, why) of scores left out, the first SHOWN
    n_bad_labels: int
    neutralised: int  # cells written with a leading apostrophe
    pearson: float | None  # from MIN_PEARSON labelled rows, when defined
    sample: pd.DataFrame = field(repr=False)  # score and prediction of at most ~SAMPLE rows


def score_csv(
    predictor: Predictor,
    src: str | Path,
    dst: str | Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> CsvReport:
    """Score every row of a CSV (anchor, target, context[, score]) into a new CSV, written
    once at `dst`: the input's columns, then prediction, meaning and note."""
    src, dst = Path(src), Path(dst)
    total, sep = _inspect_csv(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            src.open(encoding="utf-8-sig", newline="") as f,
            dst.open("w", encoding="utf-8", newline="") as out,
        ):
            reader, writer = csv.reader(f, delimiter=sep), csv.writer(out)
            report = _score(predictor, reader, writer, total, progress, chunk_rows)
    except BaseException:
        dst.unlink(missing_ok=True)  # no half-written file is left (a cancel, a bad file)
        raise
    report.path = dst
    return report


def _score(predictor, reader, writer, total, progress, chunk_rows) -> CsvReport:
    records = _records(reader)
    line, header = next(records, (1, []))
    col = {h.strip().lower(): i for i, h in enumerate(header)}
    if missing := [c for c in ("anchor", "target", "context") if c not in col]:
        found = ", ".join(limits.excerpt(h, 30) for h in header[:10]) or "none"
        raise UserError(
            f"The CSV lacks the column(s) {', '.join(missing)}. It needs a header "
            f"row with anchor, target, context (score optional); found: {found}."
        )
    if len(col) != len(header):
        raise UserError("The CSV has two columns with the same name; rename one.")
    width, at = len(header), [col["anchor"], col["target"], col["context"]]
    truth_at = col.get("score")
    added = [f"model_{c}" if c in col else c for c in ADDED]  # never two columns of one name
    r = _Report(total, truth_at is not None)
    writer.writerow([r.safe(h) for h in header] + added)
    if progress:
        progress(0, total)
    chunk: list[tuple[int, list[str]]] = []
    for item in records:
        chunk.append(item)
        if len(chunk) == chunk_rows:
            writer.writerows(_score_chunk(predictor, chunk, width, at, truth_at, r))
            chunk = []
            if progress:
                progress(r.rows, max(total, r.rows))
    writer.writerows(_score_chunk(predictor, chunk, width, at, truth_at, r))
    if progress:
        progress(r.rows, r.rows)
    if r.rows == 0:
        raise UserError("The CSV has a header but no rows to score.")
    if r.scored == 0:
        why = "; ".join(f"line {n}: {reason}" for n, reason in r.skipped[:3])
        raise UserError(f"None of the {r.rows:,} rows could be scored ({why}).")
    return r.report()


def _records(reader) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each record; blank lines skipped; a malformed file named by
    its line."""
    last = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            line = reader.line_num
            if "field larger than field limit" in str(e):
                raise UserError(
                    f"Line {line} of the CSV has a field over {csv.field_size_limit():,} "
                    "characters (an unclosed quote?): not a file of phrase pairs."
                ) from None
            raise UserError(f"The CSV is malformed at line {line}: it cannot be read.") from None
        start, last = last + 1, reader.line_num
        if fields:
            yield start, fields


class _Report:
    """What scoring found, gathered chunk by chunk."""

    def __init__(self, total: int, labelled: bool) -> None:
        self.total, self.has_truth = total, labelled
        self.rows = self.scored = self.n_skipped = self.truncated = self.cut = 0
        self.labelled = self.n_bad_labels = self.neutralised = 0
        self.skipped: list[tuple[int, str]] = []
        self.bad_labels: list[tuple[int, str]] = []
        self.unknown: dict[str, int] = {}
        self.corr, self.rng, self.samples = RunningPearson(), np.random.default_rng(0), []

    def safe(self, cell: str) -> str:
        """The cell as the scored file holds it: a would-be formula as text."""
        if cell.startswith(FORMULA) and not NUMBER.fullmatch(cell):
            self.neutralised += 1
            return "'" + cell
        return cell

    def skip(self, line: int, reason: str) -> str:
        self.n_skipped += 1
        if len(self.skipped) < SHOWN:
            self.skipped.append((line, reason))
        return f"not scored: {reason}"

    def label(self, line: int, cell: str) -> tuple[float | None, str]:
        """The row's own score if it is a number in 0–1, else None and a note (also listed)."""
        text = cell.strip()
        if not text:
            return None, ""  # an unlabelled row
        value = float(text) if NUMBER.fullmatch(text) else math.nan
        if 0 <= value <= 1:
            return value, ""
        why = (
            f"score {limits.excerpt(text, 20)} is outside 0–1"
            if value == value
            else f"score “{limits.excerpt(text, 20)}” is not a number"
        )
        self.n_bad_labels += 1
        if len(self.bad_labels) < SHOWN:
            self.bad_labels.append((line, why))
        return None, f"{why}: left out of the Pearson"

    def report(self) -> CsvReport:
        r = self.corr.value if self.labelled >= MIN_PEARSON else math.nan
        return CsvReport(
            path=Path(),
            rows=self.rows,
            scored=self.scored,
            skipped=self.skipped,
            n_skipped=self.n_skipped,
            truncated=self.truncated,
            cut=self.cut,
            unknown_codes=self.unknown,
            score_column=self.has_truth,
            labelled=self.labelled,
            bad_labels=self.bad_labels,
            n_bad_labels=self.n_bad_labels,
            neutralised=self.neutralised,
            pearson=None if math.isnan(r) else r,
            sample=pd.concat(self.samples, ignore_index=True) if self.samples else pd.DataFrame(),
        )


def _score_chunk(predictor, chunk, width, at, truth_at, r: _Report) -> list[list[str]]:
    """Score one chunk of (line, fields) records; the output rows, in order."""
    cancel.check()
    texts, keep, notes = [], [], [""] * len(chunk)
    for k, (line, fields) in enumerate(chunk):
        if len(fields) != width:
            notes[k] = r.skip(line, f"{len(fields)} fields where the header has {width}")
            continue
        try:
            text, code, notices = predictor.text(*(fields[i] for i in at))
        except UserError as e:
            reason = str(e).split(":")[0]  # "The anchor is empty"
            notes[k] = r.skip(line, reason[:1].lower() + reason[1:])
            continue
        if any("characters" in n for n in notices):
            r.truncated += 1
        if any(n.startswith("Unknown CPC code") for n in notices):
            key = limits.excerpt(code, 20)  # a cell is anyone's text: short, a bounded count
            if key in r.unknown or len(r.unknown) < MAX_CODES:
                r.unknown[key] = r.unknown.get(key, 0) + 1
        texts.append(text)
        keep.append(k)
        notes[k] = " ".join(notices)
    ids, cut = predictor.encode(texts) if texts else ([], [])
    preds = np.full(len(chunk), np.nan)
    preds[keep] = predictor.score_ids(ids)
    for k, was_cut in zip(keep, cut, strict=True):
        if was_cut:
            r.cut += 1
            notes[k] = f"{notes[k]} {predictor.cut_notice()}".strip()
    if truth_at is not None:
        truth = np.full(len(chunk), np.nan)
        for k in keep:
            line, fields = chunk[k]
            value, why = r.label(line, fields[truth_at])
            truth[k] = np.nan if value is None else value
            notes[k] = f"{notes[k]} {why}".strip()
        ok = ~np.isnan(truth)
        r.corr.add(truth[ok], preds[ok])
        r.labelled += int(ok.sum())
        take = ok & (r.rng.random(len(chunk)) < SAMPLE / max(r.total, 1))
        r.samples.append(pd.DataFrame({"score": truth[take], "prediction": preds[take]}))
    r.rows += len(chunk)
    r.scored += len(keep)
    rows = []
    for (_, fields), p, note in zip(chunk, preds, notes, strict=True):
        cells = (fields + [""] * width)[:width]  # a ragged row: its note says so
        scored = [f"{p:.4f}", GRID[meaning(p)[0]]] if p == p else ["", ""]
        rows.append([r.safe(c) for c in cells] + scored + [r.safe(note)])
    return rows


def _inspect_csv(path: Path, block: int = 1 << 20) -> tuple[int, str]:
    """(number of lines after the header, delimiter), reading the file once in blocks.

    It checks the file against the limits (bytes, lines) and that it is UTF-8 text, naming the
    line of the first bad byte, so a wrong file fails before anything is scored rather than
    halfway through.
    """
    if not path.is_file():
        raise UserError("No file was uploaded.")
    size = path.stat().st_size
    if size > limits.CSV_BYTES.value:
        raise UserError(
            f"This CSV has {size:,} bytes; the limit is {limits.CSV_BYTES} "
            f"({limits.CSV_BYTES.reason}). Split it into smaller files."
        )
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines, sample, last = 0, "", b""
    with path.open("rb") as f:
        while chunk := f.read(block):
            if b"\0" in chunk:
                raise UserError("This file is binary, not a CSV text file.")
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as e:
                line = lines + chunk[: e.start].count(b"\n") + 1
                raise UserError(
                    f"This CSV is not UTF-8 text: line {line} has the byte 0x{chunk[e.start]:02x}, "
                    "which is not valid UTF-8. Save the file as 'CSV UTF-8' and upload it again."
                ) from None
            if len(sample) < 65536:
                sample += text[:65536]
            lines += chunk.count(b"\n")
            last = chunk[-1:]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise UserError(
                "This CSV is not UTF-8 text: it ends in the middle of a character. "
                "Save it as 'CSV UTF-8' and upload it again."
            ) from None
    if not sample.strip():
        raise UserError("The CSV file is empty.")
    lines += last != b"\n"  # a last line without a newline
    if lines - 1 > limits.CSV_ROWS.value:
        raise UserError(
            f"This CSV has {lines - 1:,} lines after its header; the limit is "
            f"{limits.CSV_ROWS} ({limits.CSV_ROWS.reason}). Split it into smaller files."
        )
    try:
        sep = csv.Sniffer().sniff(sample.split("\n", 1)[0], delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","
    return max(lines - 1, 0), sep
