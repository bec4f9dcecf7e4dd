"""Export in Hub layout: what `train recommender` writes, and its model card.

config.json + model.safetensors (the `PyTorchModelHubMixin` layout), with the id maps, the
movies' titles and rating aggregates, and fold-in's prior as JSON beside them (`FILES`: what
serving needs), the recipe, the metrics and the training curve. No rating is saved: MovieLens'
terms forbid redistributing the data (the Space downloads the known users' ratings itself).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from models.recommender import SPEC, movielens
from models.recommender.config import Recipe
from models.recommender.data import encode
from models.recommender.modules import CARD_TAGS
from models.recommender.train import Trained, plot_history

FILES = ("config.json", "model.safetensors", "users.json", "items.json", "taste.json")


def save(trained: Trained, folder: str | Path, recipe: Recipe) -> Path:
    """Write the model folder: weights, id maps, titles and aggregates, prior, metrics, plot."""
    from models.recommender.serve.fold_in import fit_prior  # serve/ reads FILES from here

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = trained.model
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = recipe.model  # which class `load` builds
    config["dataset"] = trained.data.source  # movielens-100k: its users' ratings can be fetched
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
    write("taste.json", fit_prior(model, u, i, r))
    write("recipe.json", asdict(recipe))
    (folder / "metrics.json").write_text(json.dumps(trained.metrics, indent=2))
    if trained.history:
        plot_history(trained.history, folder / "training.png")
    return folder


# bench/recommender.py on MovieLens 100k for the shipped recipe (`Recipe()`), recorded in
# bench/RESULTS.md: RMSE of 5 random 80/20 splits (mean, sd) and of the canonical folds u1..u5.
BENCHMARK = {
    "random": (0.8855, 0.0023),
    "folds": (0.8989, 0.8917, 0.8839, 0.8886, 0.8901),
    "fastai": (0.9077, 0.9219),  # random-split mean, worst fold
}


def write_card(folder: Path, recipe: Recipe, trained: Trained, repo_id: str | None) -> None:
    """The model card (README.md): what the model does, its data and terms, how it was trained,
    its metrics and, for the shipped recipe, the benchmark and how to reproduce it."""
    from shared import hub, registry

    kind = {"dot": f"DotProductBias ({recipe.factors} factors)", "nn": "EmbeddingNN"}[recipe.model]
    extras = ""
    if getattr(trained.model, "item_implicit", None) is not None:
        extras += (
            "with implicit feedback (SVD++: each user's vector adds the normalised sum of "
            f"implicit factors of the movies they rated, weight decay {recipe.implicit_wd}), "
        )
    if recipe.model == "dot" and recipe.features:
        extras += (
            "with the movies' genres and release-year deciles as side features (embeddings "
            "added to each movie's factors and bias while training, then folded into them: the "
            "saved model is a plain DotProductBias), "
        )
    split = (
        f"canonical fold u{recipe.fold} (fifth {recipe.fold} of the ratings in file order)"
        if recipe.fold
        else f"a random {recipe.valid_pct:.0%} of the ratings (seed {recipe.seed})"
    )
    m = trained.metrics
    repo = repo_id or registry.default_repo(SPEC)
    hub.write_card(
        folder,
        title=f"MovieLens 100k recommender — {kind}",
        summary=SUMMARY,
        data=_data(trained.data.source == movielens.NAME),
        library_name="pytorch",
        pipeline_tag="tabular-regression",
        task_name="Rating prediction",
        dataset_name="MovieLens 100k",
        datasets=["movielens-100k"],
        tags=CARD_TAGS,
        license="other",
        license_name="movielens-100k-terms",
        license_link=movielens.TERMS,
        metrics={k: v for k, v in m.items() if k in ("valid_rmse", "valid_mae")},
        training=(
            f"{kind}, trained {trained.seconds:.1f} s on a CPU: AdamW with a one-cycle schedule, "
            f"{recipe.epochs} epochs, batch size {recipe.bs}, max learning rate {recipe.lr}, "
            f"weight decay {recipe.wd} (biases {recipe.bias_wd}), seed {recipe.seed}, MSE loss, "
            f"{extras}sigmoid range {list(trained.model.y_range)}. Validation: {split}.\n\n"
            "![training curve](training.png)" + _benchmark(recipe)
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


SUMMARY = (
    "Collaborative filtering from fast.ai's *Practical Deep Learning* course (lessons 7-8): "
    "predicts how many stars a user gives a movie from learned latent factors. Beside the "
    "weights, the repo holds the id maps (`users.json`), the movies' titles, genres, rating "
    "counts and mean stars (`items.json`) and fold-in's prior (`taste.json`: the mean and "
    "covariance of the users' vectors and the rating noise), so the demo can find similar "
    "movies and fold in a new visitor's ratings without retraining. **It holds no rating**: "
    "the demo downloads the known users' ratings from GroupLens itself."
)


def _data(is_movielens: bool) -> str:
    """Where the training data comes from, and its terms (the card's "Data and licence")."""
    if not is_movielens:
        return "Your own ratings file: its terms are yours to state here."
    return (
        "MovieLens 100k: 100,000 ratings (1-5 stars) of 1,682 movies by 943 users, collected "
        f"by GroupLens (University of Minnesota), from its official archive ({movielens.URL}). "
        "Its terms (the archive's README) allow research use only: no commercial use without "
        "permission, no redistribution of the data, no implied endorsement, and publications "
        f"cite: {movielens.CITATION}"
    )


def _benchmark(recipe: Recipe) -> str:
    if recipe != Recipe():
        return ""
    mean, sd = BENCHMARK["random"]
    folds = ", ".join(f"u{k} {v:.4f}" for k, v in enumerate(BENCHMARK["folds"], 1))
    fastai = BENCHMARK["fastai"]
    return (
        "\n\n**Benchmark of this recipe** (retrained for each split; `python "
        "bench/recommender.py` in the project repo reproduces it): RMSE on 5 random 80/20 "
        f"splits of MovieLens 100k (split and training seeds 0-4) {mean:.4f} ± {sd:.4f} "
        f"(mean ± sd); on GroupLens' five "
        "canonical folds (test = lines 20,000·(k−1)+1 … 20,000·k of u.data, train = the rest, "
        f"as the archive's mku.sh builds u1..u5) {folds}. fast.ai's course recipe, measured "
        f"in the same run: {fastai[0]:.4f} (random splits), {fastai[1]:.4f} (worst fold)."
    )
