"""Text to image: a tiny Stable Diffusion (random weights, local tokenizer) through the real stack.

The tiny pipeline is built from configs, saved, pushed to the loopback Hub and loaded through the
registry, as the Space does with the real one. Images are 64x64 and runs take 2-6 steps.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models import text_to_image as t2i
from shared import registry
from shared.hub import push

NAME = "stable-diffusion"
SMALL = t2i.Settings(prompt="a cat in a hat", steps=3, width=64, height=64, seed=42)


def byte_vocab() -> dict[str, int]:
    """A character-level CLIP vocabulary: GPT-2's byte alphabet, each symbol alone and at a word
    end, plus the start and end tokens (CLIP's tokenizer needs nothing more)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    symbols = [chr(b) for b in printable] + [chr(256 + i) for i in range(256 - len(printable))]
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab |= {s + "</w>": len(symbols) + i for i, s in enumerate(symbols)}
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    return vocab


def build_tiny_pipeline(folder: Path) -> Path:
    """A Stable Diffusion pipeline small enough for a test: random weights, SD's layout (VAE
    scale factor 8, 4 latent channels, 77-token CLIP text encoder, a real safety checker)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline
    from diffusers import UNet2DConditionModel as UNet
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
    )

    torch.manual_seed(0)
    vocab = byte_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            bos_token_id=len(vocab) - 2,
            eos_token_id=len(vocab) - 1,
            pad_token_id=len(vocab) - 1,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
        )
    )
    unet = UNet(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        cross_attention_dim=32,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    tiny = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 1,
    }
    checker = StableDiffusionSafetyChecker(
        CLIPConfig(
            text_config=tiny,
            vision_config=tiny | {"image_size": 32, "patch_size": 8},
            projection_dim=32,
        )
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=checker,
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32),
    )
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))


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
def model(tiny) -> t2i.TextToImage:
    """The predictor, loaded straight from the folder (model-level tests)."""
    return t2i.load(tiny)


@pytest.fixture
def sd(use_model, tiny_repo) -> t2i.TextToImage:
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


def test_missing_or_wrong_pipeline_gives_a_clear_model_error(tmp_path, use_model):
    use_model(NAME, str(tmp_path))
    with pytest.raises(registry.ModelError, match="model_index.json is missing"):
        registry.load(NAME)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    registry.unload(NAME)
    with pytest.raises(registry.ModelError, match="FluxPipeline"):
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
    with pytest.raises(registry.ModelError, match="DEMO_SD_LORA"):
        t2i.load(tiny)


# --- generation -------------------------------------------------------------------------------


def test_same_seed_same_image_another_seed_another(model):
    a, b = (model.generate(SMALL).images[0] for _ in range(2))
    c = model.generate(t2i.replace(SMALL, seed=43)).images[0]
    assert np.array_equal(pixels(a), pixels(b))
    assert np.abs(pixels(a) - pixels(c)).mean() > 5


def test_random_seed_is_returned_and_each_image_of_a_batch_remakes_alone(model):
    batch = model.generate(t2i.replace(SMALL, seed=None, images=2))
    seed = batch.settings.seed
    assert 0 <= seed <= t2i.MAX_SEED
    again = model.generate(t2i.replace(SMALL, seed=seed + 1)).images[0]
    assert np.abs(pixels(batch.images[1]) - pixels(again)).max() <= 1
    assert json.loads(batch.images[1].info["generation"])["seed"] == seed + 1


def test_guidance_off_runs_the_unet_on_batch_1(model, calls):
    for guidance in (1.0, 0.5, 0.0):
        calls.batches.clear()
        result = model.generate(t2i.replace(SMALL, guidance=guidance))
        assert calls.batches == [1] * SMALL.steps
        assert any("half the work" in n for n in result.notices)
    calls.batches.clear()
    model.generate(t2i.replace(SMALL, guidance=7.5, images=2))
    assert calls.batches == [4] * SMALL.steps  # uncond + cond for each of the two images


@pytest.mark.parametrize("scheduler", ["DPM++ 2M Karras", "Euler ancestral", "PNDM"])
def test_guidance_grid_is_one_batched_loop_equal_to_separate_runs(model, tiny, calls, scheduler):
    from diffusers import StableDiffusionPipeline

    scales = [1.0, 3.0, 7.5, 14.0]
    settings = t2i.replace(SMALL, scheduler=scheduler, negative_prompt="blurry", steps=4)
    grid = model.guidance_grid(settings, scales)
    # one UNet call per step on 4 cond rows + 3 uncond rows (scale 1 needs none)
    assert calls.batches == [7] * len(model.pipe.scheduler.timesteps)

    plain = StableDiffusionPipeline.from_pretrained(tiny)
    cls, options = t2i.SCHEDULERS[scheduler]
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

    def on_preview(p: t2i.Preview) -> None:
        previews.append(p)
        if len(previews) == 3:
            stop.set()

    with pytest.raises(t2i.Stopped) as stopped:
        model.generate(
            t2i.replace(SMALL, steps=30), preview=on_preview, stop=stop, preview_seconds=0
        )
    assert [p.step for p in previews] == [1, 2, 3]
    assert previews[0].image.size == (64, 64)  # latents mapped to RGB, upscaled by 8
    assert stopped.value.step == 4 and len(calls.batches) == 4  # no further UNet call
    # the grid streams previews too, one tile per scale
    shown = []
    model.guidance_grid(SMALL, [1, 7.5], preview=shown.append, preview_seconds=0)
    assert shown and shown[0].image.size == (128, 64)


def test_safety_checker_flags_are_replaced_by_a_notice(tiny):
    m = t2i.load(tiny)
    with torch.no_grad():  # every cosine now scores above its threshold
        m.pipe.safety_checker.concept_embeds_weights.fill_(-2.0)
    for result in (m.generate(SMALL), m.guidance_grid(SMALL, [1, 5])):
        assert all(result.flagged)
        assert any("withheld" in n for n in result.notices)
        for image in result.images:
            assert pixels(image).std() > 5  # a notice with text, not a black square
            assert np.array_equal(pixels(image), pixels(t2i.notice_image(64, 64)))
            assert "generation" not in image.info


# --- PNG metadata -----------------------------------------------------------------------------


def test_png_metadata_round_trips_and_remakes_the_image(model, tmp_path):
    settings = t2i.replace(SMALL, negative_prompt="dark", guidance=5.5, scheduler="Euler")
    image = model.generate(settings).images[0]
    path = t2i.save_png(image, tmp_path / "made.png")
    restored = t2i.read_settings(path)
    assert restored["model"] == model.repo and restored["revision"] == model.revision
    again = {k: v for k, v in restored.items() if k not in ("model", "revision")}
    assert again == {k: v for k, v in vars(settings).items() if k != "images"}
    remade = model.generate(t2i.Settings(**again)).images[0]
    assert np.array_equal(pixels(remade), pixels(Image.open(path)))
    # the AUTOMATIC1111-style text alone restores the same settings
    text = Image.open(path).text["parameters"]
    assert "Sampler: Euler, CFG scale: 5.5, Seed: 42, Size: 64x64" in text
    plain = tmp_path / "a1111.png"
    info = t2i.PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (8, 8)).save(plain, pnginfo=info)
    assert {k: v for k, v in t2i.read_settings(plain).items() if k in again} == again


def test_png_without_settings_and_other_files_are_refused(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "bare.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="no generation settings"):
        t2i.read_settings(tmp_path / "bare.png")
    with pytest.raises(ValueError, match="not an image"):
        t2i.read_settings(tmp_path / "notes.png")


# --- bad input --------------------------------------------------------------------------------


def test_bad_input_gets_a_clear_message_or_a_clamped_value_with_a_notice(model):
    def notes(**change) -> str:
        return " ".join(model.check(t2i.replace(SMALL, **change))[1])

    def checked(**change) -> t2i.Settings:
        return model.check(t2i.replace(SMALL, **change))[0]

    assert "unconditional" in notes(prompt="   ")
    long = " ".join(f"word{i}" for i in range(30))  # character tokens: far beyond 77
    assert "was cut: “ord14 word15" in notes(prompt=long) and "word29”" in notes(prompt=long)
    assert checked(guidance=-3).guidance == 0 and "outside 0–20" in notes(guidance=-3)
    assert checked(guidance=1e9).guidance == 20 and checked(guidance=float("inf")).guidance == 20
    assert checked(steps=0).steps == 1 and checked(steps=10_000).steps == t2i.MAX_STEPS
    assert checked(width=101).width == 104 and "multiple of 8" in notes(width=101)
    assert checked(height=4096).height == 768 and "too large for this device" in notes(height=4096)
    assert checked(images=50).images == t2i.MAX_IMAGES
    assert "negative prompt is ignored" in notes(guidance=1, negative_prompt="blur")
    for change, message in [
        ({"guidance": float("nan")}, "Guidance scale must be a number"),
        ({"guidance_rescale": float("nan")}, "Guidance rescale must be a number"),
        ({"steps": float("nan")}, "Steps must be a number"),
        ({"width": "wide"}, "Width must be a number"),
        ({"seed": -1}, "Seed must be a whole number from 0 to 4294967295"),
        ({"seed": 2**32}, "Seed must be a whole number"),
        ({"seed": 1.5}, "Seed must be a whole number"),
        ({"scheduler": "Heun"}, "Unknown scheduler 'Heun'; choose one of DPM\\+\\+ 2M Karras"),
    ]:
        with pytest.raises(ValueError, match=message):
            model.check(t2i.replace(SMALL, **change))
    for scales, message in [
        ("1, lots", "numbers separated by commas"),
        ("", "between 1 and 6"),
        ([1, float("nan")], "must be a number"),
    ]:
        with pytest.raises(ValueError, match=message):
            model.guidance_grid(SMALL, scales)
    # clamped values run: nothing crashes
    result = model.generate(t2i.replace(SMALL, steps=0, guidance=-1, width=60, height=70))
    assert result.images[0].size == (64, 72) and result.settings.steps == 1


# --- the Space --------------------------------------------------------------------------------


@pytest.fixture
def space(load_space):
    return load_space("text_to_image")


def test_space_bounds_match_the_model(space):
    assert list(t2i.SCHEDULERS) == space.SCHEDULERS
    assert (space.MAX_GUIDANCE, space.MAX_STEPS, space.MAX_IMAGES) == (
        t2i.MAX_GUIDANCE,
        t2i.MAX_STEPS,
        t2i.MAX_IMAGES,
    )
    assert (space.MIN_SIDE, space.MAX_SIDE) == (t2i.MIN_SIDE, t2i.MAX_SIDE_GPU)
    assert [float(g) for g in space.GRID_SCALES.split(",")] == list(t2i.GRID_SCALES)


def test_api_endpoints_answer(space, sd, launch):
    from gradio_client import Client

    client = Client(launch(space.demo), verbose=False)
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/generate", "/guidance_grid"} <= names
    _, gallery, status, seed = client.predict(
        "a cat", "", 7.5, 0, 2, "DDIM", 64, 64, 2, 7, False, api_name="/generate"
    )
    assert seed == 7 and "seed **7**" in status and len(gallery) == 2
    meta = t2i.read_settings(gallery[1]["image"])
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

    monkeypatch.setattr(space, "PREVIEW_SECONDS", 0)
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


def test_stop_button_and_restore_handlers(space, sd, tmp_path):
    class Request:
        session_hash = "s1"

    assert space.stop(Request()) == "Nothing is running."
    stop = space._stops["s1"] = threading.Event()
    assert space.stop(Request()) == "⏹ Stopped." and stop.is_set()

    image = sd.generate(t2i.replace(SMALL, guidance=3)).images[0]
    values = space.restore(str(t2i.save_png(image, tmp_path / "x.png")))
    assert values[:9] == ("a cat in a hat", "", 3.0, 0.0, 3, "DPM++ 2M Karras", 64, 64, 42)
    assert values[9] is False and "restored" in values[-1]
    Image.new("RGB", (8, 8)).save(tmp_path / "bare.png")
    import gradio as gr

    with pytest.raises(gr.Error, match="no generation settings"):
        space.restore(str(tmp_path / "bare.png"))


def test_time_estimate_uses_the_last_run(space, sd):
    assert "first run" in space.estimate(12, 512, 512, 1, 7.5)
    space._rate[:] = [1e-6]
    assert "About 6 s" in space.estimate(12, 512, 512, 1, 7.5)  # 2 passes x 12 x 512²
    assert "About 3 s" in space.estimate(12, 512, 512, 1, 1)  # guidance off: half


@pytest.mark.browser
def test_browser_generates_an_image_in_the_suite(page, suite_url, use_model, tiny_repo):
    from shared import suite

    use_model(NAME, tiny_repo)
    page.goto(suite_url)
    page.get_by_role("tab", name=suite.label("text_to_image")).click()
    page.locator("#sd-prompt textarea").fill("a red cube")
    for side in ("#sd-width", "#sd-height"):
        box = page.locator(f"{side} input[type=number]")
        box.fill("64")
        box.press("Enter")
    page.locator("#sd-steps input[type=number]").fill("3")
    page.locator("#sd-steps input[type=number]").press("Enter")
    page.locator("#sd-generate").click()
    page.locator("#sd-gallery img").first.wait_for()
    page.locator("#sd-status").get_by_text("3 steps").wait_for()
    page.locator("#sd-status").get_by_text("64×64").wait_for()


def test_gpu_speed_ups_keep_the_images(tiny):
    """The GPU-only settings (fused QKV projections, channels-last), exercised on the CPU."""
    m = t2i.load(tiny)
    before = m.generate(SMALL).images[0]
    t2i.speed_up(m.pipe)
    assert m.pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    processors = {type(p).__name__ for p in m.pipe.unet.attn_processors.values()}
    assert processors == {"FusedAttnProcessor2_0"}  # SDPA on fused projections
    assert np.abs(pixels(m.generate(SMALL).images[0]) - pixels(before)).max() <= 1
