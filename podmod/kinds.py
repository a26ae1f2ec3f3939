"""The kinds of list entries, the shapes of list files, the pod's tables each content kind is
matched against, and how entries name an internationalised host (in punycode). One place
for the lists (podmod.lists), the configuration, the matcher (podmod.matching) and content scanning
(podmod.scan), and light: `podmod lists sync` asks these questions without loading the matcher."""

from __future__ import annotations

from collections.abc import Iterable

TEXT_KINDS = ("hashtag", "phrase", "url")
IMAGE_KINDS = ("pdq", "sha256")
CONTENT_KINDS = TEXT_KINDS + IMAGE_KINDS
# account: a handle; pod: a host and its subdomains; then the content kinds.
KINDS = ("account", "pod", *CONTENT_KINDS)

# The shapes of list file podmod reads (podmod.lists.parse; podmod.lists.shapes reads all but the
# first); a list's `format` setting names one, or "auto".
LIST_FILE_FORMATS = (
    "podmod",
    "mastodon-csv",
    "domain-csv",
    "domains",
    "accounts",
    "friendica",
    "mastodon-json",
    "rapidblock-json",
    "pleroma-json",
    "lemmy-json",
)

TEXT_ITEM_TYPES = ("Post", "Comment", "Profile")
IMAGE_ITEM_TYPES = ("Photo",)
ITEM_TYPES = TEXT_ITEM_TYPES + IMAGE_ITEM_TYPES


def tables_for(kinds: Iterable[str]) -> list[str]:
    """The pod's tables that entries of these kinds are matched against."""
    kinds = set(kinds)
    tables: list[str] = []
    if kinds & set(TEXT_KINDS):
        tables += TEXT_ITEM_TYPES
    if kinds & set(IMAGE_KINDS):
        tables += IMAGE_ITEM_TYPES
    return tables


def ascii_host(host: str) -> str:
    """An internationalised host name as list entries and Mastodon's digests name it (punycode,
    as podmod.lists.parse reads a list's `bücher.example`); diaspora* handles may carry it in
    Unicode (`user@bücher.example`). A name IDNA cannot encode stays as it is: no entry names it."""
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return host


def ascii_account(account: str) -> str:
    """A handle as account entries name it: its host in punycode (`user@xn--bcher-kva.example`
    for the pod's `user@bücher.example`); an ASCII handle as it is."""
    if account.isascii():
        return account
    user, at, host = account.rpartition("@")
    return f"{user}{at}{ascii_host(host)}"
