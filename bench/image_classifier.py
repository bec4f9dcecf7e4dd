"""Image classifier on CPU: the Space's prediction cost against a bare timm forward.

Usage: python bench/image_classifier.py [--reps 20] [--threads N] [--archs resnet18 convnext_tiny]

In one run, with random weights at 224 px (37 classes, like the pets model):
- p50/p90 latency of the Space's `predict` (file -> checks -> decode -> preprocess -> forward ->
  top-k) against a bare `model(x)` on the same preprocessed tensor; goal: overhead ratio <= 1.25;
- throughput of the batched `classify` endpoint function, 16 images per call against 1;
- cost of test-time augmentation and of Grad-CAM against plain prediction;
- training throughput of resnet18 at 128 px with the real training loop (`train`).
The photo is a 500×375 JPEG (the Oxford pets size): a real one from $DEMO_DATA when present.
Measurements of the two sides of a ratio are interleaved, so that load from other processes
on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from models.image_classifier import NAME  # noqa: E402
from models.image_classifier.config import TrainConfig  # noqa: E402
from models.image_classifier.train import train  # noqa: E402
from shared import registry  # noqa: E402
from shared.suite import load_space  # noqa: E402
from tests.factories import tiny_timm  # noqa: E402

DATA = Path(os.environ.get("DEMO_DATA", ROOT.parent / "shared" / "data"))
PETS = DATA / "images" / "oxford-pets-sample" / "images"


def photo(folder: Path) -> Path:
    """A 500×375 JPEG: a real pet photo when the data is here, else a smooth synthetic scene."""
    real = sorted(PETS.glob("*.jpg"))[:1] if PETS.is_dir() else []
    image = Image.open(real[0]).convert("RGB").resize((500, 375)) if real else None
    if image is None:
        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:375, 0:500]
        base = np.stack([x / 500 * 255, y / 375 * 255, np.full_like(x, 128.0)], -1)
        image = Image.fromarray(base.astype(np.uint8))
        d = ImageDraw.Draw(image)
        for _ in range(12):
            x0, y0 = rng.integers(0, 450, 2)
            colour = tuple(int(v) for v in rng.integers(0, 255, 3))
            d.ellipse([x0, y0, x0 + 80, y0 + 60], fill=colour)
        image = image.filter(ImageFilter.GaussianBlur(2))
    path = folder / "photo.jpg"
    image.save(path, quality=90)
    return path


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(a: Callable, b: Callable, reps: int) -> tuple[list[float], list[float]]:
    a(), b()  # warm-up
    ta, tb = [], []
    for _ in range(reps):
        ta.append(timed(a))
        tb.append(timed(b))
    return ta, tb


def pct(times: list[float], q: float) -> float:
    return float(np.percentile(times, q)) * 1000


def bench_arch(arch: str, folder: Path, image: Path, reps: int) -> list[tuple[str, str, str]]:
    tiny_timm(folder / arch, [f"breed {i}" for i in range(37)], arch, size=224)
    os.environ[registry.env_var(NAME)] = str(folder / arch)
    registry.unload(NAME)
    app = load_space("image_classifier")
    clf = registry.load(NAME)
    payload = {"path": str(image), "url": None}
    x = clf.transform(clf.read(image)[0])[None]

    def bare() -> None:
        with torch.inference_mode():
            clf.model(x).softmax(1)

    def predict(tta: bool = False, cam: bool = False) -> Callable[[], object]:
        # the handlers are async (ui.stoppable: the work in a thread, stopped on cancel)
        return lambda: asyncio.run(app.predict(payload, tta, 0.5, cam))

    t_bare, t_pred = interleaved(bare, predict(), reps)
    rows = [
        (arch, "bare timm forward p50 / p90", f"{pct(t_bare, 50):.1f} / {pct(t_bare, 90):.1f} ms"),
        (arch, "Space predict p50 / p90", f"{pct(t_pred, 50):.1f} / {pct(t_pred, 90):.1f} ms"),
        (arch, "overhead ratio (p50, goal <= 1.25)", f"{pct(t_pred, 50) / pct(t_bare, 50):.2f}"),
    ]
    n = max(3, reps // 4)
    med = statistics.median
    t_plain, t_tta = interleaved(predict(), predict(tta=True), n)
    rows.append((arch, "TTA cost (x plain predict)", f"{med(t_tta) / med(t_plain):.1f}"))
    t_plain, t_cam = interleaved(predict(), predict(cam=True), n)
    rows.append((arch, "Grad-CAM cost (x plain predict)", f"{med(t_cam) / med(t_plain):.1f}"))
    one, sixteen = interleaved(
        lambda: asyncio.run(app.classify([payload])),
        lambda: asyncio.run(app.classify([payload] * 16)),
        n,
    )
    per_s_1, per_s_16 = 1 / med(one), 16 / med(sixteen)
    rows.append((arch, "classify batch 1 / batch 16", f"{per_s_1:.1f} / {per_s_16:.1f} images/s"))
    rows.append((arch, "batching gain (batch 16 vs 1)", f"{per_s_16 / per_s_1:.2f}"))
    return rows


def bench_training(folder: Path, image: Path) -> list[tuple[str, str, str]]:
    """resnet18 from scratch at 128 px on 192 copies of the photo, through `train`."""
    data = folder / "train-data"
    base = Image.open(image)
    for c in ("a", "b"):
        (data / c).mkdir(parents=True)
        for i in range(96):
            base.rotate(i * 3 if c == "a" else -i * 3).save(data / c / f"{i}.jpg", quality=90)
    speeds = []
    cfg = TrainConfig(
        data=data,
        out=folder / "train-out",
        arch="resnet18",
        pretrained=False,
        epochs=2,
        size=128,
        bs=32,
        valid_pct=1 / 6,
        examples=0,
    )
    train(cfg, callback=lambda r: speeds.append(r["images_per_s"]))
    return [
        (
            "resnet18",
            f"training at 128 px (bs 32, {cfg.workers} loader workers)",
            f"{speeds[-1]:.1f} images/s (epoch 2; epoch 1: {speeds[0]:.1f})",
        )
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--archs", nargs="+", default=["resnet18", "convnext_tiny"])
    p.add_argument("--no-train", action="store_true", help="skip the training throughput")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ["DEMO_DEVICE"] = "cpu"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = photo(folder)
        for arch in args.archs:
            rows += bench_arch(arch, folder, image, args.reps)
        if not args.no_train:
            rows += bench_training(folder, image)
    kind = "real" if PETS.is_dir() else "synthetic"
    print(
        f"\nImage classifier on CPU ({torch.get_num_threads()} torch threads, {os.cpu_count()} "
        f"cores, {kind} 500×375 JPEG photo, {args.reps} reps)\n"
    )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    header = ("model", "measure", "value")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
