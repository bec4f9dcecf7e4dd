"""The two kinds of failure: a message for a person, and everything else (a bug).

A `UserError` says what went wrong and how to fix it, in words for the person who caused it:
the UI shows it as is and the log gets one line. Any other exception is a bug: its traceback
goes to the log once and the person gets a short reference to it.
"""

from __future__ import annotations


class UserError(Exception):
    """Something a person can fix (bad input, a missing file, a setting); the message says how."""


class ModelError(UserError):
    """A model could not be found, fetched or loaded; the message says how to fix it."""
