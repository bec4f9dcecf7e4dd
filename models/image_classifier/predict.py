"""Serving: a fine-tuned timm classifier ready to answer, loaded from its Hub folder.

`load(folder)` reads timm's Hub layout (config.json + model.safetensors, examples/) into a
`Classifier`, which gives each image its top-k labels (`Prediction`), optionally averaged over
ten test-time views, with a Grad-CAM heatmap over the whole photo, and "not sure" under a
confidence threshold. A batch runs in chunks of `CHUNK` images with `shared.cancel.check()`
between them, so that a cancelled request stops within about a second.
On a CPU the forward pass runs the exported graph (model.onnx, runtime.py) when the folder has
one; PyTorch otherwise, and always on a GPU (shared/runtime.py decides).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data import create_transform, resolve_data_config
from timm.data.transforms import str_to_interp_mode
from torch import nn

from models.image_classifier import NAME
from models.image_classifier.images import IMAGE_EXTS, read_image, to_rgb
from models.image_classifier.runtime import ENGINE, EXPORT, Graph
from shared import cancel
from shared import device as devices
from shared import runtime as runtimes
from shared.errors import ModelError, UserError

TOP_K = 5
CHUNK = 8  # images per forward pass: a cancelled request stops between two


@dataclass
class Prediction:
    top: dict[str, float]  # the k most likely labels and their probabilities, best first
    label: str | None  # the answer; None means "not sure" (top probability under the threshold)
    heatmap: Image.Image | None = None  # Grad-CAM of the top class over the whole photo


class Classifier:
    """A fine-tuned timm classifier, ready to answer: preprocessing from its own config."""

    def __init__(
        self,
        model: nn.Module,
        labels: list[str],
        examples: Sequence[Path] = (),
        graph: Graph | None = None,
    ):
        """graph: the CPU fast path, pixels -> (logits, last feature maps) (runtime.Graph);
        None: PyTorch does everything."""
        from torchvision import transforms as T

        self.graph = graph
        self.device = torch.device("cpu") if graph else devices.device()
        self.dtype = devices.dtype(self.device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.runtime = f"{graph.engine} (ONNX)" if graph else "PyTorch"
        self.notice: str | None = None  # why the fast path is not used, when it was wanted
        self.labels = list(labels)
        self.examples = list(examples)
        self.config = resolve_data_config(model=model)
        self.transform = create_transform(**self.config)
        size = self.config["input_size"][1:]
        crop_pct = self.config.get("crop_pct") or 0.875
        self.crop_mode = self.config.get("crop_mode") or "center"
        self.size = tuple(size)
        self.scale_size = tuple(math.floor(x / crop_pct) for x in size)
        interp = str_to_interp_mode(self.config["interpolation"])
        to_tensor = T.Compose([T.ToTensor(), T.Normalize(self.config["mean"], self.config["std"])])
        # test-time augmentation: the four corner crops and the centre crop, and their mirror images
        self.tta = T.Compose(
            [
                T.Resize(min(self.scale_size), interpolation=interp),
                T.TenCrop(self.size),
                T.Lambda(lambda crops: torch.stack([to_tensor(c) for c in crops])),
            ]
        )

    def __call__(self, image: Image.Image | str | Path, **kwargs: Any) -> Prediction:
        return self.predict(image, **kwargs)

    def read(self, path: str | Path) -> tuple[Image.Image, str | None]:
        """`read_image`, decoding JPEGs no bigger than this model needs."""
        return read_image(path, min_side=max(self.scale_size))

    def open(self, image: Image.Image | str | Path) -> Image.Image:
        return to_rgb(image) if isinstance(image, Image.Image) else self.read(image)[0]

    def predict(
        self,
        image: Image.Image | str | Path,
        *,
        k: int = TOP_K,
        tta: bool = False,
        cam: bool = False,
        threshold: float = 0.0,
    ) -> Prediction:
        """Top-k labels of one image; see `predict_batch`."""
        return self.predict_batch([image], k=k, tta=tta, cam=cam, threshold=threshold)[0]

    def predict_batch(
        self,
        images: Sequence[Image.Image | str | Path],
        *,
        k: int = TOP_K,
        tta: bool = False,
        cam: bool = False,
        threshold: float = 0.0,
    ) -> list[Prediction]:
        """Top-k labels with probabilities for each image, in one forward pass.

        tta: average the probabilities of ten views (corner and centre crops, mirrored).
        cam: add a Grad-CAM heatmap of the top class. threshold: under it, `label` is None.
        Raises `shared.cancel.Cancelled` between chunks once its request is cancelled.
        """
        if not images:
            return []
        images = [self.open(im) for im in images]
        probs, heat = None, None
        if tta:
            views = torch.cat([self.tta(im) for im in images])  # (B*10, C, H, W)
            probs = torch.cat([self.probabilities(v) for v in chunks(views)])
            probs = probs.view(len(images), 10, -1).mean(1)
        if cam or not tta:  # the plain view (also the centre one of the ten TTA views)
            x = torch.stack([self.transform(im) for im in images])
            if cam:
                targets = None if probs is None else probs.argmax(1)
                parts = [
                    self._gradcam(v, None if targets is None else targets[i : i + len(v)])
                    for i, v in zip(range(0, len(x), CHUNK), chunks(x), strict=True)
                ]
                plain, heat = torch.cat([p for p, _ in parts]), torch.cat([h for _, h in parts])
            else:
                plain = torch.cat([self.probabilities(v) for v in chunks(x)])
            probs = plain if probs is None else probs
        k = min(k, len(self.labels))
        top_p, top_i = probs.topk(k, dim=1)
        out = []
        for b, (ps, ix) in enumerate(zip(top_p.tolist(), top_i.tolist(), strict=True)):
            top = {self.labels[i]: p for i, p in zip(ix, ps, strict=True)}
            label = self.labels[ix[0]] if ps[0] >= threshold else None
            overlay = None
            if heat is not None:
                overlay = self._overlay(images[b], heat[b])
            out.append(Prediction(top, label, overlay))
        return out

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax of the model's logits for a batch of preprocessed images (on the CPU)."""
        if self.graph:
            return self.graph(x)[0].softmax(1)
        with torch.inference_mode(), self._autocast():
            return self.model(x.to(self.device)).float().softmax(1).cpu()

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature maps, a leaf of the autograd graph when the fast path made them."""
        if self.graph:
            return self.graph(x)[1].requires_grad_(True)
        return self.model.forward_features(x)

    def _autocast(self):
        enabled = self.device.type == "cuda" and self.dtype != torch.float32
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=enabled)

    def _gradcam(
        self, x: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Grad-CAM on the last feature stage (fastbook's CAM chapter): the gradient of the target
        class's logit (default: the top one), averaged per channel, weighs that stage's
        activations. Returns the probabilities and one map per image, scaled to [0, 1].
        On the fast path the graph gives the feature maps and only the head runs in PyTorch."""
        x = x.to(self.device).requires_grad_(True)  # weights stay frozen: no weight gradients
        with torch.enable_grad(), self._autocast():
            feats = self._features(x)
            if feats.ndim == 3:  # vision transformers: tokens -> a grid, without prefix tokens
                tokens = feats[:, getattr(self.model, "num_prefix_tokens", 0) :]
                side = int(math.isqrt(tokens.shape[1]))
                feats_grid = (
                    tokens[:, : side * side].transpose(1, 2).reshape(len(x), -1, side, side)
                )
            elif feats.ndim == 4:
                feats_grid = feats
            else:
                raise UserError("Grad-CAM is not available for this architecture.")
            feats_grid.retain_grad()
            logits = self.model.forward_head(feats)
            top = logits.argmax(1) if targets is None else targets.to(logits.device)
            logits.gather(1, top[:, None]).sum().backward()  # samples are independent: one pass
        grads, acts = feats_grid.grad.float(), feats_grid.detach().float()
        cams = F.relu((grads.mean((2, 3), keepdim=True) * acts).sum(1))
        cams = cams / cams.flatten(1).amax(1).clamp_min(1e-8)[:, None, None]
        return logits.detach().float().softmax(1).cpu(), cams.cpu()

    def crop_box(self, w: int, h: int) -> tuple[float, float, float, float]:
        """The part of a w×h image that the model sees (its centre crop), in pixels."""
        if self.crop_mode == "squash":
            fx, fy = self.size[1] / self.scale_size[1], self.size[0] / self.scale_size[0]
        elif self.crop_mode == "center":
            s = min(w, h) / min(self.scale_size)
            fx, fy = min(1.0, self.size[1] * s / w), min(1.0, self.size[0] * s / h)
        else:
            fx = fy = 1.0
        return (w * (1 - fx) / 2, h * (1 - fy) / 2, w * (1 + fx) / 2, h * (1 + fy) / 2)

    def _overlay(self, image: Image.Image, cam: torch.Tensor, alpha: float = 0.5) -> Image.Image:
        """The whole photo with the heatmap over the part the model saw (its crop box); the
        margins it did not see are dimmed, and the box is outlined."""
        from matplotlib import colormaps
        from PIL import ImageDraw

        scale = 448 / max(image.size)  # big enough to see, small enough to send
        if scale < 1 or max(image.size) < 224:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size)
        left, top, right, bottom = (round(v) for v in self.crop_box(*image.size))
        box = (max(right - left, 1), max(bottom - top, 1))
        heat = F.interpolate(cam[None, None], size=box[::-1], mode="bilinear", align_corners=False)
        colored = colormaps["jet"](heat[0, 0].clamp(0, 1).numpy())[..., :3]
        photo = np.asarray(image, dtype=np.float32) / 255
        mixed = photo * 0.45  # the margins: dimmed
        view = photo[top : top + box[1], left : left + box[0]]
        mixed[top : top + box[1], left : left + box[0]] = (1 - alpha) * view + alpha * colored[
            : view.shape[0], : view.shape[1]
        ]
        out = Image.fromarray((mixed * 255).round().astype(np.uint8))
        if (left, top, right, bottom) != (0, 0, *image.size):
            ImageDraw.Draw(out).rectangle((left, top, right - 1, bottom - 1), outline="white")
        return out


def chunks(x: torch.Tensor) -> Iterator[torch.Tensor]:
    """`x` in chunks of `CHUNK` images, checking for a cancelled request before each."""
    for part in x.split(CHUNK):
        cancel.check()
        yield part


def load(folder: Path, runtime: str | None = None) -> Classifier:
    """The registry's loader: a timm Hub folder (config.json + model.safetensors) -> Classifier.
    runtime: "torch" or "onnx"; default: shared.runtime's choice for this machine."""
    folder = Path(folder)
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).is_file():
            raise ModelError(
                f"{folder} has no {name}: it is not a timm model folder. Make one with "
                "`python -m shared.cli train image-classifier --data DIR`."
            )
    config = json.loads((folder / "config.json").read_text())
    if "architecture" not in config:
        raise ModelError(
            f"{folder / 'config.json'} names no architecture: not a timm model config."
        )
    model = timm.create_model(f"local-dir:{folder}", pretrained=True)
    labels = config.get("label_names") or model.pretrained_cfg.get("label_names")
    if not labels:
        if subset := timm.data.infer_imagenet_subset(model):  # e.g. a stock ImageNet checkpoint
            info = timm.data.ImageNetInfo(subset)
            labels = [info.index_to_description(i) for i in range(model.num_classes)]
        else:
            labels = [f"class {i}" for i in range(model.num_classes)]
    if isinstance(labels, dict):  # timm allows {index: name}
        labels = [labels.get(str(i), labels.get(i, f"class {i}")) for i in range(model.num_classes)]
    if len(labels) != model.num_classes:
        raise ModelError(f"{folder}: {len(labels)} label names for {model.num_classes} classes.")
    examples = sorted(p for p in (folder / "examples").glob("*") if p.suffix.lower() in IMAGE_EXTS)
    choice = runtimes.choose(folder, devices.device().type, name=NAME, engine=ENGINE, want=runtime)
    graph = Graph(folder / EXPORT) if choice.runtime == "onnx" else None
    clf = Classifier(model, labels, examples, graph)
    clf.notice = choice.notice
    if graph:  # the first request should not pay for the engine's first-run set-up
        clf.probabilities(torch.zeros(1, 3, *clf.size))
    return clf
