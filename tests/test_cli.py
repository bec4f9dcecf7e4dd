"""`python -m shared.cli` as a person runs it: real processes, the loopback Hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_of_every_command():
    for command in ("list", "pull", "push", "deploy"):
        r = cli(command, "--help")
        assert r.returncode == 0 and "usage:" in r.stdout, command
    r = cli("train", "--help")
    assert r.returncode == 0 and "image-classifier" in r.stdout and "recommender" in r.stdout


def test_list_shows_every_model_with_repo_revision_and_cache_state():
    from shared import registry

    r = cli("list")
    assert r.returncode == 0, r.stderr
    for name, spec in registry.MODELS.items():
        line = next(line for line in r.stdout.splitlines() if line.startswith(name))
        assert spec.repo in line and spec.revision in line and line.rstrip().endswith("no")


def test_push_then_pull(tmp_path, hub, repo_id):
    folder = tmp_path / "model"
    folder.mkdir()
    save_file({"w": torch.ones(2)}, folder / "model.safetensors")
    (folder / "config.json").write_text("{}")
    r = cli("push", str(folder), "--repo", repo_id)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{repo_id}@{hub.commits(repo_id)[-1]}"

    env = {"DEMO_MODEL_MOVIE_RECOMMENDER": repo_id}
    r = cli("pull", "movie-recommender", **env)
    assert r.returncode == 0, r.stderr
    pulled = Path(r.stdout.strip().splitlines()[-1])
    assert (pulled / "model.safetensors").read_bytes() == (
        folder / "model.safetensors"
    ).read_bytes()
    r = cli("list", **env)
    assert any(
        line.startswith("movie-recommender") and repo_id in line and line.rstrip().endswith("yes")
        for line in r.stdout.splitlines()
    )


def test_failures_exit_nonzero_with_one_line():
    for args in (
        ["pull", "no-such-model"],
        ["train", "no-such-family"],
        ["push", "/no/such/folder", "--repo", "tests/x"],
        ["deploy", "nope", "--repo", "t/x"],
    ):
        r = cli(*args)
        assert r.returncode == 1, args
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli("pull", "movie-recommender", DEMO_MODEL_MOVIE_RECOMMENDER="tests/never-pushed")
    assert r.returncode == 1 and "was not found on the Hub" in r.stderr


def test_deploy(hub, repo_id):
    r = cli("deploy", "movie_recommender", "--repo", repo_id)
    assert r.returncode == 0, r.stderr
    files = hub.files(repo_id, type_="space")
    assert "app.py" in files and "shared/cli.py" in files
