"""Image classifier family: fine-tune a timm model on your photos, export it, serve it.

The course's first project (lessons 1-2) written with torch, timm and accelerate. This module is
light (no torch): the registry entry `SPEC` and a `load` that imports the predictor on first use.

- images.py: read an image safely (PIL only): for training data and for people's uploads
- config.py: the settings of train, lr-find and evaluate (the CLI's options; torch-free)
- data.py: labelled images from class folders, a CSV or file names; verify; split; Dataset
- train.py: fastai's fine_tune recipe (frozen, then discriminative LRs, one-cycle), `finish`
- checkpoint.py: a checkpoint per epoch (safetensors, no pickle) for --resume
- lr_find.py: the learning-rate range test and its suggestions
- evaluate.py: predictions on files, confusion matrix, top losses, curves; the evaluate command
- export.py: timm's Hub layout, example photos, the model card
- predict.py: `Classifier` (top-k, test-time augmentation, Grad-CAM, "not sure") and `load`
- onnx_export.py: the CPU fast path at train time: model.onnx and its accuracy guard
- runtime.py: the CPU fast path at serve time: model.onnx on OpenVINO
- cli.py: the commands of `demos ... image-classifier`

Building a classifier in the browser (the build_classifier Space), torch-free unless noted:
- its caps: the "Build your own classifier" section of shared/limits.py, each with its reason
- fetch.py: fetching a URL someone else chose: public addresses only, byte cap, time limit
- search.py: a web image search (ddgs), its photos downloaded into a workspace
- workspace.py: a session's own photos (checked, deduplicated), cleaning, its model; expiry
- hub_data.py: photos from a Hub dataset in imagefolder layout
- job.py: the training plan and estimate, one run at a time, live events, Stop
- review.py: after training: confusion matrix, per-class accuracy, top losses (torch)
- share.py: the model card, the push with the visitor's token, their own Space
- cleaner.py: the photo galleries and their selection; the live view of a training run
- pieces.py: gradio pieces: the try-it panel, the answer as data and for people, the caps
  table, the sign-in button
- steps.py: the builder page's steps that need no accelerator (cleaning, estimate, sharing)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.registry import Spec

NAME = "pets-classifier"
FILES = ("config.json", "model.safetensors", "README.md", "examples/*")


def files() -> tuple[str, ...]:
    """The allow-list: timm's layout and examples, plus the exported graph (model.onnx, the CPU
    fast path) unless a GPU will serve (PyTorch does there: no need to download it)."""
    from shared import device, runtime

    if device.likely_gpu() and runtime.wanted() != "onnx":
        return FILES
    return (*FILES, runtime.EXPORT)


def load(folder: Path) -> Any:
    """The registry's loader: a timm Hub folder -> a ready `Classifier` (imports torch)."""
    from models.image_classifier.predict import load as load_classifier

    return load_classifier(folder)


def base(folder: Path) -> Path:
    """The registry's loader for a pretrained base: its folder, which training starts from."""
    return folder


SPEC = Spec(
    name=NAME,
    task="image-classification",
    repo="pets-convnext-tiny",
    revision="main",
    files=files,
    load=load,
    space="image_classifier",
    description="Oxford-IIIT pet breeds, convnext_tiny.fb_in22k fine-tuned with timm",
)

# The pretrained bases the build_classifier Space fine-tunes: on a GPU the course's best
# fine-tuner; on a CPU the model lesson 1 fine-tunes ("is it a bird?"): resnet18, 11.7M
# parameters in plain dense convolutions (fast on CPUs), trained at a smaller size.
BASES = {
    "gpu": ("classifier-base-gpu", "timm/convnext_tiny.fb_in22k"),
    "cpu": ("classifier-base-cpu", "timm/resnet18.a1_in1k"),
}
SPECS = (
    SPEC,
    *(
        Spec(
            name=name,
            task="image-classification",
            repo=repo,
            revision="main",
            files=("config.json", "model.safetensors"),
            load=base,
            space="build_classifier",
            description=f"the pretrained base the builder fine-tunes on a {kind.upper()}",
        )
        for kind, (name, repo) in BASES.items()
    ),
)
