"""The family's commands: `demos train|evaluate patent-similarity` (shared/cli.py runs them).

The options are the fields of `TrainConfig` and `EvalConfig` (config.py); torch, transformers
and the data libraries are imported only when a command runs.
"""

from __future__ import annotations

from models.patent_similarity.config import EvalConfig, TrainConfig
from shared.options import Command


def run_train(cfg: TrainConfig) -> dict:
    """Fine-tune and write the model folder; the metrics (the CLI pushes `cfg.out` if asked)."""
    from models.patent_similarity.train import train

    metrics, _ = train(cfg)
    return metrics


def run_evaluate(cfg: EvalConfig) -> dict:
    """Pearson of the model and of the baseline on the validation anchors (or all rows).

    By default the anchors the model itself held out: its config records the split's seed and
    share, and `max_rows` draws the same seeded sample as training did."""
    import pandas as pd

    from models.patent_similarity import NAME, SPEC
    from models.patent_similarity.data import baseline_scores, pearson, read_pairs, split_by_anchor
    from models.patent_similarity.predict import load
    from shared import registry

    if cfg.model:
        predictor = load(registry.resolve(cfg.model, SPEC.patterns(), name=NAME))
    else:
        predictor = registry.load(NAME)
    split = getattr(predictor.model.config, "split", None) or {}
    seed = cfg.seed if cfg.seed is not None else split.get("seed", 42)
    frac = cfg.valid_frac if cfg.valid_frac is not None else split.get("valid_frac", 0.25)
    df = read_pairs(cfg.data)
    if cfg.max_rows and cfg.max_rows < len(df):
        df = df.sample(n=cfg.max_rows, random_state=seed).reset_index(drop=True)
    if cfg.all_rows:
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
        "split": "all rows" if cfg.all_rows else f"held-out anchors (seed {seed}, {frac:.0%})",
    }


COMMANDS = {
    "train": Command(
        TrainConfig, run_train, "fine-tune a cross-encoder on patent phrase pairs (lesson 4)"
    ),
    "evaluate": Command(
        EvalConfig,
        run_evaluate,
        "Pearson of a model and of the TF-IDF baseline on held-out anchors",
    ),
}
