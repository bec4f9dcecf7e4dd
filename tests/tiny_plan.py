"""A tiny publish plan for the tests: every trained model of publish.toml, on small data made
here, from tiny local bases, in seconds on a CPU. The plan's train arguments point at local
folders, exactly as a person's own plan may."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.factories import (
    TITLES,
    colour_photos,
    deberta_base,
    synthetic_pairs,
    synthetic_ratings,
    write_movielens,
)

PLAN = """
[models.pets-classifier]
train = ["--data", "{photos}", "--arch", "test_resnet", "--no-pretrained", "--size", "32",
         "--epochs", "1", "--bs", "16", "--workers", "0", "--examples", "3"]
floor = {{ metric = "error_rate", max = {pets_max} }}

[models.patent-similarity]
train = ["--data", "{pairs}", "--cpc", "{cpc}", "--base", "{base}", "--epochs", "1",
         "--batch-size", "32", "--lr", "1e-3", "--max-rows", "160"]
floor = {{ metric = "pearson", min = -1.0 }}

[models.movie-recommender]
train = ["--data", "{movielens}", "--epochs", "3", "--factors", "8", "--bs", "1024"]
floor = {{ metric = "valid_rmse", max = 5.0 }}
"""


def tiny_plan(root: Path, *, pets_max: float = 1.0) -> Path:
    """Write the data, the bases and the plan under `root`; return the plan's path."""
    from models.patent_similarity.data import TEMPLATE

    root.mkdir(parents=True, exist_ok=True)
    photos = colour_photos(root / "photos", per_class=8, side=32)
    pairs = synthetic_pairs(n_anchors=20)
    pairs.to_csv(root / "train.csv", index=False)
    codes = pd.DataFrame({"code": list(TITLES), "title": list(TITLES.values())})
    codes.to_csv(root / "cpc.csv", index=False)
    texts = [
        TEMPLATE.format(context=c, target=t, anchor=a)
        for a, t, c in zip(pairs.anchor, pairs.target, pairs.context, strict=True)
    ]
    base = deberta_base(root / "deberta", texts)
    # MovieLens' own layout: the deployed Space fetches its users' ratings from "GroupLens"
    write_movielens(root / "ml-100k", synthetic_ratings(n_users=60, n_items=40))
    plan = root / "plan.toml"
    plan.write_text(
        PLAN.format(
            photos=photos,
            pairs=root / "train.csv",
            cpc=root / "cpc.csv",
            base=base,
            movielens=root / "ml-100k",
            pets_max=pets_max,
        )
    )
    return plan
