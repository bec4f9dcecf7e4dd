"""Build your own classifier: web search, safe fetching, the session's photos, training with
Stop and a line, the caps, sharing, isolation between sessions, and the whole flow in a
browser. Nothing reaches the internet: a loopback image search (tests/search_stub.py) serves
synthetic photos from 127.0.0.1, the loopback Hub stores what is pushed, gradio's local OAuth
mock signs in as the loopback Hub's user, and the pretrained base is a tiny random timm model
on the loopback Hub.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from models.image_classifier import cleaner, fetch, hub_data, job, pieces, search, share
from models.image_classifier import workspace as wsp
from shared import hub as hub_io
from shared import limits, registry
from shared.errors import UserError
from tests.conftest import above_the_fold
from tests.factories import COLOURS, draw
from tests.search_stub import Stub

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "artifacts" / "build_classifier"
pytestmark = pytest.mark.usefixtures("one_thread", "builder")


@pytest.fixture(scope="module")
def stub():
    s = Stub({**COLOURS, "yellow": (220, 200, 40)}, per_query=16, side=48)
    yield s
    s.close()


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory) -> str:
    """The pretrained base, as the builder fetches it from the Hub: a tiny timm model at 32 px,
    pretrained here on five colours (as ImageNet models are on photos), so that fine-tuning
    has features to start from."""
    from models.image_classifier.config import TrainConfig
    from models.image_classifier.train import train

    data = tmp_path_factory.mktemp("pretraining")
    rng = np.random.default_rng(7)
    colours = {**COLOURS, "yellow": (220, 200, 40), "purple": (130, 50, 160)}
    for name, rgb in colours.items():
        (data / name).mkdir()
        for i in range(24):
            draw(rgb, rng, 40).save(data / name / f"{i}.png")
    out = tmp_path_factory.mktemp("base")
    cfg = TrainConfig(
        data=data,
        arch="test_resnet",
        pretrained=False,
        size=32,
        epochs=6,
        lr=1e-2,
        bs=16,
        workers=0,
        out=out,
        examples=0,
    )
    train(cfg)
    repo = "tests/tiny-base"
    hub_io.push(out, repo)
    return repo


@pytest.fixture(scope="module")
def builder(stub, base_repo, tmp_path_factory):
    """The builder's settings for this module: the stub search, loopback photos allowed, the
    tiny base, sessions under a temp folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEMO_IMAGE_SEARCH_ENDPOINT", stub.url)
        mp.setenv(fetch.ALLOW_LOOPBACK_ENV, "1")
        mp.setenv(wsp.ROOT_ENV, str(tmp_path_factory.mktemp("sessions")))
        for name, _ in job.BASES.values():
            mp.setenv(registry.env_var(name), base_repo)
            registry.unload(name)
        yield


def session(name: str = "test") -> wsp.Workspace:
    return wsp.create(f"{name}-{time.monotonic_ns()}")


def photos_of(ws, queries: str, per_class: int = 10, **kwargs) -> search.Progress:
    *_, last = search.collect(ws, search.parse_categories(queries, "photo"), per_class, **kwargs)
    return last


def mean_colour(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=float).mean((0, 1))


# --- search and safe fetching ----------------------------------------------------------------


def test_search_keeps_good_photos_and_counts_the_rest(stub):
    ws = session()
    # as many photos as the stub has good ones: every result is read, bad ones included
    p = photos_of(ws, "red, blue", per_class=16)
    assert ws.counts() == {"blue": 16, "red": 16}
    for label in ("red", "blue"):  # every kept photo is of its category (its colour)
        for photo in ws.photos(label):
            assert np.argmax(mean_colour(photo)) == {"red": 0, "blue": 2}[label]
    # the stub's bad results: an exact duplicate, a broken JPEG, a dead link, a web page
    assert ws.skipped["duplicate"] >= 2
    assert ws.skipped["not a readable image"] == 2
    assert ws.skipped["broken link"] == 2
    assert ws.skipped["not a photo"] == 2
    assert "duplicate" in p.text() and "Skipped so far" in ws.summary()
    assert ws.terms == {"red": "red photo", "blue": "blue photo"}
    # searching again finds only photos it has: nothing is added twice
    photos_of(ws, "red, blue", per_class=16)
    assert ws.counts() == {"blue": 16, "red": 16}


def test_a_second_search_adds_only_what_is_missing(stub):
    ws = session()
    photos_of(ws, "red, blue", per_class=10)
    assert ws.counts() == {"blue": 10, "red": 10}
    photos_of(ws, "red, blue", per_class=12)
    assert ws.counts() == {"blue": 12, "red": 12}


PRIVATE = [
    "http://10.0.0.1/cat.jpg",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://192.168.1.1/router.jpg",
    "http://[fd00::1]/x.jpg",
    "http://[::ffff:10.0.0.1]/x.jpg",
    "http://0.0.0.0/x.jpg",
    "ftp://example.com/x.jpg",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("url", PRIVATE)
def test_fetch_refuses_private_addresses_before_connecting(url):
    t = time.monotonic()
    with pytest.raises(fetch.Refused, match="not a public address|only http"):
        fetch.fetch(url, fetch.Policy(allow_loopback=True))
    assert time.monotonic() - t < 1  # refused on the address, no connection tried


def test_loopback_is_refused_unless_allowed_even_through_a_name(stub):
    n = len(stub.requests)
    for url in (f"{stub.url}/img/red/0.jpg", stub.url.replace("127.0.0.1", "localhost") + "/x"):
        with pytest.raises(fetch.Refused, match="not a public address"):
            fetch.fetch(url, fetch.Policy(allow_loopback=False))
    assert len(stub.requests) == n  # nothing reached the server
    assert fetch.fetch(f"{stub.url}/img/red/0.jpg", fetch.Policy(allow_loopback=True))


def test_redirects_are_checked_at_every_hop(stub):
    allowed = fetch.Policy(allow_loopback=True)
    good = fetch.fetch(f"{stub.url}/redirect?to={stub.url}/img/red/3.jpg", allowed)
    assert good == stub.photo("red", 3)
    for target in ("http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/a.jpg"):
        with pytest.raises(fetch.Refused, match="not a public address"):
            fetch.fetch(f"{stub.url}/redirect?to={target}", allowed)
    hops = "/redirect?to=" + "/redirect?to=".join([stub.url] * 7)
    with pytest.raises(fetch.Refused):
        fetch.fetch(stub.url + hops, allowed)


def test_a_search_with_private_results_and_loopback_not_allowed(stub, monkeypatch):
    """Results pointing at 127.0.0.1 (all the stub's photos), 10.x, the metadata address, and a
    redirect to it: none is fetched, each is counted, and the search says so."""
    stub.extra = [PRIVATE[0], PRIVATE[1], f"{stub.url}/redirect?to={PRIVATE[1]}"]
    n = len(stub.requests)
    monkeypatch.setenv(fetch.ALLOW_LOOPBACK_ENV, "0")
    try:
        ws = session()
        p = photos_of(ws, "red, blue", per_class=5)
    finally:
        stub.extra = []
    assert ws.counts() == {}
    assert p.skipped["private or local address"] >= 2 * 5
    assert "private or local address" in p.text()
    fetched = [r for r in stub.requests[n:] if not r.startswith(("/?", "/i.js"))]
    assert fetched == []  # only the search itself reached the (loopback) provider


# --- the caps ----------------------------------------------------------------------------------


def test_category_caps_are_named_with_their_reason():
    with pytest.raises(UserError, match=r"at least 2 categories"):
        search.parse_categories("just one")
    eleven = ", ".join(f"thing {i}" for i in range(11))
    with pytest.raises(UserError, match=r"cap is 10 categories \(a few categories"):
        search.parse_categories(eleven)
    assert search.parse_categories("Red!, red , blue/../x", "photo") == {
        "Red": "Red photo",
        "red": "red photo",
        "blue x": "blue x photo",
    }
    table = pieces.caps_table()
    assert "| 2–10 categories |" in table and limits.BUILD_CLASSES.reason in table


def test_photo_session_and_category_caps(stub, monkeypatch):
    ws = session()
    stub.extra = [f"{stub.url}/huge.jpg"]
    try:
        monkeypatch.setattr(limits, "BUILD_PHOTOS_PER_CLASS", limits.Limit(4, "photos", "test"))
        p = photos_of(ws, "red, blue", per_class=10)
    finally:
        stub.extra = []
    assert ws.counts() == {"blue": 4, "red": 4}
    assert p.skipped["larger than 15.0 MB"] == 1  # said so by its Content-Length, never read
    bomb = fetch.fetch(f"{stub.url}/bomb.png", fetch.Policy(allow_loopback=True))
    assert ws.add(bomb, "green", "upload") == "too many pixels"  # from its header, undecoded

    monkeypatch.setattr(limits, "BUILD_CLASSES", limits.Limit(2, "categories", "test"))
    assert ws.add(stub.photo("green", 1), "green", "upload") == "over the cap of 2 categories"

    cap = limits.Limit(ws.received + 10_000, "bytes", "test")
    monkeypatch.setattr(limits, "BUILD_SESSION_BYTES", cap)
    with pytest.raises(wsp.SessionFull, match="the cap is"):
        for data in (stub.photo("red", i) for i in range(20, 40)):
            ws.add(data, "red", "upload")


def test_uploads_zips_and_their_caps(stub, tmp_path, monkeypatch):
    ws = session()
    files = []
    for i in range(3):
        files.append(tmp_path / f"p{i}.jpg")
        files[-1].write_bytes(stub.photo("green", i))
    (tmp_path / "notes.jpg").write_text("not a photo")
    assert ws.add_files([*files, tmp_path / "notes.jpg"], "green") == {
        "kept": 3,
        "not a readable image": 1,
    }
    with pytest.raises(UserError, match="Pick the category"):
        ws.add_files(files, "")
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(4):
            zf.writestr(f"bears/red/{i}.jpg", stub.photo("red", i))
            zf.writestr(f"bears/blue/{i}.jpg", stub.photo("blue", i))
        zf.writestr("bears/blue/huge.png", b"\0" * 16_000_000)  # a bomb: tiny when zipped
        zf.writestr("__MACOSX/bears/red/._0.jpg", b"junk")
    assert archive.stat().st_size < 1_000_000
    result = ws.add_files([archive], "")
    assert result == {"kept": 8, "larger than 15.0 MB": 1}
    assert ws.counts() == {"blue": 4, "green": 3, "red": 4}
    monkeypatch.setattr(limits, "BUILD_ZIP_FILES", limits.Limit(5, "files in a zip", "test"))
    with pytest.raises(UserError, match="the cap is 5 files in a zip"):
        ws.add_files([archive], "")


def test_hub_dataset_in_imagefolder_layout(stub, tmp_path, repo_id):
    data = tmp_path / "ds"
    for split, n in (("train", 5), ("test", 2)):
        for label in ("red", "green"):
            (data / split / label).mkdir(parents=True)
            for i in range(n):
                (data / split / label / f"{i}.jpg").write_bytes(stub.photo(label, i + 10 * n))
    (data / "README.md").write_text("# colours\n")
    hub_io.push(data, repo_id, repo_type="dataset", patterns=None)
    ws = session()
    *_, (done, total, outcomes) = hub_data.collect(ws, repo_id, per_class=6)
    assert (done, total) == (12, 12) and outcomes == {"kept": 12}
    assert ws.counts() == {"green": 6, "red": 6}
    assert ws.sources["red"] == {f"Hub dataset {repo_id}": 6}
    assert not (ws.dir / "incoming" / "hub").exists()  # nothing kept beside the workspace
    with pytest.raises(UserError, match="was not found on the Hub"):
        list(hub_data.collect(ws, "tests/no-such-dataset", 5))


def test_cleaning_removes_moves_and_never_brings_back(stub):
    ws = session()
    photos_of(ws, "red, blue", per_class=6)
    items, ids = cleaner.category(ws, "red")
    assert len(items) == 6 and all(Path(thumb).is_file() for thumb, _ in items)
    chosen = cleaner.toggle(ids, [], 0)
    chosen = cleaner.toggle(ids, chosen, 1)
    assert cleaner.toggle(ids, chosen, 1) == [ids[0]]  # a second click unselects
    assert [c for _, c in cleaner.category(ws, "red", chosen)[0]][:3] == ["✓ selected"] * 2 + [""]
    assert ws.remove([ids[0]]) == 1 and ws.move([ids[1]], "blue") == 1
    assert ws.counts() == {"blue": 7, "red": 4}
    photos_of(ws, "red, blue", per_class=6)  # the removed photo does not come back
    assert ws.counts() == {"blue": 7, "red": 6} and ws.find(ids[0]) is None
    removed = next(d for d in map(lambda i: stub.photo("red", i), range(16)) if _id(d) == ids[0])
    assert ws.add(removed, "red", "upload") == "removed by you earlier"  # nor under another name


# --- training: plan, run, Stop, the time cap, the line ----------------------------------------


@pytest.fixture(scope="module")
def trained(stub) -> tuple[wsp.Workspace, dict]:
    """Three colours, trained from the tiny base through `job.run`, as the Space runs it."""
    ws = session("trained")
    photos_of(ws, "red, green, blue", per_class=16)
    p = job.plan(ws.photos_dir, ws.model_dir, ws.counts(), "cpu", 6)
    events = list(job.run(vars(p)))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and kinds.count("epoch") == 7 and "step" in kinds
    ws.review, ws.base = events[-1][1], "cpu"
    return ws, events


def test_plan_estimates_before_training_and_checks_the_data(trained):
    ws, _ = trained
    p = job.plan(ws.photos_dir, ws.model_dir, ws.counts(), "cpu", 3)
    assert p.size == 32 and p.n_photos == 48 and p.seconds > 0  # the base's own 32 px
    assert "Expected time on this CPU" in p.describe() and "the cap is 10 min" in p.describe()
    with pytest.raises(UserError, match="at least 2 categories"):
        job.plan(ws.photos_dir, ws.model_dir, {"red": 10}, "cpu", 3)
    with pytest.raises(UserError, match="at least 2 photos"):
        job.plan(ws.photos_dir, ws.model_dir, {"red": 10, "blue": 1}, "cpu", 3)


def test_training_learns_and_reviews_every_photo(trained):
    ws, events = trained
    review = events[-1][1]
    assert review["classes"] == ["blue", "green", "red"]
    assert review["metrics"]["accuracy"] >= 0.6  # chance is 1/3
    cm = np.array(review["confusion_matrix"])
    assert cm.sum() == review["metrics"]["n_images"] == 9  # the validation photos
    assert Path(review["confusion"]).is_file()
    top = review["top_losses"]
    assert len(top) == 24 and top[0]["loss"] >= top[-1]["loss"]
    assert all(ws.find(r["id"]) for r in top)
    items, _ = cleaner.top_losses(ws, review)
    assert "→" in items[0][1]


def test_stop_ends_a_long_batch_within_a_second(stub, monkeypatch):
    ws = session()
    photos_of(ws, "red, blue", per_class=16)
    p = job.plan(ws.photos_dir, ws.model_dir, ws.counts(), "cpu", 20)
    p.size, p.bs = 192, 32  # long batches: the stop must come from inside one
    stop = threading.Event()
    events = job.run(vars(p), stop)
    assert next(events)[0] == "step"
    stop.set()
    t = time.monotonic()
    kind, item = next(events)
    while kind == "step":
        kind, item = next(events)
    assert (kind, item) == ("stopped", "Stopped: this run's model was dropped.")
    assert time.monotonic() - t < 1.5
    time.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name == "build-classifier-train"]
    assert not ws.model_dir.exists() and not list(ws.dir.glob("model*"))


def test_the_time_cap_stops_a_run(stub):
    ws = session()
    photos_of(ws, "red, blue", per_class=8)
    p = job.plan(ws.photos_dir, ws.model_dir, ws.counts(), "cpu", 20)
    p.cap = 1.5
    *_, (kind, item) = job.run(vars(p))
    assert kind == "stopped" and "time cap (0.025 min)" in item


def test_one_training_at_a_time_and_the_others_see_their_place():
    first, second = threading.Event(), threading.Event()
    places, went = [], []

    def wait_turn() -> None:
        with job.turn("second", second) as line:
            places.extend(line)
            went.append(time.monotonic())

    with job.turn("first", first) as line:
        assert list(line) == []  # first in line: straight through
        waiter = threading.Thread(target=wait_turn)
        waiter.start()
        time.sleep(1.5)
        assert places == [1] * len(places) and len(places) >= 1 and not went
        released = time.monotonic()
    waiter.join(5)
    assert went and went[0] >= released
    stopped = threading.Event()
    with job.turn("a", threading.Event()), job.turn("b", stopped) as line:
        stopped.set()
        with pytest.raises(UserError, match="Stopped while waiting"):
            list(line)


def test_a_stop_pressed_before_the_run_starts_stops_it(monkeypatch):
    monkeypatch.setattr(job, "EARLY", 0.3)
    switches = job.Switches()
    switches.arm("s")  # the click on Train; the run still waits in gradio's queue
    assert switches.stop("s")
    with switches.hold("s") as stop:
        assert stop.is_set()
    with switches.hold("s") as stop:  # the next run starts afresh
        assert not stop.is_set()
    # Train then Stop, whose request arrived first: the stop still counts
    assert not switches.stop("s")
    switches.arm("s")
    with switches.hold("s") as stop:
        assert stop.is_set()
    # a Stop long before a Train does not stop it
    assert not switches.stop("s")
    time.sleep(0.4)
    switches.arm("s")
    with switches.hold("s") as stop:
        assert not stop.is_set()


# --- sharing -----------------------------------------------------------------------------------


def test_push_writes_the_card_and_timm_loads_it(trained, hub):
    import timm
    import torch

    ws, _ = trained
    repo = share.repo_for("tester", "colours")
    commit = share.push(ws, repo, "cpu", ws.review, None, private=False)
    files = hub.files(repo)
    assert {"model.safetensors", "config.json", "README.md", "confusion_matrix.png"} <= set(files)
    card = files["README.md"].decode()
    for text in ("red photo", "| red |", "web search", "Validation accuracy", "hf-hub:tester/"):
        assert text in card
    assert ws.dir.as_posix() not in json.dumps({k: v.decode("latin-1") for k, v in files.items()})
    model = timm.create_model(f"hf-hub:{repo}", pretrained=True).eval()
    assert model.pretrained_cfg["label_names"] == ["blue", "green", "red"]
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    with pytest.raises(UserError, match="cannot be a repo name"):
        share.repo_for("tester", "no spaces allowed")
    space = share.create_space(repo, commit, "tester/colours-demo", None)
    pins = json.loads(hub.files("tester/colours-demo", type_="space")["pins.json"])
    assert pins == {"pets-classifier": f"{repo}@{commit}"} and space


def test_deploy_build_classifier_with_oauth(repo_id, hub, capsys):
    from shared.cli import main

    assert main(["deploy", "build_classifier", "--repo", repo_id]) == 0
    files = hub.files(repo_id, type_="space")
    front = files["README.md"].decode()
    assert "hf_oauth: true" in front and "write-repos" in front
    pins = json.loads(files["pins.json"])
    assert set(pins) == {"classifier-base-cpu", "classifier-base-gpu"}
    assert "models/image_classifier/search.py" in files and "app.py" in files


# --- sessions ----------------------------------------------------------------------------------


def test_two_sessions_never_see_each_others_photos(load_space, launch):
    app = load_space("build_classifier")
    url = launch(app.demo)
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    results = {}

    def run(name: str, client: Client, queries: str) -> None:
        results[name] = client.predict(queries, "photo", 6, api_name="/search_photos")

    threads = [
        threading.Thread(target=run, args=("a", a, "red, blue")),
        threading.Thread(target=run, args=("b", b, "green, yellow")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    status_a, status_b = results["a"][0], results["b"][0]
    assert "**red**: 6" in status_a and "green" not in status_a and "yellow" not in status_a
    assert "**green**: 6" in status_b and "red" not in status_b and "blue" not in status_b
    gallery_a = results["a"][1]  # (status, the session's photos): no state in the API
    assert {g["caption"] for g in gallery_a} == {"red", "blue"} and len(gallery_a) == 12
    photo = gallery_a[0]["image"]
    colour = mean_colour(Path(photo))
    assert np.argmax(colour) in (0, 2)  # red or blue: session a's own photos only
    # b has trained nothing and cannot reach a's workspace: it is told so
    with pytest.raises(AppError, match="Train a model first"):
        b.predict(handle_file(photo), 0.5, False, api_name="/classify_photo")


def test_a_closed_session_is_deleted_unless_its_reload_claims_it(tmp_path, monkeypatch):
    monkeypatch.setenv(wsp.ROOT_ENV, str(tmp_path))
    ws = session("closing")
    ws.add(_png(), "red", "upload")
    wsp.release(ws.owner, seconds=0.2)
    time.sleep(0.5)
    assert not ws.dir.exists() and wsp.get(ws.id) is None
    kept = session("reloading")
    wsp.release(kept.owner, seconds=0.3)
    assert wsp.claim(kept.id, "the reload") is kept
    time.sleep(0.6)
    assert kept.dir.exists()
    stale = session("idle")
    assert stale.id in wsp.sweep(now=time.time() + limits.BUILD_SESSION_SECONDS.value + 1)
    assert not stale.dir.exists() and not kept.dir.exists()


def _id(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]


def _png() -> bytes:
    buf = io.BytesIO()
    draw(COLOURS["red"], np.random.default_rng(5), 40).save(buf, "PNG")
    return buf.getvalue()


# --- in the browser ------------------------------------------------------------------------------


def shot(page, name: str, element: str | None = None) -> None:
    """A screenshot for a reviewer (artifacts/ is ignored by git)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    if element:
        page.locator(element).first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def search_clean_train(page, prefix: str, photos: str) -> None:
    """Search three colours, remove a photo, train: the builder's first half, as clicked."""
    page.locator("#build-names").get_by_role("textbox").fill("red, green, blue")
    per_class = page.locator("#build-per-class input[type=number]")
    per_class.fill("12")
    per_class.press("Tab")
    page.locator("#build-search").click()
    status = page.locator("#build-data-status")
    status.get_by_text("36 photos in 3 categories").wait_for()
    assert "Skipped so far" in status.inner_text()
    shot(page, f"{prefix}-1-photos", "#build-data-status")
    page.locator("#build-gallery img").first.click()
    page.locator("#build-gallery").get_by_text("1 selected").wait_for()
    shot(page, f"{prefix}-2-selected", "#build-gallery")
    page.locator("#build-remove").click()
    page.locator("#build-gallery").get_by_text("removed 1").wait_for()
    status.get_by_text("35 photos in 3 categories").wait_for()
    page.locator("#build-plan").get_by_text("Expected time").wait_for()
    epochs = page.locator("#build-epochs-n input[type=number]")
    epochs.fill("6")
    epochs.press("Tab")
    page.locator("#build-train").click()
    page.locator("#build-train-progress").get_by_text("Trained").wait_for(timeout=300_000)
    words = page.locator("#build-epochs").inner_text().split()
    assert (words.count("frozen"), words.count("unfrozen")) == (1, 6), words
    page.locator("#build-confusion img").wait_for()
    page.locator("#build-losses img").first.wait_for()
    shot(page, f"{prefix}-3-trained", "#build-train-progress")
    shot(page, f"{prefix}-4-review", "#build-confusion")
    page.locator("#build-photo input[type=file]").set_input_files(photos)
    page.locator("#build-answer").get_by_text("red").wait_for()
    page.locator("#build-cam img").wait_for(state="attached")
    shot(page, f"{prefix}-5-try", "#build-answer")


@pytest.mark.browser
def test_browser_search_clean_train_try_push(page, suite_url, stub, hub, tmp_path):
    from shared import suite

    photo = tmp_path / "red.jpg"
    photo.write_bytes(stub.photo("red", 99))
    page.goto(suite_url)
    tab = page.get_by_role("tab", name=suite.label("build_classifier"))
    tab.click()
    shot(page, "1280-0-start")
    search_clean_train(page, "1280", str(photo))
    # the top losses: select one and remove it (empty "move to")
    page.locator("#build-losses img").first.click()
    page.locator("#build-losses").get_by_text("1 selected").wait_for()
    page.locator("#build-clean-loss").click()
    page.locator("#build-losses").get_by_text("removed 1: retrain").wait_for()
    page.locator("#build-data-status").get_by_text("34 photos").wait_for()
    # an error a person can cause stays beside its control, and covers no input
    page.locator("#build-repo").get_by_role("textbox").fill("no spaces allowed")
    page.locator("#build-push").click()
    page.locator("#build-share-status").get_by_text("Sign in with Hugging Face first").wait_for()
    page.wait_for_timeout(10_000)
    assert page.locator("#build-share-status").get_by_text("Sign in").is_visible()
    page.locator("#build-repo").get_by_role("textbox").fill("colours-in-a-browser")
    shot(page, "1280-6-error", "#build-share-status")
    # signing in reloads the page: the session takes its photos and model back
    with page.expect_navigation():  # to /login/huggingface, redirected back to the suite
        page.locator("#build-login").click()
    tab.click()
    page.locator("#build-login").get_by_text("tester").wait_for()
    page.locator("#build-data-status").get_by_text("34 photos in 3 categories").wait_for()
    page.locator("#build-repo").get_by_role("textbox").fill("colours-in-a-browser")
    page.locator("#build-push").click()
    page.locator("#build-share").get_by_text("Pushed to").wait_for()
    shot(page, "1280-7-pushed", "#build-share")
    page.locator("#build-space").click()
    page.locator("#build-space-result").get_by_text("Your Space").wait_for()

    import timm

    model = timm.create_model("hf-hub:tester/colours-in-a-browser", pretrained=True)
    assert model.pretrained_cfg["label_names"] == ["blue", "green", "red"]
    assert (
        "hf-hub:tester/colours-in-a-browser"
        in hub.files("tester/colours-in-a-browser")["README.md"].decode()
    )


@pytest.mark.browser
def test_browser_phone_layout(browser, load_space, launch, stub, tmp_path, repo_id):
    """At 390 px: the first input and action above the fold, nothing wider than the screen;
    Stop, a zip upload, a Hub dataset and a mistake, clicked."""
    dataset = repo_id
    data = tmp_path / "ds"
    for i in range(6):
        (data / "train" / "purple").mkdir(parents=True, exist_ok=True)
        (data / "train" / "purple" / f"{i}.jpg").write_bytes(stub.photo("purple", i))
    hub_io.push(data, dataset, repo_type="dataset", patterns=None)
    photo = tmp_path / "red.jpg"
    photo.write_bytes(stub.photo("red", 98))
    url = launch(load_space("build_classifier").demo)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(90_000)
    try:
        page.goto(url)
        page.locator("#build-names").wait_for()
        shot(page, "390-0-start")
        assert above_the_fold(page.locator("#build-names"))
        assert above_the_fold(page.locator("#build-search"))  # the primary action too
        search_clean_train(page, "390", str(photo))
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide"
        # Stop stops a retrain (the model trained before stays)
        page.locator("#build-retrain").click()
        page.locator("#build-train-stop").click()
        # stopped while running (its progress says so) or still in line (its status line)
        said = page.locator("#build-train-progress, #build-train-status").get_by_text("Stopped")
        said.first.wait_for()
        shot(page, "390-6-stopped", "#build-train-stop")
        # a zip of folders adds a category
        archive = tmp_path / "more.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for i in range(4):
                zf.writestr(f"yellow/{i}.jpg", stub.photo("yellow", i))
        page.get_by_role("tab", name="Upload").click()
        page.locator("#build-files input[type=file]").set_input_files(str(archive))
        page.locator("#build-upload").click()
        status = page.locator("#build-data-status")
        status.get_by_text("Upload: 4 kept").wait_for()
        assert "yellow" in status.inner_text()
        shot(page, "390-7-uploaded", "#build-data-status")
        # a Hub dataset in imagefolder layout
        page.get_by_role("tab", name="Hub dataset").click()
        page.locator("#build-dataset").get_by_role("textbox").fill(dataset)
        page.locator("#build-hub").click()
        status.get_by_text(f"{dataset}: 6 kept").wait_for()
        assert "purple" in status.inner_text()
        # a mistake stays beside its button, and the inputs stay usable
        page.get_by_role("tab", name="Search the web").click()
        page.locator("#build-names").get_by_role("textbox").fill("just one")
        page.locator("#build-search").click()
        mistake = page.locator("#build-search-status").get_by_text("Type at least 2 categories")
        mistake.wait_for()
        page.wait_for_timeout(10_000)
        assert mistake.is_visible()  # it stays
        page.locator("#build-names").get_by_role("textbox").fill("red, blue")
        shot(page, "390-8-error", "#build-search-status")
    finally:
        context.close()
