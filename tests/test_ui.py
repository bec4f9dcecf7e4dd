"""Handlers as people and clients meet them: messages for people, bugs with a reference, and
cancelled work that really stops before its slot is given to the next job."""

from __future__ import annotations

import logging
import threading
import time

import gradio as gr
import pytest
from gradio_client import Client

from shared import cancel, ui
from shared.errors import UserError


class Work:
    """Long work that checks the stop switch every 20 ms and records what ran when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = self.most = self.steps = 0
        self.last_step = 0.0

    def run(self, steps: int) -> int:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            for _ in range(steps):
                cancel.check()
                time.sleep(0.02)
                self.steps += 1
                self.last_step = time.monotonic()
            return steps
        finally:
            with self.lock:
                self.active -= 1


def app(work: Work) -> gr.Blocks:
    @ui.errors
    @ui.stoppable
    def crunch(steps: float) -> str:
        return f"done {work.run(int(steps))}"

    @ui.errors
    @ui.stoppable
    def chunks(steps: float):
        for k in range(int(steps) // 10):
            work.run(10)
            yield f"chunk {k + 1}"

    @ui.errors
    def person(text: str) -> str:
        raise UserError(f"The phrase {text!r} is empty.")

    @ui.errors
    def bug(text: str) -> str:
        return str(1 / 0)

    with gr.Blocks() as demo:
        box, out = gr.Number(), gr.Textbox()
        limit = {"concurrency_limit": 1, "concurrency_id": "crunch"}
        box.submit(crunch, box, out, api_name="crunch", **limit)
        box.change(chunks, box, out, api_name="chunks", **limit)
        text = gr.Textbox()
        text.submit(person, text, out, api_name="person")
        text.change(bug, text, out, api_name="bug")
    return demo


@pytest.mark.parametrize("api", ["/crunch", "/chunks"])
def test_cancel_stops_the_work_and_only_then_frees_the_slot(launch, api):
    work = Work()
    client = Client(launch(app(work)), verbose=False)
    jobs = []
    for _ in range(3):  # each ~20 s of work, submitted then cancelled
        jobs.append(client.submit(1000, api_name=api))
        time.sleep(0.6)
        jobs[-1].cancel()
    cancelled = time.monotonic()
    time.sleep(1.5)
    assert work.most == 1  # never two at once: a cancelled job held its slot until it stopped
    assert work.active == 0 and work.steps < 150  # 3 x 1000 steps had they not stopped
    assert work.last_step < cancelled + 1.0  # idle within a second of the last cancel
    assert client.predict(20, api_name="/crunch") == "done 20"  # the server still serves


def test_a_person_sees_their_message_and_a_bug_a_reference(launch, caplog):
    client = Client(launch(app(Work())), verbose=False)
    with caplog.at_level(logging.INFO, logger="demos"):
        with pytest.raises(Exception, match="The phrase 'x' is empty"):
            client.predict("x", api_name="/person")
        with pytest.raises(Exception, match=r"went wrong on our side \(reference [0-9a-f]{8}\)"):
            client.predict("x", api_name="/bug")
    mine = [r for r in caplog.records if r.name == "demos"]
    person = [r for r in mine if "is empty" in r.getMessage()]
    bugs = [r for r in mine if r.getMessage().startswith("Bug in bug")]
    assert len(person) == 1 and person[0].exc_info is None  # one line, no traceback
    assert len(bugs) == 1 and bugs[0].exc_info is not None  # the traceback, once
    assert "ZeroDivisionError" not in str(client.predict(1, api_name="/crunch"))


def test_outside_a_request_check_never_stops_the_work():
    cancel.check()  # the command line: no switch, nothing raised
    switch = threading.Event()
    switch.set()
    with pytest.raises(cancel.Cancelled, match="Stopped"):
        cancel.run_with(switch, cancel.check)
    assert isinstance(cancel.Cancelled(), UserError)


# --- limits -----------------------------------------------------------------------------------


def test_text_limits_name_the_limit_and_echo_little():
    from shared import limits

    assert limits.check_text("rotating shaft", "anchor", limits.PHRASE) == "rotating shaft"
    huge = "x" * 2_000_000
    with pytest.raises(UserError) as e:
        limits.check_text(huge, "anchor", limits.PHRASE)
    assert "2,000,000 characters" in str(e.value) and "500 characters per phrase" in str(e.value)
    assert len(str(e.value)) < 300  # not the 2 MB back
    with pytest.raises(UserError, match="not valid text \\(at position 4\\)"):
        limits.check_text("abc\ud800def", "anchor", limits.PHRASE)
    with pytest.raises(UserError, match="must be text, not int"):
        limits.check_text(42, "anchor", limits.PHRASE)
    with pytest.raises(UserError, match="is empty"):
        limits.check_text("   ", "anchor", limits.PHRASE, required=True)
    for bad, message in [("abc", "must be a number"), (float("nan"), "finite"), (None, "number")]:
        with pytest.raises(UserError, match=message):
            limits.check_number(bad, "threshold", 0, 1)
    with pytest.raises(UserError, match="from 0 to 1; got 2"):
        limits.check_number(2, "threshold", 0, 1)


# --- the page's error state ---------------------------------------------------------------------


def test_reported_keeps_inputs_clears_stale_results_and_never_raises(caplog):
    def add(movie: str, rows: list):
        if not movie:
            raise UserError("Pick a movie first.")
        return rows + [movie], None

    def crash(movie: str, rows: list):
        raise KeyError("a bug")

    wrapped = ui.reported(add, clear=(False, True))
    assert wrapped("Fargo", []) == (["Fargo"], None, "")
    table, box, status = wrapped("", ["Heat"])
    assert isinstance(table, type(gr.skip())) and box is None  # the table is kept as it was
    assert status == "⚠️ Pick a movie first."
    with caplog.at_level(logging.ERROR, logger="demos"):
        *_, status = ui.reported(crash, clear=(True, True))("x", [])
    assert "reference" in status and caplog.records[-1].exc_info is not None

    def steps():
        yield 1
        raise cancel.Cancelled

    stopped = (None, "⏹ Stopped before the end.")
    assert list(ui.reported(steps, clear=(True,))()) == [(1, ""), stopped]


# --- the served model's own story ---------------------------------------------------------------


def test_describe_tells_the_served_models_story_from_its_card(tmp_path, repo_id, use_model):
    from shared import hub
    from tests.factories import tiny_timm

    folder = tiny_timm(tmp_path / "m", ["cat", "dog"])
    hub.write_card(
        folder,
        title="Cats and dogs (resnet18)",
        summary="A test.",
        library_name="timm",
        pipeline_tag="image-classification",
        task_name="Image Classification",
        dataset_name="cats-dogs",
        datasets=["me/cats-dogs"],
        base_model="timm/resnet18.a1_in1k",
        metrics={"error_rate": 0.0412},
        training="-",
        usage="-",
        license="cc-by-sa-4.0",
    )
    commit = hub.push(folder, repo_id)
    use_model("pets-classifier", repo_id)
    text = ui.describe("pets-classifier")
    assert "Cats and dogs (resnet18)" in text and f"{repo_id}/tree/{commit}" in text
    assert "timm/resnet18.a1_in1k" in text and "me/cats-dogs" in text
    assert "error_rate 0.0412" in text and "cc-by-sa-4.0" in text
    use_model("pets-classifier", "tests/never-published-here")
    assert "was not found on the Hub" in ui.describe("pets-classifier")


# --- the queue's caps ---------------------------------------------------------------------------


def test_a_flood_on_one_demo_gets_busy_and_the_others_still_answer(launch, monkeypatch):
    from shared import limits

    monkeypatch.setattr(limits, "QUEUE_PER_DEMO", limits.Limit(2, "waiting", "test"))
    work = Work()
    client = Client(launch(app(work)), verbose=False)
    jobs = [client.submit(150, api_name="/crunch") for _ in range(6)]  # 1 runs, 2 wait, 3 busy
    busy = 0
    for job in jobs:
        try:
            job.result(timeout=120)
        except Exception as e:
            # gradio_client words a 503 itself; the browser shows our message
            assert "Queue is full! Please try again" in str(e), e
            busy += 1
    assert busy >= 2 and work.most == 1
    with pytest.raises(Exception, match="is empty"):
        client.predict("x", api_name="/person")  # another demo was never blocked
