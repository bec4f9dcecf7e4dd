"""The trained model as a Hub repo: timm's layout, a few example photos, the model card.

`export` writes config.json and model.safetensors so that `timm.create_model("hf-hub:...")`
loads the folder as is; `write_examples` copies a few validation photos for the Space;
`write_card` writes README.md with the recipe, the training table and the usage.
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import timm
from torch import nn

from models.image_classifier import sources
from models.image_classifier.config import TrainConfig
from models.image_classifier.images import read_image


def export(model: nn.Module, folder: Path, classes: list[str], data_config: dict) -> Path:
    """Write `folder` in timm's Hub layout: config.json (architecture, num_classes, label_names,
    pretrained_cfg with this model's preprocessing) and model.safetensors."""
    timm.models.save_for_hf(
        model,
        folder,
        model_config={"label_names": list(classes)},
        safe_serialization=True,
        data_config=dict(data_config),
    )
    return folder


def write_examples(
    paths: Sequence[Path], labels: Sequence[str], folder: Path, n: int
) -> list[Path]:
    """A few validation images (round robin over classes), downsized, for the Space's examples."""
    by_label = defaultdict(list)
    for p, label in zip(paths, labels, strict=True):
        by_label[label].append(p)
    chosen: list[tuple[Path, str]] = []
    while len(chosen) < n and any(by_label.values()):
        for label in sorted(by_label):
            if by_label[label] and len(chosen) < n:
                chosen.append((by_label[label].pop(0), label))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    written = []
    for i, (p, label) in enumerate(chosen, 1):
        image, _ = read_image(p)
        image.thumbnail((512, 512))
        dest = folder / f"{i:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '_', label)}.jpg"
        image.save(dest, quality=90)
        written.append(dest)
    return written


def base_model(cfg: TrainConfig, model: nn.Module) -> str | None:
    """The Hub repo of the pretrained weights training started from (None: from scratch)."""
    if not cfg.pretrained:
        return None
    return (model.pretrained_cfg.get("hf_hub_id") or f"timm/{cfg.arch}").removeprefix("hf-hub:")


def write_card(cfg: TrainConfig, classes: list[str], metrics: dict, base: str | None) -> None:
    """README.md in `cfg.out`: Hub metadata, the recipe, the training table, the usage."""
    from shared import hub

    source = sources.origin(cfg.data) or {}
    dataset_id = cfg.dataset_id or source.get("dataset")
    terms = sources.TERMS.get(dataset_id or "", {})
    dataset = cfg.dataset_name or terms.get("name") or cfg.data.resolve().name
    if terms:
        at = f" at commit `{source['commit']}`" if source.get("dataset") == dataset_id else ""
        data, license = terms["text"] + f" Trained on `{dataset_id}`{at}.", terms["license"]
    else:  # people's own photos: their terms, which only they know
        data = (
            f"Trained on `{dataset}`, a local image folder: its own terms apply to this model "
            "and to the example photos in `examples/`. Set the licence before sharing them."
        )
        license = "other"
    repo = cfg.push_to_hub or "<your-name>/<this-repo>"
    rows = "\n".join(
        f"| {r['epoch']} | {r['phase']} | {r['train_loss']:.4f} | {r['valid_loss']:.4f} | "
        f"{r['error_rate']:.4f} | {r['seconds']:.0f}s |"
        for r in metrics["history"]
    )
    per_class = "\n".join(f"| {c} | {a:.3f} |" for c, a in metrics["per_class_accuracy"].items())
    frozen = (
        f"{cfg.freeze_epochs} epoch(s) with the body frozen (head and norm layers "
        f"training, one-cycle at lr {cfg.lr:g}), then "
        if cfg.freeze_epochs
        else ""
    )
    accum = f" x {cfg.accum} accumulation steps" if cfg.accum > 1 else ""
    base_line = f"[{base}](https://huggingface.co/{base})" if base else f"`{cfg.arch}` from scratch"
    more = " ..." if len(classes) > 40 else ""
    training = f"""Fine-tuned with the fast.ai `fine_tune` recipe, written with timm, torch and
accelerate: {frozen}{cfg.epochs} epoch(s) with every layer training under a one-cycle schedule
at lr {cfg.lr / 2:g} for the head, with discriminative learning rates down to
{cfg.lr / 2 / cfg.lr_mult:g} for the stem; AdamW (weight decay {cfg.wd:g}), batch size
{cfg.bs}{accum}, {cfg.size}px random-resized crops and flips.

- Base model: {base_line}
- Data: `{dataset}`, {metrics["n_train"]} training and {metrics["n_valid"]} validation images,
  {len(classes)} classes
- Classes: {", ".join(classes[:40])}{more}

| epoch | phase | train loss | valid loss | error rate | time |
|---|---|---|---|---|---|
{rows}

![Training curves](training.png)

### Per-class accuracy (validation)

| class | accuracy |
|---|---|
{per_class}

![Confusion matrix](confusion_matrix.png)

![Top losses](top_losses.png)
"""
    usage = f"""import timm, torch
from PIL import Image

model = timm.create_model("hf-hub:{repo}", pretrained=True).eval()
transform = timm.data.create_transform(**timm.data.resolve_data_config(model=model))
labels = model.pretrained_cfg["label_names"]
with torch.no_grad():
    probs = model(transform(Image.open("photo.jpg").convert("RGB"))[None]).softmax(-1)[0]
print(labels[probs.argmax()], probs.max().item())

# Or serve it with the demo:
#   DEMO_MODEL_PETS_CLASSIFIER={repo} python spaces/image_classifier/app.py"""
    hub.write_card(
        cfg.out,
        title=f"{dataset} classifier ({cfg.arch})",
        summary=(
            f"An image classifier for {len(classes)} classes of `{dataset}`, "
            + (f"fine-tuned from `{base}`" if base else f"a `{cfg.arch}` trained from scratch")
            + f". Validation accuracy {metrics['accuracy']:.1%}."
        ),
        base_model=base,
        datasets=[dataset_id] if dataset_id else (),
        license=license,
        data=data,
        tags=["image-classification", "timm", "fastai-course"],
        library_name="timm",
        pipeline_tag="image-classification",
        metrics={"accuracy": metrics["accuracy"], "error_rate": metrics["error_rate"]},
        task_name="Image Classification",
        dataset_name=dataset,
        training=training,
        usage=usage,
    )
