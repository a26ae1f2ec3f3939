"""`podmod bench lists`: a signed list served over loopback HTTPS, synced and applied by `podmod
lists sync` as a process; beside it the floor (COPY, index and join of the same rows), the apply by
the naive loop over people (podmod.bench.lists_naive) and exact-host matching."""

from __future__ import annotations

import contextlib
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from podmod import store
from podmod.bench.scratch import run_measured, scratch
from podmod.db import connect
from podmod.fixtures import diaspora_schema_sql

# The list benchmarks' pod: people only (a quarter local), the remote ones on `hosts` pods that are
# subdomains of an apex of their own (`s1.d7.example`; one host in fifty on port 8443), as many
# diaspora* pods are (`social.example.org`).
LIST_POD_SQL = """
INSERT INTO users (id, username, email, created_at, updated_at, getting_started)
SELECT n, 'user' || n, 'user' || n || '@mail.example', now(), now(), false
FROM generate_series(1, %(local)s) n;
INSERT INTO people (id, guid, diaspora_handle, serialized_public_key, owner_id, created_at,
                    updated_at)
SELECT n, md5('person' || n),
       CASE WHEN n <= %(local)s THEN 'user' || n || '@bench.example'
            ELSE 'remote' || n || '@' || podmod_bench_host(n %% %(hosts)s) END,
       'placeholder key', CASE WHEN n <= %(local)s THEN n END, now(), now()
FROM generate_series(1, %(people)s) n;
SELECT setval('users_id_seq', %(local)s);
SELECT setval('people_id_seq', %(people)s);
"""
LIST_HOST_SQL = """
CREATE FUNCTION podmod_bench_host(h integer) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 's' || (h % 3) || '.d' || h || '.example' || CASE WHEN h % 50 = 0 THEN ':8443' ELSE ''
    END
$$
"""


def bench_host(h: int) -> str:
    """The host of the list pod's remote people with `n % hosts == h` (as podmod_bench_host)."""
    return f"s{h % 3}.d{h}.example" + (":8443" if h % 50 == 0 else "")


@dataclass
class ListPod:
    people: int
    local: int
    hosts: int

    def remote_person(self, n: int) -> tuple[int, str]:
        """The id and handle of the n-th remote person (0-based)."""
        person = self.local + 1 + n
        return person, f"remote{person}@{bench_host(person % self.hosts)}"


def build_list_pod(url: str, *, people: int) -> ListPod:
    pod = ListPod(people=people, local=max(people // 4, 1), hosts=max(people // 30, 10))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(diaspora_schema_sql())
        conn.execute(LIST_HOST_SQL)
        psycopg.ClientCursor(conn).execute(
            LIST_POD_SQL, {"local": pod.local, "people": people, "hosts": pod.hosts}
        )
        conn.execute("DROP FUNCTION podmod_bench_host(integer)")
        conn.execute("VACUUM ANALYZE")
        with connect(url, purpose="state") as state:
            store.migrate(state)
    return pod


FloorRows = list[tuple[str, str, str]]


def settle(url: str) -> None:
    """Write out what the steps before left dirty (the pod's million rows, the sync's entries)
    before the next step is timed, so that neither pays for the other's checkpoint. Skipped when
    the server does not let this role checkpoint."""
    with (
        psycopg.connect(url, autocommit=True) as conn,
        contextlib.suppress(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CHECKPOINT")


def write_account_list(path: Path, pod: ListPod, *, entries: int, matches: int) -> FloorRows:
    """podmod's format: `matches` entries name remote people of the pod, the rest nobody here.
    Returns the entry rows (value, label, comment) for the floor."""
    rows: FloorRows = []
    with path.open("w", encoding="utf-8") as out:
        out.write("kind,value,label,comment\n")
        for n in range(entries):
            handle = (
                pod.remote_person(n)[1] if n < matches else f"absent{n}@nowhere{n % 1000}.example"
            )
            out.write(f"account,{handle},bench,\n")
            rows.append((handle, "bench", ""))
    return rows


SEVERITIES = ("suspend",) * 7 + ("silence",) * 2 + ("noop",)
COMMENTS = ("", "spam", "iftas:hate-speech;spam", "placeholder reason, harassment")


def write_mastodon_list(path: Path, pod: ListPod, *, entries: int, matches: int) -> FloorRows:
    """Mastodon's domain-block export of `entries` rows: severities suspend, silence and noop
    7:2:1; one row in ten obfuscated (`d12**.ex**ple`, skipped); a third of the rows apex domains
    whose subdomains are pods (`d7.example` over `s1.d7.example`): the first of them the apexes of
    this pod's hosts, enough to cover about `matches` people, the others of pods elsewhere; the
    rest hosts named exactly. Returns the entry rows (value, severity, comment) for the floor."""
    remote = pod.people - pod.local
    per_host = max(remote // pod.hosts, 1)
    covered = min(max(matches // per_host, 1), pod.hosts)
    rows: FloorRows = []
    apexes = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n")
        for n in range(entries):
            severity = SEVERITIES[(n * 3) % 10]
            comment = COMMENTS[n % 4]
            if n % 10 == 9:
                out.write(f'd{n}**.ex**ple,{severity},false,false,"{comment}",true\n')
                continue
            if n % 3 == 0:
                h = apexes if apexes < covered else pod.hosts + apexes
                apexes += 1
                domain = f"d{h}.example"
            else:
                domain = f"e{n}.other{n % 1000}.example"
            out.write(f'{domain},{severity},false,false,"{comment}",false\n')
            rows.append((domain, severity, comment))
    return rows


def changed_version(body: bytes, shape: str) -> bytes:
    """The list's next version, as publishers change theirs: of every 100 rows, one removed, one
    changed (a suspension becomes a silence and back; an account's label), one added after."""
    lines = body.decode().splitlines(keepends=True)
    out = [lines[0]]
    for n, line in enumerate(lines[1:]):
        if n % 100 == 1:
            continue
        if n % 100 == 2:
            if shape == "podmod":
                line = line.replace(",bench,", ",changed,", 1)
            elif ",suspend," in line:
                line = line.replace(",suspend,", ",silence,", 1)
            else:
                line = line.replace(",silence,", ",suspend,", 1).replace(",noop,", ",suspend,", 1)
        out.append(line)
        if n % 100 == 3:
            out.append(
                f"account,new{n}@added.example,bench,\n"
                if shape == "podmod"
                else f'new{n}.added.example,suspend,false,false,"",false\n'
            )
    return "".join(out).encode()


@contextlib.contextmanager
def dropped_after(conn: psycopg.Connection, table: str) -> Iterator[None]:
    """Measure on a scratch table, then drop it, whatever the measure left uncommitted."""
    try:
        yield
    finally:
        conn.rollback()
        conn.execute(f"DROP TABLE {table}")
        conn.commit()


def measure_floor(database_url: str, rows: FloorRows, *, join_on: str) -> dict[str, float]:
    """What any store of these entry rows costs at least, on the same server in the same run: the
    COPY of the rows (formatted by the client) into a table, an index on the value, and the join
    against the pod's people (`join_on`: the people's expression equal to the value)."""
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE bench_floor (value text, second text, third text)")
        conn.commit()
        with dropped_after(conn, "bench_floor"):
            started = time.perf_counter()
            with conn.cursor().copy("COPY bench_floor (value, second, third) FROM STDIN") as copy:
                block: list[str] = []
                for value, second, third in rows:
                    block.append(f"{value}\t{second}\t{third}\n")
                    if len(block) == 20_000:
                        copy.write("".join(block))
                        block = []
                copy.write("".join(block))
            copied = time.perf_counter()
            conn.execute("CREATE INDEX ON bench_floor (value)")
            indexed = time.perf_counter()
            conn.execute("ANALYZE bench_floor")
            joined_rows = conn.execute(
                f"SELECT count(*) FROM bench_floor f JOIN people p ON {join_on} = f.value"
            ).fetchone()[0]
            joined = time.perf_counter()
            conn.commit()
    return {
        "floor_seconds": round(joined - started, 3),
        "floor_copy_seconds": round(copied - started, 3),
        "floor_index_seconds": round(indexed - copied, 3),
        "floor_join_seconds": round(joined - indexed, 3),
        "floor_join_rows": joined_rows,
    }


# podmod.list_entries' indexes defined again on bench_store (each named bench_ and its name), and
# whether a first version's COPY builds it afterwards (podmod.lists.versions.ENTRY_INDEXES_SQL).
STORE_INDEXES_SQL = """
SELECT regexp_replace(pg_get_indexdef(x.indexrelid),
                      '^CREATE (UNIQUE )?INDEX \\S+ ON podmod\\.list_entries ',
                      'CREATE \\1INDEX bench_' || i.relname || ' ON bench_store ') AS definition,
       i.relname IN (SELECT name FROM (%s) built) AS built_after
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = 'podmod.list_entries'::regclass
ORDER BY i.relname
"""


def store_text(body: bytes) -> list[str]:
    """A list's entry rows as podmod's reading writes them for COPY into podmod.list_entries (list
    1, version 1), for measure_store: formatted before its clock starts."""
    from podmod.lists import versions
    from podmod.lists.parse import ListReader, collector_paused

    with collector_paused():
        return list(ListReader(body).text(versions.CopyRows(prefix="1\t", suffix="\t1\n")))


def measure_reader(body: bytes) -> tuple[dict[str, float], list[str]]:
    """podmod's reading alone, in the same run as the floor: the file's shape told and its rows
    read and written as COPY text (store_text), sent nowhere; with the text, for measure_store.
    In a sync, PostgreSQL stores the rows beside the reading: the slower of the two (and the
    machine's cores, which they share with the pod's hosts read meanwhile) holds its rows phase."""
    started = time.perf_counter()
    blocks = store_text(body)
    return {"reader_seconds": round(time.perf_counter() - started, 3)}, blocks


def measure_store(database_url: str, blocks: list[str]) -> dict[str, float]:
    """What PostgreSQL alone takes to store a list's entries as podmod stores a first version, in
    the same run as the floor: the rows as podmod's reading writes them for COPY (store_text),
    copied into a table of podmod.list_entries' columns with the indexes a
    first COPY keeps, the others built afterwards and the BRIN summarised, as
    podmod.lists.versions does into the empty store. Beside the floor, it tells how much of a
    sync is the shape of podmod's store, and how much its own work (process, fetch, signature,
    reading the file, matching)."""
    from podmod.lists import versions

    columns = ", ".join(("list_id", *versions.ENTRY_COLUMNS, "added_in"))
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE bench_store (LIKE podmod.list_entries INCLUDING DEFAULTS)")
        indexes = conn.execute(
            STORE_INDEXES_SQL.replace("%s", versions.ENTRY_INDEXES_SQL)
        ).fetchall()
        for definition, built_after in indexes:
            if not built_after:
                conn.execute(definition)
        conn.commit()
        with dropped_after(conn, "bench_store"):
            started = time.perf_counter()
            conn.execute(
                "SELECT set_config('maintenance_work_mem', %s, true)",
                (versions.INDEX_BUILD_MEMORY,),
            )
            cursor = conn.cursor()
            with cursor.copy(f"COPY bench_store ({columns}) FROM STDIN") as copy:
                for block in blocks:
                    copy.write(block)
            copied = time.perf_counter()
            for definition, built_after in indexes:
                if built_after:
                    conn.execute(definition)
            summary = versions.RANGES_SUMMARY_SQL.replace("podmod.list_", "bench_list_")
            conn.execute(summary)
            conn.commit()
            finished = time.perf_counter()
    return {
        "store_seconds": round(finished - started, 3),
        "store_copy_seconds": round(copied - started, 3),
        "store_index_seconds": round(finished - copied, 3),
        "store_rows": cursor.rowcount,
    }


SHAPES = {
    # shape: (file name, writer, the people's expression the floor joins on)
    "podmod": ("accounts.csv", write_account_list, "lower(p.diaspora_handle)"),
    "mastodon": (
        "domains.csv",
        write_mastodon_list,
        "split_part(lower(p.diaspora_handle), '@', 2)",
    ),
}


def _state_anew(database_url: str) -> None:
    """podmod's schema dropped and made again: the next sync is a first one."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA podmod CASCADE")
    with connect(database_url, purpose="state") as state:
        store.migrate(state)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _sync(env: dict[str, str], *, held: bool = False) -> tuple[float, int, dict[str, Any]]:
    """`podmod lists sync` as a process: (seconds, peak KiB, its outcome); `held`: the sync
    holds a version for approval (exit code 4)."""
    code, out, err, seconds, peak = run_measured(
        [sys.executable, "-m", "podmod.cli", "lists", "sync", "--json"], env
    )
    if code != (4 if held else 0):
        raise RuntimeError(f"lists sync failed: {out}{err}"[-2000:])
    return seconds, peak, json.loads(out)[0]


def held_version(body: bytes) -> bytes:
    """A next version that removes three in five of the list's rows: held for approval (above
    list_sync.max_removal_share, a half)."""
    lines = body.decode().splitlines(keepends=True)
    return "".join(lines[: 1 + (len(lines) - 1) * 2 // 5]).encode()


def _measure_held(env: dict[str, str], list_path: Path, secret: Any, number: int) -> dict[str, Any]:
    """The sync that holds a version removing most entries (its changes kept as it holds it),
    then `podmod lists diff` of it, as the podmin's first look (the lists page's version page
    reads the same changes): seconds each."""
    from podmod.lists import minisign

    held = held_version(list_path.read_bytes())
    list_path.write_bytes(held)
    signature_path = list_path.with_name(list_path.name + ".minisig")
    signature_path.write_text(minisign.sign(held, secret, timestamp=int(time.time()) + 2))
    seconds, _, outcome = _sync(env, held=True)
    code, out, err, diff_seconds, _ = run_measured(
        [sys.executable, "-m", "podmod.cli", "lists", "diff", "bench", "--version", str(number)],
        env,
    )
    if code != 0:
        raise RuntimeError(f"lists diff failed: {out}{err}"[-2000:])
    return {
        "held_resync_seconds": round(seconds, 3),
        "held_version": {key: outcome[key] for key in ("status", "added", "removed")},
        "held_first_diff_seconds": round(diff_seconds, 3),
    }


def bench_list_sync(
    server_url: str | None,
    redis_url: str | None,
    *,
    shape: str,
    entries: int,
    people: int,
    matches: int,
    syncs: int = 1,
) -> dict[str, Any]:
    """A signed list of `entries` rows in `shape`, served over loopback HTTPS, synced and applied
    on a pod of `people` people by `podmod lists sync` as a process, re-synced unchanged, the floor
    measured, then its next version synced (changed_version); `syncs` times, podmod's schema made
    again before each (a machine's noise moves one run by a fifth: the figures are the medians,
    each run kept). Before the last next version, the apply again by podmod and by the naive
    baseline."""
    from podmod.lists import minisign
    from podmod.loopback import LoopbackServer

    file_name, write, join_on = SHAPES[shape]
    with scratch(server_url, redis_url) as sc, tempfile.TemporaryDirectory() as tmp:
        pod = build_list_pod(sc.database_url, people=people)
        workdir = Path(tmp)
        served = workdir / "served"
        served.mkdir()
        list_path = served / file_name
        floor_rows = write(list_path, pod, entries=entries, matches=matches)
        # The million rows kept for the floor are left out of this process's garbage collections:
        # the loopback server serving the list runs here, and must not slow down for them.
        gc.collect()
        gc.freeze()
        secret = minisign.SecretKey.generate()
        body = list_path.read_bytes()
        signature = minisign.sign(body, secret)
        changed = changed_version(body, shape)
        with LoopbackServer(served, workdir) as server:
            config_path = workdir / "podmod.toml"
            config_path.write_text(
                f'[list_sync]\nca_bundle = "{server.cert_path}"\nmax_bytes = {2 * len(body)}\n'
                # (whatever share of the pod the list names: the sync is measured, not a hold;
                # the count of the pod's people that decides it is made all the same)
                "max_new_match_share = 1.0\n"
                f'[[lists]]\nname = "bench"\nurl = "{server.url(file_name)}"\n'
                f'public_key = "{secret.public_key.to_string()}"\npolicy = "review"\n'
            )
            env = sc.env(PODMOD_CONFIG=str(config_path))
            runs: list[dict[str, Any]] = []
            for attempt in range(max(syncs, 1)):
                if attempt:
                    _state_anew(sc.database_url)
                list_path.write_bytes(body)
                (served / f"{file_name}.minisig").write_text(signature)
                timings, peaks, outcomes = {}, {}, {}
                settle(sc.database_url)
                for run in ("first", "unchanged"):
                    timings[run], peaks[run], outcomes[run] = _sync(env)
                outcome = outcomes["first"]
                settle(sc.database_url)
                floor = measure_floor(sc.database_url, floor_rows, join_on=join_on)
                reading, stored_rows = measure_reader(body)
                floor |= reading
                settle(sc.database_url)
                floor |= measure_store(sc.database_url, stored_rows)
                del stored_rows
                if attempt == max(syncs, 1) - 1:  # (the first version in force)
                    with psycopg.connect(sc.database_url) as conn:
                        signals = conn.execute(
                            "SELECT count(*) FROM podmod.signals WHERE kind = 'list'"
                        ).fetchone()[0]
                    apply = compare_apply(
                        sc.database_url, config_path, env, exact=shape == "mastodon"
                    )
                # The next version, signed a second later.
                list_path.write_bytes(changed)
                (served / f"{file_name}.minisig").write_text(
                    minisign.sign(changed, secret, timestamp=int(time.time()) + 1)
                )
                settle(sc.database_url)
                timings["changed"], _, changed_outcome = _sync(env)
                if attempt == max(syncs, 1) - 1:
                    settle(sc.database_url)
                    held = _measure_held(env, list_path, secret, changed_outcome["version"] + 1)
                # where the first sync's time went: its own phases, and the rest of the process
                # (start, imports, configuration, connections, exit)
                phases = dict(outcome["seconds"])
                phases["process"] = round(timings["first"] - phases.pop("total"), 3)
                runs.append(
                    {"timings": timings, "peak": peaks["first"], "floor": floor, "phases": phases}
                )
    gc.unfreeze()
    first = [run["timings"]["first"] for run in runs]
    floors = {key: _median([run["floor"][key] for run in runs]) for key in runs[0]["floor"]}
    phases = {
        key: _median([run["phases"].get(key, 0.0) for run in runs]) for key in runs[0]["phases"]
    }
    sync_seconds = _median(first)
    return {
        "shape": shape,
        "entries": len(floor_rows),
        "rows": entries,
        "people": people,
        "hosts": pod.hosts,
        "list_bytes": len(body),
        "matches": signals,
        "status": outcome["status"],
        "format": outcome["format"],
        "sync_and_apply_seconds": sync_seconds,
        "unchanged_resync_seconds": _median([run["timings"]["unchanged"] for run in runs]),
        "changed_resync_seconds": _median([run["timings"]["changed"] for run in runs]),
        "changed_version": {key: changed_outcome[key] for key in ("status", "added", "removed")},
        **held,
        "peak_memory_mib": round(max(run["peak"] for run in runs) / 1024, 1),
        **floors,
        "times_the_floor": round(sync_seconds / floors["floor_seconds"], 2),
        # PostgreSQL storing the rows as podmod stores them, beside the same floor
        "store_times_the_floor": round(floors["store_seconds"] / floors["floor_seconds"], 2),
        # the first sync's phases (podmod.lists.versions.Phases), medians, and its process's rest
        "sync_phases": phases,
        # each run: (sync + apply, its floor, the one over the other)
        "runs": [
            (
                round(run["timings"]["first"], 2),
                run["floor"]["floor_seconds"],
                round(run["timings"]["first"] / run["floor"]["floor_seconds"], 2),
            )
            for run in runs
        ],
        **apply,
    }


def bench_lists(
    server_url: str | None,
    redis_url: str | None,
    *,
    entries: int,
    people: int,
    matches: int,
    syncs: int = 1,
    shapes: tuple[str, ...] = tuple(SHAPES),
) -> dict[str, Any]:
    """The list sync benchmark in podmod's own format and as a Mastodon domain-block export."""
    return {
        shape: bench_list_sync(
            server_url,
            redis_url,
            shape=shape,
            entries=entries,
            people=people,
            matches=matches,
            syncs=syncs,
        )
        for shape in shapes
    }


# Exact-host matching, for the cost of subdomain matching on the same data: each host answers only
# to its own name (with and without its port), as podmod matched before it covered subdomains.
def exact_host_names(host: str) -> list[tuple[str, int]]:
    names = [(host.split(":")[0], 1)]
    return [*names, (host, 1)] if ":" in host else names


def _timed_apply(config: Any, database_url: str, forget: str) -> tuple[int, float, float]:
    """(matches added, seconds for the whole apply, seconds until the pod entries' matches were
    found: the hosts streamed, their names made, the entries joined)."""
    from podmod.lists import apply

    found_at: list[float] = []
    execute_all = apply._execute_all

    def noting(state: Any, script: str, params: Any = None) -> None:
        execute_all(state, script, params)
        if script in (apply.HOST_MATCHES_SQL, apply.HOST_LOOKUP_SQL):
            found_at.append(time.perf_counter())

    with (
        connect(database_url, purpose="state") as state,
        connect(database_url, purpose="pod") as pod,
    ):
        state.execute(forget)
        apply._execute_all = noting
        try:
            started = time.perf_counter()
            added = apply.match_people(config, pod, state, full=True).added
            seconds = time.perf_counter() - started
        finally:
            apply._execute_all = execute_all
        state.rollback()
        pod.rollback()
    return added, seconds, (found_at[0] - started) if found_at else seconds


APPLY_RUNS = 3  # times the apply is timed each way, for the cost of subdomain matching


def _medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The median of each figure of these runs."""
    return _median([run[0] for run in runs]), _median([run[1] for run in runs])


def compare_apply(
    database_url: str, config_path: Path, env: dict[str, str], *, exact: bool = False
) -> dict[str, float]:
    """Apply the version in force again from scratch (its list signals deleted, in a transaction
    rolled back afterwards): podmod's set-based match_people against a Python loop over people;
    with `exact`, also podmod with exact-host matching instead of subdomains."""
    from podmod.bench import lists_naive
    from podmod.config import load_config
    from podmod.lists import apply

    config = load_config(config_path, environ=env)
    forget = "DELETE FROM podmod.signals WHERE kind = 'list'"
    podmod_added, podmod_seconds, podmod_finding = _timed_apply(config, database_url, forget)
    result: dict[str, float] = {}
    if exact:
        # Each way APPLY_RUNS times, taking turns (the first run of all pays for what the others
        # find cached): the medians.
        subdomain_runs, exact_runs = [(podmod_seconds, podmod_finding)], []
        for turn in range(2 * APPLY_RUNS - 1):
            apply.names_of = exact_host_names if turn % 2 == 0 else apply.host_names
            try:
                added, seconds, finding = _timed_apply(config, database_url, forget)
            finally:
                apply.names_of = apply.host_names
            if turn % 2 == 0:
                exact_added = added
                exact_runs.append((seconds, finding))
            else:
                subdomain_runs.append((seconds, finding))
        podmod_seconds, podmod_finding = _medians(subdomain_runs)
        exact_seconds, exact_finding = _medians(exact_runs)
        result = {
            "exact_host_apply_matches": exact_added,
            "exact_host_apply_seconds": round(exact_seconds, 3),
            # the whole apply: subdomain matching also stores the matches only it finds
            "subdomain_cost": round(podmod_seconds / exact_seconds, 2),
            # finding the matches (hosts, their names, the join with the entries)
            "subdomain_finding_seconds": round(podmod_finding, 3),
            "exact_host_finding_seconds": round(exact_finding, 3),
            "subdomain_finding_cost": round(podmod_finding / exact_finding, 2),
        }
    with psycopg.connect(database_url) as state, psycopg.connect(database_url) as pod:
        state.execute(forget)
        started = time.perf_counter()
        naive_added = lists_naive.apply_by_python_loop(pod, state)
        naive_seconds = time.perf_counter() - started
        state.rollback()
        pod.rollback()
    if naive_added != podmod_added:
        raise RuntimeError(
            f"the baseline found {naive_added} list matches and podmod {podmod_added}: "
            "they must do the same work to be compared"
        )
    return {
        "apply_matches": podmod_added,
        "apply_seconds": round(podmod_seconds, 3),
        "naive_apply_seconds": round(naive_seconds, 3),
        **result,
    }
