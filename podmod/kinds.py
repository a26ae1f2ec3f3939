"""The kinds of list entries, and the pod's tables each content kind is matched against. One place
for the lists (podmod.lists), the configuration, the matcher (podmod.matching) and content scanning
(podmod.scan), and light: `podmod lists sync` asks these questions without loading the matcher."""

from __future__ import annotations

from collections.abc import Iterable

TEXT_KINDS = ("hashtag", "phrase", "url")
IMAGE_KINDS = ("pdq", "sha256")
CONTENT_KINDS = TEXT_KINDS + IMAGE_KINDS
# account: a handle; pod: a host and its subdomains; then the content kinds.
KINDS = ("account", "pod", *CONTENT_KINDS)

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
