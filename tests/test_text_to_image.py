"""Text to image: a tiny Stable Diffusion (random weights, local tokenizer) through the real stack.

The tiny pipeline is built from configs, saved, pushed to the loopback Hub and loaded through the
registry, as the Space does with the real one. Images are 64x64 and runs take 2-6 steps.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from models import text_to_image as t2i
from models.text_to_image import pictures, png, stream
from models.text_to_image import settings as cfg
from models.text_to_image.pipeline import SCHEDULERS, TextToImage, speed_up
from shared import registry
from shared.errors import ModelError, UserError
from shared.hub import push
from tests.factories import tiny_sd

NAME = t2i.NAME
SMALL = cfg.Settings(prompt="a cat in a hat", steps=3, width=64, height=64, seed=42)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="module")
def tiny_repo(hub, tiny, tmp_path_factory) -> str:
    """The tiny pipeline on the loopback Hub, with files a careless fetch would also pull."""
    repo = f"tests/tiny-stable-diffusion-{time.time_ns()}"
    extra = tmp_path_factory.mktemp("extra")

    shutil.copytree(tiny, extra, dirs_exist_ok=True)
    (extra / "v1-5-pruned.ckpt").write_bytes(b"pickle, never fetched")
    (extra / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle, never fetched")
    (extra / "unet" / "diffusion_pytorch_model.non_ema.safetensors").write_bytes(b"unused")
    push(extra, repo)
    return repo


@pytest.fixture(scope="module")
def model(tiny) -> TextToImage:
    """The predictor, loaded straight from the folder (model-level tests)."""
    return t2i.load(tiny)


@pytest.fixture
def sd(use_model, tiny_repo) -> TextToImage:
    """The predictor as the Space gets it: through the registry, from the loopback Hub."""
    use_model(NAME, tiny_repo)
    return registry.load(NAME)


class UNetCalls:
    """Records the batch size of every UNet call, and how many ran at once."""

    def __init__(self, unet: torch.nn.Module):
        self.batches: list[int] = []
        self.active = self.most = 0
        self._lock = threading.Lock()
        self._hooks = [
            unet.register_forward_pre_hook(self._enter),
            unet.register_forward_hook(self._leave),
        ]

    def _enter(self, module, args):
        with self._lock:
            self.batches.append(args[0].shape[0])
            self.active += 1
            self.most = max(self.most, self.active)

    def _leave(self, module, args, output):
        with self._lock:
            self.active -= 1

    def remove(self):
        for h in self._hooks:
            h.remove()


@pytest.fixture
def calls(model):
    counter = UNetCalls(model.pipe.unet)
    yield counter
    counter.remove()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


# --- loading ----------------------------------------------------------------------------------


def test_registry_loads_only_the_needed_safetensors_from_the_hub(sd, tiny_repo):
    folder = registry.fetch(NAME)
    fetched = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert "unet/diffusion_pytorch_model.safetensors" in fetched
    assert "safety_checker/model.safetensors" in fetched and "model_index.json" in fetched
    assert not [f for f in fetched if f.endswith((".ckpt", ".bin")) or "non_ema" in f]
    # the PNGs name the repo and the commit actually served
    assert sd.repo == tiny_repo and len(sd.revision) == 40 and sd.safety


def test_fp16_variant_patterns_and_safety_switch(monkeypatch):
    monkeypatch.setenv("DEMO_SD_VARIANT", "fp16")
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in t2i.files()
    assert not any(p.endswith("/diffusion_pytorch_model.safetensors") for p in t2i.files())
    monkeypatch.setenv("DEMO_SD_VARIANT", "fp32")
    assert "unet/diffusion_pytorch_model.safetensors" in t2i.files()
    monkeypatch.setenv("DEMO_SD_SAFETY_CHECKER", "0")
    assert not any("safety_checker" in p for p in t2i.files())


def test_listing_and_the_space_side_of_the_family_import_no_torch():
    """`shared.cli list` asks for the allow-list; the Space imports settings, stream and png."""
    code = (
        "import json, sys\n"
        "from models.text_to_image import SPEC, png, settings, stream\n"
        "SPEC.patterns()\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "print(json.dumps(heavy))"
    )
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_missing_or_wrong_pipeline_gives_a_clear_model_error(tmp_path, use_model):
    use_model(NAME, str(tmp_path))
    with pytest.raises(ModelError, match="model_index.json is missing"):
        registry.load(NAME)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    registry.unload(NAME)
    with pytest.raises(ModelError, match="FluxPipeline"):
        registry.load(NAME)


def test_safety_checker_can_be_switched_off_by_setting(monkeypatch, tiny):
    monkeypatch.setenv("DEMO_SD_SAFETY_CHECKER", "off")
    m = t2i.load(tiny)
    assert m.pipe.safety_checker is None and not m.safety
    assert not m.generate(SMALL).flagged[0]


def test_lora_adapter_from_the_hub_changes_the_images(monkeypatch, tiny, hub, model, tmp_path):
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(tiny, safety_checker=None)
    pipe.unet.add_adapter(LoraConfig(r=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():
        for name, p in pipe.unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # lora_B starts at zero: make the adapter do something
    StableDiffusionPipeline.save_lora_weights(
        tmp_path, unet_lora_layers=get_peft_model_state_dict(pipe.unet)
    )
    repo = f"tests/tiny-lora-{time.time_ns()}"
    push(tmp_path, repo)
    monkeypatch.setenv("DEMO_SD_LORA", repo)
    with_lora = t2i.load(tiny)
    assert with_lora.lora == repo
    image = with_lora.generate(SMALL).images[0]
    assert json.loads(image.info["generation"])["lora"] == repo
    assert np.abs(pixels(image) - pixels(model.generate(SMALL).images[0])).mean() > 1
    monkeypatch.setenv("DEMO_SD_LORA", "tests/no-such-lora")
    with pytest.raises(ModelError, match="DEMO_SD_LORA"):
        t2i.load(tiny)


# --- generation -------------------------------------------------------------------------------


def test_same_seed_same_image_another_seed_another(model):
    a, b = (model.generate(SMALL).images[0] for _ in range(2))
    c = model.generate(replace(SMALL, seed=43)).images[0]
    assert np.array_equal(pixels(a), pixels(b))
    assert np.abs(pixels(a) - pixels(c)).mean() > 5


def test_random_seed_is_returned_and_each_image_of_a_batch_remakes_alone(model):
    batch = model.generate(replace(SMALL, seed=None, images=2))
    seed = batch.settings.seed
    assert 0 <= seed <= cfg.MAX_SEED
    again = model.generate(replace(SMALL, seed=seed + 1)).images[0]
    assert np.abs(pixels(batch.images[1]) - pixels(again)).max() <= 1
    assert json.loads(batch.images[1].info["generation"])["seed"] == seed + 1


def test_guidance_off_runs_the_unet_on_batch_1(model, calls):
    for guidance in (1.0, 0.5, 0.0):
        calls.batches.clear()
        result = model.generate(replace(SMALL, guidance=guidance))
        assert calls.batches == [1] * SMALL.steps
        assert any("half the work" in n for n in result.notices)
    calls.batches.clear()
    model.generate(replace(SMALL, guidance=7.5, images=2))
    assert calls.batches == [4] * SMALL.steps  # uncond + cond for each of the two images


@pytest.mark.parametrize("scheduler", ["DPM++ 2M Karras", "Euler ancestral", "PNDM"])
def test_guidance_grid_is_one_batched_loop_equal_to_separate_runs(model, tiny, calls, scheduler):
    from diffusers import StableDiffusionPipeline

    scales = [1.0, 3.0, 7.5, 14.0]
    settings = replace(SMALL, scheduler=scheduler, negative_prompt="blurry", steps=4)
    grid = model.guidance_grid(settings, scales)
    # one UNet call per step on 4 cond rows + 3 uncond rows (scale 1 needs none)
    assert calls.batches == [7] * len(model.pipe.scheduler.timesteps)

    plain = StableDiffusionPipeline.from_pretrained(tiny)
    cls, options = SCHEDULERS[scheduler]
    plain.scheduler = cls.from_config(plain.scheduler.config, **options)
    plain.set_progress_bar_config(disable=True)
    for g, image in zip(scales, grid.images, strict=True):
        ref = plain(
            "a cat in a hat",
            negative_prompt="blurry",
            guidance_scale=g,
            num_inference_steps=4,
            height=64,
            width=64,
            generator=torch.Generator().manual_seed(42),
            output_type="np",
        ).images[0]
        assert np.abs(ref * 255 - pixels(image)).max() <= 1.0, f"guidance {g}"
    assert grid.grid.width == 4 * 64 and grid.grid.height > 64  # tiles under their labels
    assert json.loads(grid.grid.info["generation"])["guidance_scales"] == scales


def test_previews_arrive_during_a_run_and_stop_ends_it(model, calls):
    previews, stop = [], threading.Event()

    def on_preview(p: stream.Preview) -> None:
        previews.append(p)
        if len(previews) == 3:
            stop.set()

    with pytest.raises(stream.Stopped) as stopped:
        model.generate(replace(SMALL, steps=30), preview=on_preview, stop=stop, preview_seconds=0)
    assert [p.step for p in previews] == [1, 2, 3]
    assert previews[0].image.size == (64, 64)  # latents mapped to RGB, upscaled by 8
    assert stopped.value.step == 4 and len(calls.batches) == 4  # no further UNet call
    # the grid streams previews too, one tile per scale
    shown = []
    model.guidance_grid(SMALL, [1, 7.5], preview=shown.append, preview_seconds=0)
    assert shown and shown[0].image.size == (128, 64)


def test_stream_yields_previews_then_the_result_and_closing_it_stops_the_run(model, calls):
    settings = vars(replace(SMALL, steps=4))  # plain data, as it crosses to a ZeroGPU worker
    events = list(stream.stream(model, "generate", settings, preview_seconds=0))
    assert [kind for kind, _ in events] == ["preview"] * 3 + ["done"]
    assert events[-1][1].settings.seed == 42 and len(calls.batches) == 4
    # closing the stream after the first preview stops the run at its next step
    calls.batches.clear()
    run = stream.stream(model, "grid", replace(SMALL, steps=50), [1, 7.5], preview_seconds=0)
    assert next(run)[0] == "preview"
    run.close()
    time.sleep(0.5)
    assert len(calls.batches) < 50
    # a session's switch stops its run: the stream ends with ("stopped", Stopped)
    stop, events = threading.Event(), []
    for event in stream.stream(
        model, "generate", replace(SMALL, steps=50), stop=stop, preview_seconds=0
    ):
        events.append(event)
        stop.set()
    assert events[-1][0] == "stopped" and isinstance(events[-1][1], stream.Stopped)
    with pytest.raises(UserError, match="Seed must be a whole number"):
        list(stream.stream(model, "generate", replace(SMALL, seed=-1)))


def test_safety_checker_flags_are_replaced_by_a_notice(tiny):
    m = t2i.load(tiny)
    with torch.no_grad():  # every cosine now scores above its threshold
        m.pipe.safety_checker.concept_embeds_weights.fill_(-2.0)
    for result in (m.generate(SMALL), m.guidance_grid(SMALL, [1, 5])):
        assert all(result.flagged)
        assert any("withheld" in n for n in result.notices)
        for image in result.images:
            assert pixels(image).std() > 5  # a notice with text, not a black square
            assert np.array_equal(pixels(image), pixels(pictures.notice_image(64, 64)))
            assert "generation" not in image.info


# --- PNG metadata -----------------------------------------------------------------------------


def test_png_metadata_round_trips_and_remakes_the_image(model, tmp_path):
    settings = replace(SMALL, negative_prompt="dark", guidance=5.5, scheduler="Euler")
    image = model.generate(settings).images[0]
    path = png.save_png(image, tmp_path / "made.png")
    restored = png.read_settings(path)
    # served from a local folder: the PNG names no model (never a local path)
    assert model.repo is None and "model" not in restored
    assert str(tmp_path.parent) not in str(Image.open(path).text)
    again = dict(restored)
    assert again == {k: v for k, v in vars(settings).items() if k != "images"}
    remade = model.generate(cfg.Settings(**again)).images[0]
    assert np.array_equal(pixels(remade), pixels(Image.open(path)))
    # the AUTOMATIC1111-style text alone restores the same settings
    text = Image.open(path).text["parameters"]
    assert "Sampler: Euler, CFG scale: 5.5, Seed: 42, Size: 64x64" in text
    plain = tmp_path / "a1111.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (8, 8)).save(plain, pnginfo=info)
    assert {k: v for k, v in png.read_settings(plain).items() if k in again} == again


def test_png_without_settings_and_other_files_are_refused(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "bare.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(UserError, match="no generation settings"):
        png.read_settings(tmp_path / "bare.png")
    with pytest.raises(UserError, match="could not be read as an image"):
        png.read_settings(tmp_path / "notes.png")
    # settings that are not valid here are skipped and named; a damaged prompt is refused
    info = PngImagePlugin.PngInfo()
    meta = {"prompt": "a cat", "steps": "lots", "seed": -4, "width": 64, "scheduler": "Heun"}
    info.add_text("generation", json.dumps(meta))
    Image.new("RGB", (8, 8)).save(tmp_path / "odd.png", pnginfo=info)
    restored = png.read_settings(tmp_path / "odd.png")
    assert restored == {"prompt": "a cat", "width": 64, "skipped": ["steps", "seed", "scheduler"]}
    info = PngImagePlugin.PngInfo()
    info.add_text("generation", json.dumps({"prompt": "x" * 5000}))
    Image.new("RGB", (8, 8)).save(tmp_path / "long.png", pnginfo=info)
    with pytest.raises(UserError, match="the limit is 2,000 characters per prompt"):
        png.read_settings(tmp_path / "long.png")


# --- bad input --------------------------------------------------------------------------------


def test_bad_input_gets_a_clear_message_or_a_clamped_value_with_a_notice(model):
    def notes(**change) -> str:
        return " ".join(model.check(replace(SMALL, **change))[1])

    def checked(**change) -> cfg.Settings:
        return model.check(replace(SMALL, **change))[0]

    assert "unconditional" in notes(prompt="   ")
    long = " ".join(f"word{i}" for i in range(30))  # character tokens: far beyond 77
    assert "was cut: “ord14 word15" in notes(prompt=long) and "word29”" in notes(prompt=long)
    assert checked(guidance=-3).guidance == 0 and "outside 0–20" in notes(guidance=-3)
    assert checked(guidance=1e9).guidance == 20
    assert checked(steps=0).steps == 1 and checked(steps=10_000).steps == cfg.MAX_STEPS
    assert checked(width=101).width == 104 and "multiple of 8" in notes(width=101)
    assert checked(height=4096).height == 768 and "too large for this device" in notes(height=4096)
    assert checked(images=50).images == cfg.MAX_IMAGES
    assert "negative prompt is ignored" in notes(guidance=1, negative_prompt="blur")
    for change, message in [
        ({"guidance": float("nan")}, "guidance scale must be a finite number"),
        ({"guidance": float("inf")}, "guidance scale must be a finite number"),
        ({"guidance_rescale": float("nan")}, "guidance rescale must be a finite number"),
        ({"steps": float("nan")}, "number of steps must be a finite number"),
        ({"width": "wide"}, "width must be a number, not “wide”"),
        ({"prompt": "a\ud800"}, "prompt contains a character that is not valid text"),
        ({"prompt": "a" * 2001}, "the limit is 2,000 characters per prompt"),
        ({"width": 768, "height": 768, "steps": 100, "images": 4}, "Too much for a CPU"),
        ({"seed": -1}, "Seed must be a whole number from 0 to 4294967295"),
        ({"seed": 2**32}, "Seed must be a whole number"),
        ({"seed": 1.5}, "Seed must be a whole number"),
        ({"scheduler": "Heun"}, "Unknown scheduler “Heun”; choose one of DPM\\+\\+ 2M Karras"),
    ]:
        with pytest.raises(UserError, match=message):
            model.check(replace(SMALL, **change))
    for scales, message in [
        ("1, lots", "numbers separated by commas"),
        ("", "between 1 and 6"),
        ([1, float("nan")], "must be a finite number"),
    ]:
        with pytest.raises(UserError, match=message):
            model.guidance_grid(SMALL, scales)
    # clamped values run: nothing crashes
    result = model.generate(replace(SMALL, steps=0, guidance=-1, width=60, height=70))
    assert result.images[0].size == (64, 72) and result.settings.steps == 1


# --- the Space --------------------------------------------------------------------------------


@pytest.fixture
def space(load_space):
    return load_space("text_to_image")


def test_api_endpoints_answer(space, sd, launch):
    from gradio_client import Client

    client = Client(launch(space.demo), verbose=False)
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/generate", "/guidance_grid"} <= names
    _, gallery, status, seed = client.predict(
        "a cat", "", 7.5, 0, 2, "DDIM", 64, 64, 2, 7, False, api_name="/generate"
    )
    assert seed == 7 and "seed **7**" in status and len(gallery) == 2
    meta = png.read_settings(gallery[1]["image"])
    assert meta["seed"] == 8 and meta["scheduler"] == "DDIM" and meta["model"] == sd.repo
    _, grid, status, seed = client.predict(
        "a cat", "", "1, 4", 0, 2, "Euler", 64, 64, 0, True, api_name="/guidance_grid"
    )
    assert Image.open(grid).size[0] == 128 and "Grid (1, 4)" in status
    assert json.loads(Image.open(grid).text["generation"])["seed"] == seed
    # bad input: a clear message through the API, and the server keeps serving
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Seed must be a whole number"):
        client.predict("a cat", "", 7.5, 0, 2, "DDIM", 64, 64, 1, -5, False, api_name="/generate")
    with pytest.raises(AppError, match="Unknown scheduler"):
        client.predict("a cat", "", 7.5, 0, 2, "Nope", 64, 64, 1, 1, False, api_name="/generate")
    _, _, status, _ = client.predict(
        "", "", 25, 0, 0, "LMS", 61, 64, 1, 3, False, api_name="/generate"
    )
    assert "unconditional" in status and "used 20" in status and "used 64" in status


def test_concurrent_requests_wait_their_turn(space, sd, launch):
    from gradio_client import Client

    counter = UNetCalls(sd.pipe.unet)
    try:
        client = Client(launch(space.demo), verbose=False)
        args = ("a cat", "", 7.5, 0, 4, "DDIM", 64, 64, 1)
        jobs = [client.submit(*args, i, False, api_name="/generate") for i in range(2)]
        jobs.append(
            client.submit(
                "a cat", "", "1, 7", 0, 4, "DDIM", 64, 64, 5, False, api_name="/guidance_grid"
            )
        )
        results = [job.result(timeout=120) for job in jobs]
    finally:
        counter.remove()
    assert [r[3] for r in results] == [0, 1, 5]
    assert counter.most == 1 and len(counter.batches) == 12


def previewed(outputs: tuple) -> bool:
    """Whether a streamed output shows a preview (an update making the image visible)."""
    update = outputs[0]
    return isinstance(update, dict) and update.get("visible") and bool(update.get("value"))


def test_previews_stream_to_the_client_and_stop_cancels(space, sd, launch, monkeypatch):
    from gradio_client import Client

    monkeypatch.setattr(stream, "PREVIEW_SECONDS", 0)
    counter = UNetCalls(sd.pipe.unet)
    try:
        client = Client(launch(space.demo), verbose=False)
        job = client.submit(
            "a cat", "", 7.5, 0, 100, "DDIM", 64, 64, 1, 1, False, api_name="/generate"
        )
        deadline = time.time() + 60
        while not any(map(previewed, job.outputs())) and time.time() < deadline:
            time.sleep(0.05)
        assert any(map(previewed, job.outputs())), "no preview arrived"
        assert any("Step " in (out[2] or "") for out in job.outputs())
        job.cancel()
        time.sleep(1.5)
        ran = len(counter.batches)
        time.sleep(1)
        assert len(counter.batches) == ran < 100  # stopped, well before the last step
    finally:
        counter.remove()


def test_cancelled_runs_stop_within_a_second_and_hold_the_slot_until_then(
    space, sd, launch, monkeypatch
):
    """Three large jobs, each submitted then cancelled through gradio_client: never two at once
    (a cancelled run holds the only slot until it stopped), idle within a second."""
    from gradio_client import Client

    runs = {"active": 0, "most": 0, "calls": 0}
    generate = sd.generate

    def counted(*args, **kwargs):
        runs["active"] += 1
        runs["calls"] += 1
        runs["most"] = max(runs["most"], runs["active"])
        try:
            return generate(*args, **kwargs)
        finally:
            runs["active"] -= 1

    monkeypatch.setattr(sd, "generate", counted)
    counter = UNetCalls(sd.pipe.unet)
    slow = sd.pipe.unet.register_forward_pre_hook(lambda m, a: time.sleep(0.05))
    last = []
    stamp = sd.pipe.unet.register_forward_hook(lambda m, a, o: last.append(time.monotonic()))
    try:
        client = Client(launch(space.demo), verbose=False)
        jobs = []
        for i in range(3):  # each 100 steps x 4 images: 100 x 0.05 s of UNet at least, uncut
            args = ("a cat", "", 7.5, 0, 100, "DDIM", 64, 64, 4, i, False)
            jobs.append(client.submit(*args, api_name="/generate"))
            time.sleep(1.0)
            jobs[-1].cancel()
        cancelled = time.monotonic()
        time.sleep(2)
        ran = len(counter.batches)
    finally:
        for hook in (slow, stamp):
            hook.remove()
        counter.remove()
    # each ran, one at a time (counted outside the model's own lock)
    assert runs == {"active": 0, "most": 1, "calls": 3}
    assert 0 < ran < 100  # 300 steps had they not stopped
    assert last[-1] < cancelled + 1.0  # idle within a second of the last cancel
    assert client.predict("a cat", "", 1, 0, 2, "DDIM", 64, 64, 1, 3, False, api_name="/generate")


def test_loading_shows_only_when_the_model_loads_and_bad_input_loads_nothing(space, sd):
    args = ("a cat", "", 7.5, 0, 2, "DDIM", 64, 64, 1, 5, False)

    def infos(run) -> list[str]:
        return [out[2] for out in run if isinstance(out[2], str)]

    registry.unload(NAME)
    with pytest.raises(UserError, match="Seed must be a whole number"):
        next(space.generate(*args[:-2], -5, False))  # refused before anything loads
    assert not registry.loaded(NAME)
    first = infos(space.generate(*args))
    assert first[0] == "⏳ Loading the model (first use)…" and first[-1].startswith("Image in")
    again = infos(space.generate(*args))
    assert not any("Loading" in line for line in again) and again[-1].startswith("Image in")


def test_stop_line_and_restore_handlers(space, sd, tmp_path):
    assert space.stopped("Step 4 of 30 · 1.2 s so far") == "⏹ Stopped after step 4 of 30."
    assert space.stopped("⏳ Loading the model (first use)…") == "⏹ Stopped."
    assert space.stopped("Image in 2.0 s") == gr.skip()  # nothing was running: left as it was

    image = sd.generate(replace(SMALL, guidance=3)).images[0]
    values = space.restore(str(png.save_png(image, tmp_path / "x.png")))
    assert values[:9] == ("a cat in a hat", "", 3.0, 0.0, 3, "DPM++ 2M Karras", 64, 64, 42)
    assert values[9] is False and "restored" in values[-1]
    # a PNG not made here: the reason in the status line; no control touched, no overlay
    Image.new("RGB", (8, 8)).save(tmp_path / "bare.png")
    page = space.ui.reported(space.restore, clear=(*[False] * 11, True))
    *controls, note, status = page(str(tmp_path / "bare.png"))
    assert all(c == gr.skip() for c in controls) and note is None
    assert "no generation settings" in status


def test_time_estimate_uses_the_last_run_and_shows_the_cpu_budget(space, sd, monkeypatch):
    monkeypatch.setattr(cfg, "_speed", [])  # as in a fresh process
    assert "first run" in space.estimate(12, 512, 512, 1, 7.5)
    cfg.remember(1e-6)
    assert "About 6 s" in space.estimate(12, 512, 512, 1, 7.5)  # 2 passes x 12 x 512²
    assert "About 3 s" in space.estimate(12, 512, 512, 1, 1)  # guidance off: half
    assert "25% of a CPU run's budget" in space.estimate(12, 512, 512, 1, 7.5)
    assert "100% of a CPU run's budget" in space.grid_estimate(12, 512, 512, "1, 3, 7.5, 14")
    over = space.estimate(100, 768, 768, 4, 7.5)  # the request that held the slot 4.6 minutes
    assert over.startswith("⚠️ Too much for a CPU") and "at most 5 steps at this size" in over
    assert "must be a number" in space.estimate("x", 512, 512, 1, 7.5)
    assert "numbers separated by commas" in space.grid_estimate(12, 512, 512, "1, lots")


def open_tab(page, suite_url: str) -> None:
    from shared import suite

    page.goto(suite_url)
    page.get_by_role("tab", name=suite.label("text_to_image")).click()
    page.locator("#sd-prompt textarea").wait_for()


def set_number(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


@pytest.mark.browser
def test_browser_generates_then_compares_in_the_suite(
    page, suite_url, use_model, tiny_repo, shot, monkeypatch
):
    use_model(NAME, tiny_repo)
    monkeypatch.setattr(stream, "PREVIEW_SECONDS", 0)  # the suite runs in this process
    open_tab(page, suite_url)
    # the served model's own card (demo.load fires in the suite too): a link to its commit
    page.locator(f"#sd-about a[href*='{tiny_repo}/tree/']").wait_for()
    page.locator("#sd-prompt textarea").fill("a red cube")
    for elem_id, value in (("sd-width", 64), ("sd-height", 64), ("sd-steps", 3)):
        set_number(page, elem_id, value)
    page.locator("#sd-generate").click()
    page.locator("#sd-gallery img").first.wait_for()
    info = page.locator("#sd-info")
    info.get_by_text("3 steps").wait_for()
    info.get_by_text("64×64").wait_for()
    assert "Loading the model" not in info.inner_text()
    shot(page, "generated")
    # the grid at 512²: its live preview shows every scale, uncut, with no label over them
    for elem_id, value in (("sd-width", 512), ("sd-height", 512), ("sd-steps", 12)):
        set_number(page, elem_id, value)  # 4 scales at 512² x 12 steps: all a CPU run may take
    page.get_by_role("tab", name="Guidance grid").click()
    slow = registry.load(NAME).pipe.unet.register_forward_pre_hook(lambda m, a: time.sleep(0.5))
    try:
        page.locator("#sd-compare").click()
        page.locator("#sd-grid-info").get_by_text("Step 2 of").wait_for()
        shot(page, "grid-live-preview")
        live = page.locator("#sd-grid-preview img").bounding_box()
        assert live["width"] <= page.locator("#sd-grid-preview").bounding_box()["width"] + 1
        assert live["width"] > 3 * live["height"]  # all four tiles, not two of them cropped
    finally:
        slow.remove()
    page.locator("#sd-grid img").wait_for()
    page.locator("#sd-grid-info").get_by_text("Grid (1, 3, 7.5, 14)").wait_for()
    grid = page.locator("#sd-grid img").bounding_box()
    column = page.locator("#sd-grid").bounding_box()
    assert grid["width"] <= column["width"] + 1 and grid["width"] > 3 * grid["height"]
    shot(page, "grid-done")


@pytest.mark.browser
def test_browser_error_states_stay_beside_their_controls(
    page, suite_url, use_model, tiny_repo, shot, tmp_path
):
    use_model(NAME, tiny_repo)
    open_tab(page, suite_url)
    # a CPU run over its budget: refused in the status line under Generate, nothing covered
    for elem_id, value in (("sd-width", 768), ("sd-height", 768), ("sd-steps", 100)):
        set_number(page, elem_id, value)
    page.locator("#sd-eta").get_by_text("Too much for a CPU").wait_for()  # before it runs
    page.locator("#sd-generate").click()
    status = page.locator("#sd-status")
    status.get_by_text("Too much for a CPU").wait_for()
    # a PNG not made here, dropped on "Restore settings": the reason beside it, no overlay
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    page.locator("#sd-restore input[type=file]").set_input_files(str(tmp_path / "photo.png"))
    restore = page.locator("#sd-restore-status")
    restore.get_by_text("no generation settings").wait_for()
    page.wait_for_timeout(10_000)
    assert status.is_visible() and "Too much for a CPU" in status.inner_text()
    assert restore.is_visible() and "no generation settings" in restore.inner_text()
    shot(page, "errors-after-10s")
    prompt = page.locator("#sd-prompt textarea")
    prompt.click()  # not covered: a click reaches it
    prompt.fill("still typing")
    assert prompt.input_value() == "still typing"
    set_number(page, "sd-steps", 4)  # a smaller run clears the error
    page.locator("#sd-eta").get_by_text("of a CPU run's budget").wait_for()


@pytest.mark.browser
def test_browser_a_second_visitor_sees_their_place_in_the_queue(
    browser, suite_url, use_model, tiny_repo, shot
):
    use_model(NAME, tiny_repo)
    slow = registry.load(NAME).pipe.unet.register_forward_pre_hook(lambda m, a: time.sleep(0.3))
    contexts = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(2)]
    try:
        first, second = (c.new_page() for c in contexts)
        for page in (first, second):
            page.set_default_timeout(90_000)
            open_tab(page, suite_url)
            for elem_id, value in (("sd-width", 64), ("sd-height", 64), ("sd-steps", 30)):
                set_number(page, elem_id, value)
        first.locator("#sd-generate").click()
        first.locator("#sd-info").get_by_text("Step ").wait_for()
        second.locator("#sd-generate").click()
        second.locator("#sd-info").get_by_text("queue: 1/1").wait_for()  # its place is shown
        second.locator("#sd-info").screenshot(
            path=str(shot(second, "waiting").with_name("place.png"))
        )
        first.locator("#sd-stop").click()
        first.locator("#sd-info").get_by_text("⏹ Stopped after step").wait_for()
        second.locator("#sd-info").get_by_text("Step ").wait_for()  # its turn came
        second.locator("#sd-stop").click()
    finally:
        slow.remove()
        for c in contexts:
            c.close()


@pytest.mark.browser
def test_browser_phone_layout(phone, suite_url, use_model, tiny_repo, shot):
    from tests.conftest import above_the_fold, no_horizontal_scroll

    use_model(NAME, tiny_repo)
    open_tab(phone, suite_url)
    phone.locator(f"#sd-about a[href*='{tiny_repo}/tree/']").wait_for()
    phone.get_by_text("a bowl of ramen").wait_for()  # the examples, as buttons
    phone.evaluate("() => window.scrollTo(0, 0)")
    shot(phone, "phone")
    assert above_the_fold(phone.locator("#sd-prompt textarea"))
    assert above_the_fold(phone.locator("#sd-generate"))
    assert no_horizontal_scroll(phone)


def test_gpu_speed_ups_keep_the_images(tiny):
    """The GPU-only settings (fused QKV projections, channels-last), exercised on the CPU."""
    m = t2i.load(tiny)
    before = m.generate(SMALL).images[0]
    speed_up(m.pipe)
    assert m.pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    processors = {type(p).__name__ for p in m.pipe.unet.attn_processors.values()}
    assert processors == {"FusedAttnProcessor2_0"}  # SDPA on fused projections
    assert np.abs(pixels(m.generate(SMALL).images[0]) - pixels(before)).max() <= 1
