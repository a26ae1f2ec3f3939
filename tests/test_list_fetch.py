"""Fetching lists: a real HTTPS server on loopback (self-signed certificate made for the session)
that misbehaves on purpose, and file:// URLs; every failure is a FetchError in one sentence."""

from __future__ import annotations

import email.utils
import os
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from podmod.lists import minisign
from podmod.lists.fetch import (
    FetchError,
    FetchResult,
    fetch,
    fetch_signature,
    file_address,
    file_validators,
    utc_minute,
)
from podmod.loopback import self_signed_certificate

LIST = b"kind,value,label,comment\naccount,spam@pod.example,spam,\n"
SIGNATURE = "untrusted comment: signature\nRWQ=\ntrusted comment: test\nabc=\n"
ETAG = '"v1"'
MODIFIED = "Wed, 01 May 2024 10:00:00 GMT"
_MODIFIED_AT = email.utils.parsedate_to_datetime(MODIFIED)
MIRRORED = (
    b"kind,value,label,comment\naccount,one@far.example,,\n",
    b"kind,value,label,comment\naccount,one@far.example,,\naccount,two@far.example,,\n",
)
MB = 1_000_000
# A list renamed by its publisher, signed as its new file, its old address redirecting there.
RENAMED_KEY = minisign.SecretKey.generate()
RENAMED_SIGNATURE = minisign.sign(LIST, RENAMED_KEY, file_name="renamed.csv")


def _gzip_bomb(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MB)
    parts = [compressor.compress(block) for _ in range(size // MB)]
    return b"".join(parts) + compressor.flush()


class Handler(BaseHTTPRequestHandler):
    """Each path is one behaviour, good or bad."""

    protocol_version = "HTTP/1.1"
    timeout = 10
    server: Server

    def setup(self) -> None:
        self.request.settimeout(10)
        self.request = self.server.context.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers)))
        base = f"https://127.0.0.1:{self.server.server_address[1]}"
        if "/api/v1/instance/" in self.path:  # (a server that keeps its blocks from the public)
            self.send(404 if "domain_blocks" in self.path else 401, b"")
            return
        route = getattr(self, "route_" + self.path.strip("/").replace(".", "_").replace("-", "_"))
        try:
            route(base)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    def route_list_csv(self, base: str) -> None:
        if self.headers.get("If-None-Match") == ETAG:
            self.send(304, ETag=ETAG, Content_Length="0")
        else:
            self.send(200, LIST, ETag=ETAG, Last_Modified=MODIFIED)

    def route_list_csv_minisig(self, base: str) -> None:
        self.send(200, SIGNATURE.encode())

    def route_lm_csv(self, base: str) -> None:
        if self.headers.get("If-Modified-Since") == MODIFIED:
            self.send(304, Content_Length="0")
        else:
            self.send(200, LIST, Last_Modified=MODIFIED)

    # A list's first server and a mirror of it, neither with an ETag. The mirror's copy is older
    # (and has one entry more), and it answers If-Modified-Since as servers do: by date.
    def route_first_csv(self, base: str) -> None:
        self.send(200, MIRRORED[0], Last_Modified="Thu, 02 May 2024 10:00:00 GMT")

    def route_mirror_csv(self, base: str) -> None:
        since = self.headers.get("If-Modified-Since")
        if since and email.utils.parsedate_to_datetime(since) >= _MODIFIED_AT:
            self.send(304, Content_Length="0")
        else:
            self.send(200, MIRRORED[1], Last_Modified=MODIFIED)

    def route_nosig_csv_minisig(self, base: str) -> None:
        self.send(404, b"not found")

    def route_challenged_csv(self, base: str) -> None:
        # (Cloudflare's challenge page, in short, with the header it sets on every one)
        page = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"
        self.send(403, page, Content_Type="text/html; charset=UTF-8", cf_mitigated="challenge")

    # A list's server busy (429) or down for maintenance (503), asking to be asked again later
    # (Retry-After: seconds, or an HTTP date), or saying something no client can use.
    def route_busy_csv(self, base: str) -> None:
        self.send(429, b"slow down", Retry_After="120")

    def route_maintenance_csv(self, base: str) -> None:
        later = email.utils.formatdate(time.time() + 7200, usegmt=True)
        self.send(503, b"back soon", Retry_After=later)

    def route_forever_csv(self, base: str) -> None:
        self.send(429, b"go away", Retry_After="99999999999999999999")

    def route_past_csv(self, base: str) -> None:
        self.send(503, b"", Retry_After="Wed, 01 May 2024 10:00:00 GMT")

    def route_unreadable_csv(self, base: str) -> None:
        self.send(429, b"", Retry_After="in a while")

    def route_ignored_csv(self, base: str) -> None:  # (Retry-After means nothing on a 500)
        self.send(500, b"", Retry_After="120")

    def route_busysig_csv(self, base: str) -> None:
        self.send(200, LIST)

    def route_busysig_csv_minisig(self, base: str) -> None:
        self.send(429, b"", Retry_After="60")

    # Answers that are not HTTP a client can read, and a body compressed in a way not asked for.
    def answer_raw(self, data: bytes) -> None:
        self.wfile.write(data)
        self.close_connection = True

    def route_many_headers_csv(self, base: str) -> None:
        headers = b"".join(b"X-Placeholder-%d: x\r\n" % n for n in range(150))
        self.answer_raw(b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 3\r\n\r\nabc")

    def route_long_header_csv(self, base: str) -> None:
        self.answer_raw(b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * 70_000 + b"\r\n\r\n")

    def route_bad_status_csv(self, base: str) -> None:
        self.answer_raw(b"HTTP/1.1 2OO OK\r\nContent-Length: 3\r\n\r\nabc")

    def route_not_http_csv(self, base: str) -> None:
        self.answer_raw(LIST)

    def route_brotli_csv(self, base: str) -> None:
        self.send(200, b"\x1b\x03\x00\xf8", Content_Encoding="br")

    def route_misnamed_csv(self, base: str) -> None:  # (a plain body: the header names no coding)
        self.send(200, LIST, Content_Encoding="UTF-8")

    def route_x_gzip_csv(self, base: str) -> None:  # (gzip's older name, which clients decode)
        self.send(200, zlib.compress(LIST, wbits=31), Content_Encoding="x-gzip")

    def route_gzip_csv(self, base: str) -> None:
        body = zlib.compress(LIST, wbits=31)
        self.send(200, body, Content_Encoding="gzip")

    def route_big_length(self, base: str) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(2 * MB))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def route_chunked(self, base: str) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunk = b"x" * 65536
        for _ in range(2 * MB // len(chunk) + 1):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def route_bomb(self, base: str) -> None:
        self.send(200, self.server.bomb, Content_Encoding="gzip")

    def trickle(self, data: bytes) -> None:
        """One byte every 50 ms, for 5 s at most."""
        end = time.monotonic() + 5
        for byte in data:
            if time.monotonic() > end:
                break
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.05)
        self.close_connection = True

    def route_trickle(self, base: str) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.send_header("Connection", "close")
        self.end_headers()
        self.trickle(b"x" * 1000)

    def route_trickle_keepalive(self, base: str) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.trickle(b"x" * 1000)

    def route_trickle_headers(self, base: str) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        self.trickle(b"X-Slow: " + b"x" * 1000 + b"\r\n")

    def route_truncated(self, base: str) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"x" * 500)
        self.close_connection = True

    def route_missing(self, base: str) -> None:
        self.send(404, b"not found")

    def route_broken(self, base: str) -> None:
        self.send(500, b"oops")

    def route_redirect(self, base: str) -> None:
        self.send(302, Location="/list.csv")

    def route_redirect_absolute(self, base: str) -> None:
        self.send(301, Location=f"{base}/redirect")

    # A list moved for good (each redirect to it permanent).
    def route_moved_csv(self, base: str) -> None:
        self.send(301, Location="/moved-again.csv")

    def route_moved_again_csv(self, base: str) -> None:
        self.send(308, Location=f"{base}/list.csv")

    def route_before_rename_csv(self, base: str) -> None:
        self.send(301, Location="/renamed.csv")

    def route_before_rename_csv_minisig(self, base: str) -> None:
        self.send(301, Location="/renamed.csv.minisig")

    def route_renamed_csv(self, base: str) -> None:
        self.send(200, LIST)

    def route_renamed_csv_minisig(self, base: str) -> None:
        self.send(200, RENAMED_SIGNATURE.encode())

    def route_redirect_http(self, base: str) -> None:
        self.send(302, Location=base.replace("https:", "http:") + "/list.csv")

    def route_loop(self, base: str) -> None:
        self.send(307, Location="/loop")

    def route_redirect_loopback(self, base: str) -> None:
        self.send(302, Location=f"https://127.0.0.1:{self.server.server_address[1]}/list.csv")

    def route_escape_reason(self, base: str) -> None:
        self.send_response(500, "Oops\x1b[2J\x1b]0;owned\x07\x9b31m")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def route_escape_location(self, base: str) -> None:
        self.send(302, Location="ftp://lists.example/\x1b[2J\x7f\x9b1mcore.csv")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.context = context
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.bomb = _gzip_bomb(100 * MB)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up on purpose, handshakes refused on purpose


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def https(tls_files: tuple[Path, Path]) -> Iterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    server = Server(context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class Client:
    """fetch() against the test server, trusting its certificate."""

    def __init__(self, base: str, cert: Path) -> None:
        self.base = base
        self.cert = str(cert)

    def __call__(self, path: str, **options: Any) -> FetchResult:
        options.setdefault("name", "core")
        options.setdefault("verify", self.cert)
        options.setdefault("timeout", 5.0)
        return fetch(self.base + path, **options)


@pytest.fixture
def get(https: Server, tls_files: tuple[Path, Path]) -> Client:
    return Client(f"https://127.0.0.1:{https.server_address[1]}", tls_files[0])


def test_download_returns_the_body_and_validators(get: Client) -> None:
    result = get("/list.csv")
    assert (result.not_modified, result.body) == (False, LIST)
    assert (result.etag, result.last_modified) == (ETAG, MODIFIED)
    assert result.url == get.base + "/list.csv"


def test_same_etag_is_not_modified(get: Client, https: Server) -> None:
    result = get("/list.csv", etag=ETAG, last_modified=MODIFIED)
    assert result.not_modified and result.body is None and result.etag == ETAG
    _, headers = https.requests[-1]
    assert (headers["If-None-Match"], headers["If-Modified-Since"]) == (ETAG, MODIFIED)


def test_last_modified_alone_is_conditional(get: Client) -> None:
    assert get("/lm.csv").last_modified == MODIFIED
    result = get("/lm.csv", last_modified=MODIFIED)
    assert result.not_modified and result.body is None and result.last_modified == MODIFIED


def test_gzip_is_decoded(get: Client) -> None:
    assert get("/gzip.csv").body == LIST


def test_signature_is_fetched_next_to_the_list(get: Client) -> None:
    text = fetch_signature(get.base + "/list.csv", name="core", verify=get.cert)
    assert text == SIGNATURE


def test_missing_signature_refuses_the_list(get: Client) -> None:
    with pytest.raises(FetchError) as refused:
        fetch_signature(get.base + "/nosig.csv", name="core", verify=get.cert)
    assert str(refused.value) == (
        f"List 'core' has no signature at {get.base}/nosig.csv.minisig; the list is refused"
        " because a public key is pinned for it."
    )


def test_size_announced_by_content_length_is_refused_before_reading(get: Client) -> None:
    with pytest.raises(FetchError, match="announced 2 MB, more than 1 MB"):
        get("/big-length", max_bytes=MB)


def test_size_of_a_chunked_body_is_counted(get: Client) -> None:
    with pytest.raises(FetchError) as refused:
        get("/chunked", max_bytes=MB)
    assert str(refused.value) == (
        f"List 'core' could not be fetched from {get.base}/chunked: the server sent more than"
        " 1 MB (list_sync.max_bytes); the previous version stays in force and the next sync"
        " tries again."
    )


def test_a_gzip_bomb_stops_at_the_decompressed_limit(get: Client) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="the server sent more than 1 MB"):
        get("/bomb", max_bytes=MB)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("path", ["/trickle", "/trickle-keepalive", "/trickle-headers"])
def test_a_trickling_server_is_cut_off_at_the_deadline(get: Client, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"did not finish within 1 second[^s]"):
        get(path, timeout=1.0)
    assert 0.9 < time.monotonic() - started < 2


def test_a_truncated_body_is_refused(get: Client) -> None:
    with pytest.raises(FetchError, match="the download was cut short"):
        get("/truncated")


@pytest.mark.parametrize(
    ("path", "status"), [("/missing", "HTTP 404 Not Found"), ("/broken", "HTTP 500")]
)
def test_an_error_status_is_named(get: Client, path: str, status: str) -> None:
    with pytest.raises(FetchError, match=f"the server answered {status}"):
        get(path)


@pytest.mark.parametrize(
    ("path", "status", "why"),
    [
        (
            "/api/v1/instance/domain_blocks",
            "HTTP 404 Not Found",
            "a Mastodon server answers so when its admins do not show its domain blocks to"
            ' everyone (its "Show domain blocks" setting), or runs in limited federation mode;'
            " GoToSocial unless its admins set instance-expose-blocklist",
        ),
        (
            "/social/api/v1/instance/peers?filter=suspended",
            "HTTP 401 Unauthorized",
            "GoToSocial answers so unless its admins set instance-expose-blocklist"
            " (instance-expose-suspended on older versions), or for filter=allowed"
            " instance-expose-allowlist",
        ),
    ],
)
def test_a_servers_api_of_its_blocks_refusing_the_public_says_why(
    get: Client, path: str, status: str, why: str
) -> None:
    with pytest.raises(FetchError) as refused:
        get(path)

    assert f"the server answered {status} ({why}); the previous version stays" in str(refused.value)


@pytest.mark.parametrize(
    ("path", "status", "wait"),
    [
        ("/busy.csv", "HTTP 429 Too Many Requests", 120),
        ("/maintenance.csv", "HTTP 503 Service Unavailable", 7200),
        ("/forever.csv", "HTTP 429 Too Many Requests", 86400),  # (a day at most)
        ("/past.csv", "HTTP 503 Service Unavailable", None),
        ("/unreadable.csv", "HTTP 429 Too Many Requests", None),
        ("/ignored.csv", "HTTP 500 Internal Server Error", None),
    ],
)
def test_a_server_asking_to_be_asked_again_later_is_heard(
    get: Client, path: str, status: str, wait: int | None
) -> None:
    before = datetime.now(UTC)
    with pytest.raises(FetchError) as refused:
        get(path)
    after = datetime.now(UTC)

    said, asked = str(refused.value), refused.value.retry_after
    if wait is None:
        assert asked is None and "Retry-After" not in said, said
        assert (
            f"the server answered {status}; the previous version stays in force and the next"
            " sync tries again." in said
        ), said
        return
    assert asked is not None, said
    # (an HTTP date has whole seconds)
    assert before + timedelta(seconds=wait - 1) <= asked <= after + timedelta(seconds=wait), asked
    assert (
        f"the server answered {status} and asks not to be asked again before"
        f" {utc_minute(asked)} (Retry-After); the previous version stays in force and the first"
        " sync after then tries again." in said
    ), said


def test_a_signatures_server_asking_to_wait_is_heard_too(get: Client) -> None:
    with pytest.raises(FetchError) as refused:
        fetch_signature(get.base + "/busysig.csv", name="core", verify=get.cert)
    assert refused.value.retry_after is not None
    assert "(Retry-After); the previous version stays in force and the first sync after then" in (
        str(refused.value)
    )


@pytest.mark.parametrize("path", ["/misnamed.csv", "/x-gzip.csv"])
def test_a_content_encoding_that_names_no_compression_or_one_decoded_is_read(
    get: Client, path: str
) -> None:
    assert get(path).body == LIST


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/many-headers.csv", "the server's answer is not HTTP podmod can read (got more than 100"),
        ("/long-header.csv", "the server's answer is not HTTP podmod can read (a line of its head"),
        ("/bad-status.csv", "is not HTTP podmod can read (its status line is 'HTTP/1.1 2OO OK');"),
        ("/not-http.csv", "is not HTTP podmod can read (its status line is 'kind,value,label,c"),
        (
            "/brotli.csv",
            "the server sent the file compressed as 'br', which podmod did not ask for (it asks"
            " for deflate, gzip or none); the previous version stays in force",
        ),
    ],
)
def test_an_answer_podmod_cannot_read_says_what_is_wrong_with_it(
    get: Client, path: str, why: str
) -> None:
    with pytest.raises(FetchError) as refused:
        get(path)
    assert why in str(refused.value), str(refused.value)


def test_a_cloudflare_challenge_before_the_file_is_named(get: Client) -> None:
    with pytest.raises(FetchError) as refused:
        get("/challenged.csv")

    assert (
        "the server answered HTTP 403 Forbidden (Cloudflare stands before the file and asks for a"
        " browser's challenge, which a sync cannot pass: ask the site's owner to let podmod's"
        " requests through, User-Agent 'podmod (diaspora* moderation; list sync)', or for the"
        " list where no challenge stands); the previous version stays"
    ) in str(refused.value)


def test_https_redirects_are_followed(get: Client) -> None:
    result = get("/redirect-absolute")
    assert result.body == LIST and result.url == get.base + "/list.csv"


@pytest.mark.parametrize(
    ("path", "moved"),
    [
        ("/list.csv", False),
        ("/redirect", False),
        ("/redirect-absolute", False),
        ("/moved.csv", True),
    ],
)
def test_a_list_moved_for_good_is_one_every_redirect_to_which_is_permanent(
    get: Client, path: str, moved: bool
) -> None:
    # (/redirect-absolute: a 301, then a 302; /moved.csv: a 301, then a 308)
    result = get(path)
    assert (result.body, result.url, result.moved) == (LIST, get.base + "/list.csv", moved)
    unchanged = get(path, etag=ETAG)
    assert (unchanged.not_modified, unchanged.moved) == (True, moved)


def test_a_redirect_to_plain_http_is_refused(get: Client) -> None:
    with pytest.raises(FetchError, match="redirected to plain HTTP"):
        get("/redirect-http")


def test_a_redirect_to_another_host_on_a_private_address_is_refused(
    https: Server, tls_files: tuple[Path, Path]
) -> None:
    """The host the podmin typed (here localhost, standing in for a public list server) is fetched
    as typed; a redirect from it to an address on this server's own network is not followed."""
    base = f"https://localhost:{https.server_address[1]}"
    before = len(https.requests)
    with pytest.raises(FetchError) as refused:
        fetch(base + "/redirect-loopback", name="core", verify=str(tls_files[0]), timeout=5)
    assert "redirected to https://127.0.0.1:" in str(refused.value)
    assert "on a private network (127.0.0.1)" in str(refused.value)
    assert [path for path, _ in https.requests[before:]] == ["/redirect-loopback"]


class ConnectProxy:
    """An HTTP proxy on loopback that tunnels (CONNECT) as a site's egress proxy does, recording
    each request's first line and Proxy-Authorization; or, `refusing`, answers 403 to each."""

    def __init__(self, *, refusing: bool = False) -> None:
        self.refusing = refusing
        self.asked: list[tuple[str, str | None]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        with client:
            client.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = client.recv(4096)
                if not data:
                    return
                head += data
            first, *fields = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            headers = dict(field.split(": ", 1) for field in fields if ": " in field)
            self.asked.append((first, headers.get("Proxy-Authorization")))
            method, target, _ = first.split(" ", 2)
            if self.refusing or method != "CONNECT":
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            host, port = target.rsplit(":", 1)
            try:
                upstream = socket.create_connection((host, int(port)), timeout=10)
            except OSError:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            with upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _pipe(client, upstream)

    def close(self) -> None:
        self.listener.close()


def _pipe(one: socket.socket, other: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(one, selectors.EVENT_READ, other)
        selector.register(other, selectors.EVENT_READ, one)
        while True:
            for key, _ in selector.select(timeout=10):
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                if not data:
                    return
                key.data.sendall(data)


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    served = ConnectProxy()
    yield served
    served.close()


def test_a_configured_proxy_carries_the_list_and_its_signature_and_hides_its_password(
    get: Client, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where this server reaches the internet only through a proxy (list_sync.proxy), a list and
    its signature go through it, as a tunnel (TLS and the certificate check end to end); an
    HTTPS_PROXY in the environment never takes its place."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # (nothing listens there)
    with_password = proxy.url.replace("http://", "http://podmod:placeholder@")

    result = get("/list.csv", proxy=with_password)
    signature = fetch_signature(
        get.base + "/list.csv", name="core", verify=get.cert, proxy=proxy.url
    )

    assert result.body == LIST and signature == SIGNATURE
    port = get.base.rsplit(":", 1)[1]
    assert [line.rpartition(" ")[0] for line, _ in proxy.asked] == [f"CONNECT 127.0.0.1:{port}"] * 2
    assert proxy.asked[0][1] == "Basic cG9kbW9kOnBsYWNlaG9sZGVy"  # podmod:placeholder


def test_a_proxy_refusing_or_gone_is_named_and_the_guard_still_stands(
    https: Server, tls_files: tuple[Path, Path], proxy: ConnectProxy
) -> None:
    refusing = ConnectProxy(refusing=True)
    base = f"https://localhost:{https.server_address[1]}"
    try:
        with pytest.raises(FetchError) as refused:
            fetch(base + "/list.csv", name="core", verify=str(tls_files[0]), proxy=refusing.url)
        with pytest.raises(FetchError) as gone:
            fetch(
                base + "/list.csv",
                name="core",
                verify=str(tls_files[0]),
                proxy="http://127.0.0.1:9",
            )
        # A redirect from the typed host to this server's own network is refused before the
        # proxy is asked for it: the guard checks every address first, proxy or not.
        with pytest.raises(FetchError) as private:
            fetch(
                base + "/redirect-loopback", name="core", verify=str(tls_files[0]), proxy=proxy.url
            )
    finally:
        refusing.close()

    assert "the proxy (list_sync.proxy) refused the tunnel (403 Forbidden)" in str(refused.value)
    assert "the proxy (list_sync.proxy) could not be reached (the connection was refused)" in str(
        gone.value
    ), str(gone.value)
    assert "on a private network (127.0.0.1)" in str(private.value)
    assert [line.split(" ")[1] for line, _ in proxy.asked] == [
        f"localhost:{https.server_address[1]}"
    ]


def test_behind_a_proxy_a_name_this_servers_resolver_does_not_know_is_the_proxys_to_resolve(
    proxy: ConnectProxy,
) -> None:
    """A server reaching the internet only through a proxy may resolve only its own network's
    names: one it cannot resolve goes to the proxy (here, one that cannot either: 502)."""
    url = "https://lists.invalid:8443/core.csv"
    with pytest.raises(FetchError) as direct:
        fetch(url, name="core", timeout=5)
    with pytest.raises(FetchError) as proxied:
        fetch(url, name="core", timeout=5, proxy=proxy.url)

    assert "the host lists.invalid could not be resolved" in str(direct.value)
    assert "the proxy (list_sync.proxy) refused the tunnel (502 Bad Gateway)" in str(proxied.value)
    assert [line for line, _ in proxy.asked] == ["CONNECT lists.invalid:8443 HTTP/1.0"]


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/escape-reason", "answered HTTP 500 Oops; the previous"),
        ("/escape-location", "redirected to ftp://lists.example/core.csv, which"),
    ],
)
def test_what_a_server_sends_back_is_quoted_without_control_characters(
    get: Client, path: str, words: str
) -> None:
    with pytest.raises(FetchError) as refused:
        get(path)
    message = str(refused.value)
    assert not [char for char in message if ord(char) < 32 or 0x7F <= ord(char) <= 0x9F], message
    # the server's words are still there to read, without what is left of an escape sequence
    # once its ESC is gone (`[2J`, `]0;owned`)
    assert words in message


def test_endless_redirects_stop(get: Client) -> None:
    with pytest.raises(FetchError, match="redirected more than 5 times"):
        get("/loop")


class NoNetwork:
    def get(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("no request may be made")

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://lists.example/core.csv", "plain http:// is refused"),
        ("ftp://lists.example/core.csv", "only https:// and file:/// URLs"),
    ],
)
def test_other_schemes_are_refused_before_any_request(url: str, reason: str) -> None:
    with pytest.raises(FetchError, match=reason) as refused:
        fetch(url, name="core", session=NoNetwork())  # type: ignore[arg-type]
    assert str(refused.value).startswith(f"List 'core' could not be fetched from {url}: ")


def test_a_refused_connection_is_a_fetch_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match="the connection was refused"):
        fetch(f"https://127.0.0.1:{port}/core.csv", name="core", timeout=5)


def test_an_untrusted_certificate_is_a_fetch_error(get: Client) -> None:
    with pytest.raises(FetchError, match="TLS certificate was not accepted"):
        get("/list.csv", verify=True)


def test_credentials_in_the_url_are_not_shown(get: Client) -> None:
    url = get.base.replace("https://", "https://me:secret@") + "/missing"
    with pytest.raises(FetchError) as refused:
        fetch(url, name="core", verify=get.cert)
    assert "secret" not in str(refused.value) and "HTTP 404" in str(refused.value)
    assert "https://me:***@127.0.0.1:" in str(refused.value)


# file:// URLs


def test_a_file_is_read_with_validators_and_conditionally(tmp_path: Path) -> None:
    path = tmp_path / "core.csv"
    path.write_bytes(LIST)
    result = fetch(path.as_uri(), name="core")
    assert (result.not_modified, result.body) == (False, LIST)
    assert (result.etag, result.last_modified) == file_validators(path.stat())
    again = fetch(path.as_uri(), name="core", etag=result.etag, last_modified=result.last_modified)
    assert again.not_modified and again.body is None
    path.write_bytes(LIST + b"pod,bad.example,,\n")
    changed = fetch(
        path.as_uri(), name="core", etag=result.etag, last_modified=result.last_modified
    )
    assert not changed.not_modified and changed.body is not None and changed.etag != result.etag


def test_a_rewritten_file_with_the_same_second_is_still_new(tmp_path: Path) -> None:
    path = tmp_path / "core.csv"
    path.write_bytes(LIST)
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    first = fetch(path.as_uri(), name="core")
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_500_000_000))
    second = fetch(path.as_uri(), name="core", etag=first.etag, last_modified=first.last_modified)
    assert not second.not_modified and first.last_modified == second.last_modified


def test_a_large_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "core.csv"
    path.write_bytes(LIST)
    with pytest.raises(FetchError, match="larger than 10 bytes"):
        fetch(path.as_uri(), name="core", max_bytes=10)


def test_a_missing_file_and_its_missing_signature(tmp_path: Path) -> None:
    path = tmp_path / "core.csv"
    with pytest.raises(FetchError, match="there is no file"):
        fetch(path.as_uri(), name="core")
    path.write_bytes(LIST)
    with pytest.raises(FetchError, match="has no signature at file://"):
        fetch_signature(path.as_uri(), name="core")
    path.with_name("core.csv.minisig").write_text(SIGNATURE)
    assert fetch_signature(path.as_uri(), name="core") == SIGNATURE


def test_a_file_url_needs_a_local_absolute_path() -> None:
    with pytest.raises(FetchError, match="must name a local file"):
        fetch("file://lists.example/core.csv", name="core")


@pytest.mark.parametrize(
    ("url", "serves", "address"),
    [
        (
            "https://github.com/pub/lists/blob/main/tier/core.csv?plain=1",
            "page",
            "https://raw.githubusercontent.com/pub/lists/main/tier/core.csv",
        ),
        (
            "https://gitlab.com/group/sub/lists/-/blob/main/core.csv?ref_type=heads",
            "page",
            "https://gitlab.com/group/sub/lists/-/raw/main/core.csv",
        ),
        (
            "https://codeberg.org/pub/lists/src/branch/main/core.csv",
            "page",
            "https://codeberg.org/pub/lists/raw/branch/main/core.csv",
        ),
        (
            "https://git.example:8443/pub/lists/src/tag/v2/core.csv",
            "page",
            "https://git.example:8443/pub/lists/raw/tag/v2/core.csv",
        ),
        (
            "https://forge.example/pub/lists/blob/main/core.csv",
            "page",
            "https://forge.example/pub/lists/raw/main/core.csv",
        ),
        (
            "https://alice:secret@github.com/pub/lists/blob/main/core.csv",
            "page",
            "https://alice:secret@github.com/pub/lists/raw/main/core.csv",
        ),
        (
            "https://raw.githubusercontent.com/pub/lists/main/core.csv",
            "lfs",
            "https://media.githubusercontent.com/media/pub/lists/main/core.csv",
        ),
        (
            "https://codeberg.org/pub/lists/raw/branch/main/core.csv",
            "lfs",
            "https://codeberg.org/pub/lists/media/branch/main/core.csv",
        ),
        ("https://lists.example/core.csv", "page", None),
        ("https://lists.example/blob/core.csv", "page", None),
        ("https://raw.githubusercontent.com/pub/lists/main/core.csv", "page", None),
        ("https://github.com/pub/lists/blob/main/core.csv", "lfs", None),
        ("file:///srv/pub/lists/blob/main/core.csv", "page", None),
    ],
)
def test_the_file_behind_a_forge_page_or_lfs_pointer_is_named_from_the_address(
    url: str, serves: str, address: str | None
) -> None:
    assert file_address(url, serves) == address
