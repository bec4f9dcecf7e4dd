"""The patent Space against hostile input and heavy jobs, through gradio_client as anyone on
the internet reaches it: every refusal is a message for a person (no traceback, no library
words, no local path, little of the input echoed), no work is done over a limit, the server
keeps serving, and cancelled CSV jobs stop and hold their slot until they have.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from gradio_client import Client, handle_file

from shared import hub, limits, registry
from tests.factories import synthetic_pairs, tiny_patent
from tests.hostile import LEAKS, TEXTS, WRONG_TYPES, for_a_person, message_of

NAME = "patent-similarity"
GOOD = {"anchor": "upper valve", "target": "upper valves", "context": "F16"}
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_patent(tmp_path_factory.mktemp("patent-hostile"))


@pytest.fixture(scope="module")
def client(model, load_space) -> Client:
    """The Space on the tiny model, served once for the module (bad input changes nothing)."""
    from shared import serve

    repo = f"tests/patent-hostile-{time.monotonic_ns()}"
    hub.push(model, repo)
    mp = pytest.MonkeyPatch()
    mp.setenv(registry.env_var(NAME), repo)
    registry.unload(NAME)
    demo = load_space("patent_similarity").demo
    _, url, _ = serve.launch(demo, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield Client(url, verbose=False)
    demo.close()
    registry.unload(NAME)
    mp.undo()


def refused(client: Client, *args, api_name: str) -> str:
    if any(isinstance(a, str) and SURROGATE.search(a) for a in args):
        return raw_refusal(client, args, api_name)
    with pytest.raises(Exception) as e:  # noqa: PT011 (gradio_client raises AppError)
        client.predict(*args, api_name=api_name)
    return for_a_person(message_of(e.value))


SURROGATE = re.compile("[\ud800-\udfff]")


def raw_refusal(client: Client, args: tuple, api_name: str) -> str:
    """A call sent as raw JSON (gradio_client cannot encode a lone surrogate; a script can, as
    the escape \\ud800) through gradio's REST API: its error message."""
    base = f"{client.src.rstrip('/')}/gradio_api/call{api_name}"
    body = json.dumps({"data": list(args)})  # ensure_ascii: the surrogate as an escape
    headers = {"Content-Type": "application/json"}
    event = httpx.post(base, content=body, headers=headers, timeout=30).json()["event_id"]
    stream = httpx.get(f"{base}/{event}", timeout=60).text
    assert "event: error" in stream, stream[:300]
    error = json.loads(stream.split("event: error\ndata:", 1)[1].strip().splitlines()[0])
    return for_a_person((error or {}).get("error") or "")


def healthy(client: Client) -> None:
    score, meaning, _ = client.predict(*GOOD.values(), api_name="/score")
    assert 0 <= score <= 1 and " · " in meaning


def answered_or_refused(client: Client, args: tuple, api_name: str) -> None:
    """Hostile but legal text may be scored; if refused, the refusal is for a person."""
    try:
        out = client.predict(*args, api_name=api_name)
    except Exception as e:
        message = for_a_person(message_of(e))
        assert "a" * 101 not in message  # nothing long echoed back
        return
    if api_name == "/score":
        assert 0 <= out[0] <= 1
    else:
        assert all(0 <= row[2] <= 1 for row in out[0]["data"])


# --- text fields ---------------------------------------------------------------------------

# What must be refused, per field, and the words the refusal must have.
MUST_REFUSE = {
    "huge": "the limit is",
    "surrogate": "not valid text",
}


@pytest.mark.parametrize("field", ["anchor", "target", "context"])
@pytest.mark.parametrize("kind", list(TEXTS) + list(WRONG_TYPES))
def test_score_text_fields(client, field, kind):
    value = TEXTS.get(kind, WRONG_TYPES.get(kind))
    args = tuple(value if k == field else v for k, v in GOOD.items())
    if kind in MUST_REFUSE:
        message = refused(client, *args, api_name="/score")
        assert MUST_REFUSE[kind] in message and len(message) < 400
    elif kind in ("empty", "blank"):
        assert "empty" in refused(client, *args, api_name="/score") or field == "context"
    else:
        answered_or_refused(client, args, "/score")
    healthy(client)


@pytest.mark.parametrize("field", ["anchor", "targets", "context"])
@pytest.mark.parametrize("kind", ["empty", "huge", "surrogate", "html", "list", "number"])
def test_rank_text_fields(client, field, kind):
    good = {"anchor": "upper valve", "targets": "upper valves\nthin mirror", "context": "F16"}
    value = TEXTS.get(kind, WRONG_TYPES.get(kind))
    args = tuple(value if k == field else v for k, v in good.items())
    if kind in MUST_REFUSE:
        assert MUST_REFUSE[kind] in refused(client, *args, api_name="/rank")
    else:
        answered_or_refused(client, args, "/rank")
    healthy(client)


def test_rank_limits(client):
    many = "\n".join(f"target {i}" for i in range(limits.TARGETS.value + 1))
    assert "too many" in refused(client, "valve", many, "F16", api_name="/rank")
    one_long = "valve\n" + "x" * (limits.PHRASE.value + 1)
    message = refused(client, "valve", one_long, "F16", api_name="/rank")
    assert "target on line 2" in message and "the limit is" in message
    healthy(client)


# --- CSV files -----------------------------------------------------------------------------

HEADER = "anchor,target,context,score\n"
BAD_CSVS = {
    "empty": (b"", "empty"),
    "blank": (b"\n\n  \n", "empty"),
    "binary": (b"PK\x03\x04\x00\x00binary", "binary"),
    "latin-1": (HEADER.encode() + "caf\xe9,x,F16,1\n".encode("latin-1"), "not UTF-8"),
    "cut-utf8": (HEADER.encode() + "café".encode()[:-1], "not UTF-8"),
    "no-columns": (b"id;phrase\n1;x\n", "lacks the column"),
    "header-only": (HEADER.encode(), "no rows"),
    "duplicate-columns": (b"anchor,target,context,anchor\nx,y,F16,z\n", "same name"),
    "all-ragged": (HEADER.encode() + b"x\ny\n", "None of the 2 rows"),
    "unclosed-quote": (HEADER.encode() + b'"x,' + b"y" * 200_000 + b"\n", "field over"),
    "huge-header": (b"=" + b"h" * 200 + b",b\n1,2\n", "lacks the column"),
}


@pytest.mark.parametrize("kind", list(BAD_CSVS))
def test_bad_csv_files(client, tmp_path, kind):
    content, words = BAD_CSVS[kind]
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(content)
    message = refused(client, handle_file(str(path)), api_name="/score_csv")
    assert words in message and "h" * 101 not in message
    healthy(client)


@pytest.mark.parametrize("value", [None, "pairs.csv", 12345, ["x"]], ids=repr)
def test_csv_endpoint_wrong_types(client, value):
    message = refused(client, value, api_name="/score_csv")
    assert "file" in message.lower()
    healthy(client)


@pytest.mark.parametrize("limit", ["CSV_BYTES", "CSV_ROWS"])
def test_csv_over_a_limit_does_no_work(client, tmp_path, monkeypatch, limit):
    monkeypatch.setattr(limits, limit, limits.Limit(100, getattr(limits, limit).unit, "a test"))
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "upper valve,upper valves,F16,1\n" * 200)
    predictor = registry.load(NAME)
    calls = []
    monkeypatch.setattr(predictor, "score_ids", lambda *a, **k: calls.append(1))
    message = refused(client, handle_file(str(path)), api_name="/score_csv")
    assert "the limit is 100" in message and calls == []


def test_hostile_cells_are_scored_and_neutralised(client, tmp_path):
    rows = [
        "=cmd|' /C calc'!A0,+SUM(1;2),F16,1",
        "@SUM(A1),-2+3,F16,0.5",
        "upper valve,upper valves,F16,5",
        "upper valve,upper valves,F16,nan",
        "upper valve,upper valves,F16,1,extra",
        f"{TEXTS['html']},{'é' * 300},{'Z' * 5000},0",
    ]
    path = tmp_path / "hostile.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    out, summary, plot = client.predict(handle_file(str(path)), api_name="/score_csv")
    assert not [leak for leak in LEAKS if leak.search(summary)]
    assert "Scored 5 of 6 rows" in summary and plot is None
    assert "line 6: 5 fields where the header has 4" in summary
    assert "line 4: score 5 is outside 0–1" in summary and "not a number" in summary
    assert "No Pearson correlation: n = 3" in summary and "Z" * 21 not in summary
    scored = pd.read_csv(out, keep_default_na=False, dtype=str)
    cells = scored.iloc[:, :3].to_numpy().ravel()
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert scored.anchor[0].startswith("'=") and scored.target[1] == "'-2+3"


def test_scored_file_is_written_once(client, tmp_path):
    from gradio.utils import get_upload_folder

    stem = f"once-{time.monotonic_ns()}"
    path = tmp_path / f"{stem}.csv"
    path.write_text(HEADER + "upper valve,upper valves,F16,1\n")
    remote = Client(client.src, verbose=False, download_files=False)  # nothing downloaded
    remote.predict(handle_file(str(path)), api_name="/score_csv")
    written = list(Path(get_upload_folder()).rglob(f"{stem}-scored.csv"))
    assert len(written) == 1  # served from where it was written, not copied


# --- cancelled jobs stop, one at a time ----------------------------------------------------


def test_cancelled_csv_jobs_stop_and_hold_their_slot(client, tmp_path, monkeypatch):
    big = synthetic_pairs().sample(n=100_000, replace=True, random_state=0)
    src = tmp_path / "big.csv"
    big[["anchor", "target", "context", "score"]].to_csv(src, index=False)
    healthy(client)  # the model is loaded: spy on the instance the Space uses
    predictor = registry.load(NAME)
    lock, state = threading.Lock(), {"now": 0, "most": 0, "batches": 0, "last": 0.0}
    score_ids = predictor.score_ids

    def spy(ids, batch_size=None):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            return score_ids(ids, batch_size)
        finally:
            with lock:
                state["now"] -= 1
                state["batches"] += 1
                state["last"] = time.monotonic()

    monkeypatch.setattr(predictor, "score_ids", spy)
    for _ in range(3):
        started = state["batches"]
        job = client.submit(handle_file(str(src)), api_name="/score_csv")
        deadline = time.monotonic() + 60
        while state["batches"] <= started and time.monotonic() < deadline:
            time.sleep(0.05)  # until this job really scores
        assert state["batches"] > started, "the job never started"
        job.cancel()
    cancelled = time.monotonic()
    time.sleep(1.0)
    cpu = time.process_time()
    time.sleep(1.0)
    assert state["most"] == 1  # never two jobs scoring at once
    assert state["now"] == 0 and state["last"] < cancelled + 1.0  # stopped within a second
    assert time.process_time() - cpu < 0.3  # and the CPU is idle
    assert state["batches"] < 3 * 100_000 // 4096  # none ran to its end
    healthy(client)
