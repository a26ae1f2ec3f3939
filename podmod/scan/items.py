"""The pod's content tables (posts, comments, profiles, photos): their rows read and matched."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from podmod import pod_db
from podmod.config import Config
from podmod.kinds import IMAGE_ITEM_TYPES
from podmod.matching import Hit, Matcher
from podmod.matching.images import ImageHashes
from podmod.scan.photos import PhotoHash, hash_photos

SNAPSHOT_CHARS = 5000


def watermark_name(item_type: str) -> str:
    return f"scan:{item_type}"


@dataclass(slots=True)
class Found:
    """One entry matching one item, with what the signal keeps of the item."""

    hit: Hit
    item_type: str
    item_id: int
    item_guid: str | None
    person_id: int
    occurred_at: datetime | None
    snapshot: str | None
    extra: dict[str, Any]


def _snapshot(text: str | None) -> str | None:
    if text is None or len(text) <= SNAPSHOT_CHARS:
        return text
    return text[:SNAPSHOT_CHARS] + "…"


def _distinct(hits: Iterable[Hit]) -> list[Hit]:
    seen: set[Any] = set()
    out = []
    for hit in hits:
        if hit.entry not in seen:
            seen.add(hit.entry)
            out.append(hit)
    return out


def match_rows(
    config: Config,
    matcher: Matcher,
    item_type: str,
    rows: list[tuple[Any, ...]],
    tags: dict[int, list[str]],
    hashes: dict[int, ImageHashes],
) -> list[Found]:
    """Match rows of one table as pod_db.load_content returns them."""
    found: list[Found] = []
    match_text = matcher.match_text
    if item_type == "Post":
        for item_id, guid, author, post_type, text, root_guid, created in rows:
            hits = match_text(text, tags=tags.get(item_id, ()))
            if hits:
                extra: dict[str, Any] = {"post_type": post_type}
                if post_type == "Reshare":
                    extra["reshare_of"] = root_guid
                found += [
                    Found(hit, "Post", item_id, guid, author, created, _snapshot(text), extra)
                    for hit in hits
                ]
    elif item_type == "Comment":
        for item_id, guid, author, text, post_id, created in rows:
            hits = match_text(text, tags=tags.get(item_id, ()))
            if hits:
                found += [
                    Found(
                        hit,
                        "Comment",
                        item_id,
                        guid,
                        author,
                        created,
                        _snapshot(text),
                        {"post_id": post_id},
                    )
                    for hit in hits
                ]
    elif item_type == "Profile":
        for item_id, guid, person, name, bio, location, updated in rows:
            hits = _distinct(
                [
                    *match_text(name, field="name"),
                    *match_text(bio, field="bio"),
                    *match_text(location, field="location"),
                    *(
                        match_text(None, field="tags", tags=tags[item_id])
                        if item_id in tags
                        else []
                    ),
                ]
            )
            fields = {
                "name": name,
                "bio": bio,
                "location": location,
                "tags": " ".join(f"#{tag}" for tag in tags.get(item_id, ())),
            }
            found += [
                Found(
                    hit,
                    "Profile",
                    item_id,
                    guid,
                    person,
                    updated,
                    _snapshot(fields.get(hit.field)),
                    {},
                )
                for hit in hits
            ]
    elif item_type == "Photo":
        for item_id, guid, author, local_name, remote_path, remote_name, post_guid, created in rows:
            image = hashes.get(item_id)
            if image is None:
                continue
            hits = matcher.match_image(
                image,
                max_distance=config["scan.pdq_distance"],
                min_quality=config["scan.pdq_min_quality"],
            )
            if hits:
                source = local_name or f"{remote_path or ''}{remote_name or ''}"
                extra = {"status_message_guid": post_guid, "pdq_quality": image.quality}
                found += [
                    Found(
                        hit,
                        "Photo",
                        item_id,
                        guid,
                        author,
                        created,
                        source,
                        {k: v for k, v in extra.items() if v is not None},
                    )
                    for hit in hits
                ]
    return found


@dataclass
class Scanned:
    """One slice of a table read and matched, ready to store."""

    items: int = 0
    found: list[Found] = field(default_factory=list)
    photo_hashes: list[PhotoHash] = field(default_factory=list)


def scan_items(
    config: Config,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    matcher: Matcher,
    item_type: str,
    *,
    ids: list[int] | None = None,
    above: int | None = None,
    up_to: int | None = None,
) -> Scanned:
    """Read items of one table (by ids, or the id range (above, up_to]) and match them."""
    wants = matcher.matches_images if item_type in IMAGE_ITEM_TYPES else matcher.matches_text
    if not wants:
        return Scanned()
    rows = pod_db.load_content(pod, item_type, ids=ids, above=above, up_to=up_to)
    tags: dict[int, list[str]] = {}
    if matcher.hashtags and rows:
        tags = pod_db.load_tags(pod, item_type, ids=ids, above=above, up_to=up_to)
    pod.rollback()
    hashes: dict[int, ImageHashes] = {}
    new_hashes: list[PhotoHash] = []
    if item_type == "Photo" and rows:
        hashes, new_hashes = hash_photos(config, state, rows)
    found = match_rows(config, matcher, item_type, rows, tags, hashes)
    return Scanned(len(rows), found, new_hashes)
