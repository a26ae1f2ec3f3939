"""What podmod shows, logs or stores of text it did not write itself: URLs without their passwords,
and a server's words without the control characters a terminal would act on."""

from __future__ import annotations

import re

# The authority of a URL, with or without its scheme: greedy up to the last @ before the path, as
# urllib.parse reads a password holding an @.
_USERINFO = re.compile(r"//([^/?#\s]*)@")
# A query parameter that carries a secret, by its name's end: a password, a forge's token for a
# private list (GitLab's `private_token`, Gitea's and Forgejo's `token` and `access_token`), a key,
# a signed address's signature and credential (S3's `X-Amz-Signature`, Azure's `sig`).
_PASSWORD_PARAMETER = re.compile(
    r"([?&][\w.\-]*?(?:password|passwd|pass|token|secret|key|signature|sig|credential|auth)=)"
    r"[^&#\s]*",
    re.IGNORECASE,
)
# C0 and C1 controls (ESC, BEL, CSI U+009B ...), DEL, and the line and direction marks that make
# text read other than it is.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Every format character (Unicode category Cf) besides: the direction marks (LRM, RLM, ALM), the
# zero-width space, joiners and word joiner, the byte order mark, the soft hyphen, invisible
# operators and tags. They make text read other than it is, or hide words in it; printable() drops
# them. (As of Unicode 15; tests/test_web_lists_hostile.py checks it against unicodedata.)
FORMAT = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)
_BREAK = re.compile("[\t\n\r]+")
# A terminal's escape sequences whole (ECMA-48), not their ESC alone, which would leave `]0;title`
# or `[8m` among the words: a control sequence (CSI: ESC [ or U+009B, its parameters, its final
# byte), a string (OSC, DCS, SOS, PM, APC: to BEL or the string terminator, or the text's end) and
# any other escape (ESC, its intermediates, its final byte).
_ESCAPE_SEQUENCE = re.compile(
    "(?:\x1b\\[|\x9b)[0-?]*[ -/]*[@-~]?"
    "|(?:\x1b[\\]PX^_]|[\x90\x98\x9d-\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\\\|\x9c)?"
    "|\x1b[ -/]*[0-~]?"
)


def masked_url(text: str) -> str:
    """`text` with the password of every URL in it masked (https://alice:***@lists.example/…), a
    user name alone too, as it may be a token; a query's `password=`, `token=`, `key=` and the like
    as well (_PASSWORD_PARAMETER)."""

    def mask(match: re.Match[str]) -> str:
        user, colon, _ = match.group(1).partition(":")
        return f"//{user}:***@" if colon else "//***@"

    return _PASSWORD_PARAMETER.sub(r"\1***", _USERINFO.sub(mask, text))


def printable(text: str) -> str:
    """A server's text (reason phrase, header, body excerpt) fit for a terminal, a log line and a
    page: line breaks and tabs become a space, every other control character is dropped, and so
    is every format character (FORMAT: direction marks, zero-width characters)."""
    text = CONTROL.sub("", _BREAK.sub(" ", _ESCAPE_SEQUENCE.sub("", text)))
    return FORMAT.sub("", text) if not text.isascii() else text
