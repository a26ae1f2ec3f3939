"""Logging: one line per event on stdout, which systemd's journal keeps as it is; no line carries
the password of a URL (podmod's own messages never do, a library's or an error's might)."""

from __future__ import annotations

import logging
import sys

from podmod.redact import masked_url


class _MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return masked_url(super().format(record))


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        _MaskingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
