"""Photos from a web image search, as in lesson 1 ("is it a bird?"), safely.

`image_urls` asks the search provider (DuckDuckGo image search through the `ddgs` package by
default) for photo URLs; `collect` downloads them with `fetch` (public addresses only, byte
cap, time limit) into a session's `Workspace`, where each one is checked like an upload, and
reports its progress as it goes. The provider and its endpoint are settings:

    DEMO_IMAGE_SEARCH=duckduckgo                      # a ddgs images backend (or bing, auto)
    DEMO_IMAGE_SEARCH_ENDPOINT=https://duckduckgo.com # a DuckDuckGo-compatible endpoint

Torch-free; `ddgs` is imported on first use.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass

from models.image_classifier import fetch
from models.image_classifier.workspace import (
    ENOUGH,
    MIN_CLASSES,
    SessionFull,
    Workspace,
    clean_label,
)
from shared import limits
from shared.errors import UserError

DEFAULT_ENDPOINT = "https://duckduckgo.com"
WORKERS = 8  # downloads at once: most of a search's time is waiting on other servers
EXTRA = 1.6  # ask for this many more URLs than photos wanted: some fail or are duplicates


@dataclass(frozen=True)
class Provider:
    """Where image searches go: a `ddgs` images backend, and for DuckDuckGo its endpoint."""

    name: str = "duckduckgo"
    endpoint: str = DEFAULT_ENDPOINT
    timeout: int = 15

    @classmethod
    def from_env(cls) -> Provider:
        return cls(
            name=os.environ.get("DEMO_IMAGE_SEARCH", "").strip() or "duckduckgo",
            endpoint=(
                os.environ.get("DEMO_IMAGE_SEARCH_ENDPOINT", "").strip() or DEFAULT_ENDPOINT
            ).rstrip("/"),
        )

    def describe(self) -> str:
        if self.name == "duckduckgo" and self.endpoint != DEFAULT_ENDPOINT:
            return f"DuckDuckGo-compatible image search at {self.endpoint}"
        return "DuckDuckGo image search" if self.name == "duckduckgo" else f"{self.name} images"


def image_urls(query: str, n: int, provider: Provider | None = None) -> list[str]:
    """Up to `n` photo URLs for `query` (no duplicates), or a `UserError` if the search fails."""
    provider = provider or Provider.from_env()
    from ddgs.exceptions import DDGSException

    try:
        if provider.name == "duckduckgo":
            return _duckduckgo(query, n, provider)
        from ddgs import DDGS

        found = DDGS(timeout=provider.timeout).images(query, backend=provider.name, max_results=n)
        return list(dict.fromkeys(r["image"] for r in found if r.get("image")))[:n]
    except DDGSException as e:
        raise UserError(
            f"The image search for '{query}' failed ({provider.describe()}: "
            f"{type(e).__name__}). Try again in a minute, or upload photos instead."
        ) from None


def _duckduckgo(query: str, n: int, provider: Provider) -> list[str]:
    """ddgs' DuckDuckGo images engine, pointed at `provider.endpoint`, page by page."""
    from ddgs.engines.duckduckgo_images import DuckduckgoImages
    from ddgs.utils import _extract_vqd

    class Endpoint(DuckduckgoImages):
        search_url = f"{provider.endpoint}/i.js"

        def _get_vqd(self, q: str) -> str:  # the same request as ddgs', at the endpoint
            page = self.http_client.request("GET", provider.endpoint, params={"q": q})
            return _extract_vqd(page.content, q)

    engine = Endpoint(timeout=provider.timeout)
    urls: list[str] = []
    for page in range(1, 4):  # DuckDuckGo gives about 100 a page
        results = engine.search(query, safesearch="on", page=page) or []
        urls = list(dict.fromkeys([*urls, *(r.image for r in results if r.image)]))
        if len(urls) >= n or not results:
            break
    return urls[:n]


@dataclass
class Progress:
    """Where a search is: photos kept so far (of `wanted`), the category, what was skipped."""

    done: int
    wanted: int
    label: str
    kept: Counter
    skipped: Counter
    note: str = ""

    def text(self) -> str:
        kept = ", ".join(f"{label} {n}" for label, n in self.kept.items()) or "none yet"
        skips = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common(6))
        return (
            f"Kept: {kept}."
            + (f" Skipped: {skips}." if skips else "")
            + (f" {self.note}" if self.note else "")
        )


def collect(
    ws: Workspace,
    queries: dict[str, str],
    per_class: int,
    *,
    provider: Provider | None = None,
    policy: fetch.Policy | None = None,
    stop: threading.Event | None = None,
    seconds: float = limits.BUILD_SEARCH_SECONDS.value,
) -> Iterator[Progress]:
    """Search `queries` ({category: search terms}) and add up to `per_class` photos of each to
    `ws`, yielding progress after every photo. Stops (keeping what it has) when `stop` is set,
    after `seconds`, or when the session's byte cap is reached."""
    provider = provider or Provider.from_env()
    policy = policy or fetch.Policy.from_env()
    stop = stop or threading.Event()
    deadline = time.monotonic() + seconds
    per_class = int(min(per_class, limits.BUILD_PHOTOS_PER_CLASS.value))
    kept: Counter = Counter()
    skipped: Counter = Counter()
    wanted = per_class * len(queries)
    source = f"web search ({provider.describe()})"

    def one(url: str, label: str, up_to: int) -> str:
        ws.seen.add(url)
        try:
            data = fetch.fetch(url, policy, stop=stop)
        except fetch.Refused as e:
            return ws.skip(_reason(str(e)))
        return ws.add(data, label, source, up_to=up_to) or "kept"

    def count(futures, label: str) -> int:
        """Tally finished downloads; returns how many were kept."""
        n = 0
        for future in futures:
            outcome = future.result()
            if outcome == "kept":
                kept[label] += 1
                n += 1
            elif outcome not in (ENOUGH, "stopped"):
                skipped[outcome] += 1
        return n

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="image-search") as pool:
        for label, query in queries.items():
            ws.terms[label] = query
            need = per_class - len(ws.photos(label))
            if need <= 0 or stop.is_set() or time.monotonic() > deadline:
                continue
            searching = f"Searching '{query}'…"
            yield Progress(sum(kept.values()), wanted, label, kept, skipped, searching)
            ask = min(300, round(need * EXTRA) + 5 + len(ws.seen))  # the seen ones come again
            found = image_urls(query, ask, provider)
            urls = iter([u for u in found if u not in ws.seen])  # each URL fetched once a session
            running: set = set()
            try:
                while need > 0 and not stop.is_set() and time.monotonic() < deadline:
                    while len(running) < WORKERS and len(running) < need * 2:
                        if (url := next(urls, None)) is None:
                            break
                        running.add(pool.submit(one, url, label, per_class))
                    if not running:
                        break
                    finished, running = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                    need -= count(finished, label)
                    if finished:
                        yield Progress(sum(kept.values()), wanted, label, kept, skipped)
                # the downloads under way end too (on stop, at their next chunk)
                need -= count(wait(running).done, label)
                running = set()
            except SessionFull:
                stop.set()
                raise
            finally:
                for future in running:
                    future.cancel()
                wait(running)
        ws.save()
    note = "Stopped." if stop.is_set() else ""
    if time.monotonic() > deadline:
        note = f"Stopped at the search time limit ({limits.BUILD_SEARCH_SECONDS})."
    yield Progress(sum(kept.values()), wanted, "", kept, skipped, note)


def _reason(message: str) -> str:
    """A skip reason to count, from a refusal: the kind, not the address."""
    for key, reason in (
        ("not a public address", "private or local address"),
        ("only http", "not an http(s) link"),
        ("larger than", f"larger than {fetch.mb(limits.BUILD_PHOTO_BYTES.value)}"),
        ("took too long", "too slow"),
        ("answered", "broken link"),
        ("not a photo", "not a photo"),
        ("stopped", "stopped"),
    ):
        if key in message:
            return reason
    return "could not be downloaded"


def parse_categories(text: str, suffix: str = "") -> dict[str, str]:
    """{category: search query} from a comma- or line-separated list, with the caps."""
    names = [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()]
    labels = list(dict.fromkeys(clean_label(n) for n in names))
    if len(labels) < MIN_CLASSES:
        raise UserError(
            f"Type at least {MIN_CLASSES} categories, separated by commas "
            "(for example: grizzly bear, black bear, teddy bear)."
        )
    cap = limits.BUILD_CLASSES
    if len(labels) > cap.value:
        raise UserError(f"{len(labels)} categories: the cap is {cap} ({cap.reason}).")
    suffix = " ".join(suffix.split())[:40]
    return {label: f"{label} {suffix}".strip() for label in labels}
