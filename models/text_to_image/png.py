"""The settings inside every PNG: exact JSON for us, an AUTOMATIC1111-style line for people and
other tools. `save_png` writes them, `read_settings` restores them (from either). PIL only."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from PIL import Image, PngImagePlugin

from models.text_to_image.settings import (
    MAX_GUIDANCE,
    MAX_SIDE_GPU,
    MAX_STEPS,
    MIN_SIDE,
    SCHEDULER_NAMES,
    check_scales,
    check_seed,
)
from shared import limits
from shared.errors import UserError

# How AUTOMATIC1111's web UI names our schedulers, for PNG metadata other tools can read.
A1111_SAMPLERS = {
    "DPM++ 2M Karras": "DPM++ 2M Karras",
    "Euler ancestral": "Euler a",
    "Euler": "Euler",
    "DDIM": "DDIM",
    "PNDM": "PLMS",
    "LMS": "LMS",
}


def png_text(meta: dict) -> dict[str, str]:
    """PNG text chunks (for an image's .info): the settings `meta` in both formats."""
    return {"generation": json.dumps(meta), "parameters": a1111(meta)}


def a1111(meta: dict) -> str:
    lines = [meta["prompt"]]
    if meta.get("negative_prompt"):
        lines.append(f"Negative prompt: {meta['negative_prompt']}")
    sampler = A1111_SAMPLERS.get(meta["scheduler"], meta["scheduler"])
    fields = {
        "Steps": meta["steps"],
        "Sampler": sampler,
        "CFG scale": meta["guidance"],
        "Seed": meta["seed"],
        "Size": f"{meta['width']}x{meta['height']}",
        "Model": meta.get("model"),
        "Model revision": meta.get("revision"),
        "Guidance rescale": meta.get("guidance_rescale", 0),
    }
    lines.append(", ".join(f"{k}: {v}" for k, v in fields.items() if v is not None))
    return "\n".join(lines)


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Write `image` as PNG with its settings (from .info) as text chunks."""
    info = PngImagePlugin.PngInfo()
    for key, value in image.info.items():
        if isinstance(value, str):
            info.add_text(key, value)
    image.save(path, format="PNG", pnginfo=info)
    return Path(path)


def read_settings(path: str | Path) -> dict:
    """The settings embedded in a PNG made here (or by AUTOMATIC1111's web UI), each checked:
    those that are not valid here are left out and named under "skipped"."""
    try:
        with Image.open(path) as image:
            # text chunks before the pixels (ours, A1111's) are read without decoding them
            text = {k: v for k, v in image.info.items() if isinstance(v, str)}
            small = image.width * image.height <= 4096 * 4096  # decoding it is cheap
            if small and not {"generation", "parameters"} & text.keys():
                text = dict(getattr(image, "text", {}) or {})  # chunks after the pixels
    except Exception:
        raise UserError(
            "This file could not be read as an image; drop a PNG made by this demo."
        ) from None
    if "generation" in text:
        try:
            meta = json.loads(text["generation"])
        except json.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict):
            raise UserError("This PNG's generation settings are damaged (not a JSON object).")
    elif "parameters" in text:
        meta = parse_a1111(text["parameters"])
    else:
        raise UserError(
            "This PNG has no generation settings in it (images from this demo carry them; "
            "screenshots and re-saved copies lose them)."
        )
    if not isinstance(meta.get("prompt"), str):
        raise UserError("This PNG's settings have no prompt; nothing to restore.")
    return clean(meta)


# The range of each restored number; outside it, the setting is skipped.
RANGES = {
    "guidance": (0, MAX_GUIDANCE),
    "guidance_rescale": (0, 1),
    "steps": (1, MAX_STEPS),
    "width": (MIN_SIDE, MAX_SIDE_GPU),
    "height": (MIN_SIDE, MAX_SIDE_GPU),
}


def clean(meta: dict) -> dict:
    """The settings of `meta` that are valid here; the names of the others under "skipped"."""
    out: dict = {"prompt": limits.check_text(meta["prompt"], "PNG's prompt", limits.PROMPT)}
    skipped = []
    for key, value in meta.items():
        if key in out or key == "images":
            continue
        try:
            if key == "seed":
                out[key] = check_seed(value)
            elif key in RANGES:
                low, high = RANGES[key]
                out[key] = limits.check_number(value, key, low, high)
                if key in {"steps", "width", "height"}:
                    out[key] = int(out[key])
            elif key == "negative_prompt":
                out[key] = limits.check_text(value, key, limits.PROMPT)
            elif key == "scheduler":
                if value not in SCHEDULER_NAMES:
                    raise UserError(key)
                out[key] = value
            elif key == "guidance_scales":
                out[key] = check_scales(value)[0]
            elif key in {"model", "revision", "lora"}:
                out[key] = limits.excerpt(limits.check_text(value, key, limits.PROMPT), 80)
        except UserError:
            skipped.append(key)
    if skipped:
        out["skipped"] = skipped
    return out


def parse_a1111(text: str) -> dict:
    """Settings from an AUTOMATIC1111 "parameters" text (what we can map back)."""
    lines = text.strip().split("\n")
    if len(lines[-1]) > 2000:  # not a settings line (and too long for the pattern below)
        return {"prompt": text.strip()}
    fields = dict(re.findall(r"\s*([\w ]+):\s*(\"[^\"]*\"|[^,]*)(?:,|$)", lines[-1]))
    if "Steps" not in fields:
        return {"prompt": text.strip()}
    body = lines[:-1]
    negative = [i for i, line in enumerate(body) if line.startswith("Negative prompt:")]
    cut = negative[0] if negative else len(body)
    meta: dict = {"prompt": "\n".join(body[:cut]).strip()}
    if negative:
        meta["negative_prompt"] = "\n".join(body[cut:])[len("Negative prompt:") :].strip()
    samplers = {v: k for k, v in A1111_SAMPLERS.items()}
    convert = {
        "Steps": ("steps", int),
        "CFG scale": ("guidance", float),
        "Seed": ("seed", int),
        "Sampler": ("scheduler", lambda v: samplers.get(v, v)),
        "Guidance rescale": ("guidance_rescale", float),
        "Model": ("model", str),
        "Model revision": ("revision", str),
    }
    for key, (name, cast) in convert.items():
        if key in fields:
            with contextlib.suppress(ValueError):
                meta[name] = cast(fields[key].strip())
    if m := re.fullmatch(r"(\d+)x(\d+)", fields.get("Size", "").strip()):
        meta["width"], meta["height"] = int(m[1]), int(m[2])
    return meta
