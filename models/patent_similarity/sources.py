"""Public data behind `--data` and `--cpc`: Kaggle's files, downloaded once with kagglehub.

    --data kaggle://competitions/us-patent-phrase-to-phrase-matching/train.csv
    --cpc  kaggle://datasets/xhlulu/cpc-codes/titles.csv

The phrase pairs are the Kaggle competition's train.csv (downloading it needs a Kaggle account
that accepted the competition's rules). The CPC table (code, title) is `titles.csv` of the
Kaggle dataset xhlulu/cpc-codes, a table of the Cooperative Patent Classification's titles as
the EPO and USPTO publish them (cooperativepatentclassification.org). kagglehub caches both
(~/.cache/kagglehub, or $KAGGLEHUB_CACHE), shows a progress bar and checks each download's MD5;
the competition's train.csv is also checked against its known sha256. Any other value is a
local path and is returned as it is. Torch-free; kagglehub is imported when a file is fetched.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from shared.errors import UserError

COMPETITION = "us-patent-phrase-to-phrase-matching"
CPC_DATASET = "xhlulu/cpc-codes"
# argparse hands the value over as a Path, which folds "//" into "/": accept both.
KAGGLE = re.compile(r"kaggle:/+(competitions|datasets)/(.+)/([^/]+)")
# The files this family's recipe was measured on: 36,473 pairs, 733 anchors, 106 contexts.
TRAIN_SHA256 = "b233317683bfab1dcc949ed4055f9ed168a26b9ef2b0a7cc0091a6bfbb5139da"
KNOWN_SHA256 = {f"competitions/{COMPETITION}/train.csv": TRAIN_SHA256}
PAGE = f"https://www.kaggle.com/competitions/{COMPETITION}"
HOW = (
    "Either (1) accept the competition's rules at {page}/rules and give kagglehub your Kaggle "
    "API credentials (KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN, or "
    "~/.kaggle/kaggle.json; create them at https://www.kaggle.com/settings), or (2) download "
    "train.csv yourself from {page}/data and pass `--data path/to/train.csv` (for publish: "
    "in the `train` list of [models.patent-similarity] in the plan). The CPC table is "
    "`--cpc path/to/titles.csv` (columns code,title): titles.csv of the Kaggle dataset "
    f"{CPC_DATASET}, or a table you make from the CPC scheme at "
    "https://www.cooperativepatentclassification.org."
)


def terms(data: Path, base: str) -> dict:
    """A model card's licence fields and data section for a model trained on `data`."""
    base_note = (
        f" The base model, [{base}](https://huggingface.co/{base}), is under the MIT licence."
        if base == "microsoft/deberta-v3-small"
        else ""
    )
    if Path(data).is_file() and sha256(Path(data)) == TRAIN_SHA256:
        return {
            "license": "other",
            "license_name": "kaggle-competition-rules",
            "license_link": f"{PAGE}/rules",
            "data": (
                f"The phrase pairs are train.csv of Kaggle's [U.S. Patent Phrase to Phrase "
                f"Matching]({PAGE}) competition (2022, data by Google), used under the "
                f"competition's rules ({PAGE}/rules); they are not redistributed here. The CPC "
                "titles shipped with the model (`cpc_titles.json`) are the Cooperative Patent "
                "Classification's, published by the EPO and the USPTO "
                "(https://www.cooperativepatentclassification.org)." + base_note
            ),
        }
    return {
        "license": "other",
        "data": (
            f"Trained on `{Path(data).name}`, a local file: its own terms apply to this model. "
            "Set the licence before sharing it." + base_note
        ),
    }


def fetch(value: str | Path) -> Path:
    """The local file of `value`: a Kaggle file downloaded once, or `value` itself."""
    m = KAGGLE.fullmatch(str(value))
    if not m:
        return Path(value)
    kind, handle, name = m.groups()
    where = f"kaggle://{kind}/{handle}/{name}"
    from kagglehub.config import get_kaggle_credentials

    if kind == "competitions" and get_kaggle_credentials() is None:
        raise UserError(f"{where} needs Kaggle credentials, and none are set. " + how())
    import kagglehub

    try:
        if kind == "competitions":
            path = Path(kagglehub.competition_download(handle, path=name))
        else:
            path = Path(kagglehub.dataset_download(handle, path=name))
    except Exception as e:  # kagglehub's errors: HTTP, permissions, a missing file
        reason = " ".join(str(e).split())[:300]
        raise UserError(f"{where} could not be downloaded ({reason}). " + how()) from None
    expected = KNOWN_SHA256.get(f"{kind}/{handle}/{name}")
    if expected and (actual := sha256(path)) != expected:
        raise UserError(
            f"{where}: {path} is not the competition's file (sha256 {actual}, expected "
            f"{expected}). Delete it and run again."
        )
    return path


def how() -> str:
    return HOW.format(page=PAGE)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
