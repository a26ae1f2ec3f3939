"""`podmod bench scan`: `podmod scan --backfill` as a process on a pod with large content lists in
force, its throughput and memory, a worker's memory scanning new posts with the lists loaded, and
a held phrase confirmed (its scan of the pod beside a scan of the whole list)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from podmod.bench.scratch import MemoryWatch, build_pod, scratch, spawn, stop

BENCH_WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
)

# Ordinary text with what real posts carry (links, hashtags, accents, markdown), and planted
# matches: one post in a thousand holds a listed phrase, one a listed link, one a listed hashtag.
SCAN_TEXT_SQL = """
UPDATE posts SET text = text || CASE id %% 10
    WHEN 0 THEN ' More at https://site' || (id %% 1000) || '.example/page/' || id
                || ' #topic' || (id %% 500)
    WHEN 1 THEN ' Café crème numéro ' || id || ' — déjà vu, ÉTÉ'
    WHEN 2 THEN ' [a link](https://www.host' || (id %% 300) || '.example/a?b=' || id || ')'
    WHEN 3 THEN ' placeholder phrase without a number, and placeholder words'
    ELSE '' END
  || CASE id %% 1000
    WHEN 0 THEN ' then placeholder phrase ' || (id %% %(phrases)s) || ' '
                || (%(words)s::text[])[1 + (id %% %(phrases)s) %% 26]
    WHEN 500 THEN ' see https://listed' || (id %% %(urls)s) || '.example/offer'
    WHEN 250 THEN ' #benchtag' || (id %% %(hashtags)s)
    ELSE '' END;
UPDATE comments SET text = text || CASE id %% 4
    WHEN 0 THEN ' https://site' || (id %% 1000) || '.example/ #topic' || (id %% 500)
    WHEN 1 THEN ' Ça va, naïve café?'
    ELSE '' END;
INSERT INTO profiles (diaspora_handle, first_name, last_name, bio, location, person_id,
                      created_at, updated_at)
SELECT diaspora_handle, 'Person', 'Number ' || id,
       'Placeholder bio of person ' || id || ', likes #topic' || (id %% 500)
           || ' and https://home' || id || '.example/',
       'Placeholder Town ' || (id %% 100), id, now(), now()
FROM people;
"""

PLANTED_SQL = "SELECT count(*) FILTER (WHERE id % 1000 IN (0, 250, 500)) FROM posts"


def _write_content_list(path: Path, *, phrases: int, hashtags: int, urls: int, pdq: int) -> int:
    """The benchmark's list: placeholder phrases, hashtags, links and random PDQ hashes."""
    import random

    rng = random.Random(7)  # noqa: S311 (benchmark data, not a secret)
    with path.open("w", encoding="utf-8") as out:
        out.write("kind,value,label,comment\n")
        for n in range(phrases):
            out.write(f"phrase,placeholder phrase {n} {BENCH_WORDS[n % 26]},bench,\n")
        for n in range(hashtags):
            out.write(f"hashtag,#benchtag{n},bench,\n")
        for n in range(urls):
            out.write(f"url,https://listed{n}.example/{'offer' if n % 2 else ''},bench,\n")
        for _ in range(pdq):
            out.write(f"pdq,{rng.getrandbits(256):064x},bench,\n")
    return phrases + hashtags + urls + pdq


def bench_scan(
    server_url: str | None,
    redis_url: str | None,
    *,
    posts: int,
    phrases: int,
    hashtags: int,
    urls: int,
    pdq: int,
) -> dict[str, object]:
    """`podmod scan --backfill` as a process on a pod with `posts` posts (and comments and
    profiles), with `phrases` phrases, `hashtags` hashtags, `urls` links and `pdq` PDQ hashes in
    force; then a worker scanning new posts with the same lists loaded, for its memory."""
    import json

    people = max(posts // 10, 1000)
    comments = posts // 4
    with scratch(server_url, redis_url) as sc, tempfile.TemporaryDirectory() as tmp:
        build_pod(sc.database_url, people=people, posts=posts, comments=comments, reports=0)
        with psycopg.connect(sc.database_url, autocommit=True) as conn:
            psycopg.ClientCursor(conn).execute(
                SCAN_TEXT_SQL,
                {
                    "phrases": phrases,
                    "hashtags": hashtags,
                    "urls": urls,
                    "words": list(BENCH_WORDS),
                },
            )
            conn.execute("VACUUM ANALYZE posts, comments, profiles")  # not podmod's own tables
            planted = conn.execute(PLANTED_SQL).fetchone()[0]
        list_path = Path(tmp) / "content.csv"
        entries = _write_content_list(
            list_path, phrases=phrases, hashtags=hashtags, urls=urls, pdq=pdq
        )
        config_path = Path(tmp) / "podmod.toml"
        config_path.write_text(
            f"[list_sync]\nmax_bytes = {list_path.stat().st_size + 1}\n"
            f'[[lists]]\nname = "bench"\nurl = "{list_path.as_uri()}"\npolicy = "review"\n'
        )
        env = sc.env(PODMOD_CONFIG=str(config_path))

        def podmod_cli(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
            done = subprocess.run(
                [sys.executable, "-m", "podmod.cli", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"podmod {' '.join(args)} failed: {(done.stdout + done.stderr)[-2000:]}"
                )
            return done

        started = time.perf_counter()
        podmod_cli("lists", "sync")
        sync_seconds = time.perf_counter() - started

        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "podmod.cli", "scan", "--backfill", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        backfill_memory = MemoryWatch(process)
        stdout, stderr = process.communicate(timeout=3600)
        backfill_seconds = time.perf_counter() - started
        if process.returncode != 0:
            raise RuntimeError(f"podmod scan --backfill failed: {stderr[-2000:]}")
        [run] = json.loads(stdout)
        with psycopg.connect(sc.database_url, autocommit=True) as conn:
            signals = conn.execute(
                "SELECT count(*) FROM podmod.signals WHERE kind = 'content'"
            ).fetchone()[0]
            post_signals = conn.execute(
                "SELECT count(DISTINCT item_id) FROM podmod.signals WHERE kind = 'content'"
                " AND item_type = 'Post'"
            ).fetchone()[0]
            # New posts for a worker: its memory with every list loaded.
            podmod_cli("read", "--once")
            conn.execute(
                "INSERT INTO posts (author_id, public, guid, type, text, created_at, updated_at)"
                " SELECT 1 + n %% 100, true, md5('new' || n), 'StatusMessage',"
                " 'New placeholder phrase 7 ' || %s || ' post ' || n, now(), now()"
                " FROM generate_series(1, 2000) n",
                (BENCH_WORDS[7],),
            )
            podmod_cli("read", "--once")
            worker = spawn(["worker", "--burst"], env)
            worker_memory = MemoryWatch(worker)
            worker.wait(timeout=900)
            stop(worker)
            new_signals = conn.execute(
                "SELECT count(*) FROM podmod.signals WHERE kind = 'content'"
                " AND item_id > %s AND item_type = 'Post'",
                (posts,),
            ).fetchone()[0]
            confirmed = _confirm_held_entry(conn, podmod_cli) if phrases else {}
    post_seconds = run["table_seconds"].get("Post") or backfill_seconds
    post_items = run["tables"]["Post"]["items"]
    return {
        "posts": posts,
        "comments": comments,
        "profiles": people,
        "entries": {
            "phrase": phrases,
            "hashtag": hashtags,
            "url": urls,
            "pdq": pdq,
            "total": entries,
        },
        "list_sync_seconds": round(sync_seconds, 1),
        "backfill_seconds": round(backfill_seconds, 2),
        "backfill_seconds_by_table": run["table_seconds"],
        "posts_per_second": round(post_items / post_seconds),
        "items_per_second_overall": round(run["items"] / backfill_seconds),
        "planted_post_matches": planted,
        "posts_matched": post_signals,
        "content_signals": signals,
        "backfill_peak_memory_mib": backfill_memory.peak_mib,
        "worker_new_post_matches": new_signals,
        "worker_peak_memory_mib": worker_memory.peak_mib,
        **confirmed,
    }


def _confirm_held_entry(conn: psycopg.Connection, podmod_cli: Any) -> dict[str, object]:
    """A phrase the backfill matched, held as too broad (its matches retracted), then confirmed:
    `podmod lists confirm-entry` and the scan it queues, in the foreground (`podmod scan`); then,
    for comparison, the scan of all of the list's entries that confirming queued before
    (`podmod scan --list`)."""
    import json

    phrase = f"placeholder phrase 0 {BENCH_WORDS[0]}"
    conn.execute(
        "WITH retracted AS (UPDATE podmod.signals SET retracted_at = now()"
        " WHERE kind = 'content' AND entry_kind = 'phrase' AND entry_value = %s"
        " RETURNING list_id, person_id)"
        " INSERT INTO podmod.content_entry_holds (list_id, entry_kind, entry_value, authors,"
        " known, held_reason)"
        " SELECT l.id, 'phrase', %s, (SELECT count(DISTINCT person_id) FROM retracted), 0,"
        " 'benchmark' FROM podmod.lists l WHERE l.name = 'bench'",
        (phrase, phrase),
    )
    started = time.perf_counter()
    podmod_cli("lists", "confirm-entry", "bench", f"phrase:{phrase}")
    [entry_run] = json.loads(podmod_cli("scan", "--json").stdout)
    entry_seconds = time.perf_counter() - started
    started = time.perf_counter()
    [list_run] = json.loads(podmod_cli("scan", "--list", "bench", "--json").stdout)
    list_seconds = time.perf_counter() - started
    stored = conn.execute(
        "SELECT count(*) FROM podmod.signals WHERE kind = 'content' AND retracted_at IS NULL"
        " AND entry_kind = 'phrase' AND entry_value = %s",
        (phrase,),
    ).fetchone()[0]
    return {
        "confirm_entry_seconds": round(entry_seconds, 2),
        "confirm_entry_items": entry_run["items"],
        "confirm_entry_matches_stored": stored,
        "whole_list_rescan_seconds": round(list_seconds, 2),
        "whole_list_rescan_items": list_run["items"],
    }
