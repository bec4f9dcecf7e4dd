"""The settings of `train` and `evaluate`: one dataclass each, also the CLI's options.

Torch-free: `shared.cli` imports this to build its options (shared.options), so every default is
written once, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.patent_similarity import sources
from shared.options import option

BASE = "microsoft/deberta-v3-small"


@dataclass
class TrainConfig:
    """Fine-tune a pretrained transformer as a regressor on (anchor, target, context) pairs."""

    data: Path = option(
        help="train.csv: id,anchor,target,context,score; or Kaggle's, downloaded once: "
        "kaggle://competitions/us-patent-phrase-to-phrase-matching/train.csv"
    )
    cpc: Path = option(
        help="CPC table CSV with the columns code,title; or kaggle://datasets/OWNER/NAME/FILE"
    )
    out: Path = option(
        Path("out/patent-similarity"), help="where to write the model folder (Hub layout)"
    )
    base: str = option(
        BASE,
        help="pretrained Hub repo, or a local folder with a config and tokenizer "
        "(random weights when it has none)",
    )
    epochs: float = option(4, help="training epochs (a fraction is allowed)")
    lr: float = option(8e-5, help="peak learning rate")
    batch_size: int = option(128, help="training batch size")
    max_rows: int | None = option(None, help="train on a seeded sample of this many rows")
    use_cpc_titles: bool = option(
        False, help="give the model the CPC title instead of the bare code (a known gain)"
    )
    valid_frac: float = option(0.25, help="share of anchors held out")
    seed: int = option(42, help="seed of the sample, the split and the training")
    warmup: float = option(0.1, help="warm-up: a fraction of all steps (below 1) or steps")
    weight_decay: float = option(0.01, help="AdamW weight decay")
    onnx: bool = option(
        True,
        help="export model.onnx, the CPU fast path (int8 if it passes the accuracy guard, "
        "else fp32), if it agrees with PyTorch",
    )
    push_to_hub: str | None = option(
        None, help="push the trained model to this Hub repo", metavar="REPO"
    )

    def __post_init__(self) -> None:
        # a public file's address (kaggle://...) -> its local copy, downloaded once
        self.data = sources.fetch(self.data)
        self.cpc = sources.fetch(self.cpc)


@dataclass
class EvalConfig:
    """Pearson of a model and of the TF-IDF baseline on held-out anchors (or every row)."""

    data: Path = option(help="CSV with anchor,target,context,score")
    model: str | None = option(
        None, help="repo id, repo@revision or local folder (default: the registry's)"
    )
    max_rows: int | None = option(None, help="the same seeded sample as in training")
    valid_frac: float | None = option(None, help="default: the model's own split")
    seed: int | None = option(None, help="default: the model's own split")
    all_rows: bool = option(
        False, help="score every row, not only the held-out anchors (for a new test file)"
    )

    def __post_init__(self) -> None:
        self.data = sources.fetch(self.data)
