"""podmod's log lines: text from requests, pods and list servers cannot forge a line or reach the
podmin's terminal as an escape."""

from __future__ import annotations

import io
import logging

import pytest

from podmod.logs import setup_logging
from podmod.web import create_app

FORGED = "2026-12-02T00:00:00+0000 INFO podmod.web podmin signed in"


@pytest.fixture
def lines():
    """What podmod's log handler writes, line by line."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    setup_logging("INFO")
    out = io.StringIO()
    root.handlers[0].setStream(out)  # type: ignore[attr-defined]
    yield lambda: out.getvalue().splitlines()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_line_break_or_escape_in_a_message_is_written_escaped(lines):
    logging.getLogger("podmod.test").warning("fetched %s", f"/core.csv\r\n{FORGED}\x1b[2J\x9b")
    (line,) = lines()
    assert line.endswith(f"fetched /core.csv\\r\\n{FORGED}\\x1b[2J\\x9b")


def test_no_line_of_a_traceback_passes_for_an_event(lines):
    try:
        raise ValueError(f"bad row\n{FORGED}")
    except ValueError:
        logging.getLogger("podmod.test").exception("sync failed")
    head, *rest = lines()
    assert head.endswith("ERROR podmod.test sync failed")
    assert rest and all(line.startswith("  | ") for line in rest), rest
    assert f"  | {FORGED}" in rest


def test_a_request_path_with_crlf_cannot_forge_a_log_line(config, lines, monkeypatch):
    """The web UI logs the path of a request it failed on; a path may hold CR and LF."""

    def broken(**_: object) -> str:
        raise RuntimeError("placeholder failure")

    app = create_app(config)
    monkeypatch.setitem(app.view_functions, "lists.version", broken)
    response = app.test_client().get("/lists/x%0D%0A" + FORGED.replace(" ", "%20") + "/versions/1")
    assert response.status_code == 500
    logged = lines()
    assert any("unexpected error on GET /lists/x\\r\\n" in line for line in logged), logged
    assert not any(line.startswith(FORGED) for line in logged), logged
    app.extensions["podmod"].close()


def test_a_log_line_never_carries_a_urls_password(lines):
    logging.getLogger("urllib3.example").info(
        "Starting new HTTPS connection to %s", "https://alice:placeholder-secret@lists.example/"
    )
    (line,) = lines()
    assert "placeholder-secret" not in line and "https://alice:***@lists.example/" in line
