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
    r = cli("lr-find", "--help")  # only the families that have the command
    assert r.returncode == 0 and "image-classifier" in r.stdout and "recommender" not in r.stdout
    r = cli("deploy", "--help")
    assert "movie_recommender" in r.stdout and "HF_TOKEN" in r.stdout
    for family in ("image-classifier", "patent-similarity", "recommender"):
        r = cli("evaluate", family, "--help")
        assert r.returncode == 0 and "--model" in r.stdout, family


def test_the_console_script_is_the_same_cli():
    from shared import cli as module

    text = (ROOT / "pyproject.toml").read_text()
    assert 'demos = "shared.cli:main"' in text and module.main.__module__ == "shared.cli"


def test_list_is_fast_because_it_imports_no_torch():
    code = "import sys; from shared import cli; cli.main(['list']); print('torch' in sys.modules)"
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"


def test_list_shows_every_model_with_repo_revision_and_cache_state():
    from shared import registry

    r = cli("list")
    assert r.returncode == 0, r.stderr
    for name, spec in registry.specs().items():
        line = next(line for line in r.stdout.splitlines() if line.startswith(name))
        assert registry.default_repo(spec) in line and spec.revision in line
        assert line.rstrip().endswith("no")


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
        ["push", "/no/such/folder", "--repo", "tests/x"],
    ):
        r = cli(*args)
        assert r.returncode == 1, args
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli("deploy", "nope", "--repo", "t/x")  # argparse knows the Spaces
    assert r.returncode == 2 and "invalid choice: 'nope'" in r.stderr
    r = cli("--debug", "pull", "no-such-model")  # --debug: the traceback too
    assert r.returncode == 1 and "Traceback" in r.stderr and "Unknown model" in r.stderr
    r = cli("pull", "movie-recommender", DEMO_MODEL_MOVIE_RECOMMENDER="tests/never-pushed")
    assert r.returncode == 1 and "was not found on the Hub" in r.stderr
    r = cli("train", "no-such-family")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_a_bug_prints_its_traceback(monkeypatch, capsys):
    from shared import cli as module
    from shared import registry

    def crash(name, force=False):
        raise ZeroDivisionError("a bug, not a person's mistake")

    monkeypatch.setattr(registry, "fetch", crash)
    assert module.main(["pull", "pets-classifier"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err and "a bug" in err


def test_deploy(hub, repo_id, tmp_path):
    from shared.hub import push
    from tests.factories import tiny_timm

    model = push(tiny_timm(tmp_path / "model", ["a", "b"]), repo_id + "-model")
    env = {"DEMO_MODEL_PETS_CLASSIFIER": f"{repo_id}-model@{model}"}
    r = cli("deploy", "image_classifier", "--repo", repo_id, **env)
    assert r.returncode == 0, r.stderr
    files = hub.files(repo_id, type_="space")
    assert "app.py" in files and "shared/cli.py" in files
