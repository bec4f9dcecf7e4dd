"""Image classifier: data, training recipe, resume, export to the Hub, predictor, Space, bad input.

Everything trains tiny timm models from scratch on synthetic images (three background colours
with random distractor squares), so no pretrained weights and no external data are needed;
the Oxford pets tests use the real sample in $DEMO_DATA when it is there.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file

from models.image_classifier.config import TrainConfig
from models.image_classifier.data import Items, find_items, split
from models.image_classifier.export import export
from models.image_classifier.images import read_image
from models.image_classifier.lr_find import suggest_lr
from models.image_classifier.predict import load
from models.image_classifier.train import freeze, param_groups, train
from shared import registry
from shared.errors import ModelError, UserError
from tests.conftest import above_the_fold, no_horizontal_scroll
from tests.factories import COLOURS, colour_photos, draw, png_bomb

ROOT = Path(__file__).resolve().parents[1]
# One recipe for the CLI run and the resume run, so that their weights can be compared.
RECIPE = dict(arch="test_resnet", epochs=4, freeze_epochs=1, lr=1e-2, size=32, bs=16, workers=0)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """40 images per class, plus what a real folder has: junk, broken files, an empty class."""
    root = colour_photos(tmp_path_factory.mktemp("colours"), per_class=40, side=40, seed=0)
    (root / "red" / "broken.jpg").write_text("not a photo")
    buf = io.BytesIO()
    draw(COLOURS["green"], np.random.default_rng(0), 64).save(buf, "JPEG")
    (root / "green" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "blue" / "notes.txt").write_text("labels are folder names")
    (root / "empty").mkdir()
    return root


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    """The bad inputs of the issue, one file each."""
    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(1)
    photo = draw(COLOURS["red"], rng, 64)
    files = {
        name: root / name
        for name in (
            "text.jpg",
            "empty.png",
            "truncated.jpg",
            "one_pixel.png",
            "cmyk.jpg",
            "gray16.png",
            "rgba.png",
            "palette.gif",
            "animated.gif",
            "gray.png",
        )
    }
    files["text.jpg"].write_text("hello, I am not an image")
    files["empty.png"].write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(buf, "JPEG")
    files["truncated.jpg"].write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    Image.new("RGB", (1, 1), (200, 60, 60)).save(files["one_pixel.png"])
    photo.convert("CMYK").save(files["cmyk.jpg"])
    gray16 = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(gray16).save(files["gray16.png"])
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.new("L", photo.size, 128))
    rgba.save(files["rgba.png"])
    photo.convert("P").save(files["palette.gif"])
    frames = [photo, draw(COLOURS["blue"], rng, 64), draw(COLOURS["green"], rng, 64)]
    frames[0].save(files["animated.gif"], save_all=True, append_images=frames[1:], duration=100)
    photo.convert("L").save(files["gray.png"])
    files["bomb.png"] = png_bomb(root / "bomb.png", 20000, 20000)
    files["huge_header.png"] = png_bomb(root / "huge_header.png", 9000, 9000, real=False)
    return files


# What each bad input must give: None = classified after conversion, else the refusal message.
EXPECTED = {
    "text.jpg": "is not an image",
    "empty.png": "is empty",
    "truncated.jpg": "truncated or corrupt",
    "one_pixel.png": "only 1×1 pixels",
    "bomb.png": "too large (400 megapixels)",
    "huge_header.png": "too large (9000×9000 pixels",  # refused before any decoding
    "cmyk.jpg": None,
    "gray16.png": None,
    "rgba.png": None,
    "palette.gif": None,
    "animated.gif": None,
    "gray.png": None,
}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> dict:
    """One training run through the CLI, as a person runs it, pushed to the loopback Hub."""
    from shared.cli import main

    out = tmp_path_factory.mktemp("model")
    repo = f"tests/pets-colours-{out.name}"
    args = ["train", "image-classifier", "--data", str(data), "--no-pretrained", "--out", str(out)]
    for key, value in RECIPE.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    assert main([*args, "--push-to-hub", repo]) == 0
    return {"out": out, "repo": repo, "metrics": json.loads((out / "metrics.json").read_text())}


# --- reading images -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXPECTED))
def test_read_image_converts_or_refuses_clearly(bad, name):
    problem = EXPECTED[name]
    if problem is None:
        image, note = read_image(bad[name])
        assert image.mode == "RGB" and image.size == (64, 64)
        assert (note is not None) == (name == "animated.gif")
        if name != "palette.gif":  # the first frame of the red photo stays red
            r, g, b = np.asarray(image, dtype=float).reshape(-1, 3).mean(0)
            assert (r > g and r > b) or name.startswith("gray")
    else:
        with pytest.raises(UserError, match=re.escape(problem)):
            read_image(bad[name])


def test_sixteen_bit_and_transparency_keep_their_tones(bad):
    gray16, _ = read_image(bad["gray16.png"])
    gray8, _ = read_image(bad["gray.png"])
    assert np.abs(np.asarray(gray16, float) - np.asarray(gray8, float)).max() <= 1  # not clipped
    rgba, _ = read_image(bad["rgba.png"])
    assert np.asarray(rgba).mean() > np.asarray(gray8).mean()  # half transparent over white


def test_decompression_bomb_is_refused_without_allocating(bad):
    code = f"""
import resource, sys
sys.path.insert(0, {str(ROOT)!r})
from models.image_classifier.images import read_image
from shared.errors import UserError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_image({str(bad["bomb.png"])!r})
except UserError as e:
    print("refused:", e)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    refused, grew_mb = r.stdout.strip().splitlines()
    assert refused.startswith("refused: bomb.png is too large")
    assert int(grew_mb) < 50  # 20000×20000 would be 400 MB


# --- data -----------------------------------------------------------------------------------


def test_folders_csv_file_names_and_species(tmp_path):
    for name in ("Bengal_1.jpg", "Bengal_2.jpg", "great_pyrenees_10.jpg", "README.txt"):
        (tmp_path / "flat").mkdir(exist_ok=True)
        (tmp_path / "flat" / name).write_bytes(b"x")
    items = find_items(tmp_path / "flat")  # no class folders: labels from file names
    assert sorted(items.labels) == ["Bengal", "Bengal", "great_pyrenees"]
    assert items.skipped == {"not an image file": ["README.txt"]}
    species = find_items(tmp_path / "flat", labels="species")
    assert Counter(species.labels) == {"cat": 2, "dog": 1}

    for part, label in [("train", "cat"), ("train", "dog"), ("valid", "cat"), ("valid", "dog")]:
        (tmp_path / "split" / part / label).mkdir(parents=True)
        (tmp_path / "split" / part / label / "a.jpg").write_bytes(b"x")
    items = find_items(tmp_path / "split")
    assert items.valid == [False, False, True, True] and items.labels == ["cat", "dog"] * 2
    assert split(items) == ([0, 1], [2, 3])  # the given split wins over valid_pct

    (tmp_path / "labels.csv").write_text(
        "file,kind,is_valid\nflat/Bengal_1.jpg,cat,False\nflat/great_pyrenees_10.jpg,dog,True\n"
    )
    items = find_items(
        tmp_path / "labels.csv", path_col="file", label_col="kind", split_col="is_valid"
    )
    assert items.labels == ["cat", "dog"] and items.valid == [False, True]
    with pytest.raises(UserError, match="no column 'label'"):
        find_items(tmp_path / "labels.csv", path_col="file")


def test_split_is_seeded_and_stratified():
    items = Items([Path(f"{i}.jpg") for i in range(50)], ["a"] * 40 + ["b"] * 10)
    train_idx, valid = split(items, 0.2, seed=1)
    assert split(items, 0.2, seed=1) == (train_idx, valid) != split(items, 0.2, seed=2)
    assert Counter(items.labels[i] for i in valid) == {"a": 8, "b": 2}
    assert sorted(train_idx + valid) == list(range(50))


def test_a_single_class_is_a_clear_error(tmp_path, capsys):
    from shared.cli import main

    (tmp_path / "cats").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        draw(COLOURS["red"], rng).save(tmp_path / "cats" / f"{i}.png")
    (tmp_path / "dogs").mkdir()  # empty: skipped, which leaves one class
    args = ["train", "image-classifier", "--data", str(tmp_path), "--no-pretrained"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "error: A classifier needs at least two classes" in err and "only 'cats'" in err


# --- training, export, Hub round trip -------------------------------------------------------


def test_training_learns_and_writes_a_hub_folder(trained):
    m, out = trained["metrics"], trained["out"]
    assert m["accuracy"] >= 0.85  # chance is 1/3
    assert m["skipped"] == {"not an image file": 1, "empty class folder": 1, "unreadable": 2}
    assert [r["phase"] for r in m["history"]] == ["frozen"] + ["unfrozen"] * 4
    assert m["history"][-1]["train_loss"] < m["history"][0]["train_loss"]
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "test_resnet" and config["num_classes"] == 3
    assert config["label_names"] == ["blue", "green", "red"]
    assert config["pretrained_cfg"]["input_size"] == [3, 32, 32]
    for name in ("model.safetensors", "confusion_matrix.png", "top_losses.png", "training.png"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "checkpoints").exists() and not list(out.glob("*.bin"))
    examples = sorted(p.name for p in (out / "examples").iterdir())
    assert len(examples) == 6 and {e.split("-")[1][:-4] for e in examples} == set(COLOURS)
    card = (out / "README.md").read_text()
    assert "library_name: timm" in card and "pipeline_tag: image-classification" in card
    assert "model-index" in card and f"hf-hub:{trained['repo']}" in card


def test_timm_loads_the_pushed_repo_with_identical_logits(trained, hub):
    from_hub = timm.create_model(f"hf-hub:{trained['repo']}", pretrained=True).eval()
    local = load(trained["out"])
    assert from_hub.pretrained_cfg["label_names"] == local.labels == ["blue", "green", "red"]
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(from_hub(x), local.model(x))


def test_resume_after_interruption_loses_no_epoch(data, trained, tmp_path):
    seen = []

    def stop_after_two(record):
        seen.append(record["epoch"])
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    cfg = TrainConfig(data=data, out=tmp_path, pretrained=False, **RECIPE)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callback=stop_after_two)
    state = json.loads((tmp_path / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 2 and not (tmp_path / "model.safetensors").exists()

    with pytest.raises(UserError, match="other settings.*epochs 4 -> 5"):
        train(
            TrainConfig(
                data=data, out=tmp_path, pretrained=False, resume=True, **{**RECIPE, "epochs": 5}
            )
        )
    cfg.resume = True
    train(cfg, callback=stop_after_two)
    assert seen == [1, 2, 3, 4, 5]  # epochs 3-5 only after the resume
    resumed, uninterrupted = (
        load_file(tmp_path / "model.safetensors"),
        load_file(trained["out"] / "model.safetensors"),
    )
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def test_gradient_accumulation_runs_each_one_cycle_schedule_to_its_end(data, tmp_path):
    used = []  # the head's learning rate of every optimizer update
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        used.append(self.param_groups[-1]["lr"])
        return original(self, *args, **kwargs)

    cfg = TrainConfig(data=data, out=tmp_path, pretrained=False, **{**RECIPE, "accum": 4})
    torch.optim.AdamW.step = step
    try:
        train(cfg)
    finally:
        torch.optim.AdamW.step = original
    # 96 images in 6 batches of 16: 2 updates per epoch (after 4 batches, and at the end)
    assert len(used) == 2 * (RECIPE["freeze_epochs"] + RECIPE["epochs"])
    lr = RECIPE["lr"] / 2  # the unfrozen phase: 8 updates, warm-up from lr/25, down to lr/25e5
    assert used[2] == pytest.approx(lr / 25) and max(used[2:]) == pytest.approx(lr)
    assert used[-1] == pytest.approx(lr / 25 / 1e5)


def test_lr_find_cli_suggests_learning_rates_and_plots(data, tmp_path, capsys):
    from shared.cli import main

    args = ["lr-find", "image-classifier", "--data", str(data), "--no-pretrained", "--out"]
    args += [str(tmp_path), "--arch", "test_resnet", "--size", "32", "--bs", "16", "--workers", "0"]
    assert main([*args, "--num-it", "40"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{") :])
    for key in ("valley", "minimum", "steep"):
        assert 1e-7 <= result[key] <= 10, key
    assert Path(result["plot"]) == tmp_path / "lr_find.png" and Path(result["plot"]).stat().st_size


def test_suggest_lr_finds_the_valley():
    lrs = list(np.logspace(-6, 0, 60))
    losses = [2.0] * 20 + list(np.linspace(2.0, 0.5, 25)) + list(np.linspace(0.5, 4, 15))
    result = suggest_lr(lrs, losses)
    assert lrs[20] < result["valley"] < lrs[44]  # inside the falling stretch
    assert result["minimum"] == pytest.approx(lrs[44] / 10)


def test_evaluate_cli_reports_on_the_pushed_model(data, trained, tmp_path, capsys):
    from shared.cli import main

    args = ["evaluate", "image-classifier", "--model", trained["repo"], "--data", str(data)]
    assert main([*args, "--out", str(tmp_path), "--workers", "0"]) == 0
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["accuracy"] == pytest.approx(trained["metrics"]["accuracy"])  # same split
    assert set(report["per_class_accuracy"]) == set(COLOURS)
    assert (tmp_path / "confusion_matrix.png").exists() and (tmp_path / "top_losses.png").exists()


def test_freeze_and_discriminative_learning_rates():
    model = timm.create_model("resnet18", num_classes=3)
    freeze(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"fc.weight", "fc.bias", "bn1.weight", "layer4.1.bn2.bias"} <= trainable
    assert "conv1.weight" not in trainable and "layer4.1.conv2.weight" not in trainable
    model.requires_grad_(True)
    groups = param_groups(model, lr=1e-3, lr_mult=100, wd=0.01, frozen=False)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert lr_of[id(model.conv1.weight)] == pytest.approx(1e-5)  # the stem: lr / 100
    assert lr_of[id(model.fc.weight)] == pytest.approx(1e-3)
    assert lr_of[id(model.conv1.weight)] < lr_of[id(model.layer3[0].conv1.weight)] < 1e-3
    assert all(g["weight_decay"] == 0 for g in groups if g["params"][0].ndim == 1)


# --- predictor ------------------------------------------------------------------------------


def test_predictor_batch_tta_threshold(trained, data):
    clf = load(trained["out"])
    paths = [data / c / f"{c}_{i}.png" for c in COLOURS for i in (0, 1)]
    batch = clf.predict_batch(paths, k=2)
    one_by_one = [clf.predict(p, k=2) for p in paths]
    for a, b in zip(batch, one_by_one, strict=True):
        assert list(a.top) == list(b.top) and len(a.top) == 2
        assert np.allclose(list(a.top.values()), list(b.top.values()), atol=1e-5)
    assert [p.label for p in batch] == [c for c in COLOURS for _ in (0, 1)]
    image = clf.open(paths[0])
    assert torch.equal(clf.tta(image)[4], clf.transform(image))  # TTA's centre view: the plain one
    tta = clf.predict(paths[0], tta=True, k=3)
    assert sum(tta.top.values()) == pytest.approx(1.0, abs=1e-4)
    assert tta.label == "blue" and tta.top["blue"] != pytest.approx(one_by_one[0].top["blue"])
    assert clf.predict(paths[0], threshold=1.01).label is None  # "not sure"


def test_gradcam_hooks_the_last_feature_stage(trained, data):
    clf = load(trained["out"])
    image, _ = read_image(data / "red" / "red_3.png")
    x = clf.transform(image)[None]
    _, cams = clf._gradcam(x)

    acts = {}  # the textbook way: a forward hook on the last stage
    hook = clf.model.layer4.register_forward_hook(lambda m, i, o: acts.update(out=o))
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        logits = clf.model(xg)
        acts["out"].retain_grad()
        logits[0, logits.argmax()].backward()
    hook.remove()
    a, g = acts["out"][0], acts["out"].grad[0]
    ref = torch.relu((g.mean((1, 2))[:, None, None] * a).sum(0))
    assert torch.allclose(cams[0], ref / ref.max(), atol=1e-5)

    overlay = clf.predict(image, cam=True).heatmap
    assert overlay.mode == "RGB" and overlay.size == (448, 448)  # the centre crop, enlarged
    # what the model sees of a 66×33 photo: resized to 33 px high (32 / 0.95), centre 32×32
    assert clf.crop_box(66, 33) == pytest.approx((17, 0.5, 49, 32.5))


@pytest.mark.parametrize("arch", ["resnet18", "convnext_tiny"])
def test_course_architectures_export_load_and_explain(arch, tmp_path):
    model = timm.create_model(arch, num_classes=2)
    config = timm.data.resolve_data_config({"input_size": (3, 64, 64)}, model=model)
    export(model, tmp_path, ["cat", "dog"], config)
    clf = load(tmp_path)
    assert clf.labels == ["cat", "dog"] and clf.size == (64, 64)
    photo = draw(COLOURS["green"], np.random.default_rng(2), 96)
    pred = clf.predict(photo, tta=True, cam=True)
    assert set(pred.top) == {"cat", "dog"} and pred.heatmap.mode == "RGB"


def test_loader_errors_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "resnet18"}))
    with pytest.raises(ModelError, match="no model.safetensors"):
        load(tmp_path)


# --- the Space ------------------------------------------------------------------------------


@pytest.fixture
def space(trained, use_model, load_space, launch):
    """The Space serving the pushed model, and a gradio_client on it."""
    from gradio_client import Client

    use_model("pets-classifier", trained["repo"])
    app = load_space("image_classifier")
    return app, Client(launch(app.demo), verbose=False)


def test_space_answers_through_the_registry_and_gradio_client(space, trained):
    from gradio_client import handle_file

    app, client = space
    model = registry.load("pets-classifier")  # loaded from the loopback Hub by the registry
    assert model.labels == ["blue", "green", "red"] and len(model.examples) == 6
    for example in model.examples:
        answer = client.predict(handle_file(str(example)), api_name="/classify")
        expected = model.predict(example)
        assert answer["label"] == expected.label
        assert {c["label"]: c["confidence"] for c in answer["confidences"]} == pytest.approx(
            expected.top
        )

    answer, heatmap = client.predict(
        handle_file(str(model.examples[0])), True, 0.5, True, api_name="/predict"
    )
    best = answer["confidences"][0]
    assert answer["label"] == best["label"] in model.labels and not answer["not_sure"]
    assert best["confidence"] >= 0.5 and Path(heatmap).stat().st_size > 0
    with Image.open(heatmap) as im, Image.open(model.examples[0]) as photo:
        assert abs(im.width / im.height - photo.width / photo.height) < 0.02  # the whole photo
    answer, heatmap = client.predict(
        handle_file(str(model.examples[0])), False, 1.0, False, api_name="/predict"
    )
    assert answer["label"] is None and answer["not_sure"] and heatmap is None

    shown = app.examples()  # copied where gradio may serve them from, captioned
    assert [Path(f).name for f, _ in shown] == [p.name for p in model.examples]
    assert all(caption[:1].isupper() and "_" not in caption for _, caption in shown)


def test_space_refuses_bad_input_clearly_and_keeps_serving(space, bad):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    _, client = space
    for name, problem in EXPECTED.items():
        if problem is None:
            answer, _ = client.predict(
                handle_file(str(bad[name])), False, 0.0, True, api_name="/predict"
            )
            assert answer["label"] in COLOURS, name
        else:
            with pytest.raises(AppError, match=re.escape(problem)):
                client.predict(handle_file(str(bad[name])), api_name="/classify")
    answer = client.predict(handle_file(str(bad["rgba.png"])), api_name="/classify")
    assert answer["label"] in COLOURS  # still serving


def test_batched_classify_isolates_a_bad_image(space, data, bad):
    from gradio_client import handle_file

    _, client = space
    files = [data / "red" / "red_5.png", bad["text.jpg"], data / "blue" / "blue_5.png"] * 2
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        try:
            answers[i] = client.predict(handle_file(str(files[i])), api_name="/classify")["label"]
        except Exception as e:  # alone in its batch: a gr.Error
            answers[i] = f"Error: {e}"

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(files))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, f in enumerate(files):
        if f.name == "text.jpg":
            assert answers[i].startswith("Error:") and "is not an image" in answers[i]
        else:
            assert answers[i] == f.parent.name


# --- real data (Oxford pets sample), when present ---------------------------------------------


@pytest.mark.data
def test_pets_labels_from_file_names_and_csv(data_dir):
    root = data_dir("images/oxford-pets-sample")
    breeds = find_items(root / "images", labels="filename")
    assert Counter(breeds.labels) == {"Abyssinian": 200, "Bengal": 200, "american_bulldog": 200}
    species = find_items(root / "images", labels="species")
    assert Counter(species.labels) == {"cat": 400, "dog": 200}
    rows = find_items(root / "labels.csv", label_col="breed", split_col="split")
    assert len(rows.paths) == 600 and sum(rows.valid) == 298  # the "test" rows


@pytest.mark.data
def test_pets_training_end_to_end(data_dir, tmp_path):
    root = data_dir("images/oxford-pets-sample")
    cfg = TrainConfig(
        data=root / "images",
        labels="filename",
        out=tmp_path,
        pretrained=False,
        arch="test_resnet",
        epochs=3,
        lr=3e-3,
        size=48,
        bs=32,
        workers=0,
        examples=3,
    )
    metrics = train(cfg)
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # the loss falls
    assert metrics["n_train"] + metrics["n_valid"] == 600 and metrics["accuracy"] > 0.34
    assert load(tmp_path).labels == ["Abyssinian", "Bengal", "american_bulldog"]


# --- in the browser -------------------------------------------------------------------------


@pytest.mark.browser
def test_browser_classify_reword_and_examples(page, suite_url, use_model, trained, data, shot):
    from shared import suite

    use_model("pets-classifier", str(trained["out"]))
    page.goto(suite_url)
    page.get_by_role("tab", name=suite.label("image_classifier")).click()
    page.locator("#pets-model").get_by_text("Model:").wait_for()  # its story, in the suite too
    photo = str(data / "green" / "green_7.png")
    page.locator("#pets-photo input[type=file]").first.set_input_files(photo)
    answer = page.locator("#pets-answer")
    answer.get_by_text("Green").wait_for()  # written for people: "Green", not "green"
    page.locator("#pets-labels").get_by_text("Blue").wait_for()  # the runners-up, with bars
    page.locator("#pets-cam img").wait_for()
    shot(page, "1280-answer")
    # a threshold typed and Enter: the answer is reworded at once, with no model call
    threshold = page.locator("#pets-threshold input[type=number]")
    threshold.fill("1")
    threshold.press("Enter")
    answer.get_by_text("Not sure").wait_for()
    shot(page, "1280-not-sure")
    # the examples are a visible gallery, loaded with the page: a click classifies one
    example = page.locator("#pets-examples img").first
    example.wait_for()
    assert example.bounding_box()["width"] >= 80  # thumbnails, not clipped specks
    threshold.fill("0.5")
    threshold.press("Enter")
    example.click()  # 01-blue.jpg, from the model folder
    answer.get_by_text("Blue").wait_for()
    shot(page, "1280-example")


@pytest.mark.browser
def test_browser_a_mistake_stays_beside_the_button(page, suite_url, use_model, trained, bad, shot):
    from shared import suite

    use_model("pets-classifier", str(trained["out"]))
    page.goto(suite_url)
    page.get_by_role("tab", name=suite.label("image_classifier")).click()
    page.locator("#pets-photo input[type=file]").first.set_input_files(str(bad["text.jpg"]))
    status = page.locator("#pets-status").get_by_text("is not an image")
    status.wait_for()
    page.wait_for_timeout(10_000)
    assert status.is_visible()  # it stays, under the Classify button
    page.locator("#pets-threshold input[type=number]").click()  # no overlay over the inputs
    page.locator("#pets-classify").click()
    shot(page, "1280-error")


@pytest.mark.browser
def test_browser_phone_layout(phone, load_space, launch, use_model, trained, data, shot):
    use_model("pets-classifier", str(trained["out"]))
    phone.goto(launch(load_space("image_classifier").demo))
    photo = phone.locator("#pets-photo")
    photo.wait_for()
    assert above_the_fold(photo) and above_the_fold(phone.locator("#pets-classify"))
    shot(phone, "390-start")
    photo.locator("input[type=file]").first.set_input_files(str(data / "red" / "red_3.png"))
    phone.locator("#pets-answer").get_by_text("Red").wait_for()
    phone.locator("#pets-examples img").first.wait_for()
    boxes = [img.bounding_box() for img in phone.locator("#pets-examples img").all()]
    assert all(b["x"] >= 0 and b["x"] + b["width"] <= 390 for b in boxes)  # none cut off
    assert {round(b["width"]) for b in boxes} and min(b["width"] for b in boxes) >= 80
    assert no_horizontal_scroll(phone)
    shot(phone, "390-answer")


def test_each_heatmap_is_its_own_file():
    """Two requests for the same photo never share (and rewrite) one heatmap file."""
    from PIL import Image

    from models.image_classifier import pieces

    image = Image.new("RGB", (40, 30), "red")
    first, second = pieces.heatmap_file(image), pieces.heatmap_file(image)
    assert first != second and pieces.heatmap_file(None) is None
    with Image.open(first) as a, Image.open(second) as b:
        assert a.size == b.size == (40, 30)
