"""Which runtime serves a model here: PyTorch, or the ONNX graph exported beside its weights.

A family with a CPU fast path exports `model.onnx` at train time (never at start-up), measures
it against PyTorch on validation data (its accuracy guard, recorded in the folder's
metrics.json under "guards") and deletes a graph that fails. At load, `choose` picks the graph
on a CPU and PyTorch on a GPU; DEMO_RUNTIME=torch|onnx overrides. A folder without the graph is
served with PyTorch, with a one-line notice. `summary` says which runtime serves a model, for
its description; `guard_problems` is the check `publish` can make before it pushes a folder.
(shared/graphs.py runs a graph: the engines are imported only by the families that ship one.)

ONNX is a data format (a graph of standard operators and its weights): loading one runs no code.
Torch-free, and free of the engines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.errors import UserError

ENV = "DEMO_RUNTIME"
EXPORT = "model.onnx"
METRICS = "metrics.json"
log = logging.getLogger("demos")


@dataclass(frozen=True)
class Choice:
    runtime: str  # "onnx" or "torch"
    notice: str | None = None  # why the fast path is not used, when it was wanted


def wanted() -> str | None:
    """DEMO_RUNTIME: "torch", "onnx", or None (the default: the graph on a CPU, if shipped)."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in ("torch", "onnx"):
        raise UserError(f"{ENV}={value!r} is not a runtime: use torch or onnx (or leave it unset).")
    return value


def choose(
    folder: Path,
    device_type: str,
    *,
    name: str,
    engine: str = "onnxruntime",
    want: str | None = None,
) -> Choice:
    """The runtime for the model in `folder` on a `device_type` ("cpu", "cuda", "mps").
    want: "torch" or "onnx", as DEMO_RUNTIME (which it overrides) would say."""
    want = want or wanted()
    if want == "torch" or (want is None and device_type != "cpu"):
        return Choice("torch")
    why = None
    if not (Path(folder) / EXPORT).is_file():
        why = f"its files have no {EXPORT} (the CPU fast path; `train` exports it)"
    else:
        try:
            __import__(engine)
        except ImportError:
            why = f"{engine} is not installed (pip install -r requirements.txt)"
    if why is None:
        return Choice("onnx")
    notice = f"Model '{name}' runs with PyTorch, slower on a CPU: {why}."
    log.warning(notice)
    return Choice("torch", notice)


def summary(folder: Path) -> str | None:
    """Which runtime serves the model of `folder` here, in a few words for its description,
    from its metrics.json alone (no weights needed); None when it has no exported graph."""
    path = Path(folder) / METRICS
    guards = json.loads(path.read_text()).get("guards", {}) if path.is_file() else {}
    guard = guards.get("onnx")
    try:
        want = wanted()
    except UserError:
        return None  # the loader will say what is wrong with DEMO_RUNTIME
    from shared.device import likely_gpu

    if not guard or want == "torch" or (want is None and likely_gpu()):
        return None
    if not guard.get("passed"):
        return "runs with PyTorch here: its model.onnx failed its accuracy guard"
    precision = guard.get("precision") or "fp32"
    return f"CPU fast path: model.onnx ({precision}, checked against PyTorch at training)"


# --- accuracy guards, recorded in metrics.json ----------------------------------------------


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_guard(folder: Path, guard: dict, *, name: str = "onnx") -> dict:
    """Write `guard` (with "passed") into metrics.json's "guards"; a graph that failed it is
    deleted, so that no folder holds an export that was not shown to agree with PyTorch."""
    folder = Path(folder)
    graph = folder / guard.get("file", EXPORT)
    if guard["passed"] and graph.is_file():
        guard = {**guard, "bytes": graph.stat().st_size, "sha256": sha256(graph)}
    else:
        graph.unlink(missing_ok=True)
    path = folder / METRICS
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    metrics.setdefault("guards", {})[name] = guard
    path.write_text(json.dumps(metrics, indent=2))
    return guard


def exporting(folder: Path, export: Callable[[], dict], *, what: str) -> dict | None:
    """Run a family's export-and-guard step into `folder` after training; None when it could
    not run, and then no graph is left behind. Training is never lost to it: the weights are
    already written, and PyTorch serves a folder without a graph."""
    try:
        return export()
    except ImportError as e:
        log.warning("%s: no %s written: %s (pip install -r requirements-dev.txt)", what, EXPORT, e)
    except Exception:  # a bug, or an architecture the exporter cannot handle: log it in full
        log.exception("%s: exporting %s failed; PyTorch serves it on CPUs", what, EXPORT)
    (Path(folder) / EXPORT).unlink(missing_ok=True)  # never an unguarded graph
    return None


def guard_problems(folder: Path) -> list[str]:
    """Why a model folder must not be published (empty: fine): a guard that failed, or an
    export whose file is not the one its guard measured."""
    folder = Path(folder)
    path = folder / METRICS
    guards = json.loads(path.read_text()).get("guards", {}) if path.is_file() else {}
    problems = []
    for name, guard in guards.items():
        file = folder / guard.get("file", EXPORT)
        if not guard.get("passed"):
            problems.append(f"the {name} export failed its accuracy guard: {guard}")
        elif not file.is_file():
            problems.append(f"{file.name} passed its {name} guard but is missing")
        elif guard.get("sha256") and sha256(file) != guard["sha256"]:
            problems.append(f"{file.name} is not the file its {name} guard measured")
    if (folder / EXPORT).is_file() and not any(
        g.get("file", EXPORT) == EXPORT for g in guards.values()
    ):
        problems.append(f"{EXPORT} has no accuracy guard in {METRICS}")
    return problems
