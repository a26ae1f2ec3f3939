"""Text as the matcher sees it: folded (NFKC, case-folded, accents and other combining marks
removed, white space collapsed), its `#hashtags`, and its links normalised as list entries are.

Entries go through the same `fold`, so "Café", "CAFE" and a full-width "cafe" are one phrase.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from urllib.parse import urlsplit

from podmod.lists.parse import normalise

_SPACE = re.compile(r"\s+")
# A hashtag as diaspora* reads one: '#' and letters, digits, '_' or '-', not inside a word, a URL
# or an HTML entity (&#39;).
_HASHTAG = re.compile(r"(?<![\w&#/])#([\w-]+)")
# Links: with a scheme, or starting with www. (diaspora*'s markdown links those too). Parentheses
# and brackets end a link, so "[text](https://x.example/a)" gives https://x.example/a.
_LINK = re.compile(r"(?i)(?:\bhttps?://|(?<![\w./@-])www\.)[^\s<>\"'()\[\]{}`|\\^]+")
_TRAILING = ".,;:!?*_~"


# Planes 4 to 13 hold no character yet, 15 and 16 only private use: no mark to look for there.
_PLANES_WITH_MARKS = (range(0, 0x40000), range(0xE0000, 0xF0000))


@cache
def _marks() -> dict[int, None]:
    """Every nonspacing mark (Unicode category Mn): removed after decomposition, so that é is e."""
    return {
        code: None
        for plane in _PLANES_WITH_MARKS
        for code in plane
        if unicodedata.category(chr(code)) == "Mn"
    }


def _collapse(text: str) -> str:
    """White space runs as one space (the regular expression only when there is something to do:
    most texts hold single spaces only, and every other white space is unprintable)."""
    if "  " in text or not text.isprintable():
        return _SPACE.sub(" ", text)
    return text


def fold(text: str) -> str:
    """The matching form of a text: NFKC, case-folded, without combining marks, white space
    collapsed to single spaces. ASCII text (most of it) takes a fast path with the same result."""
    if text.isascii():
        return _collapse(text.lower())
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    text = unicodedata.normalize("NFKD", text).translate(_marks())
    return _collapse(unicodedata.normalize("NFC", text))


def is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def hashtags(folded: str) -> set[str]:
    """The hashtags in a folded text, without '#'."""
    if "#" not in folded:
        return set()
    return {tag.strip("-") for tag in _HASHTAG.findall(folded)} - {""}


def tag_key(tag: str) -> str:
    """A hashtag (from a list, from diaspora*'s `tags` table or from text) in matching form."""
    return fold(tag.strip().removeprefix("#")).strip("-")


def links(text: str) -> list[str]:
    """The links in a text, normalised as list `url` entries are (scheme://host[:port]/path?query),
    each once; what does not parse as a URL is left out."""
    if "http" not in text and "www." not in text and "HTTP" not in text and "WWW." not in text:
        return []
    found: list[str] = []
    for match in _LINK.finditer(text):
        raw = match.group().rstrip(_TRAILING)
        url = normalise_link(raw)
        if url is not None and url not in found:
            found.append(url)
    return found


# The common link (ASCII host name, maybe a port, then a path and query): normalised here as
# parse.normalise would, without its validation, which costs ten times more.
_SIMPLE_LINK = re.compile(
    r"(?i)(https?)://((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}"
    r"[a-z0-9])?)\.?(?::([0-9]{1,5}))?([/?][^#\s]*)?"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_link(raw: str) -> str | None:
    """A link found in text, as `podmod.lists.parse.normalise("url", ...)` writes entries (user
    names and fragments dropped); None when it is not a usable http(s) URL."""
    if raw[:4].lower() == "www.":
        raw = "https://" + raw
    simple = _SIMPLE_LINK.fullmatch(raw)
    if simple:
        scheme, host, port, rest = simple.groups()
        scheme = scheme.lower()
        netloc = host.lower()
        if port and 1 <= int(port) <= 65535 and int(port) != _DEFAULT_PORTS[scheme]:
            netloc = f"{netloc}:{int(port)}"
        elif port and not 1 <= int(port) <= 65535:
            return None
        path, _, query = (rest or "/").partition("?")
        return f"{scheme}://{netloc}{path or '/'}{'?' + query if query else ''}"
    try:
        parts = urlsplit(raw)
    except ValueError:
        return None
    if "@" in parts.netloc:  # https://decoy@bad.example/ is bad.example
        raw = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    try:
        return normalise("url", raw.split("#", 1)[0])
    except ValueError:
        return None


def split_url(url: str) -> tuple[str, str]:
    """(host[:port], path?query) of a normalised URL."""
    rest = url.split("://", 1)[1]
    slash = rest.find("/")
    return (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])


def host_suffixes(host: str) -> list[str]:
    """bad.example:8443 and its parent domains, each with the port: a host entry matches its
    subdomains too."""
    name, colon, port = host.partition(":")
    labels = name.split(".")
    suffix = f"{colon}{port}"
    return [".".join(labels[start:]) + suffix for start in range(len(labels) - 1)] or [host]


def path_matches(prefix: str, target: str) -> bool:
    """Whether an entry's path (with its query) covers a link's: "/promo" covers "/promo",
    "/promo/x" and "/promo?a=1" but not "/promotion"."""
    if prefix == "/":
        return True
    if not target.startswith(prefix):
        return False
    if len(target) == len(prefix) or prefix[-1] in "/?&=":
        return True
    return target[len(prefix)] in "/?&#"


def excerpt(folded: str, start: int, end: int, context: int = 40, text: str | None = None) -> str:
    """The match with some context around it, '…' where cut: in the text as it was written (its
    case, accents and spacing) when `text` is given and its characters can be traced, else in
    folded form."""
    source = folded
    span = _traced(text, folded, start, end) if text is not None else None
    if text is not None and span is not None:
        source, (start, end) = text, span
    left = max(start - context, 0)
    right = min(end + context, len(source))
    return (
        ("…" if left > 0 else "")
        + _collapse(source[left:right].strip())
        + ("…" if right < len(source) else "")
    )


def _traced(text: str, folded: str, start: int, end: int) -> tuple[int, int] | None:
    """Where folded[start:end] was in `text`: each character folded on its own (a run of white
    space as one space), its place kept; None when that does not give `folded` back (NFKC joined
    characters across a boundary), so that an excerpt never shows the wrong words."""
    origin: list[int] = []  # origin[k]: the index in text of folded[k]
    pieces: list[str] = []
    space = False
    for index, char in enumerate(text):
        if char.isspace():
            if not space:
                pieces.append(" ")
                origin.append(index)
            space = True
            continue
        space = False
        piece = char.lower() if char.isascii() else fold(char)
        pieces.append(piece)
        origin += [index] * len(piece)
    if "".join(pieces) != folded or end > len(origin) or start >= end:
        return None
    return origin[start], origin[end - 1] + 1
