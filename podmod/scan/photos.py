"""Reading the pod's photos (a file in its uploads folder, or a download through the one fetch
guard, podmod.netguard) and keeping their hashes, never the images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from podmod.config import Config
from podmod.matching.images import ImageError, ImageHashes, hash_image


def _local_photo(config: Config, name: str) -> bytes:
    """A local photo's file from the pod's uploads folder (never outside it)."""
    folder = Path(config["scan.uploads_dir"]).resolve()
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ImageError(f"{name!r} is not a photo file name")
    path = (folder / name).resolve()
    if path.parent != folder:
        raise ImageError(f"{name!r} is outside the uploads folder")
    try:
        size = path.stat().st_size
        if size > config["scan.photo_max_bytes"]:
            raise ImageError(f"the file has {size} bytes, more than scan.photo_max_bytes")
        with path.open("rb") as handle:
            return handle.read(config["scan.photo_max_bytes"] + 1)
    except FileNotFoundError:
        raise ImageError(f"there is no file {name} in the uploads folder") from None
    except OSError as error:
        raise ImageError(f"the file {name} cannot be read ({error.strerror})") from None


def _remote_photo(config: Config, url: str) -> bytes:
    """A remote photo downloaded within the size and time limits (podmod.netguard: HTTPS only,
    never from a private address, redirects included); never kept."""
    from podmod.lists import fetch

    try:
        return fetch.download_public(
            url, max_bytes=config["scan.photo_max_bytes"], timeout=config["scan.photo_timeout"]
        )
    except fetch.FetchError as error:
        raise ImageError(f"the download failed: {error}") from None


@dataclass
class PhotoHash:
    """A row for podmod.photo_hashes: the hashes, or why there are none."""

    photo_id: int
    source: str
    hashes: ImageHashes | None
    error: str | None


def hash_photos(
    config: Config, state: psycopg.Connection, rows: list[tuple[Any, ...]]
) -> tuple[dict[int, ImageHashes], list[PhotoHash]]:
    """The hashes of these photos: stored ones, and new ones made from the file in the uploads
    folder or (when allowed) a download. Returns (hashes, new rows to store)."""
    stored = {
        photo_id: ImageHashes.from_stored(sha, bytes(pdq) if pdq else None, quality)
        for photo_id, sha, pdq, quality in state.cursor(row_factory=tuple_row).execute(
            "SELECT photo_id, sha256, pdq, quality FROM podmod.photo_hashes"
            " WHERE photo_id = ANY(%s) AND sha256 IS NOT NULL",
            ([row[0] for row in rows],),
        )
    }
    state.rollback()
    done = {
        row["photo_id"]
        for row in state.execute(
            "SELECT photo_id FROM podmod.photo_hashes WHERE photo_id = ANY(%s)",
            ([row[0] for row in rows],),
        )
    }
    state.rollback()
    new: list[PhotoHash] = []
    for photo_id, _guid, _author, local_name, remote_path, remote_name, _post, _created in rows:
        if photo_id in done:
            continue
        if local_name and config["scan.uploads_dir"]:
            source, load = "file", lambda name=local_name: _local_photo(config, name)
        elif remote_path and remote_name and config["scan.fetch_remote_photos"]:
            url = f"{remote_path}{remote_name}"
            source, load = "remote", lambda url=url: _remote_photo(config, url)
        else:
            continue  # no way to read it under this configuration: tried again by a backfill
        try:
            image = hash_image(load(), max_pixels=config["scan.photo_max_pixels"])
        except ImageError as error:
            new.append(PhotoHash(photo_id, source, None, str(error)[:500]))
            continue
        stored[photo_id] = image
        new.append(PhotoHash(photo_id, source, image, None))
    return stored, new


def store_photo_hashes(state: psycopg.Connection, rows: list[PhotoHash]) -> None:
    if not rows:
        return
    with state.cursor() as cur:
        cur.executemany(
            "INSERT INTO podmod.photo_hashes (photo_id, sha256, pdq, quality, source, error)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (photo_id) DO UPDATE SET"
            " sha256 = excluded.sha256, pdq = excluded.pdq, quality = excluded.quality,"
            " source = excluded.source, error = excluded.error, hashed_at = now()",
            [
                (
                    row.photo_id,
                    row.hashes.sha256 if row.hashes else None,
                    row.hashes.pdq_bytes() if row.hashes else None,
                    row.hashes.quality if row.hashes else None,
                    row.source,
                    row.error,
                )
                for row in rows
            ],
        )
