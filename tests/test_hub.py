"""Hub I/O and the registry against the loopback Hub: push, pull, revisions, offline, outages."""

from __future__ import annotations

import json
import sys
import threading
import time
from fnmatch import fnmatch
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, SpaceCard
from safetensors.torch import load_file, save_file

from shared import hub as hubio
from shared import registry
from shared.errors import ModelError, UserError
from shared.registry import Spec

LOADS: list[Path] = []


def load_tiny(folder: Path) -> dict[str, torch.Tensor]:
    """A loader like the families': read the weights, fail loudly if they are missing."""
    LOADS.append(folder)
    time.sleep(0.2)  # widen the window in which concurrent first requests could race
    return load_file(folder / "model.safetensors")


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> str:
    """A registry entry 'tiny' whose loader reads one safetensors file."""
    spec = Spec(
        name="tiny",
        task="test",
        repo="tests/not-pushed-yet",
        revision="main",
        files=("config.json", "model.safetensors"),
        load=load_tiny,
        space="none",
        description="a test model",
    )
    monkeypatch.setitem(registry.specs(), "tiny", spec)
    LOADS.clear()
    registry.unload("tiny")
    yield "tiny"
    registry.unload("tiny")


def make_model(folder: Path, value: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.full((4, 4), value)}, folder / "model.safetensors")
    (folder / "config.json").write_text(f'{{"value": {value}}}')
    (folder / "model.bin").write_bytes(b"pickle we never fetch")
    return folder


def test_push_then_pull_is_byte_exact(tmp_path, hub, repo_id, tiny, use_model):
    src = make_model(tmp_path / "m", 1.0)
    commit = hubio.push(src, repo_id, message="first")
    assert len(commit) == 40 and commit == hub.commits(repo_id)[-1]
    use_model(tiny, repo_id)
    folder = registry.fetch(tiny)
    for name in ("model.safetensors", "config.json"):
        assert (folder / name).read_bytes() == (src / name).read_bytes()
    assert not (folder / "model.bin").exists()  # only the allow-listed files are fetched
    assert registry.load(tiny)["w"].eq(1.0).all()


def test_repush_of_unchanged_files_makes_no_commit(tmp_path, hub, repo_id):
    src = make_model(tmp_path / "m", 1.0)
    first = hubio.push(src, repo_id)
    n = len(hub.commits(repo_id))
    assert hubio.push(src, repo_id) == first
    assert len(hub.commits(repo_id)) == n
    (src / "config.json").write_text('{"value": 2}')
    assert hubio.push(src, repo_id) != first
    assert len(hub.commits(repo_id)) == n + 1


def test_pinned_older_revision_still_loads(tmp_path, repo_id, tiny, use_model):
    old = hubio.push(make_model(tmp_path / "a", 1.0), repo_id)
    hubio.push(make_model(tmp_path / "b", 2.0), repo_id)
    use_model(tiny, f"{repo_id}@{old}")
    assert registry.load(tiny)["w"].eq(1.0).all()
    use_model(tiny, repo_id)
    assert registry.load(tiny)["w"].eq(2.0).all()


def test_load_is_cached_and_loads_once_under_concurrency(tmp_path, repo_id, tiny, use_model):
    hubio.push(make_model(tmp_path / "m", 3.0), repo_id)
    use_model(tiny, repo_id)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(registry.load(tiny))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(LOADS) == 1
    assert all(r is results[0] for r in results)
    assert registry.load(tiny) is results[0]


def test_offline_with_warm_cache_works(tmp_path, repo_id, tiny, use_model, monkeypatch, hub):
    hubio.push(make_model(tmp_path / "m", 4.0), repo_id)
    use_model(tiny, repo_id)
    registry.fetch(tiny)
    registry.unload(tiny)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(hub.hub.requests)
    assert registry.load(tiny)["w"].eq(4.0).all()
    assert len(hub.hub.requests) == before  # no request reached the Hub
    assert registry.is_cached(tiny)


def test_offline_with_cold_cache_says_what_to_do(tmp_path, repo_id, tiny, use_model, monkeypatch):
    hubio.push(make_model(tmp_path / "m", 5.0), repo_id)
    use_model(tiny, repo_id)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as e:
        registry.load(tiny)
    assert "not in the local cache" in str(e.value)
    assert "HF_HUB_OFFLINE is set: unset it and run `python -m shared.cli pull tiny`" in str(
        e.value
    )
    assert not registry.is_cached(tiny)


def test_hub_down_falls_back_to_cache(tmp_path, repo_id, tiny, use_model, hub):
    hubio.push(make_model(tmp_path / "m", 6.0), repo_id)
    use_model(tiny, repo_id)
    registry.fetch(tiny)
    registry.unload(tiny)
    hub.hub.down = True
    try:
        assert registry.load(tiny)["w"].eq(6.0).all()
        use_model(tiny, repo_id + "-never-pulled")
        with pytest.raises(ModelError, match="could not be reached"):
            registry.load(tiny)
    finally:
        hub.hub.down = False


def test_missing_repo_and_revision_are_clear(tmp_path, repo_id, tiny, use_model):
    use_model(tiny, "tests/does-not-exist")
    with pytest.raises(ModelError, match="was not found on the Hub"):
        registry.load(tiny)
    hubio.push(make_model(tmp_path / "m", 1.0), repo_id)
    use_model(tiny, f"{repo_id}@v9")
    with pytest.raises(ModelError, match="revision 'v9' does not exist"):
        registry.load(tiny)


def test_corrupt_or_missing_weights_are_clear(tmp_path, repo_id, tiny, use_model):
    folder = make_model(tmp_path / "m", 1.0)
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00not a safetensors file")
    hubio.push(folder, repo_id)
    use_model(tiny, repo_id)
    with pytest.raises(ModelError, match="missing or corrupt") as e:
        registry.load(tiny)
    assert "pull tiny --force" in str(e.value)
    (folder / "model.safetensors").unlink()
    use_model(tiny, str(folder))  # a local folder without weights
    with pytest.raises(ModelError, match="missing or corrupt"):
        registry.load(tiny)


def test_unknown_model_name():
    with pytest.raises(ModelError, match="Unknown model 'nope'.*pets-classifier"):
        registry.load("nope")


def test_env_override_forms(tmp_path, monkeypatch):
    var = registry.env_var("pets-classifier")
    assert var == "DEMO_MODEL_PETS_CLASSIFIER"
    assert registry.source("pets-classifier") == ("tests/pets-convnext-tiny", "main")
    monkeypatch.setenv(var, "me/pets")
    assert registry.source("pets-classifier") == ("me/pets", "main")
    monkeypatch.setenv(var, "me/pets@v2")
    assert registry.source("pets-classifier") == ("me/pets", "v2")
    monkeypatch.setenv(var, str(tmp_path))
    assert registry.source("pets-classifier") == (str(tmp_path.resolve()), None)


@pytest.mark.parametrize(
    "value, message",
    [
        ("/no/such/folder", "folder /no/such/folder was not found"),
        ("./out/pets-typo", "folder ./out/pets-typo was not found"),
        ("~/models/pets", "folder ~/models/pets was not found"),
        ("a/b/c", "folder a/b/c was not found"),
        ("not a repo!", "neither a local folder nor a Hub repo id"),
    ],
)
def test_a_mistyped_folder_is_not_taken_for_a_repo(tmp_path, monkeypatch, value, message):
    monkeypatch.setenv(registry.env_var("pets-classifier"), value)
    with pytest.raises(ModelError, match=message):
        registry.fetch("pets-classifier")
    (tmp_path / "out").mkdir()  # "out/typo" with a local out/: the message says both
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(registry.env_var("pets-classifier"), "out/typo")
    with pytest.raises(ModelError, match="not found on the Hub.*no folder out/typo here"):
        registry.fetch("pets-classifier")
    file = tmp_path / "weights.safetensors"
    file.write_bytes(b"")
    with pytest.raises(ModelError, match="is a file, not a model folder"):
        registry.parse(str(file))


def test_every_model_fetches_safetensors_only():
    pickles = [
        "pytorch_model.bin",
        "unet/diffusion_pytorch_model.bin",
        "model.ckpt",
        "v1-5-pruned.ckpt",
        "model.pt",
        "text_encoder/pytorch_model.bin",
    ]
    for spec in registry.specs().values():
        patterns = spec.patterns()
        assert any(
            fnmatch(f, p)
            for p in patterns
            for f in ("model.safetensors", "unet/diffusion_pytorch_model.safetensors")
        ), spec.name
        assert not [f for f in pickles for p in patterns if fnmatch(f, p)], spec.name


def test_model_card_has_hub_metadata(tmp_path):
    path = hubio.write_card(
        tmp_path,
        title="Tiny",
        summary="A tiny model.",
        library_name="timm",
        pipeline_tag="image-classification",
        task_name="Image classification",
        dataset_name="Oxford-IIIT Pet",
        datasets=["timm/oxford-iiit-pet"],
        base_model="timm/resnet18.a1_in1k",
        tags=["vision"],
        metrics={"accuracy": 0.93},
        training="One epoch frozen, then two unfrozen.",
        usage='timm.create_model("hf-hub:me/tiny", pretrained=True)',
        license="other",
        license_name="pets-terms",
        license_link="https://example.org/terms",
        data="Oxford-IIIT Pet, from its authors' page.",
    )
    card = ModelCard.load(path)
    front, body = card.data.to_dict(), card.text
    assert front["library_name"] == "timm" and front["pipeline_tag"] == "image-classification"
    assert front["base_model"] == "timm/resnet18.a1_in1k" and front["license"] == "other"
    assert front["license_name"] == "pets-terms"
    assert front["license_link"] == "https://example.org/terms"
    assert "## Data and licence\n\nOxford-IIIT Pet, from its authors' page." in body
    assert "Licence of this model: [pets-terms](https://example.org/terms)." in body
    # a licence is a deliberate choice: none given is "other", never a code licence
    default = hubio.write_card(
        tmp_path / "default",
        title="T",
        summary="S",
        library_name="timm",
        pipeline_tag="image-classification",
        task_name="t",
        dataset_name="d",
        training="t",
        usage="u",
    )
    assert ModelCard.load(default).data.to_dict()["license"] == "other"
    assert "vision" in front["tags"] and front["datasets"] == ["timm/oxford-iiit-pet"]
    result = front["model-index"][0]["results"][0]
    assert result["metrics"][0] == {"type": "accuracy", "value": 0.93}
    assert "How to use" in body and "hf-hub:me/tiny" in body and "0.9300" in body


def test_a_push_uploads_model_files_only_and_prunes_the_rest(tmp_path, hub, repo_id):
    folder = make_model(tmp_path / "m", 1.0)
    (folder / "examples").mkdir()
    (folder / "examples" / "old.jpg").write_bytes(b"jpeg")
    (folder / "notes.txt").write_text("HF_TOKEN=hf_secret, do not publish")
    first = hubio.push(folder, repo_id)
    files = hub.files(repo_id, first)
    assert "notes.txt" not in files and "model.bin" not in files  # not model files
    assert {"model.safetensors", "config.json", "examples/old.jpg"} <= set(files)
    assert hubio.left_out(folder) == ["model.bin", "notes.txt"]
    (folder / "examples" / "old.jpg").unlink()  # retrained: other examples
    (folder / "examples" / "new.jpg").write_bytes(b"jpeg2")
    second = hubio.push(folder, repo_id)
    files = hub.files(repo_id, second)
    assert "examples/new.jpg" in files and "examples/old.jpg" not in files
    assert ".gitattributes" in files  # never pruned
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing to publish")
    with pytest.raises(UserError, match="holds no model files"):
        hubio.push(empty, repo_id)


def test_deploy_pins_the_exact_model_commit(hub, repo_id, tmp_path, use_model):
    from tests.factories import tiny_timm

    model_repo = repo_id + "-model"
    model_commit = hubio.push(tiny_timm(tmp_path / "model", ["cat", "dog"]), model_repo)
    use_model("pets-classifier", model_repo)  # "main", pinned to its commit by deploy
    commit = hubio.deploy("image_classifier", repo_id)
    files = hub.files(repo_id, commit, type_="space")
    assert "app.py" in files and "requirements.txt" in files
    assert "shared/registry.py" in files and "models/__init__.py" in files
    assert not any("__pycache__" in p or p.startswith(("tests/", "spaces/")) for p in files)
    root = Path(__file__).resolve().parents[1]
    assert files["app.py"] == (root / "spaces/image_classifier/app.py").read_bytes()
    pinned = json.loads(files[registry.PINS])
    assert pinned == {"pets-classifier": f"{model_repo}@{model_commit}"}
    readme = tmp_path / "README.md"
    readme.write_bytes(files["README.md"])
    front = SpaceCard.load(readme).data.to_dict()
    import gradio

    assert front["sdk"] == "gradio" and front["sdk_version"] == gradio.__version__
    assert front["app_file"] == "app.py" and front["python_version"] == "{}.{}".format(
        *sys.version_info[:2]
    )
    assert front["models"] == [model_repo]
    repo, files_, sha = front["preload_from_hub"][0].split(" ")
    assert (repo, sha) == (model_repo, model_commit)
    assert set(files_.split(",")) == {"config.json", "model.safetensors"}
    for key in ("title", "emoji", "suggested_hardware", "short_description"):
        assert front.get(key), key
    again = hubio.deploy("image_classifier", repo_id)
    assert again == commit  # nothing changed: no commit


def test_deploy_refuses_what_it_cannot_pin(tmp_path, use_model, repo_id):
    use_model("pets-classifier", str(tmp_path))
    with pytest.raises(UserError, match="comes from a local folder"):
        hubio.deploy("image_classifier", repo_id)
    use_model("pets-classifier", "tests/never-published")
    with pytest.raises(UserError, match="publish it before deploying"):
        hubio.deploy("image_classifier", repo_id)


def test_pins_file_sets_the_source_and_the_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "ROOT", tmp_path)
    (tmp_path / registry.PINS).write_text('{"pets-classifier": "you/pets@abc123"}')
    assert registry.source("pets-classifier") == ("you/pets", "abc123")
    assert not registry.is_default("pets-classifier")
    monkeypatch.setenv(registry.env_var("pets-classifier"), "me/other")
    assert registry.source("pets-classifier") == ("me/other", "main")


def test_an_unpublished_default_model_names_the_publish_command(monkeypatch):
    monkeypatch.setenv("DEMO_HUB_NAMESPACE", "nobody-published-here")
    registry.unload("pets-classifier")
    with pytest.raises(ModelError, match="has not been published yet.*make publish NAMESPACE="):
        registry.fetch("pets-classifier")


def test_deploy_unknown_space():
    with pytest.raises(UserError, match="No Space 'nope'"):
        hubio.deploy("nope", "tests/x")
