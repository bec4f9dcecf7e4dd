"""Export in Hub layout: what `train recommender` writes, and its model card.

config.json + model.safetensors (the `PyTorchModelHubMixin` layout), with the id maps, titles
and the training ratings as JSON beside them (`FILES`: what serving needs), the recipe, the
metrics and the training curve.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from models.recommender import SPEC
from models.recommender.config import Recipe
from models.recommender.data import encode
from models.recommender.modules import CARD_TAGS
from models.recommender.train import Trained, plot_history

FILES = ("config.json", "model.safetensors", "users.json", "items.json", "ratings.json")


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(float(x), 3)


def save(trained: Trained, folder: str | Path, recipe: Recipe) -> Path:
    """Write the model folder: weights, id maps, titles, training ratings, metrics, plot."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = trained.model
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = recipe.model  # which class `load` builds
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))

    data = trained.data
    uix = {u: n for n, u in enumerate(trained.users)}
    iix = {i: n for n, i in enumerate(trained.items)}
    u, i, r = encode(data.train, uix, iix)
    counts = np.bincount(i, minlength=len(trained.items))
    sums = np.bincount(i, weights=r, minlength=len(trained.items))
    items = [
        {
            "id": item,
            "title": data.items.at[item, "title"],
            "genres": list(data.items.at[item, "genres"]),
            "ratings": int(n),
            "mean": round(float(s / n), 3) if n else None,
        }
        for item, n, s in zip(trained.items, counts, sums, strict=True)
    ]

    def write(name: str, obj: Any) -> None:
        (folder / name).write_text(json.dumps(obj, ensure_ascii=False))

    write("users.json", trained.users)
    write("items.json", items)
    # The training ratings: who rated what, for "unrated items only" and a user's favourites.
    write(
        "ratings.json", {"user": u.tolist(), "item": i.tolist(), "rating": [_number(x) for x in r]}
    )
    write("recipe.json", asdict(recipe))
    (folder / "metrics.json").write_text(json.dumps(trained.metrics, indent=2))
    if trained.history:
        plot_history(trained.history, folder / "training.png")
    return folder


def write_card(folder: Path, recipe: Recipe, trained: Trained, repo_id: str | None) -> None:
    """The model card (README.md): what the model does, how it was trained, its metrics."""
    from shared import hub, registry

    kind = {"dot": f"DotProductBias ({recipe.factors} factors)", "nn": "EmbeddingNN"}[recipe.model]
    implicit = ""
    if getattr(trained.model, "item_implicit", None) is not None:
        implicit = (
            "with implicit feedback (SVD++: each user's vector adds the normalised sum of "
            f"implicit factors of the movies they rated, weight decay {recipe.implicit_wd}), "
        )
    m = trained.metrics
    repo = repo_id or registry.default_repo(SPEC)
    hub.write_card(
        folder,
        title=f"MovieLens 100k recommender — {kind}",
        summary=(
            "Collaborative filtering from fast.ai's *Practical Deep Learning* course "
            "(lessons 7-8): predicts how many stars a user gives a movie from learned latent "
            "factors. The repo also holds the id maps (`users.json`), the titles, genres and "
            "rating counts (`items.json`) and the training ratings (`ratings.json`), so the demo "
            "can recommend for known users, find similar movies and fold in a new visitor's "
            "ratings without retraining.\n\nMovieLens data: F. M. Harper and J. A. Konstan, 2015, "
            "*The MovieLens Datasets: History and Context*, ACM TiiS 5(4). GroupLens' terms "
            "apply to the data (research use, no endorsement implied)."
        ),
        library_name="pytorch",
        pipeline_tag="tabular-regression",
        task_name="Rating prediction",
        dataset_name="MovieLens 100k",
        datasets=["movielens-100k"],
        tags=CARD_TAGS,
        license="other",
        metrics={k: v for k, v in m.items() if k in ("valid_rmse", "valid_mae")},
        training=(
            f"{kind}, trained {trained.seconds:.1f} s on a CPU: AdamW with a one-cycle schedule, "
            f"{recipe.epochs} epochs, batch size {recipe.bs}, max learning rate {recipe.lr}, "
            f"weight decay {recipe.wd} (biases {recipe.bias_wd}), seed {recipe.seed}, MSE loss, "
            f"{implicit}"
            f"sigmoid range {list(trained.model.y_range)}. Validation: a random "
            f"{recipe.valid_pct:.0%} of the ratings (seed {recipe.seed}).\n\n"
            "![training curve](training.png)"
        ),
        usage=f"""
from huggingface_hub import snapshot_download
from models.recommender import load  # github.com/fastai-course-demos
from models.recommender.modules import DotProductBias

model = DotProductBias.from_pretrained("{repo}")  # the bare PyTorch module
rec = load(snapshot_download("{repo}"))  # with titles: recommendations, fold-in
rec.recommend([("Star Wars (1977)", 5), ("Toy Story (1995)", 4), ("Fargo (1996)", 5)])
""",
    )
