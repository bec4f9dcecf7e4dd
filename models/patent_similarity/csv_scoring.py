"""Scoring a whole CSV file: streamed in chunks, so memory stays flat however long it is.

`score_csv(predictor, src, dst)` checks the file first (UTF-8 text, not binary, a header with
anchor, target and context), then reads, scores and appends `CHUNK_ROWS` rows at a time. Rows
that cannot be scored keep their place with a note; with a `score` column the report carries
the Pearson correlation (merged over chunks) and a sample for a plot.
"""

from __future__ import annotations

import codecs
import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from models.patent_similarity.data import GRID, RunningPearson, meaning
from shared.errors import UserError

if TYPE_CHECKING:
    from models.patent_similarity.predict import Predictor

CHUNK_ROWS = 4096  # CSV rows read, scored and written at a time: memory stays flat
SAMPLE = 5000  # rows of (score, prediction) kept for the plot, at most (about)


@dataclass
class CsvReport:
    path: Path  # the scored CSV
    rows: int  # data rows read
    scored: int
    skipped: list[tuple[int, str]]  # (row number, reason), the first few
    n_skipped: int
    truncated: int
    unknown_codes: dict[str, int]
    pearson: float | None  # when the file has a score column
    labelled: int
    sample: pd.DataFrame  # score and prediction of at most SAMPLE rows, for a plot


def score_csv(
    predictor: Predictor,
    src: str | Path,
    dst: str | Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> CsvReport:
    """Score every row of a CSV (anchor, target, context[, score]) into a new CSV.

    The file is streamed: read, scored and appended `chunk_rows` rows at a time, so memory
    stays flat however long it is. Rows that cannot be scored keep their place with an
    empty prediction and a note saying why.
    """
    src, dst = Path(src), Path(dst)
    total, sep = _inspect_csv(src)
    try:
        header = pd.read_csv(src, sep=sep, nrows=0, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise UserError(f"This file is not a readable CSV ({_first_line(e)}).") from None
    # Column names match in any case and spacing; the output keeps the user's own.
    col = {str(c).strip().lower(): c for c in header.columns}
    if missing := [c for c in ("anchor", "target", "context") if c not in col]:
        found = ", ".join(map(str, header.columns)) or "none"
        raise UserError(
            f"The CSV lacks the column(s) {', '.join(missing)}. It needs a header "
            f"row with anchor, target, context (score optional); found: {found}."
        )
    if len(col) != len(header.columns):
        raise UserError("The CSV has two columns with the same name; rename one.")
    labelled = "score" in col
    reader = pd.read_csv(
        src,
        sep=sep,
        dtype=str,
        keep_default_na=False,
        chunksize=chunk_rows,
        encoding="utf-8-sig",
        skip_blank_lines=True,
    )
    corr, rng = RunningPearson(), np.random.default_rng(0)
    samples, skipped, unknown = [], [], {}
    rows = scored = n_skipped = truncated = labelled_rows = 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    if progress:
        progress(0, total)
    try:
        for chunk in reader:
            texts, keep, notes = [], [], []
            triples = zip(*(chunk[col[k]] for k in ("anchor", "target", "context")), strict=True)
            for i, (a, t, c) in enumerate(triples):
                try:
                    text, code, notices = predictor.text(a, t, c)
                except UserError as e:
                    n_skipped += 1
                    reason = str(e).split(":")[0]
                    if len(skipped) < 10:
                        skipped.append((rows + i + 1, reason))
                    notes.append(f"skipped: {reason}")
                    continue
                if any("characters" in n for n in notices):
                    truncated += 1
                if any(n.startswith("Unknown CPC code") for n in notices):
                    unknown[code] = unknown.get(code, 0) + 1
                texts.append(text)
                keep.append(i)
                notes.append(" ".join(notices))
            preds = np.full(len(chunk), np.nan, dtype=np.float32)
            preds[keep] = predictor.score_texts(texts)
            chunk["prediction"] = np.round(preds, 4)
            chunk["meaning"] = [GRID[meaning(p)[0]] if p == p else "" for p in preds]
            chunk["note"] = notes
            if labelled:
                truth = pd.to_numeric(chunk[col["score"]], errors="coerce").to_numpy()
                ok = ~np.isnan(truth) & ~np.isnan(preds)
                corr.add(truth[ok], preds[ok])
                labelled_rows += int(ok.sum())
                take = ok & (rng.random(len(chunk)) < SAMPLE / max(total, 1))
                samples.append(pd.DataFrame({"score": truth[take], "prediction": preds[take]}))
            chunk.to_csv(dst, mode="w" if rows == 0 else "a", header=rows == 0, index=False)
            rows += len(chunk)
            scored += len(keep)
            if progress:
                progress(rows, max(total, rows))
    except pd.errors.ParserError as e:
        raise UserError(f"The CSV is malformed near row {rows + 1} ({_first_line(e)}).") from None
    if rows == 0:
        raise UserError("The CSV has a header but no rows to score.")
    if scored == 0:
        raise UserError(
            f"None of the {rows:,} rows could be scored: every row lacks an "
            "anchor, a target or a context."
        )
    r = corr.value if labelled and labelled_rows >= 2 else None
    return CsvReport(
        path=dst,
        rows=rows,
        scored=scored,
        skipped=skipped,
        n_skipped=n_skipped,
        truncated=truncated,
        unknown_codes=unknown,
        pearson=None if r is None or math.isnan(r) else r,
        labelled=labelled_rows,
        sample=pd.concat(samples, ignore_index=True) if samples else pd.DataFrame(),
    )


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _inspect_csv(path: Path, block: int = 1 << 20) -> tuple[int, str]:
    """(number of lines after the header, delimiter), reading the file once in blocks.

    It also checks that the file is UTF-8 text, naming the line of the first bad byte, so a
    wrong encoding fails before anything is scored rather than halfway through.
    """
    if not path.is_file():
        raise UserError("No file was uploaded.")
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
    try:
        sep = csv.Sniffer().sniff(sample.split("\n", 1)[0], delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","
    return max(lines - 1, 0), sep
