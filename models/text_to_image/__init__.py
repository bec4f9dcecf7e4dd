"""Text-to-image family: Stable Diffusion through diffusers, guidance you can see (lesson 9).

    settings   the request, its bounds and checks, environment settings, time estimate (no torch)
    stream     a run as a stream of events (previews, then the result), stopped within a step
    png        the settings inside every PNG, AUTOMATIC1111-compatible (PIL only)
    pictures   live preview of the latents, withheld-image notice, labelled grid
    pipeline   loading (LoRA, GPU speed-ups) and `TextToImage`: generate, guidance_grid

This module stays light (no torch): the registry imports it to list the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.text_to_image.settings import files
from shared.registry import Spec

NAME = "stable-diffusion"


def load(folder: Path) -> Any:
    """The registry's loader: a diffusers SD 1.x/2.x folder -> a ready `TextToImage`."""
    from models.text_to_image.pipeline import load as load_pipeline

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

__all__ = ["NAME", "SPEC", "files", "load"]
