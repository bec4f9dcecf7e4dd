"""Command line: `demos` (or `python -m shared.cli`)
{list,pull,push,deploy,publish,train,evaluate,lr-find}.

Family commands come from each family's `cli.COMMANDS`: its options are its config dataclass
(shared.options). A mistake a person can fix prints one line; a bug prints its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
import traceback
from pathlib import Path

from shared.errors import UserError
from shared.options import Command, add_options, from_options

ROOT = Path(__file__).resolve().parents[1]
FAMILY_COMMANDS = ("train", "evaluate", "lr-find")
TOKEN_HELP = "The Hub token comes from HF_TOKEN or `hf auth login`; it is never printed."
PUBLISH_HELP = """Trains each model of the plan (its `train` arguments, plus --out and
--push-to-hub), checks its floor and guards, pushes it, then deploys every Space and the whole
suite pinned to the exact model commits. A model whose repo already holds its recipe's
fingerprint is neither trained nor pushed, so a re-run with nothing changed makes no commit.
The last line of output is a JSON summary."""


def families() -> dict[str, dict[str, Command]]:
    """{"image-classifier": {"train": Command, ...}, ...}: the families with a cli module."""
    out = {}
    for family in importlib.import_module("models").FAMILIES:
        if importlib.util.find_spec(f"models.{family}.cli") is not None:
            module = importlib.import_module(f"models.{family}.cli")
            out[family.replace("_", "-")] = module.COMMANDS
    return out


def hub_patterns() -> tuple[str, ...]:
    from shared.hub import MODEL_FILES

    return MODEL_FILES


def space_names() -> list[str]:
    """The Spaces under spaces/, and the whole suite (deployed as one Space too)."""
    from shared import hub

    return [*hub.space_names(), hub.SUITE]


def cmd_list(args: argparse.Namespace) -> None:
    from shared import registry

    rows = registry.rows()
    cols = ["name", "task", "repo", "revision", "cached"]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in cols))


def cmd_pull(args: argparse.Namespace) -> None:
    from shared import registry

    print(registry.fetch(args.name, force=args.force))


def cmd_push(args: argparse.Namespace) -> None:
    from shared import hub

    commit = hub.push(args.folder, args.repo, message=args.message)
    if skipped := hub.left_out(args.folder):
        print(f"not uploaded (not model files): {', '.join(skipped)}", file=sys.stderr)
    print(f"{args.repo}@{commit}")


def cmd_deploy(args: argparse.Namespace) -> None:
    from shared import hub

    commit = hub.deploy(args.space, args.repo)
    print(f"spaces/{args.repo}@{commit}")


def cmd_publish(args: argparse.Namespace) -> None:
    from shared import publish

    publish.command(args)


def run_family(args: argparse.Namespace) -> None:
    """train|evaluate|lr-find FAMILY: build the family's config from the options and run it."""
    command: Command = args.family_command
    cfg = from_options(command.config, args)
    metrics = command.run(cfg)
    if os.environ.get("RANK", "0") != "0":  # under `accelerate launch` only rank 0 reports
        return
    print(json.dumps(metrics, indent=2, default=str))
    repo = getattr(cfg, "push_to_hub", None)
    if args.command == "train" and repo:
        from shared import hub

        commit = hub.push(cfg.out, repo, message=f"Train {args.family}")
        print(f"pushed {cfg.out} to {repo}@{commit}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="demos", description="Train, publish and serve the fast.ai course demos' models."
    )
    p.add_argument("--debug", action="store_true", help="print tracebacks for every error")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="every model: repo, revision, cached or not")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("pull", help="download a model into the HF cache")
    s.add_argument("name", help="registry name (see `list`)")
    s.add_argument("--force", action="store_true", help="download again even if cached")
    s.set_defaults(func=cmd_pull)

    s = sub.add_parser(
        "push",
        help="make a Hub repo hold a model folder's model files (others there are deleted)",
        epilog=f"Uploads {', '.join(hub_patterns())}; other files stay local. {TOKEN_HELP}",
    )
    s.add_argument("folder", type=Path)
    s.add_argument("--repo", required=True, help="Hub repo id, e.g. you/my-model")
    s.add_argument("--message", default="Upload model", help="commit message")
    s.set_defaults(func=cmd_push)

    s = sub.add_parser("deploy", help="push a demo as a Hugging Face Space", epilog=TOKEN_HELP)
    s.add_argument("space", choices=space_names(), metavar="SPACE", help=", ".join(space_names()))
    s.add_argument("--repo", required=True, help="Space repo id, e.g. you/pets-demo")
    s.set_defaults(func=cmd_deploy)

    s = sub.add_parser(
        "publish",
        help="train, check and push every model of a plan, deploy every Space",
        description=PUBLISH_HELP,
        epilog=TOKEN_HELP,
    )
    s.add_argument("--namespace", required=True, help="your Hub user or organisation")
    s.add_argument(
        "--plan", type=Path, default=ROOT / "publish.toml", help="the plan (default: publish.toml)"
    )
    s.add_argument("--only", nargs="+", metavar="NAME", help="publish only these models")
    s.add_argument("--dry-run", action="store_true", help="print the plan; train nothing")
    s.add_argument(
        "--force", action="store_true", help="push models below their floor or with a failed guard"
    )
    s.add_argument("--no-deploy", action="store_true", help="push models, deploy no Space")
    s.add_argument(
        "--work",
        type=Path,
        default=Path("out/publish"),
        help="where models train (default: out/publish)",
    )
    s.set_defaults(func=cmd_publish)

    found = families()
    for command in FAMILY_COMMANDS:
        owners = {f: c[command] for f, c in found.items() if command in c}
        s = sub.add_parser(command, help=f"{command} a model ({', '.join(owners)})")
        per_family = s.add_subparsers(dest="family", required=True, metavar="FAMILY")
        for family, cmd in owners.items():
            f = per_family.add_parser(family, help=cmd.help, description=cmd.help)
            add_options(f, cmd.config)
            f.set_defaults(func=run_family, family_command=cmd)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as e:  # one line for a person
        if args.debug:
            traceback.print_exc()
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: the traceback is what debugs it
        traceback.print_exc()
        print(f"error: {type(e).__name__} (a bug; the traceback is above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
