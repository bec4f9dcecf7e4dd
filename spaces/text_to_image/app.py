"""Text-to-image Space: Stable Diffusion, and what classifier-free guidance does (lesson 9).

Generate images with live previews and a Stop button, or compare one prompt and seed at several
guidance scales, computed in one batched denoising loop. Every PNG carries its settings; drop
one back in to restore them. The pipeline loads from the Hub on first use; set
DEMO_MODEL_STABLE_DIFFUSION to serve another SD 1.x/2.x repo, DEMO_SD_LORA to add a LoRA.

This file is the UI only: the settings and their bounds, the run (a stream of events) and its
stop switch, and the PNG settings live in the family package, models/text_to_image/.
"""

import sys
from pathlib import Path

here = Path(__file__).resolve().parent
# in the repo shared/ is two levels up; in a deployed Space it sits beside app.py
if not (here / "shared").is_dir():
    sys.path.insert(0, str(here.parents[1]))

import tempfile  # noqa: E402
import uuid  # noqa: E402

import gradio as gr  # noqa: E402

from models.text_to_image import NAME, png, stream  # noqa: E402
from models.text_to_image import settings as cfg  # noqa: E402
from shared import device, registry, serve, ui  # noqa: E402
from shared.errors import UserError  # noqa: E402

GRID_SCALES = cfg.scales_text(cfg.GRID_SCALES)
DEFAULT_STEPS = cfg.default_steps()

EXAMPLES = [
    ["a watercolour painting of a fox in a snowy forest, soft morning light", "blurry, text"],
    ["an astronaut riding a horse on the moon, photograph, 35mm", "cartoon, drawing"],
    ["a cosy reading nook with a big window, rain outside, studio ghibli style", ""],
    ["macro photo of a dew-covered spider web at sunrise, bokeh", "low quality"],
    ["a bowl of ramen, isometric 3d render, pastel colours", ""],
]

DESCRIPTION = """Type a prompt and Stable Diffusion paints it, step by step: the preview shows the
latents after every few denoising steps (a cheap linear decoding), and **Stop** ends a run
between two steps. **Guidance scale** is classifier-free guidance: at each step the UNet
predicts the noise twice, with and without your prompt, and the difference is amplified,
`eps = eps_uncond + g × (eps_text − eps_uncond)`. A guidance scale **≤ 1 turns guidance off**:
one prediction per step instead of two, half the work, but the image follows the prompt less.
The **Guidance grid** tab shows one prompt and seed at several scales side by side. Every PNG
carries its settings: drop one on *Restore settings* to make it again."""

GRID_HELP = """All scales share the prompt encoding, the starting noise and **one UNet call per
step on the whole batch**: the rows are the unconditional predictions of the guided samples plus
the prompt-conditioned predictions of all samples. A scale of 1 (or less) needs no unconditional
row: it is the plain text-conditioned prediction. Low scales look natural but loose; high ones
follow the prompt hard and get oversaturated (*guidance rescale* tones that down)."""

_out = Path(tempfile.mkdtemp(prefix="text-to-image-"))  # our PNGs, with their settings


@device.gpu(duration=stream.gpu_seconds)
def _run(kind: str, settings: dict, scales: str, key: str):
    """One run on the accelerator, as the family's stream of events. Arguments and events are
    plain picklable data: on ZeroGPU this runs in a worker process."""
    model = registry.load(NAME)
    yield from stream.stream(model, kind, settings, scales, stop=stream.switch(key))


def _stream(kind: str, settings: dict, scales: str, request: gr.Request | None):
    registry.load(NAME)  # first use: fetch and load here (outside the GPU worker on ZeroGPU)
    key = request.session_hash if request and request.session_hash else uuid.uuid4().hex
    yield from stream.follow(key, _run(kind, settings, scales, key))


def _settings(
    prompt, negative, guidance, rescale, steps, scheduler, width, height, images, seed, randomize
) -> dict:
    if not randomize and seed is None:
        raise UserError("Enter a seed, or tick 'Random seed'.")
    return {
        "prompt": prompt or "",
        "negative_prompt": negative or "",
        "guidance": guidance,
        "guidance_rescale": rescale,
        "steps": steps,
        "scheduler": scheduler,
        "width": width,
        "height": height,
        "images": images,
        "seed": None if randomize else seed,
    }


def _save(images: list) -> list[str]:
    """PNG files with their settings as text chunks (gradio serves these files as they are)."""
    folder = Path(tempfile.mkdtemp(dir=_out))
    return [
        str(png.save_png(image, folder / f"image-{i + 1}.png")) for i, image in enumerate(images)
    ]


def _status(result, what: str) -> str:
    s = result.settings
    seeds = f"seed **{s.seed}**" + (f" (image *i* used {s.seed} + *i* − 1)" if s.images > 1 else "")
    lines = [
        f"{what} in {result.seconds:.1f} s on {registry.load(NAME).device.type} · {seeds} · "
        f"{s.steps} steps · {s.scheduler} · {s.width}×{s.height}"
    ]
    lines += [f"- ⚠️ {note}" for note in result.notices]
    return "\n".join(lines)


def _progress(p) -> str:
    left = p.seconds / p.step * (p.steps - p.step)
    return f"Step {p.step} of {p.steps} · {p.seconds:.1f} s so far · about {left:.0f} s left"


@ui.errors
def generate(
    prompt,
    negative,
    guidance,
    rescale,
    steps,
    scheduler,
    width,
    height,
    images,
    seed,
    randomize,
    request: gr.Request = None,
):
    """Paint a prompt with Stable Diffusion: the live preview, the PNG files (each carries its
    settings), the status and the seed used. Guidance ≤ 1 turns classifier-free guidance off
    (one UNet pass per step instead of two).

    Args:
        prompt: what to paint ("" for an unconditional image).
        negative: the negative prompt: what to steer away from ("" for none).
        guidance: classifier-free guidance scale, 0 to 20 (7.5 is usual; ≤ 1 is off).
        rescale: guidance rescale, 0 (off) to 1: tones down the over-saturation of high guidance.
        steps: denoising steps, 1 to 100.
        scheduler: one of "DPM++ 2M Karras", "Euler ancestral", "Euler", "DDIM", "PNDM", "LMS".
        width: image width in pixels, a multiple of 8: 64 to 768 on a CPU, to 1024 on a GPU.
        height: image height in pixels, a multiple of 8: 64 to 768 on a CPU, to 1024 on a GPU.
        images: how many images, 1 to 4 (image i uses seed + i - 1).
        seed: the seed, 0 to 4294967295 (used when randomize is false).
        randomize: draw a fresh random seed instead of using seed.
    """
    settings = _settings(
        prompt,
        negative,
        guidance,
        rescale,
        steps,
        scheduler,
        width,
        height,
        images,
        seed,
        randomize,
    )
    yield from _show(_stream("generate", settings, "", request), _images)


def _images(result) -> tuple:
    n = result.settings.images
    return _save(result.images), _status(result, "Image" if n == 1 else f"{n} images")


@ui.errors
def guidance_grid(
    prompt,
    negative,
    scales,
    rescale,
    steps,
    scheduler,
    width,
    height,
    seed,
    randomize,
    request: gr.Request = None,
):
    """One prompt and seed at several guidance scales side by side, in one batched denoising
    loop: the live preview, the labelled grid PNG, the status and the seed used.

    Args:
        prompt: what to paint ("" for an unconditional image).
        negative: the negative prompt: what to steer away from ("" for none).
        scales: the guidance scales to compare, up to 6, comma-separated, e.g. "1, 3, 7.5, 14".
        rescale: guidance rescale, 0 (off) to 1: tones down the over-saturation of high guidance.
        steps: denoising steps, 1 to 100.
        scheduler: one of "DPM++ 2M Karras", "Euler ancestral", "Euler", "DDIM", "PNDM", "LMS".
        width: image width in pixels, a multiple of 8: 64 to 768 on a CPU, to 1024 on a GPU.
        height: image height in pixels, a multiple of 8: 64 to 768 on a CPU, to 1024 on a GPU.
        seed: the seed, 0 to 4294967295 (used when randomize is false).
        randomize: draw a fresh random seed instead of using seed.
    """
    settings = _settings(
        prompt, negative, 7.5, rescale, steps, scheduler, width, height, 1, seed, randomize
    )
    yield from _show(_stream("grid", settings, scales or GRID_SCALES, request), _grid)


def _grid(result) -> tuple:
    scales = cfg.scales_text(result.scales)
    return _save([result.grid])[0], _status(result, f"Grid ({scales})")


def _show(events, finish):
    """Stream events -> UI updates (preview, result, status, seed): the preview shows only
    while a run goes on; a stopped run keeps its last preview."""
    yield gr.Image(None, visible=False), gr.skip(), "Loading the model (first use)…", gr.skip()
    for kind, item in events:
        if kind == "preview":
            yield gr.Image(item.image, visible=True), gr.skip(), _progress(item), gr.skip()
        elif kind == "stopped":
            yield gr.skip(), gr.skip(), f"⏹ {item}", gr.skip()
        else:
            yield gr.Image(None, visible=False), *finish(item), item.settings.seed


def stop(request: gr.Request = None) -> str:
    """Stop this session's run between two steps (the button also cancels the event)."""
    if not stream.stop(request.session_hash if request else None):
        return "Nothing is running."
    return "⏹ Stopped."


@ui.errors
def restore(file):
    """A PNG made here -> its settings back in the controls."""
    if not file:
        return [gr.skip()] * 12
    meta = png.read_settings(file if isinstance(file, str) else file.name)
    note = "Settings restored from the PNG (random seed off, so it makes the same image)."
    repo, revision = registry.source(NAME)
    if meta.get("model") and meta["model"] != repo:
        note += f" It was made with {meta['model']}; this demo serves {repo}, so it may differ."
    elif meta.get("revision") and revision and meta["revision"] != revision:
        note += f" It was made with revision {meta['revision']} of the model."
    scales = meta.get("guidance_scales")
    value = {
        key: meta.get(key, gr.skip())
        for key in (
            "prompt",
            "negative_prompt",
            "guidance",
            "guidance_rescale",
            "steps",
            "scheduler",
            "width",
            "height",
            "seed",
        )
    }
    return (
        *value.values(),
        False,
        cfg.scales_text(scales) if scales else gr.skip(),
        note,
    )


def estimate(steps, width, height, images, guidance) -> str:
    """An honest time estimate, from the speed this machine measured on its last run."""
    return cfg.estimate(steps, width, height, images, guidance)


with gr.Blocks(title="Text to image: Stable Diffusion") as demo:
    gr.Markdown("## 🎨 Text to image: Stable Diffusion and classifier-free guidance")
    gr.Markdown(DESCRIPTION)
    gr.Markdown(ui.model_info(NAME))
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            prompt = gr.Textbox(
                label="Prompt",
                lines=2,
                elem_id="sd-prompt",
                placeholder="Empty: an unconditional image",
            )
            negative = gr.Textbox(label="Negative prompt (what to steer away from)", lines=1)
            guidance = gr.Slider(
                0,
                cfg.MAX_GUIDANCE,
                value=7.5,
                step=0.5,
                label="Guidance scale",
                info="≤ 1 turns guidance off: one UNet pass per step, not two (half the work)",
            )
            with gr.Row():
                steps = gr.Slider(
                    1, cfg.MAX_STEPS, value=DEFAULT_STEPS, step=1, label="Steps", elem_id="sd-steps"
                )
                scheduler = gr.Dropdown(
                    list(cfg.SCHEDULER_NAMES), value=cfg.SCHEDULER_NAMES[0], label="Scheduler"
                )
            with gr.Row():
                width = gr.Slider(
                    cfg.MIN_SIDE,
                    cfg.MAX_SIDE_GPU,
                    value=512,
                    step=8,
                    label="Width",
                    elem_id="sd-width",
                )
                height = gr.Slider(
                    cfg.MIN_SIDE,
                    cfg.MAX_SIDE_GPU,
                    value=512,
                    step=8,
                    label="Height",
                    elem_id="sd-height",
                )
            with gr.Row():
                seed = gr.Number(
                    label="Seed", value=0, precision=0, minimum=0, maximum=cfg.MAX_SEED
                )
                randomize = gr.Checkbox(label="Random seed", value=True)
            with gr.Accordion("More settings", open=False):
                images = gr.Slider(1, cfg.MAX_IMAGES, value=1, step=1, label="Number of images")
                rescale = gr.Slider(
                    0,
                    1,
                    value=0,
                    step=0.05,
                    label="Guidance rescale",
                    info="Tones down the over-saturation of high guidance (0 = off)",
                )
            eta = gr.Markdown(estimate(DEFAULT_STEPS, 512, 512, 1, 7.5))
            restore_file = gr.File(
                label="Restore settings: drop a PNG made here", file_types=[".png"], height=100
            )
        with gr.Column(scale=3), gr.Tabs():
            with gr.Tab("Generate"):
                with gr.Row():
                    run = gr.Button("Generate", variant="primary", elem_id="sd-generate")
                    halt = gr.Button("Stop", variant="stop", elem_id="sd-stop")
                status = gr.Markdown(elem_id="sd-status")
                preview = gr.Image(
                    label="Live preview (cheap decoding)",
                    interactive=False,
                    height=320,
                    format="jpeg",
                    visible=False,
                )
                gallery = gr.Gallery(
                    label="Images (PNG with settings)",
                    columns=2,
                    height=512,
                    format="png",
                    elem_id="sd-gallery",
                )
            with gr.Tab("Guidance grid"):
                gr.Markdown(GRID_HELP)
                with gr.Row():
                    scales = gr.Textbox(
                        GRID_SCALES, label=f"Guidance scales (up to {cfg.MAX_SCALES})", scale=3
                    )
                    run_grid = gr.Button("Compare", variant="primary", scale=1)
                    halt_grid = gr.Button("Stop", variant="stop", scale=1)
                grid_status = gr.Markdown()
                grid_preview = gr.Image(
                    label="Live preview",
                    interactive=False,
                    height=200,
                    format="jpeg",
                    visible=False,
                )
                grid = gr.Image(
                    label="Same prompt, same seed, several guidance scales",
                    type="filepath",
                    interactive=False,
                    format="png",
                )

    gr.Examples(EXAMPLES, [prompt, negative], label="Example prompts", examples_per_page=5)

    common = [rescale, steps, scheduler, width, height]
    costs = [steps, width, height, images, guidance]
    # preprocess=False: the model checks every value itself, with messages naming the field
    busy = {"concurrency_limit": 1, "concurrency_id": "text-to-image-gpu", "preprocess": False}
    generating = run.click(
        generate,
        [prompt, negative, guidance, *common, images, seed, randomize],
        [preview, gallery, status, seed],
        api_name="generate",
        show_progress="minimal",
        **busy,
    )
    comparing = run_grid.click(
        guidance_grid,
        [prompt, negative, scales, *common, seed, randomize],
        [grid_preview, grid, grid_status, seed],
        api_name="guidance_grid",
        show_progress="minimal",
        **busy,
    )
    for event in (generating, comparing):  # the measured speed refines the estimate
        event.then(estimate, costs, eta, queue=False, api_visibility="private")
    halt.click(stop, None, status, cancels=[generating], api_visibility="private", queue=False)
    halt_grid.click(
        stop, None, grid_status, cancels=[comparing], api_visibility="private", queue=False
    )
    restore_file.upload(
        restore,
        restore_file,
        [
            prompt,
            negative,
            guidance,
            rescale,
            steps,
            scheduler,
            width,
            height,
            seed,
            randomize,
            scales,
            status,
        ],
        api_visibility="private",
    )
    gr.on(
        [steps.change, width.change, height.change, images.change, guidance.change],
        estimate,
        costs,
        eta,
        queue=False,
        api_visibility="private",
    )

if __name__ == "__main__":
    serve.launch(demo)
