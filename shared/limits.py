"""Every limit a public demo enforces, in one place, each with its reason.

A public Space is reached by anyone, on 2 shared vCPUs: these keep one visitor from holding
the machine, its memory or its disk. Over a limit, the visitor gets a message naming it and
no work is done (`check_text` and friends); nothing they sent is echoed back beyond a short
excerpt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from shared.errors import UserError


@dataclass(frozen=True)
class Limit:
    value: int
    unit: str
    reason: str

    def __str__(self) -> str:
        return f"{self.value:,} {self.unit}"


# The server ---------------------------------------------------------------------------------
UPLOAD_BYTES = Limit(
    25_000_000, "bytes per upload", "a phone photo or a CSV of 200,000 pairs fits; more is abuse"
)
QUEUE = Limit(128, "waiting requests in all", "a full queue answers 'busy' at once, not in minutes")
QUEUE_PER_DEMO = Limit(
    48,
    "waiting requests per demo",
    "32 callers at once on one demo are all served (bench/load.py); a flood of slow requests "
    "must not starve the fast demos",
)
SESSIONS = Limit(
    100,
    "sessions kept in memory",
    "each session keeps a copy of the page's state (~300 KB for the suite): the least recently "
    "used are dropped beyond this",
)
TEMP_AGE = Limit(3600, "seconds a result file is kept", "downloads are for now; the disk is small")
TEMP_SWEEP = Limit(600, "seconds between sweeps of old result files", "cheap, and often enough")

# Movie recommender ------------------------------------------------------------------------
TITLE = Limit(300, "characters per movie title", "the longest MovieLens title has 81")
RATINGS = Limit(200, "ratings per visitor", "a few ratings are enough to fold a visitor in")
MOVIES = Limit(50, "movies per list", "a page of recommendations; more is a data dump")
MIN_RATINGS = Limit(
    100_000, "ratings as a list's minimum", "MovieLens 100k has 100,000 ratings in all"
)
MAP_MOVIES = Limit(5000, "movies on the factor map", "MovieLens 100k has 1,682; more is unreadable")

# Pet breed classifier (and every image the classifier family reads) --------------------------
BATCH_IMAGES = Limit(16, "images per batch", "one forward pass; more would delay everyone else")
PHOTO_PIXELS = Limit(
    8192 * 8192,
    "pixels per image",
    "a 67-megapixel photo is bigger than any phone's; more is a scan or a decompression bomb, "
    "refused from its header before decoding",
)

# Build your own classifier --------------------------------------------------------------------
BUILD_CLASSES = Limit(
    10,
    "categories",
    "a few categories is what a few minutes of fine-tuning learns well; more need more "
    "photos and time than one shared Space has",
)
BUILD_CATEGORY_TEXT = Limit(
    500, "characters of category names", "10 categories of up to 40 characters, with commas"
)
BUILD_SUFFIX = Limit(40, "characters added to each search", "a word or two, such as 'photo'")
BUILD_NAME = Limit(96, "characters per repo or Space name", "the Hub's own limit for a repo name")
BUILD_DATASET = Limit(
    200, "characters per dataset id", "owner/name, each at most 96 characters on the Hub"
)
BUILD_PHOTOS_PER_CLASS = Limit(
    150,
    "photos per category",
    "a few dozen good photos per category is enough to fine-tune (the course uses about that "
    "many); more would mostly lengthen the training queue",
)
BUILD_PHOTO_BYTES = Limit(
    15_000_000,
    "bytes per photo",
    "phone photos are 2–8 MB; a bigger file is rarely a photo and would only slow everyone down",
)
BUILD_SESSION_BYTES = Limit(
    400_000_000,
    "bytes downloaded or uploaded per session",
    "the server's disk and bandwidth are shared by every visitor",
)
BUILD_ZIP_FILES = Limit(
    2000, "files in a zip", "a zip with more entries than the photo caps allow is refused unread"
)
BUILD_EPOCHS = Limit(
    20, "epochs per training", "after the frozen one; a few are enough, the time cap ends more"
)
BUILD_TRAIN_SECONDS_CPU = Limit(
    600,
    "seconds of training per run on a CPU",
    "one training runs at a time; the cap bounds the wait of the next person in line",
)
BUILD_TRAIN_SECONDS_GPU = Limit(
    240,
    "seconds of training per run on a GPU",
    "GPU time on a shared (ZeroGPU) Space is rationed per call",
)
BUILD_SEARCH_SECONDS = Limit(
    120,
    "seconds per web search (all categories)",
    "a search waits on other people's servers; past this, the photos found so far are kept",
)
BUILD_FETCH_SECONDS = Limit(
    10, "seconds per photo download", "a slow server must not hold up the whole search"
)
BUILD_SESSION_SECONDS = Limit(
    3600,
    "seconds a session's photos and model are kept after its last use",
    "your photos and model live only in your session; an idle one is deleted",
)
BUILD_WORKSPACES = Limit(
    40, "sessions with photos at once", "each session's photos take disk on the one shared server"
)

# Text to image ------------------------------------------------------------------------------
PROMPT = Limit(
    2000, "characters per prompt", "the text encoder reads 77 tokens (~300 characters) anyway"
)
SCALES_TEXT = Limit(100, "characters of guidance scales", "six, as “1, 3, 5, 7.5, 10, 14”, need 25")
CPU_PIXEL_STEPS = Limit(
    512 * 512 * 12 * 4,
    "pixel-steps per run on a CPU (width × height × steps × images)",
    "a CPU serves one run at a time, for minutes with Stable Diffusion 1.5 on 2 vCPUs: the "
    "4-scale guidance grid at 512×512 and 12 steps (the CPU defaults) is the most one visitor "
    "may ask for",
)

# Patent phrase similarity ------------------------------------------------------------------
PHRASE = Limit(500, "characters per phrase", "patent phrases are a few words (data's longest: 98)")
CONTEXT = Limit(
    400, "characters per CPC context", "a code and its title; the longest CPC title has ~300"
)
TARGETS = Limit(1000, "target phrases per ranking", "more belongs in a CSV, which streams")
TARGETS_TEXT = Limit(
    100_000, "characters of target phrases", "1,000 phrases of 100 characters; more is a CSV"
)
CSV_ROWS = Limit(200_000, "rows per CSV", "about 10 minutes of scoring on 2 vCPUs")
CSV_BYTES = Limit(20_000_000, "bytes per CSV", "200,000 rows of phrase pairs take about 10 MB")


def _from_environment() -> None:
    """DEMO_LIMIT_<NAME>=value overrides a limit (a bigger Space, a benchmark)."""
    for name, limit in list(globals().items()):
        if isinstance(limit, Limit) and (value := os.environ.get(f"DEMO_LIMIT_{name}")):
            globals()[name] = Limit(int(value), limit.unit, limit.reason)


_from_environment()


def table() -> list[tuple[str, Limit]]:
    """Every limit with its name, for documentation."""
    return [(k, v) for k, v in globals().items() if isinstance(v, Limit)]


def excerpt(text: str, chars: int = 60) -> str:
    """The start of what someone sent, safe to show back to them."""
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def check_text(value: object, what: str, limit: Limit, *, required: bool = False) -> str:
    """`value` as text within `limit` characters, or a `UserError` naming the limit.

    Refuses what is not text (a number, a list: an API caller's mistake) and lone UTF-16
    surrogates (they cannot be encoded, so no tokenizer reads them)."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise UserError(f"The {what} must be text, not {type(value).__name__}.")
    if len(value) > limit.value:
        raise UserError(
            f"The {what} is {len(value):,} characters long; the limit is {limit} "
            f"({limit.reason}). It starts: “{excerpt(value)}”"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise UserError(
            f"The {what} contains a character that is not valid text (at position "
            f"{e.start + 1}); please retype it."
        ) from None
    if required and not value.strip():
        raise UserError(f"The {what} is empty.")
    return value


def check_number(
    value: object, what: str, low: float | None = None, high: float | None = None
) -> float:
    """`value` as a finite number within [low, high], or a `UserError` saying what is wrong."""
    if isinstance(value, bool) or value is None:
        raise UserError(f"The {what} must be a number.")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UserError(f"The {what} must be a number, not “{excerpt(str(value), 30)}”.") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise UserError(f"The {what} must be a finite number.")
    if (low is not None and number < low) or (high is not None and number > high):
        span = f"from {low:g} to {high:g}" if low is not None and high is not None else ""
        raise UserError(f"The {what} must be {span or 'in range'}; got {number:g}.")
    return number
