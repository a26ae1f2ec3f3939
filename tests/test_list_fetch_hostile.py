"""Fetching lists from a hostile server: a TLS server on loopback whose every answer is written by
hand, byte for byte (an HTTP/1.0 body cut without TLS's close_notify, half a gzip stream, an
address no parser reads, a header no request can send back, an error page sent with 200). Each is
a FetchError in one sentence, and nothing cut is ever taken for a whole file."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from podmod.lists import fetch as fetching
from podmod.lists.fetch import FetchError, FetchResult, fetch, fetch_signature
from podmod.loopback import self_signed_certificate
from tests.test_list_fetch import ConnectProxy

ROWS = b"kind,value,label,comment\n" + b"".join(
    b"account,member%d@far.example,spam,\n" % n for n in range(300)
)
SIGNATURE = b"untrusted comment: signature\nRWQ=\ntrusted comment: test\nabc=\n"
Answer = Callable[[ssl.SSLSocket], None]


def send(head: bytes, body: bytes = b"", *, close_notify: bool = True) -> Answer:
    """An answer: `head` (status line and headers, without the blank line) and `body`; then the
    server ends TLS as it should (close_notify), or only closes the connection under it, as a
    connection cut on the way looks to the client."""

    def answer(tls: ssl.SSLSocket) -> None:
        tls.sendall(head + b"\r\n\r\n" + body)
        if close_notify:
            tls.settimeout(2)
            with contextlib.suppress(OSError):  # (it waits for the client's, which may not come)
                tls.unwrap()  # sends close_notify

    return answer


def trickle(head: bytes, *, seconds: float, then: bytes = b"") -> Answer:
    """`head`, one byte at a time over `seconds`, then `then` at once: a server slow on purpose,
    each byte arriving before any read times out."""

    def answer(tls: ssl.SSLSocket) -> None:
        pause = seconds / max(len(head), 1)
        for byte in head:
            tls.sendall(bytes([byte]))
            time.sleep(pause)
        tls.sendall(then)

    return answer


class HostileServer:
    """HTTPS on 127.0.0.1 answering each path with what a test put in `answers`; records the
    request heads it got, and whether each connection it served has ended."""

    def __init__(self, tls_files: tuple[Path, Path]) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(*tls_files)
        self.answers: dict[str, Answer] = {}
        self.requests: list[bytes] = []
        self.open_connections = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.base = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str) -> str:
        return self.base + path

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        with self.lock:
            self.open_connections += 1
        try:
            with raw:
                raw.settimeout(30)
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    head = b""
                    while b"\r\n\r\n" not in head and len(head) < 65536:
                        data = tls.recv(4096)
                        if not data:
                            return
                        head += data
                    self.requests.append(head)
                    self.answers[head.split(b" ")[1].decode()](tls)
        except (OSError, KeyError, IndexError):
            pass  # a client hanging up on purpose, a path no test answers
        finally:
            with self.lock:
                self.open_connections -= 1

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server(tls_files: tuple[Path, Path]) -> Iterator[HostileServer]:
    served = HostileServer(tls_files)
    yield served
    served.close()


@pytest.fixture
def get(server: HostileServer, tls_files: tuple[Path, Path]) -> Callable[..., FetchResult]:
    """fetch() of a path on the server, trusting its certificate."""

    def get(path: str, **options: Any) -> FetchResult:
        options.setdefault("name", "core")
        options.setdefault("verify", str(tls_files[0]))
        options.setdefault("timeout", 10.0)
        return fetch(server.url(path), **options)

    return get


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


# 1. An address no URL parser reads -----------------------------------------------------------


@pytest.mark.parametrize("location", [b"https://[::1", b"https://[::1]:99x/core.csv"])
def test_a_redirect_to_an_address_no_parser_reads_is_the_lists_failure_not_a_crash(
    get: Callable[..., FetchResult], server: HostileServer, location: bytes
) -> None:
    server.answers["/core.csv"] = send(
        b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\nLocation: " + location
    )
    with pytest.raises(FetchError) as refused:
        get("/core.csv")
    message = str(refused.value)
    assert message.startswith(f"List 'core' could not be fetched from {server.url('/core.csv')}: ")
    assert location.decode() in message
    assert message.endswith("; the previous version stays in force and the next sync tries again.")


def test_a_signatures_redirect_no_parser_reads_fails_the_list_in_one_sentence(
    server: HostileServer, tls_files: tuple[Path, Path]
) -> None:
    server.answers["/core.csv.minisig"] = send(
        b"HTTP/1.1 301 Moved\r\nContent-Length: 0\r\nLocation: https://[::1"
    )
    with pytest.raises(FetchError, match=r"^The signature of list 'core' could not be fetched"):
        fetch_signature(server.url("/core.csv"), name="core", verify=str(tls_files[0]))


def test_a_photo_address_no_parser_reads_is_a_fetch_error() -> None:
    with pytest.raises(FetchError, match="cannot be read"):
        fetching.download_public("https://[::1/photo.jpg", max_bytes=1000, timeout=5)


@pytest.mark.parametrize(
    "date", [b"Wed, 01 May 2024 10:00:00 +99999999999999999999", b"Wed, 01 May 99999 10:00:00 GMT"]
)
def test_a_retry_after_date_out_of_any_range_is_ignored(
    get: Callable[..., FetchResult], server: HostileServer, date: bytes
) -> None:
    server.answers["/core.csv"] = send(
        b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nRetry-After: " + date
    )
    with pytest.raises(FetchError, match="HTTP 429 Too Many Requests; the previous") as refused:
        get("/core.csv")
    assert refused.value.retry_after is None


# 2. A body that cannot be known whole ---------------------------------------------------------


def test_a_body_without_length_cut_without_close_notify_is_refused(
    get: Callable[..., FetchResult], server: HostileServer
) -> None:
    """HTTP/1.0, no Content-Length: the body ends where the connection does. Cut at 90 % and
    closed under TLS (no close_notify), it is refused; sent whole and ended with close_notify,
    it is the file."""
    cut = ROWS[: len(ROWS) * 9 // 10]
    server.answers["/cut.csv"] = send(b"HTTP/1.0 200 OK", cut, close_notify=False)
    server.answers["/whole.csv"] = send(b"HTTP/1.0 200 OK", ROWS)
    with pytest.raises(
        FetchError, match=r"cut short \(the server gave no Content-Length"
    ) as cut_short:
        get("/cut.csv")
    assert "close_notify" in str(cut_short.value)
    assert get("/whole.csv").body == ROWS


@pytest.mark.parametrize("close_notify", [True, False])
def test_half_a_gzip_stream_is_refused_however_the_connection_ends(
    get: Callable[..., FetchResult], server: HostileServer, close_notify: bool
) -> None:
    packed = zlib.compress(ROWS, wbits=31)
    head = b"HTTP/1.0 200 OK\r\nContent-Encoding: gzip"
    server.answers["/half.csv"] = send(head, packed[: len(packed) // 2], close_notify=close_notify)
    server.answers["/whole.csv"] = send(head, packed)
    with pytest.raises(FetchError, match="cut short"):
        get("/half.csv")
    assert get("/whole.csv").body == ROWS


def test_a_gzip_stream_without_its_trailer_is_refused_even_with_its_length_declared(
    get: Callable[..., FetchResult], server: HostileServer
) -> None:
    short = zlib.compress(ROWS, wbits=31)[:-8]  # (its CRC and length, which end the stream)
    server.answers["/short.csv"] = send(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d" % len(short), short
    )
    with pytest.raises(FetchError, match=r"cut short \(the compressed file stops before its end\)"):
        get("/short.csv")


# 3. Validators podmod could never send back ---------------------------------------------------


@pytest.mark.parametrize(
    ("etag", "modified", "kept"),
    [
        # (the date is read all the same, and kept as HTTP writes one)
        (b'\x01 "p1"', b"\x01Wed, 01 May 2024 10:00:00 GMT", "Wed, 01 May 2024 10:00:00 GMT"),
        (b"p1", b"yesterday", None),
        (b'"' + b"x" * 2000 + b'"', b"Wed, 01 May 99999 10:00:00 GMT", None),
    ],
)
def test_validators_podmod_could_not_send_back_are_not_kept(
    get: Callable[..., FetchResult],
    server: HostileServer,
    etag: bytes,
    modified: bytes,
    kept: str | None,
) -> None:
    server.answers["/core.csv"] = send(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nETag: %s\r\nLast-Modified: %s"
        % (len(ROWS), etag, modified),
        ROWS,
    )
    result = get("/core.csv")
    assert (result.body, result.etag, result.last_modified) == (ROWS, None, kept)


def test_validators_are_kept_as_http_writes_them_and_sent_back(
    get: Callable[..., FetchResult], server: HostileServer
) -> None:
    server.answers["/core.csv"] = send(
        b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nETag: W/"p-1"\r\n'
        b"Last-Modified: Wednesday, 01-May-24 10:00:00 GMT" % len(ROWS),
        ROWS,
    )
    result = get("/core.csv")
    assert (result.etag, result.last_modified) == ('W/"p-1"', "Wed, 01 May 2024 10:00:00 GMT")
    server.answers["/core.csv"] = send(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0")
    again = get("/core.csv", etag=result.etag, last_modified=result.last_modified)
    assert again.not_modified
    assert b'If-None-Match: W/"p-1"\r\n' in server.requests[-1]
    assert b"If-Modified-Since: Wed, 01 May 2024 10:00:00 GMT\r\n" in server.requests[-1]


@pytest.mark.parametrize(
    ("stored", "sent"),
    [(' "p1"', b'If-None-Match: "p1"\r\n'), ("p 1 \u00e9", None), ('"' + "x" * 600 + '"', None)],
)
def test_a_validator_stored_before_they_were_checked_no_longer_breaks_the_list(
    get: Callable[..., FetchResult], server: HostileServer, stored: str, sent: bytes | None
) -> None:
    """One a sync stored from an earlier answer (`' "p1"'`: `\\x01 "p1"` without its control
    character) is sent as HTTP writes it, or not at all: the file comes, with validators that
    can be sent back."""
    server.answers["/core.csv"] = send(
        b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nETag: "p2"' % len(ROWS), ROWS
    )
    result = get("/core.csv", etag=stored, last_modified=" \x7fnot a date")
    assert (result.not_modified, result.body, result.etag) == (False, ROWS, '"p2"')
    asked = server.requests[-1]
    assert (sent in asked) if sent else (b"If-None-Match" not in asked), asked
    assert b"If-Modified-Since" not in asked


# 4. One time limit for a list and its signature ----------------------------------------------


@pytest.mark.timeout(60)
def test_a_list_and_its_signature_share_one_time_limit(
    get: Callable[..., FetchResult], server: HostileServer, tls_files: tuple[Path, Path]
) -> None:
    """Each trickled over 70 % of list_sync.timeout: the list comes in time, its signature then
    does not, as both together took longer than the limit."""
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\nX-Pad: %s\r\n\r\n"
    server.answers["/core.csv"] = trickle(head % (len(ROWS), b"x" * 60), seconds=4.2, then=ROWS)
    server.answers["/core.csv.minisig"] = trickle(
        head % (len(SIGNATURE), b"x" * 60), seconds=4.2, then=SIGNATURE
    )
    started = time.monotonic()
    result = get("/core.csv", timeout=6.0)  # (1.8 s to spare, on a busy machine)
    assert result.body == ROWS and result.deadline is not None
    with pytest.raises(FetchError, match="did not finish downloading within 6 seconds"):
        fetch_signature(
            server.url("/core.csv"),
            name="core",
            timeout=6.0,
            verify=str(tls_files[0]),
            deadline=result.deadline,
        )
    assert time.monotonic() - started < 6.0 + 3  # (the limit, and a loaded machine's slack)


# 5. Nothing left behind at a deadline --------------------------------------------------------


def _fetch_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "podmod-list-fetch"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("through", ["directly", "through a proxy"])
def test_a_server_trickling_its_headers_past_the_deadline_leaves_no_thread_or_socket(
    get: Callable[..., FetchResult], server: HostileServer, through: str
) -> None:
    """The request's thread, given up on at the deadline, ends at once with its socket closed,
    although the server would trickle on for a minute (`lists sync --every` would otherwise
    gain a thread and a socket each round)."""
    server.answers["/core.csv"] = trickle(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 600, seconds=60)
    proxy = ConnectProxy() if through == "through a proxy" else None
    before = set(_fetch_threads())
    try:
        with pytest.raises(FetchError, match=r"did not finish within 1 second[^s]"):
            get("/core.csv", timeout=1.0, proxy=proxy.url if proxy else None)
        wait_for(lambda: not set(_fetch_threads()) - before, "the request's thread ending", 20)
        wait_for(lambda: server.open_connections == 0, "the server seeing the connection end", 20)
    finally:
        if proxy is not None:
            proxy.close()


# 6. Messages that say what is wrong ----------------------------------------------------------


@pytest.mark.parametrize(
    "lengths", [b"Content-Length: 12, 13", b"Content-Length: 12\r\nContent-Length: 13"]
)
def test_two_content_lengths_are_named(
    get: Callable[..., FetchResult], server: HostileServer, lengths: bytes
) -> None:
    server.answers["/core.csv"] = send(b"HTTP/1.1 200 OK\r\n" + lengths, b"x" * 13)
    with pytest.raises(FetchError, match=r"the server sent an invalid Content-Length \('12, 13'\)"):
        get("/core.csv")


def test_one_content_length_said_twice_is_that_length(
    get: Callable[..., FetchResult], server: HostileServer
) -> None:
    server.answers["/core.csv"] = send(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Length: %d" % (len(ROWS), len(ROWS)),
        ROWS,
    )
    assert get("/core.csv").body == ROWS


@pytest.mark.parametrize(
    ("length", "said"),
    [
        (b"1000000000000", "announced 1 TB, more than 50 MB"),
        (b"1000000000000000000", "announced 1,000,000 TB, more than 50 MB"),
        (b"1500000000", "announced 1.5 GB, more than 50 MB"),
    ],
)
def test_a_huge_announced_size_is_written_as_people_read_it(
    get: Callable[..., FetchResult], server: HostileServer, length: bytes, said: str
) -> None:
    server.answers["/core.csv"] = send(b"HTTP/1.1 200 OK\r\nContent-Length: " + length, b"abc")
    with pytest.raises(FetchError, match=said):
        get("/core.csv")


def test_a_long_reason_phrase_is_cut(
    get: Callable[..., FetchResult], server: HostileServer
) -> None:
    server.answers["/core.csv"] = send(
        b"HTTP/1.1 500 EVIL " + b"x" * 3000 + b"\r\nContent-Length: 0"
    )
    with pytest.raises(FetchError) as refused:
        get("/core.csv")
    message = str(refused.value)
    assert "HTTP 500 EVIL xxx" in message and "x" * 100 not in message
    assert len(message) < 300, message


# 7. An error page sent as a success ----------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [b"502 Bad Gateway", b"Service Temporarily Unavailable", b"Just a moment...", b"Error 429"],
)
def test_an_error_page_sent_with_200_is_a_failure_to_try_again_not_a_wrong_address(
    get: Callable[..., FetchResult], server: HostileServer, title: bytes
) -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>%s</title></head><body>oops</body></html>" % title
    server.answers["/core.csv"] = send(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d" % len(page), page
    )
    with pytest.raises(FetchError) as refused:
        get("/core.csv")
    assert str(refused.value) == (
        f"List 'core' could not be fetched from {server.url('/core.csv')}: the server, or a proxy"
        f" or CDN in front of it, answered an error page ({title.decode()!r}) with status 200;"
        " the previous version stays in force and the next sync tries again."
    )


def test_a_forges_page_of_the_file_is_still_read_as_the_page_it_is(
    get: Callable[..., FetchResult], server: HostileServer
) -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>lists/core.csv at main</title></head></html>"
    server.answers["/core.csv"] = send(b"HTTP/1.1 200 OK\r\nContent-Length: %d" % len(page), page)
    assert get("/core.csv").body == page  # (for parsing to name the file's own address)


# 8. A signature that is not text -------------------------------------------------------------


def test_a_binary_signature_was_fetched_but_is_not_text(
    server: HostileServer, tls_files: tuple[Path, Path]
) -> None:
    server.answers["/core.csv.minisig"] = send(
        b"HTTP/1.1 200 OK\r\nContent-Length: 4", b"\xff\xfe\x00\x01"
    )
    with pytest.raises(FetchError) as refused:
        fetch_signature(server.url("/core.csv"), name="core", verify=str(tls_files[0]))
    assert str(refused.value) == (
        f"The signature of list 'core' was fetched from {server.url('/core.csv.minisig')}, but it"
        " is not text (UTF-8), as a minisign signature is; the previous version stays in force"
        " and the next sync tries again."
    )
