"""Benchmark of the text-to-image family: `.venv/bin/python bench/text_to_image.py`.

CPU, always, on the tiny random-weight pipeline of the tests (the code paths, not the maths):
  1. our wrapper (`TextToImage.generate`) against plain diffusers on the same pipeline:
     the overhead ratio (goal <= 1.05);
  2. the batched guidance grid (one denoising loop, k scales) against k separate runs.
GPU, when CUDA is available (or with --gpu): a full-size SD-1.5 architecture with random weights
at 512x512, 25 and 50 steps, guidance 7.5: seconds per image and denoising it/s for plain
diffusers (fp16 defaults), our pipeline (bf16/fp16, fused QKV, channels-last) and our pipeline
with torch.compile; against the compute floor (UNet FLOPs per guided step, counted, at a peak
of --peak-tflops, 790 for an H200 in bf16). Goal on an H200: >= 100 it/s, 25 steps <= 0.35 s.
Results go to bench/RESULTS.md by hand, with the command.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataclasses import replace  # noqa: E402

import torch  # noqa: E402

from models import text_to_image as t2i  # noqa: E402
from models.text_to_image.pipeline import SCHEDULERS, _Watch  # noqa: E402
from models.text_to_image.settings import GRID_SCALES, Settings  # noqa: E402
from tests.factories import sd15, tiny_sd  # noqa: E402


def race(runs: dict[str, Callable[[], object]], reps: int, sync: bool = False) -> dict:
    """Best and median seconds of each run. The runs take turns, in a rotating order, so a busy
    machine (other processes on the same cores) slows them all alike; the ratios use the best
    time, the least disturbed one."""
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for rep in range(reps + 1):  # rep 0 warms up
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            if sync:
                torch.cuda.synchronize()
            start = time.perf_counter()
            runs[name]()
            if sync:
                torch.cuda.synchronize()
            if rep:
                times[name].append(time.perf_counter() - start)
    return {name: (min(t), statistics.median(t)) for name, t in times.items()}


def rows_of(t: dict) -> list[tuple]:
    base = next(iter(t.values()))[0]
    return [(n, f"{b * 1000:.1f}", f"{m * 1000:.1f}", f"{b / base:.3f}") for n, (b, m) in t.items()]


def table(title: str, rows: list[tuple], head: tuple) -> None:
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    for row in (head, tuple("-" * w for w in widths), *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))


# --- CPU: the tiny pipeline ------------------------------------------------------------------


def cpu(reps: int, steps: int, size: int) -> None:
    folder = tiny_sd(Path(tempfile.mkdtemp(prefix="bench-sd-")))
    os.environ["DEMO_DEVICE"] = "cpu"
    model = t2i.load(folder)
    pipe = model.pipe  # plain diffusers calls on the very same modules
    cls, options = SCHEDULERS["DPM++ 2M Karras"]
    settings = Settings("a red cube on a table", steps=steps, width=size, height=size, seed=1)

    def plain(guidance: float = 7.5) -> object:
        pipe.scheduler = cls.from_config(model._scheduler_config, **options)
        return pipe(
            settings.prompt,
            num_inference_steps=steps,
            guidance_scale=guidance,
            width=size,
            height=size,
            generator=torch.Generator().manual_seed(1),
        )

    t = race(
        {
            "plain diffusers StableDiffusionPipeline": plain,
            "ours: TextToImage.generate": lambda: model.generate(settings),
            "ours, streaming a preview every step": lambda: model.generate(
                settings, preview=lambda p: None, preview_seconds=0
            ),
        },
        reps,
    )
    rows = rows_of(t)
    table(
        f"CPU ({torch.get_num_threads()} threads), tiny pipeline, {size}x{size}, {steps} steps, "
        f"guidance 7.5, best and median of {reps}",
        rows,
        ("run", "best ms", "median ms", "ratio (best)"),
    )

    # What the wrapper adds to a run, timed alone (steadier than the difference of two runs)
    gens = [torch.Generator().manual_seed(1)]
    on_step = _Watch(None, None, 0.5, steps).on_step
    parts = race(
        {
            "check the settings (incl. tokenizing)": lambda: model.check(settings),
            "fresh scheduler + VAE options": lambda: model._ready(settings),
            "draw the noise on the CPU": lambda: model._noise(gens, settings),
            f"step callback x {steps}": lambda: [
                on_step(pipe, i, 0, {"latents": None}) for i in range(steps)
            ],
        },
        reps * 20,
    )
    added = sum(b for b, _ in parts.values())
    base = t["plain diffusers StableDiffusionPipeline"][0]
    rows = [(name, f"{b * 1000:.3f}") for name, (b, _) in parts.items()]
    rows.append((f"total: {added / base:.2%} of a plain run -> ratio {1 + added / base:.3f}", ""))
    table("What the wrapper adds per image (best of many)", rows, ("part", "ms"))

    scales = list(GRID_SCALES)
    k = len(scales)
    t = race(
        {
            f"{k} separate plain pipeline runs": lambda: [plain(g) for g in scales],
            f"{k} separate runs of ours": lambda: [
                model.generate(replace(settings, guidance=g)) for g in scales
            ],
            "one batched grid loop (ours)": lambda: model.guidance_grid(settings, scales),
        },
        reps,
    )
    rows = rows_of(t)
    table(
        f"CPU, guidance grid {', '.join(f'{g:g}' for g in scales)}, {size}x{size}, {steps} steps",
        rows,
        ("run", "best ms", "median ms", "ratio (best)"),
    )


# --- GPU: full-size SD-1.5 architecture, random weights ----------------------------------------


def unet_flops(pipe, size: int = 512) -> float:
    """FLOPs of one guided denoising step (the UNet on a batch of 2), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    unet = pipe.unet
    latents = torch.randn(2, 4, size // 8, size // 8, device="cuda", dtype=unet.dtype)
    text = torch.randn(2, 77, 768, device="cuda", dtype=unet.dtype)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        unet(latents, torch.tensor(500, device="cuda"), encoder_hidden_states=text)
    return counter.get_total_flops()


def steps_per_second(run: Callable[[Callable], object]) -> float:
    """Denoising it/s: steps between the first and the last step end, GPU synchronised."""
    stamps: list[float] = []

    def on_step(pipe, i, t, kwargs):
        torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        return {}

    run(on_step)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def gpu(reps: int, peak_tflops: float) -> None:
    from diffusers import StableDiffusionPipeline

    folder = sd15(Path(tempfile.mkdtemp(prefix="bench-sd15-")))
    prompt = "a photograph of an astronaut riding a horse"
    rows = []

    plain = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float16).to("cuda")
    plain.set_progress_bar_config(disable=True)
    flops = unet_flops(plain)
    floor = peak_tflops * 1e12 / flops  # it/s at the compute floor

    def plain_run(steps: int, callback=None):
        return plain(
            prompt,
            num_inference_steps=steps,
            generator=torch.Generator().manual_seed(1),
            callback_on_step_end=callback,
        )

    variants = [("plain diffusers, fp16 defaults", plain_run, 0.0)]
    os.environ["DEMO_DEVICE"] = "cuda"
    for label, compiled in (("ours", False), ("ours + torch.compile", True)):
        os.environ["DEMO_SD_COMPILE"] = "1" if compiled else "0"
        start = time.perf_counter()
        model = t2i.load(folder)
        settings = Settings(prompt, scheduler="PNDM", seed=1)

        def ours(steps: int, callback=None, model=model, settings=settings):
            if callback is None:
                return model.generate(replace(settings, steps=steps))
            model._ready(replace(settings, steps=steps))  # what generate does first
            return model.pipe(
                prompt,
                num_inference_steps=steps,
                callback_on_step_end=callback,
                generator=torch.Generator().manual_seed(1),
            )

        ours(25)  # compile and autotune here, not in the timings
        dtype = str(model.pipe.unet.dtype).removeprefix("torch.")
        variants.append((f"{label} ({dtype})", ours, time.perf_counter() - start))

    for label, run, warmup in variants:
        for steps in (25, 50):
            timed = race({label: lambda run=run, steps=steps: run(steps)}, reps, sync=True)
            seconds = timed[label][1]  # median
            its = steps_per_second(lambda cb, run=run, steps=steps: run(steps, cb))
            rows.append(
                (
                    label,
                    steps,
                    f"{seconds:.3f}",
                    f"{its:.1f}",
                    f"{its / floor:.0%}",
                    f"{warmup:.0f}" if warmup else "",
                )
            )
    table(
        f"GPU {torch.cuda.get_device_name()}, SD-1.5 architecture (random weights), 512x512, "
        f"guidance 7.5; compute floor {flops / 1e12:.2f} TFLOP/step = {floor:.0f} it/s at "
        f"{peak_tflops:g} TFLOP/s",
        rows,
        ("pipeline", "steps", "s/image", "it/s", "of floor", "load+warm-up s"),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="CPU runs")
    p.add_argument("--size", type=int, default=128, help="CPU image side")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1: steadier ratios)")
    p.add_argument("--gpu", action="store_true", help="require the GPU part")
    p.add_argument("--peak-tflops", type=float, default=790.0, help="H200 bf16, measured")
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    cpu(args.reps, args.steps, args.size)
    if torch.cuda.is_available():
        gpu(args.reps, args.peak_tflops)
    elif args.gpu:
        sys.exit("--gpu: no CUDA device here")
    else:
        print("\nGPU part skipped: no CUDA device here.")


if __name__ == "__main__":
    main()
