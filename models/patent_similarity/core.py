"""Patent phrase similarity: a cross-encoder that scores how close two patent phrases are.

Lesson 4 of fast.ai's course, the Kaggle "U.S. Patent Phrase to Phrase Matching" task: each
(anchor, target, CPC context) triple becomes one text, and a pretrained transformer
(deberta-v3-small by default) is fine-tuned as a regressor whose output is the similarity score.
It is judged by Pearson correlation on a validation set that holds out whole anchors, so the
number says how well the model scores phrases it has never seen.

The module reads top to bottom: data → validation split → baseline → fine-tuning → the
predictor the Space uses (`load`) → the command line (`python -m shared.cli train|evaluate
patent-similarity`).
"""

from __future__ import annotations

import argparse
import codecs
import csv
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
)

from shared import device as devices
from shared.registry import ModelError

NAME = "patent-similarity"  # the registry entry
BASE = "microsoft/deberta-v3-small"
TEMPLATE = "TEXT1: {context}; TEXT2: {target}; ANC1: {anchor}"  # the course's input text
TITLES = "cpc_titles.json"  # the CPC table, shipped with the model for the Space's dropdown
MAX_CHARS = 200  # patent phrases are a few words (the data's longest is 98 characters)
MAX_TARGETS = 1000  # per ranking; more belongs in a CSV
CHUNK_ROWS = 4096  # CSV rows read, scored and written at a time: memory stays flat
# The competition's grid: what each score means.
GRID = {
    1.0: "very close match",
    0.75: "close synonym",
    0.5: "synonym with different breadth",
    0.25: "somewhat related",
    0.0: "unrelated",
}


# ---------------------------------------------------------------------------------------------
# Data


def read_cpc(path: str | Path) -> dict[str, str]:
    """The CPC table {code: title} from a CSV with the columns code,title (or our JSON)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"CPC table not found: {path}")
    if path.suffix == ".json":
        return {str(k).upper(): str(v) for k, v in json.loads(path.read_text()).items()}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.columns = [c.strip().lower() for c in table.columns]
    if not {"code", "title"} <= set(table.columns):
        raise ValueError(f"{path} needs the columns code,title; it has {', '.join(table.columns)}")
    pairs = zip(table.code, table.title, strict=True)
    return {c.strip().upper(): t.strip() for c, t in pairs if c.strip()}


def read_pairs(path: str | Path, *, labelled: bool = True) -> pd.DataFrame:
    """Phrase pairs (anchor, target, context[, score]) from a CSV like the competition's."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Data file not found: {path}")
    df = pd.read_csv(
        path, dtype={"anchor": str, "target": str, "context": str}, keep_default_na=False
    )
    df.columns = [c.strip().lower() for c in df.columns]
    need = ["anchor", "target", "context"] + (["score"] if labelled else [])
    if missing := [c for c in need if c not in df.columns]:
        raise ValueError(
            f"{path} lacks the column(s) {', '.join(missing)}; it needs {', '.join(need)}"
        )
    if labelled:
        df["score"] = pd.to_numeric(df["score"], errors="coerce")
        bad = df["score"].isna() | ~df["score"].between(0, 1)
        if bad.any():
            raise ValueError(f"{path}: {bad.sum()} row(s) have no score between 0 and 1")
    return df.reset_index(drop=True)


def clean(phrase: object) -> str:
    """One line of text with single spaces."""
    return " ".join(str(phrase).split()) if phrase is not None else ""


def cpc_text(code: str, titles: dict[str, str], use_titles: bool) -> str:
    """What the model reads as context: the code, or its title (in lower case, like the phrases)."""
    return titles[code].lower() if use_titles and code in titles else code


# ---------------------------------------------------------------------------------------------
# Validation split: whole anchors go to one side, so the score measures unseen phrases


def split_by_anchor(
    anchors: Sequence[str], valid_frac: float = 0.25, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, valid); every anchor's rows all land on the same side.

    The side of an anchor is decided by a seeded hash of the anchor itself, so the split is the
    same whatever the row order or subset: `evaluate` finds exactly the anchors `train` held out.
    """
    if not 0 < valid_frac < 1:
        raise ValueError("valid_frac must be between 0 and 1")

    def valid(anchor: str) -> bool:
        digest = hashlib.sha256(f"{seed}:{anchor}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < valid_frac

    side = {a: valid(a) for a in set(anchors)}
    is_valid = np.array([side[a] for a in anchors], dtype=bool)
    if is_valid.all() or not is_valid.any():
        raise ValueError(
            f"{len(side)} distinct anchor(s) are too few to hold some out for validation; "
            "use more data"
        )
    return np.flatnonzero(~is_valid), np.flatnonzero(is_valid)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation, the competition's metric (nan when either side is constant)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((dx * dx).sum() * (dy * dy).sum()))
    return float((dx * dy).sum() / denom) if denom > 0 else float("nan")


class RunningPearson:
    """Pearson correlation over chunks, with constant memory (merged co-moments)."""

    def __init__(self) -> None:
        self.n, self.mx, self.my, self.sxx, self.syy, self.sxy = 0, 0.0, 0.0, 0.0, 0.0, 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        m = len(x)
        if not m:
            return
        mx, my = x.mean(), y.mean()
        n = self.n + m
        ddx, ddy = mx - self.mx, my - self.my
        w = self.n * m / n
        self.sxx += ((x - mx) ** 2).sum() + ddx * ddx * w
        self.syy += ((y - my) ** 2).sum() + ddy * ddy * w
        self.sxy += ((x - mx) * (y - my)).sum() + ddx * ddy * w
        self.mx += ddx * m / n
        self.my += ddy * m / n
        self.n = n

    @property
    def value(self) -> float:
        denom = math.sqrt(self.sxx * self.syy)
        return self.sxy / denom if denom > 0 else float("nan")


# ---------------------------------------------------------------------------------------------
# Baseline: what you get without any neural network


def baseline_scores(
    anchors: Sequence[str], targets: Sequence[str], fit_on: Sequence[str]
) -> np.ndarray:
    """Cosine similarity of character n-gram TF-IDF vectors of anchor and target."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    vec.fit(list(fit_on))
    a = vec.transform([clean(s).lower() for s in anchors])  # rows are L2-normalised
    b = vec.transform([clean(s).lower() for s in targets])
    return np.asarray(a.multiply(b).sum(axis=1)).ravel()


def baseline_pearson(train: pd.DataFrame, valid: pd.DataFrame) -> float:
    """The baseline's Pearson on `valid`, its vocabulary fitted on the training phrases only."""
    fit_on = pd.concat([train.anchor, train.target]).str.lower().tolist()
    return pearson(baseline_scores(valid.anchor, valid.target, fit_on), valid.score)


# ---------------------------------------------------------------------------------------------
# Fine-tuning


def _base_model(base: str, config: AutoConfig) -> PreTrainedModel:
    """The pretrained model, or random weights when `base` is a folder with a config only."""
    folder = Path(base)
    has_weights = any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin"))
    if folder.is_dir() and not has_weights:
        print(f"note: {base} holds no weights; starting from random weights")
        return AutoModelForSequenceClassification.from_config(config)
    return AutoModelForSequenceClassification.from_pretrained(base, config=config)


def _examples(tokenizer, texts: list[str], scores: Sequence[float]) -> list[dict]:
    enc = tokenizer(texts, truncation=True, max_length=min(tokenizer.model_max_length, 512))
    keys = list(enc.keys())
    return [{**{k: enc[k][i] for k in keys}, "labels": float(s)} for i, s in enumerate(scores)]


def train(
    data: str | Path,
    cpc: str | Path,
    out: str | Path,
    *,
    base: str = BASE,
    epochs: float = 4,
    lr: float = 8e-5,
    batch_size: int = 128,
    max_rows: int | None = None,
    use_cpc_titles: bool = False,
    valid_frac: float = 0.25,
    seed: int = 42,
    warmup: float = 0.1,
    weight_decay: float = 0.01,
    repo_id: str | None = None,
) -> tuple[dict, list[dict]]:
    """Fine-tune `base` as a regressor; write the model folder to `out`; return (metrics, log).

    `repo_id` only names the repo the folder will be pushed to, in the card's usage example.
    """
    out = Path(out)
    df = read_pairs(data)
    titles = read_cpc(cpc)
    if max_rows and max_rows < len(df):
        df = df.sample(n=max_rows, random_state=seed).reset_index(drop=True)
    if use_cpc_titles and (unknown := sorted(set(df.context) - set(titles))):
        print(
            f"note: {len(unknown)} context code(s) have no title, the code is used: {unknown[:5]}"
        )
    train_idx, valid_idx = split_by_anchor(df.anchor.tolist(), valid_frac, seed)
    tr, va = df.iloc[train_idx], df.iloc[valid_idx]
    print(
        f"{len(tr)} training rows, {len(va)} validation rows; "
        f"{va.anchor.nunique()} of {df.anchor.nunique()} anchors held out"
    )
    base_r = baseline_pearson(tr, va)
    print(f"baseline (char n-gram TF-IDF cosine) Pearson on validation: {base_r:.4f}")

    def texts(part: pd.DataFrame) -> list[str]:
        return [
            TEMPLATE.format(
                context=cpc_text(c, titles, use_cpc_titles), target=clean(t), anchor=clean(a)
            )
            for a, t, c in zip(part.anchor, part.target, part.context, strict=True)
        ]

    tokenizer = AutoTokenizer.from_pretrained(base)
    config = AutoConfig.from_pretrained(
        base,
        num_labels=1,
        problem_type="regression",
        id2label={0: "similarity"},
        label2id={"similarity": 0},
    )
    model = _base_model(base, config)
    train_set = _examples(tokenizer, texts(tr), tr.score)
    valid_set = _examples(tokenizer, texts(va), va.score)

    def compute_metrics(p) -> dict:
        preds = np.clip(np.asarray(p.predictions).reshape(-1), 0, 1)
        return {"pearson": pearson(preds, p.label_ids)}

    dev = devices.device()
    half = devices.dtype(dev)
    steps = math.ceil(len(train_set) / batch_size) * epochs
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            learning_rate=lr,
            per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=batch_size * 2,
            num_train_epochs=epochs,
            lr_scheduler_type="cosine",
            warmup_steps=warmup,  # a float below 1 is a fraction of all steps
            weight_decay=weight_decay,
            bf16=dev.type == "cuda" and half == torch.bfloat16,
            fp16=dev.type == "cuda" and half == torch.float16,
            use_cpu=dev.type == "cpu",
            eval_strategy="epoch",
            save_strategy="no",
            logging_steps=max(1, int(steps // 40)),
            report_to="none",
            seed=seed,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_set,
            eval_dataset=valid_set,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
            compute_metrics=compute_metrics,
        )
        trainer.train()
        final = trainer.evaluate()
        preds = np.clip(trainer.predict(valid_set).predictions.reshape(-1), 0, 1)
    log = trainer.state.log_history
    losses = [h["loss"] for h in log if "loss" in h]

    metrics = {
        "pearson": round(final["eval_pearson"], 4),
        "baseline_pearson": round(base_r, 4),
        "valid_loss": round(final["eval_loss"], 4),
        "train_loss": round(losses[-1], 4) if losses else None,
        "train_rows": len(tr),
        "valid_rows": len(va),
        "valid_anchors": int(va.anchor.nunique()),
        "anchors": int(df.anchor.nunique()),
    }
    # What the predictor needs to build the same input text, kept in the model's config.
    model.config.input_template = TEMPLATE
    model.config.use_cpc_titles = use_cpc_titles
    model.config.max_chars = MAX_CHARS
    model.config.cpc_contexts = sorted(set(df.context))
    model.config.split = {"by": "anchor", "valid_frac": valid_frac, "seed": seed}
    out.mkdir(parents=True, exist_ok=True)
    trainer.model.to("cpu").float().save_pretrained(out)  # safetensors
    tokenizer.save_pretrained(out)
    (out / TITLES).write_text(json.dumps(titles, indent=1, ensure_ascii=False))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _plot(log, va.score.to_numpy(), preds, base_r, out / "training.png")
    _card(
        out,
        metrics,
        base=base,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        use_cpc_titles=use_cpc_titles,
        valid_frac=valid_frac,
        seed=seed,
        warmup=warmup,
        weight_decay=weight_decay,
        repo_id=repo_id,
    )
    return metrics, log


def _plot(
    log: list[dict], truth: np.ndarray, preds: np.ndarray, baseline: float, path: Path
) -> None:
    """Loss curves, Pearson per epoch against the baseline, predictions against the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    steps = [(h["step"], h["loss"]) for h in log if "loss" in h]
    evals = {
        h["epoch"]: (h["step"], h["eval_loss"], h["eval_pearson"])
        for h in log
        if "eval_pearson" in h
    }
    if steps:
        ax1.plot(*zip(*steps, strict=True), label="training")
    if evals:
        s, loss, r = zip(*evals.values(), strict=True)
        ax1.plot(s, loss, "o-", label="validation")
        ax2.plot(list(evals), r, "o-", label="model")
    ax1.set(xlabel="step", ylabel="MSE loss", title="Loss")
    ax1.legend()
    ax2.axhline(baseline, color="tab:gray", linestyle="--", label="TF-IDF baseline")
    ax2.set(xlabel="epoch", ylabel="Pearson", title="Validation Pearson (held-out anchors)")
    ax2.legend()
    grid = [g for g in sorted(GRID) if np.isclose(truth, g).any()]
    ax3.boxplot([preds[np.isclose(truth, g)] for g in grid], tick_labels=[str(g) for g in grid])
    ax3.set(
        xlabel="true score",
        ylabel="predicted score",
        title=f"Validation predictions, Pearson {pearson(preds, truth):.3f}",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _card(out: Path, metrics: dict, **h) -> None:
    from shared import hub

    base = h["base"]
    on_hub = not Path(base).exists()
    context = "its CPC title (lower case)" if h["use_cpc_titles"] else "its CPC code"
    training = f"""Fine-tuned from `{base}` as a regressor (`num_labels=1`, MSE loss) with the
transformers `Trainer`: learning rate {h["lr"]}, batch size {h["batch_size"]},
{h["epochs"]:g} epochs, cosine schedule with {h["warmup"]:.0%} warm-up, weight decay
{h["weight_decay"]}, mixed precision on GPU.

Each pair becomes one text: `{TEMPLATE}`, where the context is {context}.

**Validation protocol.** The split is grouped by anchor: every anchor's rows go to one side, chosen
by a seeded hash of the anchor (seed {h["seed"]}, {h["valid_frac"]:.0%} of anchors held out), so no
anchor is in both training and validation. {metrics["valid_anchors"]} of {metrics["anchors"]}
anchors ({metrics["valid_rows"]} rows) were held out; {metrics["train_rows"]} rows trained the
model. Pearson correlation on the held-out anchors: **{metrics["pearson"]:.4f}**. A simple baseline,
the cosine similarity of character n-gram TF-IDF vectors of anchor and target, gets
{metrics["baseline_pearson"]:.4f} on the same rows. Predictions are clipped to [0, 1].

![training curves and validation predictions](training.png)

Scores follow the competition's grid: 1.0 very close match, 0.75 close synonym, 0.5 synonym with
different breadth (hyponym/hypernym), 0.25 somewhat related, 0 unrelated."""
    example = "furniture; domestic articles or appliances; ..." if h["use_cpc_titles"] else "A47"
    usage = f"""from transformers import AutoModelForSequenceClassification, AutoTokenizer

repo = "{h["repo_id"] or "YOUR/REPO"}"
model = AutoModelForSequenceClassification.from_pretrained(repo)
tokenizer = AutoTokenizer.from_pretrained(repo)
text = model.config.input_template.format(
    context="{example}", target="sofa bed", anchor="convertible couch"
)
score = model(**tokenizer(text, return_tensors="pt")).logits.item()  # 0 unrelated .. 1 same"""
    hub.write_card(
        out,
        title="Patent phrase similarity (cross-encoder)",
        summary=(
            "Scores how similar two patent phrases are within a CPC context (0 = unrelated, "
            "1 = very close match), trained on the U.S. Patent Phrase to Phrase Matching data "
            "as in lesson 4 of fast.ai's Practical Deep Learning course."
        ),
        base_model=base if on_hub else None,
        tags=("patents", "sentence-similarity", "cross-encoder", "regression"),
        library_name="transformers",
        pipeline_tag="text-classification",
        metrics={"pearson": metrics["pearson"]},
        task_name="Patent phrase similarity",
        dataset_name="U.S. Patent Phrase to Phrase Matching (held-out anchors)",
        training=training,
        usage=usage,
    )


# ---------------------------------------------------------------------------------------------
# The predictor


def meaning(score: float) -> tuple[float, str]:
    """The nearest point of the competition's 0.25 grid, and what it means."""
    grid = min(max(round(score * 4) / 4, 0.0), 1.0)
    return grid, GRID[grid]


@dataclass
class Scored:
    anchor: str
    target: str
    context: str  # the CPC code used
    score: float
    grid: float  # nearest 0.25 step
    meaning: str
    notices: list[str] = field(default_factory=list)


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


SAMPLE = 5000


def _parse_code(context: object) -> str:
    """The CPC code of a dropdown value ("A47 — FURNITURE; ...") or of typed text ("a47")."""
    text = clean(context)
    return re.split(r"\s+[—–-]\s+", text, maxsplit=1)[0].strip().upper() if text else ""


class Predictor:
    """Scores (anchor, target, context) triples with a fine-tuned cross-encoder."""

    def __init__(self, model: PreTrainedModel, tokenizer, titles: dict[str, str]) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.titles = titles
        cfg = model.config
        self.template = getattr(cfg, "input_template", TEMPLATE)
        self.use_titles = bool(getattr(cfg, "use_cpc_titles", False))
        self.max_chars = int(getattr(cfg, "max_chars", MAX_CHARS))
        self.contexts = set(getattr(cfg, "cpc_contexts", None) or [])
        self.device = next(model.parameters()).device
        self.batch_size = 256 if self.device.type == "cuda" else 64
        self.max_length = min(tokenizer.model_max_length, 512)  # a safety net: phrases are capped

    # -- text ------------------------------------------------------------------------------

    def choices(self) -> list[tuple[str, str]]:
        """(label, code) pairs for a dropdown: classes and subclasses, searchable by title."""
        codes = [c for c in sorted(self.titles) if len(c) > 1] or sorted(self.contexts)
        return [(f"{c} — {self.titles[c]}" if c in self.titles else c, c) for c in codes]

    def _context(self, context: object) -> tuple[str, str, list[str]]:
        """(code, text the model reads, notices) for a context."""
        code = _parse_code(context)
        if not code:
            raise ValueError(
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
            notices.append(f"Unknown CPC code '{code}': scored with the code alone.")
        elif self.contexts and code not in self.contexts:
            notices.append(f"The model saw no {code} pairs in training; this score is a guess.")
        return code, cpc_text(code, self.titles, self.use_titles), notices

    def _cut(self, phrase: object) -> str:
        """The phrase as scored: one line, at most `max_chars` characters."""
        return clean(phrase)[: self.max_chars].rstrip()

    def _phrase(self, phrase: object, what: str, notices: list[str]) -> str:
        text = clean(phrase)
        if not text:
            raise ValueError(f"The {what} is empty: enter a short patent phrase.")
        if len(text) > self.max_chars:
            notices.append(
                f"The {what} has {len(text):,} characters; only its first "
                f"{self.max_chars} were scored."
            )
            text = self._cut(text)
        return text

    def text(self, anchor: object, target: object, context: object) -> tuple[str, str, list[str]]:
        """(model input, CPC code, notices) for one pair; ValueError on empty input."""
        notices: list[str] = []
        anchor = self._phrase(anchor, "anchor", notices)
        target = self._phrase(target, "target", notices)
        code, ctx, more = self._context(context)
        return self.template.format(context=ctx, target=target, anchor=anchor), code, notices + more

    # -- scoring ---------------------------------------------------------------------------

    @torch.inference_mode()
    def score_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Scores in [0, 1] for model input texts: batches of similar length, padded per batch."""
        if not len(texts):
            return np.zeros(0, dtype=np.float32)
        bs = batch_size or self.batch_size
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        order = np.argsort([len(x) for x in ids], kind="stable")
        pad = self.tokenizer.pad_token_id or 0
        out = np.empty(len(ids), dtype=np.float32)
        for start in range(0, len(order), bs):
            rows = order[start : start + bs]
            width = max(len(ids[i]) for i in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                input_ids[r, : len(ids[i])] = torch.tensor(ids[i])
                mask[r, : len(ids[i])] = 1
            logits = self.model(
                input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)
            ).logits
            out[rows] = logits[:, 0].float().cpu().numpy()
        return np.clip(out, 0.0, 1.0)

    def score(self, anchor: str, target: str, context: str) -> Scored:
        """Score one pair."""
        text, code, notices = self.text(anchor, target, context)
        s = float(self.score_texts([text])[0])
        return Scored(self._cut(anchor), self._cut(target), code, s, *meaning(s), notices)

    def rank(self, anchor: str, targets: Sequence[str] | str, context: str) -> list[Scored]:
        """Score many targets against one anchor, best first (duplicates and blanks dropped)."""
        if isinstance(targets, str):
            targets = targets.splitlines()
        unique = list(dict.fromkeys(t for t in map(clean, targets) if t))
        if not unique:
            raise ValueError("Enter at least one target phrase (one per line).")
        if len(unique) > MAX_TARGETS:
            raise ValueError(
                f"{len(unique):,} targets is too many to rank here (at most "
                f"{MAX_TARGETS:,}); score them as a CSV instead."
            )
        prepared = [self.text(anchor, t, context) for t in unique]
        scores = self.score_texts([p[0] for p in prepared])
        ranked = [
            Scored(self._cut(anchor), self._cut(t), code, float(s), *meaning(float(s)), notes)
            for t, (_, code, notes), s in zip(unique, prepared, scores, strict=True)
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
            raise ValueError(f"This file is not a readable CSV ({_first_line(e)}).") from None
        # Column names match in any case and spacing; the output keeps the user's own.
        col = {str(c).strip().lower(): c for c in header.columns}
        if missing := [c for c in ("anchor", "target", "context") if c not in col]:
            found = ", ".join(map(str, header.columns)) or "none"
            raise ValueError(
                f"The CSV lacks the column(s) {', '.join(missing)}. It needs a header "
                f"row with anchor, target, context (score optional); found: {found}."
            )
        if len(col) != len(header.columns):
            raise ValueError("The CSV has two columns with the same name; rename one.")
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
                triples = zip(
                    *(chunk[col[k]] for k in ("anchor", "target", "context")), strict=True
                )
                for i, (a, t, c) in enumerate(triples):
                    try:
                        text, code, notices = self.text(a, t, c)
                    except ValueError as e:
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
                preds[keep] = self.score_texts(texts)
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
            raise ValueError(
                f"The CSV is malformed near row {rows + 1} ({_first_line(e)})."
            ) from None
        if rows == 0:
            raise ValueError("The CSV has a header but no rows to score.")
        if scored == 0:
            raise ValueError(
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
        raise ValueError("No file was uploaded.")
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines, sample, last = 0, "", b""
    with path.open("rb") as f:
        while chunk := f.read(block):
            if b"\0" in chunk:
                raise ValueError("This file is binary, not a CSV text file.")
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as e:
                line = lines + chunk[: e.start].count(b"\n") + 1
                raise ValueError(
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
            raise ValueError(
                "This CSV is not UTF-8 text: it ends in the middle of a character. "
                "Save it as 'CSV UTF-8' and upload it again."
            ) from None
    if not sample.strip():
        raise ValueError("The CSV file is empty.")
    lines += last != b"\n"  # a last line without a newline
    try:
        sep = csv.Sniffer().sniff(sample.split("\n", 1)[0], delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","
    return max(lines - 1, 0), sep


def load(folder: Path) -> Predictor:
    """The registry's loader: a model folder (transformers layout) → a ready Predictor."""
    folder = Path(folder)
    fix = (
        f"train one with `python -m shared.cli train {NAME} --data train.csv --cpc "
        f"cpc_titles.csv`, or point DEMO_MODEL_PATENT_SIMILARITY at a folder or repo that has it"
    )
    missing = [f for f in ("config.json", "model.safetensors") if not (folder / f).is_file()]
    if not ((folder / "tokenizer.json").is_file() or (folder / "spm.model").is_file()):
        missing.append("tokenizer.json")
    if missing:
        raise ModelError(
            f"The patent similarity model in {folder} lacks {', '.join(missing)}: {fix}."
        )
    config = AutoConfig.from_pretrained(folder)
    if getattr(config, "num_labels", None) != 1:
        raise ModelError(
            f"The model in {folder} has {config.num_labels} outputs; a similarity "
            f"model has one (a regressor): {fix}."
        )
    titles = read_cpc(folder / TITLES) if (folder / TITLES).is_file() else {}
    if getattr(config, "use_cpc_titles", False) and not titles:
        raise ModelError(f"The model in {folder} reads CPC titles but has no {TITLES}: {fix}.")
    dev = devices.device()
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=devices.dtype(dev))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return Predictor(model.to(dev).eval(), tokenizer, titles)


# ---------------------------------------------------------------------------------------------
# Command line: python -m shared.cli train|evaluate patent-similarity ...


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", type=Path, required=True, help="train.csv: id,anchor,target,context,score"
    )
    p.add_argument(
        "--cpc", type=Path, required=True, help="CPC table CSV with the columns code,title"
    )
    p.add_argument(
        "--base",
        default=BASE,
        help="pretrained Hub repo, or a local folder with a config and tokenizer "
        "(random weights when it has none)",
    )
    p.add_argument("--epochs", type=float, default=4)
    p.add_argument("--lr", type=float, default=8e-5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-rows", type=int, help="train on a seeded sample of this many rows")
    p.add_argument(
        "--use-cpc-titles",
        action="store_true",
        help="give the model the CPC title instead of the bare code (a known gain)",
    )
    p.add_argument("--valid-frac", type=float, default=0.25, help="share of anchors held out")
    p.add_argument("--seed", type=int, default=42)


def train_cli(args: argparse.Namespace) -> dict:
    metrics, _ = train(
        args.data,
        args.cpc,
        args.out,
        base=args.base,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        max_rows=args.max_rows,
        use_cpc_titles=args.use_cpc_titles,
        valid_frac=args.valid_frac,
        seed=args.seed,
        repo_id=args.push_to_hub,
    )
    return metrics


def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="CSV with anchor,target,context,score")
    p.add_argument(
        "--model", help="repo id, repo@revision or local folder (default: the registry's)"
    )
    p.add_argument("--max-rows", type=int, help="the same seeded sample as in training")
    p.add_argument("--valid-frac", type=float, help="default: the model's own split")
    p.add_argument("--seed", type=int, help="default: the model's own split")
    p.add_argument(
        "--all-rows",
        action="store_true",
        help="score every row, not only the held-out anchors (for a new test file)",
    )


def evaluate_cli(args: argparse.Namespace) -> dict:
    """Pearson of the model and of the baseline on the validation anchors (or all rows)."""
    from shared import registry

    if args.model:
        os.environ[registry.env_var(NAME)] = args.model
        registry.unload(NAME)
    predictor = registry.load(NAME)
    split = getattr(predictor.model.config, "split", None) or {}
    seed = args.seed if args.seed is not None else split.get("seed", 42)
    frac = args.valid_frac if args.valid_frac is not None else split.get("valid_frac", 0.25)
    df = read_pairs(args.data)
    if args.max_rows and args.max_rows < len(df):
        df = df.sample(n=args.max_rows, random_state=seed).reset_index(drop=True)
    if args.all_rows:
        tr, va = df.iloc[:0], df
    else:
        train_idx, valid_idx = split_by_anchor(df.anchor.tolist(), frac, seed)
        tr, va = df.iloc[train_idx], df.iloc[valid_idx]
    triples = zip(va.anchor, va.target, va.context, strict=True)
    texts = [predictor.text(a, t, c)[0] for a, t, c in triples]
    preds = predictor.score_texts(texts)
    fit_on = pd.concat([(tr if len(tr) else va).anchor, (tr if len(tr) else va).target])
    base_preds = baseline_scores(va.anchor, va.target, fit_on.str.lower().tolist())
    return {
        "pearson": round(pearson(preds, va.score), 4),
        "baseline_pearson": round(pearson(base_preds, va.score), 4),
        "rows": len(va),
        "anchors": int(va.anchor.nunique()),
        "split": "all rows" if args.all_rows else f"held-out anchors (seed {seed}, {frac:.0%})",
    }
