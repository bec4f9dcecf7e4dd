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

import re  # noqa: E402

import gradio as gr  # noqa: E402

from models.text_to_image import NAME, png, stream  # noqa: E402
from models.text_to_image import settings as cfg  # noqa: E402
from shared import cancel, device, limits, registry, serve, ui  # noqa: E402
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


@device.gpu(duration=stream.gpu_seconds)
def _run(kind: str, settings: dict, scales: str):
    """One run on the accelerator, as the family's stream of events. Arguments and events are
    plain picklable data: on ZeroGPU this runs in a worker process, where the request's stop
    switch is a fresh one and closing the stream (below) is what stops the run."""
    model = registry.load(NAME)
    yield from stream.stream(model, kind, settings, scales, stop=cancel.switch())


def _settings(
    prompt, negative, guidance, rescale, steps, scheduler, width, height, images, seed, randomize
) -> dict:
    """The request as plain data, checked here before anything loads or waits for the GPU."""
    if not randomize and seed is None:
        raise UserError("Enter a seed, or tick 'Random seed'.")
    request = cfg.Settings(
        prompt=prompt,
        negative_prompt=negative,
        guidance=guidance,
        guidance_rescale=rescale,
        steps=steps,
        scheduler=scheduler,
        width=width,
        height=height,
        images=images,
        seed=None if randomize else seed,
    )
    cfg.check_settings(request)  # the model checks again, with its tokenizer
    return vars(request)


def _save(images: list) -> list[str]:
    """PNG files with their settings as text chunks, written once where gradio serves them."""
    return [
        str(png.save_png(im, ui.output_file(f"image-{i + 1}.png"))) for i, im in enumerate(images)
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


def _show(kind: str, settings: dict, scales: str, finish):
    """A run as UI updates (preview, result, info line, seed): the preview shows only while
    the run goes on. Called in `ui.stoppable`'s worker thread: a cancel stops the run."""
    hidden = gr.Image(None, visible=False)
    if not registry.loaded(NAME):
        yield hidden, gr.skip(), "⏳ Loading the model (first use)…", gr.skip()
        registry.load(NAME)  # here, not in the GPU worker on ZeroGPU
    yield hidden, gr.skip(), "⏳ Starting…", gr.skip()
    events = _run(kind, settings, scales)
    try:
        for what, item in events:
            cancel.check()  # on ZeroGPU the run is in another process: closing it stops it
            if what == "preview":
                yield gr.Image(item.image, visible=True), gr.skip(), _progress(item), gr.skip()
            elif what == "stopped":
                raise cancel.Cancelled(str(item))
            else:
                cfg.remember(item.rate)  # the measured speed refines the next estimates
                yield hidden, *finish(item), item.settings.seed
    finally:
        events.close()


def generate(
    prompt, negative, guidance, rescale, steps, scheduler, width, height, images, seed, randomize
):
    """Paint a prompt with Stable Diffusion: the live preview, the PNG files (each carries its
    settings), the status and the seed used. Guidance ≤ 1 turns classifier-free guidance off
    (one UNet pass per step instead of two).

    Args:
        prompt: what to paint ("" for an unconditional image), at most 2000 characters.
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
    args = (prompt, negative, guidance, rescale, steps, scheduler, width, height, images)
    settings = _settings(*args, seed, randomize)
    yield from _show("generate", settings, "", _images)


def _images(result) -> tuple:
    n = result.settings.images
    return _save(result.images), _status(result, "Image" if n == 1 else f"{n} images")


def guidance_grid(
    prompt, negative, scales, rescale, steps, scheduler, width, height, seed, randomize
):
    """One prompt and seed at several guidance scales side by side, in one batched denoising
    loop: the live preview, the labelled grid PNG, the status and the seed used.

    Args:
        prompt: what to paint ("" for an unconditional image), at most 2000 characters.
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
    checked, _ = cfg.check_scales(GRID_SCALES if scales is None or scales == "" else scales)
    args = (prompt, negative, max(checked), rescale, steps, scheduler, width, height, 1)
    settings = _settings(*args, seed, randomize)
    cfg.check_settings(cfg.Settings(**settings), batch=len(checked))  # the CPU budget
    yield from _show("grid", settings, cfg.scales_text(checked), _grid)


def _grid(result) -> tuple:
    scales = cfg.scales_text(result.scales)
    return _save([result.grid])[0], _status(result, f"Grid ({scales})")


# API endpoints raise (a client sees the message); page events show it in a status line.
# (their names are the MCP tools' names)
api_generate = ui.errors(ui.stoppable(generate))
api_guidance_grid = ui.errors(ui.stoppable(guidance_grid))
RESULTS = (True, True, True, False)  # preview, result, info: stale after a failure; seed: input
page_generate = ui.reported(ui.stoppable(generate), clear=RESULTS)


def _page_grid(*args):
    """The grid on the page: also in its download button (the image has no corner buttons,
    which would cover the last scale's caption)."""
    for preview, grid, info, seed in guidance_grid(*args):
        yield preview, grid, grid, info, seed


page_grid = ui.reported(ui.stoppable(_page_grid), clear=(True, True, True, True, False))


def stopped(info: str | None):
    """The Stop button's line (it also cancels the run, which stops within a step)."""
    step = re.match(r"Step (\d+) of (\d+)", info or "")
    if step:
        return f"⏹ Stopped after step {step[1]} of {step[2]}."
    return "⏹ Stopped." if (info or "").startswith("⏳") else gr.skip()


SETTINGS = ("prompt", "negative_prompt", "guidance", "guidance_rescale", "steps", "scheduler")
SETTINGS += ("width", "height", "seed")


def restore(file) -> tuple:
    """A PNG made here -> its settings back in the controls (and a note on what differs)."""
    if not file:
        return (*[gr.skip()] * 11, "")
    meta = png.read_settings(file if isinstance(file, str) else file.name)
    note = "Settings restored from the PNG (random seed off, so it makes the same image)."
    repo, revision = registry.source(NAME)
    serving = repo if revision else "a local model"  # never a local path
    if meta.get("model") and meta["model"] != repo:
        note += f" It was made with {meta['model']}; this demo serves {serving}, so it may differ."
    elif meta.get("revision") and revision and meta["revision"] != revision:
        note += f" It was made with revision {meta['revision']} of the model."
    if meta.get("skipped"):
        note += f" Not valid here, so left as they were: {', '.join(meta['skipped'])}."
    scales = meta.get("guidance_scales")
    values = [meta.get(key, gr.skip()) for key in SETTINGS]
    return (*values, False, cfg.scales_text(scales) if scales else gr.skip(), note)


def estimate(steps, width, height, images, guidance) -> str:
    """Before a run: its time (from this machine's last run) and, on a CPU, its budget."""
    try:
        n = round(cfg.number(images, "number of images"))
    except UserError as e:
        return f"⚠️ {e}"
    return cfg.estimate(steps, width, height, [guidance] * max(1, min(n, cfg.MAX_IMAGES)))


def grid_estimate(steps, width, height, scales) -> str:
    """The same for the guidance grid: one image per scale."""
    try:
        checked, _ = cfg.check_scales(scales or GRID_SCALES)
    except UserError as e:
        return f"⚠️ {e}"
    return cfg.estimate(steps, width, height, checked)


def slider(low: float, high: float, value: float, step: float, label: str, **kw) -> gr.Slider:
    return gr.Slider(low, high, value=value, step=step, label=label, **kw)


with gr.Blocks(title="Text to image: Stable Diffusion") as demo:
    gr.Markdown("## 🎨 Text to image: Stable Diffusion and classifier-free guidance")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            # the prompt and its button first: on a phone both are above the fold
            prompt = gr.Textbox(
                label="Prompt",
                lines=2,
                elem_id="sd-prompt",
                placeholder="Empty: an unconditional image",
                max_length=limits.PROMPT.value,
            )
            with gr.Row():
                run = gr.Button(
                    "Generate", variant="primary", elem_id="sd-generate", scale=2, min_width=120
                )
                halt = gr.Button("Stop", variant="stop", elem_id="sd-stop", scale=1, min_width=80)
            status = ui.status(elem_id="sd-status")
            negative = gr.Textbox(
                label="Negative prompt (what to steer away from)",
                lines=1,
                max_length=limits.PROMPT.value,
            )
            guidance = slider(
                0,
                cfg.MAX_GUIDANCE,
                7.5,
                0.5,
                "Guidance scale",
                info="≤ 1 turns guidance off: one UNet pass per step, not two (half the work)",
            )
            with gr.Row():
                steps = slider(1, cfg.MAX_STEPS, DEFAULT_STEPS, 1, "Steps", elem_id="sd-steps")
                scheduler = gr.Dropdown(
                    list(cfg.SCHEDULER_NAMES), value=cfg.SCHEDULER_NAMES[0], label="Scheduler"
                )
            with gr.Row():
                top = cfg.max_side(cfg.serving_device())
                width = slider(cfg.MIN_SIDE, top, 512, 8, "Width", elem_id="sd-width")
                height = slider(cfg.MIN_SIDE, top, 512, 8, "Height", elem_id="sd-height")
            with gr.Row():
                seed = gr.Number(
                    label="Seed", value=0, precision=0, minimum=0, maximum=cfg.MAX_SEED
                )
                randomize = gr.Checkbox(label="Random seed", value=True)
            with gr.Accordion("More settings", open=False):
                images = slider(1, cfg.MAX_IMAGES, 1, 1, "Number of images")
                rescale = slider(
                    0, 1, 0, 0.05, "Guidance rescale", info="Tones down high guidance (0 = off)"
                )
            eta = gr.Markdown(estimate(DEFAULT_STEPS, 512, 512, 1, 7.5), elem_id="sd-eta")
            restore_file = gr.File(
                label="Restore settings: drop a PNG made here",
                file_types=[".png"],
                height=120,
                elem_id="sd-restore",
            )
            restored = gr.Markdown()
            restore_status = ui.status(elem_id="sd-restore-status")
        with gr.Column(scale=3), gr.Tabs() as tabs:
            with gr.Tab("Generate", id="generate"):
                info = gr.Markdown(elem_id="sd-info", min_height=48)  # room for the queue place
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
            with gr.Tab("Guidance grid", id="grid"):
                gr.Markdown(GRID_HELP)
                scales = gr.Textbox(
                    GRID_SCALES,
                    label=f"Guidance scales (up to {cfg.MAX_SCALES})",
                    elem_id="sd-scales",
                    max_length=limits.SCALES_TEXT.value,
                )
                with gr.Row():
                    run_grid = gr.Button("Compare", variant="primary", elem_id="sd-compare")
                    halt_grid = gr.Button("Stop", variant="stop", elem_id="sd-stop-grid")
                grid_status = ui.status(elem_id="sd-grid-status")
                grid_eta = gr.Markdown(grid_estimate(DEFAULT_STEPS, 512, 512, GRID_SCALES))
                grid_info = gr.Markdown(elem_id="sd-grid-info", min_height=48)
                # no component labels: they would cover the first scale's caption
                grid_preview = gr.Image(
                    show_label=False,
                    interactive=False,
                    format="jpeg",
                    visible=False,
                    elem_id="sd-grid-preview",
                    buttons=[],
                )
                grid = gr.Image(
                    show_label=False,
                    type="filepath",
                    interactive=False,
                    format="png",
                    elem_id="sd-grid",
                    buttons=[],
                )
                grid_file = gr.DownloadButton("Download the grid (PNG with its settings)")
    with gr.Accordion("How it works", open=False):
        gr.Markdown(DESCRIPTION)
    # where the model comes from (its pinned commit, in /config); its own card once loaded
    about = gr.Markdown(ui.model_info(NAME), elem_id="sd-about")
    gr.Examples(
        EXAMPLES,
        [prompt, negative],
        label="Example prompts",
        example_labels=[e[0] for e in EXAMPLES],  # buttons, not a table: readable on a phone
    )

    common = [rescale, steps, scheduler, width, height]
    inputs = [prompt, negative, guidance, *common, images, seed, randomize]
    grid_inputs = [prompt, negative, scales, *common, seed, randomize]
    outputs = [preview, gallery, info, seed]
    grid_outputs = [grid_preview, grid, grid_info, seed]
    # one run at a time (the queue shows each waiting visitor its place); preprocess=False:
    # the model checks every value itself, with messages naming the field
    busy = {"concurrency_limit": 1, "concurrency_id": "text-to-image-gpu", "preprocess": False}
    page = {**busy, "api_visibility": "private", "show_progress_on": [info]}
    # API only (no trigger on the page): a failure is raised to the client
    gr.on([], api_generate, inputs, outputs, api_name="generate", **busy)
    gr.on([], api_guidance_grid, grid_inputs, grid_outputs, api_name="guidance_grid", **busy)
    run.click(
        lambda: gr.Tabs(selected="generate"), None, tabs, queue=False, api_visibility="private"
    )
    # on a phone the results are below the settings: scroll to them
    generating = run.click(page_generate, inputs, [*outputs, status], scroll_to_output=True, **page)
    comparing = run_grid.click(
        page_grid,
        grid_inputs,
        [grid_preview, grid, grid_file, grid_info, seed, grid_status],
        **{**page, "show_progress_on": [grid_info]},
    )
    costs = [steps, width, height, images, guidance]
    grid_costs = [steps, width, height, scales]
    for event in (generating, comparing):  # the measured speed refines the estimates
        event.then(estimate, costs, eta, queue=False, api_visibility="private")
        event.then(grid_estimate, grid_costs, grid_eta, queue=False, api_visibility="private")
    ui_only = {"queue": False, "api_visibility": "private"}
    halt.click(stopped, info, info, cancels=[generating], **ui_only)
    halt_grid.click(stopped, grid_info, grid_info, cancels=[comparing], **ui_only)
    restore_file.upload(
        ui.reported(restore, clear=(*[False] * 11, True)),
        restore_file,
        [prompt, negative, guidance, *common[:2], scheduler, width, height, seed, randomize]
        + [scales, restored, restore_status],
        api_visibility="private",
    )
    gr.on([c.change for c in costs], estimate, costs, eta, **ui_only)
    gr.on([c.change for c in grid_costs], grid_estimate, grid_costs, grid_eta, **ui_only)
    demo.load(lambda: ui.describe(NAME), None, about, **ui_only)

if __name__ == "__main__":
    serve.launch(demo)
