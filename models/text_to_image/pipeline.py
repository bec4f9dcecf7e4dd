"""Stable Diffusion with classifier-free guidance you can see (course lesson 9): loading and the
predictor.

`load(folder)` turns a diffusers Stable Diffusion 1.x/2.x folder into a `TextToImage`:

- `generate` runs diffusers' `StableDiffusionPipeline`, streams cheap previews from
  `callback_on_step_end` and stops between steps when asked;
- `guidance_grid` writes the denoising loop out by hand to show what guidance does: one prompt
  and seed at several guidance scales share the text embeddings, the initial noise and every
  UNet call (one batch per step), and differ only in how each sample mixes its two predictions,
  eps = eps_uncond + g * (eps_text - eps_uncond).

Noise is drawn on the CPU from a seeded `torch.Generator`, so a seed gives the same image on any
device. Every PNG carries its settings (prompt, seed, steps, guidance, scheduler, size, model
repo and revision). The settings, their checks and the environment settings are in `settings`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
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

from models.text_to_image import NAME
from models.text_to_image.pictures import label_grid, notice_image, preview_image, scale_label
from models.text_to_image.png import png_text
from models.text_to_image.settings import (
    GRID_SCALES,
    SCHEDULER_NAMES,
    TILE_ABOVE,
    Settings,
    check_scales,
    check_settings,
    compile_on,
    lora,
    lora_scale,
    safety_on,
    variant,
)
from models.text_to_image.stream import PREVIEW_SECONDS, Preview, Result, Stopped
from shared import device as devices
from shared import registry
from shared.errors import ModelError

log = logging.getLogger("demos")

# The diffusers class (and options) behind each scheduler name of `settings`.
SCHEDULERS: dict[str, tuple[type, dict]] = {
    "DPM++ 2M Karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "Euler ancestral": (EulerAncestralDiscreteScheduler, {}),
    "Euler": (EulerDiscreteScheduler, {}),
    "DDIM": (DDIMScheduler, {}),
    "PNDM": (PNDMScheduler, {"skip_prk_steps": True}),
    "LMS": (LMSDiscreteScheduler, {}),
}
assert tuple(SCHEDULERS) == SCHEDULER_NAMES, "settings.SCHEDULER_NAMES and SCHEDULERS differ"
# The blocks before which a CPU run also looks at Stop: a few dozen per step, each well under
# a second even at the largest size.
BLOCKS = {"ResnetBlock2D", "Transformer2DModel"}


# ----------------------------------------------------------------------------- loading


def load(folder: Path) -> TextToImage:
    """The registry's loader: a diffusers Stable Diffusion folder -> a ready predictor."""
    folder = Path(folder)
    index = folder / "model_index.json"
    if not index.is_file():
        raise ModelError(
            f"No diffusers pipeline in {folder} (model_index.json is missing). Point "
            f"{registry.env_var(NAME)} at a Stable Diffusion 1.x/2.x repo in diffusers format."
        )
    kind = json.loads(index.read_text()).get("_class_name")
    if kind != "StableDiffusionPipeline":
        raise ModelError(
            f"{folder} holds a {kind}; this demo serves StableDiffusionPipeline repos "
            f"(SD 1.x/2.x). Point {registry.env_var(NAME)} at one."
        )
    fp16 = (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    if not fp16 and not (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file():
        raise ModelError(
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
    adapter = lora()
    if adapter:
        pipe.load_lora_weights(str(_lora_folder(adapter)))
        pipe.fuse_lora(lora_scale=lora_scale())
        pipe.unload_lora_weights()  # keeps the fused weights, drops the per-step LoRA layers
    pipe.to(dev)
    if dev.type != "cpu":
        speed_up(pipe, compile=compile_on())
    # The PNGs name the repo and the commit actually served (even when asked for "main"); a
    # local folder is named nowhere (its path is this server's business).
    repo, revision = registry.source(NAME)
    hub = revision is not None and folder.parent.name == "snapshots"
    repo, revision = (repo, folder.name) if hub else (None, None)
    if adapter and registry.parse(adapter)[1] is None:
        adapter = "a local LoRA"
    return TextToImage(pipe, repo=repo, revision=revision, lora=adapter, safety=checker)


def _lora_folder(value: str) -> Path:
    """DEMO_SD_LORA: a local folder, or REPO[@REV] fetched from the Hub (safetensors only)."""
    try:
        return registry.resolve(value, ["*.safetensors"])
    except ModelError as e:
        raise ModelError(
            f"The LoRA adapter DEMO_SD_LORA={value} could not be fetched: {e} "
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
        self._scheduler_config = pipe.scheduler.config
        self._lock = threading.Lock()  # one run at a time on one pipeline
        self._watch: _Watch | None = None  # the run going on
        if self.device.type == "cpu":  # a step takes seconds: look at Stop between blocks too
            for module in [*pipe.unet.modules(), *pipe.vae.decoder.modules()]:
                if type(module).__name__ in BLOCKS:
                    module.register_forward_pre_hook(self._check_stop)

    def check(self, s: Settings, batch: int | None = None) -> tuple[Settings, list[str]]:
        """`s` checked for this model and device: a `UserError` for what cannot run,
        clamped values with a notice for the rest. `batch`: images made (default s.images)."""
        return check_settings(
            s, device=self.device.type, batch=batch, cut=self._truncation, checker=self.safety
        )

    @contextlib.contextmanager
    def _run(
        self,
        steps: int,
        preview: Callable[[Preview], None] | None,
        stop: threading.Event | None,
        every: float,
    ) -> Iterator[_Watch]:
        """One run of `steps` steps at a time on the pipeline, watched for Stop and previews."""
        with self._lock, torch.inference_mode():
            self._watch = _Watch(preview, stop, every, steps)
            try:
                yield self._watch
            finally:
                self._watch = None

    def _check_stop(self, module: torch.nn.Module, args: tuple) -> None:
        if self._watch is not None:
            self._watch.check()

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
        preview_seconds: float = PREVIEW_SECONDS,
    ) -> Result:
        """`settings.images` images through diffusers' pipeline; image i uses seed + i, so each
        one can be remade alone. Raises `Stopped` when `stop` is set during the run."""
        s, notes = self.check(settings)
        gens = [_generator(s.seed + i) for i in range(s.images)]
        with self._run(s.steps, preview, stop, preview_seconds) as watch:
            pipe = self._ready(s)
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
                callback_on_step_end=watch.on_step,
            )
            seconds = time.perf_counter() - watch.start
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
        preview_seconds: float = PREVIEW_SECONDS,
    ) -> Result:
        """One image per guidance scale from one batched denoising loop: the prompt is encoded
        once, every sample starts from the same noise, and the UNet runs once per step on
        [uncond rows of the guided samples] + [cond rows of all samples]."""
        scales, scale_notes = check_scales(scales)
        s, notes = self.check(replace(settings, guidance=max(scales), images=1), len(scales))
        notes = [n for n in notes if not n.startswith("Guidance ≤ 1")] + scale_notes
        k = len(scales)
        guided = [i for i, g in enumerate(scales) if g > 1]  # scales ≤ 1 need no uncond row
        # One generator per sample, all with the same seed: same start noise, and the same
        # fresh noise in every step of the ancestral schedulers, so only guidance differs.
        gens = [_generator(s.seed) for _ in scales]
        with self._run(s.steps, preview, stop, preview_seconds) as watch:
            pipe = self._ready(s)
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
                watch.on_step(pipe, i, t, {"latents": latents})
            images, flagged = _decode(pipe, latents)
            seconds = time.perf_counter() - watch.start
        metas = [self._meta(replace(s, guidance=g)) for g in scales]
        images, more = _withhold(images, flagged, metas)
        grid = label_grid(images, [scale_label(g) for g in scales])
        grid.info = png_text(self._meta(s) | {"guidance_scales": scales})
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
        if self.repo:
            meta |= {"model": self.repo, "revision": self.revision}
        if self.lora:
            meta["lora"] = self.lora
        return meta


def _generator(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


class _Watch:
    """One run's Stop and live previews. `on_step` is diffusers' `callback_on_step_end`: it
    stops the run between two steps when asked and sends a preview at most every `every`
    seconds (decoding even a cheap preview each step would slow a fast GPU). `check` stops it
    within a step: on a CPU, where a step takes seconds, it runs before every UNet and VAE
    block (BLOCKS)."""

    def __init__(
        self,
        preview: Callable[[Preview], None] | None,
        stop: threading.Event | None,
        every: float,
        steps: int,
    ):
        self.preview, self.stop, self.every = preview, stop, every
        self.start = time.perf_counter()
        self.last = -math.inf
        self.step, self.steps = 0, steps  # steps done, of

    def check(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Stopped(self.step + 1, self.steps)

    def on_step(self, pipe: StableDiffusionPipeline, i: int, t: torch.Tensor, kwargs: dict) -> dict:
        self.steps = pipe.num_timesteps
        self.check()
        self.step = i + 1
        now = time.perf_counter()
        if self.preview is not None and self.step < self.steps and now - self.last >= self.every:
            self.last = now
            image = preview_image(kwargs["latents"], pipe.vae_scale_factor)
            self.preview(Preview(self.step, self.steps, image, now - self.start))
        return {}


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
            image.info = png_text(meta)
        out.append(image)
    return out, notes
