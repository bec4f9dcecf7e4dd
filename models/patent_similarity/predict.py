"""The predictor the Space serves: scores (anchor, target, context) triples with a fine-tuned
cross-encoder.

`load(folder)` checks a model folder (transformers layout, as `train` writes it) and returns a
`Predictor`: `text` builds the model input the way training did (one line, capped length, the
CPC code or its title), `encode` turns inputs into tokens cut to the model's real limit,
`score_texts` scores many inputs in batches of similar length (and stops between batches when
the request is cancelled), `score` and `rank` serve the Space's first two tabs, `score_csv` its
third (csv_scoring.py).
On a CPU the exported graph (model.onnx, runtime.py) scores when the folder has one; PyTorch
otherwise, and always on a GPU (shared/runtime.py decides).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from models.patent_similarity import NAME
from models.patent_similarity.csv_scoring import CHUNK_ROWS, CsvReport, score_csv
from models.patent_similarity.data import (
    MAX_CHARS,
    TEMPLATE,
    TITLES,
    clean,
    cpc_text,
    meaning,
    read_cpc,
)
from models.patent_similarity.runtime import ENGINE, EXPORT, Graph
from shared import cancel, limits
from shared import device as devices
from shared import runtime as runtimes
from shared.errors import ModelError, UserError

CODE = re.compile(r"[A-HY]\d\d[A-Z]?(?![\w/])")  # a CPC section+class(+subclass): A47, A47C


@dataclass
class Scored:
    """One scored pair, as the Space shows it."""

    anchor: str
    target: str
    context: str  # the CPC code used
    score: float
    grid: float  # nearest 0.25 step
    meaning: str
    notices: list[str] = field(default_factory=list)


def _parse_code(context: object) -> str:
    """The CPC code of a dropdown value ("A47 — FURNITURE; ..."), of typed text ("a47",
    "a47 furniture"), or the typed text itself when it starts with no code."""
    text = clean(context).upper()
    if found := CODE.match(text):
        return found.group()
    return re.split(r"\s+[—–-]\s+", text, maxsplit=1)[0].strip()


class Predictor:
    """Scores (anchor, target, context) triples with a fine-tuned cross-encoder."""

    def __init__(self, model: PreTrainedModel | Graph, tokenizer, titles: dict[str, str]) -> None:
        """model: the PyTorch model, or the exported graph (the CPU fast path)."""
        self.model = model
        self.graph = model if isinstance(model, Graph) else None
        self.runtime = f"{ENGINE} (ONNX)" if self.graph else "PyTorch"
        self.notice: str | None = None  # why the fast path is not used, when it was wanted
        self.tokenizer = tokenizer
        self.titles = titles
        cfg = model.config
        self.template = getattr(cfg, "input_template", TEMPLATE)
        self.use_titles = bool(getattr(cfg, "use_cpc_titles", False))
        self.max_chars = int(getattr(cfg, "max_chars", MAX_CHARS))
        self.contexts = set(getattr(cfg, "cpc_contexts", None) or [])
        self.device = torch.device("cpu") if self.graph else next(model.parameters()).device
        # On a CPU small batches are faster, measured (bench/cpu_runtime.py): 2 threads, 512 real
        # pairs, deberta-v3-small: eager 40 pairs/s at 16 vs 30 at 64; int8 graph 72 at 8.
        self.batch_size = 256 if self.device.type == "cuda" else 8 if self.graph else 16
        # The tokens the model really reads: its position table can be shorter than what the
        # tokenizer claims (a tokenizer saved without a limit claims 10^30).
        positions = getattr(cfg, "max_position_embeddings", None) or 512
        self.max_length = int(min(tokenizer.model_max_length, positions, 512))

    # -- text ------------------------------------------------------------------------------

    def choices(self) -> list[tuple[str, str]]:
        """(label, code) pairs for a dropdown: classes and subclasses, searchable by title."""
        codes = [c for c in sorted(self.titles) if len(c) > 1] or sorted(self.contexts)
        return [(f"{c} — {self.titles[c]}" if c in self.titles else c, c) for c in codes]

    def _context(self, context: object) -> tuple[str, str, list[str]]:
        """(code, text the model reads, notices) for a context."""
        code = _parse_code(context)
        if not code:
            raise UserError(
                "Choose a CPC context (e.g. A47): a phrase means different things in "
                "different fields."
            )
        notices = []
        if self.contexts and code not in self.contexts and code[:3] in self.contexts:
            # The model was trained on classes (A47), so a subclass (A47C) reads as its class.
            notices.append(
                f"{code} is scored as its class {code[:3]}, the level the model was trained on."
            )
            code = code[:3]
        elif code not in self.titles and code not in self.contexts:
            notices.append(
                f"Unknown CPC code '{limits.excerpt(code, 20)}': scored with the code alone."
            )
        elif self.contexts and code not in self.contexts:
            notices.append(f"The model saw no {code} pairs in training; this score is a guess.")
        return code, cpc_text(code, self.titles, self.use_titles), notices

    def _cut(self, phrase: object) -> str:
        """The phrase as scored: one line, at most `max_chars` characters."""
        return clean(phrase)[: self.max_chars].rstrip()

    def _phrase(self, phrase: object, what: str, notices: list[str]) -> str:
        text = clean(phrase)
        if not text:
            raise UserError(f"The {what} is empty: enter a short patent phrase.")
        if len(text) > self.max_chars:
            notices.append(
                f"The {what} has {len(text):,} characters; only its first "
                f"{self.max_chars} were scored."
            )
            text = self._cut(text)
        return text

    def text(self, anchor: object, target: object, context: object) -> tuple[str, str, list[str]]:
        """(model input, CPC code, notices) for one pair; UserError on empty input."""
        notices: list[str] = []
        anchor = self._phrase(anchor, "anchor", notices)
        target = self._phrase(target, "target", notices)
        code, ctx, more = self._context(context)
        return self.template.format(context=ctx, target=target, anchor=anchor), code, notices + more

    def cut_notice(self) -> str:
        return (
            f"The pair is longer than the {self.max_length} tokens the model reads: only its "
            f"first {self.max_length} tokens were scored."
        )

    # -- scoring ---------------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids of each model input, cut to the tokens the model reads (its last token,
        the separator, kept), and whether each was cut."""
        most = self.max_length
        ids = self.tokenizer(list(texts), truncation=True, max_length=most + 1)["input_ids"]
        cut = [len(x) > most for x in ids]
        return [x[: most - 1] + x[-1:] if c else x for x, c in zip(ids, cut, strict=True)], cut

    def score_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Scores in [0, 1] for model input texts: batches of similar length, padded per batch."""
        if not len(texts):
            return np.zeros(0, dtype=np.float32)
        return self.score_ids(self.encode(texts)[0], batch_size)

    def score_ids(self, ids: Sequence[list[int]], batch_size: int | None = None) -> np.ndarray:
        """Scores in [0, 1] for token ids (`encode`); stops between batches (each well under a
        second) when the request is cancelled (`shared.cancel`)."""
        if not len(ids):
            return np.zeros(0, dtype=np.float32)
        bs = batch_size or self.batch_size
        order = np.argsort([len(x) for x in ids], kind="stable")
        pad = self.tokenizer.pad_token_id or 0
        out = np.empty(len(ids), dtype=np.float32)
        for start in range(0, len(order), bs):
            cancel.check()
            rows = order[start : start + bs]
            width = max(len(ids[i]) for i in rows)
            input_ids = np.full((len(rows), width), pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                input_ids[r, : len(ids[i])] = ids[i]
                mask[r, : len(ids[i])] = 1
            out[rows] = self._logits(input_ids, mask)
        return np.clip(out, 0.0, 1.0)

    def _logits(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The model's score logit of each row of a padded batch."""
        if self.graph:
            return self.graph(input_ids, mask)
        with torch.inference_mode():
            logits = self.model(
                input_ids=torch.from_numpy(input_ids).to(self.device),
                attention_mask=torch.from_numpy(mask).to(self.device),
            ).logits
        return logits[:, 0].float().cpu().numpy()

    def score(self, anchor: str, target: str, context: str) -> Scored:
        """Score one pair."""
        text, code, notices = self.text(anchor, target, context)
        ids, cut = self.encode([text])
        s = float(self.score_ids(ids)[0])
        notices += [self.cut_notice()] if cut[0] else []
        return Scored(self._cut(anchor), self._cut(target), code, s, *meaning(s), notices)

    def rank(self, anchor: str, targets: Sequence[str] | str, context: str) -> list[Scored]:
        """Score many targets against one anchor, best first (duplicates and blanks dropped)."""
        if isinstance(targets, str):
            targets = targets.splitlines()
        unique = list(dict.fromkeys(t for t in map(clean, targets) if t))
        if not unique:
            raise UserError("Enter at least one target phrase (one per line).")
        if len(unique) > limits.TARGETS.value:
            raise UserError(
                f"{len(unique):,} targets is too many to rank here (the limit is "
                f"{limits.TARGETS}); score them as a CSV instead."
            )
        prepared = [self.text(anchor, t, context) for t in unique]
        ids, cut = self.encode([p[0] for p in prepared])
        scores = self.score_ids(ids)
        ranked = [
            Scored(
                self._cut(anchor),
                self._cut(t),
                code,
                float(s),
                *meaning(float(s)),
                notes + ([self.cut_notice()] if c else []),
            )
            for t, (_, code, notes), s, c in zip(unique, prepared, scores, cut, strict=True)
        ]
        return sorted(ranked, key=lambda r: -r.score)

    def score_csv(
        self,
        src: str | Path,
        dst: str | Path,
        *,
        progress: Callable[[int, int], None] | None = None,
        chunk_rows: int = CHUNK_ROWS,
    ) -> CsvReport:
        """Score every row of a CSV (anchor, target, context[, score]) into a new CSV, streamed
        `chunk_rows` rows at a time (csv_scoring.py)."""
        return score_csv(self, src, dst, progress=progress, chunk_rows=chunk_rows)


def load(folder: Path, runtime: str | None = None) -> Predictor:
    """The registry's loader: a model folder (transformers layout) → a ready Predictor.
    runtime: "torch" or "onnx"; default: shared.runtime's choice for this machine."""
    folder = Path(folder)
    fix = (
        f"train one with `python -m shared.cli train {NAME} --data train.csv --cpc "
        f"cpc_titles.csv`, or point DEMO_MODEL_PATENT_SIMILARITY at a folder or repo that has it"
    )
    missing = [f for f in ("config.json", "model.safetensors") if not (folder / f).is_file()]
    if not ((folder / "tokenizer.json").is_file() or (folder / "spm.model").is_file()):
        missing.append("tokenizer.json")
    # (The messages name no folder: they can reach a visitor, and a path is the server's.)
    if missing:
        raise ModelError(f"The patent similarity model lacks {', '.join(missing)}: {fix}.")
    config = AutoConfig.from_pretrained(folder)
    if getattr(config, "num_labels", None) != 1:
        raise ModelError(
            f"The patent similarity model has {config.num_labels} outputs; a similarity "
            f"model has one (a regressor): {fix}."
        )
    titles = read_cpc(folder / TITLES) if (folder / TITLES).is_file() else {}
    if getattr(config, "use_cpc_titles", False) and not titles:
        raise ModelError(
            f"The patent similarity model reads CPC titles but has no {TITLES}: {fix}."
        )
    dev = devices.device()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    choice = runtimes.choose(folder, dev.type, name=NAME, engine=ENGINE, want=runtime)
    if choice.runtime == "onnx":  # the PyTorch weights are not even read
        predictor = Predictor(Graph(folder / EXPORT, config), tokenizer, titles)
        predictor.score_texts(["warm up", "the engine"] * 4)  # its first run's set-up, now
    else:
        model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=devices.dtype(dev))
        predictor = Predictor(model.to(dev).eval(), tokenizer, titles)
    predictor.notice = choice.notice
    return predictor
