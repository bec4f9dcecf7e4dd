"""Hostile input shared by every endpoint's fuzz test: what an attacker (or a careless script)
sends a public Space, and what a person must get back.

Each Space's test feeds `TEXTS` / `NUMBERS` / `WRONG_TYPES` (and its own corpus: files, CSVs,
tables) to its endpoints through gradio_client, asserts `for_a_person(message)` on every refusal
and that the server still answers afterwards.
"""

from __future__ import annotations

import re

# Text fields: empty, blank, huge, invalid Unicode, control characters, markup, injection.
TEXTS = {
    "empty": "",
    "blank": " \t\n ",
    "huge": "a" * 2_000_000,
    "surrogate": "abc\ud800def",
    "nul": "abc\x00def",
    "controls": "\x1b[31mred\x1b[0m\r\n\x07",
    "rtl": "\u202eevil\u202c",
    "zalgo": "z\u0300\u0301\u0302\u0303" * 50,
    "emoji": "🐱" * 100,
    "html": "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "formula": "=cmd|' /C calc'!A0",
    "path": "../../../../etc/passwd",
    "json": '{"__proto__": {"admin": true}}',
}
# Numeric fields: not a number, not finite, out of range, wrong shape.
NUMBERS = {
    "text": "abc",
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "negative": -1,
    "huge": 10**30,
    "none": None,
    "bool": True,
}
# Where text or a number is expected, something else.
WRONG_TYPES = {"list": [1, 2, 3], "dict": {"a": 1}, "number": 12345, "nested": [[["x"]]]}

LEAKS = [
    re.compile(r"Traceback|File \"/"),  # a traceback
    re.compile(r"/(work|tmp|root|home|usr)/"),  # a local path
    re.compile(r"\b(TypeError|ValueError|KeyError|AttributeError|RuntimeError|IndexError)\b"),
    re.compile(r"cannot convert|object has no attribute|unsupported operand|NoneType"),
]


def message_of(error: BaseException) -> str:
    """The message a gradio_client caller sees for a failed request."""
    return str(error)


def for_a_person(message: str) -> str:
    """Assert that a refusal is written for a person: present, short, no traceback, no local
    path, no library exception name. Returns it for further checks."""
    assert message and message.strip() not in {"None", "null", "Error"}, repr(message)
    assert len(message) < 600, f"too long ({len(message)} characters): {message[:200]}"
    for leak in LEAKS:
        assert not leak.search(message), f"{leak.pattern!r} in {message[:300]!r}"
    return message
