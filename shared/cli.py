"""Command line: `python -m shared.cli {list,pull,push,deploy,train,evaluate,lr-find} --help`."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

# Families that train; each module has add_<command>_args(parser) and <command>_cli(args).
FAMILIES = {
    "image-classifier": "models.image_classifier",
    "patent-similarity": "models.patent_similarity",
    "recommender": "models.recommender",
}
FAMILY_COMMANDS = {"train": "train", "evaluate": "evaluate", "lr-find": "lr_find"}


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
    print(f"{args.repo}@{commit}")


def cmd_deploy(args: argparse.Namespace) -> None:
    from shared import hub

    commit = hub.deploy(args.space, args.repo)
    print(f"spaces/{args.repo}@{commit}")


def run_family(command: str, argv: list[str]) -> None:
    """`train|evaluate|lr-find FAMILY ...`: parse the family's own options, then run it."""
    prog = f"python -m shared.cli {command}"
    if not argv or argv[0] in {"-h", "--help"}:
        print(
            f"usage: {prog} FAMILY [options]\n\nfamilies: {', '.join(FAMILIES)}\n"
            f"options of one family: {prog} FAMILY --help"
        )
        return
    family = argv[0]
    if family not in FAMILIES:
        raise ValueError(f"Unknown family '{family}'. Choose one of: {', '.join(FAMILIES)}.")
    module = importlib.import_module(FAMILIES[family])
    name = FAMILY_COMMANDS[command]
    if not hasattr(module, f"{name}_cli"):
        raise ValueError(f"'{command}' is not available for {family}.")
    parser = argparse.ArgumentParser(prog=f"{prog} {family}")
    getattr(module, f"add_{name}_args")(parser)
    if command == "train":
        parser.add_argument(
            "--out",
            type=Path,
            default=Path("out") / family,
            help="where to write the model folder (Hub layout)",
        )
        parser.add_argument("--push-to-hub", metavar="REPO", help="push the trained model there")
    args = parser.parse_args(argv[1:])
    metrics = getattr(module, f"{name}_cli")(args)
    if os.environ.get("RANK", "0") != "0":  # under `accelerate launch` only rank 0 reports
        return
    print(json.dumps(metrics, indent=2, default=str))
    if command == "train" and args.push_to_hub:
        from shared import hub

        commit = hub.push(args.out, args.push_to_hub, message=f"Train {family}")
        print(f"pushed {args.out} to {args.push_to_hub}@{commit}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m shared.cli", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="every model: repo, revision, cached or not")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("pull", help="download a model into the HF cache")
    s.add_argument("name", help="registry name (see `list`)")
    s.add_argument("--force", action="store_true", help="download again even if cached")
    s.set_defaults(func=cmd_pull)

    s = sub.add_parser("push", help="upload a model folder to a Hub repo")
    s.add_argument("folder", type=Path)
    s.add_argument("--repo", required=True, help="Hub repo id, e.g. you/my-model")
    s.add_argument("--message", default="Upload model", help="commit message")
    s.set_defaults(func=cmd_push)

    s = sub.add_parser("deploy", help="push a demo as a Hugging Face Space")
    s.add_argument("space", help="folder name under spaces/")
    s.add_argument("--repo", required=True, help="Space repo id, e.g. you/pets-demo")
    s.set_defaults(func=cmd_deploy)

    for command in FAMILY_COMMANDS:  # parsed by run_family, with the family's own options
        sub.add_parser(command, help=f"{command} a model family ({', '.join(FAMILIES)})")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    family_command = bool(argv) and argv[0] in FAMILY_COMMANDS
    args = None if family_command else parser().parse_args(argv)
    try:
        if args is None:
            run_family(argv[0], argv[1:])
        else:
            args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line for a person, not a traceback
        print(f"error: {' '.join(str(e).split()) or type(e).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
