"""Content matching: the lists' hashtag, phrase, url, pdq and sha256 entries matched against text
and images, with no database in sight (podmod.scan feeds it the pod's content and stores what it
finds).

`Matcher.build(entries)` compiles the entries once (an Aho-Corasick automaton for every phrase, hash
tables for hashtags, URL hosts and file hashes, a numpy index for PDQ hashes); `match_text` and
`match_image` then cost microseconds per item.
"""

from __future__ import annotations

from podmod.kinds import CONTENT_KINDS, IMAGE_KINDS, TEXT_KINDS
from podmod.matching.matcher import Entry, Hit, Matcher

__all__ = ["CONTENT_KINDS", "IMAGE_KINDS", "TEXT_KINDS", "Entry", "Hit", "Matcher"]
