"""The settings inside every PNG: exact JSON for us, an AUTOMATIC1111-style line for people and
other tools. `save_png` writes them, `read_settings` restores them (from either). PIL only."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from PIL import Image, PngImagePlugin

from models.text_to_image.settings import Settings
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
    """The settings embedded in a PNG made here (or by AUTOMATIC1111's web UI)."""
    try:
        with Image.open(path) as image:
            text = dict(getattr(image, "text", {}) or {})
    except Exception:
        raise UserError("This file is not an image; drop a PNG made by this demo.") from None
    if "generation" in text:
        try:
            meta = json.loads(text["generation"])
        except json.JSONDecodeError:
            raise UserError("This PNG's generation settings are damaged (not JSON).") from None
    elif "parameters" in text:
        meta = parse_a1111(text["parameters"])
    else:
        raise UserError(
            "This PNG has no generation settings in it (images from this demo carry them; "
            "screenshots and re-saved copies lose them)."
        )
    keys = [*Settings.__dataclass_fields__, "guidance_scales", "model", "revision", "lora"]
    known = {k: meta[k] for k in keys if k in meta and k != "images"}
    if "prompt" not in known:
        raise UserError("This PNG's settings have no prompt; nothing to restore.")
    return known


def parse_a1111(text: str) -> dict:
    """Settings from an AUTOMATIC1111 "parameters" text (what we can map back)."""
    lines = text.strip().split("\n")
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
