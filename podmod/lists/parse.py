"""Reading shared blocklist files: podmod's own `kind,value,label,comment` CSV and every shape of
domain list fediverse publishers use (podmod.lists.shapes), detected from the content. Every row is
validated and every value normalised by `normalise()`, the canonical form."""

from __future__ import annotations

import csv
import gc
import ipaddress
import json
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol
from urllib.parse import SplitResult, urlsplit

from podmod.errors import PodmodError
from podmod.kinds import KINDS, LIST_FILE_FORMATS

ACCOUNT = KINDS[0]
HEADER = ("kind", "value", "label", "comment")
MASTODON_DOMAIN = "#domain"
# The domain column of IFTAS's CARIAD audit (`observed_domain,blocked_by,majority_action`: the
# domains most large servers block, with what most of them do), read as a domain CSV's.
CARIAD_DOMAIN = "observed_domain"
# The column of handles in Mastodon's CSV exports of an account's mutes and follows
# (`Account address,Hide notifications`), under which Mastodon's import reads blocks too.
ACCOUNT_COLUMN = "account address"
FORMATS = LIST_FILE_FORMATS
CSV_FORMATS = FORMATS[:3]  # (a header line names the columns)
CSV_DOMAIN_FORMATS = FORMATS[1:3]
LINE_FORMATS = ("domains", "accounts", "friendica")  # (no header: a row on every line)
JSON_FORMATS = FORMATS[6:]

MAX_LABEL = 100
# The labels an entry keeps, its first (real lists give an entry at most 9): a comment, or rows
# repeating a domain, could otherwise give it thousands, each stored and compared.
MAX_LABELS = 32
MAX_COMMENT = 2000
MAX_HASHTAG = 255
MAX_PHRASE = 1000
MAX_HOST = 253
MAX_USERNAME = 255
# The port a host written with it names as well without (`pod.example:443` is `pod.example`):
# servers federate over HTTPS, and a handle never writes its default port (diaspora*'s is its
# pod URL's authority, which leaves it out).
HTTPS_PORT = 443

_LABEL = re.compile(r"[\w :;./-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_NOT_TAB = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?:{_HOST_LABEL}\.)+{_HOST_LABEL}|localhost")
# A pod entry may be one label: lists block whole top-level domains (`cf` covers every host under
# .cf), as Mastodon's do.
_DOMAIN = re.compile(rf"(?:{_HOST_LABEL}\.)*{_HOST_LABEL}")
_PORT = re.compile(r"[0-9]{1,5}")
_USERNAME = re.compile(r"[a-z0-9_.-]+")
# Already-normalised ASCII hosts and handles without a port, the common case, accepted as they are
# when at most _FAST_MAX long: then no label can be longer than 63 characters, so the patterns need
# not count (counting makes them twice as slow), and possessive repeats never backtrack.
_FAST_MAX = 63
_FAST_LABEL = r"[a-z0-9]++(?:-++[a-z0-9]++)*+"
_HOST_FAST = re.compile(rf"{_FAST_LABEL}(?:\.{_FAST_LABEL})++")
_ACCOUNT_FAST = re.compile(rf"[a-z0-9_.-]++@{_FAST_LABEL}(?:\.{_FAST_LABEL})++")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HASHTAG = re.compile(r"[\w-]+")
_SPACE = re.compile(r"\s+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_INJECTION_START = ("=", "+", "-", "@", "\t", "\r")
_LABEL_SEPARATOR = re.compile(r"[;,]")
_NAMESPACE = re.compile(r"[\w-]+:")
# A label's words make one key however they are joined: publishers write the same reason
# `hate-speech` (IFTAS, Garden Fence), `hate speech` (mastodon.social's comments) and
# `hate_speech`, and a subscription's `labels` must select all three.
_LABEL_JOINS = re.compile(r"[ _-]+")
_LABEL_WORD = re.compile(r"[^ _-]")  # (a token of joins alone, `-` for "no reason", is none)
# The quotes a label may be written between, each opening one with its closing one: straight
# ones, and the typographic ones word processors put in (English double and single, German low,
# French guillemets).
QUOTE_PAIRS = {
    '"': '"',
    "'": "'",
    "\u201c": "\u201d",
    "\u201e": "\u201c",
    "\u00ab": "\u00bb",
    "\u2018": "\u2019",
}
_LABEL_SPECIAL = re.compile("[;,:\"'\u201c\u201e\u00ab\u2018]|\\s\\s|[^\\S ]")
_BLANK_LINE = re.compile(r'[\s,"]*')
_FIRST_CHARACTER = re.compile(r"\s*(\S)")
# One domain on the first line of a file of one domain per line (a URL or a port is let through:
# normalise() reads them); at least one dot, or letters beyond ASCII. Its severity may follow after
# a comma (`pod.example,silence`: Oliphant's first published file had no header), and more cells
# after it (a header-less export's: `pod.example,suspend,true,true,false`); or its reason, one cell
# (Friendica's published blocklist: `*.pod.example,"spam, bots"`, its shell patterns `?` and
# `[ab]` too).
_HOST_LIKE = re.compile(
    r"(?:[Hh][Tt][Tt][Pp][Ss]?://)?([\w*?\[\].-]+)(?::[0-9]{1,5})?/?\s*"
    r"(?:,\s*(?i:suspend|silence|noop)\s*(?:,[^,]*)*|,(?:\"(?:[^\"]|\"\")*\"|[^,\"]*))?,?"
)
# Line 1 of a header-less list of accounts (Mastodon's export of blocked accounts).
_HANDLE_LIKE = re.compile(r"@?[\w.-]+@([\w.-]+)(?::[0-9]{1,5})?\s*,?")


class ListFormatError(PodmodError):
    """A list file is refused as a whole; the previous version of the list stays in force."""


class NotAListError(ListFormatError):
    """What a list's address served is recognised as something else than a list file: a web page
    (`serves` "page") or a Git LFS pointer ("lfs"). The message is the problem and, after "; ",
    the advice, which a caller who knows the address may make precise (podmod.lists.fetch
    .file_address)."""

    def __init__(self, problem: str, advice: str, *, serves: str) -> None:
        super().__init__(f"{problem}; {advice}.")
        self.problem = problem
        self.serves = serves


class Flags(NamedTuple):
    """What a domain list's row says that podmod neither acts on nor stores, kept for `lists
    publish` to write the entry again as its source did: `obfuscate` (the source shows the domain
    only starred, and a neighbour importing it should too), Mastodon's `reject_media` and
    `reject_reports`."""

    obfuscate: bool = False
    reject_media: bool = False
    reject_reports: bool = False


NO_FLAGS = Flags()


@dataclass(frozen=True, slots=True)
class Entry:
    """One valid row: `value` is normalised (a pod known only by the SHA-256 digest of its name,
    as Mastodon publishes obfuscated domains, is "sha256:<hex>"); `line` is where the row starts
    (the header is 1; in JSON, the item's number). `severity` is "" in podmod's format and
    suspend, silence or noop in a domain list; `labels` are the keys of the label's tokens
    (label_keys()), what a subscription's `labels` select on; `published` is the domain as the
    file wrote it when podmod matches by something else (the obfuscated domain of a digest), else
    ""; `flags` what its row said that podmod keeps only to publish it again (Flags)."""

    kind: str
    value: str
    label: str = ""
    comment: str = ""
    line: int = 0
    severity: str = ""
    labels: tuple[str, ...] = ()
    published: str = ""
    flags: Flags = NO_FLAGS


class StoredDetails(NamedTuple):
    """The items of Details: what podmod stores of an entry besides its kind, value and line
    (podmod.lists.versions.ENTRY_COLUMNS), in that order."""

    label: str = ""
    comment: str = ""
    severity: str = ""
    labels: tuple[str, ...] = ()
    published: str = ""


class Details(StoredDetails):
    """What an entry says besides its kind, value and line: rows share one (a list repeats a
    handful of labels, comments and severities), so a million rows carry a few of these. Its
    `flags` (Flags) are an attribute, not one of its items: never stored, written as COPY text
    nor compared, so a row's flags change nothing a subscription keeps or applies."""

    flags: Flags = NO_FLAGS  # (set on the few that say more: the class's is the common one)

    def __new__(
        cls,
        label: str = "",
        comment: str = "",
        severity: str = "",
        labels: tuple[str, ...] = (),
        published: str = "",
        flags: Flags = NO_FLAGS,
    ) -> Details:
        details = super().__new__(cls, label, comment, severity, labels, published)
        if flags != NO_FLAGS:
            details.flags = flags
        return details

    def _replace(self, **changes: Any) -> Details:
        flags = changes.pop("flags", self.flags)
        return Details(*StoredDetails._replace(self, **changes), flags=flags)


NO_DETAILS = Details()

# One valid row as the readers give it: (kind, value, line, details). A tuple, not an Entry: a
# million rows streamed into COPY are made and formatted at a fraction of an object's cost.
Row = tuple[str, str, int, Details]


class RowText(Protocol):
    """How a caller wants rows written as text (podmod.lists.versions: COPY's text rows), for a
    reader to write its rows in that form as it reads them: the common row of a big list then
    goes from the line read to its text with no Row between (0.2 s of a million rows)."""

    def row(self, kind: str, value: str, line: int, details: Details) -> str:
        """Any valid row's text."""
        ...

    def plain(self, kind: str, details: Details) -> tuple[str, str]:
        """(before, after): the text of a row whose value needs no escaping (a plain host or
        handle) is `{before}{value}\t{line}{after}`."""
        ...


TEXT_BLOCK = 10_000  # rows in each block of text a reading gives


def text_blocks(rows: Iterable[Row], text: RowText) -> Iterator[str]:
    """Rows written as text, in blocks of TEXT_BLOCK rows."""
    write = text.row
    block: list[str] = []
    for row in rows:
        block.append(write(*row))
        if len(block) == TEXT_BLOCK:
            yield "".join(block)
            block = []
    if block:
        yield "".join(block)


_SEVERITY_WEIGHT = {"": 0, "noop": 1, "silence": 2, "suspend": 3}


def merged_details(first: Details, then: Details) -> Details:
    """An entry's details once a later row for it is read too: the labels of both (the first's,
    then the new ones; the first MAX_LABELS), the later comment added unless the first already
    holds it, the heavier severity; the first's published text. Whatever the two would make too
    long keeps the first's."""
    labels = first.labels
    if len(labels) < MAX_LABELS:
        labels = tuple(dict.fromkeys(labels + then.labels))[:MAX_LABELS]
    label = first.label
    if then.label:
        parts = (part.strip() for part in f"{first.label};{then.label}".split(";"))
        joined = "; ".join(dict.fromkeys(part for part in parts if part))
        if len(joined) <= MAX_LABEL:
            label = joined
    comment = first.comment
    if then.comment and then.comment not in comment:
        joined = f"{comment}; {then.comment}" if comment else then.comment
        if len(joined) <= MAX_COMMENT:
            comment = joined
    severity = first.severity
    if _SEVERITY_WEIGHT.get(then.severity, 0) > _SEVERITY_WEIGHT.get(severity, 0):
        severity = then.severity
    flags = first.flags
    if then.flags != flags:  # (any row's: a domain one row hides stays hidden)
        flags = Flags(*map(operator.or_, flags, then.flags))
    return Details(label, comment, severity, labels, first.published, flags)


def entry_of(row: Row) -> Entry:
    """The Entry of a row."""
    kind, value, line, details = row
    label, comment, severity, labels, published = details
    return Entry(kind, value, label, comment, line, severity, labels, published, details.flags)


# How a subscriber skips a list's invalid rows (`lists publish` says its own option instead).
SKIP_SETTING = "set skip_invalid = true for it"


@dataclass
class RowError:
    """One invalid row and why, in a phrase a podmin can act on; `unit` is "item" in JSON."""

    line: int
    message: str
    unit: str = "line"


@dataclass
class ParsedList:
    """The valid entries in file order (a domain list's `.cf` and `*.cf` rows last), the rows
    skipped as invalid, duplicate rows dropped, and what the file held besides entries: obfuscated
    domains podmod cannot match (no digest), patterns that name no host (`*end.example`), the
    hosts of canary rows, RapidBlock rows that do not block and GoToSocial's open peers."""

    entries: list[Entry] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    duplicates: int = 0
    format: str = "podmod"  # one of FORMATS
    obfuscated: int = 0
    canaries: list[str] = field(default_factory=list)
    unblocked: int = 0
    patterns: int = 0


def _show(text: str, limit: int = 60) -> str:
    """A value quoted for a message, shortened when long."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _host(text: str, pattern: re.Pattern[str] = _HOST) -> str:
    """A host name, lower-case, internationalised names in punycode; ValueError when invalid
    (`pattern`: _DOMAIN for a pod entry, which may be one label)."""
    host = text.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise ValueError(f"{_show(text)} is not a valid host name") from None
    if len(host) > MAX_HOST or not pattern.fullmatch(host):
        raise ValueError(f"{_show(text)} is not a valid host name such as pod.example")
    return host


def _ipv6(text: str, written: str) -> str:
    """An IP v6 address in brackets, compressed: `[2001:db8::2]`."""
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        address = None
    if address is None or address.scope_id:
        raise ValueError(f"{_show(written)} is not a valid IP v6 address")
    return f"[{address.compressed}]"


def _host_port(
    text: str, *, default_port: int | None = None, pattern: re.Pattern[str] = _HOST
) -> str:
    """`host` or `host:port`, normalised (the host by `pattern`); a port equal to `default_port`
    is dropped. An IP v6 address is written in brackets when it has a port
    (`[2001:db8::2]:8443`), and may be bare without one (`2001:db8::2`): either way it is kept in
    brackets."""
    if text.startswith("["):
        address, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{_show(text)} is not a valid host name such as pod.example")
        normal, colon, port = _ipv6(address, text), rest[:1], rest[1:]
    elif text.count(":") > 1:
        return _ipv6(text, text)
    else:
        host, colon, port = text.rpartition(":") if ":" in text else (text, "", "")
        normal = _host(host, pattern)
    if not colon:
        return normal
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise ValueError(f"{_show(text)} has an invalid port; use a number from 1 to 65535")
    if int(port) == default_port:
        return normal
    return f"{normal}:{int(port)}"


def _account(value: str) -> str:
    text = value.strip().lower()
    if text.startswith("@"):
        text = text[1:]
    if len(text) <= _FAST_MAX and _ACCOUNT_FAST.fullmatch(text):
        return text
    user, at, host = text.partition("@")
    if not at or not user:
        raise ValueError(f"{_show(value)} is not a diaspora* handle such as user@pod.example")
    if len(user) > MAX_USERNAME or not _USERNAME.fullmatch(user):
        raise ValueError(
            f"{_show(value)} has an invalid user name; use letters, digits, _ . and - only"
        )
    return f"{user}@{_host_port(host, default_port=HTTPS_PORT)}"


def _split_url(value: str, text: str) -> SplitResult:
    try:
        return urlsplit(text)
    except ValueError:
        raise ValueError(f"{_show(value)} is not a valid URL") from None


def _pod(value: str) -> str:
    text = value.strip()
    if _SCHEME.match(text):
        parts = _split_url(value, text)
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError(f"{_show(value)} is not a pod host such as pod.example")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(
                f"{_show(value)} names a page, not a pod; give only the host, such as pod.example"
            )
        if "@" in parts.netloc:
            raise ValueError(f"{_show(value)} is a URL with a user name; give only the host")
        default = 443 if parts.scheme.lower() == "https" else 80
        return _host_port(parts.netloc, default_port=default, pattern=_DOMAIN)
    if "/" in text or "@" in text:
        raise ValueError(f"{_show(value)} is not a pod host such as pod.example")
    if "[." in text or ".]" in text:
        # Defanged, as security writers quote a domain not to make it a link: `pod[.]example`
        # (or half so: `pod.]example`).
        text = text.replace("[.]", ".").replace("[.", ".").replace(".]", ".")
    if text.startswith("*.") and "*" not in text[2:]:
        # `*.pod.example`, a wildcard (Pleroma's syntax, and lists written for Mastodon by hand):
        # the domain and everything under it, what every pod entry covers. (Misskey and its
        # forks need none: they block a host and its subdomains by suffix, and read `*` as a
        # letter.)
        text = text[2:]
    elif text.startswith(".") and not text.startswith(".."):
        # `.cf`: the domain and everything under it, as list authors write it (what every pod
        # entry covers anyway).
        text = text[1:]
    return _host_port(text, default_port=HTTPS_PORT, pattern=_DOMAIN)


def _fixpoint(text: str, step: Callable[[str], str]) -> str:
    """Apply `step` until the text stops changing (Unicode case folding and NFKC can interact)."""
    for _ in range(4):
        after = step(text)
        if after == text:
            return after
        text = after
    return text


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _tag_char(char: str) -> bool:
    """Letters, digits, _ and -, and the combining marks many scripts need (as diaspora* allows)."""
    return char.isalnum() or char in "_-" or unicodedata.category(char)[0] == "M"


def _hashtag(value: str) -> str:
    text = value.strip()
    if text.startswith("#"):
        text = text[1:]
    text = _fixpoint(text, _fold)
    if not text or not (_HASHTAG.fullmatch(text) or all(map(_tag_char, text))):
        raise ValueError(
            f"{_show(value)} is not a hashtag; use letters, digits, _ and - after one #"
        )
    if len(text) > MAX_HASHTAG:
        raise ValueError(f"the hashtag is longer than {MAX_HASHTAG} characters")
    return text


def _phrase(value: str) -> str:
    text = _fixpoint(value, lambda t: _SPACE.sub(" ", _fold(t)).strip())
    if not text:
        raise ValueError("the phrase is empty")
    if _CONTROL.search(text):
        raise ValueError("the phrase contains a control character")
    if len(text) > MAX_PHRASE:
        raise ValueError(f"the phrase is longer than {MAX_PHRASE} characters")
    return text


def _url(value: str) -> str:
    text = value.strip()
    if not text or _SPACE.search(text) or _CONTROL.search(text):
        raise ValueError(f"{_show(value)} is not a URL; spaces are not allowed in one")
    if not _SCHEME.match(text):
        text = "https://" + text
    parts = _split_url(value, text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"{_show(value)} is not an http:// or https:// URL")
    if not parts.netloc:
        raise ValueError(f"{_show(value)} has no host")
    if "@" in parts.netloc:
        raise ValueError(f"{_show(value)} contains a user name or password; remove it")
    if parts.netloc.startswith("["):
        raise ValueError(f"{_show(value)} has an IP v6 address; use a host name")
    netloc = _host_port(parts.netloc, default_port=443 if scheme == "https" else 80)
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{parts.path or '/'}{query}"


def _hex64(value: str, what: str) -> str:
    text = value.strip()
    if not _HEX64.fullmatch(text):
        raise ValueError(f"{_show(value)} is not a {what}: it must be 64 hexadecimal digits")
    return text.lower()


# Before a pod entry's value: the entry covers that host alone, none of its subdomains (as a
# Pleroma or Akkoma server's plain `pod.example` does: only its `*.pod.example` covers them).
# Never the first character of a normalised host; podmod.lists.apply matches it.
EXACT_HOST = "="

# A canary row tells a whole file from a cut or substituted one; it names no real host (IFTAS
# writes `aud.invalid`, comment `iftas:canary`).
CANARY_LABEL = "canary"
CANARY_DOMAIN = ".invalid"  # (RFC 2606: never a real host)


def canary_host(value: str) -> str | None:
    """The host of a normalised pod or account entry when it is a canary's (under `.invalid`,
    on any port: `aud.invalid`, `aud.invalid:8443`, `x@aud.invalid`), else None."""
    host = value.removeprefix(EXACT_HOST).rpartition("@")[2]
    if not host.startswith("["):
        host = host.partition(":")[0]
    return host if host.endswith(CANARY_DOMAIN) else None


def normalise(kind: str, value: str) -> str:
    """The canonical form of `value` for `kind`; ValueError with a short reason when invalid."""
    if kind == "account":
        return _account(value)
    if kind == "pod":
        return _pod(value)
    if kind == "hashtag":
        return _hashtag(value)
    if kind == "phrase":
        return _phrase(value)
    if kind == "url":
        return _url(value)
    if kind == "pdq":
        return _hex64(value, "PDQ hash")
    if kind == "sha256":
        return _hex64(value, "SHA-256 hash")
    raise ValueError(f"{_show(kind)} is not a known kind ({', '.join(KINDS)})")


def csv_safe(text: str) -> str:
    """A cell safe to open in a spreadsheet: a leading = + - @ tab or CR is neutralised with '."""
    return "'" + text if text.startswith(_INJECTION_START) else text


def _unsafe(text: str) -> str:
    """Undo csv_safe(): a published list's labels and comments read back as they were written."""
    if len(text) > 1 and text[0] == "'" and text[1] in "=+-@":
        return text[1:]
    return text


def _check_label(label: str) -> str | None:
    if len(label) > MAX_LABEL:
        return f"the label is longer than {MAX_LABEL} characters"
    if not _LABEL.fullmatch(label):
        return f"the label {_show(label)} may only hold letters, digits, spaces and _ : ; . / -"
    return None


def _check_comment(comment: str) -> str | None:
    if len(comment) > MAX_COMMENT:
        return f"the comment is longer than {MAX_COMMENT} characters"
    if _CONTROL_NOT_TAB.search(comment):
        return "the comment contains a control character (such as a line break)"
    return None


def _control_message(what: str, text: str) -> str:
    char = _CONTROL.search(text)
    code = f"U+{ord(char.group()):04X}" if char else "?"
    return f"the {what} contains a control character ({code})"


def _unquoted(token: str) -> str:
    """A token without the quotes around it (QUOTE_PAIRS), if it has them."""
    if len(token) > 1 and QUOTE_PAIRS.get(token[0]) == token[-1]:
        return token[1:-1].strip()
    return token


def _as_shown(text: str) -> str:
    """A label's text as it shows, which decides what label it is: without the characters that
    show nothing (Unicode's format characters, category Cf: the soft hyphen, zero-width spaces and
    joiners, bidirectional marks and controls, a stray byte order mark, tag characters), its
    compatibility forms read as the characters they show (NFKC: a full-width `SPAM` is `spam`,
    a decomposed `é` the composed one). Else `spam` copied from a web page with a zero-width
    space after it would be a label of its own, which looks the same on every page and which a
    subscription's `labels = ["spam"]` does not select."""
    if text.isascii():  # (ASCII has no format characters, and is its own NFKC)
        return text
    shown = "".join(char for char in text if unicodedata.category(char) != "Cf")
    return unicodedata.normalize("NFKC", shown)


def label_tokens(text: str) -> tuple[str, ...]:
    """The labels a label or public comment holds: split on ; and , each stripped (and of the
    quotes around it: `"free speech", spam`, or typographic ones, QUOTE_PAIRS), spaces collapsed,
    lower-cased, without a namespace such as `iftas:` (nor quotes after it); empty tokens (or of
    spaces, hyphens and underscores alone: `-` for no reason), tokens over MAX_LABEL characters
    and repeats dropped; in their order, the first MAX_LABELS. Read _as_shown()."""
    text = _as_shown(text)
    if not _LABEL_SPECIAL.search(text):  # one token, its spaces single (most comments)
        token = text.strip().casefold()
        return (token,) if len(token) <= MAX_LABEL and _LABEL_WORD.search(token) else ()
    tokens: dict[str, None] = {}  # (in their order, each once)
    for part in _LABEL_SEPARATOR.split(text):
        token = _unquoted(_SPACE.sub(" ", part).strip().casefold())
        namespace = _NAMESPACE.match(token)
        if namespace:  # (`iftas:spam`; and quotes after it: `tagline: “…”`)
            token = _unquoted(token[namespace.end() :].lstrip())
        if len(token) <= MAX_LABEL and _LABEL_WORD.search(token):
            tokens[token] = None
            if len(tokens) == MAX_LABELS:
                break
    return tuple(tokens)


def label_keys(tokens: Iterable[str]) -> tuple[str, ...]:
    """The keys of label_tokens(), as entries store them and a subscription's `labels` and
    `lock_labels` select them: each token's words joined by one hyphen however they were
    (spaces, hyphens, underscores: `hate speech` → `hate-speech`, the label IFTAS writes), none
    at its ends; repeats dropped, in their order."""
    keys = (_LABEL_JOINS.sub("-", token).strip("-") for token in tokens)
    return tuple(dict.fromkeys(key for key in keys if key))  # (tokens stored before, `_`: none)


def label_keys_of(text: str) -> tuple[str, ...]:
    """The keys of the labels a label or public comment holds."""
    return label_keys(label_tokens(text))


# Files that are not text, by their first bytes: what each is, and what to do.
_NOT_TEXT = (
    (
        b"\x1f\x8b",
        "The list is gzip-compressed (a .gz file), not text; publish the file itself, uncompressed"
        " (a server that compresses it on the way, with Content-Encoding: gzip, is read as meant).",
    ),
    (
        b"PK\x03\x04",
        "The list is a ZIP archive, not a list file; publish the list's own file (CSV, text or"
        " JSON) and set url to it.",
    ),
    (
        b"\xff\xfe",
        'The list is UTF-16 text (as spreadsheet programs save "Unicode text"), not UTF-8; save it'
        ' as "CSV UTF-8" and publish it again.',
    ),
    (
        b"\xfe\xff",
        "The list is UTF-16 text, not UTF-8; save it as UTF-8 and publish it again.",
    ),
)


# Spreadsheets, told apart from other ZIP archives by a member only they hold (a ZIP names its
# members in a header before each one's data and again at its end), and Excel's older binary
# workbook (an OLE2 compound file): each saved instead of a CSV.
_SPREADSHEETS = (
    (b"xl/workbook.xml", "an Excel workbook (.xlsx)"),
    (b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet", "a LibreOffice spreadsheet (.ods)"),
)
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SAVE_AS_CSV = 'not a list file; save it as "CSV UTF-8" and publish that file.'


def _decode(data: bytes) -> str:
    if data.startswith(b"PK\x03\x04"):
        for member, what in _SPREADSHEETS:
            if member in data:
                raise ListFormatError(f"The list is {what}, {_SAVE_AS_CSV}")
    if data.startswith(_OLE2):
        raise ListFormatError(f"The list is an Excel 97-2003 workbook (.xls), {_SAVE_AS_CSV}")
    for start, message in _NOT_TEXT:
        if data.startswith(start):
            raise ListFormatError(message)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ListFormatError(
            f"The list is not valid UTF-8 (byte {error.start + 1}, line {line}); save it as UTF-8"
            " and publish it again."
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def _lines(text: str) -> list[str]:
    """The text's lines, ended by LF, CRLF or CR (as the csv module reads them), without the
    byte order mark a line may start with: a second file's, put after the first (`cat` of two
    lists saved as "CSV UTF-8"), whose header is then read as the header again."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\ufeff" in text:  # (at once for a text of ASCII or Latin-1 alone: no such character)
        text = text.replace("\n\ufeff", "\n")
    return text.split("\n")


def _is_blank(row: list[str]) -> bool:
    return not row or all(not cell.strip() for cell in row)


def _trimmed(row: list[str]) -> list[str]:
    """The row without its trailing empty cells (the trailing commas some publishers write)."""
    end = len(row)
    while end and not row[end - 1].strip():
        end -= 1
    return row[:end]


# A row whose quoted cell is never closed: read on, it would hold every line after it.
UNCLOSED_QUOTE = (
    'a quote (") opens a cell that is never closed (the lines after it are read as rows of their'
    " own)"
)


def runs_into(line: int) -> str:
    """The problem of a row whose quoted cell would run on over a later row (a stray quote closed
    by another further down, which would hide every row between them)."""
    return (
        f'a quote (") opens a cell that would run on over line {line}, a row of its own (the'
        ' lines after it are read as rows; a quote inside a cell is written "")'
    )


class _QuotedRows:
    """The csv module reading the rows that hold a quote, fed the lines after a row's first while
    a quoted cell runs on (a comment with a line break in it), up to a line that can close it: a
    cell whose quote no later line can close (a stray quote, real lists have them), or one that
    would run on over a line without quotes that `row_like` says is a row of its own (a stray
    quote closed by another further down), is not read on, so the rows after it are read as
    rows, not lost in it."""

    def __init__(
        self,
        numbered: Iterator[tuple[int, str]],
        lines: list[str],
        row_like: Callable[[str], bool] | None = None,
    ) -> None:
        self._numbered = numbered
        self._lines = lines
        self._row_like = row_like
        self._first: str | None = None
        self._number = 0  # the line the row read starts on
        self._last_quote: int | None = None  # the last line holding a quote, once asked for
        self._reader = csv.reader(self)
        self.lines = 0  # the lines the last row read ran over
        self.problem = ""  # why the last row read was not read on ("": it was)

    def __iter__(self) -> _QuotedRows:
        return self

    def __next__(self) -> str:
        self.lines += 1
        if self._first is not None:
            line, self._first = self._first, None
            return line + "\n"
        if self.lines == 2 and self._number >= self._last_quote_line():
            self.problem = UNCLOSED_QUOTE
            raise StopIteration
        following = self._number + self.lines - 1  # (the number of the line asked for)
        if (
            self._row_like is not None
            and following <= len(self._lines)
            and '"' not in (text := self._lines[following - 1])  # (no line that may close it)
            and self._row_like(text)
        ):
            self.problem = runs_into(following)
            raise StopIteration
        return next(self._numbered)[1] + "\n"

    def _last_quote_line(self) -> int:
        if self._last_quote is None:
            lines = self._lines
            quoted = (number for number in range(len(lines), 0, -1) if '"' in lines[number - 1])
            self._last_quote = next(quoted, 0)
        return self._last_quote

    def read(self, number: int, line: str) -> list[str] | None:
        """The cells of the row starting on line `number`; None when it is not read on (its
        `problem` says why)."""
        self._first = line
        self._number = number
        self.lines = 0
        self.problem = ""
        try:
            cells = next(self._reader)
        except csv.Error as error:
            raise ListFormatError(
                f"Line {number} of the list cannot be read as CSV ({error}); fix the list."
            ) from None
        return None if self.problem else cells


class _Unread(list):
    """_rows()' row that was not read on, with its problem (UNCLOSED_QUOTE, runs_into())."""

    def __init__(self, problem: str) -> None:
        super().__init__()
        self.problem = problem


def _rows(
    lines: list[str], start: int, row_like: Callable[[str], bool] | None = None
) -> Iterator[tuple[int, list[str]]]:
    """Each CSV row from lines[start] on, with the number of the line it starts on (an _Unread
    for a row whose quoted cell is not read on: _QuotedRows). A line without a quote is split at
    its commas, the cells the csv module would give, three times as fast."""
    numbered = enumerate(lines[start:], start + 1)
    quoted = _QuotedRows(numbered, lines, row_like)
    for number, line in numbered:
        if '"' not in line:
            yield number, line.split(",")
        else:
            cells = quoted.read(number, line)
            yield number, _Unread(quoted.problem) if cells is None else cells


def _header_cells(line: str, separator: str = ",") -> list[str]:
    """A header line's column names: lower-case, unquoted, without trailing empty cells."""
    try:
        cells = next(csv.reader([line], delimiter=separator), [])
    except csv.Error:
        cells = line.split(separator)
    names = [cell.strip().strip('"').strip().lower() for cell in cells]
    while names and not names[-1]:
        names.pop()
    return names


def _podmod_row_like(line: str) -> bool:
    """A line without quotes reads as a row of podmod's format: a kind, a value, maybe more."""
    kind, comma, _ = line.partition(",")
    return bool(comma) and kind.strip().lower() in KINDS


def _looks_like_handle(text: str) -> bool:
    found = _HANDLE_LIKE.fullmatch(text)
    return bool(found) and "." in found[1]


def _looks_like_host(text: str) -> bool:
    found = _HOST_LIKE.fullmatch(text)
    return bool(found) and ("." in found[1] or not found[1].isascii())


def hosts_in_line(cells: list[str]) -> list[str] | None:
    """The hosts of a line whose cells (two or more; cut at commas, as a cell may hold the rest of
    the line) each name one: `a.example,b.example,c.example`, the domains Fediseer's `?csv=true`
    answers in its `csv`, saved as a file. None for any other line, such as a domain and its
    reason (Friendica's `pod.example,spam`) or its severity."""
    hosts = [host.strip() for cell in cells for host in cell.split(",")]
    if len(hosts) > 1 and all(map(_looks_like_host, hosts)):
        return hosts
    return None


class _Start(NamedTuple):
    """Where a text list's rows start: its first line that is neither blank nor a comment."""

    format: str | None  # the shape that line begins, None when it begins none
    index: int  # len(lines) when there is no such line
    comments: bool  # comment lines (# …) came before it


def _find_start(lines: list[str]) -> _Start:
    comments = False
    for index, line in enumerate(lines):
        text = line.strip()
        if _BLANK_LINE.fullmatch(text):
            continue
        header = _header_cells(text)
        if MASTODON_DOMAIN in header:
            return _Start("mastodon-csv", index, comments)
        if text.startswith("#"):
            comments = True
        elif tuple(header) == HEADER:
            return _Start("podmod", index, comments)
        elif ACCOUNT_COLUMN in header:
            return _Start("accounts", index, comments)
        elif "domain" in header or CARIAD_DOMAIN in header:
            return _Start("domain-csv", index, comments)
        elif _looks_like_host(text) or hosts_in_line([text.rstrip(", \t")]):
            return _Start("domains", index, comments)
        elif _looks_like_handle(text):
            return _Start("accounts", index, comments)
        else:
            return _Start(None, index, comments)
    return _Start(None, len(lines), comments)


# What each format reads, for the sentence refusing a file that does not fit a forced format.
_NEEDS = {
    "podmod": "the header kind,value,label,comment",
    "mastodon-csv": "a header with a #domain column",
    "domain-csv": "a header with a domain column",
    "domains": "one domain per line (or a line of domains separated by commas)",
    "friendica": "Friendica's domain patterns, one per line (pattern,reason)",
    "accounts": "one account (user@pod.example) per line, or an Account address column",
    "mastodon-json": 'a JSON array of Mastodon domain blocks ([{"domain": …}, …])',
    "rapidblock-json": 'RapidBlock\'s JSON ({"@spec": …, "blocks": {"host": {…}}})',
    "pleroma-json": "the federation policy Pleroma and Akkoma publish (nodeinfo's"
    " metadata.federation with mrf_simple)",
    "lemmy-json": "a Lemmy or PieFed server's federated instances"
    ' ({"federated_instances": {"blocked": […]}})',
}
_SHAPES = (
    "podmod's kind,value,label,comment; a Mastodon or FediBlockHole CSV with a domain or #domain"
    " column; one domain per line; one account per line, or Mastodon's CSV of accounts with an"
    " Account address column; Mastodon, RapidBlock, Pleroma or Lemmy JSON"
)


# Files some publishers of blocklists also write, told from their first line: what each is.
_OTHER_FILES = (
    (re.compile(r"---\s*$|-\s+[\w-]+\s*:|[\w-]+\s*:(?:\s|$)"), "YAML"),
    (re.compile(r"(?:0\.0\.0\.0|127\.0\.0\.1|::1?)\s+\S"), "a hosts file (for DNS blocking)"),
    (re.compile(r"\|\||!|\[adblock", re.IGNORECASE), "an ad blocker's filter list"),
    (re.compile(r"(?:address|server|local)=/"), "a dnsmasq configuration"),
)

# A Markdown page: a table's line under its header (cells of dashes between pipes), a heading
# underlined with === or ---, or a bulleted line. Servers' "blocked instances" pages are often
# written so, for people to read (some say they are not meant as a blocklist for others).
_MARKDOWN_TABLE_RULE = re.compile(r"\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)+\|?\s*")
_MARKDOWN_UNDERLINE = re.compile(r"\s*(?:={3,}|-{3,})\s*")
_MARKDOWN_BULLET = re.compile(r"\s*[-*+]\s+\S")


def _is_markdown(lines: list[str], start: int) -> bool:
    """Whether a file no shape reads is a Markdown page (lines up to its first 200)."""
    if _MARKDOWN_BULLET.match(lines[start]):
        return True
    shown = lines[:200]
    return any("---" in line and _MARKDOWN_TABLE_RULE.fullmatch(line) for line in shown) or any(
        _MARKDOWN_UNDERLINE.fullmatch(line) and shown[number - 1].strip()
        for number, line in enumerate(shown)
        if number
    )


_SEPARATORS = {
    ";": "semicolons, not commas (as spreadsheet programs save CSV in some languages)",
    "\t": "tabs, not commas (a spreadsheet program's tab-separated text)",
}


def _refuse_other_separator(lines: list[str]) -> None:
    """ListFormatError when one of these lines is a header (a domain column, or podmod's kind and
    value) whose cells are separated by semicolons or tabs: a spreadsheet program's CSV in some
    languages, or its text export, which no publisher's CSV reader takes."""
    for number, line in enumerate(lines, 1):
        for separator, name in _SEPARATORS.items():
            cells = [cell.lstrip("#") for cell in _header_cells(line.strip(), separator)]
            if len(cells) > 1 and ("domain" in cells or cells[:2] == ["kind", "value"]):
                raise ListFormatError(
                    f"Line {number} of the list is {_show(line.strip())}: a header whose cells are"
                    f" separated by {name}; save the file as CSV with commas and publish it again."
                )


def _misfit(forced: str, what: str, shape: str | None) -> ListFormatError:
    """The list is `what` (a phrase), not what format = `forced` reads."""
    seen = f'; it has the shape of format = "{shape}"' if shape else ""
    return ListFormatError(
        f'{what}, not {_NEEDS[forced]}, which format = "{forced}" reads{seen}; fix the list, or'
        " change its format."
    )


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}: {error.msg}"
    except RecursionError:
        where = "it is nested too deeply"
    except ValueError:  # (an integer of more digits than Python converts)
        where = "a number in it has too many digits"
    raise ListFormatError(f"The list is not valid JSON ({where}); fix the list.")


# The first line of a web page, and of the pointer Git LFS keeps in a repository for a file.
_WEB_PAGE = re.compile(r"<(?:!doctype\s+html|html)[\s>]", re.IGNORECASE)
_LFS_POINTER = "version https://git-lfs.github.com/spec/"


def _not_a_list(text: str) -> None:
    """NotAListError when the text's first line shows it is a web page or a Git LFS pointer,
    what a podmin gets who gave the address of a file's page, or of a file kept in Git LFS."""
    begins = _FIRST_CHARACTER.match(text)
    first = text[begins.start(1) : begins.start(1) + 200] if begins else ""
    line = first.partition("\n")[0].strip()
    if _WEB_PAGE.match(first):
        raise NotAListError(
            f"The list's address serves a web page (it begins {_show(line)}), not a list file",
            "set url to the file's own address (on GitHub, GitLab, Codeberg or Gitea, its Raw"
            " link's)",
            serves="page",
        )
    if first.startswith(_LFS_POINTER):
        raise NotAListError(
            f"The list's address serves a Git LFS pointer ({_show(line)}), not the file: its"
            " repository keeps the file in Git LFS",
            "set url to the file's LFS address (on GitHub,"
            " https://media.githubusercontent.com/media/OWNER/REPO/BRANCH/PATH)",
            serves="lfs",
        )


def recognised_not_a_list(data: bytes) -> NotAListError | None:
    """Whether a file's first line shows it is a web page or a Git LFS pointer (_not_a_list),
    for a sync to say so when a signature beside such a file failed."""
    try:
        _not_a_list(data[:4096].decode("utf-8", "replace").lstrip("\ufeff"))
    except NotAListError as error:
        return error
    return None


def _names_only(value: Any) -> bool:
    """A JSON array of strings only, such as Mastodon's /api/v1/instance/peers."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _objects_without_domain(value: Any) -> str | None:
    """The first object's keys ("week, statuses, logins, registrations"), for a JSON array of
    objects none of which has a domain: a server's other answers (Mastodon's weekly activity, a
    user's blocked accounts), never a list of domain blocks. None for anything else."""
    if not (isinstance(value, list) and value and isinstance(value[0], dict)):
        return None
    if "domain" in value[0] or any(not isinstance(v, dict) or "domain" in v for v in value):
        return None  # (a list of domain blocks is told by its first item, without a second pass)
    keys = list(value[0])
    shown = ", ".join(_show(key, 30) for key in keys[:5])
    return (shown + (", …" if len(keys) > 5 else "")) if keys else "nothing"


# Where Pleroma and Akkoma publish their federation policy: a nodeinfo document's
# metadata.federation, /api/v1/instance's (and /api/v2/instance's) pleroma.metadata.federation, or
# that object saved alone.
_FEDERATION_PATHS = (("metadata", "federation"), ("pleroma", "metadata", "federation"), ())
# What a federation object holds when it publishes blocks (MRF transparency on).
FEDERATION_BLOCKS = ("mrf_simple", "quarantined_instances", "rejected_instances")


def federation(value: Any) -> dict[str, Any] | None:
    """The federation policy a Pleroma or Akkoma server publishes, found in a JSON document
    (_FEDERATION_PATHS), or written from its configuration's mrf_simple (_configured_policy);
    None when it holds none that names blocks."""
    for path in _FEDERATION_PATHS:
        node = value
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and any(name in node for name in FEDERATION_BLOCKS):
            return node
    return _configured_policy(value)


def _pleroma_configs(value: Any) -> list[Any]:
    """The configurations in a Pleroma or Akkoma configuration export: one ({"group": ":pleroma",
    "key": …, "value": …}), or those of its admin API's answer ({"configs": [...]})."""
    if isinstance(value, dict) and isinstance(value.get("configs"), list):
        return value["configs"]
    return [value]


def _configured_policy(value: Any) -> dict[str, Any] | None:
    """A Pleroma or Akkoma configuration's mrf_simple, as its admin API and its exports write it
    ({"group": ":pleroma", "key": ":mrf_simple", "value": [{"tuple": [":reject", [{"tuple":
    ["pod.example", "reason"]}, …]]}, …]}; older ones list the domains alone), written as the
    federation policy the server publishes (mrf_simple, mrf_simple_info); None when it has none.
    What does not fit is left for the reading to report, item by item."""
    for config in _pleroma_configs(value):
        if not (
            isinstance(config, dict)
            and config.get("group") == ":pleroma"
            and config.get("key") == ":mrf_simple"
        ):
            continue
        simple: dict[str, Any] = {}
        info: dict[str, dict[str, Any]] = {}
        for setting in config.get("value") if isinstance(config.get("value"), list) else []:
            pair = setting.get("tuple") if isinstance(setting, dict) else None
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                continue  # (no policy's setting)
            policy, listed = pair[0].removeprefix(":"), pair[1]
            if not isinstance(listed, list):
                simple[policy] = listed  # (refused as no list of domains)
                continue
            simple[policy], info[policy] = [], {}
            for item in listed:
                domain = item.get("tuple") if isinstance(item, dict) else None
                if isinstance(domain, list) and len(domain) == 2 and isinstance(domain[0], str):
                    domain, reason = domain
                    info[policy][domain] = {"reason": reason}
                else:
                    domain = item
                simple[policy].append(domain)
        return {"mrf_simple": simple, "mrf_simple_info": info}
    return None


def _json_shape(value: Any, policy: dict[str, Any] | None) -> str | None:
    """The JSON format of a document (`policy`: its federation())."""
    if isinstance(value, list):
        return "mastodon-json"
    if isinstance(value, dict) and isinstance(value.get("blocks"), dict):
        return "rapidblock-json"
    if policy is not None:
        return "pleroma-json"
    if isinstance(value, dict) and "federated_instances" in value:
        return "lemmy-json"
    return None


def _fediseer_answer(value: Any) -> bool:
    """Whether a JSON document is one of Fediseer's answers of servers (/api/v1/censures_given/…,
    /hesitations_given/…, /endorsements/…, /whitelist): their domains as one text
    (`{"csv": "a.example,b.example", "total": 2}`, with ?csv=true), as a list (`{"domains": […]}`,
    with ?domains=true), or each with its details (`{"instances": [{"domain": …,
    "censure_reasons": […], …}]}`)."""
    if not isinstance(value, dict):
        return False
    domains, instances = value.get("domains"), value.get("instances")
    return (
        isinstance(value.get("csv"), str)
        or (isinstance(domains, list) and all(isinstance(domain, str) for domain in domains))
        or (
            isinstance(instances, list)
            and all(isinstance(item, dict) and "domain" in item for item in instances)
        )
    )


def _lemmy_blocked(answer: dict[str, Any]) -> list[Any]:
    """The instances a Lemmy or PieFed server's /api/v3/federated_instances says it blocks
    (`linked`, every server it knows, and `allowed` are never read); ListFormatError when the
    answer has none to say."""
    federated = answer["federated_instances"]
    if federated is None:
        raise ListFormatError(
            "The list is a Lemmy server's answer with no federated instances: its federation is"
            " off, so it blocks nobody; remove the list, or subscribe to another."
        )
    blocked = federated.get("blocked") if isinstance(federated, dict) else None
    if not isinstance(blocked, list):
        raise ListFormatError(
            "The list's federated_instances has no list of blocked instances"
            ' ({"blocked": [{"domain": …}, …]}); fix the list.'
        )
    return blocked


_NODEINFO_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/"


def _nodeinfo_link(value: Any) -> str | None:
    """The address of the newest nodeinfo a /.well-known/nodeinfo document links
    ({"links": [{"rel": "…/ns/schema/2.1", "href": "…"}]}); None for anything else."""
    links = value.get("links") if isinstance(value, dict) else None
    if not isinstance(links, list):
        return None
    found = [
        (link["rel"].removeprefix(_NODEINFO_SCHEMA), link["href"])
        for link in links
        if isinstance(link, dict)
        and isinstance(link.get("rel"), str)
        and link["rel"].startswith(_NODEINFO_SCHEMA)
        and isinstance(link.get("href"), str)
    ]
    return max(found)[1] if found else None


def _server_description(value: Any) -> str | None:
    """What a JSON document that publishes no blocks is, in words: "the nodeinfo of a server
    running 'pleroma 2.7.0'", or a server's description of itself (/api/v1/instance); None for
    anything else."""
    if not isinstance(value, dict):
        return None
    software = value.get("software")
    if isinstance(software, dict) and isinstance(software.get("name"), str):
        version = software.get("version")
        name = _show(software["name"] + (f" {version}" if isinstance(version, str) else ""))
        return f"the nodeinfo of a server running {name}"
    if isinstance(value.get("version"), str) and ("uri" in value or "domain" in value):
        return "a server's description of itself (such as /api/v1/instance)"
    return None


def _open(text: str, forced: str | None) -> tuple[str, Any, int]:
    """The list's format, its content (lines, or the JSON value) and the index of its first row;
    ListFormatError when it has no shape podmod reads, or not the forced one."""
    if forced is not None and forced not in FORMATS:
        raise ListFormatError(
            f"{_show(forced)} is not a list format podmod reads ({', '.join(FORMATS)}); set one"
            " of them, or leave format out for podmod to tell the shape from the file."
        )
    _not_a_list(text)
    first = _FIRST_CHARACTER.match(text)
    is_json = first is not None and first[1] in "[{"
    if forced in JSON_FORMATS and not is_json:
        lines = _lines(text)
        start = _find_start(lines)
        if start.index == len(lines):
            raise _misfit(forced, "The list is empty", None)
        shown = _show(lines[start.index].strip())
        raise _misfit(forced, f"Line {start.index + 1} of the list is {shown}", start.format)
    if (is_json and forced is None) or forced in JSON_FORMATS:
        value = _load_json(text)
        policy = federation(value)
        shape = _json_shape(value, policy)
        if forced in (None, "mastodon-json") and _names_only(value):
            raise ListFormatError(
                "The list is a JSON array of names, not of domain blocks such as"
                ' {"domain": "pod.example", …}: Mastodon\'s /api/v1/instance/peers answers such an'
                " array, the servers an instance knows, not those it blocks (its blocks are at"
                " /api/v1/instance/domain_blocks); a list of domains to block is read one per line."
            )
        keys = _objects_without_domain(value)
        if forced in (None, "mastodon-json") and keys is not None:
            accounts = "acct" in value[0]
            raise ListFormatError(
                f'The list is a JSON array of objects without "domain" (the first holds {keys}),'
                ' not of domain blocks such as {"domain": "pod.example", "severity": "suspend", …}'
                + (
                    ": it names accounts, as Mastodon's /api/v1/blocks answers; a list of accounts"
                    " is read as handles (user@pod.example) one per line, or as Mastodon's CSV"
                    " export of them"
                    if accounts
                    else "; set url to an address that serves a list (a Mastodon server publishes"
                    " its blocks at /api/v1/instance/domain_blocks)"
                )
                + "."
            )
        if forced is None and shape is None and _pleroma_config(value):
            raise ListFormatError(
                "The list is a Pleroma or Akkoma configuration without its mrf_simple policy (the"
                " part of it podmod reads); ask its publisher for that part, or for a Mastodon CSV"
                " export."
            )
        linked = _nodeinfo_link(value) if shape is None else None
        if forced in (None, "pleroma-json") and linked is not None:
            raise ListFormatError(
                "The list is a server's /.well-known/nodeinfo, which only links its nodeinfo;"
                f" set url to the nodeinfo, {_show(linked)}, where Pleroma and Akkoma publish"
                " their blocks (Mastodon publishes its at /api/v1/instance/domain_blocks)."
            )
        server = _server_description(value) if shape is None else None
        if forced in (None, "pleroma-json") and server is not None:
            raise ListFormatError(
                f"The list is {server}, which publishes no blocks: Pleroma and Akkoma publish"
                " theirs there only with MRF transparency on, Mastodon at"
                " /api/v1/instance/domain_blocks; set url to an address that serves a list."
            )
        if forced is None and shape is None and _fediseer_answer(value):
            raise ListFormatError(
                'The list is Fediseer\'s answer ({"csv": …}, {"domains": […]} or {"instances":'
                " […]}: the servers its members censure, hesitate on or endorse, which the answer"
                " does not tell apart), which podmod does not read as a list; save the domains"
                " of its censures or hesitations as a file, one per line or one line of them"
                " separated by commas (its csv), and set url to that file."
            )
        if forced is None and shape is None:
            problem = 'whose "blocks" is not an object' if "blocks" in value else 'without "blocks"'
            raise ListFormatError(
                f"The list is a JSON object {problem}, not RapidBlock's"
                ' {"@spec": …, "blocks": {"host": {"isBlocked": true, …}}} (nor a JSON array of'
                " Mastodon domain blocks, nor Pleroma's federation policy); fix the list."
            )
        if forced is not None and shape != forced:
            what = "Fediseer's answer" if shape is None and _fediseer_answer(value) else "JSON"
            raise _misfit(forced, f"The list is {what}", shape)
        if shape == "pleroma-json":
            return shape, policy, 0  # (what shapes reads of it: the policy alone)
        if shape == "lemmy-json":
            return shape, _lemmy_blocked(value), 0  # (what shapes reads of it: the blocked alone)
        return forced or shape or "", value, 0
    lines = _lines(text)
    start = _find_start(lines)
    if start.index == len(lines) and forced not in ("domains", "friendica"):
        if start.comments:
            _refuse_other_separator(lines)
            raise ListFormatError(
                "The list holds only comment lines (starting with #) and no domain; if it is"
                ' meant to be empty, set format = "domains" for it.'
            )
        raise ListFormatError(
            "The list is empty; it needs at least a header line (such as kind,value,label,comment"
            " or #domain,#severity) or one domain per line; if its publisher emptied it on purpose"
            " (the list is retired), remove it from the configuration."
        )
    if forced is None and start.format is None:
        _refuse_other_separator(lines[: start.index + 1])
        first = lines[start.index].strip()
        where = f"Line {start.index + 1} of the list is {_show(first)}"
        for pattern, what in _OTHER_FILES:
            if pattern.match(first):
                raise ListFormatError(
                    f"{where}: {what}, not a list of fediverse servers in a shape podmod reads"
                    f" ({_SHAPES}); ask its publisher for a Mastodon CSV export or one domain per"
                    " line."
                )
        if _is_markdown(lines, start.index):
            raise ListFormatError(
                f"{where}: the file is a Markdown page (a table or list written for people to"
                " read), not a list file; ask its publisher whether they publish the list as a"
                " file (a Mastodon CSV export, or one domain per line) and set url to that; some"
                " such pages say they are not meant as a blocklist for other servers."
            )
        raise ListFormatError(
            f"{where}, which is none of the shapes podmod reads ({_SHAPES}); fix the list, or"
            f" name its shape with the list's format setting ({', '.join(FORMATS[:-1])} or"
            f" {FORMATS[-1]})."
        )
    if forced is None and start.format == "domain-csv":
        header = _header_cells(lines[start.index].strip())
        if "severity" not in header and {"count", "percent"} & set(header):
            raise ListFormatError(
                f"Line {start.index + 1} of the list is {_show(lines[start.index].strip())}: a"
                " count of the sources that block each domain (an audit, such as Oliphant's"
                " domain_audit_file), not a blocklist; subscribe to one of its publisher's lists"
                ' instead (or set format = "domain-csv" to read every domain as a suspension).'
            )
    shape = forced or start.format or ""
    if (forced in LINE_FORMATS and start.format in CSV_FORMATS) or (
        forced in CSV_FORMATS and start.format != forced
    ):
        shown = _show(lines[start.index].strip())
        raise _misfit(shape, f"Line {start.index + 1} of the list is {shown}", start.format)
    return shape, lines, start.index if shape in LINE_FORMATS else start.index + 1


def _pleroma_config(value: Any) -> bool:
    """Whether a JSON document is Pleroma's or Akkoma's exported configuration (_pleroma_configs),
    which some podmins publish as their blocklist."""
    return any(
        isinstance(config, dict) and config.get("group") == ":pleroma"
        for config in _pleroma_configs(value)
    )


def detect_format(data: bytes) -> str:
    """The format of a list file (one of FORMATS), told from its content; ListFormatError when it
    is none of them."""
    return _open(_decode(data), None)[0]


class ListReader:
    """A list file read row by row, for a caller that streams the rows on (into COPY).

    Its shape is told (or the forced `format` checked) when it is made, and a file of none is
    refused then, with ListFormatError. Read it once, with rows() or by iterating it for Entry
    objects: the valid rows in file order (a domain list's rows written with a leading dot or
    wildcard last: shapes._Domains.dotted_rows); `errors`, `duplicates`, `obfuscated`,
    `canaries` and `unblocked` fill as it goes and are complete when the reading ends; then check()
    refuses the file for its invalid rows or a missing canary. A file whose rows cannot be read at
    all (CSV past repair) raises ListFormatError while it is read."""

    def __init__(
        self, data: bytes, *, format: str | None = None, severity: str | None = None
    ) -> None:
        # the severity of a domain list's rows that name none (a list's `severity` setting)
        self.severity = severity or "suspend"
        self.severity_setting = severity or ""
        self.errors: list[RowError] = []
        self.duplicates = 0
        self.obfuscated = 0
        self.patterns = 0  # (rows such as `*end.example` or `name.*`: no host to match)
        self.canaries: list[str] = []
        self.unblocked = 0
        # the file says its publisher keeps some of its blocks out of it (Pleroma's exclusions)
        self.hides_blocks = False
        # the values read, each with its first row's details
        self.seen: dict[str, dict[str, Details]] = {kind: {} for kind in KINDS}
        # the entries whose repeated rows said more than their first: their details, merged
        self.merged: dict[tuple[str, str], Details] = {}
        self.format, self._content, self._start = _open(_decode(data), format)
        self._read = False

    def rows(self) -> Iterator[Row]:
        """The valid rows, (kind, value, line, details), in file order (dotted rows last)."""
        self._reading()
        if self.format == "podmod":
            return _read_podmod(self, self._content, self._start)
        from podmod.lists import shapes  # (shapes builds on this module)

        return shapes.read(self, self._content, self._start)

    def text(self, text: RowText) -> Iterator[str]:
        """The valid rows as `text` writes them, in file order (dotted rows last), in blocks of
        TEXT_BLOCK rows (fewer in the last). Read once, as rows() is."""
        if self.format not in CSV_DOMAIN_FORMATS:
            return text_blocks(self.rows(), text)
        from podmod.lists import shapes

        self._reading()
        return shapes.read_csv(self, self._content, self._start, text)

    def _reading(self) -> None:
        if self._read:
            raise RuntimeError("A ListReader reads its list once; make another to read it again.")
        self._read = True

    def __iter__(self) -> Iterator[Entry]:
        return map(entry_of, self.rows())

    def canary(self, host: str) -> None:
        """A canary row, counted once by its host (or value) for check()'s require_canary."""
        if host not in self.canaries:
            self.canaries.append(host)

    def repeated(self, kind: str, value: str, details: Details) -> None:
        """A row naming an entry already read: counted, and what it says beyond the first (more
        labels, another comment, a heavier severity) merged into the entry (`merged`)."""
        self.duplicates += 1
        key = (kind, value)
        first = self.merged.get(key) or self.seen[kind][value]
        if details is not first:
            merged = merged_details(first, details)
            if merged != first or merged.flags != first.flags:
                self.merged[key] = merged

    def check(
        self,
        *,
        skip_invalid: bool = False,
        require_canary: str | None = None,
        max_errors_shown: int = 5,
        skipping: str = SKIP_SETTING,
    ) -> None:
        """Once read: refuse the file (ListFormatError) for its invalid rows, unless
        `skip_invalid` (`skipping`: how the reader of the message asks for it), and when
        `require_canary` names a canary row it lacks."""
        if self.errors and not skip_invalid:
            raise _refuse(self.errors, max_errors_shown, skipping)
        if require_canary and require_canary not in self.canaries:
            found = f" (it has {', '.join(self.canaries)})" if self.canaries else ""
            raise ListFormatError(
                f"The file has no canary row {require_canary}{found}, which require_canary asks"
                " for: it may be cut short or not the publisher's list; the version in force"
                " stays."
            )

    def parsed(self, entries: list[Entry]) -> ParsedList:
        """The ParsedList of these entries (with what repeated rows added to them) and of what the
        reading counted."""
        if self.merged:
            merged = self.merged
            entries = [
                entry_of((e.kind, e.value, e.line, merged[e.kind, e.value]))
                if (e.kind, e.value) in merged
                else e
                for e in entries
            ]
        return ParsedList(
            entries,
            self.errors,
            self.duplicates,
            self.format,
            self.obfuscated,
            self.canaries,
            self.unblocked,
            self.patterns,
        )


def _refuse(errors: list[RowError], shown: int, skipping: str = SKIP_SETTING) -> ListFormatError:
    count = len(errors)
    details = "; ".join(f"{e.unit} {e.line}: {e.message}" for e in errors[: max(shown, 1)])
    more = f"; and {count - max(shown, 1)} more" if count > max(shown, 1) else ""
    unit = "item" if errors and errors[0].unit == "item" else "row"  # (JSON's are items)
    rows = unit if count == 1 else unit + "s"
    return ListFormatError(f"{count} invalid {rows}: {details}{more}; fix the list or {skipping}.")


def parse_list(
    data: bytes,
    *,
    skip_invalid: bool = False,
    format: str | None = None,
    max_errors_shown: int = 5,
    skipping: str = SKIP_SETTING,
) -> ParsedList:
    """Parse and validate a list file of any shape in FORMATS (told from its content unless
    `format` names one); ListFormatError when it is refused as a whole (`skipping`: how its
    sentence says to skip invalid rows)."""
    with collector_paused():
        reader = ListReader(data, format=format)
        result = reader.parsed(list(reader))
    reader.check(skip_invalid=skip_invalid, max_errors_shown=max_errors_shown, skipping=skipping)
    return result


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a million rows hold no cycles, and collections
    triggered by their allocation alone would double the time to read them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_DETAILS_KEPT = 10_000  # distinct (label, comment) pairs a reading remembers the details of


def _read_podmod(reader: ListReader, lines: list[str], start: int) -> Iterator[Row]:
    """podmod's own format: kind,value,label,comment (the label and comment may be left out)."""
    errors = reader.errors
    seen = reader.seen
    # Lists repeat a handful of labels: each is checked and split once, and its first copy shared.
    labels: dict[str, tuple[str, str | None, tuple[str, ...]]] = {}
    shared: dict[tuple[str, str], Details] = {}  # and each (label, comment)'s details
    fast = _ACCOUNT_FAST.fullmatch
    kinds = {kind: kind for kind in KINDS}  # one shared string per kind, not one per row
    # podmod's rows name no severity: the list's `severity` setting, when given, is theirs
    given_severity = reader.severity_setting
    for line, row in _rows(lines, start, _podmod_row_like):
        width = len(row)
        if width == 2:
            kind, value = row
            label = comment = ""
        elif width == 4:
            kind, value, label, comment = row
        elif width == 3:
            kind, value, label = row
            comment = ""
        else:
            if isinstance(row, _Unread):
                errors.append(RowError(line, row.problem))
                continue
            row = _trimmed(row)
            width = len(row)
            if not width:
                continue
            if width == 1 or width > 4:
                columns = "column" if width == 1 else "columns"
                errors.append(
                    RowError(
                        line,
                        f"the row has {width} {columns}; the list format has 4: "
                        "kind,value,label,comment",
                    )
                )
                continue
            kind, value, label, comment = row + [""] * (4 - width)
        if kind == "account" and len(value) <= _FAST_MAX and fast(value):
            kind = ACCOUNT
        else:
            given = kind.strip().lower()
            if not given and _is_blank(row):
                continue
            if given == "kind" and value.strip().lower() == "value":
                continue  # (the header again: two lists put end to end)
            if given not in kinds:
                problem = (
                    f"{_show(given)} is not a known kind"
                    if given
                    else "the kind is empty; use one of these"
                )
                errors.append(RowError(line, f"{problem} ({', '.join(KINDS)})"))
                continue
            kind = kinds[given]
            if _CONTROL.search(value):
                errors.append(RowError(line, _control_message("value", value)))
                continue
            try:
                value = normalise(kind, value)
            except ValueError as error:
                errors.append(RowError(line, str(error)))
                continue
        tokens: tuple[str, ...] = ()
        if label:
            label = _unsafe(label.strip())
            known = labels.get(label)
            if known is None:
                problem = _check_label(label)
                known = labels[label] = (label, problem, () if problem else label_keys_of(label))
            label, problem, tokens = known
            if problem:
                errors.append(RowError(line, problem))
                continue
        if comment:
            comment = _unsafe(comment.strip())
            problem = _check_comment(comment)
            if problem:
                errors.append(RowError(line, problem))
                continue
        if CANARY_DOMAIN in value or (tokens and CANARY_LABEL in tokens):
            host = canary_host(value) if kind in ("account", "pod") else None
            if host is not None or CANARY_LABEL in tokens:
                reader.canary(host or value)  # (never an entry, as in every other shape)
                continue
        details = shared.get((label, comment))
        if details is None:
            details = Details(label, comment, given_severity, tokens, "")
            if len(shared) < _DETAILS_KEPT:
                shared[label, comment] = details
        values = seen[kind]
        if value in values:
            reader.repeated(kind, value, details)
            continue
        values[value] = details
        yield kind, value, line, details
