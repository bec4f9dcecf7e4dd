"""Command-line options from a config dataclass: its fields are the one source of the defaults.

Each field becomes `--field-name` with the field's default, its type (bool fields become
`--x/--no-x`, `X | None` is optional, tuples take several values) and the help text in its
metadata: `field(default=3, metadata={"help": "epochs", "choices": [...]})`. A field without a
default is a required option.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def option(default: Any = dataclasses.MISSING, help: str = "", **meta: Any) -> Any:
    """A dataclass field with its help text (and `choices`, `metavar`) for the command line."""
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple for a sequence default")
    return dataclasses.field(default=default, metadata={"help": help, **meta})


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(the type inside `X | None`, whether None is allowed)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_options(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """Add one option per field of the dataclass `cls` to `parser`."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init or f.name.startswith("_"):
            continue
        tp, _ = _unwrap(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = None if required else f.default
        help_ = f.metadata.get("help", "")
        if not required and default is not None and not isinstance(default, bool):
            help_ = f"{help_} (default: {default})" if help_ else f"default: {default}"
        kwargs: dict[str, Any] = {"help": help_, "dest": f.name}
        if tp is bool:
            kwargs |= {"action": argparse.BooleanOptionalAction, "default": default}
        elif typing.get_origin(tp) is tuple:
            item = next((a for a in typing.get_args(tp) if a is not Ellipsis), str)
            kwargs |= {"nargs": "+", "type": item, "default": default}
        else:
            kwargs |= {"type": Path if tp is Path else tp, "default": default}
        for key in ("choices", "metavar"):
            if key in f.metadata:
                kwargs[key] = f.metadata[key]
        parser.add_argument(flag, required=required, **kwargs)


def from_options(cls: type[T], args: argparse.Namespace, **extra: Any) -> T:
    """The dataclass `cls` built from parsed options (plus `extra` fields)."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    values = {k: v for k, v in vars(args).items() if k in names}
    for k, v in values.items():
        if isinstance(v, list):
            values[k] = tuple(v)
    return cls(**values, **extra)


class Command(typing.NamedTuple):
    """A family's command: its options (a config dataclass) and what runs it."""

    config: type
    run: typing.Callable[[Any], dict]
    help: str
