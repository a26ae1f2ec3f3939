"""Reading shared blocklist files (podmod's `kind,value,label,comment` CSV or Mastodon's domain
blocks export): every row validated, every value normalised by `normalise()`, the canonical form."""

from __future__ import annotations

import csv
import gc
import io
import re
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

from podmod.errors import PodmodError

if TYPE_CHECKING:
    from _csv import _reader

KINDS = ("account", "pod", "hashtag", "phrase", "url", "pdq", "sha256")
ACCOUNT = KINDS[0]
HEADER = ("kind", "value", "label", "comment")
MASTODON_DOMAIN = "#domain"

MAX_LABEL = 100
MAX_COMMENT = 2000
MAX_HASHTAG = 255
MAX_PHRASE = 1000
MAX_HOST = 253
MAX_USERNAME = 255

_LABEL = re.compile(r"[\w :;./-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_NOT_TAB = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?:{_HOST_LABEL}\.)+{_HOST_LABEL}|localhost")
_PORT = re.compile(r"[0-9]{1,5}")
_USERNAME = re.compile(r"[a-z0-9_.-]+")
# An already-normalised ASCII handle without a port: the common case, accepted as it is.
_ACCOUNT_FAST = re.compile(rf"[a-z0-9_.-]{{1,{MAX_USERNAME}}}@(?:{_HOST_LABEL}\.)+{_HOST_LABEL}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HASHTAG = re.compile(r"[\w-]+")
_SPACE = re.compile(r"\s+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_INJECTION_START = ("=", "+", "-", "@", "\t", "\r")


class ListFormatError(PodmodError):
    """A list file is refused as a whole; the previous version of the list stays in force."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One valid row: `value` is normalised; `line` is where the row starts (the header is 1)."""

    kind: str
    value: str
    label: str
    comment: str
    line: int


@dataclass
class RowError:
    """One invalid row and why, in a phrase a podmin can act on."""

    line: int
    message: str


@dataclass
class ParsedList:
    """The valid entries in file order, the rows skipped as invalid, and duplicate rows dropped."""

    entries: list[Entry] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    duplicates: int = 0
    format: str = "podmod"  # "podmod" or "mastodon"


def _show(text: str, limit: int = 60) -> str:
    """A value quoted for a message, shortened when long."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _host(text: str) -> str:
    """A host name, lower-case, internationalised names in punycode; ValueError when invalid."""
    host = text.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise ValueError(f"{_show(text)} is not a valid host name") from None
    if len(host) > MAX_HOST or not _HOST.fullmatch(host):
        raise ValueError(f"{_show(text)} is not a valid host name such as pod.example")
    return host


def _host_port(text: str, *, default_port: int | None = None) -> str:
    """`host` or `host:port`, normalised; a port equal to `default_port` is dropped."""
    host, colon, port = text.rpartition(":") if ":" in text else (text, "", "")
    normal = _host(host)
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
    if _ACCOUNT_FAST.fullmatch(text) and len(text) <= MAX_HOST:
        return text
    user, at, host = text.partition("@")
    if not at or not user:
        raise ValueError(f"{_show(value)} is not a diaspora* handle such as user@pod.example")
    if len(user) > MAX_USERNAME or not _USERNAME.fullmatch(user):
        raise ValueError(
            f"{_show(value)} has an invalid user name; use letters, digits, _ . and - only"
        )
    return f"{user}@{_host_port(host)}"


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
        return _host_port(parts.netloc, default_port=default)
    if "/" in text or "@" in text:
        raise ValueError(f"{_show(value)} is not a pod host such as pod.example")
    return _host_port(text)


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


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ListFormatError(
            f"The list is not valid UTF-8 (byte {error.start + 1}, line {line}); save it as UTF-8"
            " and publish it again."
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def _is_blank(row: list[str]) -> bool:
    return not row or all(not cell.strip() for cell in row)


def _refuse(errors: list[RowError], shown: int) -> ListFormatError:
    count = len(errors)
    details = "; ".join(f"line {e.line}: {e.message}" for e in errors[: max(shown, 1)])
    more = f"; and {count - max(shown, 1)} more" if count > max(shown, 1) else ""
    rows = "row" if count == 1 else "rows"
    return ListFormatError(
        f"{count} invalid {rows}: {details}{more}; fix the list or set skip_invalid = true for it."
    )


def parse_list(data: bytes, *, skip_invalid: bool = False, max_errors_shown: int = 5) -> ParsedList:
    """Parse and validate a list file; ListFormatError when it is refused as a whole."""
    text = _decode(data)
    with _collector_paused():
        result = _parse(text)
    if result.errors and not skip_invalid:
        raise _refuse(result.errors, max_errors_shown)
    return result


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a million entries hold no cycles, and collections
    triggered by their allocation alone would double the parse time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parse(text: str) -> ParsedList:
    reader = csv.reader(io.StringIO(text, newline=""))
    result = ParsedList()
    last_line = 0
    try:
        header: list[str] | None = None
        for row in reader:
            header_line = last_line + 1
            last_line = reader.line_num
            if not _is_blank(row):
                header = [cell.strip().lower() for cell in row]
                break
        if header is None:
            raise ListFormatError(
                "The list is empty; it needs at least the header line kind,value,label,comment."
            )
        if header[0] == MASTODON_DOMAIN:
            result.format = "mastodon"
            _parse_mastodon(reader, header, result, last_line)
        elif tuple(header) == HEADER:
            _parse_podmod(reader, result, last_line)
        else:
            raise ListFormatError(
                f"Line {header_line} of the list is {_show(','.join(header))}, not the header"
                " kind,value,label,comment (nor a Mastodon domain-block export starting with"
                " #domain); fix the list's first line."
            )
    except csv.Error as error:
        raise ListFormatError(
            f"Line {reader.line_num} of the list cannot be read as CSV ({error}); fix the list."
        ) from None
    return result


def _parse_podmod(reader: _reader, result: ParsedList, last_line: int) -> None:
    entries = result.entries
    errors = result.errors
    seen: dict[str, set[str]] = {kind: set() for kind in KINDS}
    labels: dict[str, tuple[str, str | None]] = {}  # lists repeat a handful of labels
    fast = _ACCOUNT_FAST.fullmatch
    kinds = {kind: kind for kind in KINDS}  # one shared string per kind, not one per row
    for row in reader:
        line = last_line + 1
        last_line = reader.line_num
        width = len(row)
        if width == 2:
            kind, value = row
            label = comment = ""
        elif width == 4:
            kind, value, label, comment = row
        elif width == 3:
            kind, value, label = row
            comment = ""
        elif _is_blank(row):
            continue
        else:
            columns = "column" if width == 1 else "columns"
            errors.append(
                RowError(
                    line,
                    f"the row has {width} {columns}; the list format has 4: "
                    "kind,value,label,comment",
                )
            )
            continue
        if kind == "account" and fast(value) and len(value) <= MAX_HOST:
            kind = ACCOUNT
        else:
            given = kind.strip().lower()
            if not given and _is_blank(row):
                continue
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
        if label:
            label = _unsafe(label.strip())
            if label not in labels:
                labels[label] = (label, _check_label(label))
            label, problem = labels[label]  # the first copy, shared by every row with this label
            if problem:
                errors.append(RowError(line, problem))
                continue
        if comment:
            comment = _unsafe(comment.strip())
            problem = _check_comment(comment)
            if problem:
                errors.append(RowError(line, problem))
                continue
        values = seen[kind]
        if value in values:
            result.duplicates += 1
            continue
        values.add(value)
        entries.append(Entry(kind, value, label, comment, line))


def _parse_mastodon(reader: _reader, header: list[str], result: ParsedList, last_line: int) -> None:
    width = len(header)
    severity = header.index("#severity") if "#severity" in header else None
    public = header.index("#public_comment") if "#public_comment" in header else None
    seen: set[str] = set()
    for row in reader:
        line = last_line + 1
        last_line = reader.line_num
        if _is_blank(row):
            continue
        if len(row) > width:
            result.errors.append(
                RowError(line, f"the row has {len(row)} columns; the header names {width}")
            )
            continue
        row = row + [""] * (width - len(row))
        domain = row[0].strip()
        label = row[severity].strip() if severity is not None else ""
        comment = _unsafe(row[public].strip()) if public is not None else ""
        if "*" in domain:
            result.errors.append(
                RowError(
                    line,
                    f"the domain {_show(domain)} is obfuscated (it contains *) and"
                    " cannot be matched",
                )
            )
            continue
        if _CONTROL.search(domain):
            result.errors.append(RowError(line, _control_message("domain", domain)))
            continue
        try:
            value = normalise("pod", domain)
        except ValueError as error:
            result.errors.append(RowError(line, str(error)))
            continue
        problem = _check_label(label) or _check_comment(comment)
        if problem:
            result.errors.append(RowError(line, problem))
            continue
        if value in seen:
            result.duplicates += 1
            continue
        seen.add(value)
        result.entries.append(Entry("pod", value, label, comment, line))
