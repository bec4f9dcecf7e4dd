"""The classifier's CPU fast path at train time: its ONNX export and its accuracy guard.

`export` writes model.onnx beside model.safetensors: the timm model as a graph from preprocessed
pixels (any batch size) to its logits *and* its last feature maps, so that Grad-CAM needs only
the small head in PyTorch (`Classifier._gradcam`). `check` runs the graph on the validation
images against PyTorch's probabilities (the guard: the top-1 class agrees on at least 99.5 % of
them) and records the result in metrics.json; a graph that fails is deleted. runtime.py serves
it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from models.image_classifier.runtime import ENGINE, EXPORT, Graph
from shared import runtime

AGREEMENT = 0.995  # the least share of validation images whose top-1 class must not change


class _Outputs(nn.Module):
    """What the graph computes: pixels -> (logits, last feature maps)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.forward_features(pixels)
        return self.model.forward_head(features), features


def export(model: nn.Module, folder: Path, size: Sequence[int]) -> Path:
    """Write `folder/model.onnx`: the model at `size` (height, width), fp32, any batch size."""
    model = copy.deepcopy(model).float().cpu().eval()
    path = Path(folder) / EXPORT
    pixels = torch.randn(2, 3, *size)  # an example batch of 1 would fix the batch size at 1
    torch.onnx.export(
        _Outputs(model).eval(),
        (pixels,),
        path,
        input_names=["pixels"],
        output_names=["logits", "features"],
        dynamic_shapes={"pixels": {0: torch.export.Dim("batch", min=1, max=4096)}},
        external_data=False,  # one file (a convnext_tiny is 110 MB, far under protobuf's 2 GB)
        verbose=False,
    )
    return path


@torch.no_grad()
def probabilities(graph: Graph, transform, paths: Sequence[Path], bs: int = 32) -> torch.Tensor:
    """Class probabilities (N, C) of image files through the graph, read as training reads them."""
    from models.image_classifier.data import ImageDataset

    dl = torch.utils.data.DataLoader(ImageDataset(paths, [0] * len(paths), transform), bs)
    return torch.cat([graph(x)[0].softmax(1) for x, _ in dl])


def check(
    folder: Path, transform, paths: Sequence[Path], reference: torch.Tensor, *, engine=ENGINE
) -> dict:
    """The accuracy guard of `folder/model.onnx` on validation images, against PyTorch's
    probabilities `reference` (N, C) for the same files; recorded in metrics.json."""
    folder = Path(folder)
    probs = probabilities(Graph(folder / EXPORT, engine=engine), transform, paths)
    reference = reference.float().cpu()
    agreement = float((probs.argmax(1) == reference.argmax(1)).float().mean()) if paths else 0.0
    guard = {
        "passed": bool(paths) and agreement >= AGREEMENT,
        "file": EXPORT,
        "engine": engine,
        "precision": "fp32",
        "images": len(paths),
        "top1_agreement": round(agreement, 5),
        "min_agreement": AGREEMENT,
        "max_prob_diff": float((probs - reference).abs().max()) if paths else None,
    }
    if not guard["passed"]:  # publish shows it
        guard["reason"] = (
            f"top-1 agrees with PyTorch on {agreement:.2%} of {len(paths)} validation images, "
            f"under {AGREEMENT:.1%}"
        )
    return runtime.record_guard(folder, guard)


def describe(guard: dict) -> str:
    """The guard in one line, for the training log."""
    verdict = "shipped" if guard["passed"] else "FAILED: deleted, PyTorch will serve"
    return (
        f"{EXPORT}: top-1 agrees with PyTorch on {guard['top1_agreement']:.2%} of "
        f"{guard['images']} validation images (guard >= {AGREEMENT:.1%}): {verdict}"
    )


def export_checked(
    model: nn.Module, folder: Path, size: Sequence[int], transform, paths, reference
) -> dict:
    """`export` then `check`: what training calls after it writes the safetensors."""
    export(model, folder, size)
    return check(folder, transform, paths, reference)


def export_folder(folder: Path, data: Path, **label_options) -> dict:
    """Export and guard a model folder written before the fast path existed (or re-check one):
    the validation split of `data` made with the seed and share the model was trained with."""
    from models.image_classifier.data import find_items, split, verify_images
    from models.image_classifier.evaluate import predict_items
    from models.image_classifier.predict import load

    folder = Path(folder)
    config = json.loads((folder / "metrics.json").read_text()).get("config", {})
    clf = load(folder, runtime="torch")
    keys = ("labels", "label_re", "path_col", "label_col", "split_col")
    options = {k: config[k] for k in keys if k in config} | label_options
    items = verify_images(find_items(Path(data), **options), progress=False)
    _, valid = split(items, config.get("valid_pct", 0.2), config.get("seed", 42))
    paths = [items.paths[i] for i in valid]
    reference = predict_items(clf.model, clf.transform, paths)
    return export_checked(clf.model, folder, clf.size, clf.transform, paths, reference)
