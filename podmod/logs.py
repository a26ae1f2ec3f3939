"""Logging: one line per event on stderr, which systemd's journal keeps as it is. stdout is left
to what a command prints (its summary, its `--json`), which logs would otherwise come between.

Messages carry text from the pod, list servers and requests, so a line break or a terminal escape
in them is written escaped (`\\n`, `\\x1b`): such text can neither forge a log line nor drive the
podmin's terminal. A traceback, the only output of many lines, has every line after the first
indented with `| `, so no line of it can pass for an event of its own. No line carries the
password of a URL (podmod's own messages never do, a library's or an error's might).
"""

from __future__ import annotations

import logging
import sys

from podmod.redact import CONTROL, masked_url


def escaped(text: str) -> str:
    """The text with control characters (redact.CONTROL: line breaks, escapes, direction marks)
    written as escapes, on one line."""
    return CONTROL.sub(lambda match: match[0].encode("unicode_escape").decode("ascii"), text)


class OneLineFormatter(logging.Formatter):
    """podmod's log format: the message on one line, escaped; a traceback fenced below it; URLs'
    passwords masked throughout."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escaped(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        head, *rest = masked_url(super().format(record)).split("\n")
        return "\n".join([head, *("  | " + line for line in rest)])


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        OneLineFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
