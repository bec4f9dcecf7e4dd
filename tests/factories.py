"""Small models and data made from code, shared by the tests and the benchmarks.

Nothing here downloads: tokenizers are trained on the texts at hand, models have random weights,
and the full-size architectures (for speed benchmarks) have the real configs.
"""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

# --- images ---------------------------------------------------------------------------------

COLOURS = {"blue": (60, 80, 200), "green": (60, 170, 70), "red": (200, 60, 60)}


def draw(colour: tuple[int, int, int], rng: np.random.Generator, side: int = 40) -> Image.Image:
    a = np.clip(np.array(colour) + rng.normal(0, 25, (side, side, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(a)
    d = ImageDraw.Draw(im)
    for _ in range(2):  # distractors: squares of any colour
        x, y = rng.integers(0, side - 10, 2)
        r = rng.integers(6, 14)
        d.rectangle([x, y, x + r, y + r], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return im


def png_bomb(path: Path, w: int, h: int, *, real: bool = True) -> Path:
    """A grayscale PNG of w×h black pixels written without ever holding them in memory.
    real=False: a valid header followed by garbage, which no decoder gets through."""
    comp = zlib.compressobj(1)
    rows = b"\0" * ((w + 1) * 250)
    if real:
        data = b"".join(comp.compress(rows) for _ in range(h // 250)) + comp.flush()
    else:
        data = b"not deflate data"

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(tag + body)
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


def colour_photos(root: Path, per_class: int = 40, side: int = 40, seed: int = 0) -> Path:
    """A folder per colour class of noisy, cluttered squares: a tiny model learns them fast."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(colour, rng, side).save(root / name / f"{name}_{i}.png")
    return root


def tiny_timm(folder: Path, labels: list[str], arch: str = "test_resnet", size: int = 32) -> Path:
    """A timm classifier with random weights in timm's Hub layout (config.json with the label
    names and preprocessing, model.safetensors): what `train image-classifier` writes."""
    import timm
    import torch

    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, num_classes=len(labels))
    data_config = timm.data.resolve_data_config({"input_size": (3, size, size)}, model=model)
    timm.models.save_for_hf(
        model,
        folder,
        model_config={"label_names": list(labels)},
        safe_serialization=True,
        data_config=data_config,
    )
    return folder


# --- text: patent phrases, WordPiece, DeBERTa -------------------------------------------------

WORDS = (  # noqa: SIM905 (a word list reads better as text)
    "rotating shaft valve spring gear coil sensor battery cell lens mirror pump motor blade "
    "wheel axle bearing clamp hinge filter nozzle magnet cable socket switch lever piston "
    "chamber membrane coating adhesive layer fiber sheet panel frame bracket housing cover"
).split()
ADJ = "upper lower inner outer flexible rigid thin thick main auxiliary".split()  # noqa: SIM905
# Our own short titles for the codes the synthetic data uses (format of the CPC table).
TITLES = {
    "A": "HUMAN NECESSITIES",
    "A47": "FURNITURE; DOMESTIC ARTICLES OR APPLIANCES",
    "A47C": "CHAIRS; SOFAS; BEDS",
    "B32": "LAYERED PRODUCTS",
    "F16": "ENGINEERING ELEMENTS AND UNITS",
    "H04": "ELECTRIC COMMUNICATION TECHNIQUE",
}
CONTEXTS = ["A47", "B32", "F16", "H04"]


def synthetic_pairs(n_anchors: int = 48, seed: int = 0) -> pd.DataFrame:
    """Pairs whose score follows from word overlap, so even a tiny model can learn something."""
    rng = random.Random(seed)
    rows = []
    anchors = list(dict.fromkeys(f"{rng.choice(ADJ)} {rng.choice(WORDS)}" for _ in range(400)))
    for anchor in anchors[:n_anchors]:
        adj, noun = anchor.split()
        context = rng.choice(CONTEXTS)
        other = rng.choice([w for w in WORDS if w != noun])
        for target, score in [
            (anchor, 1.0),
            (f"{anchor}s", 1.0),
            (f"{noun} {rng.choice(WORDS)}", 0.5),
            (f"{rng.choice(ADJ)} {noun}", 0.5),
            (f"{adj} {other}", 0.25),
            (f"{rng.choice(ADJ)} {other}", 0.0),
            (" ".join(rng.sample(WORDS, 2)), 0.0),
            (f"{other} {rng.choice(WORDS)}", 0.0),
        ]:
            rows.append((anchor, target, context, score))
    df = pd.DataFrame(rows, columns=["anchor", "target", "context", "score"])
    df.insert(0, "id", [f"{i:08x}" for i in range(len(df))])
    return df


def wordpiece(texts: list[str], vocab_size: int = 400, max_length: int = 128):
    """A WordPiece tokenizer trained on `texts` (BERT-style), as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special)
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )


TINY_DEBERTA = dict(
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=128,
    relative_attention=True,
    position_buckets=16,
    pos_att_type=["p2c", "c2p"],
    norm_rel_ebd="layer_norm",
    share_att_key=True,
    position_biased_input=False,
    type_vocab_size=0,
)
# microsoft/deberta-v3-small's config.json (the architecture, not the weights).
DEBERTA_V3_SMALL = dict(
    vocab_size=128100,
    hidden_size=768,
    num_hidden_layers=6,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu",
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    max_position_embeddings=512,
    type_vocab_size=0,
    initializer_range=0.02,
    layer_norm_eps=1e-7,
    relative_attention=True,
    max_relative_positions=-1,
    position_buckets=256,
    norm_rel_ebd="layer_norm",
    share_att_key=True,
    pos_att_type=["p2c", "c2p"],
    position_biased_input=False,
    pad_token_id=0,
)


def deberta_base(
    folder: Path, texts: list[str], arch: dict = TINY_DEBERTA, vocab: int = 400
) -> Path:
    """A local base "checkpoint": a tokenizer trained on `texts` and a DeBERTa-v2 config (no
    weights, so training starts from random ones)."""
    from transformers import DebertaV2Config

    tokenizer = wordpiece(texts, vocab, arch.get("max_position_embeddings", 512))
    config = DebertaV2Config(
        **{**arch, "vocab_size": tokenizer.vocab_size, "pad_token_id": tokenizer.pad_token_id}
    )
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# A DeBERTa-v3-style cross-encoder small enough to train from scratch on the real phrase pairs
# in minutes on a CPU (the accuracy guards of the CPU fast path need a trained model).
SMALL_DEBERTA = {
    **TINY_DEBERTA,
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 512,
    "max_position_embeddings": 512,
    "position_buckets": 64,
}


def usppm_base(folder: Path, usppm: Path, arch: dict = SMALL_DEBERTA, vocab: int = 4000) -> Path:
    """A base folder for `train patent-similarity --base`: a WordPiece tokenizer trained on the
    phrases and CPC titles of the real data in `usppm`, and a DeBERTa config (no weights)."""
    pairs = pd.read_csv(usppm / "train.csv")
    titles = pd.read_csv(usppm / "cpc_titles.csv").title.str.lower()
    texts = pd.concat([pairs.anchor, pairs.target, titles]).astype(str).tolist()
    return deberta_base(folder, texts, arch, vocab)


# --- ratings ----------------------------------------------------------------------------------

NOISE = 0.3


def synthetic_truth(n_users=300, n_items=200, rank=4, seed=0) -> dict[str, np.ndarray]:
    """The hidden model behind `synthetic_ratings` (same arguments): users' and movies' rank-4
    tastes and biases. Stars = 3.3 + user bias + movie bias + users · items + noise."""
    rng = np.random.default_rng(seed)
    users, items = rng.normal(0, 0.5, (n_users, rank)), rng.normal(0, 0.5, (n_items, rank))
    bu, bi = rng.normal(0, 0.3, n_users), rng.normal(0, 0.4, n_items)
    return {"users": users, "items": items, "user_bias": bu, "item_bias": bi, "rng": rng}


def synthetic_ratings(n_users=300, n_items=200, rank=4, density=0.3, seed=0) -> pd.DataFrame:
    """Ratings = global mean + biases + a rank-4 product + Gaussian noise (sd NOISE), 1-5."""
    t = synthetic_truth(n_users, n_items, rank, seed)
    rng, users, items, bu, bi = t["rng"], t["users"], t["items"], t["user_bias"], t["item_bias"]
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    r = 3.3 + bu[u] + bi[i] + (users[u] * items[i]).sum(1) + rng.normal(0, NOISE, len(u))
    return pd.DataFrame(
        {
            "user": (u + 1).astype(str),
            "item": (i + 1).astype(str),
            "rating": np.clip(r, 1, 5).astype(np.float32),
            "title": [f"Movie {k + 1} ({1950 + k % 50})" for k in i],
        }
    )


GENRES = ("unknown", "Action", "Comedy", "Drama")


def write_movielens(folder: Path, ratings: pd.DataFrame | None = None) -> Path:
    """A MovieLens-format folder: u.data (tab), u.item (latin-1, |), u.genre. Without `ratings`,
    a tiny one (20 users x 10 movies); with them (e.g. `synthetic_ratings()`), those ratings in
    their order, each movie titled as they say with a genre or two."""
    folder.mkdir(parents=True, exist_ok=True)
    if ratings is None:
        rows = [(u, i, 1 + (u * i) % 5) for u in range(1, 21) for i in range(1, 11)]
        titles = {k: "Café Society (1995)" if k == 1 else f"Film {k} (1990)" for k in range(1, 11)}
        flags = {k: (0, k % 2, 1, 0) for k in titles}
    else:
        rows = list(zip(ratings["user"], ratings["item"], ratings["rating"], strict=True))
        titles = dict(zip(ratings["item"].astype(int), ratings["title"], strict=True))
        flags = {k: (0, int(k % 3 == 0), int(k % 3 == 1), int(k % 2 == 0)) for k in titles}
    lines = [f"{u}\t{i}\t{r:g}\t{880000000 + n}\n" for n, (u, i, r) in enumerate(rows)]
    (folder / "u.data").write_text("".join(lines))
    (folder / "u.genre").write_text("".join(f"{g}|{n}\n" for n, g in enumerate(GENRES)) + "\n")
    items = [
        f"{k}|{titles[k]}|01-Jan-1995||http://x|{'|'.join(map(str, flags[k]))}\n"
        for k in sorted(titles)
    ]
    (folder / "u.item").write_bytes("".join(items).encode("latin-1"))
    return folder


def movielens_zip(folder: Path) -> tuple[bytes, dict[str, str]]:
    """GroupLens' archive layout (ml-100k/...) of a `write_movielens` folder, and the sha256 of
    each file (what DEMO_MOVIELENS_SHA256 expects of a mirror)."""
    import hashlib
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f"ml-100k/{f.name}")
    sums = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.iterdir()}
    return buf.getvalue(), sums


def tiny_recommender(folder: Path, recipe=None, *, card: bool = True, movielens: bool = False):
    """A recommender trained on `synthetic_ratings` (a random 80/20 split, seed 0; seconds on a
    CPU), saved in Hub layout with its model card: what `train recommender` writes. Returns the
    `Trained` model (its `.data` is the split). movielens=True: read from a MovieLens-format
    folder, so the model says it was trained on MovieLens 100k (its users' ratings can be
    fetched from GroupLens, or a stand-in)."""
    import tempfile

    from models.recommender.config import Recipe
    from models.recommender.data import load_data
    from models.recommender.export import save, write_card
    from models.recommender.train import train

    recipe = recipe or Recipe(factors=8, epochs=30, lr=3e-2, wd=1.0, bs=1024, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        if movielens:
            source = write_movielens(Path(tmp) / "ml-100k", synthetic_ratings())
        else:
            source = Path(tmp) / "ratings.csv"
            synthetic_ratings().to_csv(source, index=False)
        data = load_data(source, valid_pct=0.2, seed=0)
    trained = train(recipe, data, progress=False)
    save(trained, folder, recipe)
    if card:
        write_card(Path(folder), recipe, trained, None)
    return trained


# --- Stable Diffusion -------------------------------------------------------------------------


def byte_vocab() -> dict[str, int]:
    """A character-level CLIP vocabulary: GPT-2's byte alphabet, each symbol alone and at a word
    end, plus the start and end tokens (CLIP's tokenizer needs nothing more)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    symbols = [chr(b) for b in printable] + [chr(256 + i) for i in range(256 - len(printable))]
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab |= {s + "</w>": len(symbols) + i for i, s in enumerate(symbols)}
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    return vocab


def tiny_sd(folder: Path) -> Path:
    """A Stable Diffusion pipeline small enough for a test: random weights, SD's layout (VAE
    scale factor 8, 4 latent channels, 77-token CLIP text encoder, a real safety checker)."""
    import torch
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


def sd15(folder: Path) -> Path:
    """SD-1.5's architecture (UNet 860M, VAE, CLIP ViT-L/14 text encoder, safety checker) with
    random weights, saved in diffusers layout. The tokenizer is the tests' byte-level one."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline
    from diffusers import UNet2DConditionModel as UNet
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
    )

    vocab = byte_vocab()
    unet = UNet(
        sample_size=64,
        cross_attention_dim=768,
        attention_head_dim=8,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=512,
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            bos_token_id=len(vocab) - 2,
            eos_token_id=len(vocab) - 1,
        )
    )
    vision = {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "patch_size": 14,
        "image_size": 224,
    }
    checker = StableDiffusionSafetyChecker(
        CLIPConfig(text_config={"hidden_size": 768}, vision_config=vision, projection_dim=768)
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        steps_offset=1,
        set_alpha_to_one=False,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77),
        unet=unet,
        scheduler=scheduler,
        safety_checker=checker,
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
    )
    pipe.save_pretrained(folder)
    return folder


# --- every demo at once -------------------------------------------------------------------------


def tiny_patent(root: Path) -> Path:
    """A patent scorer fine-tuned for one short epoch on `synthetic_pairs` from a tiny DeBERTa
    (seconds on a CPU), with the CPC titles: what `train patent-similarity` writes."""
    from models.patent_similarity.config import TrainConfig
    from models.patent_similarity.data import TEMPLATE
    from models.patent_similarity.train import train

    root.mkdir(parents=True, exist_ok=True)
    df = synthetic_pairs()
    df.to_csv(root / "train.csv", index=False)
    pd.DataFrame({"code": list(TITLES), "title": list(TITLES.values())}).to_csv(
        root / "cpc_titles.csv", index=False
    )
    texts = [
        TEMPLATE.format(context=c, target=t, anchor=a)
        for a, t, c in zip(df.anchor, df.target, df.context, strict=True)
    ] + [t.lower() for t in TITLES.values()]
    cfg = TrainConfig(
        data=root / "train.csv",
        cpc=root / "cpc_titles.csv",
        out=root / "model",
        base=str(deberta_base(root / "base", texts)),
        epochs=1,
        lr=3e-3,
        batch_size=8,
        use_cpc_titles=True,
        seed=0,
    )
    train(cfg)
    return cfg.out


def tiny_suite(root: Path) -> dict[str, Path]:
    """A small model for every registry model, each in its family's Hub layout: what the
    suite serves in the load benchmark and the hostile-input tests."""
    models = {
        "pets-classifier": tiny_timm(root / "pets", ["Abyssinian", "Bengal", "american_bulldog"]),
        "patent-similarity": tiny_patent(root / "patent"),
        "stable-diffusion": tiny_sd(root / "sd"),
    }
    tiny_recommender(root / "recommender")
    models["movie-recommender"] = root / "recommender"
    return models
