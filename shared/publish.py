"""Publish your own copy: every model trained from its public data, checked against its floor,
pushed, then every Space (and the whole suite) deployed, pinned to the exact model commits.

    python -m shared.cli publish --namespace you        # or: make publish NAMESPACE=you

The plan (publish.toml) has one table per registry model:

    [models.pets-classifier]
    train = ["--data", "hf://datasets/timm/oxford-iiit-pet", "--epochs", "3"]
    floor = { metric = "error_rate", max = 0.06 }

`train` holds the arguments of `demos train <family>` exactly as on the command line; publish
adds `--out` (a fresh folder under --work) and `--push-to-hub` (NAMESPACE/<the model's repo
name>). A model that misses its `floor` (a key of the metrics.json the family writes, `min` or
`max`), or whose metrics.json records a failed guard (`guards.*.passed` false), is not pushed
and the command exits non-zero, unless --force. Every download happens before any training.

Idempotent by fingerprint. Training is not bit-reproducible (timings, GPU kernels), so two runs
of one recipe write different files. Each pushed model repo therefore carries `publish.json`,
whose fingerprint is the sha256 of the recipe: the family, its train arguments (a local file or
folder among them by the sha256 of its content, not its path) and every source file of the
family's package; remote data is named by pinned addresses (a dataset commit, a known sha256).
A model whose repo holds the same fingerprint is neither trained nor pushed, and a deploy only
uploads changed files, so a re-run with nothing changed makes no commit. (A change in shared/
alone does not retrain: delete the repo's publish.json to force it.)

A Space pins the models this run published; our other models, the namespace's current commit
(a Space whose model was never published there, after --only, is skipped); others (Stable
Diffusion), their registry source.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared import hub, registry
from shared.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "publish.toml"
RECORD = "publish.json"  # in each model repo: the fingerprint of the recipe that made it


@dataclass
class Entry:
    """One model of the plan."""

    name: str  # registry name
    family: str  # the CLI's family name, e.g. "image-classifier"
    train: list[str]
    metric: str
    low: float | None = None  # floor: the metric must be at least this...
    high: float | None = None  # ...or at most this

    def floor(self) -> str:
        return (
            f"{self.metric} ≥ {self.low}"
            if self.low is not None
            else f"{self.metric} ≤ {self.high}"
        )

    def problems(self, metrics: dict[str, Any]) -> list[str]:
        """Why these metrics may not be published: below the floor, a failed guard."""
        value = lookup(metrics, self.metric)
        if not isinstance(value, int | float):
            keys = ", ".join(sorted(metrics))
            return [f"its metrics.json has no number '{self.metric}' (it has: {keys})"]
        out = []
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            out.append(f"{self.metric} {value:.4g} misses its floor ({self.floor()})")
        guards = metrics.get("guards") or {}
        out += [
            f"guard '{k}' failed" + (f" ({g['reason']})" if g.get("reason") else "")
            for k, g in guards.items()
            if isinstance(g, dict) and g.get("passed") is False
        ]
        return out


@dataclass
class Job:
    """An entry on its way: where it goes, its fingerprint, what the Hub already has."""

    entry: Entry
    repo: str
    fingerprint: str
    record: dict
    published: str | None = None  # the repo's commit when it already holds this fingerprint
    command: Any = None  # the family's train command and its config (data fetched)
    config: Any = None
    result: dict = field(default_factory=dict)


def lookup(metrics: dict, key: str) -> Any:
    """metrics["a"]["b"] for "a.b"."""
    value: Any = metrics
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def load_plan(path: Path, only: list[str] | None = None) -> list[Entry]:
    """The plan's entries (those named in `only`, when given), checked."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    from shared import cli

    try:
        plan = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"No plan at {path}.") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path} is not valid TOML: {e}") from None
    models = plan.get("models")
    if not isinstance(models, dict) or not models:
        raise UserError(f"{path} has no [models.<name>] table.")
    known, trainers = registry.specs(), cli.families()
    entries = []
    for name, table in models.items():
        where = f"{path}: [models.{name}]"
        if name not in known:
            raise UserError(f"{where}: no such model. Known models: {', '.join(known)}.")
        family = known[name].load.__module__.split(".")[1].replace("_", "-")
        if "train" not in trainers.get(family, {}):
            raise UserError(f"{where}: the {family} family has no train command.")
        if extra := set(table) - {"train", "floor"}:
            raise UserError(f"{where}: unknown key(s) {', '.join(sorted(extra))}.")
        train = table.get("train", [])
        if not isinstance(train, list) or not all(isinstance(a, str) for a in train):
            raise UserError(f'{where}: train must be a list of strings, e.g. ["--epochs", "3"].')
        if added := [a for a in train if a.split("=")[0] in ("--out", "--push-to-hub")]:
            raise UserError(f"{where}: publish adds {', '.join(added)} itself; remove it.")
        floor = table.get("floor")
        bounds = set(floor or {}) & {"min", "max"}
        if not isinstance(floor, dict) or not floor.get("metric") or len(bounds) != 1:
            raise UserError(
                f'{where}: floor must be {{ metric = "<key in metrics.json>", min = X }} '
                "(or max = X)."
            )
        entries.append(
            Entry(name, family, train, floor["metric"], floor.get("min"), floor.get("max"))
        )
    if only:
        if missing := [n for n in only if n not in models]:
            raise UserError(f"--only {' '.join(missing)}: not in {path} ({', '.join(models)}).")
        entries = [e for e in entries if e.name in only]
    return entries


def model_repo(namespace: str, name: str) -> str:
    """Where model `name` is published: NAMESPACE/<its catalogue repo name>."""
    return f"{namespace}/{registry.spec(name).repo.split('/')[-1]}"


def content_hash(path: Path) -> str:
    """sha256 over a file, or over a folder's files (relative names and contents)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        if "__pycache__" in p.parts or p.suffix == ".pyc":
            continue
        digest.update(p.relative_to(path).as_posix().encode() + b"\0" if p != path else b"")
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def fingerprint(entry: Entry) -> tuple[str, dict]:
    """The recipe's fingerprint and the record it is computed from (see the module doc)."""
    args = [
        f"sha256:{content_hash(Path(a))}" if not a.startswith("-") and Path(a).exists() else a
        for a in entry.train
    ]
    package = ROOT / "models" / entry.family.replace("-", "_")
    record = {"family": entry.family, "train": args, "code": content_hash(package)}
    text = json.dumps(record, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest(), record


def remote(repo: str, name: str) -> tuple[str, dict, dict] | None:
    """(commit, publish record, metrics) of the model repo's main branch, or None."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    def read(file: str, commit: str) -> dict:
        return json.loads(Path(hf_hub_download(repo, file, revision=commit)).read_text())

    try:
        commit = HfApi().repo_info(repo).sha
        return commit, read(name, commit), read("metrics.json", commit)
    except (RepositoryNotFoundError, EntryNotFoundError, ValueError):
        return None  # not published yet (or not by publish)
    except HfHubHTTPError as e:
        raise UserError(f"{repo}: the Hub answered with an error ({e}).") from None


def say(message: str) -> None:
    print(f"publish: {message}", file=sys.stderr, flush=True)


def prepare(entry: Entry, namespace: str) -> Job:
    repo = model_repo(namespace, entry.name)
    fp, record = fingerprint(entry)
    job = Job(entry, repo, fp, record)
    if (found := remote(repo, RECORD)) and found[1].get("fingerprint") == fp:
        job.published, job.result = found[0], found[2]
    return job


def configure(job: Job, work: Path) -> None:
    """Parse the train arguments as the CLI does and build the family's config: this fetches
    the data, so every download happens before the first training starts."""
    from shared import cli
    from shared.options import from_options

    argv = ["train", job.entry.family, *job.entry.train]
    argv += ["--out", str(work / job.entry.name), "--push-to-hub", job.repo]
    try:
        args = cli.parser().parse_args(argv)
    except SystemExit:  # argparse has printed what is wrong
        raise UserError(f"[models.{job.entry.name}] train: invalid arguments (above).") from None
    job.command = args.family_command
    job.config = from_options(job.command.config, args)


def train(job: Job, work: Path) -> dict:
    """Train into a fresh folder; the metrics the family wrote there."""
    out = work / job.entry.name
    shutil.rmtree(out, ignore_errors=True)  # only what this run writes gets pushed
    returned = job.command.run(job.config)
    path = out / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else dict(returned)
    if "torch" in sys.modules:  # give the next model the accelerator's memory
        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return metrics


class Unpublished(UserError):
    """A model a Space serves has never been published (a run with --only)."""


def pins_for(names: list[str], jobs: dict[str, Job], namespace: str) -> dict[str, str]:
    """{model: "repo@commit"} for a Space: this run's commits; for our other models, what the
    namespace holds now (a DEMO_MODEL_* setting wins); for others (Stable Diffusion), their
    registry source."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    pins = {}
    for name in names:
        spec = registry.spec(name)
        if name in jobs:
            pins[name] = f"{jobs[name].repo}@{jobs[name].published}"
        elif registry.is_default(name) and "/" not in spec.repo:
            repo = model_repo(namespace, name)
            try:
                pins[name] = f"{repo}@{HfApi().repo_info(repo).sha}"
            except RepositoryNotFoundError:
                if spec.build is None:  # else it builds itself on first use
                    raise Unpublished(f"{name} is not published under {namespace} yet") from None
        else:
            pins.update(hub.pin([name]))
    return pins


def run(
    namespace: str,
    *,
    plan: Path = PLAN,
    only: list[str] | None = None,
    dry_run: bool = False,
    force: bool = False,
    deploy: bool = True,
    work: Path = Path("out/publish"),
) -> tuple[dict, list[str]]:
    """Publish the plan under `namespace`; (the summary, the problems that stopped a model)."""
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(f"{namespace}/x")
    except Exception:
        raise UserError(f"'{namespace}' is not a Hub user or organisation name.") from None
    entries = load_plan(plan, only)
    started = time.perf_counter()
    jobs = {e.name: prepare(e, namespace) for e in entries}
    spaces = {s: hub.space_repo(namespace, s) for s in [*hub.space_names(), hub.SUITE]}
    if dry_run:
        for job in jobs.values():
            state = f"up to date at {job.published[:12]}" if job.published else "to train"
            args = " ".join([*job.entry.train, "--out", str(work / job.entry.name)])
            say(f"{job.entry.name} -> {job.repo} ({state}; floor {job.entry.floor()})")
            say(f"    demos train {job.entry.family} {args} --push-to-hub {job.repo}")
        for space, repo in spaces.items():
            say(f"{space} -> spaces/{repo}" + ("" if deploy else " (not deployed: --no-deploy)"))
        planned = {s: {"repo": r, "revision": None} for s, r in spaces.items()} if deploy else {}
        return summary(jobs, planned), []

    from huggingface_hub import HfApi

    try:
        HfApi().whoami()
    except Exception:
        raise UserError(
            "The Hub does not accept this session's token: set HF_TOKEN to a write token "
            "(or run `hf auth login`) before publishing."
        ) from None
    for job in jobs.values():
        if job.published:
            say(f"{job.entry.name}: {job.repo} already holds this recipe ({job.published[:12]})")
        else:
            configure(job, work)
    problems = publish_models(jobs, work, force)
    deployed = deploy_spaces(spaces, jobs, namespace) if deploy and not problems else {}
    say(f"done in {time.perf_counter() - started:.0f} s")
    return summary(jobs, deployed), problems


def publish_models(jobs: dict[str, Job], work: Path, force: bool) -> list[str]:
    """Train what the Hub lacks, gate it, push it; the reasons a model was held back."""
    problems = []
    for job in jobs.values():
        if not job.published:
            t = time.perf_counter()
            say(f"{job.entry.name}: training ({job.entry.family}) ...")
            job.result = train(job, work)
            say(f"{job.entry.name}: trained in {time.perf_counter() - t:.0f} s")
        if why := job.entry.problems(job.result):
            if not force:
                problems.append(f"{job.entry.name} was not published: {'; '.join(why)}")
                say(problems[-1] + " (--force publishes it anyway)")
                continue
            say(f"{job.entry.name}: published despite: {'; '.join(why)} (--force)")
        if not job.published:
            out = work / job.entry.name
            (out / RECORD).write_text(
                json.dumps({**job.record, "fingerprint": job.fingerprint}, indent=2) + "\n"
            )
            job.published = hub.push(out, job.repo, message=f"Publish {job.entry.name}")
            say(f"{job.entry.name}: pushed {job.repo}@{job.published}")
    return problems


def deploy_spaces(spaces: dict[str, str], jobs: dict[str, Job], namespace: str) -> dict:
    """Deploy every Space (and the suite) pinned to the models; {space: {repo, revision}}."""
    done = {n: j for n, j in jobs.items() if j.published}
    deployed = {}
    for space, repo in spaces.items():
        names = hub.space_models(None if space == hub.SUITE else space)
        try:
            pins = pins_for(names, done, namespace)
        except Unpublished as e:
            say(f"{space}: not deployed: {e}")
            continue
        deployed[space] = {"repo": repo, "revision": hub.deploy(space, repo, pins=pins)}
        say(f"{space}: deployed spaces/{repo}@{deployed[space]['revision']}")
    return deployed


def summary(jobs: dict[str, Job], spaces: dict) -> dict:
    """The command's last line: each model's repo, commit and headline metrics (the numbers at
    the top of its metrics.json), each Space's repo and commit."""

    def headline(metrics: dict) -> dict:
        return {k: v for k, v in metrics.items() if isinstance(v, int | float)}

    models = {
        n: {"repo": j.repo, "revision": j.published, "metrics": headline(j.result)}
        for n, j in jobs.items()
    }
    return {"models": models, "spaces": spaces}


def command(args: argparse.Namespace) -> None:
    """`demos publish`: the summary as the last line of output (JSON)."""
    result, problems = run(
        args.namespace,
        plan=args.plan,
        only=args.only,
        dry_run=args.dry_run,
        force=args.force,
        deploy=not args.no_deploy,
        work=args.work,
    )
    print(json.dumps(result, default=str))
    if problems:
        raise UserError(" ".join(problems))
