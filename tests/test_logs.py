"""Logging: one line per event on stdout, never with the password of a URL in it."""

from __future__ import annotations

import logging

import pytest

from podmod.logs import setup_logging


def test_a_log_line_never_carries_a_urls_password(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("INFO")
        logging.getLogger("urllib3.example").info(
            "Starting new HTTPS connection to %s", "https://alice:placeholder-secret@lists.example/"
        )
    finally:
        root.handlers[:], root.level = handlers, level
    line = capsys.readouterr().out
    assert "placeholder-secret" not in line and "https://alice:***@lists.example/" in line
