"""A session's own folder of labelled photos: what it adds, removes and moves, and its model.

Every photo a session gets (a search, an upload, a zip, a Hub dataset) goes through `add`:
the caps (the builder's section of `shared.limits`), a duplicate check by content hash, and
`read_image` (type, pixels, decompression bombs, corrupt files), then it is stored downsized
as JPEG under `photos/<category>/<hash>.jpg`, with a thumbnail. Nothing is kept under a name
the sender chose. A workspace is found only by its random id (a secret the size of a session key),
which only its own session holds: one session never sees another's photos or model. A closed
session's workspace is deleted a moment later (`release`: long enough for the page reload of
signing in to take it back with `claim`); an idle one after `limits.BUILD_SESSION_SECONDS`
(`sweep`). Torch-free.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path

from models.image_classifier.fetch import mb
from models.image_classifier.images import IMAGE_EXTS, read_image
from shared import limits
from shared.errors import UserError

MIN_CLASSES = 2  # a classifier chooses between at least two things
STORED_SIDE = 512  # photos are stored downsized to this longest side: training uses ≤ 224 px
ROOT_ENV = "DEMO_BUILD_ROOT"  # where session folders go (default: the temp dir)
THUMB_SIDE = 192
RELEASE_SECONDS = 120  # a closed session's photos wait this long for its reload to claim them
ENOUGH = "enough"  # not a problem with the photo: the category has what was asked for
_ID = re.compile(r"^[0-9a-f]{32}$")
_live: dict[str, Workspace] = {}
_lock = threading.Lock()
_sweeper: threading.Thread | None = None


class SessionFull(UserError):
    """The session's byte cap is reached: nothing more can be added."""


def root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or Path(tempfile.gettempdir()) / "build-classifier")


def clean_label(text: str) -> str:
    """A category name as typed, made safe as a folder name (or a `UserError`)."""
    label = " ".join(re.sub(r"[^\w \-]", " ", text or "").split())[:40].strip(" -_")
    if not label:
        raise UserError(f"'{text[:40]}' is not a usable category name: use letters or digits.")
    return label


class Workspace:
    """One session's photos (a folder per category), their sources, and its trained model."""

    def __init__(self, folder: Path):
        self.dir = folder
        self.lock = threading.RLock()
        path = folder / "state.json"
        state = json.loads(path.read_text()) if path.is_file() else {}
        self.received = int(state.get("received", 0))  # bytes downloaded or uploaded
        self.skipped: Counter = Counter(state.get("skipped", {}))  # reason -> count
        self.sources: dict[str, dict[str, int]] = state.get("sources", {})  # label -> source -> n
        self.terms: dict[str, str] = state.get("terms", {})  # label -> search query
        self.removed: set[str] = set(state.get("removed", []))  # hashes not to bring back
        self.seen: set[str] = set()  # URLs fetched already (a later search skips them)
        self.owner: str | None = None  # the session using it now
        self.released: float | None = None  # when its session ended
        self.review: dict | None = None  # the last training's review (job.run's "done")
        self.base: str | None = None  # which base that training started from
        self.pushed: tuple[str, str, bool] | None = None  # (repo, commit, private) of the push

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def photos_dir(self) -> Path:
        return self.dir / "photos"

    @property
    def model_dir(self) -> Path:
        return self.dir / "model"

    def save(self) -> None:
        state = {
            "received": self.received,
            "skipped": dict(self.skipped),
            "sources": self.sources,
            "terms": self.terms,
            "removed": sorted(self.removed),
        }
        (self.dir / "state.json").write_text(json.dumps(state))

    # --- what is in it ---------------------------------------------------------------------

    def labels(self) -> list[str]:
        if not self.photos_dir.is_dir():
            return []
        return sorted(d.name for d in self.photos_dir.iterdir() if any(d.glob("*.jpg")))

    def photos(self, label: str) -> list[Path]:
        return sorted((self.photos_dir / label).glob("*.jpg"), key=lambda p: p.stat().st_mtime)

    def counts(self) -> dict[str, int]:
        return {label: len(self.photos(label)) for label in self.labels()}

    def thumb(self, photo: Path) -> Path:
        return self.dir / "thumbs" / photo.name

    def find(self, photo_id: str) -> Path | None:
        """The photo with this id (its hash), in whichever category it is now."""
        if not re.fullmatch(r"[0-9a-f]{16}", photo_id or ""):
            return None
        return next(self.photos_dir.glob(f"*/{photo_id}.jpg"), None)

    # --- adding ----------------------------------------------------------------------------

    def add(self, data: bytes, label: str, source: str, *, up_to: int | None = None) -> str | None:
        """Store one photo under `label`; None when kept, else why it was skipped (counted,
        except "enough": the category already has `up_to` photos). Raises `SessionFull` once
        the session's byte cap is reached."""
        with self.lock:
            self.take(len(data))
            if reason := self._check(data, label, up_to):
                return self.skip(reason)
        digest = hashlib.sha256(data).hexdigest()[:16]
        incoming = self.dir / "incoming"
        incoming.mkdir(exist_ok=True)
        tmp = incoming / f"{digest}-{secrets.token_hex(4)}"
        tmp.write_bytes(data)
        try:
            image, _ = read_image(tmp)  # type, pixels, bombs, truncation: before any decoding
            reason = None
        except UserError as e:
            reason = _why(str(e))
        finally:
            tmp.unlink(missing_ok=True)
        with self.lock:
            reason = reason or self._check(data, label, up_to)  # another thread may have added it
            if reason:
                return self.skip(reason)
            folder = self.photos_dir / label
            folder.mkdir(parents=True, exist_ok=True)
            image.thumbnail((STORED_SIDE, STORED_SIDE))
            image.save(folder / f"{digest}.jpg", quality=90)
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            (self.dir / "thumbs").mkdir(exist_ok=True)
            image.save(self.dir / "thumbs" / f"{digest}.jpg", quality=80)
            counts = self.sources.setdefault(label, {})
            counts[source] = counts.get(source, 0) + 1
            return None

    def take(self, n: int) -> None:
        """Count `n` more bytes received, or raise `SessionFull` past the session's cap."""
        if self.received + n > limits.BUILD_SESSION_BYTES.value:
            raise SessionFull(
                f"This session has received {mb(self.received)}; the cap is "
                f"{mb(limits.BUILD_SESSION_BYTES.value)} ({limits.BUILD_SESSION_BYTES.reason}). "
                "Remove what you do not need, or start a new session."
            )
        self.received += n

    def skip(self, reason: str) -> str:
        if reason != ENOUGH:
            with self.lock:
                self.skipped[reason] += 1
        return reason

    def _check(self, data: bytes, label: str, up_to: int | None = None) -> str | None:
        if len(data) > limits.BUILD_PHOTO_BYTES.value:
            return f"larger than {mb(limits.BUILD_PHOTO_BYTES.value)}"
        digest = hashlib.sha256(data).hexdigest()[:16]
        if digest in self.removed:
            return "removed by you earlier"
        if self.find(digest) is not None:
            return "duplicate"
        labels = self.labels()
        if label not in labels and len(labels) >= limits.BUILD_CLASSES.value:
            return f"over the cap of {limits.BUILD_CLASSES}"
        have = len(self.photos(label))
        if have >= limits.BUILD_PHOTOS_PER_CLASS.value:
            return f"category full ({limits.BUILD_PHOTOS_PER_CLASS})"
        if up_to is not None and have >= up_to:
            return ENOUGH
        return None

    def add_files(self, paths: list[str | Path], label: str, source: str = "upload") -> Counter:
        """Uploaded photos, all under `label`, or zips whose folders are the categories (a
        flat zip: everything under `label`). Returns {"kept": n, reason: n, ...}."""
        result: Counter = Counter()
        too_big = f"larger than {mb(limits.BUILD_PHOTO_BYTES.value)}"
        for path in map(Path, paths):
            if path.suffix.lower() == ".zip":
                for data, folder in _zip_members(path):
                    name = clean_label(folder) if folder else _need(label)
                    if isinstance(data, str):  # why it was not read
                        result[self.skip(data)] += 1
                    else:
                        result[self.add(data, name, source) or "kept"] += 1
            elif path.stat().st_size > limits.BUILD_PHOTO_BYTES.value:
                result[self.skip(too_big)] += 1  # not even read
            else:
                result[self.add(path.read_bytes(), _need(label), source) or "kept"] += 1
        self.save()
        return result

    # --- cleaning --------------------------------------------------------------------------

    def remove(self, photo_ids: list[str]) -> int:
        """Delete these photos; a later search will not bring them back."""
        n = 0
        with self.lock:
            for photo_id in photo_ids:
                if (photo := self.find(photo_id)) is not None:
                    photo.unlink()
                    self.thumb(photo).unlink(missing_ok=True)
                    self.removed.add(photo_id)
                    n += 1
            self.save()
        return n

    def move(self, photo_ids: list[str], label: str) -> int:
        """Put these photos in category `label` (relabel them)."""
        label = clean_label(label)
        n = 0
        with self.lock:
            if label not in self.labels() and len(self.labels()) >= limits.BUILD_CLASSES.value:
                raise UserError(f"At most {limits.BUILD_CLASSES}: {limits.BUILD_CLASSES.reason}.")
            for photo_id in photo_ids:
                photo = self.find(photo_id)
                if photo is not None and photo.parent.name != label:
                    (self.photos_dir / label).mkdir(parents=True, exist_ok=True)
                    photo.rename(self.photos_dir / label / photo.name)
                    n += 1
            self.save()
        return n

    def drop_label(self, label: str) -> None:
        with self.lock:
            for photo in self.photos(label):
                self.thumb(photo).unlink(missing_ok=True)
            shutil.rmtree(self.photos_dir / label, ignore_errors=True)
            self.sources.pop(label, None)
            self.terms.pop(label, None)
            self.save()

    def summary(self) -> str:
        """Markdown: photos per category and where they came from, and what was skipped."""
        counts = self.counts()
        if not counts:
            return "No photos yet."
        lines = [f"**{sum(counts.values())} photos** in {len(counts)} categories:"]
        for label, n in counts.items():
            where = ", ".join(f"{k} {v}" for k, v in self.sources.get(label, {}).items())
            lines.append(f"- **{label}**: {n}" + (f" (added: {where})" if where else ""))
        if self.skipped:
            skips = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
            lines.append(f"\nSkipped so far: {skips}.")
        return "\n".join(lines)


def _need(label: str) -> str:
    if not label:
        raise UserError("Pick the category of these photos first (or upload a zip of folders).")
    return clean_label(label)


def _why(message: str) -> str:
    """A short skip reason from `read_image`'s message."""
    if "too large" in message:
        return "too many pixels"
    if "pixels" in message:
        return "too small"
    if "is empty" in message:
        return "empty file"
    return "not a readable image"


def _zip_members(path: Path):
    """(bytes, or why not read; class folder or "") of each photo in a zip, read with the
    caps: no entry is written to disk under its own name, sizes are checked before reading."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise UserError(f"{path.name} is not a readable zip file.") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > limits.BUILD_ZIP_FILES.value:
            raise UserError(
                f"{path.name} has {len(members)} files; the cap is {limits.BUILD_ZIP_FILES} "
                f"({limits.BUILD_ZIP_FILES.reason})."
            )
        for m in members:
            parts = [p for p in m.filename.replace("\\", "/").split("/") if p]
            if not parts or any(p.startswith((".", "__MACOSX")) for p in parts):
                continue
            if Path(parts[-1]).suffix.lower() not in IMAGE_EXTS:
                continue
            folder = parts[-2] if len(parts) >= 2 else ""
            too_big = f"larger than {mb(limits.BUILD_PHOTO_BYTES.value)}"
            if m.file_size > limits.BUILD_PHOTO_BYTES.value:  # as declared: never decompressed
                yield too_big, folder
                continue
            try:
                with zf.open(m) as f:  # the declared size may lie: read one byte past the cap
                    data = f.read(int(limits.BUILD_PHOTO_BYTES.value) + 1)
            except (RuntimeError, zipfile.BadZipFile, OSError, EOFError):  # encrypted, corrupt
                yield "unreadable zip entry", folder
                continue
            yield (data if len(data) <= limits.BUILD_PHOTO_BYTES.value else too_big), folder


# --- the sessions' folders -------------------------------------------------------------------


def create(session: str) -> Workspace:
    """A new, empty workspace with a random id for `session` (expired ones deleted first)."""
    global _sweeper
    sweep()
    with _lock:
        if _sweeper is None:  # and from now on every few minutes, visitors or not
            _sweeper = threading.Thread(target=_sweep_forever, daemon=True, name="build-sweep")
            _sweeper.start()
        cap = limits.BUILD_WORKSPACES
        if len(_live) >= cap.value:
            raise UserError(
                f"The builder is busy: {cap} already ({cap.reason}). Try again in a few minutes."
            )
        folder = root() / secrets.token_hex(16)
        folder.mkdir(parents=True)
        ws = _live[folder.name] = Workspace(folder)
        ws.owner = session
        ws.save()
        return ws


def get(ws_id: str | None) -> Workspace | None:
    """The live workspace with this id (touched: in use), or None."""
    if not ws_id or not _ID.match(ws_id):
        return None
    with _lock:
        ws = _live.get(ws_id)
    if ws is not None:
        with contextlib.suppress(OSError):
            os.utime(ws.dir / "state.json")
    return ws


def claim(ws_id: str | None, session: str) -> Workspace | None:
    """The workspace `ws_id`, now `session`'s (the same browser after a reload)."""
    ws = get(ws_id)
    if ws is not None:
        ws.owner, ws.released = session, None
    return ws


def release(session: str, seconds: float = RELEASE_SECONDS) -> None:
    """`session` ended: delete its workspace in `seconds` unless another session claims it."""
    with _lock:
        owned = [ws for ws in _live.values() if ws.owner == session]
    for ws in owned:
        ws.released = time.time()
        timer = threading.Timer(seconds, _expire, (ws.id, session))
        timer.daemon = True
        timer.start()


def _expire(ws_id: str, session: str) -> None:
    ws = _live.get(ws_id)
    if ws is not None and ws.owner == session and ws.released is not None:
        discard(ws_id)


def discard(ws_id: str | None) -> None:
    """Delete a workspace and everything in it (the session ended)."""
    if not ws_id or not _ID.match(ws_id):
        return
    with _lock:
        _live.pop(ws_id, None)
    shutil.rmtree(root() / ws_id, ignore_errors=True)


def _sweep_forever() -> None:
    while True:
        time.sleep(300)
        with contextlib.suppress(OSError):
            sweep()


def sweep(now: float | None = None) -> list[str]:
    """Delete the workspaces unused for longer than `limits.BUILD_SESSION_SECONDS`."""
    now = time.time() if now is None else now
    gone = []
    if not root().is_dir():
        return gone
    for folder in root().iterdir():
        state = folder / "state.json"
        used = state.stat().st_mtime if state.is_file() else folder.stat().st_mtime
        if _ID.match(folder.name) and now - used > limits.BUILD_SESSION_SECONDS.value:
            discard(folder.name)
            gone.append(folder.name)
    return gone
