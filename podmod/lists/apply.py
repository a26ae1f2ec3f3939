"""Applying the lists in force to the pod: every entry matched against `people` set-based, matches
turned into list signals on the accounts' cases, stale ones retracted, and `lock` policies carried
out through the one action path.

The pod's people are streamed (COPY) into a temporary table next to podmod's entries, so matching
is a few hash joins whatever the sizes, and works when podmod's schema lives in another database.
`account` entries match handles exactly (lower-case). A `pod` entry covers its host and every
subdomain, on label boundaries and on any port (`alpha.example` covers `x.y.alpha.example:8443`,
never `notalpha.example`; `cf` covers every host under .cf; an IP address covers only itself),
as Mastodon's `DomainBlock.rule_for` does: of a list's entries covering a host, the most specific
one decides, so a `noop` entry for a subdomain exempts it. An entry known only by its SHA-256
digest (an obfuscated domain) matches the hosts whose name has that digest. Pod entries never
match local accounts; `noop` entries flag nobody (on an allowlist, every entry allows). Each list
applies only its `kinds` and, when it names some, its `labels`; `lock_labels` lock on a review
list. The allowlist (policy `allow`) wins over every other list, and an account needs entries in
`list_sync.threshold` distinct lists.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from podmod import actions, notify, pod_db
from podmod.config import NEW_MATCHES_FLOOR, Config
from podmod.db import pod_connection
from podmod.errors import PodmodError
from podmod.kinds import ascii_account, ascii_host
from podmod.lists.parse import EXACT_HOST
from podmod.lists.versions import copy_text, share_text
from podmod.store import (
    INGEST_LOCK,
    record_audit,
    resolve_cases_without_pending,
    set_watermark,
    watermark,
)

log = logging.getLogger("podmod.lists")

PEOPLE_WATERMARK = "people"

_IPV4 = re.compile(r"[0-9]+(?:\.[0-9]+){3}")  # a host that is an IP v4 address

# Entries of a list that apply: its kind switched on, and one of its labels when it names some.
APPLIES = "e.kind = ANY (l.kinds) AND (cardinality(l.labels) = 0 OR e.labels && l.labels)"
# A review list's entries with one of its lock_labels lock like a lock list's.
POLICY = "CASE WHEN l.policy = 'review' AND e.labels && l.lock_labels THEN 'lock' ELSE l.policy END"

KINDS_IN_FORCE_SQL = f"""
SELECT EXISTS (SELECT 1 FROM podmod.list_entries e
               JOIN podmod.lists l ON l.id = e.list_id AND l.policy <> 'ignore'
               WHERE e.kind = 'account' AND e.removed_in IS NULL AND {APPLIES}) AS account,
       EXISTS (SELECT 1 FROM podmod.list_entries e
               JOIN podmod.lists l ON l.id = e.list_id AND l.policy <> 'ignore'
               WHERE e.kind = 'pod' AND e.removed_in IS NULL AND {APPLIES}) AS pod,
       EXISTS (SELECT 1 FROM podmod.list_entries e
               WHERE e.published <> '' AND e.removed_in IS NULL) AS digests,
       EXISTS (SELECT 1 FROM podmod.list_entries e
               WHERE e.value >= %(exact)s AND e.value < %(after)s AND e.kind = 'pod'
                 AND e.removed_in IS NULL) AS exact
"""
# (the entries for one host alone: the values from EXACT_HOST up to the character after it, in the
# values' byte order)
IN_FORCE_PARAMS = {"exact": EXACT_HOST, "after": chr(ord(EXACT_HOST) + 1)}


def host_names(host: str) -> list[tuple[str, int]]:
    """Every name a remote host answers to, as podmod.host_names() gives them, each with its depth
    (1: the host itself): the host and its parent domains down to its top-level domain (a list
    may block a whole one, `cf`), each with and without the host's port. An IP address answers
    only to itself (`1.2.3.4`, `[2001:db8::2]`), with and without its port. Made here for the
    pod's hosts at once: a tenth of the time the same expression takes in SQL, where it is an
    array and a series for every host (0.45 s at 33,000 hosts)."""
    if host.startswith("[") and "]" in host:
        end = host.index("]") + 1
        name, after = host[:end], host[end:].split(":")
    else:
        after = host.split(":")
        name = after[0]
    port = after[1] if len(after) > 1 else ""
    if not name.isascii():
        name = ascii_host(name)
    labels = [name] if name.startswith("[") or _IPV4.fullmatch(name) else name.split(".")
    names = []
    for depth in range(1, len(labels) + 1):
        name = ".".join(labels[depth - 1 :])
        if port:
            names.append((f"{name}:{port}", depth))
        names.append((name, depth))
    return names


# How the hosts are named for matching (podmod.bench.lists measures exact-host matching with its
# own).
names_of = host_names


def _name_hosts(state: psycopg.Connection, hosts: Iterable[str]) -> int:
    """Fill `host_names` (host, name, depth) with every name of these hosts; how many."""
    state.execute(
        "CREATE TEMP TABLE host_names (host text, name text, depth integer) ON COMMIT DROP"
    )
    rows = [
        f"{spelled}\t{copy_text(name)}\t{depth}\n"
        for host in hosts
        for spelled in (copy_text(host),)
        for name, depth in names_of(host)
    ]
    with state.cursor().copy("COPY host_names (host, name, depth) FROM STDIN") as copy:
        copy.write("".join(rows))
    return len(rows)


# When an entry for one host alone is in force (EXACT_HOST), each host also answers to its own
# names (with and without its port) written so.
EXACT_NAMES_SQL = """
INSERT INTO host_names SELECT host, %(exact)s || name, depth FROM host_names WHERE depth = 1
"""
# When an entry known only by its digest is in force, the hosts also answer to the SHA-256 digest
# of each of their portless names.
DIGEST_NAMES_SQL = """
INSERT INTO host_names
SELECT host, 'sha256:' || encode(sha256(convert_to(name, 'UTF8')), 'hex'), depth
FROM host_names WHERE strpos(name, ':') = 0 AND left(name, 1) <> %(exact)s
"""

# Per list and host, the most specific pod entry that covers it (a longer name first; with its
# port before without); then the noop ones, which limit nothing, are dropped (but an allowlist's:
# FediBlockHole writes its allowlists' rows as noop, and only their domain means anything). The
# entries naming a host are found first, on their own (`named`): joined with the lists at once, the
# planner guesses the lists' filters leave a few hundred of a million entries and hashes the
# entries, not the names (0.53 s instead of 0.28 s at a million entries).
_HOST_MATCHES = f"""
CREATE TEMP TABLE host_matches ON COMMIT DROP AS
WITH named AS MATERIALIZED ({{named}})
SELECT DISTINCT ON (e.list_id, e.host)
       e.list_id, {POLICY} AS policy, e.kind, e.value, e.label, e.severity, e.added_in, e.host
FROM named e
JOIN podmod.lists l ON l.id = e.list_id AND l.policy <> 'ignore'
WHERE {APPLIES}
ORDER BY e.list_id, e.host, e.depth, length(e.name) DESC;

DELETE FROM host_matches WHERE severity = 'noop' AND policy <> 'allow'
"""
# What `named` holds of each entry naming a host (both ways of finding them give the same).
_ENTRY = "e.list_id, e.kind, e.value, e.label, e.severity, e.labels, e.added_in"
# The entries naming a host, by a hash join: every entry is read once.
NAMED_BY_JOIN = f"""
    SELECT {_ENTRY}, hn.host, hn.depth, hn.name
    FROM podmod.list_entries e
    JOIN host_names hn ON hn.name = e.value
    WHERE e.removed_in IS NULL AND e.kind = 'pod'"""
# The same, each name looked up in list_entries_active (OFFSET 0 keeps the planner from turning it
# into the join), for names far fewer than the entries. The planner never chooses it on its own,
# pricing each lookup as reads from disk: 33,333 hosts' 68,000 names among 900,000 entries are
# looked up in 0.10 s, joined in 0.25-0.40 s.
NAMED_BY_LOOKUP = f"""
    SELECT {_ENTRY}, hn.host, hn.depth, hn.name
    FROM host_names hn
    CROSS JOIN LATERAL (
        SELECT {_ENTRY} FROM podmod.list_entries e
        WHERE e.value = hn.name AND e.kind = 'pod' AND e.removed_in IS NULL OFFSET 0) e"""
HOST_MATCHES_SQL = _HOST_MATCHES.format(named=NAMED_BY_JOIN)
HOST_LOOKUP_SQL = _HOST_MATCHES.format(named=NAMED_BY_LOOKUP)
# A lookup costs about what reading five entries does (1.5 us and 0.3 us).
LOOKUP_COST = 5
ENTRY_ROWS_SQL = (
    "SELECT greatest(reltuples, 0)::bigint AS rows FROM pg_class"
    " WHERE oid = 'podmod.list_entries'::regclass"
)

# The account entries naming people (`pod_people`, by their handle as the pod writes it, or
# `account_names`, by the names of those whose host is internationalised: `bücher.example` named
# as entries name it, `xn--bcher-kva.example`).
_ACCOUNT_MATCHES = f"""
SELECT e.list_id, {POLICY} AS policy, e.kind, e.value, e.label, e.severity, e.added_in,
       pp.person_id, pp.account, pp.local
FROM podmod.list_entries e
JOIN podmod.lists l ON l.id = e.list_id AND l.policy <> 'ignore'
JOIN {{people}} pp ON pp.{{name}} = e.value
WHERE e.removed_in IS NULL AND e.kind = 'account' AND {APPLIES}
  AND (e.severity <> 'noop' OR l.policy = 'allow')"""
_MATCH = """
CREATE TEMP TABLE matched ON COMMIT DROP AS
{accounts}
UNION ALL
SELECT m.list_id, m.policy, m.kind, m.value, m.label, m.severity, m.added_in,
       pp.person_id, pp.account, pp.local
FROM host_matches m
JOIN pod_people pp ON pp.host = m.host AND NOT pp.local;

-- The allowlist overrides every other list.
DELETE FROM matched WHERE person_id IN (SELECT person_id FROM matched WHERE policy = 'allow');

-- A match needs entries in at least `threshold` distinct lists.
DELETE FROM matched WHERE person_id IN (
    SELECT person_id FROM matched GROUP BY person_id
    HAVING count(DISTINCT list_id) < %(threshold)s);

ANALYZE matched
"""
MATCH_SQL = _MATCH.format(accounts=_ACCOUNT_MATCHES.format(people="pod_people", name="account"))
MATCH_NAMED_SQL = _MATCH.format(
    accounts=_ACCOUNT_MATCHES.format(people="pod_people", name="account")
    + "\nUNION ALL"
    + _ACCOUNT_MATCHES.format(people="account_names", name="name")
)

# The active list signals no longer matched are told apart by EXCEPT, which hashes or sorts both
# sides whatever the planner believes of them: written as NOT EXISTS, a signals table grown since
# it was last analysed (a first sync's 8,875 signals, the next version's sync minutes later) was
# guessed at one row and anti-joined by a nested loop over `matched`: 6 s, and quadratic in the
# matches. Each signal is then found by signals_one_active_list_match.
RETRACT_SQL = """
WITH gone AS MATERIALIZED (
    SELECT list_id, entry_kind, entry_value, person_id FROM podmod.signals
    WHERE kind = 'list' AND retracted_at IS NULL
    EXCEPT
    SELECT list_id, kind, value, person_id FROM matched)
UPDATE podmod.signals s
SET retracted_at = now(),
    details = s.details || jsonb_build_object(
        'retracted_because',
        CASE WHEN NOT podmod.entry_listed(s.list_id, s.entry_kind, s.entry_value)
             THEN 'removed from the list'
             ELSE 'no longer a match (allowlist, threshold, severity, labels, kinds or policy)'
        END,
        'retracted_in_version', (SELECT current_version FROM podmod.lists WHERE id = s.list_id))
FROM gone g
WHERE s.kind = 'list' AND s.retracted_at IS NULL AND s.list_id = g.list_id
  AND s.entry_kind = g.entry_kind AND s.entry_value = g.entry_value AND s.person_id = g.person_id
RETURNING s.case_id, s.list_id
"""

# A match that stays while its entry changed (a new severity, label or policy): the signal says so.
REFRESH_SQL = """
UPDATE podmod.signals s
SET details = s.details || jsonb_build_object('version', m.added_in, 'label', m.label,
                                              'severity', m.severity, 'policy', m.policy)
FROM matched m
WHERE s.kind = 'list' AND s.retracted_at IS NULL AND m.list_id = s.list_id
  AND m.kind = s.entry_kind AND m.value = s.entry_value AND m.person_id = s.person_id
  AND (s.details ->> 'severity' IS DISTINCT FROM m.severity
       OR s.details ->> 'label' IS DISTINCT FROM m.label
       OR s.details ->> 'policy' IS DISTINCT FROM m.policy)
RETURNING s.case_id
"""

ADD_SQL = """
CREATE TEMP TABLE new_matches ON COMMIT DROP AS
SELECT m.* FROM matched m
WHERE NOT EXISTS (
    SELECT 1 FROM podmod.signals s
    WHERE s.kind = 'list' AND s.retracted_at IS NULL AND s.list_id = m.list_id
      AND s.entry_kind = m.kind AND s.entry_value = m.value AND s.person_id = m.person_id);

CREATE TEMP TABLE revived (case_id bigint, list_id integer) ON COMMIT DROP;

-- A person newly matched without an open case gets one, written with the counts and priority its
-- signals below give it (one signal per distinct entry), as refresh_cases() would count them.
CREATE TEMP TABLE opened_cases (id bigint) ON COMMIT DROP;

WITH per_person AS (
    SELECT person_id, min(account) AS account, bool_or(local) AS local, count(*) AS matches,
           count(*) FILTER (WHERE severity = 'silence') AS silenced
    FROM (SELECT DISTINCT ON (list_id, kind, value, person_id) * FROM new_matches) n
    GROUP BY person_id
), opened AS (
    INSERT INTO podmod.cases (subject, person_id, account, local, list_match_count,
                              first_signal_at, last_signal_at, priority)
    SELECT 'person:' || person_id, person_id, account, local, matches, now(), now(),
           podmod.case_priority(0, 0, matches, silenced, 0, 0, local)
    FROM per_person
    ORDER BY person_id  -- (the indexes grow at their end, mostly)
    ON CONFLICT (subject) WHERE status = 'open' DO NOTHING
    RETURNING id
)
INSERT INTO opened_cases SELECT id FROM opened;

ANALYZE opened_cases;

-- The signals; the open cases they joined that were there before (refreshed by the caller).
WITH added AS (
    INSERT INTO podmod.signals (case_id, kind, person_id, list_id, entry_kind, entry_value,
                                details, occurred_at)
    SELECT c.id, 'list', n.person_id, n.list_id, n.kind, n.value,
           jsonb_build_object('list', l.name, 'version', n.added_in,
                              -- (an entry known by its digest named with its list's text)
                              'entry', CASE WHEN left(n.value, 7) = 'sha256:'
                                            THEN podmod.list_entry_text(n.list_id, n.kind, n.value)
                                            ELSE podmod.entry_text(n.kind, n.value) END,
                              'label', n.label,
                              'severity', n.severity, 'policy', n.policy),
           now()
    FROM new_matches n
    JOIN podmod.lists l ON l.id = n.list_id
    JOIN podmod.cases c ON c.subject = 'person:' || n.person_id AND c.status = 'open'
    ORDER BY c.id
    ON CONFLICT DO NOTHING
    RETURNING case_id, list_id
)
SELECT coalesce(array_agg(DISTINCT a.case_id) FILTER (WHERE o.id IS NULL), '{}')
       || (SELECT coalesce(array_agg(DISTINCT case_id), '{}') FROM revived) AS joined,
       (SELECT coalesce(jsonb_object_agg(list_id, n), '{}')
        FROM (SELECT list_id, count(*) AS n
              FROM (SELECT list_id FROM added UNION ALL SELECT list_id FROM revived) both_kinds
              GROUP BY list_id) per_list) AS by_list
FROM added a
LEFT JOIN opened_cases o ON o.id = a.case_id
"""


# Whether any case a moderator dismissed holds a list match since retracted: only then can a new
# match be one put back (REVIVE_SQL), and only then is that looked for (a first sync of a
# million new matches pays nothing for it).
DISMISSED_RETRACTED_SQL = """
SELECT EXISTS (
    SELECT 1 FROM podmod.cases c
    WHERE c.status = 'dismissed' AND EXISTS (
        SELECT 1 FROM podmod.signals s
        WHERE s.case_id = c.id AND s.kind = 'list' AND s.retracted_at IS NOT NULL)) AS found
"""

REVIVE_SQL = """
-- An entry taken off and put back (a publisher's flip) that names a person whose case for it a
-- moderator dismissed: its latest signal is active again in that dismissed case, not a new case
-- asking the same question again.
WITH latest AS (
    SELECT DISTINCT ON (s.list_id, s.entry_kind, s.entry_value, s.person_id)
           s.id, s.case_id, s.retracted_at
    FROM new_matches n
    JOIN podmod.signals s ON s.kind = 'list' AND s.person_id = n.person_id
         AND s.list_id = n.list_id AND s.entry_kind = n.kind AND s.entry_value = n.value
    ORDER BY s.list_id, s.entry_kind, s.entry_value, s.person_id, s.id DESC
), again AS (
    UPDATE podmod.signals s
    SET retracted_at = NULL,
        details = (s.details - 'retracted_because' - 'retracted_in_version')
                  || jsonb_build_object('active_again_at', now())
    FROM latest l JOIN podmod.cases c ON c.id = l.case_id AND c.status = 'dismissed'
    WHERE s.id = l.id AND l.retracted_at IS NOT NULL
    RETURNING s.case_id, s.list_id, s.entry_kind, s.entry_value, s.person_id
), gone AS (
    DELETE FROM new_matches n USING again a
    WHERE n.list_id = a.list_id AND n.kind = a.entry_kind AND n.value = a.entry_value
      AND n.person_id = a.person_id
)
INSERT INTO revived SELECT case_id, list_id FROM again
"""


# Matches added at once after which the cases and signals are analysed in the sync's transaction.
ANALYZE_AFTER = 1_000

# The matching's statements (MATCH_SQL, ADD_SQL) are costed as large, and a server with JIT
# (Debian's and Ubuntu's packages) compiles them first: 4 s of a sync opening 300,000 cases, where
# the work itself takes 1.3 s. match_people() turns it off for the rest of the caller's transaction.
NO_JIT_SQL = "SELECT set_config('jit', 'off', true)"


@dataclass
class RemoteHosts:
    """The hosts of the pod's remote people with id up to `top`, read ahead (prefetch()) while
    the sync stores a list, as pod_db.remote_hosts() gives them."""

    top: int
    written: list[tuple[str, str]]


def prefetch(pod: psycopg.Connection) -> RemoteHosts:
    """Read the pod's remote hosts ahead of match_people(), for a sync to do on another thread
    while it stores a domain list (the pod's server then works beside podmod's, 0.6 s at a million
    people). match_people() reads the hosts of the people who came since."""
    top = pod_db.max_person_id(pod)
    return RemoteHosts(top, pod_db.remote_hosts(pod, above=0, up_to=top))


@dataclass
class ApplyResult:
    people_scanned: int = 0
    cases_resolved: int = 0
    locked: list[str] = field(default_factory=list)
    # matches added and retracted, per list id: a sync of one list tells its own from those other
    # lists gained in the same matching (people who came since the last one)
    added_by_list: Counter[int] = field(default_factory=Counter)
    retracted_by_list: Counter[int] = field(default_factory=Counter)

    @property
    def added(self) -> int:
        return self.added_by_list.total()

    @property
    def retracted(self) -> int:
        return self.retracted_by_list.total()


def _execute_all(state: psycopg.Connection, script: str, params: dict | None = None) -> None:
    for statement in script.split(";\n\n"):
        state.execute(statement, params)


def _load_people(
    pod: psycopg.Connection,
    state: psycopg.Connection,
    *,
    above: int,
    up_to: int,
    accounts: bool,
    pods: bool,
    digests: bool,
    exact: bool,
    ahead: RemoteHosts | None,
) -> tuple[int, bool]:
    """Fill `pod_people` (and, for pod entries, `host_matches`) with the people of the pod who may
    match: everyone in the id range when account entries apply; otherwise only the remote people
    on hosts some pod entry covers (the pod's distinct hosts are read first, or taken from
    `ahead`, then those people are streamed). With it, whether `account_names` holds the other
    names of some (_name_accounts)."""
    state.execute(
        "CREATE TEMP TABLE pod_people (person_id integer, account text, host text,"
        " local boolean) ON COMMIT DROP"
    )
    copy_people = "COPY pod_people (person_id, account, host, local) FROM STDIN"
    people = state.cursor()  # (its rowcount: the people copied)
    named = False
    hosts: Iterable[str] = ()
    written: list[tuple[str, str]] = []
    if accounts:
        with people.copy(copy_people) as target:
            pod_db.copy_people(pod, target, above=above, up_to=up_to)
        hosts = [
            row["host"]
            for row in state.execute("SELECT DISTINCT host FROM pod_people WHERE NOT local")
        ]
        named = _name_accounts(state, hosts)
    elif pods:
        if ahead is not None and above == 0:
            written = ahead.written
            if up_to > ahead.top:  # (people who came since it was read)
                written = written + pod_db.remote_hosts(pod, above=ahead.top, up_to=up_to)
        else:
            written = pod_db.remote_hosts(pod, above=above, up_to=up_to)
        hosts = {host for _, host in written}
    names = _name_hosts(state, hosts)
    if exact:
        names += state.execute(EXACT_NAMES_SQL, IN_FORCE_PARAMS).rowcount
    if digests:
        names += state.execute(DIGEST_NAMES_SQL, IN_FORCE_PARAMS).rowcount
    entries = state.execute(ENTRY_ROWS_SQL).fetchone()["rows"]
    if names * LOOKUP_COST < entries:
        _execute_all(state, HOST_LOOKUP_SQL)
    else:
        state.execute("ANALYZE host_names")
        _execute_all(state, HOST_MATCHES_SQL)
    if pods and not accounts:
        matched = {row["host"] for row in state.execute("SELECT DISTINCT host FROM host_matches")}
        hosts = [spelling for spelling, host in written if host in matched]
        if hosts:
            with people.copy(copy_people) as target:
                pod_db.copy_people(pod, target, above=above, up_to=up_to, remote_hosts=hosts)
    pod.rollback()
    state.execute("ANALYZE pod_people")
    state.execute("ANALYZE host_matches")
    return max(people.rowcount, 0), named


def _name_accounts(state: psycopg.Connection, remote: list[str]) -> bool:
    """Fill `account_names` (person_id, account, local, name) with the names account entries give
    the people whose host is internationalised (remote: `remote`, the remote hosts; local: the
    pod's own, read from one local person); whether any. Hosts are ASCII on nearly every pod:
    then nothing is read again."""
    own = state.execute("SELECT host FROM pod_people WHERE local LIMIT 1").fetchone()
    wide = [host for host in [*remote, *([own["host"]] if own else [])] if not host.isascii()]
    if not wide:
        return False
    rows = state.execute(
        "SELECT person_id, account, local FROM pod_people WHERE host = ANY(%s)", (wide,)
    ).fetchall()
    state.execute(
        "CREATE TEMP TABLE account_names (person_id integer, account text, local boolean,"
        " name text) ON COMMIT DROP"
    )
    with state.cursor().copy(
        "COPY account_names (person_id, account, local, name) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(
                (row["person_id"], row["account"], row["local"], ascii_account(row["account"]))
            )
    return bool(rows)


def match_people(
    config: Config,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    *,
    full: bool,
    ahead: RemoteHosts | None = None,
) -> ApplyResult:
    """Match the lists in force against the pod's people, inside the caller's transaction.

    full=True looks at every account and retracts what no longer matches (after a new version);
    full=False looks only at accounts that appeared since the last pass (the reader). `ahead`:
    the pod's remote hosts read ahead (prefetch()).
    """
    result = ApplyResult()
    state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
    state.execute(NO_JIT_SQL)
    top = pod_db.max_person_id(pod)
    marked = watermark(state, PEOPLE_WATERMARK)
    above = 0 if full or marked is None else marked
    in_force = state.execute(KINDS_IN_FORCE_SQL, IN_FORCE_PARAMS).fetchone()
    if above >= top or not (full or in_force["account"] or in_force["pod"]):
        set_watermark(state, PEOPLE_WATERMARK, top)  # nothing new, or nothing to match against
        return result
    result.people_scanned, named = _load_people(
        pod,
        state,
        above=above,
        up_to=top,
        accounts=in_force["account"],
        pods=in_force["pod"],
        digests=in_force["digests"],
        exact=in_force["exact"],
        ahead=ahead,
    )
    _execute_all(
        state, MATCH_NAMED_SQL if named else MATCH_SQL, {"threshold": config["list_sync.threshold"]}
    )
    touched: set[int] = set()
    if full:
        retracted = state.execute(RETRACT_SQL).fetchall()
        result.retracted_by_list = Counter(row["list_id"] for row in retracted)
        touched |= {row["case_id"] for row in retracted}
        touched |= {row["case_id"] for row in state.execute(REFRESH_SQL).fetchall()}
    new_matches, revived, *prepare, insert = ADD_SQL.split(";\n\n")
    state.execute(new_matches)
    state.execute(revived)
    if state.execute(DISMISSED_RETRACTED_SQL).fetchone()["found"]:
        state.execute(REVIVE_SQL)
    state.execute(";\n\n".join(prepare))
    added = state.execute(insert).fetchone()
    result.added_by_list = Counter({int(key): n for key, n in added["by_list"].items()})
    touched.update(added["joined"])
    if result.added >= ANALYZE_AFTER:
        # As after any bulk load: the statements after these and the next sync plan on the tables'
        # real size, not on what they held when autovacuum last analysed them.
        state.execute("ANALYZE podmod.signals")
        state.execute("ANALYZE podmod.cases")
    if touched:
        ids = sorted(touched)
        state.execute("SELECT podmod.refresh_cases(%s)", (ids,))
        result.cases_resolved = resolve_cases_without_pending(
            state,
            ids,
            resolution="retracted",
            actor="podmod",
            source="lists",
            reason="its list matches were retracted and no report is pending",
        )
    set_watermark(state, PEOPLE_WATERMARK, top)
    return result


# The people one list's new matches name (match_people() left them in new_matches), and the entries
# that name most of them.
NEW_MATCHES_SQL = """
SELECT count(DISTINCT person_id) AS people FROM new_matches WHERE list_id = %(list)s
"""
BROADEST_SQL = """
SELECT podmod.list_entry_text(%(list)s, kind, value) AS entry,
       count(DISTINCT person_id) AS people
FROM new_matches WHERE list_id = %(list)s
GROUP BY kind, value ORDER BY people DESC, kind, value LIMIT 3
"""


@dataclass
class Breadth:
    """How many people a list newly matches, of those the pod knows, and the entries naming most."""

    people: int
    known: int
    broadest: list[tuple[str, int]]

    def text(self) -> str:
        """ "it newly matches 4,100 people, 41% of the 10,000 this pod knows; most by
        pod:example (4,000), …" """
        share = self.people / self.known if self.known else 1.0
        most = ", ".join(f"{entry} ({people:,})" for entry, people in self.broadest)
        return (
            f"it newly matches {self.people:,} people, {share_text(share)} of the {self.known:,}"
            f" this pod knows; most by {most}"
        )


def too_broad(
    pod: psycopg.Connection,
    state: psycopg.Connection,
    matched: ApplyResult,
    list_id: int,
    share: float,
) -> Breadth | None:
    """After match_people() (inside its transaction, `matched` its result): how broadly the list's
    new matches reach, when they name more than `share` of the people the pod knows and more than
    NEW_MATCHES_FLOOR of them (a list whose entry names a whole top-level domain, `com`, or one of
    the largest pods); else None. Costs one count of the pod's people, and only past the floor."""
    if matched.added <= NEW_MATCHES_FLOOR:  # (a signal per new match: as many as people or more)
        return None
    params = {"list": list_id}
    people = state.execute(NEW_MATCHES_SQL, params).fetchone()["people"]
    if people <= NEW_MATCHES_FLOOR:
        return None
    known = pod_db.people_count(pod)
    pod.rollback()
    if people <= share * known:
        return None
    broadest = [(row["entry"], row["people"]) for row in state.execute(BROADEST_SQL, params)]
    return Breadth(people, known, broadest)


# A match locks when its list's policy is lock, or its entry has one of a review list's lock_labels.
LOCK_CANDIDATES_SQL = """
SELECT DISTINCT ON (s.person_id) s.person_id, s.case_id, c.status = 'open' AS case_open,
       s.created_at, l.name AS list,
       s.details ->> 'version' AS version, s.details ->> 'entry' AS entry, e.labels
FROM podmod.signals s
JOIN podmod.lists l ON l.id = s.list_id AND l.policy IN ('lock', 'review')
JOIN podmod.list_entries e ON e.list_id = s.list_id AND e.kind = s.entry_kind
     AND e.value = s.entry_value AND e.removed_in IS NULL
JOIN podmod.cases c ON c.id = s.case_id AND c.local
WHERE s.kind = 'list' AND s.retracted_at IS NULL
  AND (l.policy = 'lock' OR e.labels && l.lock_labels)
  -- each match locks at most once, and no list locks an account a person has unlocked, ever:
  -- an entry taken off and put back (a new match) leaves that decision to the moderators too
  AND NOT EXISTS (
      SELECT 1 FROM podmod.decisions d
      WHERE d.person_id = s.person_id
        AND (d.action = 'unlock'
             -- (a match active again in a case a moderator dismissed: that decision stands)
             OR (d.action = 'dismiss' AND d.case_id = s.case_id)
             OR (d.action IN ('lock', 'close', 'lock_refused') AND d.source = 'list:' || l.name
                 AND d.created_at >= s.created_at)))
ORDER BY s.person_id, s.id
"""


@dataclass
class LockPlan:
    """What the lock policies owe, per list: the accounts a lock would change (local, not locked
    already, neither admin nor moderator) and those it would refuse (admins, moderators)."""

    candidates: list[dict] = field(default_factory=list)  # (those still on the pod)
    # per list, the candidates a lock would change, each with its account's `handle`
    waiting: dict[str, list[dict]] = field(default_factory=dict)
    refused: dict[str, list[str]] = field(default_factory=dict)  # handles, per list

    def held(self, config: Config, confirmed: str | None = None) -> dict[str, int]:
        """The lists whose lock policy would lock more accounts at once than
        list_sync.max_locks (all but `confirmed`), with how many: they lock none on their own."""
        cap = config["list_sync.max_locks"]
        return {
            name: len(waiting)
            for name, waiting in self.waiting.items()
            if len(waiting) > cap and name != confirmed
        }

    def handles(self, name: str) -> list[str]:
        """The accounts a list's lock policy would lock, sorted."""
        return sorted(candidate["handle"] for candidate in self.waiting.get(name, []))

    def seen(self, name: str) -> str:
        """What a podmin who confirms a list's held locks has seen (the accounts they would lock),
        as a short token: confirming with it locks nothing if they have changed since."""
        people = sorted(candidate["person_id"] for candidate in self.waiting.get(name, []))
        return hashlib.sha256(f"{name}\n{people}".encode()).hexdigest()[:32]


def lock_plan(pod: psycopg.Connection, state: psycopg.Connection) -> LockPlan:
    """What the lock policies owe now (LOCK_CANDIDATES_SQL), the accounts looked up on the pod
    in one query; nothing is locked."""
    plan = LockPlan()
    candidates = state.execute(LOCK_CANDIDATES_SQL).fetchall()
    accounts = actions.find_accounts(pod, [candidate["person_id"] for candidate in candidates])
    for candidate in candidates:
        account = accounts.get(candidate["person_id"])
        if account is None:
            continue  # (gone from the pod since it was matched: nobody to lock)
        plan.candidates.append(candidate)
        if account.staff:
            plan.refused.setdefault(candidate["list"], []).append(account.handle)
        elif account.local and not account.locked:
            plan.waiting.setdefault(candidate["list"], []).append(
                {**candidate, "handle": account.handle}
            )
    pod.rollback()
    return plan


@dataclass
class Locks:
    locked: list[tuple[str, str]] = field(default_factory=list)  # (list, handle) locked now
    held: dict[str, int] = field(default_factory=dict)  # list: accounts waiting (over the cap)
    newly_held: set[str] = field(default_factory=set)  # lists of those whose hold is told now


class LocksChanged(PodmodError):
    """The accounts a podmin confirmed locking are no longer those the list would lock."""


def carry_out_lock_policies(
    config: Config,
    state: psycopg.Connection,
    *,
    confirmed: str | None = None,
    by: str = "",
    seen: str | None = None,
) -> Locks:
    """Lock local accounts matched by a `lock` list, through the action path; never an admin or a
    moderator. An open case of the account is closed as locked with its reports marked reviewed
    (lock and close: the list's policy decided it); a closed one is left closed. A list whose
    policy would lock more accounts at once than list_sync.max_locks locks none of them: they
    stay open cases, and the list waits (audited and told once per version and count) until a
    podmin confirms (`confirmed`: that list's name; `by`: who, as the locks record; `seen`: the
    LockPlan.seen() of what they were shown, when they were shown the accounts: LocksChanged, and
    nothing done, if those have changed since)."""
    with pod_connection(config) as pod:
        plan = lock_plan(pod, state)
    state.commit()
    if confirmed is not None and seen is not None and plan.seen(confirmed) != seen:
        now = len(plan.waiting.get(confirmed, []))
        raise LocksChanged(
            f"The accounts list {confirmed} would lock changed since they were shown (it would "
            f"lock {now} now): nothing was locked; look at them again, then confirm."
        )
    held = plan.held(config, confirmed)
    newly_held = {name for name, count in held.items() if _hold_locks(config, state, name, count)}
    locked = []
    for candidate in plan.candidates:
        if candidate["list"] in held:
            continue
        details = {
            "list": candidate["list"],
            "version": candidate["version"],
            "entry": candidate["entry"],
            "labels": candidate["labels"],
        }
        reason = (
            f"matched {candidate['entry']} in list {candidate['list']} "
            f"(version {candidate['version']}) whose policy is lock"
        )
        if confirmed == candidate["list"] and by:
            details["confirmed_by"] = by
            reason += f"; confirmed by {by}"
        arguments = {
            "actor": f"list:{candidate['list']}",
            "source": f"list:{candidate['list']}",
            "case_id": candidate["case_id"],
            "reason": reason,
            "details": details,
            "confirm_staff": False,
        }
        try:
            if candidate["case_open"]:
                result = actions.lock_and_close(config, **arguments)
            else:
                result = actions.lock_account(config, person_id=candidate["person_id"], **arguments)
        except actions.ActionRefused as refusal:
            # An admin, a moderator: never locked by a list. Recorded once, visibly.
            if isinstance(refusal, actions.ConfirmationNeeded):
                # (its words are for a person at the action path: "repeat it with a
                # confirmation", which a list never gives)
                refusal = actions.ActionRefused(
                    f"{refusal.who} was not locked: no list locks an admin or a moderator; a "
                    "person may, from the account's case"
                )
            log.warning("lock policy of list %s not carried out: %s", candidate["list"], refusal)
            actions.record_refusal(
                config,
                person_id=candidate["person_id"],
                case_id=candidate["case_id"],
                action="lock_refused",
                actor=f"list:{candidate['list']}",
                source=f"list:{candidate['list']}",
                reason=str(refusal),
                details=details,
            )
            continue
        if result.action == "lock" and result.changed:
            locked.append((candidate["list"], result.account))
    return Locks(locked, held, newly_held)


# Advisory lock class (two keys: this and the list name's hash): one telling of a list's held locks
# at a time.
HOLD_LOCK = 0x70686C64  # "phld"


def locks_held_text(config: Config, name: str, count: int) -> str:
    """Why a list's lock policy locked nobody, and what to do: one sentence."""
    return (
        f"{count} accounts match its lock policy, more than list_sync.max_locks "
        f"({config['list_sync.max_locks']}) at once: none was locked, they wait as open cases; "
        f"check them, then lock them all on podmod's lists page or with `podmod lists lock "
        f"{name}` (or one by one in the queue)"
    )


def _hold_locks(config: Config, state: psycopg.Connection, name: str, count: int) -> bool:
    """Record (audit) and tell (list.held) the staff once per list version and count that the
    list's lock policy waits for a podmin: once even when two syncs get here at the same moment
    (the check and the record are one transaction under the list's lock). Whether it was told
    now (a hold new for this version and count)."""
    state.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (HOLD_LOCK, name))
    version = state.execute(
        "SELECT current_version FROM podmod.lists WHERE name = %s", (name,)
    ).fetchone()["current_version"]
    told = state.execute(
        "SELECT EXISTS (SELECT 1 FROM podmod.audit WHERE action = 'list_locks_held'"
        " AND source = %s AND details ->> 'version' = %s AND details ->> 'count' = %s) AS told",
        (f"list:{name}", str(version), str(count)),
    ).fetchone()["told"]
    if not told:
        reason = locks_held_text(config, name, count)
        log.warning("list %s: %s", name, reason)
        record_audit(
            state,
            actor="podmod",
            action="list_locks_held",
            source=f"list:{name}",
            reason=reason,
            details={"list": name, "version": str(version), "count": str(count)},
        )
        facts = {
            "version": version,
            "held_reason": reason,
            "locks_held": count,
            # (what the reason says, for the staff's mail to say in their language)
            "max_locks": config["list_sync.max_locks"],
            "lock_command": f"podmod lists lock {shlex.quote(name)}",
        }
        notify.record(config, state, "list.held", list_name=name, facts=facts)
    state.commit()
    return not told
