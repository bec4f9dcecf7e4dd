"""The recommender's settings, torch-free: the training `Recipe` and the CLI's configs.

`Recipe` is how a model trains (saved beside it as recipe.json, so `evaluate` can rebuild its
split). `TrainConfig` and `EvalConfig` are the options of `train recommender` and
`evaluate recommender`: their fields are the one source of the defaults (shared.options).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from shared.errors import UserError
from shared.options import option

MODELS = ("dot", "nn")  # DotProductBias, EmbeddingNN (modules.MODEL_TYPES)
DEFAULT_LR = {"dot": 3e-2, "nn": 1e-2}  # max learning rate of the one-cycle schedule
# Adam's settings and the one-cycle shape: PyTorch's defaults, or fastai's (`fit_one_cycle`:
# Adam with betas (0.9, 0.99) and eps 1e-5, 25 % warm-up, the last lr 1e5 times below the top).
OPTIMIZERS = {
    "adamw": {"betas": (0.9, 0.999), "eps": 1e-8, "pct_start": 0.3, "final_div_factor": 1e4},
    "fastai": {"betas": (0.9, 0.99), "eps": 1e-5, "pct_start": 0.25, "final_div_factor": 1e5},
}


@dataclass
class Recipe:
    """How to train. The defaults were tuned on random 80/20 splits and the canonical u1 fold of
    MovieLens 100k (bench/recommender.py); each model trains in seconds on a CPU."""

    model: str = "dot"
    factors: int = 50  # dot: latent factors; nn: ignored (fast.ai's embedding-width rule)
    hidden: tuple = (100,)  # nn: MLP widths
    dropout: float = 0.3  # nn: MLP dropout
    emb_dropout: float = 0.2  # nn: embedding dropout
    epochs: int = 30
    lr: float = DEFAULT_LR["dot"]
    wd: float = 3.0  # AdamW weight decay of factors (and MLP weights)
    bias_wd: float = 0.3  # biases: less decay than factors, they carry the popularity signal
    implicit: bool = True  # dot: add what each user rated to their vector (SVD++)
    implicit_wd: float = 10.0  # dot: weight decay of the implicit item factors
    features: bool = True  # dot: movies' genres and release year as shared embeddings
    bs: int = 4096  # large batches: few optimiser steps, fast on a CPU
    optimizer: str = "adamw"  # OPTIMIZERS: "fastai" reproduces the course's fit_one_cycle
    seed: int = 42
    valid_pct: float = 0.2
    fold: int = 0  # 1-5: validate on the canonical fold instead of a random valid_pct split

    @classmethod
    def default(cls, model: str = "dot", **changes: Any) -> Recipe:
        """The recipe of `model` (its own learning rate), with the `changes` that are not None."""
        if model not in MODELS:
            raise UserError(f"Unknown model '{model}': choose dot or nn.")
        base = {"lr": DEFAULT_LR[model]}
        return cls(model=model, **{**base, **{k: v for k, v in changes.items() if v is not None}})

    @classmethod
    def from_dict(cls, values: dict) -> Recipe:
        """A recipe as saved in recipe.json (JSON has no tuples)."""
        recipe = cls(**values)
        recipe.hidden = tuple(recipe.hidden)
        return recipe


DATA_HELP = (
    "MovieLens 100k folder (downloaded there when missing; default: GroupLens' download, cached "
    "in HF_HOME) or a ratings CSV with a header user,item,rating[,title]"
)


@dataclass
class TrainConfig:
    """`train recommender`: a recipe's options, the data and where the model goes."""

    data: Path | None = option(None, DATA_HELP)
    train: Path | None = option(None, "training ratings (MovieLens tab format or CSV)")
    valid: Path | None = option(None, "validation ratings (instead of a random split)")
    valid_pct: float = option(Recipe.valid_pct, "random validation share")
    fold: int = option(
        Recipe.fold,
        "1-5: validate on canonical fold K (MovieLens' uK.test: the K-th fifth of the ratings in "
        "file order) instead of a random split",
        choices=(0, 1, 2, 3, 4, 5),
    )
    model: str = option("dot", "dot: DotProductBias; nn: EmbeddingNN", choices=MODELS)
    factors: int = option(Recipe.factors, "latent factors (dot)")
    epochs: int = option(Recipe.epochs, "epochs")
    lr: float | None = option(
        None, "max learning rate (default: the model's own, dot 3e-2, nn 1e-2)"
    )
    wd: float = option(Recipe.wd, "weight decay")
    bias_wd: float = option(Recipe.bias_wd, "weight decay of the biases")
    implicit: bool = option(
        Recipe.implicit, "dot: add what each user rated to their vector (SVD++; default on)"
    )
    implicit_wd: float = option(Recipe.implicit_wd, "dot: weight decay of the implicit factors")
    features: bool = option(
        Recipe.features, "dot: learn from the movies' genres and release years (default on)"
    )
    bs: int = option(Recipe.bs, "batch size")
    optimizer: str = option(
        Recipe.optimizer,
        "Adam's settings and one-cycle shape: PyTorch's or fastai's fit_one_cycle",
        choices=tuple(OPTIMIZERS),
    )
    seed: int = option(Recipe.seed, "seed of the split and of the training")
    out: Path = option(Path("out/recommender"), "where to write the model folder (Hub layout)")
    push_to_hub: str | None = option(
        None, "push the trained model to this Hub repo", metavar="REPO"
    )

    def recipe(self) -> Recipe:
        """The `Recipe` these options describe (the model's own learning rate unless --lr)."""
        names = {f.name for f in fields(Recipe)} - {"model"}
        return Recipe.default(
            self.model, **{k: getattr(self, k) for k in names if hasattr(self, k)}
        )


@dataclass
class EvalConfig:
    """`evaluate recommender`: RMSE/MAE of a trained model, on a split or as k-fold means."""

    model: str | None = option(
        None,
        "a trained model: Hub repo id (owner/name[@revision]) or folder "
        "(default: the registry's movie-recommender)",
    )
    data: Path | None = option(None, DATA_HELP)
    train: Path | None = option(None, "training ratings (MovieLens tab format or CSV)")
    valid: Path | None = option(None, "validation ratings (instead of a random split)")
    valid_pct: float | None = option(
        None, "random validation share (default: the model's recipe, the split it was trained on)"
    )
    folds: int = option(0, "k-fold cross-validation: retrain the model's recipe k times on --data")
