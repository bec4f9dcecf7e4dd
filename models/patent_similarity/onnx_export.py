"""The patent scorer's CPU fast path at train time: ONNX export (int8 where it pays) and guard.

`candidates` exports the cross-encoder as a graph from token ids and attention mask (any batch
size, any length) to the score logit, computes once what depends on the weights alone (`fold`),
and stores the Linear layers' and the embedding table's weights as int8 (`quantize`: ONNX
Runtime's dynamic quantization, activations quantized per batch as it runs), which is where a
transformer spends its time on a CPU. `export_checked`, run by `train`, scores validation pairs
with PyTorch and with each graph, batched as the Space batches: a graph passes its guard when
its scores correlate at least 0.995 with PyTorch's and its Pearson against the labels moves by
at most 0.005. The int8 graph ships as model.onnx if it passes, else the fp32 one if it does,
else none (metrics.json records every number). runtime.py serves it.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.patent_similarity.data import pearson
from models.patent_similarity.runtime import ENGINE, EXPORT, Graph
from shared import runtime

MIN_CORRELATION = 0.995  # of the graph's scores with PyTorch's
MAX_PEARSON_SHIFT = 0.005  # change of the Pearson correlation with the labels
GUARD_ROWS = 2000  # validation pairs the guard scores (a seeded sample of them)


class _Logit(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export(model: nn.Module, path: Path) -> Path:
    """Write the fp32 graph: (input_ids, attention_mask) of shape (batch, length) -> logits."""
    model = model.float().cpu().eval()
    # an example with padding, batch and length above 1 (a size of 1 would be fixed in the graph)
    ids = torch.full((3, 12), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[0, 8:] = 0
    dims = {0: torch.export.Dim("batch", min=1, max=4096), 1: torch.export.Dim("length", max=512)}
    with warnings.catch_warnings():  # both inputs share their axes, which is what we mean
        warnings.filterwarnings("ignore", r".*The axis name: .* shares the same shape constraints")
        torch.onnx.export(
            _Logit(model).eval(),
            (ids, mask),
            path,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_shapes={"input_ids": dims, "attention_mask": dims},
            external_data=False,  # one file (deberta-v3-small: 570 MB, under protobuf's 2 GB)
            verbose=False,
        )
    return Path(path)


def fold(src: Path, dst: Path) -> Path:
    """`src` with what depends on the weights alone computed once: DeBERTa projects its 512
    relative-position embeddings through every layer's query and key weights, the same for
    every batch. (ONNX Runtime's basic, portable optimisations, saved; `quantize` then leaves
    these products exact.)"""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    return Path(dst)


def quantize(src: Path, dst: Path) -> Path:
    """`src` with the weights of its matrix products (the Linear layers, where the time goes)
    and of its embedding table (70 % of deberta-v3-small's bytes: 461 MB -> 166 MB) in int8."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src))
    # The exporter's shape annotations trip the quantizer's own shape inference: it redoes them.
    graph.graph.ClearField("value_info")
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.onnx"
        onnx.save(graph, str(plain))
        quantize_dynamic(
            plain,
            dst,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Gather"],
        )
    return Path(dst)


def candidates(model: nn.Module, folder: Path) -> dict[str, Path]:
    """The graphs worth shipping, written into `folder`, the fastest first: int8, fp32."""
    exported = export(model, Path(folder) / "exported.onnx")
    fp32 = fold(exported, Path(folder) / "fp32.onnx")
    exported.unlink()
    return {"int8": quantize(fp32, Path(folder) / "int8.onnx"), "fp32": fp32}


def measure(scores: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
    """A graph's guard numbers: its scores against PyTorch's and against the labels."""
    shift = pearson(scores, labels) - pearson(reference, labels)
    correlation = float(np.corrcoef(scores, reference)[0, 1])
    return {
        "passed": bool(correlation >= MIN_CORRELATION and abs(shift) <= MAX_PEARSON_SHIFT),
        "correlation": round(correlation, 6),
        "pearson_shift": round(float(shift), 6),
        "max_score_diff": round(float(np.abs(scores - reference).max()), 6),
    }


def export_checked(
    model: nn.Module, tokenizer, folder: Path, texts: Sequence[str], labels: Sequence[float]
) -> dict:
    """Export, quantize and guard on validation pairs (model input texts and their labels);
    model.onnx is the int8 graph if it passes, else the fp32 one if it does, else absent."""
    from models.patent_similarity.predict import Predictor

    folder = Path(folder)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.permutation(len(texts))[:GUARD_ROWS])
    texts = [texts[i] for i in pick]
    labels = np.asarray(labels, dtype=np.float32)[pick]
    model = model.float().cpu().eval()
    reference = Predictor(model, tokenizer, {}).score_texts(texts)
    guard = {
        "file": EXPORT,
        "engine": ENGINE,
        "pairs": len(texts),
        "min_correlation": MIN_CORRELATION,
        "max_pearson_shift": MAX_PEARSON_SHIFT,
        "pearson_torch": round(pearson(reference, labels), 6),
    }
    with tempfile.TemporaryDirectory() as tmp:
        shipped = None
        for precision, path in candidates(model, Path(tmp)).items():
            graph = Graph(path, model.config)
            guard[precision] = measure(
                Predictor(graph, tokenizer, {}).score_texts(texts), reference, labels
            )
            if shipped is None and guard[precision]["passed"]:
                shipped = precision
                path.replace(folder / EXPORT)
    guard |= {"passed": shipped is not None, "precision": shipped}
    if shipped is None:  # publish shows it
        guard["reason"] = describe(guard)
    return runtime.record_guard(folder, guard)


def export_folder(folder: Path, data: Path) -> dict:
    """Export and guard a model folder written before the fast path existed (or re-check one),
    on the pairs of `data` whose anchors the model held out (its config records the split)."""
    from models.patent_similarity.data import read_pairs, split_by_anchor
    from models.patent_similarity.predict import load

    predictor = load(Path(folder), runtime="torch")
    split = getattr(predictor.model.config, "split", None) or {}
    df = read_pairs(data)
    _, valid = split_by_anchor(
        df.anchor.tolist(), split.get("valid_frac", 0.25), split.get("seed", 42)
    )
    va = df.iloc[valid]
    texts = [
        predictor.text(a, t, c)[0] for a, t, c in zip(va.anchor, va.target, va.context, strict=True)
    ]
    return export_checked(predictor.model, predictor.tokenizer, folder, texts, va.score.tolist())


def describe(guard: dict) -> str:
    """The guard in one line, for the training log."""
    parts = [
        f"{p}: correlation {guard[p]['correlation']:.4f}, Pearson shift "
        f"{guard[p]['pearson_shift']:+.4f}"
        for p in ("int8", "fp32")
        if p in guard
    ]
    verdict = f"{guard['precision']} shipped" if guard["passed"] else "none passed: PyTorch serves"
    return f"{EXPORT} on {guard['pairs']} validation pairs ({'; '.join(parts)}): {verdict}"
