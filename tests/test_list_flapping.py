"""A list's server that flaps, as real ones do (a cache or load balancer with two backends, a
mirror behind its origin, a publisher who reverts within the hour, a server answering 503 every
other time, a file cut short, a clock around the signed-ahead limit): days of cron syncs every 15
minutes against a real HTTPS server on loopback, the staff's mail delivered to a real SMTP server,
and what the podmin's inbox, the audit log and the list's versions gain meanwhile."""

from __future__ import annotations

import hashlib
import http.server
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

import pytest

from podmod.config import load_config
from podmod.loopback import self_signed_certificate
from podmod.web import create_app
from tests.helpers import podmod
from tests.notify_servers import smtp_server as smtp_server  # (fixture)
from tests.test_lists import ListFiles, signature_of, versions_of
from tests.test_lists import lists as lists  # (fixture)
from tests.test_web import PASSWORD, html, signed_in

STEP = 15  # minutes between two cron syncs


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FlappingServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        status, body, cut = self.server.answer(self.path)
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'  # (each backend's, as CDNs send)
        if status == 200 and not cut and self.headers.get("If-None-Match") == etag:
            status, body = 304, b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status in (200, 304):
            self.send_header("ETag", etag)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)
        self.close_connection = True


class FlappingServer(http.server.ThreadingHTTPServer):
    """HTTPS on 127.0.0.1 serving, at each path, what the test put there (status, body, and
    whether the body is cut short after half of what its Content-Length says), with an ETag
    for each body, answering "not modified" when asked with the one it serves."""

    daemon_threads = True

    def __init__(self, certificate: tuple[Path, Path]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*certificate)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.served: dict[str, tuple[int, bytes, bool]] = {}
        self.requests: Counter[str] = Counter()

    def answer(self, path: str) -> tuple[int, bytes, bool]:
        self.requests[path] += 1
        return self.served.get(path, (404, b"not here", False))

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture
def server(tmp_path) -> Iterator[FlappingServer]:
    (tmp_path / "tls").mkdir()
    certificate = self_signed_certificate(tmp_path / "tls")
    served = FlappingServer(certificate)
    served.certificate = certificate[0]
    thread = threading.Thread(target=served.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield served
    served.shutdown()
    served.server_close()
    thread.join(timeout=5)


@dataclass
class File:
    """A list file and its signature as a publisher published them."""

    body: bytes
    signature: bytes


@dataclass
class Week:
    """What the syncs left: cron's exit codes, the log lines, the mails."""

    codes: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def publish(lists: ListFiles, rows: list[str], *, ahead: int = 0) -> File:
    """A version of `core`, signed a second after the one before (`ahead`: seconds ahead of
    this clock, a publisher's clock drifting)."""
    if ahead:
        lists.signed_at += ahead
    path = lists.write("core", rows)
    if ahead:
        lists.signed_at -= ahead
    return File(path.read_bytes(), signature_of(path).read_bytes())


def serve(server: FlappingServer, file: File | int, *, cut: bool = False) -> None:
    """Serve a file and its signature (or answer every request with that status)."""
    if isinstance(file, int):
        server.served = {p: (file, b"busy", False) for p in ("/core.csv", "/core.csv.minisig")}
        return
    server.served = {
        "/core.csv": (200, file.body, cut),
        "/core.csv.minisig": (200, file.signature, False),
    }


def later(state, minutes: int) -> None:
    """Time passes: every time podmod keeps of lists, versions, events and mails moves back
    (PostgreSQL's clock cannot be set; podmod's is its now())."""
    state.rollback()
    columns = state.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'podmod' AND data_type = 'timestamp with time zone'"
        " AND table_name IN ('lists', 'list_versions', 'events', 'digests', 'outbox', 'audit')"
        " AND column_name <> 'signed_at'"  # (a publisher's time, not podmod's)
    ).fetchall()
    for column in columns:
        state.execute(
            f"UPDATE podmod.{column['table_name']} SET {column['column_name']} ="
            f" {column['column_name']} - make_interval(mins => %s)"
            f" WHERE {column['column_name']} IS NOT NULL",
            (minutes,),
        )
    state.commit()


def cron_sync(state, week: Week) -> None:
    """One run of the shipped cron line, then the notification pass, then 15 minutes."""
    result = podmod("lists", "sync", "--cron")
    week.codes.append(result.exit_code)
    week.lines += [line for line in result.output.splitlines() if line.startswith("core: ")]
    delivered = podmod("notify", "deliver")
    assert delivered.exit_code == 0, delivered.output
    later(state, STEP)


@pytest.fixture
def flapping(lists, pod, state, server, smtp_server, monkeypatch) -> ListFiles:
    """`core` subscribed at the flapping server, signed, mail to the staff set up."""
    pod.person("podmin", password=PASSWORD, roles=("admin",))
    monkeypatch.setenv("PODMOD_MAIL_SMTP_URL", smtp_server.url())
    monkeypatch.setenv("PODMOD_MAIL_FROM", "podmod@pod.example")
    monkeypatch.setenv("PODMOD_WEB_PUBLIC_URL", "https://pod.example/podmod/")
    lists.list_sync = {"ca_bundle": str(server.certificate)}
    lists.subscribe("core", url=server.url("/core.csv"))
    return lists


def counts(state, smtp_server) -> dict[str, object]:
    state.rollback()
    audit = state.execute(
        "SELECT action, count(*) AS n FROM podmod.audit WHERE action LIKE 'list_%'"
        " GROUP BY action ORDER BY action"
    ).fetchall()
    versions = state.execute(
        "SELECT status, count(*) AS n FROM podmod.list_versions GROUP BY status ORDER BY status"
    ).fetchall()
    events = state.execute(
        "SELECT count(*) FILTER (WHERE staff_mail) AS staff, count(*) AS all"
        " FROM podmod.events WHERE type LIKE 'list.%'"
    ).fetchone()
    held_changes = state.execute("SELECT count(*) AS n FROM podmod.held_changes").fetchone()["n"]
    state.rollback()
    return {
        "mails": len(smtp_server.messages),
        "audit": {row["action"]: row["n"] for row in audit},
        "versions": {row["status"]: row["n"] for row in versions},
        "events": dict(events),
        "held_changes": held_changes,
    }


ROWS = [f"account,u{n}@far.example,," for n in range(8)]


def held_events(state) -> list[dict]:
    state.rollback()
    rows = state.execute(
        "SELECT facts, staff_mail FROM podmod.events WHERE type = 'list.held' ORDER BY created_at"
    ).fetchall()
    state.rollback()
    return rows


def version_row(state, number: int) -> dict:
    state.rollback()
    row = state.execute(
        "SELECT * FROM podmod.list_versions WHERE number = %s", (number,)
    ).fetchone()
    state.rollback()
    return row


def approver(state, number: int) -> str:
    by = version_row(state, number)["approved_by"]
    assert by.startswith("cli:"), by
    return by


def flap(server, state, week: Week, files: list[File], syncs: int) -> None:
    """`syncs` cron syncs, 15 minutes apart, the server serving `files` in turn."""
    for step in range(syncs):
        serve(server, files[step % len(files)])
        cron_sync(state, week)


def test_a_cache_alternating_a_held_removal_with_the_version_in_force_holds_it_once(
    flapping, state, server, smtp_server
):
    # A load balancer with two backends, one serving the new file (it removes 6 of 8 entries:
    # held), the other the version in force's, every other fetch for a day. The staff hear of
    # the hold, of its withdrawal and of its coming back, once each; then the version stays held,
    # one version, while the two alternate, and each repeat is counted, not logged.
    old = publish(flapping, ROWS)
    new = publish(flapping, ROWS[:2])
    serve(server, old)
    week = Week()
    cron_sync(state, week)

    flap(server, state, week, [new, old], 96)

    seen = counts(state, smtp_server)
    assert seen["mails"] == 3, (seen, week.lines[:6])
    assert week.codes.count(4) == 2 and week.codes.count(1) == 0, week.codes
    assert versions_of(state, "core") == [(1, "applied"), (2, "held")], seen
    assert seen["audit"] == {"list_apply": 1, "list_hold": 2, "list_withdraw": 1}, seen
    told = held_events(state)
    assert [row["facts"].get("withdrawn", row["facts"].get("held_again")) for row in told] == [
        None,
        True,
        True,
    ], told
    assert (
        "core: version 2 (podmod) held again for approval: it removes 6 of 8 entries (75%), "
        "more than the 50% allowed; its server serves its file again after version 1's"
    ) in week.lines[3], week.lines[3]
    assert week.lines[-1].endswith(
        "version 2 stays held: its server serves version 1's file again, 47 times since version "
        "2's came back (a source flapping between the two); it is withdrawn once only version "
        "1's is served for 24 hours; staff not told again"
    ), week.lines[-1]
    assert week.lines[-2].endswith("version 2 waits for approval (`podmod lists approve core 2`)")
    assert version_row(state, 2)["served_again"] == 47
    assert version_row(state, 2)["ended_at"] is None  # (held again: its withdrawal undone)
    # While they alternate, the podmin can approve it whichever file the last sync met.
    diff = podmod("lists", "diff", "core", "--version", "2")
    assert diff.exit_code == 0 and "core version 2 (held)" in diff.output, diff.output
    # It says the source flaps, as its page does.
    flapped = (
        "its file served again after it was withdrawn, and the version in force's 47 times since:"
        " a source flapping between the two"
    )
    assert flapped in diff.output, diff.output
    assert flapped in version_page("core", 2)

    # Only version 1's file for a day: its publisher took the change back; withdrawn, told once.
    serve(server, old)
    cron_sync(state, week)
    later(state, 24 * 60)
    cron_sync(state, week)
    cron_sync(state, week)

    seen = counts(state, smtp_server)
    assert seen["mails"] == 4, seen
    assert versions_of(state, "core") == [(1, "applied"), (2, "withdrawn")], week.lines[-3:]
    assert (
        "version 2, held, was withdrawn: its server serves version 1's file again"
        in (week.lines[-2])
    ), week.lines[-3:]


def test_a_dry_run_of_a_withdrawn_version_served_again_says_what_a_sync_would_do(
    flapping, state, server, smtp_server
):
    old = publish(flapping, ROWS)
    new = publish(flapping, ROWS[:2])
    week = Week()
    flap(server, state, week, [old, new, old], 3)
    assert versions_of(state, "core") == [(1, "applied"), (2, "withdrawn")], week.lines
    before = counts(state, smtp_server)
    serve(server, new)

    preview = podmod("lists", "sync", "--dry-run")

    assert preview.exit_code == 0, preview.output
    assert "version 2 (podmod) held again for approval" in preview.output, preview.output
    assert "a sync would keep it for `podmod lists diff core`" in preview.output, preview.output
    assert "approve with" not in preview.output, preview.output
    assert versions_of(state, "core") == [(1, "applied"), (2, "withdrawn")]
    assert counts(state, smtp_server) == before


def test_two_held_files_served_in_turn_are_one_hold_and_no_new_version_each_time(
    flapping, state, server, smtp_server
):
    # An unsigned list's mirror behind its origin: each serves its own version of the same
    # removal, in turn. (Signed, the older file would be refused as a replay.)
    flapping.subscribe("core", url=server.url("/core.csv"), signed=False)
    old = publish(flapping, ROWS)
    first = publish(flapping, ROWS[:2])
    second = publish(flapping, ROWS[:3])
    serve(server, old)
    week = Week()
    cron_sync(state, week)

    flap(server, state, week, [first, second], 48)

    seen = counts(state, smtp_server)
    assert seen["mails"] == 1 and week.codes.count(4) == 1, (seen, week.codes)
    assert versions_of(state, "core") == [(1, "applied"), (2, "superseded"), (3, "held")], seen
    assert seen["audit"] == {"list_apply": 1, "list_hold": 2}, seen
    assert (
        "the content held before as version 3, served again in place of version 2's (a source "
        "flapping between the two): still held, staff not told again" in week.lines[-1]
    ), week.lines[-1]
    assert version_row(state, 3)["served_again"] + version_row(state, 2)["served_again"] == 46
    approved = podmod("lists", "approve", "core", "3")
    assert approved.exit_code == 0, approved.output
    assert "version 3 approved by cli:" in approved.output
    assert "and applied: 3 entries (+0 -5)" in approved.output


def test_an_approved_file_is_not_held_again_when_an_older_file_comes_between(
    flapping, state, server, smtp_server
):
    # An unsigned list behind a cache: the podmin approved the new file (version 2), then the
    # cache serves the old one again now and then. podmod cannot tell which is newer without a
    # signature, and takes each as it comes; but the file the podmin approved is never held
    # for approval again.
    flapping.subscribe("core", url=server.url("/core.csv"), signed=False)
    old = publish(flapping, ROWS)
    new = publish(flapping, ROWS[:2])
    serve(server, old)
    week = Week()
    cron_sync(state, week)
    serve(server, new)
    cron_sync(state, week)
    assert podmod("lists", "approve", "core", "2").exit_code == 0

    flap(server, state, week, [old, new], 8)

    seen = counts(state, smtp_server)
    assert seen["mails"] == 1 and week.codes.count(4) == 1, (seen, week.lines)
    assert seen["versions"] == {"applied": 10}, seen
    assert [row["facts"]["version"] for row in held_events(state)] == [2]
    assert week.lines[-1].startswith("core: version 10 applied (podmod): 2 entries (+0 -6)")
    assert week.lines[-1].endswith(
        f"; its file is version 2's, which {approver(state, 2)} approved: not held again"
    ), week.lines[-1]
    # The approval was of that change, over version 1's file: over another, the same file is
    # judged as usual (a stale copy of it removing what the list has since grown by is held).
    grown = publish(flapping, [*ROWS, *(f"account,v{n}@far.example,," for n in range(8))])
    flap(server, state, week, [grown, new], 2)
    assert week.lines[-2].startswith("core: version 11 applied (podmod): 16 entries (+14 -0)")
    assert week.lines[-1].startswith("core: version 12 (podmod) held for approval: it removes 14")
    assert week.codes[-1] == 4 and len(smtp_server.messages) == 2, week.lines[-1]


def test_a_rejected_file_a_cache_keeps_serving_beside_later_versions_is_never_asked_again(
    flapping, state, server, smtp_server
):
    # The podmin rejected version 2; the publisher moved on (version 3), but an unsigned list's
    # cache still serves version 2's file every other time. It stays rejected: not stored, not
    # held, not mailed, not logged each time, counted.
    flapping.subscribe("core", url=server.url("/core.csv"), signed=False)
    old = publish(flapping, ROWS)
    rejected = publish(flapping, ROWS[:2])
    later_file = publish(flapping, ROWS[:7])
    serve(server, old)
    week = Week()
    cron_sync(state, week)
    serve(server, rejected)
    cron_sync(state, week)
    refused = podmod("lists", "reject", "core", "2", "--reason", "placeholder: not meant")
    assert refused.exit_code == 0, refused.output
    serve(server, later_file)
    cron_sync(state, week)

    flap(server, state, week, [rejected, later_file], 48)

    seen = counts(state, smtp_server)
    assert seen["mails"] == 1 and week.codes.count(4) == 1, (seen, week.lines[-4:])
    assert versions_of(state, "core") == [(1, "applied"), (2, "rejected"), (3, "applied")]
    assert seen["audit"] == {"list_apply": 2, "list_hold": 1, "list_reject": 1}, seen
    by = version_row(state, 2)["rejected_by"]
    assert week.lines[-2] == (
        f"core: unchanged (the file is version 2's, rejected by {by}: not taken again; served "
        "again 24 times); version 3 stays in force"
    ), week.lines[-2]
    assert version_row(state, 2)["served_again"] == 24
    said = "; its file was served again 24 times since, never taken"
    assert said in podmod("lists", "diff", "core", "--version", "2").output
    assert said in version_page("core", 2)


def version_page(name: str, number: int) -> str:
    """A version's page as a moderator reads it (its text, entities unescaped)."""
    client = signed_in(create_app(load_config()).test_client(), "podmin")
    return unescape(html(client.get(f"/lists/{name}/versions/{number}")))


def failing_events(state) -> int:
    state.rollback()
    count = state.execute(
        "SELECT count(*) AS n FROM podmod.events WHERE type = 'list.failing'"
    ).fetchone()["n"]
    state.rollback()
    return count


@pytest.mark.parametrize("pattern", ["503", "cut short", "older file", "signed ahead"])
def test_a_server_failing_every_other_fetch_for_a_day_mails_nobody(
    flapping, state, server, smtp_server, pattern
):
    # A server answering 503 every other time; a file cut short (its Content-Length not met);
    # a mirror behind its origin, serving the older signed file (refused as a replay); a
    # publisher's clock 16 minutes ahead (refused until this clock reaches its time). Each sync
    # that fails is refused with the version in force kept, in the sync's log line; none of it
    # lasts an hour, so the staff hear nothing and cron mails nothing. The same server down for
    # over an hour is told once.
    old = publish(flapping, ROWS)
    serve(server, old)
    week = Week()
    cron_sync(state, week)
    good = old
    if pattern == "older file":
        good = publish(flapping, [*ROWS, "account,u8@far.example,,"])
        serve(server, good)
        cron_sync(state, week)
    bad = {
        "503": 503,
        "cut short": good,
        "older file": old,
        "signed ahead": publish(flapping, ROWS[:7], ahead=16 * 60),
    }[pattern]

    for step in range(96):
        serve(server, bad if step % 2 else good, cut=pattern == "cut short" and step % 2 == 1)
        cron_sync(state, week)

    seen = counts(state, smtp_server)
    failed = [line for line in week.lines if line.startswith("core: FAILED: ")]
    assert len(failed) == 48, week.lines[-4:]
    assert seen["mails"] == 0 and failing_events(state) == 0, (seen, failed[:2])
    assert set(week.codes) == {0}, week.codes
    assert seen["audit"] == {"list_apply": len(set(versions_of(state, "core")))}, seen
    assert all(" stays" in line for line in failed), [
        line for line in failed if " stays" not in line
    ]

    for _ in range(6):  # (90 minutes of it alone)
        serve(server, bad, cut=pattern == "cut short")
        cron_sync(state, week)

    # (told once in operation: the event's key names the last success, which later() moves)
    assert len(smtp_server.messages) >= 1 and failing_events(state) >= 1, week.lines[-6:]
    assert week.codes[-6:].count(1) == 1, week.codes[-6:]
