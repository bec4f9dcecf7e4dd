"""The public data behind `--data`: a Hub parquet image dataset (on the loopback Hub) and
Kaggle's files through kagglehub (against a loopback Kaggle), downloaded once and checked."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from models.image_classifier import sources as image_sources
from models.patent_similarity import sources as patent_sources
from shared import cli
from shared.errors import UserError
from tests.factories import COLOURS, draw

ROOT = Path(__file__).resolve().parents[1]


# --- data: a Hub parquet image dataset ---------------------------------------------------------


def write_parquet(path: Path, rows: list[tuple[str, int, bytes]], names: list[str]) -> None:
    """Parquet as the `datasets` library writes an image dataset: image {bytes, path}, a
    ClassLabel (its names in the schema's metadata), image_id."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = {
        "image": {"_type": "Image"},
        "label": {"names": names, "_type": "ClassLabel"},
        "image_id": {"dtype": "string", "_type": "Value"},
    }
    table = pa.table(
        {
            "image": [{"bytes": data, "path": f"{stem}.jpg"} for stem, _, data in rows],
            "label": pa.array([label for _, label, _ in rows], pa.int64()),
            "image_id": [stem for stem, _, _ in rows],
        }
    )
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(meta), path)


@pytest.fixture
def pets_dataset(tmp_path, hub, monkeypatch) -> str:
    """A tiny dataset shaped like timm/oxford-iiit-pet, on the loopback Hub under that name."""
    from shared import hub as hubio

    monkeypatch.setenv("DEMO_DATA_CACHE", str(tmp_path / "cache"))
    rng, names = np.random.default_rng(0), ["abyssinian", "beagle"]
    folder = tmp_path / "dataset"
    for split, n in (("train", 6), ("test", 4)):
        rows = []
        for i in range(n):
            buffer = io.BytesIO()
            draw(list(COLOURS.values())[i % 2], rng, 32).save(buffer, "JPEG")
            stem = f"{'Abyssinian' if i % 2 == 0 else 'beagle'}_{split}{i}"
            rows.append((stem, i % 2, buffer.getvalue()))
        write_parquet(folder / "data" / f"{split}-00000-of-00001.parquet", rows, names)
    (folder / "README.md").write_text("---\nlicense: cc-by-sa-4.0\n---\n# pets\n")
    return hubio.push(folder, "timm/oxford-iiit-pet", repo_type="dataset", patterns=None)


def test_a_hub_image_dataset_downloads_once_checked_into_class_folders(pets_dataset, hub):
    images = image_sources.fetch(f"hf://datasets/timm/oxford-iiit-pet@{pets_dataset}")
    assert sorted(p.name for p in images.iterdir()) == ["abyssinian", "beagle"]
    assert sorted(p.name for p in (images / "beagle").iterdir())[:2] == [
        "beagle_test1.jpg",
        "beagle_test3.jpg",
    ]
    record = image_sources.origin(images)
    assert record["commit"] == pets_dataset and record["images"] == 10
    assert set(record["sha256"]) == {
        "data/test-00000-of-00001.parquet",
        "data/train-00000-of-00001.parquet",
    }
    before = len(hub.hub.requests)  # a pinned commit already unpacked: no request at all
    assert image_sources.fetch(f"hf:/datasets/timm/oxford-iiit-pet@{pets_dataset}") == images
    assert len(hub.hub.requests) == before
    assert image_sources.fetch("some/local/folder") == Path("some/local/folder")


def test_a_corrupt_download_is_refused(pets_dataset, tmp_path):
    from huggingface_hub import hf_hub_download

    cached = Path(
        hf_hub_download(
            "timm/oxford-iiit-pet",
            "data/test-00000-of-00001.parquet",
            repo_type="dataset",
            revision=pets_dataset,
        )
    ).resolve()
    good = cached.read_bytes()
    cached.write_bytes(good[:-10] + b"0123456789")
    try:
        with pytest.raises(UserError, match="does not match the Hub's checksum"):
            image_sources.fetch(f"hf://datasets/timm/oxford-iiit-pet@{pets_dataset}")
    finally:
        cached.write_bytes(good)  # the HF cache is the whole session's


def test_training_from_the_hub_dataset_credits_it_in_the_card(pets_dataset, tmp_path):
    from huggingface_hub import ModelCard

    out = tmp_path / "model"
    data = f"hf://datasets/timm/oxford-iiit-pet@{pets_dataset}"
    argv = ["train", "image-classifier", "--data", data, "--out", str(out), "--no-pretrained"]
    argv += ["--arch", "test_resnet", "--size", "32", "--epochs", "1", "--bs", "4"]
    assert cli.main([*argv, "--workers", "0", "--examples", "2"]) == 0
    card = ModelCard.load(out / "README.md")
    front = card.data.to_dict()
    assert front["license"] == "cc-by-sa-4.0" and front["datasets"] == ["timm/oxford-iiit-pet"]
    assert "CC BY-SA 4.0" in card.text and pets_dataset in card.text
    assert json.loads((out / "config.json").read_text())["label_names"] == ["abyssinian", "beagle"]


# --- data: Kaggle ------------------------------------------------------------------------------


class Kaggle(ThreadingHTTPServer):
    """A loopback Kaggle API behind an HTTP proxy: kagglehub's TEST environment talks to
    http://localhost:7777, and HTTP_PROXY brings those requests here. `files` maps
    "competitions/NAME/FILE" or "datasets/OWNER/NAME/FILE" to bytes."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        super().__init__(("127.0.0.1", 0), KaggleHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class KaggleHandler(BaseHTTPRequestHandler):
    server: Kaggle

    def log_message(self, *args: object) -> None:
        pass

    def send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"] or 0)) or b"{}")
        if "Authorization" not in self.headers:
            return self.send(401, b'{"code": 401, "message": "unauthenticated"}')
        call = urlsplit(self.path).path.rsplit("/", 1)[-1]
        if call == "GetDataset":
            return self.send(
                200, b'{"currentVersionNumber": 1}', {"Content-Type": "application/json"}
            )
        if call == "DownloadDataFile":
            key = f"competitions/{body['competitionName']}/{body['fileName']}"
        else:  # DownloadDataset
            key = f"datasets/{body['ownerSlug']}/{body['datasetSlug']}/{body['fileName']}"
        if key not in self.server.files:
            return self.send(404, b'{"code": 404, "message": "not found"}')
        self.send(302, headers={"Location": f"http://localhost:7777/files/{key}"})

    def do_GET(self) -> None:  # noqa: N802
        key = urlsplit(self.path).path.removeprefix("/files/")
        data = self.server.files.get(key)
        if data is None:
            return self.send(404)
        self.send(200, data, {"Last-Modified": formatdate(usegmt=True)})


@pytest.fixture
def kaggle(tmp_path, monkeypatch) -> callable:
    """Point kagglehub at a loopback Kaggle; no credentials until `login()`."""
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-json"))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    for key in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(key, raising=False)

    def start(files: dict[str, bytes]) -> None:
        server = Kaggle(files)
        proxy = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the loopback Hub is reached directly
        monkeypatch.setenv("KAGGLE_USERNAME", "tester")
        monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key")

    return start


TRAIN = "kaggle://competitions/us-patent-phrase-to-phrase-matching/train.csv"
TITLES = "kaggle://datasets/xhlulu/cpc-codes/titles.csv"


def test_without_kaggle_credentials_the_message_names_both_ways(kaggle):
    with pytest.raises(UserError) as e:
        patent_sources.fetch(TRAIN)
    message = str(e.value)
    assert "needs Kaggle credentials" in message and "KAGGLE_USERNAME and KAGGLE_KEY" in message
    assert "/rules" in message and "--data path/to/train.csv" in message
    assert "--cpc path/to/titles.csv" in message
    r = subprocess.run(
        [sys.executable, "-m", "shared.cli", "train", "patent-similarity", "--data", TRAIN]
        + ["--cpc", "x.csv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )  # the environment says there are no credentials (the fixture)
    assert r.returncode == 1 and r.stderr.startswith("error: kaggle://competitions/")


def test_kaggle_files_download_once_and_are_checked(kaggle, data_dir):
    real = (data_dir("usppm") / "train.csv").read_bytes()
    titles = b"code,title\nA47,FURNITURE\n"
    kaggle({"competitions/us-patent-phrase-to-phrase-matching/train.csv": real,
            "datasets/xhlulu/cpc-codes/titles.csv": titles})  # fmt: skip
    path = patent_sources.fetch(TRAIN)
    assert path.read_bytes() == real and str(path).startswith(os.environ["KAGGLEHUB_CACHE"])
    assert patent_sources.fetch(TITLES).read_bytes() == titles
    terms = patent_sources.terms(path, "microsoft/deberta-v3-small")
    assert terms["license_name"] == "kaggle-competition-rules" and "MIT" in terms["data"]


def test_a_kaggle_file_that_is_not_the_competitions_is_refused(kaggle):
    kaggle({"competitions/us-patent-phrase-to-phrase-matching/train.csv": b"id,anchor\n1,a\n"})
    with pytest.raises(UserError, match="is not the competition's file"):
        patent_sources.fetch(TRAIN)
    with pytest.raises(UserError, match="could not be downloaded"):
        patent_sources.fetch("kaggle://datasets/xhlulu/cpc-codes/missing.csv")
