"""Text to image: Stable Diffusion with classifier-free guidance you can see (course lesson 9).

`load(folder)` turns a diffusers Stable Diffusion 1.x/2.x folder into a `TextToImage` predictor:

- `generate` runs diffusers' `StableDiffusionPipeline`, streams cheap previews from
  `callback_on_step_end` and stops between steps when asked;
- `guidance_grid` writes the denoising loop out by hand to show what guidance does: one prompt
  and seed at several guidance scales share the text embeddings, the initial noise and every
  UNet call (one batch per step), and differ only in how each sample mixes its two predictions,
  eps = eps_uncond + g * (eps_text - eps_uncond).

Noise is drawn on the CPU from a seeded `torch.Generator`, so a seed gives the same image on any
device. Every PNG carries its settings (prompt, seed, steps, guidance, scheduler, size, model
repo and revision), and `read_settings` restores them.

Settings (environment, read at load time; none of them is a UI control):
    DEMO_SD_SAFETY_CHECKER=0   turn the safety checker off (private deployments only)
    DEMO_SD_LORA=REPO[@REV]    a LoRA adapter from the Hub (or a local folder) fused on top
    DEMO_SD_LORA_SCALE=1.0     its strength
    DEMO_SD_VARIANT=fp16|fp32  which weight files to fetch (default: fp16 on a GPU, fp32 on CPU)
    DEMO_SD_COMPILE=1          torch.compile the UNet on a GPU (slow first run, faster after)
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
)
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from shared import device as devices
from shared import registry

log = logging.getLogger("demos")

NAME = "stable-diffusion"  # the registry entry this module loads
SCHEDULERS: dict[str, tuple[type, dict]] = {
    "DPM++ 2M Karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "Euler ancestral": (EulerAncestralDiscreteScheduler, {}),
    "Euler": (EulerDiscreteScheduler, {}),
    "DDIM": (DDIMScheduler, {}),
    "PNDM": (PNDMScheduler, {"skip_prk_steps": True}),
    "LMS": (LMSDiscreteScheduler, {}),
}
# How AUTOMATIC1111's web UI names them, for PNG metadata other tools can read.
A1111_SAMPLERS = {
    "DPM++ 2M Karras": "DPM++ 2M Karras",
    "Euler ancestral": "Euler a",
    "Euler": "Euler",
    "DDIM": "DDIM",
    "PNDM": "PLMS",
    "LMS": "LMS",
}
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
# Linear map from SD 1.x/2.x latents (4 channels) to RGB in [-1, 1]: the "cheap approximation"
# of AUTOMATIC1111's web UI, fitted on the SD VAE. Enough to watch an image form.
LATENT_RGB = torch.tensor(
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
)


class Stopped(Exception):
    """A run was stopped between two denoising steps."""

    def __init__(self, step: int, steps: int):
        super().__init__(step, steps)  # picklable: ZeroGPU sends it back from its worker
        self.step, self.steps = step, steps

    def __str__(self) -> str:
        return f"Stopped at step {self.step} of {self.steps}."


@dataclass
class Settings:
    """One request. `check` validates it; seed None means a fresh random seed."""

    prompt: str = ""
    negative_prompt: str = ""
    guidance: float = 7.5
    guidance_rescale: float = 0.0
    steps: int = 25
    seed: int | None = None
    scheduler: str = "DPM++ 2M Karras"
    width: int = 512
    height: int = 512
    images: int = 1


@dataclass
class Preview:
    step: int
    steps: int
    image: Image.Image
    seconds: float


@dataclass
class Result:
    images: list[Image.Image]  # PNG-ready: settings in .info; withheld ones are notices
    settings: Settings  # as run (checked, seed resolved); image i used seed + i
    notices: list[str]
    flagged: list[bool]
    seconds: float
    rate: float  # seconds per UNet sample-step per latent pixel, for time estimates
    grid: Image.Image | None = None  # the labelled guidance grid
    scales: list[float] = field(default_factory=list)


# ----------------------------------------------------------------------------- settings


def _flag(name: str, default: str) -> bool:
    return os.environ.get(name, default).strip().lower() not in {"0", "false", "no", "off"}


def safety_on() -> bool:
    return _flag("DEMO_SD_SAFETY_CHECKER", "1")


def variant() -> str:
    """Which weights to fetch: the fp16 files on a GPU (half the download), fp32 on CPU."""
    if value := os.environ.get("DEMO_SD_VARIANT"):
        if value not in {"fp16", "fp32"}:
            raise registry.ModelError(f"DEMO_SD_VARIANT must be fp16 or fp32, not {value!r}.")
        return value
    return "fp32" if devices.device().type == "cpu" else "fp16"


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


# ----------------------------------------------------------------------------- loading


def load(folder: Path) -> TextToImage:
    """The registry's loader: a diffusers Stable Diffusion folder -> a ready predictor."""
    folder = Path(folder)
    index = folder / "model_index.json"
    if not index.is_file():
        raise registry.ModelError(
            f"No diffusers pipeline in {folder} (model_index.json is missing). Point "
            f"{registry.env_var(NAME)} at a Stable Diffusion 1.x/2.x repo in diffusers format."
        )
    kind = json.loads(index.read_text()).get("_class_name")
    if kind != "StableDiffusionPipeline":
        raise registry.ModelError(
            f"{folder} holds a {kind}; this demo serves StableDiffusionPipeline repos "
            f"(SD 1.x/2.x). Point {registry.env_var(NAME)} at one."
        )
    fp16 = (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    if not fp16 and not (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file():
        raise registry.ModelError(
            f"No UNet weights (safetensors) in {folder}/unet. If the repo has no "
            f"{variant()} files, set DEMO_SD_VARIANT to the other one and pull again."
        )
    dev = devices.device()
    checker = safety_on() and (folder / "safety_checker").is_dir()
    if safety_on() and not checker:
        log.warning("%s ships no safety checker: images are not filtered", folder)
    off = {} if checker else {"safety_checker": None, "feature_extractor": None}
    pipe = StableDiffusionPipeline.from_pretrained(
        folder,
        dtype=devices.dtype(dev),
        variant="fp16" if fp16 else None,
        use_safetensors=True,
        requires_safety_checker=False,
        **off,
    )
    pipe.set_progress_bar_config(disable=True)  # the UI shows progress
    lora = os.environ.get("DEMO_SD_LORA", "").strip() or None
    if lora:
        pipe.load_lora_weights(str(_lora_folder(lora)))
        pipe.fuse_lora(lora_scale=float(os.environ.get("DEMO_SD_LORA_SCALE", "1.0")))
        pipe.unload_lora_weights()  # keeps the fused weights, drops the per-step LoRA layers
    pipe.to(dev)
    if dev.type != "cpu":
        speed_up(pipe, compile=_flag("DEMO_SD_COMPILE", "0"))
    repo, revision = registry.source(NAME)
    if folder.parent.name == "snapshots":
        revision = folder.name  # the commit actually served, even when asked for "main"
    return TextToImage(pipe, repo=repo, revision=revision, lora=lora, safety=checker)


def _lora_folder(value: str) -> Path:
    """DEMO_SD_LORA: a local folder, or REPO[@REV] fetched from the Hub (safetensors only)."""
    if Path(value).expanduser().is_dir():
        return Path(value).expanduser()
    from huggingface_hub import snapshot_download

    repo, _, revision = value.partition("@")
    try:
        return Path(
            snapshot_download(
                repo,
                revision=revision or "main",
                allow_patterns=["*.safetensors"],
                local_files_only=registry.offline(),
            )
        )
    except Exception as e:
        raise registry.ModelError(
            f"The LoRA adapter DEMO_SD_LORA={value} could not be fetched ({type(e).__name__}). "
            "Check the repo id and revision, or unset DEMO_SD_LORA."
        ) from None


def speed_up(pipe: StableDiffusionPipeline, *, compile: bool = False) -> None:
    """GPU settings: SDPA attention (diffusers' default) with fused QKV projections,
    channels-last convolutions and, optionally, a compiled UNet (CUDA graphs)."""
    pipe.fuse_qkv_projections()
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    if compile:
        pipe.unet = torch.compile(pipe.unet, mode="max-autotune", fullgraph=True)


# ----------------------------------------------------------------------------- the predictor


class TextToImage:
    def __init__(
        self,
        pipe: StableDiffusionPipeline,
        *,
        repo: str = "",
        revision: str | None = None,
        lora: str | None = None,
        safety: bool = True,
    ):
        self.pipe = pipe
        self.repo, self.revision, self.lora, self.safety = repo, revision, lora, safety
        self.device = pipe.device
        self.max_side = MAX_SIDE.get(self.device.type, MAX_SIDE_GPU)
        self._scheduler_config = pipe.scheduler.config
        self._lock = threading.Lock()  # one run at a time on one pipeline

    # -- input checks: clear errors for what cannot be fixed, clamped values with a notice

    def check(self, s: Settings) -> tuple[Settings, list[str]]:
        notes: list[str] = []
        prompt = (s.prompt or "").strip()
        negative = (s.negative_prompt or "").strip()
        if not prompt:
            notes.append("Empty prompt: the image is unconditional (no text to follow).")
        notes += self._truncation(prompt, "The prompt")
        guidance = _clamp(_number(s.guidance, "Guidance scale"), 0, MAX_GUIDANCE, "Guidance", notes)
        if guidance <= 1:
            notes.append(
                "Guidance ≤ 1: classifier-free guidance is off, so the UNet runs once per step "
                "instead of twice (half the work), and the image follows the prompt less."
            )
            if negative:
                notes.append("The negative prompt is ignored: it only acts through guidance.")
        else:
            notes += self._truncation(negative, "The negative prompt")
        rescale = _clamp(_number(s.guidance_rescale, "Guidance rescale"), 0, 1, "Rescale", notes)
        steps = round(_clamp(_number(s.steps, "Steps"), 1, MAX_STEPS, "Steps", notes))
        if s.scheduler not in SCHEDULERS:
            names = ", ".join(SCHEDULERS)
            raise ValueError(f"Unknown scheduler {s.scheduler!r}; choose one of {names}.")
        width = self._side(s.width, "Width", notes)
        height = self._side(s.height, "Height", notes)
        images = round(_clamp(_number(s.images, "Images"), 1, MAX_IMAGES, "Images", notes))
        seed = s.seed
        if seed is None:
            seed = secrets.randbelow(MAX_SEED + 1)
        elif isinstance(seed, bool) or not _integral(seed) or not 0 <= seed <= MAX_SEED:
            raise ValueError(
                f"Seed must be a whole number from 0 to {MAX_SEED}, not {seed}. "
                "Leave it empty (or tick 'Random seed') for a fresh one."
            )
        if not self.safety and safety_on():
            notes.append("This model ships no safety checker: images are not filtered.")
        checked = Settings(
            prompt=prompt,
            negative_prompt=negative,
            guidance=guidance,
            guidance_rescale=rescale,
            steps=steps,
            seed=int(seed),
            scheduler=s.scheduler,
            width=width,
            height=height,
            images=images,
        )
        return checked, notes

    def _side(self, value: float, what: str, notes: list[str]) -> int:
        side = _number(value, what)
        if side > self.max_side:
            notes.append(
                f"{what} {side:g} is too large for this device ({self.device.type}); "
                f"used {self.max_side}, the largest it serves."
            )
            side = self.max_side
        side = _clamp(side, MIN_SIDE, self.max_side, what, notes)
        if side % 8:
            rounded = 8 * round(side / 8)
            notes.append(f"{what} {side:g} is not a multiple of 8; used {rounded}.")
            side = rounded
        return int(side)

    def _truncation(self, text: str, what: str) -> list[str]:
        tok = self.pipe.tokenizer
        # with start and end tokens; offsets locate the cut in the text as typed
        enc = tok(text, truncation=False, verbose=False, return_offsets_mapping=True)
        ids = enc.input_ids
        if len(ids) <= tok.model_max_length:
            return []
        cut = text[enc.offset_mapping[tok.model_max_length - 1][0] :].strip()
        if len(cut) > 200:
            cut = cut[:199] + "…"
        return [
            f"{what} is {len(ids) - 2} tokens long; the text encoder reads "
            f"{tok.model_max_length - 2}, so this end was cut: “{cut}”"
        ]

    # -- generation

    def generate(
        self,
        settings: Settings,
        *,
        preview: Callable[[Preview], None] | None = None,
        stop: threading.Event | None = None,
        preview_seconds: float = 0.5,
    ) -> Result:
        """`settings.images` images through diffusers' pipeline; image i uses seed + i, so each
        one can be remade alone. Raises `Stopped` when `stop` is set during the run."""
        s, notes = self.check(settings)
        gens = [_generator(s.seed + i) for i in range(s.images)]
        with self._lock, torch.inference_mode():
            pipe = self._ready(s)
            start = time.perf_counter()
            out = pipe(
                prompt=s.prompt,
                negative_prompt=s.negative_prompt or None,
                num_images_per_prompt=s.images,
                guidance_scale=s.guidance,
                guidance_rescale=s.guidance_rescale,
                num_inference_steps=s.steps,
                width=s.width,
                height=s.height,
                generator=gens,
                latents=self._noise(gens, s),
                callback_on_step_end=_previewer(preview, stop, preview_seconds, start),
            )
            seconds = time.perf_counter() - start
        rows = s.images * (2 if s.guidance > 1 else 1)
        flagged = list(out.nsfw_content_detected or [False] * s.images)
        metas = [self._meta(replace(s, seed=s.seed + i, images=1)) for i in range(s.images)]
        images, more = _withhold(out.images, flagged, metas)
        rate = seconds / (rows * s.steps * s.width * s.height)
        return Result(images, s, notes + more, flagged, seconds, rate)

    def guidance_grid(
        self,
        settings: Settings,
        scales: Sequence[float] | str = GRID_SCALES,
        *,
        preview: Callable[[Preview], None] | None = None,
        stop: threading.Event | None = None,
        preview_seconds: float = 0.5,
    ) -> Result:
        """One image per guidance scale from one batched denoising loop: the prompt is encoded
        once, every sample starts from the same noise, and the UNet runs once per step on
        [uncond rows of the guided samples] + [cond rows of all samples]."""
        scales, scale_notes = check_scales(scales)
        s, notes = self.check(replace(settings, guidance=max(scales), images=1))
        notes = [n for n in notes if not n.startswith("Guidance ≤ 1")] + scale_notes
        k = len(scales)
        guided = [i for i, g in enumerate(scales) if g > 1]  # scales ≤ 1 need no uncond row
        # One generator per sample, all with the same seed: same start noise, and the same
        # fresh noise in every step of the ancestral schedulers, so only guidance differs.
        gens = [_generator(s.seed) for _ in scales]
        with self._lock, torch.inference_mode():
            pipe = self._ready(s)
            start = time.perf_counter()
            cond, uncond = pipe.encode_prompt(
                s.prompt, self.device, 1, bool(guided), s.negative_prompt or None
            )
            embeds = cond.expand(k, -1, -1)
            if guided:
                embeds = torch.cat([uncond.expand(len(guided), -1, -1), embeds])
            g = torch.tensor(scales, device=self.device, dtype=cond.dtype).view(-1, 1, 1, 1)[guided]
            scheduler = pipe.scheduler
            scheduler.set_timesteps(s.steps, device=self.device)
            latents = self._noise(gens, replace(s, images=k)) * scheduler.init_noise_sigma
            step_kwargs = pipe.prepare_extra_step_kwargs(gens, 0.0)
            on_step = _previewer(preview, stop, preview_seconds, start)
            pipe._num_timesteps = len(scheduler.timesteps)
            for i, t in enumerate(scheduler.timesteps):
                rows = scheduler.scale_model_input(torch.cat([latents[guided], latents]), t)
                eps = pipe.unet(rows, t, encoder_hidden_states=embeds, return_dict=False)[0]
                if guided:
                    eps_uncond, eps = eps[: len(guided)], eps[len(guided) :].clone()
                    eps_text = eps[guided]
                    mixed = eps_uncond + g * (eps_text - eps_uncond)
                    if s.guidance_rescale > 0:
                        mixed = rescale_noise_cfg(mixed, eps_text, s.guidance_rescale)
                    eps[guided] = mixed
                latents = scheduler.step(eps, t, latents, **step_kwargs, return_dict=False)[0]
                on_step(pipe, i, t, {"latents": latents})
            images, flagged = _decode(pipe, latents)
            seconds = time.perf_counter() - start
        metas = [self._meta(replace(s, guidance=g)) for g in scales]
        images, more = _withhold(images, flagged, metas)
        grid = label_grid(images, [_scale_label(g) for g in scales])
        grid.info = _png_text(self._meta(s) | {"guidance_scales": scales})
        rate = seconds / ((k + len(guided)) * s.steps * s.width * s.height)
        return Result(images, s, notes + more, flagged, seconds, rate, grid, scales)

    def _ready(self, s: Settings) -> StableDiffusionPipeline:
        """The pipeline with a fresh scheduler of the requested kind (schedulers keep state)
        and VAE tiling for large images."""
        cls, options = SCHEDULERS[s.scheduler]
        self.pipe.scheduler = cls.from_config(self._scheduler_config, **options)
        if self.device.type != "cpu":
            vae = self.pipe.vae
            vae.enable_slicing()  # decode a batch one image at a time: flat memory
            if max(s.width, s.height) > TILE_ABOVE:
                vae.enable_tiling()
            else:
                vae.disable_tiling()
        return self.pipe

    def _noise(self, gens: list[torch.Generator], s: Settings) -> torch.Tensor:
        """Initial latents, drawn on the CPU in float32: the same seed gives the same noise
        on every device and dtype."""
        f = self.pipe.vae_scale_factor
        shape = (1, self.pipe.unet.config.in_channels, s.height // f, s.width // f)
        noise = torch.cat([torch.randn(shape, generator=g, dtype=torch.float32) for g in gens])
        return noise.to(self.device, self.pipe.unet.dtype)

    def _meta(self, s: Settings) -> dict:
        meta = asdict(s)
        del meta["images"]
        meta |= {"model": self.repo, "revision": self.revision}
        if self.lora:
            meta["lora"] = self.lora
        return meta


def _generator(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


def _previewer(
    preview: Callable[[Preview], None] | None,
    stop: threading.Event | None,
    every: float,
    start: float,
) -> Callable:
    """A `callback_on_step_end`: stop between steps when asked; send a preview at most every
    `every` seconds (decoding even a cheap preview each step would slow a fast GPU)."""
    last = -math.inf

    def on_step(pipe: StableDiffusionPipeline, i: int, t: torch.Tensor, kwargs: dict) -> dict:
        nonlocal last
        steps = pipe.num_timesteps
        if stop is not None and stop.is_set():
            raise Stopped(i + 1, steps)
        now = time.perf_counter()
        if preview is not None and i + 1 < steps and now - last >= every:
            last = now
            image = preview_image(kwargs["latents"], pipe.vae_scale_factor)
            preview(Preview(i + 1, steps, image, now - start))
        return {}

    return on_step


def _decode(pipe: StableDiffusionPipeline, latents: torch.Tensor) -> tuple[list, list[bool]]:
    """Latents -> PIL images through the VAE and the safety checker, as the pipeline does."""
    image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    image, flagged = pipe.run_safety_checker(image, latents.device, latents.dtype)
    flagged = list(flagged or [False] * len(image))
    denormalize = [not f for f in flagged]
    return pipe.image_processor.postprocess(image, do_denormalize=denormalize), flagged


def _withhold(images: list, flagged: list[bool], metas: list[dict]) -> tuple[list, list[str]]:
    """Settings into each PNG; flagged images replaced by a notice, not a black square."""
    out, notes = [], []
    for i, (image, bad, meta) in enumerate(zip(images, flagged, metas, strict=True)):
        if bad:
            image = notice_image(image.width, image.height)
            notes.append(f"Image {i + 1} was withheld: the safety checker flagged it.")
        else:
            image.info = _png_text(meta)
        out.append(image)
    return out, notes


def check_scales(scales: Sequence[float] | str) -> tuple[list[float], list[str]]:
    """Guidance scales for the grid: a list, or text such as "1, 3, 7.5, 14"."""
    if isinstance(scales, str):
        parts = [p for p in re.split(r"[\s,;]+", scales.strip()) if p]
        try:
            scales = [float(p) for p in parts]
        except ValueError:
            raise ValueError(
                f"Guidance scales must be numbers separated by commas, like "
                f"“1, 3, 7.5, 14” (got “{', '.join(parts)}”)."
            ) from None
    if not 1 <= len(scales) <= MAX_SCALES:
        raise ValueError(f"Give between 1 and {MAX_SCALES} guidance scales (got {len(scales)}).")
    notes: list[str] = []
    out = [_clamp(_number(g, "Guidance scale"), 0, MAX_GUIDANCE, "Guidance", notes) for g in scales]
    return out, notes


def _number(value: object, what: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, not {value!r}.") from None
    if math.isnan(number):
        raise ValueError(f"{what} must be a number, not NaN.")
    return number


def _integral(value: object) -> bool:
    try:
        return float(value) == int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False


def _clamp(value: float, low: float, high: float, what: str, notes: list[str]) -> float:
    if low <= value <= high:
        return value
    used = min(max(value, low), high)
    notes.append(f"{what} {value:g} is outside {low:g}–{high:g}; used {used:g}.")
    return used


# ----------------------------------------------------------------------------- pictures


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


def _scale_label(g: float) -> str:
    return f"guidance {g:g}" + (" (off)" if g <= 1 else "")


# ----------------------------------------------------------------------------- PNG metadata


def _png_text(meta: dict) -> dict[str, str]:
    """PNG text chunks: exact JSON for us, an AUTOMATIC1111-style line for people and tools."""
    return {"generation": json.dumps(meta), "parameters": _a1111(meta)}


def _a1111(meta: dict) -> str:
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
        raise ValueError("This file is not an image; drop a PNG made by this demo.") from None
    if "generation" in text:
        try:
            meta = json.loads(text["generation"])
        except json.JSONDecodeError:
            raise ValueError("This PNG's generation settings are damaged (not JSON).") from None
    elif "parameters" in text:
        meta = _parse_a1111(text["parameters"])
    else:
        raise ValueError(
            "This PNG has no generation settings in it (images from this demo carry them; "
            "screenshots and re-saved copies lose them)."
        )
    keys = [*Settings.__dataclass_fields__, "guidance_scales", "model", "revision", "lora"]
    known = {k: meta[k] for k in keys if k in meta and k != "images"}
    if "prompt" not in known:
        raise ValueError("This PNG's settings have no prompt; nothing to restore.")
    return known


def _parse_a1111(text: str) -> dict:
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
