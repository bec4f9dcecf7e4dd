"""The caps of "Build your own classifier", each named once here with its reason.

A public Space is one shared machine: every cap keeps one visitor from using up what the next
one needs (disk, bandwidth, the single training slot), and each is shown to people with its
reason (`table()`), so a refusal says what the limit is and why. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cap:
    value: float
    unit: str
    reason: str

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit}"


MIN_CLASSES = 2  # a classifier chooses between at least two things
CLASSES = Cap(
    10,
    "categories",
    "a few categories is what a few minutes of fine-tuning learns well; more need more "
    "photos and time than one shared Space has",
)
PHOTOS_PER_CLASS = Cap(
    150,
    "photos per category",
    "a few dozen good photos per category is enough to fine-tune (the course uses about that "
    "many); more would mostly lengthen the training queue",
)
PHOTO_BYTES = Cap(
    15_000_000,
    "bytes per photo",
    "phone photos are 2–8 MB; a bigger file is rarely a photo and would only slow everyone down",
)
SESSION_BYTES = Cap(
    400_000_000,
    "bytes downloaded or uploaded per session",
    "the server's disk and bandwidth are shared by every visitor",
)
ZIP_FILES = Cap(
    2000, "files in a zip", "a zip with more entries than the photo caps allow is refused unread"
)
TRAIN_SECONDS_CPU = Cap(
    600,
    "seconds of training per run on a CPU",
    "one training runs at a time; the cap bounds the wait of the next person in line",
)
TRAIN_SECONDS_GPU = Cap(
    240,
    "seconds of training per run on a GPU",
    "GPU time on a shared (ZeroGPU) Space is rationed per call",
)
SEARCH_SECONDS = Cap(
    120,
    "seconds per web search (all categories)",
    "a search waits on other people's servers; past this, the photos found so far are kept",
)
FETCH_SECONDS = Cap(
    10, "seconds per photo download", "a slow server must not hold up the whole search"
)
SESSION_SECONDS = Cap(
    3600,
    "seconds a session's photos and model are kept after its last use",
    "your photos and model live only in your session; an idle one is deleted",
)
WORKSPACES = Cap(
    40,
    "sessions with photos at once",
    "each session's photos take disk on the one shared server",
)
STORED_SIDE = 512  # photos are stored downsized to this longest side: training uses ≤ 224 px


def table() -> str:
    """The caps as a Markdown table, for the page and the README."""
    rows = [
        (CLASSES, f"{MIN_CLASSES}–{CLASSES.value:g} categories"),
        (PHOTOS_PER_CLASS, None),
        (PHOTO_BYTES, f"{PHOTO_BYTES.value / 1e6:g} MB per photo"),
        (SESSION_BYTES, f"{SESSION_BYTES.value / 1e6:g} MB per session"),
        (ZIP_FILES, None),
        (SEARCH_SECONDS, None),
        (FETCH_SECONDS, None),
        (TRAIN_SECONDS_CPU, f"{TRAIN_SECONDS_CPU.value / 60:g} min of training (CPU)"),
        (TRAIN_SECONDS_GPU, f"{TRAIN_SECONDS_GPU.value / 60:g} min of training (GPU)"),
        (SESSION_SECONDS, f"deleted {SESSION_SECONDS.value / 60:g} min after last use"),
        (WORKSPACES, None),
    ]
    lines = ["| limit | why |", "|---|---|"]
    lines += [f"| {text or cap} | {cap.reason} |" for cap, text in rows]
    return "\n".join(lines)


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"
