"""The CPU fast path of the classifier and the patent scorer (issue 15).

The exported graph (model.onnx) is written and guarded at train time, shipped beside the
safetensors, chosen on a CPU (PyTorch on a GPU), overridden by DEMO_RUNTIME, replaced by PyTorch
with a notice when missing; Grad-CAM on the fast path equals PyTorch's; a graph that fails its
accuracy guard is recorded and deleted. The models are tiny and trained on synthetic data here;
the accuracy guards on models trained on the real data run when $DEMO_DATA is present.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models import image_classifier, patent_similarity
from models.image_classifier import onnx_export as classifier_export
from models.image_classifier import predict as classifier
from models.image_classifier.config import TrainConfig
from models.image_classifier.train import train
from models.patent_similarity import data as patent_data
from models.patent_similarity import onnx_export as scorer_export
from models.patent_similarity import predict as scorer
from models.patent_similarity.config import TrainConfig as PatentConfig
from models.patent_similarity.train import train as train_patent
from shared import hub, registry, runtime
from shared.errors import UserError
from tests.factories import (
    COLOURS,
    TITLES,
    colour_photos,
    deberta_base,
    synthetic_pairs,
    tiny_timm,
    usppm_base,
)

ROOT = Path(__file__).resolve().parents[1]
PETS, PATENT = image_classifier.NAME, patent_similarity.NAME
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv(runtime.ENV, raising=False)
    monkeypatch.delenv("DEMO_DEVICE", raising=False)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return colour_photos(tmp_path_factory.mktemp("colours"), per_class=30, side=40, seed=0)


@pytest.fixture(scope="module")
def pets(photos, tmp_path_factory) -> Path:
    """A convnext (its head normalises the pooled features: Grad-CAM's harder case), trained
    and exported by `train`, as a person runs it."""
    out = tmp_path_factory.mktemp("pets")
    cfg = TrainConfig(
        data=photos,
        out=out,
        arch="test_convnext",
        pretrained=False,
        epochs=3,
        lr=3e-3,
        size=32,
        bs=16,
        workers=0,
        examples=2,
    )
    train(cfg)
    return out


@pytest.fixture(scope="module")
def patent(tmp_path_factory) -> Path:
    """A tiny DeBERTa cross-encoder fine-tuned for one epoch on synthetic pairs, exported."""
    root = tmp_path_factory.mktemp("patent")
    df = synthetic_pairs()
    df.to_csv(root / "train.csv", index=False)
    pd.DataFrame({"code": list(TITLES), "title": list(TITLES.values())}).to_csv(
        root / "cpc.csv", index=False
    )
    texts = [
        patent_data.TEMPLATE.format(context=c, target=t, anchor=a)
        for a, t, c in zip(df.anchor, df.target, df.context, strict=True)
    ] + [t.lower() for t in TITLES.values()]
    cfg = PatentConfig(
        data=root / "train.csv",
        cpc=root / "cpc.csv",
        out=root / "model",
        base=str(deberta_base(root / "base", texts)),
        epochs=1,
        lr=3e-3,
        batch_size=8,
        use_cpc_titles=True,
        seed=0,
    )
    train_patent(cfg)
    return cfg.out


def guard(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())["guards"]["onnx"]


def pictures(photos: Path) -> list[Path]:
    return [photos / c / f"{c}_{i}.png" for c in COLOURS for i in range(4)]


# --- the runtime choice ----------------------------------------------------------------------


def test_choice_by_device_override_and_fallback(tmp_path, monkeypatch, caplog):
    (tmp_path / "model.onnx").write_bytes(b"graph")
    assert runtime.choose(tmp_path, "cpu", name="m") == runtime.Choice("onnx")
    assert runtime.choose(tmp_path, "cuda", name="m") == runtime.Choice("torch")  # GPU: PyTorch
    monkeypatch.setenv(runtime.ENV, "torch")
    assert runtime.choose(tmp_path, "cpu", name="m").runtime == "torch"
    monkeypatch.setenv(runtime.ENV, "onnx")
    assert runtime.choose(tmp_path, "cuda", name="m").runtime == "onnx"
    monkeypatch.setenv(runtime.ENV, "tensorrt")
    with pytest.raises(UserError, match="DEMO_RUNTIME='tensorrt'.*torch or onnx"):
        runtime.choose(tmp_path, "cpu", name="m")
    monkeypatch.delenv(runtime.ENV)
    (tmp_path / "model.onnx").unlink()
    with caplog.at_level(logging.WARNING, logger="demos"):
        choice = runtime.choose(tmp_path, "cpu", name="m")
    assert choice.runtime == "torch" and "no model.onnx" in choice.notice
    assert [r.getMessage() for r in caplog.records] == [choice.notice]  # one line, logged


def test_allow_lists_ship_the_graph_except_to_a_gpu(monkeypatch):
    for spec in (image_classifier.SPEC, patent_similarity.SPEC):
        assert "model.onnx" in spec.patterns()
        monkeypatch.setenv("DEMO_DEVICE", "cuda")
        assert "model.onnx" not in spec.patterns()  # PyTorch serves there: no download
        monkeypatch.setenv(runtime.ENV, "onnx")
        assert "model.onnx" in spec.patterns()
        monkeypatch.delenv("DEMO_DEVICE")
        monkeypatch.delenv(runtime.ENV)
    assert "*.onnx" in hub.MODEL_FILES  # and a push uploads it


def test_start_up_imports_no_runtime():
    code = (
        "import json, sys, app\n"
        "heavy = ('onnx', 'onnxruntime', 'openvino', 'onnxscript', 'torch')\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_a_failed_export_loses_no_training_and_leaves_no_graph(tmp_path, caplog):
    def broken() -> dict:
        (tmp_path / "model.onnx").write_bytes(b"half a graph")
        raise RuntimeError("an operator the exporter does not know")

    def missing() -> dict:
        raise ImportError("No module named 'onnxscript'")

    with caplog.at_level(logging.WARNING, logger="demos"):
        assert runtime.exporting(tmp_path, broken, what="m") is None
        assert not (tmp_path / "model.onnx").exists()
        assert "Traceback" in caplog.text and "an operator the exporter" in caplog.text
        assert runtime.exporting(tmp_path, missing, what="m") is None
    assert "onnxscript" in caplog.records[-1].getMessage()
    assert "requirements-dev.txt" in caplog.records[-1].getMessage()


# --- the classifier --------------------------------------------------------------------------


def test_training_exports_a_guarded_graph(pets):
    g = guard(pets)
    assert g["passed"] and g["file"] == "model.onnx" and g["images"] == 18
    assert g["top1_agreement"] >= 0.995 and g["max_prob_diff"] < 1e-4
    assert g["sha256"] == runtime.sha256(pets / "model.onnx")
    assert runtime.guard_problems(pets) == []


def test_the_model_description_names_the_runtime(pets, monkeypatch):
    from shared.ui import card_text

    assert "CPU fast path: model.onnx (fp32" in card_text("pets", None, None, pets)
    monkeypatch.setenv("DEMO_DEVICE", "cuda")  # PyTorch serves on a GPU: nothing to say
    assert "model.onnx" not in card_text("pets", None, None, pets)


def test_classifier_fast_path_on_cpu_override_and_fallback(pets, photos, tmp_path, monkeypatch):
    fast = classifier.load(pets)
    assert fast.graph is not None and "ONNX" in fast.runtime and fast.notice is None
    monkeypatch.setenv(runtime.ENV, "torch")
    slow = classifier.load(pets)
    assert slow.graph is None and slow.runtime == "PyTorch"
    answers = fast.predict_batch(pictures(photos)), slow.predict_batch(pictures(photos))
    for a, b in zip(*answers, strict=True):
        assert list(a.top) == list(b.top) and a.label == b.label
        assert np.allclose(list(a.top.values()), list(b.top.values()), atol=1e-5)
    monkeypatch.delenv(runtime.ENV)
    bare = tmp_path / "no-export"
    tiny_timm(bare, list(COLOURS))  # a folder from before the fast path: safetensors only
    clf = classifier.load(bare)
    assert clf.graph is None and "no model.onnx" in clf.notice
    assert clf.predict(pictures(photos)[0]).label in COLOURS  # it still answers
    assert not (bare / "model.onnx").exists()  # nothing is exported at load


@pytest.mark.parametrize("arch", ["test_convnext", "test_resnet"])
def test_gradcam_on_the_fast_path_equals_pytorch(arch, photos, tmp_path):
    tiny_timm(tmp_path, list(COLOURS), arch, size=64)  # feature maps of 2×2
    slow = classifier.load(tmp_path)
    assert slow.graph is None
    classifier_export.export(slow.model, tmp_path, slow.size)
    fast = classifier.load(tmp_path)
    assert fast.graph is not None
    images = [fast.open(p) for p in pictures(photos)[::3]]
    x = torch.stack([fast.transform(im) for im in images])
    targets = torch.tensor([0, 1, 2, 0])  # given classes (TTA's), not only the top one
    for t in (None, targets):
        p_fast, cam_fast = fast._gradcam(x, t)
        p_slow, cam_slow = slow._gradcam(x, t)
        assert torch.allclose(p_fast, p_slow, atol=1e-5)
        assert torch.allclose(cam_fast, cam_slow, atol=1e-4)
        assert cam_fast.amax() == 1 and cam_fast.shape[1:] == cam_slow.shape[1:]
    a = fast.predict(images[0], cam=True).heatmap
    b = slow.predict(images[0], cam=True).heatmap
    assert a.size == b.size
    assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 2


def test_classifier_guard_failure_is_recorded_and_the_graph_deleted(pets, photos, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "model.onnx", "metrics.json"):
        (folder / name).write_bytes((pets / name).read_bytes())
    clf = classifier.load(folder, runtime="torch")
    paths = pictures(photos)
    x = torch.stack([clf.transform(clf.open(p)) for p in paths])
    right = clf.probabilities(x)
    wrong = right.roll(1, dims=1)  # a reference whose top-1 class differs everywhere
    g = classifier_export.check(folder, clf.transform, paths, wrong)
    assert not g["passed"] and g["top1_agreement"] == 0.0 and g["images"] == len(paths)
    assert (
        g["reason"]
        == f"top-1 agrees with PyTorch on 0.00% of {len(paths)} validation images, under 99.5%"
    )
    assert not (folder / "model.onnx").exists()  # never shipped
    assert guard(folder) == g and "failed its accuracy guard" in runtime.guard_problems(folder)[0]
    assert classifier.load(folder).graph is None  # served with PyTorch
    classifier_export.export(clf.model, folder, clf.size)
    g = classifier_export.check(folder, clf.transform, paths, right)
    assert g["passed"] and g["top1_agreement"] == 1.0 and runtime.guard_problems(folder) == []
    with open(folder / "model.onnx", "ab") as f:  # changed after its guard: publish refuses
        f.write(b"\0")
    assert "not the file its onnx guard measured" in runtime.guard_problems(folder)[0]


def test_a_folder_from_before_the_fast_path_is_exported_with_its_own_split(pets, photos, tmp_path):
    """What `publish` can call for a model trained before this: the guard runs on the very
    validation images the model held out (the split recorded in metrics.json)."""
    for name in ("config.json", "model.safetensors", "metrics.json"):
        (tmp_path / name).write_bytes((pets / name).read_bytes())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    del metrics["guards"]
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    assert classifier.load(tmp_path).graph is None
    g = classifier_export.export_folder(tmp_path, photos)
    assert g["passed"] and g["images"] == guard(pets)["images"] == metrics["n_valid"]
    assert classifier.load(tmp_path).graph is not None and runtime.guard_problems(tmp_path) == []


def test_classifier_hub_round_trip(pets, photos, repo_id, use_model):
    hub.push(pets, repo_id)
    use_model(PETS, repo_id)
    served = registry.load(PETS)
    assert served.graph is not None  # the graph came down with the weights
    assert (registry.fetch(PETS) / "model.onnx").read_bytes() == (pets / "model.onnx").read_bytes()
    local = classifier.load(pets, runtime="torch")
    for p in pictures(photos):
        assert served.predict(p).top == pytest.approx(local.predict(p).top, abs=1e-5)


# --- the patent scorer -----------------------------------------------------------------------


def test_patent_guard_measures_int8_and_fp32(patent):
    g = guard(patent)
    assert g["passed"] and g["pairs"] > 50 and g["precision"] in ("int8", "fp32")
    for precision in ("int8", "fp32"):  # both measured, the shipped one passed
        numbers = g[precision]
        assert set(numbers) == {"passed", "correlation", "pearson_shift", "max_score_diff"}
    assert g[g["precision"]]["passed"] and g["fp32"]["correlation"] > 0.9999
    if g["precision"] == "fp32":  # int8 was tried first and failed its guard
        assert not g["int8"]["passed"]
    assert runtime.guard_problems(patent) == []


def test_patent_fast_path_override_and_fallback(patent, tmp_path, monkeypatch):
    fast = scorer.load(patent)
    assert fast.graph is not None and "ONNX" in fast.runtime
    monkeypatch.setenv(runtime.ENV, "torch")
    slow = scorer.load(patent)
    assert slow.graph is None and slow.runtime == "PyTorch"
    texts = [slow.text(a, t, c)[0] for a, t, c in synthetic_pairs(6, seed=3).values[:, 1:4]]
    atol = 1e-5 if guard(patent)["precision"] == "fp32" else 0.05
    np.testing.assert_allclose(fast.score_texts(texts), slow.score_texts(texts), atol=atol)
    assert fast.rank("upper valve", "upper valves\nthin coil", "F16")[0].target == (
        slow.rank("upper valve", "upper valves\nthin coil", "F16")[0].target
    )
    monkeypatch.delenv(runtime.ENV)
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in patent.iterdir():
        if f.name != "model.onnx" and f.is_file():
            (bare / f.name).write_bytes(f.read_bytes())
    old = scorer.load(bare)
    assert old.graph is None and "no model.onnx" in old.notice
    np.testing.assert_allclose(old.score_texts(texts), slow.score_texts(texts), atol=1e-6)


def test_patent_int8_ships_only_when_it_passes(patent, monkeypatch, tmp_path):
    """The same export with a guard loose enough for int8: int8 ships and scores differently;
    with an impossible guard nothing ships and PyTorch serves."""
    torch_model = scorer.load(patent, runtime="torch")
    texts = [torch_model.text(a, t, c)[0] for a, t, c in synthetic_pairs(20).values[:, 1:4]]
    labels = synthetic_pairs(20).score.tolist()
    for case, (corr, shift) in {"loose": (0.0, 1.0), "impossible": (1.01, 0.0)}.items():
        folder = tmp_path / case
        folder.mkdir()
        for f in patent.iterdir():
            if f.is_file() and f.name != "model.onnx":
                (folder / f.name).write_bytes(f.read_bytes())
        monkeypatch.setattr(scorer_export, "MIN_CORRELATION", corr)
        monkeypatch.setattr(scorer_export, "MAX_PEARSON_SHIFT", shift)
        g = scorer_export.export_checked(
            torch_model.model, torch_model.tokenizer, folder, texts, labels
        )
        assert guard(folder) == g
        if case == "loose":
            assert g["precision"] == "int8" and (folder / "model.onnx").is_file()
            fast = scorer.load(folder)
            diff = np.abs(fast.score_texts(texts) - torch_model.score_texts(texts)).max()
            assert 0 < diff == pytest.approx(g["int8"]["max_score_diff"], abs=1e-5)
        else:
            assert not g["passed"] and g["precision"] is None and "none passed" in g["reason"]
            assert not (folder / "model.onnx").exists()
            assert scorer.load(folder).graph is None
            assert "failed its accuracy guard" in runtime.guard_problems(folder)[0]


def test_patent_folder_from_before_the_fast_path_is_exported(patent, tmp_path):
    for f in patent.iterdir():
        if f.is_file() and f.name not in ("model.onnx", "metrics.json"):
            (tmp_path / f.name).write_bytes(f.read_bytes())
    g = scorer_export.export_folder(tmp_path, patent.parent / "train.csv")
    assert g["passed"] and g["pairs"] == guard(patent)["pairs"]  # the same held-out anchors
    assert g["fp32"] == guard(patent)["fp32"]
    assert scorer.load(tmp_path).graph is not None


def test_patent_hub_round_trip(patent, repo_id, use_model):
    hub.push(patent, repo_id)
    use_model(PATENT, repo_id)
    served = registry.load(PATENT)
    assert served.graph is not None
    local = scorer.load(patent)
    pairs = [("upper valve", "upper valves", "F16"), ("thin coil", "spring blade", "A47")]
    texts = [local.text(*p)[0] for p in pairs]
    np.testing.assert_allclose(served.score_texts(texts), local.score_texts(texts), atol=1e-6)


# --- accuracy guards on models trained on the real data -------------------------------------


@pytest.mark.data
def test_pets_guard_on_a_trained_model(data_dir, tmp_path):
    """resnet18 trained from scratch on the Oxford pets sample: the graph's top-1 agrees with
    PyTorch's on >= 99.5 % of the validation images, as recorded and as served."""
    root = data_dir("images/oxford-pets-sample/images")
    cfg = TrainConfig(
        data=root,
        labels="filename",
        out=tmp_path,
        arch="resnet18",
        pretrained=False,
        epochs=2,
        lr=2e-3,
        size=64,
        bs=32,
        workers=0,
        examples=0,
    )
    train(cfg)
    g = guard(tmp_path)
    assert g["passed"] and g["images"] == 120 and g["top1_agreement"] >= 0.995
    from models.image_classifier.data import find_items, split, verify_images

    items = verify_images(find_items(root, labels="filename"), progress=False)
    paths = [items.paths[i] for i in split(items, cfg.valid_pct, cfg.seed)[1]]
    fast, slow = classifier.load(tmp_path), classifier.load(tmp_path, runtime="torch")
    assert fast.graph is not None
    a = torch.stack([torch.tensor(list(p.top.values())) for p in fast.predict_batch(paths, k=3)])
    b = torch.stack([torch.tensor(list(p.top.values())) for p in slow.predict_batch(paths, k=3)])
    labels = [
        (p.label, q.label)
        for p, q in zip(fast.predict_batch(paths), slow.predict_batch(paths), strict=True)
    ]
    assert np.mean([x == y for x, y in labels]) >= 0.995
    assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.data
def test_patent_guard_on_a_trained_model(data_dir, tmp_path):
    """A small DeBERTa trained from scratch on the real pairs: int8 and fp32 measured against
    PyTorch on held-out anchors; what ships correlates >= 0.995 with PyTorch's scores and moves
    the Pearson by <= 0.005 when measured again through the loader."""
    usppm = data_dir("usppm")
    cfg = PatentConfig(
        data=usppm / "train.csv",
        cpc=usppm / "cpc_titles.csv",
        out=tmp_path / "model",
        base=str(usppm_base(tmp_path / "base", usppm)),
        max_rows=3000,
        epochs=2,
        lr=1e-3,
        batch_size=32,
        seed=0,
    )
    metrics, _ = train_patent(cfg)
    g = metrics["guards"]["onnx"]
    assert metrics["pearson"] > 0 and g["passed"]  # from scratch on 3,000 rows: a little
    assert g["int8"]["correlation"] > 0.9 and g["fp32"]["correlation"] > 0.9999
    df = patent_data.read_pairs(cfg.data).sample(n=cfg.max_rows, random_state=cfg.seed)
    _, valid = patent_data.split_by_anchor(df.anchor.tolist(), cfg.valid_frac, cfg.seed)
    va = df.iloc[valid]
    fast, slow = scorer.load(cfg.out), scorer.load(cfg.out, runtime="torch")
    texts = [
        slow.text(a, t, c)[0] for a, t, c in zip(va.anchor, va.target, va.context, strict=True)
    ]
    a, b = fast.score_texts(texts), slow.score_texts(texts)
    assert np.corrcoef(a, b)[0, 1] >= 0.995
    assert abs(patent_data.pearson(a, va.score) - patent_data.pearson(b, va.score)) <= 0.005
