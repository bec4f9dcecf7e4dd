"""`demos publish`: the plan, the gates, the fingerprint, --only, dry run, redeploys, and the
hint an unpublished model gives (against the loopback Hub)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file

from shared import cli, publish, registry
from shared.errors import UserError
from tests.factories import COLOURS, draw, synthetic_ratings

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


# --- the plan ---------------------------------------------------------------------------------


def test_the_shipped_plan_holds_the_course_recipes_and_floors():
    entries = {e.name: e for e in publish.load_plan(publish.PLAN)}
    assert set(entries) == {"pets-classifier", "patent-similarity", "movie-recommender"}
    pets, patents, movies = (entries[n] for n in entries)
    assert "convnext_tiny.fb_in22k" in pets.train and (pets.metric, pets.high) == (
        "error_rate",
        0.06,
    )
    assert any(a.startswith("hf://datasets/timm/oxford-iiit-pet@") for a in pets.train)
    assert "microsoft/deberta-v3-small" in patents.train
    assert (patents.metric, patents.low) == ("pearson", 0.80)
    assert movies.train == [] and (movies.metric, movies.high) == ("valid_rmse", 0.91)
    for e in entries.values():  # each is a valid command line of its family (nothing runs)
        args = cli.parser().parse_args(["train", e.family, *e.train, "--out", "x"])
        assert args.family_command.config.__name__ == "TrainConfig"


@pytest.mark.parametrize(
    "text, message",
    [
        ("not toml [", "is not valid TOML"),
        ("[other]\n", "has no [models.<name>] table"),
        ("[models.nope]\ntrain = []\n", "no such model"),
        ('[models.movie-recommender]\ntrain = ["--out", "x"]\nfloor = {metric="a", max=1}\n',
         "publish adds --out itself"),
        ("[models.movie-recommender]\ntrain = []\nfloor = {metric = \"a\"}\n", "floor must be"),
        ("[models.movie-recommender]\ntrain = \"--epochs 3\"\n", "train must be a list"),
        ("[models.movie-recommender]\nfloor = {metric=\"a\", max=1}\nepochs = 3\n",
         "unknown key(s) epochs"),
    ],
)  # fmt: skip
def test_a_bad_plan_says_what_is_wrong(tmp_path, text, message):
    plan = tmp_path / "plan.toml"
    plan.write_text(text)
    with pytest.raises(UserError) as e:
        publish.load_plan(plan)
    assert message in str(e.value)


def test_only_names_plan_models():
    with pytest.raises(UserError, match="--only nope: not in"):
        publish.load_plan(publish.PLAN, ["nope"])
    assert [e.name for e in publish.load_plan(publish.PLAN, ["movie-recommender"])] == [
        "movie-recommender"
    ]


def test_a_model_is_held_back_by_its_floor_and_by_a_failed_guard():
    entry = publish.Entry("m", "recommender", [], "valid_rmse", high=0.91)
    assert entry.problems({"valid_rmse": 0.9}) == []
    assert entry.problems({"valid_rmse": 0.95}) == [
        "valid_rmse 0.95 misses its floor (valid_rmse ≤ 0.91)"
    ]
    guards = {"onnx": {"passed": False, "reason": "outputs differ"}, "other": {"passed": True}}
    assert entry.problems({"valid_rmse": 0.9, "guards": guards}) == [
        "guard 'onnx' failed (outputs differ)"
    ]
    assert "has no number 'valid_rmse'" in entry.problems({"rmse": 1})[0]
    nested = publish.Entry("m", "recommender", [], "guards.onnx.max_diff", high=1e-3)
    assert nested.problems({"guards": {"onnx": {"passed": True, "max_diff": 1e-4}}}) == []


def test_the_fingerprint_follows_the_recipe_not_where_the_data_lies(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "ratings.csv").write_text("user,item,rating\n1,1,5\n")
    first = publish.Entry("m", "recommender", ["--data", str(tmp_path / "a"), "--epochs", "3"], "x")
    moved = publish.Entry("m", "recommender", ["--data", str(tmp_path / "b"), "--epochs", "3"], "x")
    assert publish.fingerprint(first)[0] == publish.fingerprint(moved)[0]
    (tmp_path / "b" / "ratings.csv").write_text("user,item,rating\n1,1,4\n")
    assert publish.fingerprint(first)[0] != publish.fingerprint(moved)[0]
    longer = publish.Entry(
        "m", "recommender", ["--data", str(tmp_path / "a"), "--epochs", "4"], "x"
    )
    assert publish.fingerprint(first)[0] != publish.fingerprint(longer)[0]
    record = publish.fingerprint(first)[1]
    assert record["train"][1].startswith("sha256:") and record["code"]


@pytest.fixture
def ratings_plan(tmp_path) -> callable:
    csv = tmp_path / "ratings.csv"
    synthetic_ratings(n_users=60, n_items=40).to_csv(csv, index=False)

    def plan(floor: str, epochs: int = 3) -> Path:
        path = tmp_path / "plan.toml"
        path.write_text(
            f'[models.movie-recommender]\ntrain = ["--data", "{csv}", "--epochs", "{epochs}", '
            f'"--factors", "8"]\nfloor = {{ metric = "valid_rmse", {floor} }}\n'
        )
        return path

    return plan


def test_below_its_floor_a_model_is_not_pushed_unless_forced(ratings_plan, hub, tmp_path):
    plan, work = ratings_plan("max = 0.01"), str(tmp_path / "work")
    common = ["publish", "--namespace", "floors", "--plan", str(plan), "--work", work]
    r = run_cli(*common, "--no-deploy")
    assert r.returncode == 1
    assert "movie-recommender was not published: valid_rmse" in r.stderr
    assert "misses its floor (valid_rmse ≤ 0.01)" in r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["models"]["movie-recommender"]["revision"] is None
    assert ("model", "floors/movielens-100k-dot") not in hub.hub.repos
    r = run_cli(*common, "--no-deploy", "--force")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    pushed = summary["models"]["movie-recommender"]
    assert pushed["revision"] == hub.commits("floors/movielens-100k-dot")[-1]
    assert pushed["metrics"]["valid_rmse"] > 0.01 and summary["spaces"] == {}
    files = hub.files("floors/movielens-100k-dot")
    assert {"model.safetensors", "metrics.json", "publish.json", "README.md"} <= set(files)


def test_a_changed_recipe_trains_again_and_only_that(ratings_plan, hub, tmp_path):
    work = tmp_path / "work"
    first, problems = publish.run("recipes", plan=ratings_plan("max = 5"), deploy=False, work=work)
    assert not problems
    repo = "recipes/movielens-100k-dot"
    n = len(hub.commits(repo))
    again, _ = publish.run("recipes", plan=ratings_plan("max = 5"), deploy=False, work=work)
    assert again == first and len(hub.commits(repo)) == n  # nothing changed: nothing pushed
    changed, _ = publish.run(
        "recipes", plan=ratings_plan("max = 5", epochs=4), deploy=False, work=work
    )
    assert len(hub.commits(repo)) == n + 1
    assert changed["models"]["movie-recommender"]["revision"] == hub.commits(repo)[-1]
    record = json.loads(hub.files(repo)["publish.json"])
    assert (
        "4" in record["train"]
        and record["fingerprint"]
        != json.loads(
            hub.files(repo, first["models"]["movie-recommender"]["revision"])["publish.json"]
        )["fingerprint"]
    )


def test_only_publishes_one_model_and_deploys_the_spaces_it_can(ratings_plan, hub, tmp_path):
    from shared import hub as hubio
    from tests.factories import tiny_sd

    plan = ratings_plan("max = 5")
    pets = '[models.pets-classifier]\ntrain = ["--data", "nowhere"]\nfloor = {metric="a", max=1}\n'
    plan.write_text(plan.read_text() + pets)
    sd = hubio.push(tiny_sd(tmp_path / "sd"), "only/tiny-sd")
    r = run_cli(
        *("publish", "--namespace", "only", "--plan", str(plan), "--only", "movie-recommender"),
        *("--work", str(tmp_path / "work")),
        DEMO_MODEL_STABLE_DIFFUSION=f"only/tiny-sd@{sd}",
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert list(summary["models"]) == ["movie-recommender"]  # pets: not trained, not fetched
    assert set(summary["spaces"]) == {"movie_recommender", "text_to_image"}
    assert "image_classifier: not deployed: pets-classifier is not published under only" in r.stderr
    assert "fastai-course-demos: not deployed" in r.stderr
    pinned = json.loads(hub.files("only/movie-recommender", type_="space")[registry.PINS])
    model = summary["models"]["movie-recommender"]
    assert pinned == {"movie-recommender": f"{model['repo']}@{model['revision']}"}


def test_dry_run_prints_the_plan_and_trains_nothing(hub):
    before = len(hub.hub.repos)
    r = run_cli("publish", "--namespace", "dry", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert len(hub.hub.repos) == before
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["models"]["pets-classifier"] == {
        "repo": "dry/pets-convnext-tiny",
        "revision": None,
        "metrics": {},
    }
    assert summary["spaces"]["image_classifier"]["repo"] == "dry/image-classifier"
    assert summary["spaces"]["fastai-course-demos"]["repo"] == "dry/fastai-course-demos"
    assert "demos train image-classifier --data hf://datasets/timm/oxford-iiit-pet@" in r.stderr
    assert "floor error_rate ≤ 0.06" in r.stderr


def test_publish_needs_a_namespace_and_a_token(tmp_path):
    r = run_cli("publish", "--namespace", "not a name!", "--dry-run")
    assert r.returncode == 1 and "is not a Hub user or organisation name" in r.stderr
    r = run_cli("publish", "--namespace", "x", "--plan", str(tmp_path / "none.toml"))
    assert r.returncode == 1 and "No plan at" in r.stderr


def test_a_redeploy_prunes_what_the_space_no_longer_has(hub, repo_id):
    from huggingface_hub import HfApi

    from shared import hub as hubio

    first = hubio.deploy("movie_recommender", repo_id, pins={})
    assert "requirements.txt" in hub.files(repo_id, first, type_="space")
    HfApi().upload_file(
        path_or_fileobj=b"old = 1\n", path_in_repo="shared/removed.py", repo_id=repo_id,
        repo_type="space",
    )  # fmt: skip
    again = hubio.deploy("movie_recommender", repo_id, pins={})
    assert "shared/removed.py" not in hub.files(repo_id, again, type_="space")
    assert hub.files(repo_id, again, type_="space") == hub.files(repo_id, first, type_="space")
    suite = hubio.deploy(hubio.SUITE, repo_id + "-suite", pins={})
    files = hub.files(repo_id + "-suite", suite, type_="space")
    assert {"app.py", "spaces/text_to_image/app.py", "shared/suite.py", "pins.json"} <= set(files)
    wanted = set()
    for space in hubio.space_names():
        text = (ROOT / "spaces" / space / "requirements.txt").read_text()
        wanted |= {line.partition("#")[0].strip() for line in text.splitlines()} - {""}
    assert sorted(files["requirements.txt"].decode().splitlines()) == sorted(wanted)


# --- an unpublished model says how to publish it ----------------------------------------------


@pytest.mark.parametrize(
    "space, args, api",
    [
        ("image_classifier", "photo", "/classify"),
        ("patent_similarity", ("valve", "pump", "F16"), "/score"),
    ],
)
def test_an_unpublished_model_names_the_publish_command(
    space, args, api, monkeypatch, load_space, launch, tmp_path
):
    monkeypatch.setenv("DEMO_HUB_NAMESPACE", "nobody-published-here")
    for name in registry.specs():
        registry.unload(name)
    if args == "photo":
        draw(COLOURS["red"], np.random.default_rng(0)).save(tmp_path / "p.png")
        args = (handle_file(str(tmp_path / "p.png")),)
    client = Client(launch(load_space(space).demo), verbose=False)
    with pytest.raises(Exception) as e:
        client.predict(*args, api_name=api)
    assert "has not been published yet" in str(e.value)
    assert "make publish NAMESPACE=<your Hub name>" in str(e.value)
