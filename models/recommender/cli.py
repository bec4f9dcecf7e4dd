"""The recommender's commands: `demos train|evaluate recommender ...` (see shared.cli).

Torch-free at import: the heavy modules load when a command runs.
"""

from __future__ import annotations

import json

from models.recommender import NAME, SPEC
from models.recommender.config import EvalConfig, Recipe, TrainConfig
from shared.errors import UserError
from shared.options import Command


def train(cfg: TrainConfig) -> dict:
    """Train a recipe on MovieLens (or a ratings file); write the model folder and its card."""
    from models.recommender.data import load_data
    from models.recommender.export import save, write_card
    from models.recommender.train import train as train_recipe

    recipe = cfg.recipe()
    data = load_data(
        cfg.data,
        train=cfg.train,
        valid=cfg.valid,
        valid_pct=recipe.valid_pct,
        seed=recipe.seed,
        fold=recipe.fold,
    )
    trained = train_recipe(recipe, data)
    save(trained, cfg.out, recipe)
    write_card(cfg.out, recipe, trained, cfg.push_to_hub)
    return {**trained.metrics, "out": str(cfg.out)}


def evaluate(cfg: EvalConfig) -> dict:
    """RMSE/MAE of a trained model on the validation split of its recipe (or --valid), or the
    k-fold means of its recipe retrained on --data."""
    from models.recommender.data import encode, load_data
    from models.recommender.serve import load
    from models.recommender.train import cross_validate, predict, scores
    from shared import registry

    if cfg.model is None:
        folder = registry.fetch(NAME)
    else:
        folder = registry.resolve(cfg.model, SPEC.patterns(), name=NAME)
    rec = load(folder)
    recipe = Recipe.from_dict(json.loads((folder / "recipe.json").read_text()))
    if cfg.folds:
        data = load_data(cfg.data, train=cfg.train, valid_pct=0.0, seed=recipe.seed)
        return cross_validate(recipe, data.train, data.items, cfg.folds)
    valid_pct = recipe.valid_pct if cfg.valid_pct is None else cfg.valid_pct
    fold = recipe.fold if cfg.valid_pct is None else 0
    data = load_data(
        cfg.data, train=cfg.train, valid=cfg.valid, valid_pct=valid_pct, seed=recipe.seed, fold=fold
    )
    u, i, r = encode(data.valid, rec.user_index, rec.item_index)
    if not len(r):
        raise UserError("No validation rating has a user and a movie known to the model.")
    return {
        **scores(predict(rec.model, u, i), r),
        "ratings": len(r),
        "skipped": len(data.valid) - len(r),
    }


COMMANDS = {
    "train": Command(TrainConfig, train, "collaborative filtering on MovieLens 100k (or a CSV)"),
    "evaluate": Command(EvalConfig, evaluate, "RMSE/MAE of a trained recommender"),
}
