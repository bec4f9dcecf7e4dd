"""What a text-to-image request may be: its settings, their bounds and checks, the environment
settings, and the time estimate. Torch-free: the Space imports it at start-up for its controls,
the pipeline enforces it, and neither keeps a copy of these numbers.

`check_settings` validates one request: a clear `UserError` for what cannot be fixed (a seed
out of range, an unknown scheduler, text where a number belongs), a clamped value and a notice
for the rest (guidance, steps, sizes, batch). The scheduler NAMES live here; the diffusers
classes they stand for live in the pipeline.

Environment settings (read when the model is fetched or loaded; none of them is a UI control):
    DEMO_SD_SAFETY_CHECKER=0   turn the safety checker off (private deployments only)
    DEMO_SD_LORA=REPO[@REV]    a LoRA adapter from the Hub (or a local folder) fused on top
    DEMO_SD_LORA_SCALE=1.0     its strength
    DEMO_SD_VARIANT=fp16|fp32  which weight files to fetch (default: fp16 on a GPU, fp32 on CPU)
    DEMO_SD_COMPILE=1          torch.compile the UNet on a GPU (slow first run, faster after)
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared import limits
from shared.device import likely_gpu
from shared.errors import ModelError, UserError

SCHEDULER_NAMES = ("DPM++ 2M Karras", "Euler ancestral", "Euler", "DDIM", "PNDM", "LMS")
MAX_GUIDANCE = 20.0
MAX_STEPS = 100
MAX_IMAGES = 4
MAX_SCALES = 6
MIN_SIDE = 64
MAX_SIDE = {"cpu": 768}  # larger images take minutes per step on a CPU
MAX_SIDE_GPU = 1024  # VAE tiling keeps the decoder's memory flat above TILE_ABOVE
TILE_ABOVE = 768
MAX_SEED = 2**32 - 1
GRID_SCALES = (1.0, 3.0, 7.5, 14.0)


@dataclass
class Settings:
    """One request. `check_settings` validates it; seed None means a fresh random seed."""

    prompt: str = ""
    negative_prompt: str = ""
    guidance: float = 7.5
    guidance_rescale: float = 0.0
    steps: int = 25
    seed: int | None = None
    scheduler: str = SCHEDULER_NAMES[0]
    width: int = 512
    height: int = 512
    images: int = 1


def default_steps() -> int:
    """The steps a UI starts with: a CPU takes seconds per step at 512x512."""
    return 25 if likely_gpu() else 12


def scales_text(scales: Sequence[float]) -> str:
    """Guidance scales as people type them: "1, 3, 7.5, 14"."""
    return ", ".join(f"{g:g}" for g in scales)


# ----------------------------------------------------------------------------- checks


def serving_device() -> str:
    """The kind of device this process serves on, guessed without importing torch."""
    return "gpu" if likely_gpu() else "cpu"


def max_side(device: str) -> int:
    """The largest image side served on `device` (a torch device type)."""
    return MAX_SIDE.get(device, MAX_SIDE_GPU)


def check_settings(
    s: Settings,
    *,
    device: str | None = None,
    batch: int | None = None,
    cut: Callable[[str, str], list[str]] = lambda text, what: [],
    checker: bool = True,
) -> tuple[Settings, list[str]]:
    """`s` checked for a run on `device` (a torch device type; default: this machine's guess)
    that makes `batch` images (default `s.images`; the grid makes one per scale): the
    settings to run (seed drawn when None) and the notices for the person. A `UserError` for
    what cannot run (text over its limit, not a number, an unknown scheduler, a bad seed, a CPU
    run over its budget); out-of-range numbers are clamped with a notice. `cut(text, what)`
    tells when the text encoder will cut a prompt; `checker` whether there is a safety checker.
    Cheap and torch-free: the Space calls it before anything loads."""
    device = device or serving_device()
    notes: list[str] = []
    prompt = limits.check_text(s.prompt, "prompt", limits.PROMPT).strip()
    negative = limits.check_text(s.negative_prompt, "negative prompt", limits.PROMPT).strip()
    if not prompt:
        notes.append("Empty prompt: the image is unconditional (no text to follow).")
    notes += cut(prompt, "The prompt")
    guidance = clamp(number(s.guidance, "guidance scale"), 0, MAX_GUIDANCE, "Guidance", notes)
    if guidance <= 1:
        notes.append(
            "Guidance ≤ 1: classifier-free guidance is off, so the UNet runs once per step "
            "instead of twice (half the work), and the image follows the prompt less."
        )
        if negative:
            notes.append("The negative prompt is ignored: it only acts through guidance.")
    else:
        notes += cut(negative, "The negative prompt")
    rescale = clamp(number(s.guidance_rescale, "guidance rescale"), 0, 1, "Rescale", notes)
    steps = round(clamp(number(s.steps, "number of steps"), 1, MAX_STEPS, "Steps", notes))
    if not isinstance(s.scheduler, str) or s.scheduler not in SCHEDULER_NAMES:
        names = ", ".join(SCHEDULER_NAMES)
        given = limits.excerpt(str(s.scheduler), 30)
        raise UserError(f"Unknown scheduler “{given}”; choose one of {names}.")
    top = max_side(device)
    width = check_side(s.width, "Width", top, device, notes)
    height = check_side(s.height, "Height", top, device, notes)
    images = round(clamp(number(s.images, "number of images"), 1, MAX_IMAGES, "Images", notes))
    seed = secrets.randbelow(MAX_SEED + 1) if s.seed is None else check_seed(s.seed)
    if device == "cpu":
        check_budget(width, height, steps, batch or images)
    if not checker and safety_on():
        notes.append("This model ships no safety checker: images are not filtered.")
    checked = Settings(
        prompt=prompt,
        negative_prompt=negative,
        guidance=guidance,
        guidance_rescale=rescale,
        steps=steps,
        seed=seed,
        scheduler=s.scheduler,
        width=width,
        height=height,
        images=images,
    )
    return checked, notes


def check_seed(value: object) -> int:
    """A seed: a whole number from 0 to MAX_SEED."""
    try:
        seed = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seed = math.nan
    if isinstance(value, bool) or not math.isfinite(seed) or seed != int(seed):
        seed = -1
    if not 0 <= seed <= MAX_SEED:
        raise UserError(
            f"Seed must be a whole number from 0 to {MAX_SEED}, not "
            f"{limits.excerpt(str(value), 30)}. Leave it empty (or tick 'Random seed') for a "
            "fresh one."
        )
    return int(seed)


def check_budget(width: int, height: int, steps: int, images: int) -> None:
    """Refuse a CPU run over `limits.CPU_PIXEL_STEPS`, suggesting settings that fit."""
    budget = limits.CPU_PIXEL_STEPS
    work = width * height * steps * images
    if work <= budget.value:
        return
    fits = budget.value // (width * height * images)
    smaller = f"at most {fits} steps at this size, or " if fits else ""
    raise UserError(
        f"Too much for a CPU: {width}×{height} × {steps} steps × {images} image"
        f"{'s' if images > 1 else ''} is {work / 1e6:.1f} million pixel-steps; the limit is "
        f"{budget.value / 1e6:.1f} million (one run at a time here, and a CPU takes minutes). "
        f"Try {smaller}a smaller size or fewer images."
    )


def check_side(value: object, what: str, max_side: int, device: str, notes: list[str]) -> int:
    """An image side: at most `max_side` (what the device serves), a multiple of 8."""
    side = number(value, what.lower())
    if side > max_side:
        notes.append(
            f"{what} {side:g} is too large for this device ({device}); "
            f"used {max_side}, the largest it serves."
        )
        side = max_side
    side = clamp(side, MIN_SIDE, max_side, what, notes)
    if side % 8:
        rounded = 8 * round(side / 8)
        notes.append(f"{what} {side:g} is not a multiple of 8; used {rounded}.")
        side = rounded
    return int(side)


def check_scales(scales: object) -> tuple[list[float], list[str]]:
    """Guidance scales for the grid: a list of numbers, or text such as "1, 3, 7.5, 14"."""
    if isinstance(scales, str):
        text = limits.check_text(scales, "guidance scales", limits.SCALES_TEXT)
        parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
        try:
            scales = [float(p) for p in parts]
        except ValueError:
            raise UserError(
                "Guidance scales must be numbers separated by commas, like “1, 3, 7.5, 14” "
                f"(got “{limits.excerpt(', '.join(parts), 40)}”)."
            ) from None
    if not isinstance(scales, list | tuple):
        raise UserError("Guidance scales must be text such as “1, 3, 7.5, 14”.")
    if not 1 <= len(scales) <= MAX_SCALES:
        raise UserError(f"Give between 1 and {MAX_SCALES} guidance scales (got {len(scales)}).")
    notes: list[str] = []
    out = [clamp(number(g, "guidance scale"), 0, MAX_GUIDANCE, "Guidance", notes) for g in scales]
    return out, notes


def number(value: object, what: str) -> float:
    """`value` as a finite float, or a `UserError` naming the field `what`."""
    return limits.check_number(value, what)


def clamp(value: float, low: float, high: float, what: str, notes: list[str]) -> float:
    """`value` within [low, high]; a notice in `notes` when it had to move."""
    if low <= value <= high:
        return value
    used = min(max(value, low), high)
    notes.append(f"{what} {value:g} is outside {low:g}–{high:g}; used {used:g}.")
    return used


# ----------------------------------------------------------------------------- environment


def _flag(name: str, default: str) -> bool:
    return os.environ.get(name, default).strip().lower() not in {"0", "false", "no", "off"}


def safety_on() -> bool:
    return _flag("DEMO_SD_SAFETY_CHECKER", "1")


def compile_on() -> bool:
    return _flag("DEMO_SD_COMPILE", "0")


def lora() -> str | None:
    """DEMO_SD_LORA: a LoRA adapter to fuse (REPO[@REV] or a folder), or None."""
    return os.environ.get("DEMO_SD_LORA", "").strip() or None


def lora_scale() -> float:
    value = os.environ.get("DEMO_SD_LORA_SCALE", "1.0")
    try:
        return float(value)
    except ValueError:
        raise ModelError(f"DEMO_SD_LORA_SCALE must be a number, not {value!r}.") from None


def variant() -> str:
    """Which weights to fetch: the fp16 files on a GPU (half the download), fp32 on CPU.
    The GPU is guessed without importing torch, so listing models stays light."""
    if value := os.environ.get("DEMO_SD_VARIANT"):
        if value not in {"fp16", "fp32"}:
            raise ModelError(f"DEMO_SD_VARIANT must be fp16 or fp32, not {value!r}.")
        return value
    return "fp16" if likely_gpu() else "fp32"


def files() -> tuple[str, ...]:
    """Allow patterns: only what StableDiffusionPipeline reads, in safetensors."""
    v = ".fp16" if variant() == "fp16" else ""
    patterns = [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "tokenizer/*",
        "text_encoder/config.json",
        f"text_encoder/model{v}.safetensors",
        "unet/config.json",
        f"unet/diffusion_pytorch_model{v}.safetensors",
        "vae/config.json",
        f"vae/diffusion_pytorch_model{v}.safetensors",
    ]
    if safety_on():
        patterns += [
            "safety_checker/config.json",
            f"safety_checker/model{v}.safetensors",
            "feature_extractor/preprocessor_config.json",
        ]
    return tuple(patterns)


# ----------------------------------------------------------------------------- time estimate

_speed: list[float] = []  # seconds per UNet sample-step per pixel, measured by the last run


def remember(rate: float) -> None:
    """The speed a finished run measured (`Result.rate`), for the next estimates."""
    _speed[:] = [rate]


def estimate(steps: object, width: object, height: object, guidances: Sequence[object]) -> str:
    """Before a run: how long it will take (from the speed this machine measured on its last
    run) and, on a CPU, its share of the budget, or why it cannot run. `guidances`: the
    guidance scale of each image (the grid makes one image per scale)."""
    try:
        gs = [number(g, "guidance scale") for g in guidances]
        request = Settings(steps=steps, width=width, height=height, images=1)
        s, _ = check_settings(request, batch=len(gs))
    except UserError as e:
        return f"⚠️ {e}"
    rows = len(gs) + sum(g > 1 for g in gs)  # a guided image needs two UNet passes
    passes = f"{rows} UNet pass{'es' if rows > 1 else ''} per step"
    if len(gs) == 1:
        passes += ": guidance on" if rows > 1 else ": guidance off, half the work"
    if _speed:
        seconds = _speed[0] * rows * s.steps * s.width * s.height
        text = f"⏱ About {seconds:.0f} s for these settings on this machine ({passes})."
    else:
        first = "seconds on a GPU" if likely_gpu() else "minutes per 512×512 image on this CPU"
        text = f"⏱ Expect {first}; the first run also loads the model ({passes})."
    if serving_device() == "cpu":
        share = s.width * s.height * s.steps * len(gs) / limits.CPU_PIXEL_STEPS.value
        text += f" {share:.0%} of a CPU run's budget."
    return text
