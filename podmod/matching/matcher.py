"""The matcher: list entries compiled once, then matched against text (phrases, hashtags, links)
and images (PDQ within a distance, SHA-256 exactly).

Phrases match on word boundaries (a phrase never matches inside a longer word), case-, accent- and
width-insensitively; all of them in one pass of an Aho-Corasick automaton. A hashtag entry matches
`#tag` in text and the tags diaspora* stored for the item. A url entry of a bare host matches every
link to that host and its subdomains; one with a path matches links under that path.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ahocorasick
import numpy as np

from podmod.matching import text as textform
from podmod.matching.images import ORIENTATIONS, ImageHashes, PdqIndex, hex_to_words, pdq_to_hex


@dataclass(frozen=True, slots=True)
class Entry:
    """One list entry in force: which list, which version added it, what it says."""

    list_id: int
    list_name: str
    kind: str
    value: str
    label: str
    version: int


@dataclass(frozen=True, slots=True)
class Hit:
    """One entry matching one item: the field it matched in and the matched excerpt, or the
    distance and orientation of an image match."""

    entry: Entry
    field: str
    excerpt: str | None = None
    distance: int | None = None
    orientation: str | None = None


@dataclass(frozen=True, slots=True)
class _Phrase:
    entries: tuple[Entry, ...]
    length: int
    word_start: bool  # the phrase starts with a letter or digit: it needs a boundary before it
    word_end: bool


class Matcher:
    """Every content entry in force, compiled for matching (see MatcherBuilder)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []  # every entry but pdq ones (those live in arrays)
        self.automaton: ahocorasick.Automaton | None = None
        self.phrases: list[_Phrase] = []
        self.hashtags: dict[str, tuple[Entry, ...]] = {}
        self.urls: dict[str, list[tuple[str, tuple[Entry, ...]]]] = {}
        self.sha256: dict[str, tuple[Entry, ...]] = {}
        self.pdq = PdqIndex(np.zeros((0, 4), dtype=np.uint64))
        # A PDQ row's entry: (list_id, list_name, label, version) at pdq_meta[pdq_meta_rows[row]];
        # a million entries share a handful of those, so they cost 4 bytes a row, not an object.
        self.pdq_meta: list[tuple[int, str, str, int]] = []
        self.pdq_meta_rows = np.zeros(0, dtype=np.int32)

    @classmethod
    def build(cls, entries: Iterable[Entry]) -> Matcher:
        builder = MatcherBuilder()
        for entry in entries:
            builder.add(
                entry.list_id, entry.list_name, entry.kind, entry.value, entry.label, entry.version
            )
        return builder.build()

    def pdq_entry(self, row: int) -> Entry:
        list_id, list_name, label, version = self.pdq_meta[int(self.pdq_meta_rows[row])]
        return Entry(list_id, list_name, "pdq", pdq_to_hex(self.pdq.row(row)), label, version)

    @property
    def kinds(self) -> set[str]:
        return {entry.kind for entry in self.entries} | ({"pdq"} if len(self.pdq) else set())

    @property
    def matches_text(self) -> bool:
        return bool(self.automaton or self.hashtags or self.urls)

    @property
    def matches_images(self) -> bool:
        return bool(self.sha256 or len(self.pdq))

    def __len__(self) -> int:
        return len(self.entries) + len(self.pdq)

    # Text -------------------------------------------------------------------------------------

    def match_text(
        self, text: str | None, *, field: str = "text", tags: Sequence[str] = ()
    ) -> list[Hit]:
        """Every entry the text (and the item's stored tags) matches, each entry once."""
        hits: list[Hit] = []
        seen: set[Entry] = set()
        folded = textform.fold(text) if text else ""
        if self.automaton is not None and folded:
            self._phrases(folded, field, hits, seen, text or "")
        if self.hashtags and (tags or "#" in folded):
            found = {textform.tag_key(tag) for tag in tags} | textform.hashtags(folded)
            for tag in sorted(found):
                for entry in self.hashtags.get(tag, ()):
                    if entry not in seen:
                        seen.add(entry)
                        hits.append(Hit(entry, field, excerpt=f"#{tag}"))
        if self.urls and text:
            for link in textform.links(text):
                self._link(link, field, hits, seen)
        return hits

    def _phrases(
        self, folded: str, field: str, hits: list[Hit], seen: set[Entry], text: str
    ) -> None:
        size = len(folded)
        for end, number in self.automaton.iter(folded):  # type: ignore[union-attr]
            phrase = self.phrases[number]
            start = end - phrase.length + 1
            if phrase.word_start and start > 0 and textform.is_word_char(folded[start - 1]):
                continue
            if phrase.word_end and end + 1 < size and textform.is_word_char(folded[end + 1]):
                continue
            for entry in phrase.entries:
                if entry not in seen:
                    seen.add(entry)
                    shown = textform.excerpt(folded, start, end + 1, text=text)
                    hits.append(Hit(entry, field, excerpt=shown))

    def _link(self, link: str, field: str, hits: list[Hit], seen: set[Entry]) -> None:
        host, target = textform.split_url(link)
        for candidate in textform.host_suffixes(host):
            for prefix, entries in self.urls.get(candidate, ()):
                if not textform.path_matches(prefix, target):
                    continue
                for entry in entries:
                    if entry not in seen:
                        seen.add(entry)
                        hits.append(Hit(entry, field, excerpt=link))

    # Images -----------------------------------------------------------------------------------

    def match_image(
        self, hashes: ImageHashes, *, max_distance: int, min_quality: int, field: str = "image"
    ) -> list[Hit]:
        """Entries whose SHA-256 is the file's, and PDQ entries within `max_distance` of any of
        the image's orientations (when its PDQ quality is at least `min_quality`)."""
        hits = [
            Hit(entry, field, excerpt=hashes.sha256, distance=0)
            for entry in self.sha256.get(hashes.sha256, ())
        ]
        if len(self.pdq) and len(hashes.pdq) and hashes.quality >= min_quality:
            found = self.pdq.search_any(hashes.pdq, max_distance)
            seen: set[Entry] = set()
            for row, (distance, orientation) in sorted(found.items(), key=lambda kv: kv[1]):
                entry = self.pdq_entry(row)
                if entry not in seen:
                    seen.add(entry)
                    hits.append(
                        Hit(
                            entry,
                            field,
                            excerpt=hashes.pdq_hex,
                            distance=distance,
                            orientation=ORIENTATIONS[orientation],
                        )
                    )
        return hits


class MatcherBuilder:
    """Collects entries one by one (a million PDQ hashes stream through without an object each)
    and compiles them into a Matcher."""

    PDQ_BLOCK = 65_536

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.pdq_blocks: list[np.ndarray] = []
        self.pdq_values: list[str] = []
        self.pdq_meta: dict[tuple[int, str, str, int], int] = {}
        self.pdq_meta_rows = array("i")

    def add(
        self, list_id: int, list_name: str, kind: str, value: str, label: str, version: int
    ) -> None:
        if kind != "pdq":
            self.entries.append(Entry(list_id, list_name, kind, value, label, version))
            return
        meta = (list_id, list_name, label, version)
        number = self.pdq_meta.get(meta)
        if number is None:
            number = self.pdq_meta[meta] = len(self.pdq_meta)
        self.pdq_meta_rows.append(number)
        self.pdq_values.append(value)
        if len(self.pdq_values) >= self.PDQ_BLOCK:
            self.pdq_blocks.append(hex_to_words(self.pdq_values))
            self.pdq_values = []

    def add_pdq_block(
        self, list_id: int, list_name: str, label: str, version: int, hexes: str
    ) -> None:
        """Many PDQ entries of one list, label and version: their 64-digit hashes end to end
        (white space between them is ignored)."""
        meta = (list_id, list_name, label, version)
        number = self.pdq_meta.get(meta)
        if number is None:
            number = self.pdq_meta[meta] = len(self.pdq_meta)
        words = np.frombuffer(bytes.fromhex(hexes), dtype=">u8").astype(np.uint64).reshape(-1, 4)
        self.pdq_meta_rows.extend(array("i", [number]) * len(words))
        if self.pdq_values:  # keep the order of rows and meta numbers aligned
            self.pdq_blocks.append(hex_to_words(self.pdq_values))
            self.pdq_values = []
        self.pdq_blocks.append(words)

    def build(self) -> Matcher:
        matcher = Matcher()
        phrases: dict[str, list[Entry]] = defaultdict(list)
        tags: dict[str, list[Entry]] = defaultdict(list)
        urls: dict[tuple[str, str], list[Entry]] = defaultdict(list)
        files: dict[str, list[Entry]] = defaultdict(list)
        for entry in self.entries:
            matcher.entries.append(entry)
            if entry.kind == "phrase":
                key = textform.fold(entry.value).strip()
                if key:
                    phrases[key].append(entry)
            elif entry.kind == "hashtag":
                key = textform.tag_key(entry.value)
                if key:
                    tags[key].append(entry)
            elif entry.kind == "url":
                urls[textform.split_url(entry.value)].append(entry)
            elif entry.kind == "sha256":
                files[entry.value.lower()].append(entry)
        if phrases:
            automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
            for key, group in phrases.items():
                automaton.add_word(key, len(matcher.phrases))
                matcher.phrases.append(
                    _Phrase(
                        tuple(group),
                        len(key),
                        textform.is_word_char(key[0]),
                        textform.is_word_char(key[-1]),
                    )
                )
            automaton.make_automaton()
            matcher.automaton = automaton
        matcher.hashtags = {key: tuple(group) for key, group in tags.items()}
        by_host: dict[str, list[tuple[str, tuple[Entry, ...]]]] = defaultdict(list)
        for (host, path), group in urls.items():
            by_host[host].append((path, tuple(group)))
        matcher.urls = dict(by_host)
        matcher.sha256 = {key: tuple(group) for key, group in files.items()}
        blocks = [*self.pdq_blocks, hex_to_words(self.pdq_values)]
        matcher.pdq = PdqIndex(np.concatenate(blocks))
        matcher.pdq_meta = [meta for meta, _ in sorted(self.pdq_meta.items(), key=lambda m: m[1])]
        matcher.pdq_meta_rows = np.frombuffer(self.pdq_meta_rows, dtype=np.int32).copy()
        return matcher
