"""The pictures besides the images themselves: the cheap live preview of the latents, the notice
that replaces a withheld image, and the labelled grid."""

from __future__ import annotations

import math

import torch
from PIL import Image, ImageDraw, ImageFont

# Linear map from SD 1.x/2.x latents (4 channels) to RGB in [-1, 1]: the "cheap approximation"
# of AUTOMATIC1111's web UI, fitted on the SD VAE. Enough to watch an image form.
LATENT_RGB = torch.tensor(
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
)


def preview_image(latents: torch.Tensor, scale: int = 8) -> Image.Image:
    """A cheap preview of a batch of latents (one tile per sample): a linear map to RGB instead
    of the VAE decoder, upscaled to the output size."""
    x = latents.detach().float().cpu()
    # Sigma-scaled schedulers (Euler, DPM, LMS) carry noise of std up to ~15 early on.
    x = x / x.std(dim=(1, 2, 3), keepdim=True).clamp(min=1)
    if x.shape[1] == LATENT_RGB.shape[0]:
        rgb = torch.einsum("bchw,cr->brhw", x, LATENT_RGB)
    else:  # another latent space: show the mean channel in grey
        rgb = x.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    rgb = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    tiles = [Image.fromarray(a).resize((a.shape[1] * scale, a.shape[0] * scale)) for a in rgb]
    return label_grid(tiles, None)


def notice_image(width: int, height: int) -> Image.Image:
    """What the person sees instead of an image the safety checker flagged."""
    image = Image.new("RGB", (width, height), (236, 236, 240))
    draw = ImageDraw.Draw(image)
    text = "Image withheld\n\nThe safety checker flagged it.\nTry another prompt or seed."
    font = ImageFont.load_default(size=max(8, min(width, height) // 16))
    draw.multiline_text(
        (width / 2, height / 2), text, fill=(60, 60, 70), font=font, anchor="mm", align="center"
    )
    return image


def label_grid(images: list[Image.Image], labels: list[str] | None) -> Image.Image:
    """Images side by side (two rows beyond four), each under its label when given."""
    cols = len(images) if len(images) <= 4 else math.ceil(len(images) / 2)
    rows = math.ceil(len(images) / cols)
    w, h = images[0].size
    bar = max(16, h // 10) if labels else 0
    grid = Image.new("RGB", (cols * w, rows * (h + bar)), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=max(8, bar * 3 // 5))
    for i, image in enumerate(images):
        x, y = (i % cols) * w, (i // cols) * (h + bar)
        grid.paste(image, (x, y + bar))
        if labels:
            draw.text((x + w / 2, y + bar / 2), labels[i], fill="black", font=font, anchor="mm")
    return grid


def scale_label(g: float) -> str:
    return f"guidance {g:g}" + (" (off)" if g <= 1 else "")
