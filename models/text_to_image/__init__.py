"""Text-to-image family: Stable Diffusion through diffusers, guidance you can see (lesson 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.registry import Spec

NAME = "stable-diffusion"


def files() -> tuple[str, ...]:
    from models.text_to_image.core import files as sd_files

    return sd_files()


def load(folder: Path) -> Any:
    """The registry's loader: a diffusers SD 1.x/2.x folder -> a ready `TextToImage`."""
    from models.text_to_image.core import load as load_pipeline

    return load_pipeline(folder)


SPEC = Spec(
    name=NAME,
    task="text-to-image",
    repo="stable-diffusion-v1-5/stable-diffusion-v1-5",
    revision="451f4fe16113bff5a5d2269ed5ad43b0592e9a14",
    # what StableDiffusionPipeline reads, in safetensors: the fp16 files on a GPU, the safety
    # checker unless DEMO_SD_SAFETY_CHECKER=0 (decided at fetch time)
    files=files,
    load=load,
    space="text_to_image",
    description="Stable Diffusion 1.5 (diffusers), optional LoRA via DEMO_SD_LORA",
)
