"""Downloading a list and its detached signature for `podmod lists sync`: HTTPS or a local file,
conditional, size-limited and under one deadline, so a bad server can only make a sync fail; every
request through podmod.netguard. Remote photos are downloaded the same way (download_public)."""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests
import urllib3.exceptions
import urllib3.response
import urllib3.util.request

from podmod import netguard
from podmod.errors import PodmodError, first_line
from podmod.redact import masked_url, printable

MAX_REDIRECTS = 5
MAX_SIGNATURE_BYTES = 10_000
# What bounds a download's size, said after it when a file passes it: a list file's setting, the
# fixed bound of a signature (which no setting changes).
LIST_BOUND = "list_sync.max_bytes"
SIGNATURE_BOUND = "the most a signature file may be: a minisign signature is a few hundred bytes"
CHUNK = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)
PERMANENT_REDIRECTS = (301, 308)
USER_AGENT = "podmod (diaspora* moderation; list sync)"
# Answers whose Retry-After a sync honours (RFC 9110 15.5.20, 15.6.4): the list's server, busy or
# down for maintenance, asks not to be asked again before then. Honoured for a day at most: a
# server cannot stop its subscribers' syncs for longer (its list would fail, and alert, instead).
RETRY_AFTER_STATUSES = (429, 503)
MAX_RETRY_AFTER = timedelta(days=1)
# Content codings that compress (IANA's registry, and the x- names servers still send): a body in
# one of these that podmod did not ask for cannot be read as it is.
_COMPRESSIONS = frozenset(
    ("br", "zstd", "compress", "x-compress", "deflate", "gzip", "x-gzip", "aes128gcm", "dcb", "dcz")
)


# A forge's page of a file and the address of the file itself on the same host: GitLab's
# `/GROUP/…/REPO/-/blob/REF/PATH` (subgroups: the `-` tells where the repository ends), GitHub's
# `/OWNER/REPO/blob/REF/PATH` (on github.com, the file is at raw.githubusercontent.com), and
# Gitea's, Forgejo's and Codeberg's `/OWNER/REPO/src/branch/REF/PATH` (or tag, commit). The query
# of a page only says how to show it (`?plain=1`, `?ref_type=heads`): left out.
_FORGE_PAGES = (
    (re.compile(r"(/.+)/-/blob/(.+)"), r"\1/-/raw/\2"),
    (re.compile(r"(/[^/]+/[^/]+)/blob/(.+)"), r"\1/raw/\2"),
    (re.compile(r"(/[^/]+/[^/]+)/src/((?:branch|tag|commit)/.+)"), r"\1/raw/\2"),
)
_GITHUB_PAGE = re.compile(r"/[^/]+/[^/]+/blob/.+")
# The address of a file a Gitea, Forgejo or Codeberg repository keeps in Git LFS, from the one
# that gives its pointer.
_FORGE_LFS = re.compile(r"(/[^/]+/[^/]+)/raw/((?:branch|tag|commit)/.+)")


def file_address(url: str, serves: str) -> str | None:
    """Where the file is, for a list whose address served its forge's page of it (`serves`
    "page") or its Git LFS pointer ("lfs"), when the address tells it; None otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return None
    github = (parts.hostname or "").lower() == "github.com" and not parts.username
    if serves == "page" and github and _GITHUB_PAGE.fullmatch(parts.path):
        path = parts.path.replace("/blob/", "/", 1)
        return urlunsplit(("https", "raw.githubusercontent.com", path, "", ""))
    if serves == "page":
        for page, raw in _FORGE_PAGES:
            if page.fullmatch(parts.path):
                path = page.sub(raw, parts.path, count=1)
                return urlunsplit(parts._replace(path=path, query="", fragment=""))
    if serves == "lfs" and parts.hostname == "raw.githubusercontent.com" and not parts.username:
        return urlunsplit(("https", "media.githubusercontent.com", "/media" + parts.path, "", ""))
    if serves == "lfs" and (pointer := _FORGE_LFS.fullmatch(parts.path)):
        path = f"{pointer[1]}/media/{pointer[2]}"
        return urlunsplit(parts._replace(path=path, fragment=""))
    return None


class FetchError(PodmodError):
    """A list (or its signature, or a photo) could not be downloaded; for a list, the previous
    version stays in force. `retry_after`: when the server asked to be asked again, if it did."""

    retry_after: datetime | None = None
    # a list's (_list_error): what failed, and which sync tries again
    failed: str | None = None
    again: str = "the next sync"

    def for_version(self, current: int | None) -> str:
        """The sentence for a list whose version in force is `current`: one that never had a
        version has no previous one to stay."""
        if self.failed is None or current:
            return str(self)
        return f"{self.failed}; no version of it is in force yet and {self.again} tries again."


@dataclass
class FetchResult:
    """What a fetch brought: the body, or `not_modified`; the validators to send next time."""

    not_modified: bool
    body: bytes | None
    etag: str | None
    last_modified: str | None
    url: str  # after redirects
    # whether there were redirects to `url`, each permanent (301, 308): the list moved there
    moved: bool = False
    # when the fetch's time limit ends (time.monotonic()): the signature's fetch keeps to the
    # same one (fetch_signature's `deadline`), so a list and its signature take `timeout` in all
    deadline: float | None = None


def _size(count: int) -> str:
    """A size as a podmin reads it: "2 MB", "1.5 GB", "1,000,000 TB" (never "1e+06 MB")."""
    for unit, factor in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= factor:
            return f"{count / factor:,.1f}".removesuffix(".0") + f" {unit}"
    return f"{count:,} bytes"


class _Failure(Exception):
    """Internal: why a download failed, in a phrase; turned into a FetchError naming the list."""

    def __init__(
        self, reason: str, *, missing: bool = False, retry_after: datetime | None = None
    ) -> None:
        super().__init__(reason)
        self.missing = missing
        self.retry_after = retry_after


def utc_minute(moment: datetime) -> str:
    """A moment as a podmin reads it: "2026-12-07 10:42 UTC"."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _list_error(text: str, failure: _Failure) -> FetchError:
    """A list's FetchError: `text` (naming the list, its address and the failure, with the time
    the server asked to wait until), what stays in force, and when a sync tries again
    (FetchError.for_version() for a list without a version); the server's Retry-After kept on
    it."""
    again = "the first sync after then" if failure.retry_after else "the next sync"
    error = FetchError(f"{text}; the previous version stays in force and {again} tries again.")
    error.retry_after, error.failed, error.again = failure.retry_after, text, again
    return error


def retry_after(response: requests.Response) -> datetime | None:
    """When a server answering 429 or 503 asks to be asked again (its Retry-After: seconds, or an
    HTTP date), at most MAX_RETRY_AFTER ahead; None for another answer, no such header, one that
    cannot be read, or a moment already past."""
    value = response.headers.get("Retry-After", "").strip()
    if response.status_code not in RETRY_AFTER_STATUSES or not value:
        return None
    now = datetime.now(UTC)
    if re.fullmatch(r"[0-9]+", value):
        seconds = int(value[:9])  # (a longer number is past the cap anyway)
        moment = now + timedelta(seconds=min(seconds, MAX_RETRY_AFTER.total_seconds()))
    else:
        moment = _http_moment(value)
        if moment is None:
            return None
    if moment <= now:
        return None
    return min(moment, now + MAX_RETRY_AFTER)


def _http_moment(value: str) -> datetime | None:
    """The moment an HTTP date names (Retry-After, Last-Modified), None when it names none: a
    server's date is read with every error it can raise (an offset or a year out of range)."""
    try:
        moment = email.utils.parsedate_to_datetime(value)
        if moment.tzinfo is None:  # ("-0000": UTC, by RFC 5322)
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# An entity tag as RFC 9110 (8.8.3) writes it, `"…"` or `W/"…"`, of visible ASCII (the obs-text
# it also allows is not sent back the same by every client), and not so long that a server would
# refuse the request sending it back: what If-None-Match can carry.
_ENTITY_TAG = re.compile(r'(?:W/)?"[\x21\x23-\x7e]{0,500}"')


def _entity_tag(value: str | None) -> str | None:
    """An ETag podmod can send back; None for any other, so that the next sync fetches the whole
    file rather than failing on it for good (a request holding it could not be sent)."""
    value = (value or "").strip(" \t")
    return value if _ENTITY_TAG.fullmatch(value) else None


def _http_date(value: str | None) -> str | None:
    """A Last-Modified podmod can send back (If-Modified-Since): the moment it names, written as
    RFC 9110's preferred HTTP date (the same text for one already so written); None when it names
    none, so that the next sync fetches the whole file rather than failing on it."""
    moment = _http_moment(value) if value else None
    return email.utils.format_datetime(moment, usegmt=True) if moment else None


def fetch(
    url: str,
    *,
    name: str,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = 50_000_000,
    timeout: float = 30.0,
    verify: bool | str = True,
    session: requests.Session | None = None,
    proxy: str | None = None,
) -> FetchResult:
    """Download the list at `url` (https:// or file:///), conditionally when validators are given.

    `timeout` bounds the whole HTTPS download (redirects included), `max_bytes` the body after
    decompression. A file's validators come from file_validators(). Raises FetchError with one
    sentence naming the list `name`, the URL and the reason.
    """
    try:
        return _fetch(url, etag, last_modified, max_bytes, timeout, verify, session, proxy)
    except _Failure as failure:
        raise _list_error(
            f"List {name!r} could not be fetched from {masked_url(url)}: {failure}", failure
        ) from None


def signature_address(list_url: str) -> str:
    """Where a list's minisign signature is, by convention: beside its file, the path of its
    address with `.minisig` added (`https://lists.example/core.csv.minisig`), its query kept (a
    private list's token: `…/core.csv.minisig?private_token=…`) and its fragment, which no
    request sends, left out."""
    parts = urlsplit(list_url)
    return urlunsplit(parts._replace(path=parts.path + ".minisig", fragment=""))


def fetch_signature(
    list_url: str,
    *,
    name: str,
    timeout: float = 30.0,
    verify: bool | str = True,
    session: requests.Session | None = None,
    signature_url: str | None = None,
    proxy: str | None = None,
    deadline: float | None = None,
) -> str:
    """The minisign signature of a list, as text: at `signature_url` when the list's publisher
    puts it elsewhere, else beside the file (signature_address()). `deadline`: the list's fetch's
    (FetchResult.deadline), so that `timeout` bounds the list and its signature together."""
    url = signature_url or signature_address(list_url)
    try:
        result = _fetch(
            url,
            None,
            None,
            MAX_SIGNATURE_BYTES,
            timeout,
            verify,
            session,
            proxy,
            bound=SIGNATURE_BOUND,
            deadline=deadline,
        )
        assert result.body is not None  # no validators were sent, so never not_modified
        return result.body.decode("utf-8")
    except _Failure as error:
        if error.missing:
            raise FetchError(
                f"List {name!r} has no signature at {masked_url(url)}; the list is refused because"
                " a public key is pinned for it."
            ) from None
        failure = error
    except UnicodeDecodeError:
        raise _list_error(
            f"The signature of list {name!r} was fetched from {masked_url(url)}, but it is not"
            " text (UTF-8), as a minisign signature is",
            _Failure("not text"),
        ) from None
    raise _list_error(
        f"The signature of list {name!r} could not be fetched from {masked_url(url)}: {failure}",
        failure,
    )


def download_public(
    url: str, *, max_bytes: int, timeout: float, bound: str = "scan.photo_max_bytes"
) -> bytes:
    """A file from the public internet, such as a photo on another pod: https:// only, no user
    name in the URL, never an address on a private network, redirects included (`bound`: the
    setting of `max_bytes`, named when the file is larger). Raises FetchError with the reason
    alone."""
    try:
        if _scheme(url) != "https":
            raise FetchError("only https:// URLs are fetched")  # never file://, nor plain http://
        result = _fetch(
            url, None, None, max_bytes, timeout, True, netguard.GuardedSession(), bound=bound
        )
    except _Failure as failure:
        raise FetchError(str(failure)) from None
    assert result.body is not None  # no validators were sent, so never not_modified
    return result.body


def _fetch(
    url: str,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
    timeout: float,
    verify: bool | str,
    session: requests.Session | None,
    proxy: str | None = None,
    *,
    bound: str = LIST_BOUND,
    deadline: float | None = None,
) -> FetchResult:
    """The file at `url`, at most `max_bytes` of it (`bound`: what sets that size, for the
    failure to name), by `deadline` when given (time.monotonic()), else within `timeout`."""
    scheme = _scheme(url)
    if scheme == "file":
        return _fetch_file(url, etag, last_modified, max_bytes, bound)
    if scheme == "http":
        raise _Failure(
            "plain http:// is refused because anyone on the way could change the list (use"
            " https://)"
        )
    if scheme != "https":
        raise _Failure("only https:// and file:/// URLs are supported")
    own = session is None
    # The host the podmin typed is fetched as typed (a list server on this machine or its
    # network is their choice); a redirect to another host must lead to public addresses.
    session = session or netguard.GuardedSession(trust_first_host=True, proxy=proxy)
    clock = _Deadline(timeout, deadline)
    try:
        return _fetch_https(session, url, etag, last_modified, max_bytes, clock, verify, bound)
    finally:
        if own:
            session.close()


def _scheme(url: str) -> str:
    """The URL's scheme, in lower case; a failure for an address no URL parser reads (a bracket
    that closes no IPv6 address), as a remote photo's may be."""
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        raise _Failure(f"the address {masked_url(printable(url))[:80]!r} cannot be read") from None


# Local files ---------------------------------------------------------------------------------


def file_validators(stat: os.stat_result) -> tuple[str, str]:
    """The ETag and Last-Modified of a local file: size and mtime in nanoseconds, and the mtime as
    an HTTP date. Any rewrite that changes the size or the mtime changes the ETag."""
    etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
    return etag, email.utils.formatdate(stat.st_mtime, usegmt=True)


def _file_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise _Failure("a file:// URL must name a local file, as in file:///srv/lists/core.csv")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise _Failure("a file:// URL needs an absolute path, as in file:///srv/lists/core.csv")
    return path


def _fetch_file(
    url: str, etag: str | None, last_modified: str | None, max_bytes: int, bound: str = LIST_BOUND
) -> FetchResult:
    """A local file; not modified when every validator given matches the file's (see
    file_validators)."""
    path = _file_path(url)
    try:
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            current_etag, current_modified = file_validators(stat)
            checks = ((etag, current_etag), (last_modified, current_modified))
            given = [(value, current) for value, current in checks if value]
            if given and all(value == current for value, current in given):
                return FetchResult(True, None, current_etag, current_modified, url)
            if stat.st_size > max_bytes:
                raise _Failure(f"the file is larger than {_size(max_bytes)} ({bound})")
            body = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise _Failure(f"there is no file {path}", missing=True) from None
    except IsADirectoryError:
        raise _Failure(f"{path} is a directory, not a file") from None
    except OSError as error:
        raise _Failure(f"{path} cannot be read ({error.strerror or error})") from None
    if len(body) > max_bytes:
        raise _Failure(f"the file is larger than {_size(max_bytes)} ({bound})")
    return FetchResult(False, body, current_etag, current_modified, url)


# HTTPS ---------------------------------------------------------------------------------------


class _Deadline:
    """One deadline for a whole download. Until the headers are in, the caller waits for the
    request's thread (_Request) no longer than it; while the body streams, a timer shuts the
    socket down when time is up, so a server trickling bytes cannot hold a read past it. `end`:
    one an earlier download began (a list's, for its signature), so both keep to `timeout`."""

    def __init__(self, timeout: float, end: float | None = None) -> None:
        self.timeout = timeout
        self.shared = end is not None
        self.end = end if end is not None else time.monotonic() + timeout
        self.expired = False

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            self.expired = True
            raise self.failure()
        return left

    def failure(self) -> _Failure:
        if self.shared:
            return _Failure(
                "the list and its signature did not finish downloading within"
                f" {self.seconds()} (list_sync.timeout)"
            )
        return _Failure(f"the download did not finish within {self.seconds()}")

    def seconds(self) -> str:
        return f"{self.timeout:g} second{'' if self.timeout == 1 else 's'}"

    @contextlib.contextmanager
    def guarding(self, response: requests.Response) -> Iterator[None]:
        sock = _socket_of(response)
        timer = threading.Timer(self.remaining(), self._cut, (sock,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _cut(self, sock: socket.socket | None) -> None:
        self.expired = True
        if sock is not None:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown, not SSLSocket's, which would drop its TLS state
                # under the reading thread; the blocked read then ends with an error at once.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket the body is read from: the connection's, or, when the server closes after the
    response (the connection then hands its socket over), the one under http.client's reader."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if not isinstance(sock, socket.socket):
        reader = getattr(getattr(response.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(reader, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _fetch_https(
    session: requests.Session,
    url: str,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
    deadline: _Deadline,
    verify: bool | str,
    bound: str = LIST_BOUND,
) -> FetchResult:
    headers = {"User-Agent": USER_AGENT}
    # (validators stored before podmod checked them may be ones no request can carry: left out,
    # the file is fetched whole and the validators it comes with replace them)
    etag, last_modified = _entity_tag(etag), _http_date(last_modified)
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    permanent = True  # (every redirect so far)
    for hop in range(MAX_REDIRECTS + 1):
        response = _request(session, url, headers, deadline, verify, redirected=hop > 0)
        with contextlib.closing(response):
            if response.status_code in REDIRECTS:
                url = _redirect_target(url, response)
                permanent = permanent and response.status_code in PERMANENT_REDIRECTS
                continue
            moved = hop > 0 and permanent
            if response.status_code == 304 and (etag or last_modified):
                return FetchResult(
                    True,
                    None,
                    _entity_tag(response.headers.get("ETag")) or etag,
                    _http_date(response.headers.get("Last-Modified")) or last_modified,
                    url,
                    moved,
                    deadline.end,
                )
            if not 200 <= response.status_code < 300 or response.status_code == 206:
                reason = printable(response.reason or "")
                reason = reason if len(reason) <= 60 else reason[:60] + "…"
                status = f"HTTP {response.status_code} {reason}".strip()
                wait = retry_after(response)
                asks = (
                    f" and asks not to be asked again before {utc_minute(wait)} (Retry-After)"
                    if wait
                    else ""
                )
                raise _Failure(
                    f"the server answered {status}{_why_refused(url, response)}{asks}",
                    retry_after=wait,
                    missing=response.status_code in (404, 410),
                )
            body = _read_body(response, max_bytes, deadline, bound)
            _refuse_error_page(response, body)
            return FetchResult(
                False,
                body,
                _entity_tag(response.headers.get("ETag")),
                _http_date(response.headers.get("Last-Modified")),
                url,
                moved,
                deadline.end,
            )
    raise _Failure(f"the server redirected more than {MAX_REDIRECTS} times")


# The APIs where servers publish their blocks, and why each answers 401, 403 or 404 to everyone
# when the server's admins keep them from the public.
_BLOCKS_APIS = {
    "/api/v1/instance/domain_blocks": (
        "a Mastodon server answers so when its admins do not show its domain blocks to everyone"
        ' (its "Show domain blocks" setting), or runs in limited federation mode; GoToSocial'
        " unless its admins set instance-expose-blocklist"
    ),
    "/api/v1/instance/domain_allows": (
        "GoToSocial answers so unless its admins set instance-expose-allowlist"
    ),
    "/api/v1/instance/peers": (
        "GoToSocial answers so unless its admins set instance-expose-blocklist"
        " (instance-expose-suspended on older versions), or for filter=allowed"
        " instance-expose-allowlist"
    ),
}


def _why_refused(url: str, response: requests.Response) -> str:
    """Why a server answered a request for a list with an error, when the answer tells, as " (…)"
    to follow its status; "" otherwise."""
    # (Cloudflare sets `cf-mitigated: challenge` on every challenge page it answers instead of
    # the site, whatever its status: developers.cloudflare.com, "Detect a Challenge Page
    # response")
    if response.headers.get("cf-mitigated", "").strip().lower() == "challenge":
        return (
            " (Cloudflare stands before the file and asks for a browser's challenge, which a"
            " sync cannot pass: ask the site's owner to let podmod's requests through, User-Agent"
            f" {USER_AGENT!r}, or for the list where no challenge stands)"
        )
    return _hidden_blocks(url, response.status_code)


def _hidden_blocks(url: str, status: int) -> str:
    """Why a server's API of its blocks refused the request, as " (…)" to follow the answer's
    status; "" for any other address or answer."""
    path = urlsplit(url).path.rstrip("/")
    reason = _BLOCKS_APIS.get(path[path.find("/api/") :] if "/api/" in path else "")
    return f" ({reason})" if reason and status in (401, 403, 404) else ""


# The title of a page that says an answer failed, as servers, proxies and CDNs write one: an
# error's status (4xx, 5xx) or its words, or a CDN's challenge for a browser.
_PAGE_TITLE = re.compile(r"<title[^>]*>([^<]{0,300})</title", re.IGNORECASE)
_ERROR_TITLE = re.compile(
    r"(?<![\w.])[45][0-9]{2}(?![\w.])|bad gateway|unavailable|gateway time-?out|timed out"
    r"|internal server error|not found|forbidden|unauthori[sz]ed|too many requests"
    r"|access denied|just a moment|attention required|captcha|under maintenance",
    re.IGNORECASE,
)


def _refuse_error_page(response: requests.Response, body: bytes) -> None:
    """An error page answered with a success status (a proxy's "502 Bad Gateway", a CDN's
    challenge, sent with 200) is refused as the failure it is, one the next sync may not meet:
    read as a list, it would be a web page at a wrong address, to be corrected."""
    text = body[:8192].decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    title = _PAGE_TITLE.search(text) if text.startswith("<") else None
    if title and _ERROR_TITLE.search(title[1]):
        shown = printable(" ".join(title[1].split()))[:60]
        raise _Failure(
            f"the server, or a proxy or CDN in front of it, answered an error page ({shown!r})"
            f" with status {response.status_code}"
        )


def _header(response: requests.Response, name: str) -> str | None:
    """A header the server sent, as podmod stores and shows it (see podmod.redact.printable)."""
    value = response.headers.get(name)
    return None if value is None else printable(value)


class _Request(threading.Thread):
    """One GET up to the end of the response headers, in a thread of its own: a server trickling
    its headers could otherwise hold the caller past the deadline, as each read gets a byte in
    time. When the caller gives up, the thread closes whatever response still comes."""

    def __init__(self, send: Callable[[], requests.Response]) -> None:
        super().__init__(name="podmod-list-fetch", daemon=True)
        self.send = send
        self.response: requests.Response | None = None
        self.error: Exception | None = None
        self.lock = threading.Lock()
        self.abandoned = False

    def run(self) -> None:
        try:
            response = self.send()
        except Exception as error:  # raised in the caller's thread by outcome()
            with self.lock:
                self.error = error
            return
        with self.lock:
            if self.abandoned:
                response.close()
            else:
                self.response = response

    def outcome(self, wait: float) -> requests.Response | None:
        """The response, None when `wait` ran out first; raises what the request raised."""
        self.join(wait)
        with self.lock:
            if self.response is None and self.error is None:
                self.abandoned = True
                return None
        if self.error is not None:
            raise self.error
        return self.response


def _request(
    session: requests.Session,
    url: str,
    headers: dict[str, str],
    deadline: _Deadline,
    verify: bool | str,
    *,
    redirected: bool,
) -> requests.Response:
    left = deadline.remaining()
    request = _Request(
        lambda: session.get(
            url,
            headers=headers,
            stream=True,
            allow_redirects=False,
            timeout=(left, left),
            verify=verify,
        )
    )
    request.start()
    try:
        response = request.outcome(left)
    except netguard.Refused as refusal:
        if redirected:
            raise _Failure(f"the server redirected to {masked_url(url)}, but {refusal}") from None
        raise _Failure(str(refusal)) from None
    except requests.Timeout:
        raise deadline.failure() from None
    except (requests.RequestException, OSError) as error:
        raise _Failure(_network_reason(error)) from None
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, ValueError) as error:
        # (what requests does not wrap: an answer no parser on the way expected)
        raise _Failure(_network_reason(error)) from None
    if response is None:
        deadline.expired = True
        # The request's thread would otherwise read on as long as the server trickles bytes,
        # holding its socket (a thread and a socket more each round of `lists sync --every`).
        if isinstance(session, netguard.GuardedSession):
            session.cut()
        raise deadline.failure()
    return response


def _redirect_target(url: str, response: requests.Response) -> str:
    location = _header(response, "Location")
    if not location:
        raise _Failure(f"the server answered HTTP {response.status_code} without a Location")
    try:
        target = urljoin(url, location)
        scheme = urlsplit(target).scheme.lower()
    except ValueError:  # (a bracket that closes no IPv6 address: `https://[::1`)
        raise _Failure(
            f"the server redirected to {masked_url(location)[:80]!r}, which is not an address"
        ) from None
    if scheme == "http":
        raise _Failure(
            f"the server redirected to plain HTTP ({masked_url(target)}), which is refused"
        )
    if scheme != "https":
        raise _Failure(f"the server redirected to {masked_url(target)}, which is not https://")
    return target


def _read_body(
    response: requests.Response, max_bytes: int, deadline: _Deadline, bound: str = LIST_BOUND
) -> bytes:
    """The decoded (decompressed) body, at most `max_bytes` of it (`bound` sets it), before the
    deadline."""
    _refuse_unasked_encoding(response)
    declared = _content_length(response)
    if declared is not None and declared > max_bytes:
        raise _Failure(
            f"the server announced {_size(declared)}, more than {_size(max_bytes)} ({bound})"
        )
    _require_close_notify(response)
    chunks: list[bytes] = []
    size = 0
    try:
        with deadline.guarding(response):
            for chunk in response.raw.stream(CHUNK, decode_content=True):
                size += len(chunk)
                if size > max_bytes:
                    raise _Failure(f"the server sent more than {_size(max_bytes)} ({bound})")
                if deadline.expired or time.monotonic() > deadline.end:
                    raise deadline.failure()
                chunks.append(chunk)
    except (
        urllib3.exceptions.HTTPError,
        requests.RequestException,
        OSError,
        http.client.HTTPException,
    ) as error:
        if deadline.expired:
            raise deadline.failure() from None
        if _is_timeout(error):
            raise deadline.failure() from None
        if isinstance(error, urllib3.exceptions.DecodeError):
            raise _Failure("the server sent a body that does not decompress") from None
        if any(isinstance(cause, ssl.SSLEOFError) for cause in _causes(error)):
            raise _Failure(
                "the download was cut short (the server gave no Content-Length, and the connection"
                " ended without TLS's close_notify, so the file's end is not known)"
            ) from None
        raise _Failure("the download was cut short (the connection closed early)") from None
    if deadline.expired:
        raise deadline.failure()
    encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
    received = response.raw.tell() if encoded else size
    if declared is not None and received < declared:
        raise _Failure(
            f"the download was cut short ({_size(received)} of {_size(declared)} received)"
        )
    _refuse_unfinished_stream(response)
    return b"".join(chunks)


def _require_close_notify(response: requests.Response) -> None:
    """A body with neither a Content-Length nor chunks ends where the connection closes, so it is
    whole only when the server closed it as TLS says to (close_notify): its TLS socket is told to
    raise on a close without one (a cut connection, which Python reads as the end otherwise);
    where it cannot be reached, such a body is refused. Servers send a Content-Length or chunks
    over HTTP/1.1; one that closes to end its file sends close_notify first (nginx, Apache,
    Python's ssl.unwrap())."""
    if response.raw.chunked or response.raw.length_remaining is not None:
        return
    tls = getattr(getattr(response.raw, "connection", None), "sock", None)
    if not hasattr(tls, "suppress_ragged_eofs"):
        reader = getattr(getattr(response.raw, "_fp", None), "fp", None)
        tls = getattr(getattr(reader, "raw", None), "_sock", None)
    if not hasattr(tls, "suppress_ragged_eofs"):
        raise _Failure(
            "the server gave no Content-Length, and podmod cannot tell here whether the file"
            " came whole"
        )
    tls.suppress_ragged_eofs = False  # (ssl.SSLSocket, urllib3's SSLTransport through a proxy)


def _refuse_unfinished_stream(response: requests.Response) -> None:
    """A compressed body whose stream stops before its end was cut short, whatever the
    connection's framing said: urllib3 decodes any beginning of a stream without a word. Bytes
    after a whole gzip member are ignored, as urllib3 and other clients ignore them. A decoder
    whose end cannot be read (urllib3's internals changed) refuses every compressed body, loudly,
    rather than take a cut one."""
    decoder = getattr(response.raw, "_decoder", None)
    for part in getattr(decoder, "_decoders", [decoder] if decoder else []):
        if getattr(part, "_state", None) == urllib3.response.GzipDecoderState.SWALLOW_DATA:
            continue
        stream = getattr(part, "_obj", None)  # (zlib's and zstd's: eof; brotli's: is_finished())
        ended = getattr(stream, "eof", None)
        if ended is None and hasattr(stream, "is_finished"):
            ended = stream.is_finished()
        if not ended:
            raise _Failure("the download was cut short (the compressed file stops before its end)")


def _refuse_unasked_encoding(response: requests.Response) -> None:
    """A body compressed in a way urllib3 cannot decode here (x-gzip it reads as gzip) would be
    read as the list's bytes as they are: refused, naming the compression. A Content-Encoding
    that names no compression (`UTF-8`, `none`, as some servers misconfigured send with a plain
    body) is ignored, as urllib3 ignores it."""
    decoded = set(urllib3.response.HTTPResponse.CONTENT_DECODERS)
    sent = {
        part.strip() for part in response.headers.get("Content-Encoding", "").lower().split(",")
    }
    unasked = sorted(sent & (_COMPRESSIONS - decoded))
    if unasked:
        offered = urllib3.util.request.ACCEPT_ENCODING.split(",")
        raise _Failure(
            f"the server sent the file compressed as {printable(unasked[0])[:40]!r}, which podmod"
            f" did not ask for (it asks for {', '.join(sorted(offered))} or none)"
        )


def _content_length(response: requests.Response) -> int | None:
    """The body's length as the server announced it; one number said again (`12, 12`, as two
    equal headers arrive) is that number, as RFC 9110 (8.6) lets a client read it."""
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    numbers = {part.strip(" \t") for part in value.split(",")}
    number = numbers.pop() if len(numbers) == 1 else ""
    if not re.fullmatch(r"[0-9]{1,30}", number):
        raise _Failure(f"the server sent an invalid Content-Length ({printable(value)[:40]!r})")
    return int(number)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything it wraps (requests wraps urllib3, which wraps socket errors)."""
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo and len(seen) < 50:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(current.args)
        todo += [item for item in linked if isinstance(item, BaseException)]


def _is_timeout(error: BaseException) -> bool:
    timeouts = (TimeoutError, socket.timeout, requests.Timeout, urllib3.exceptions.TimeoutError)
    return any(isinstance(cause, timeouts) for cause in _causes(error))


def _network_reason(error: BaseException) -> str:
    """A short phrase for why a connection failed, from the innermost error that says."""
    causes = list(_causes(error))
    if fault := _header_fault(causes):
        return fault
    for cause in causes:
        if isinstance(cause, urllib3.exceptions.ProxyError):
            inner = next((arg for arg in cause.args if isinstance(arg, BaseException)), None)
            said = str(inner) if inner is not None else ""
            if said.startswith("Tunnel connection failed: "):
                answer = printable(said.partition(": ")[2])[:60]
                return f"the proxy (list_sync.proxy) refused the tunnel ({answer})"
            why = _network_reason(inner) if inner is not None else first_line(cause)
            return f"the proxy (list_sync.proxy) could not be reached ({why})"
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = cause.verify_message or cause.reason or "certificate verify failed"
            return (
                f"the server's TLS certificate was not accepted ({detail}); fix the certificate"
                " or set list_sync.ca_bundle"
            )
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return f"the TLS handshake failed ({cause.reason or cause})"
        if isinstance(cause, socket.gaierror):
            return "the host name could not be resolved"
        if isinstance(cause, ConnectionRefusedError):
            return "the connection was refused"
        if isinstance(cause, ConnectionResetError):
            return "the connection was reset"
        if isinstance(cause, urllib3.exceptions.NameResolutionError):
            return "the host name could not be resolved"
    for cause in causes:
        if isinstance(cause, http.client.HTTPException):
            return f"the server's answer is not HTTP podmod can read ({_http_fault(cause)})"
    for cause in causes:
        if isinstance(cause, OSError) and cause.strerror:
            return f"the connection failed ({cause.strerror})"
    return f"the connection failed ({type(error).__name__})"


def _header_fault(causes: list[BaseException]) -> str | None:
    """What was wrong with a header, when urllib3 or requests refused one: the server's (a
    Content-Length of two values), or, in a request, an address they cannot read."""
    for cause in causes:
        if isinstance(cause, urllib3.exceptions.InvalidHeader):
            said = printable(str(cause))
            if said.startswith("Content-Length"):
                values = said[said.find("(") + 1 :].removesuffix(")")
                return f"the server sent an invalid Content-Length ({values[:40]!r})"
            return f"the server sent a header podmod cannot read ({said[:80]})"
    for cause in causes:
        if isinstance(cause, requests.exceptions.InvalidHeader):
            return f"a header of the request is not valid HTTP ({printable(str(cause))[:80]})"
        unreadable = (requests.exceptions.InvalidURL, urllib3.exceptions.LocationValueError)
        if isinstance(cause, unreadable):
            return f"the address cannot be read ({masked_url(printable(str(cause)))[:80]})"
    return None


def _http_fault(error: http.client.HTTPException) -> str:
    """What was wrong with an answer that is not HTTP, in a few words."""
    if isinstance(error, http.client.LineTooLong):
        return "a line of its headers is too long"
    if isinstance(error, http.client.BadStatusLine):
        line = str(error.args[0] if error.args else "").strip()
        return f"its status line is {printable(line)[:60]!r}"
    return printable(first_line(error))[:80]
