"""Reading images safely: one function for training data and for people's uploads.

PIL and numpy only (no torch), so that a Space can import it at start-up. `read_image` opens
any file as RGB or refuses it with a `UserError` that names the file and the problem.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from shared import limits
from shared.errors import UserError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
MIN_SIDE = 16  # smaller images carry too little to classify


def read_image(path: str | Path, *, min_side: int | None = None) -> tuple[Image.Image, str | None]:
    """Open an image file as RGB, or raise UserError with a message for a person.

    Checks the size from the header before decoding anything, so a decompression bomb is
    refused without allocating it. Converts every mode (CMYK, 16-bit, palette, grayscale,
    transparency over white) and applies the EXIF rotation of phone photos. Animated images
    give their first frame. `min_side`: JPEGs may decode at a reduced scale (DCT scaling) as
    long as both sides stay at least this big; much faster for large photos.
    Returns the image and a note for the user (or None).
    """
    path = Path(path)
    name = limits.excerpt(path.name, 60)  # a name someone chose: never echoed in full
    if not path.is_file():
        raise UserError(f"{name}: file not found.")
    if path.stat().st_size == 0:
        raise UserError(f"{name} is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check ourselves
            im = Image.open(path)
    except Image.DecompressionBombError as e:  # over twice PIL's own limit: refused in open()
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        raise UserError(_too_big(name, int(pixels.group(1)) if pixels else 0)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UserError(
            f"{name} is not an image this demo can read (use JPEG, PNG, GIF, WebP, BMP or TIFF)."
        ) from None
    with im:
        w, h = im.size
        if w * h > limits.PHOTO_PIXELS.value:
            raise UserError(_too_big(name, w * h, (w, h)))
        if min(w, h) < MIN_SIDE:
            raise UserError(
                f"{name} is only {w}×{h} pixels; the classifier needs at least "
                f"{MIN_SIDE} pixels on each side."
            )
        frames = getattr(im, "n_frames", 1)
        note = (
            f"{name} is animated ({frames} frames): classified its first frame."
            if frames > 1
            else None
        )
        if min_side and im.format == "JPEG":
            im.draft("RGB", (min_side, min_side))
        try:
            im.load()
            orientation = im.getexif().get(0x0112, 1)  # phone photos are stored sideways
            if orientation != 1:
                im = ImageOps.exif_transpose(im)
            return to_rgb(im), note
        except UserError:
            raise  # a colour mode it cannot convert: said as it is
        except (OSError, SyntaxError, ValueError, EOFError):
            raise UserError(f"{name} is truncated or corrupt and cannot be decoded.") from None


def _too_big(name: str, pixels: int, size: tuple[int, int] | None = None) -> str:
    dims = f"{size[0]}×{size[1]} pixels, " if size else ""
    what = f" is too large ({dims}{pixels / 1e6:.0f} megapixels)" if pixels else " is too large"
    return (
        f"{name}{what}; the limit is {limits.PHOTO_PIXELS.value / 1e6:.0f} megapixels. "
        "Please upload a smaller image."
    )


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB: 16-bit and float grayscale scaled, transparency over white."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit or float grayscale: scale to 8 bits instead of clipping to white
        a = np.asarray(im, dtype=np.float32)
        if im.mode == "F" and a.max() <= 1.0:
            a = a * 255
        elif a.max() > 255:
            a = a / 257
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode == "P" and "transparency" in im.info
    ):
        rgba = im.convert("RGBA")
        out = Image.new("RGB", im.size, (255, 255, 255))  # transparent areas become white
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if im.mode == "RGB":
        return im
    try:
        return im.convert("RGB")
    except ValueError:
        raise UserError(f"images in colour mode {im.mode} are not supported.") from None
