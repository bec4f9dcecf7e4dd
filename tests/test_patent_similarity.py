"""Patent phrase similarity: data, split, baseline, fine-tuning, Hub round trip, Space, bad input.

A tokenizer is trained on phrases this file writes, and the model is a tiny DeBERTa-v2 with
random weights, fine-tuned for one short epoch: seconds on a CPU.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.patent_similarity import data, predict
from models.patent_similarity.config import TrainConfig
from models.patent_similarity.csv_scoring import CHUNK_ROWS, SAMPLE
from models.patent_similarity.train import train
from shared import limits
from shared.errors import ModelError, UserError
from tests.factories import TITLES, WORDS, deberta_base, synthetic_pairs

NAME = "patent-similarity"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """train.csv, cpc_titles.csv and a base folder (config + tokenizer, no weights)."""
    root = tmp_path_factory.mktemp("patent")
    df = synthetic_pairs()
    df.to_csv(root / "train.csv", index=False)
    pd.DataFrame(
        {
            "code": list(TITLES),
            "level": ["section", "class", "subclass", "class", "class", "class"],
            "title": list(TITLES.values()),
        }
    ).to_csv(root / "cpc_titles.csv", index=False)
    texts = [
        data.TEMPLATE.format(context=c, target=t, anchor=a)
        for a, t, c in zip(df.anchor, df.target, df.context, strict=True)
    ] + [t.lower() for t in TITLES.values()]
    base = deberta_base(root / "base", texts)
    return {"root": root, "data": root / "train.csv", "cpc": root / "cpc_titles.csv", "base": base}


@pytest.fixture(scope="module")
def trained(files) -> dict:
    """One short epoch of fine-tuning through the real Trainer, written in Hub layout."""
    out = files["root"] / "model"
    metrics, log = train(
        TrainConfig(
            data=files["data"],
            cpc=files["cpc"],
            out=out,
            base=str(files["base"]),
            epochs=1,
            lr=3e-3,
            batch_size=8,
            use_cpc_titles=True,
            seed=0,
        )
    )
    return {"out": out, "metrics": metrics, "log": log}


@pytest.fixture(scope="module")
def predictor(trained) -> predict.Predictor:
    return predict.load(trained["out"])


# --- data, split, metric, baseline -----------------------------------------------------------


def test_pearson_matches_numpy():
    rng = np.random.default_rng(1)
    x = rng.random(500)
    y = 0.3 * x + rng.random(500)
    assert data.pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert data.pearson(x, -x) == pytest.approx(-1.0)
    assert np.isnan(data.pearson(x, np.ones_like(x)))
    running = data.RunningPearson()  # the streaming version, fed in uneven chunks
    for lo, hi in [(0, 7), (7, 7), (7, 300), (300, 301), (301, 500)]:
        running.add(x[lo:hi], y[lo:hi])
    assert running.value == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)


def test_split_keeps_anchors_on_one_side():
    df = synthetic_pairs(n_anchors=48)
    tr, va = data.split_by_anchor(df.anchor.tolist(), 0.25, seed=3)
    assert len(tr) + len(va) == len(df) and not set(tr) & set(va)
    assert not set(df.anchor[tr]) & set(df.anchor[va])
    assert 0.05 < df.anchor[va].nunique() / df.anchor.nunique() < 0.5
    # Seeded and independent of row order and subset: evaluate finds what train held out.
    again = data.split_by_anchor(df.anchor.tolist(), 0.25, seed=3)[1]
    assert np.array_equal(va, again)
    shuffled = df.sample(frac=0.5, random_state=1).reset_index(drop=True)
    sub_va = data.split_by_anchor(shuffled.anchor.tolist(), 0.25, seed=3)[1]
    assert set(shuffled.anchor[sub_va]) == set(df.anchor[va]) & set(shuffled.anchor)
    other = data.split_by_anchor(df.anchor.tolist(), 0.25, seed=4)[1]
    assert set(df.anchor[other]) != set(df.anchor[va])
    with pytest.raises(UserError, match="too few"):
        data.split_by_anchor(["only one"] * 5)


def test_baseline_sees_overlap():
    df = synthetic_pairs()
    tr, va = data.split_by_anchor(df.anchor.tolist(), 0.25, seed=0)
    r = data.baseline_pearson(df.iloc[tr], df.iloc[va])
    assert 0.2 < r <= 1  # word overlap drives the synthetic scores


def test_meaning_grid():
    assert data.meaning(0.97) == (1.0, "very close match")
    assert data.meaning(0.7) == (0.75, "close synonym")
    assert data.meaning(0.5) == (0.5, "synonym with different breadth")
    assert data.meaning(0.2) == (0.25, "somewhat related")
    assert data.meaning(0.05) == (0.0, "unrelated")


def test_read_pairs_rejects_bad_files(tmp_path):
    (tmp_path / "a.csv").write_text("anchor,target\nx,y\n")
    with pytest.raises(UserError, match="context, score"):
        data.read_pairs(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("anchor,target,context,score\nx,y,A47,2\n")
    with pytest.raises(UserError, match="between 0 and 1"):
        data.read_pairs(tmp_path / "b.csv")


# --- fine-tuning ----------------------------------------------------------------------------


def test_training_lowers_the_loss_and_writes_a_hub_folder(trained):
    losses = [h["loss"] for h in trained["log"] if "loss" in h]
    assert len(losses) >= 6
    third = len(losses) // 3
    assert np.mean(losses[-third:]) < 0.8 * np.mean(losses[:third])
    m, out = trained["metrics"], trained["out"]
    assert not np.isnan(m["pearson"]) and -1 <= m["pearson"] <= 1
    assert m["baseline_pearson"] > 0
    assert m["train_rows"] + m["valid_rows"] == len(synthetic_pairs())
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "cpc_titles.json"} <= names
    assert {"metrics.json", "README.md", "training.png"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    assert json.loads((out / "metrics.json").read_text()) == m
    card = (out / "README.md").read_text()
    assert "model-index" in card and "pearson" in card.lower()
    assert "grouped by anchor" in card and f"{m['pearson']:.4f}" in card
    config = json.loads((out / "config.json").read_text())
    assert config["use_cpc_titles"] is True and config["id2label"] == {"0": "similarity"}
    assert config["split"] == {"by": "anchor", "valid_frac": 0.25, "seed": 0}


def test_cli_trains_pushes_and_evaluates(files, tmp_path, capsys, repo_id):
    from shared import cli, registry

    out = tmp_path / "cli-model"
    args = (
        f"--epochs 1 --batch-size 32 --lr 1e-3 --max-rows 300 --out {out} --push-to-hub {repo_id}"
    )
    inputs = ["--data", str(files["data"]), "--cpc", str(files["cpc"])]
    inputs += ["--base", str(files["base"])]
    assert cli.main(["train", NAME, *inputs, *args.split()]) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_rows"] + metrics["valid_rows"] == 300
    assert f'repo = "{repo_id}"' in (out / "README.md").read_text()
    assert f"pushed {out} to {repo_id}@" in capsys.readouterr().out
    # Evaluate the pushed model: the same held-out anchors, so the same rows and Pearson.
    argv = ["evaluate", NAME, "--data", str(files["data"]), "--model", repo_id, "--max-rows", "300"]
    assert cli.main(argv) == 0
    assert registry.env_var(NAME) not in os.environ  # --model is resolved, not set for the registry
    printed = capsys.readouterr().out
    result = json.loads(printed[printed.index("{") :])
    assert result["rows"] == metrics["valid_rows"]
    assert result["pearson"] == pytest.approx(metrics["pearson"], abs=2e-3)
    assert result["baseline_pearson"] == pytest.approx(metrics["baseline_pearson"], abs=1e-4)
    assert cli.main(["train", NAME, "--data", str(tmp_path / "nope.csv"), *inputs[2:]]) == 1
    assert "not found" in capsys.readouterr().err


# --- Hub round trip and the registry ---------------------------------------------------------


def test_push_then_from_pretrained_gives_identical_scores(trained, predictor, repo_id, use_model):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from shared import hub, registry

    hub.push(trained["out"], repo_id)
    model = AutoModelForSequenceClassification.from_pretrained(repo_id).eval()
    tokenizer = AutoTokenizer.from_pretrained(repo_id)
    pairs = [
        ("upper valve", "upper valves", "F16"),
        ("thin coil", "spring blade", "A47"),
        ("main lens", "mirror", "H04"),
    ]
    texts = [predictor.text(*p)[0] for p in pairs]
    with torch.no_grad():
        direct = [model(**tokenizer(t, return_tensors="pt")).logits.item() for t in texts]
    use_model(NAME, repo_id)
    loaded = registry.load(NAME)
    assert isinstance(loaded, predict.Predictor) and loaded.use_titles
    np.testing.assert_allclose(loaded.score_texts(texts), np.clip(direct, 0, 1), atol=1e-5)
    np.testing.assert_allclose(loaded.score_texts(texts), predictor.score_texts(texts), atol=1e-6)


def test_loader_names_missing_files(trained, tmp_path):
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (tmp_path / name).unlink(missing_ok=True)
    with pytest.raises(ModelError, match="model.safetensors"):
        predict.load(tmp_path)


# --- the predictor ---------------------------------------------------------------------------


def test_score_rank_and_batches_agree(predictor):
    one = predictor.score("upper valve", "upper valves", "F16")
    assert 0 <= one.score <= 1 and one.meaning == data.GRID[one.grid] and not one.notices
    targets = ["upper valves", "spring blade", "", "upper valves", "thin mirror"]
    ranked = predictor.rank("upper valve", "\n".join(targets), "F16 — ENGINEERING ELEMENTS")
    assert [r.target for r in sorted(ranked, key=lambda r: r.target)] == sorted(
        {"upper valves", "spring blade", "thin mirror"}
    )
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert next(r.score for r in ranked if r.target == "upper valves") == pytest.approx(
        one.score, abs=1e-5
    )
    # Batched, length-sorted scoring equals scoring one at a time.
    texts = [
        predictor.text(f"main {w}", f"{w} {v}", "B32")[0]
        for w in WORDS[:12]
        for v in ("x", "rigid cable with a long name")
    ]
    batched = predictor.score_texts(texts, batch_size=5)
    single = np.array([predictor.score_texts([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_context_codes(predictor):
    assert ("A47 — FURNITURE; DOMESTIC ARTICLES OR APPLIANCES", "A47") in predictor.choices()
    assert all(code != "A" for _, code in predictor.choices())  # sections are too broad
    sub = predictor.score("upper valve", "upper valves", "A47C")
    assert sub.context == "A47" and "class A47" in sub.notices[0]
    unknown = predictor.score("upper valve", "upper valves", "z99")
    assert unknown.context == "Z99" and "Unknown CPC code 'Z99'" in unknown.notices[0]
    text, _, _ = predictor.text("a", "b", "H04")
    assert text == "TEXT1: electric communication technique; TEXT2: b; ANC1: a"


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "anchor, target, context, message",
    [
        ("", "valve", "F16", "anchor is empty"),
        ("valve", " \n\t ", "F16", "target is empty"),
        ("valve", "pump", "  ", "Choose a CPC context"),
    ],
)
def test_empty_input_is_refused(predictor, anchor, target, context, message):
    with pytest.raises(UserError, match=message):
        predictor.score(anchor, target, context)
    with pytest.raises(UserError, match=message if target.strip() else "at least one target"):
        predictor.rank(anchor, [target], context)


def test_long_phrase_is_truncated_with_a_notice(predictor):
    long = "valve " * 2000 + "end"  # 12,003 characters
    r = predictor.score("upper valve", long, "F16")
    assert 0 <= r.score <= 1 and "12,003 characters" in r.notices[0]
    assert len(r.target) <= 200
    assert r.score == pytest.approx(
        predictor.score("upper valve", long[:200], "F16").score, abs=1e-6
    )


def test_too_many_targets(predictor):
    with pytest.raises(UserError, match="too many"):
        predictor.rank("valve", [f"t{i}" for i in range(limits.TARGETS.value + 1)], "F16")


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_csv_scoring_with_empty_rows_and_notes(predictor, tmp_path):
    src = write(
        tmp_path / "in.csv",
        (
            "id,anchor,target,context,score\n"
            "1,upper valve,upper valves,F16,1\n"
            "2,,pump,F16,0\n"
            "\n"
            "3,thin coil,spring blade,Z99,0.25\n"
            "4,main lens,   ,H04,0\n"
            f"5,main lens,{'lens ' * 100},H04,0.5\n"
            "6,rigid frame,flexible frame,B32,0.5\n"
        ),
    )
    calls = []
    report = predictor.score_csv(
        src, tmp_path / "out.csv", progress=lambda d, t: calls.append((d, t))
    )
    out = pd.read_csv(report.path, keep_default_na=False)
    assert list(out.columns) == [
        "id",
        "anchor",
        "target",
        "context",
        "score",
        "prediction",
        "meaning",
        "note",
    ]
    assert list(out.id) == [1, 2, 3, 4, 5, 6]  # blank lines dropped, every row kept in order
    assert report.rows == 6 and report.scored == 4 and report.n_skipped == 2
    assert out.prediction[1] == "" and "anchor is empty" in out.note[1]
    assert "target is empty" in out.note[3]
    assert "Unknown CPC code" in out.note[2] and report.unknown_codes == {"Z99": 1}
    assert report.truncated == 1 and "characters" in out.note[4]
    assert out.meaning[0] in data.GRID.values()
    scored = out[out.prediction != ""]
    texts = [
        predictor.text(a, t, c)[0] for a, t, c in scored[["anchor", "target", "context"]].values
    ]
    np.testing.assert_allclose(
        scored.prediction.astype(float), predictor.score_texts(texts), atol=1e-4
    )
    assert report.labelled == 4 and report.pearson is None  # 4 rows: no Pearson (from 10)
    assert calls[0][0] == 0 and calls[-1][0] == 6


@pytest.mark.parametrize(
    "content, message",
    [
        ("anchor,target\nvalve,pump\n", "lacks the column\\(s\\) context"),
        ("id;phrase\n1;x\n", "lacks the column\\(s\\) anchor, target, context"),
        ("anchor,target,context\n", "no rows"),
        ("anchor,target,context\n,,\n ,x,\n", "None of the 2 rows"),
        ("", "empty"),
        (
            b"anchor,target,context\nvalve,pump,F16\n" + "caf\xe9,pump,F16\n".encode("latin-1"),
            "not UTF-8 text: line 3",
        ),
        (b"PK\x03\x04\x00\x00binary", "binary"),
    ],
    ids=[
        "missing-context",
        "no-columns",
        "header-only",
        "all-empty",
        "empty-file",
        "latin-1",
        "binary",
    ],
)
def test_bad_csv_gives_clear_messages(predictor, tmp_path, content, message):
    with pytest.raises(UserError, match=message):
        predictor.score_csv(write(tmp_path / "bad.csv", content), tmp_path / "out.csv")


def test_csv_ragged_rows_formulas_and_bad_scores_are_reported(predictor, tmp_path):
    good = [("upper valve", "upper valves", "F16", s) for s in ("1", "0.75", "0.5", "0.25", "0")]
    good += [("thin coil", "spring blade", "A47", s) for s in ("0", "0.25", "0.5", "0.75", "1")]
    lines = ["anchor,target,context,score"] + [",".join(r) for r in good]
    lines += [
        "main lens,main lenses,H04,1,extra",  # line 12: one field too many
        "main lens,main lenses",  # line 13: two too few
        "=cmd|' /C calc'!A0,+SUM(1;2),H04,0.5",  # line 14: formulas, scored
        "@SUM(A1),\tpad,-H04,-0.5",  # line 15: a score below 0
        "rigid frame,flexible frame,B32,5",  # line 16: above 1
        "rigid frame,flexible frame,B32,abc",  # line 17: not a number
        "rigid frame,flexible frame,B32,nan",  # line 18: not a number either
    ]
    src = write(tmp_path / "in.csv", "\n".join(lines) + "\n")
    report = predictor.score_csv(src, tmp_path / "out.csv")
    out = pd.read_csv(report.path, keep_default_na=False, dtype=str)
    assert report.rows == 17 and report.scored == 15 and report.n_skipped == 2
    assert report.skipped == [
        (12, "5 fields where the header has 4"),
        (13, "2 fields where the header has 4"),
    ]
    assert out.prediction[10] == "" and "5 fields where the header has 4" in out.note[10]
    assert list(out.iloc[10, :4]) == ["main lens", "main lenses", "H04", "1"]  # not shifted
    # Formulas as text (a leading '), plain numbers untouched, even negative ones.
    assert list(out.iloc[12, :3]) == ["'=cmd|' /C calc'!A0", "'+SUM(1;2)", "H04"]
    assert list(out.iloc[13, :4]) == ["'@SUM(A1)", "'\tpad", "'-H04", "-0.5"]
    assert report.neutralised == 5
    # Scores outside 0-1 or not numbers: reported by line, left out of the Pearson.
    assert [line for line, _ in report.bad_labels] == [15, 16, 17, 18]
    assert "outside 0–1" in report.bad_labels[0][1] and "not a number" in report.bad_labels[2][1]
    assert "left out of the Pearson" in out.note[15]
    assert report.labelled == 11  # the ten good rows and line 14
    kept = out.iloc[list(range(10)) + [12]]
    expected = data.pearson(kept.score.astype(float), kept.prediction.astype(float))
    assert report.pearson == pytest.approx(expected, abs=1e-3)
    assert len(report.sample) == 11


def test_pearson_needs_ten_labelled_rows(predictor, tmp_path):
    rows = "".join(f"upper valve,upper valves,F16,{i % 2}\n" for i in range(9))
    src = write(tmp_path / "nine.csv", "anchor,target,context,score\n" + rows)
    report = predictor.score_csv(src, tmp_path / "out.csv")
    assert report.labelled == 9 and report.pearson is None
    src = write(tmp_path / "ten.csv", "anchor,target,context,score\n" + rows + "pump,sofa,A47,0\n")
    report = predictor.score_csv(src, tmp_path / "out.csv")
    assert report.labelled == 10 and report.pearson is not None


def test_text_past_the_models_positions_is_cut_with_a_notice(trained, tmp_path):
    import shutil

    folder = shutil.copytree(trained["out"], tmp_path / "model")
    tok = json.loads((folder / "tokenizer_config.json").read_text())
    tok["model_max_length"] = 10**30  # a tokenizer saved without a limit claims this
    (folder / "tokenizer_config.json").write_text(json.dumps(tok))
    p = predict.load(folder)
    positions = json.loads((folder / "config.json").read_text())["max_position_embeddings"]
    assert p.max_length == min(positions, 512)
    long = " ".join(f"w{i}" for i in range(100))  # 290 characters, hundreds of tokens
    r = p.score(long, long, "F16")
    assert 0 <= r.score <= 1 and any(f"{p.max_length} tokens" in n for n in r.notices)
    ranked = p.rank(long, [long, "valve"], "F16")
    assert any(f"{p.max_length} tokens" in n for n in ranked[0].notices + ranked[1].notices)


def test_semicolon_and_bom_csv(predictor, tmp_path):
    src = write(
        tmp_path / "semi.csv", "\ufeffAnchor;Target; Context\nupper valve;upper valves;F16\n"
    )
    report = predictor.score_csv(src, tmp_path / "out.csv")
    assert report.scored == 1 and report.pearson is None
    out = pd.read_csv(report.path)
    assert list(out.columns) == ["Anchor", "Target", " Context", "prediction", "meaning", "note"]


def test_100k_rows_stream_in_bounded_memory(predictor, tmp_path):
    df = synthetic_pairs(n_anchors=48)
    big = df.sample(n=100_000, replace=True, random_state=0)
    src = tmp_path / "big.csv"
    big.to_csv(src, index=False)
    sizes, calls = [], []
    score_ids = predictor.score_ids

    def spy(ids, batch_size=None):
        sizes.append(len(ids))
        return score_ids(ids, batch_size)

    predictor.score_ids = spy
    before, predictor.batch_size = predictor.batch_size, 1024  # a tiny model: fewer, larger
    # batches keep this test short
    try:
        tracemalloc.start()
        report = predictor.score_csv(
            src, tmp_path / "big-out.csv", progress=lambda d, t: calls.append(d)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        del predictor.score_ids
        predictor.batch_size = before
    assert report.rows == report.scored == 100_000
    assert max(sizes) <= CHUNK_ROWS and len(sizes) >= 100_000 // CHUNK_ROWS
    assert len(calls) > 20 and calls[-1] == 100_000 and calls == sorted(calls)
    assert peak < 40 * 2**20, f"peak Python memory {peak / 2**20:.0f} MiB"
    assert len(report.sample) <= 2 * SAMPLE and 0 < report.labelled == 100_000
    with open(tmp_path / "big-out.csv") as f:
        assert sum(1 for _ in f) == 100_001


# --- the Space, through gradio_client ------------------------------------------------------


@pytest.fixture
def space_url(trained, repo_id, use_model, load_space, launch) -> str:
    from shared import hub

    hub.push(trained["out"], repo_id)
    use_model(NAME, repo_id)
    return launch(load_space("patent_similarity").demo)


def test_space_api_endpoints(space_url, predictor, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(space_url, verbose=False)
    score, label, notes = client.predict("upper valve", "upper valves", "F16", api_name="/score")
    assert score == pytest.approx(
        predictor.score("upper valve", "upper valves", "F16").score, abs=1e-3
    )
    assert label.split(" · ")[1] in data.GRID.values() and notes == ""
    table, _ = client.predict(
        "upper valve", "upper valves\nspring blade\nthin mirror", "F16", api_name="/rank"
    )
    assert [row[1] for row in table["data"]][0] in {"upper valves", "spring blade", "thin mirror"}
    assert [row[2] for row in table["data"]] == sorted(
        (row[2] for row in table["data"]), reverse=True
    )
    src = write(
        tmp_path / "pairs.csv",
        "anchor,target,context,score\nupper valve,upper valves,F16,1\n"
        "thin coil,spring blade,A47,0\nmain lens,main lenses,H04,1\n",
    )
    path, summary, _ = client.predict(handle_file(str(src)), api_name="/score_csv")
    out = pd.read_csv(path)
    assert len(out) == 3 and out.prediction.between(0, 1).all()
    assert "Pearson" in summary
    with pytest.raises(Exception, match="anchor is empty"):
        client.predict("  ", "pump", "F16", api_name="/score")
    bad = write(tmp_path / "latin.csv", "anchor,target,context\ncaf\xe9,x,F16\n".encode("latin-1"))
    with pytest.raises(Exception, match="not UTF-8"):
        client.predict(handle_file(str(bad)), api_name="/score_csv")
    # The server keeps serving after errors.
    again = client.predict("upper valve", "upper valves", "F16", api_name="/score")
    assert again[0] == pytest.approx(score)


def test_space_shows_missing_model_clearly(use_model, load_space, launch):
    from gradio_client import Client

    use_model(NAME, "tests/no-such-model")
    client = Client(launch(load_space("patent_similarity").demo), verbose=False)
    with pytest.raises(Exception, match="not found"):
        client.predict("valve", "pump", "F16", api_name="/score")


# --- the real data -------------------------------------------------------------------------


@pytest.mark.data
def test_real_data_split_and_baseline(data_dir):
    folder = data_dir("usppm")
    df = data.read_pairs(folder / "train.csv")
    titles = data.read_cpc(folder / "cpc_titles.csv")
    assert len(df) > 30_000 and set(df.context) <= set(titles)
    tr, va = data.split_by_anchor(df.anchor.tolist(), 0.25, seed=42)
    assert not set(df.anchor[tr]) & set(df.anchor[va])
    assert 0.2 < df.anchor[va].nunique() / df.anchor.nunique() < 0.3
    r = data.baseline_pearson(df.iloc[tr], df.iloc[va])
    print(f"baseline Pearson on held-out anchors: {r:.4f}")
    assert r > 0.1


# --- the browser --------------------------------------------------------------------------


@pytest.fixture
def served(trained, repo_id, use_model):
    from shared import hub

    hub.push(trained["out"], repo_id)
    use_model(NAME, repo_id)
    return predict.load(trained["out"])


def pick_context(page, panel, code: str = "F16") -> None:
    panel.get_by_label("CPC context").click()  # the first focus fills the list from the model
    page.get_by_role("option", name=f"{code} — ").first.click()


def rank_two(page) -> None:
    rank = page.locator("#patent-rank")
    rank.get_by_label("Anchor phrase").fill("upper valve")
    pick_context(page, rank)
    rank.get_by_label("Target phrases, one per line").fill(
        "upper valves\nspring blade\na rather long target phrase that has to wrap"
    )
    rank.get_by_role("button", name="Rank").click()
    rank.locator("#patent-ranking").get_by_text("spring blade").wait_for()


@pytest.mark.browser
def test_browser_score_rank_and_csv_in_the_suite(served, suite_url, page, shot, tmp_path):
    page.goto(suite_url)
    page.get_by_role("tab", name="Patent Phrase Similarity").click()
    panel = page.locator("#patent-score")
    # Nothing stands in the result before anything is scored (no 0, no confidence bar).
    assert not panel.get_by_text("Nearest step").count() and not panel.locator("progress").count()
    # The served model's own card, in the suite too.
    page.locator("#patent-model").get_by_text("measured: pearson").wait_for()
    panel.get_by_label("Anchor phrase").fill("upper valve")
    panel.get_by_label("Target phrase").fill("upper valves")
    pick_context(page, panel)
    panel.get_by_role("button", name="Score").click()
    r = served.score("upper valve", "upper valves", "F16")
    panel.get_by_text(f"Score {r.score:.2f}").wait_for()
    assert panel.get_by_text(f"{r.grid:.2f}, {r.meaning}").count()
    assert "%" not in panel.inner_text()  # a meaning, not a confidence
    shot(page, "1280-score")

    page.get_by_role("tab", name="Rank targets").click()
    rank_two(page)
    shot(page, "1280-rank")

    page.get_by_role("tab", name="Batch (CSV)").click()
    batch = page.locator("#patent-batch")
    pairs = ["upper valve,upper valves,F16,1", "thin coil,spring blade,A47,0"]
    rows = "".join(f"{pairs[i % 2]}\n" for i in range(11))
    src = write(tmp_path / "pairs.csv", "anchor,target,context,score\n" + rows + "x,y\n")
    batch.locator("input[type=file]").set_input_files(str(src))
    batch.get_by_role("button", name="Score file").click()
    batch.get_by_text("Scored 11 of 12 rows").wait_for()
    assert batch.get_by_text("n = 11").count() and batch.get_by_text("line 13").count()
    page.locator("#patent-plot .main-svg").first.wait_for()  # plotly has drawn it
    assert page.locator("#patent-plot").get_by_text("n = 11").count()  # n beside the Pearson
    shot(page, "1280-csv")


@pytest.fixture
def space_page(served, load_space, launch) -> str:
    return launch(load_space("patent_similarity").demo)


@pytest.mark.browser
def test_browser_error_state_keeps_inputs_usable(space_page, page, shot):
    page.goto(space_page)
    panel = page.locator("#patent-score")
    panel.get_by_role("button", name="Score").click()
    panel.get_by_text("Nearest step").wait_for()  # a result on screen
    anchor = panel.get_by_label("Anchor phrase")
    anchor.fill("")
    panel.get_by_role("button", name="Score").click()
    status = panel.locator(".demo-status")
    status.get_by_text("The anchor is empty").wait_for()
    page.wait_for_timeout(10_000)  # after any toast would have faded
    assert status.get_by_text("The anchor is empty").is_visible()
    assert not panel.get_by_text("Nearest step").count()  # the stale result was cleared
    shot(page, "1280-error")
    anchor.click()  # nothing covers the inputs
    anchor.fill("upper valve")
    panel.get_by_role("button", name="Score").click()
    panel.get_by_text("Nearest step").wait_for()
    assert not status.get_by_text("empty").count()

    page.get_by_role("tab", name="Batch (CSV)").click()
    batch = page.locator("#patent-batch")
    batch.get_by_role("button", name="Score file").click()
    batch.locator(".demo-status").get_by_text("Upload a CSV file").wait_for()
    shot(page, "1280-csv-error")


@pytest.mark.browser
def test_browser_phone_layout(space_page, phone, shot):
    from tests.conftest import above_the_fold, no_horizontal_scroll

    phone.goto(space_page)
    panel = phone.locator("#patent-score")
    button = panel.get_by_role("button", name="Score")
    button.wait_for()
    assert above_the_fold(panel.get_by_label("Anchor phrase")) and above_the_fold(button)
    assert no_horizontal_scroll(phone)
    shot(phone, "390-start")
    button.click()
    panel.get_by_text("Nearest step").wait_for()
    assert no_horizontal_scroll(phone)
    shot(phone, "390-score")
    phone.get_by_role("tab", name="Rank targets").click()
    rank_two(phone)
    assert no_horizontal_scroll(phone)
    shot(phone, "390-rank")
    phone.get_by_role("tab", name="Batch (CSV)").click()
    assert above_the_fold(phone.locator("#patent-batch").get_by_role("button", name="Score file"))
    assert no_horizontal_scroll(phone)
    shot(phone, "390-csv")
