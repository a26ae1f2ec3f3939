"""Applying the lists in force to the pod: every entry matched against `people` set-based, matches
turned into list signals on the accounts' cases, stale ones retracted, and `lock` policies carried
out through the one action path.

The pod's people are streamed (COPY) into a temporary table next to podmod's entries, so matching
is a pair of hash joins whatever the sizes, and works when podmod's schema lives in another
database. `account` entries match handles exactly (lower-case); `pod` entries match remote accounts
on that host, any port when the entry names none. The allowlist (policy `allow`) wins over every
other list, and an account needs entries in `list_sync.threshold` distinct lists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg

from podmod import actions, pod_db
from podmod.config import Config
from podmod.store import INGEST_LOCK, resolve_cases_without_pending

log = logging.getLogger("podmod.lists")

PEOPLE_WATERMARK = "people"

MATCH_SQL = """
CREATE TEMP TABLE matched ON COMMIT DROP AS
SELECT e.list_id, l.policy, e.kind, e.value, e.label, e.added_in,
       pp.person_id, pp.account, pp.local
FROM podmod.list_entries e
JOIN podmod.lists l ON l.id = e.list_id AND l.policy <> 'ignore'
JOIN pod_people pp ON pp.account = e.value
WHERE e.removed_in IS NULL AND e.kind = 'account'
UNION ALL
SELECT e.list_id, l.policy, e.kind, e.value, e.label, e.added_in,
       pp.person_id, pp.account, pp.local
FROM podmod.list_entries e
JOIN podmod.lists l ON l.id = e.list_id AND l.policy <> 'ignore'
JOIN pod_people pp ON pp.host_base = e.value AND NOT pp.local
WHERE e.removed_in IS NULL AND e.kind = 'pod' AND strpos(e.value, ':') = 0
UNION ALL
SELECT e.list_id, l.policy, e.kind, e.value, e.label, e.added_in,
       pp.person_id, pp.account, pp.local
FROM podmod.list_entries e
JOIN podmod.lists l ON l.id = e.list_id AND l.policy <> 'ignore'
JOIN pod_people pp ON pp.host = e.value AND NOT pp.local
WHERE e.removed_in IS NULL AND e.kind = 'pod' AND strpos(e.value, ':') > 0;

-- The allowlist overrides every other list.
DELETE FROM matched WHERE person_id IN (SELECT person_id FROM matched WHERE policy = 'allow');

-- A match needs entries in at least `threshold` distinct lists.
DELETE FROM matched WHERE person_id IN (
    SELECT person_id FROM matched GROUP BY person_id
    HAVING count(DISTINCT list_id) < %(threshold)s);

ANALYZE matched
"""

RETRACT_SQL = """
UPDATE podmod.signals s
SET retracted_at = now(),
    details = s.details || jsonb_build_object(
        'retracted_because',
        CASE WHEN NOT EXISTS (
                SELECT 1 FROM podmod.list_entries e
                WHERE e.list_id = s.list_id AND e.kind = s.entry_kind
                  AND e.value = s.entry_value AND e.removed_in IS NULL)
             THEN 'removed from the list'
             ELSE 'no longer a match (allowlist, threshold or policy)' END,
        'retracted_in_version', (SELECT current_version FROM podmod.lists WHERE id = s.list_id))
WHERE s.kind = 'list' AND s.retracted_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM matched m
      WHERE m.list_id = s.list_id AND m.kind = s.entry_kind AND m.value = s.entry_value
        AND m.person_id = s.person_id)
RETURNING s.case_id
"""

ADD_SQL = """
CREATE TEMP TABLE new_matches ON COMMIT DROP AS
SELECT m.* FROM matched m
WHERE NOT EXISTS (
    SELECT 1 FROM podmod.signals s
    WHERE s.kind = 'list' AND s.retracted_at IS NULL AND s.list_id = m.list_id
      AND s.entry_kind = m.kind AND s.entry_value = m.value AND s.person_id = m.person_id);

INSERT INTO podmod.cases (subject, person_id, account, local)
SELECT DISTINCT ON (n.person_id) 'person:' || n.person_id, n.person_id, n.account, n.local
FROM new_matches n
ON CONFLICT (subject) WHERE status = 'open' DO NOTHING;

INSERT INTO podmod.signals (case_id, kind, person_id, list_id, entry_kind, entry_value, details,
                            occurred_at)
SELECT c.id, 'list', n.person_id, n.list_id, n.kind, n.value,
       jsonb_build_object('list', l.name, 'version', n.added_in,
                          'entry', n.kind || ':' || n.value, 'label', n.label,
                          'policy', n.policy),
       now()
FROM new_matches n
JOIN podmod.lists l ON l.id = n.list_id
JOIN podmod.cases c ON c.subject = 'person:' || n.person_id AND c.status = 'open'
ON CONFLICT DO NOTHING
RETURNING case_id
"""


@dataclass
class ApplyResult:
    people_scanned: int = 0
    added: int = 0
    retracted: int = 0
    cases_resolved: int = 0
    locked: list[str] = field(default_factory=list)


def _has_entries(state: psycopg.Connection) -> bool:
    row = state.execute(
        "SELECT EXISTS (SELECT 1 FROM podmod.list_entries e JOIN podmod.lists l"
        " ON l.id = e.list_id WHERE e.removed_in IS NULL AND l.policy <> 'ignore') AS present"
    ).fetchone()
    return bool(row["present"])


def _watermark(state: psycopg.Connection) -> int | None:
    row = state.execute(
        "SELECT value FROM podmod.watermarks WHERE name = %s", (PEOPLE_WATERMARK,)
    ).fetchone()
    return row["value"] if row else None


def _set_watermark(state: psycopg.Connection, value: int) -> None:
    state.execute(
        "INSERT INTO podmod.watermarks (name, value) VALUES (%s, %s) ON CONFLICT (name)"
        " DO UPDATE SET value = greatest(podmod.watermarks.value, excluded.value),"
        " updated_at = now()",
        (PEOPLE_WATERMARK, value),
    )


def match_people(
    config: Config, pod: psycopg.Connection, state: psycopg.Connection, *, full: bool
) -> ApplyResult:
    """Match the lists in force against the pod's people, inside the caller's transaction.

    full=True looks at every account and retracts what no longer matches (after a new version);
    full=False looks only at accounts that appeared since the last pass (the reader).
    """
    result = ApplyResult()
    state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
    top = pod_db.max_person_id(pod)
    watermark = _watermark(state)
    above = 0 if full or watermark is None else watermark
    if not full and not _has_entries(state):
        _set_watermark(state, top)  # nothing to match against: just remember where we are
        return result
    if above >= top:
        _set_watermark(state, top)
        return result
    state.execute(
        "CREATE TEMP TABLE pod_people (person_id integer, account text, host text,"
        " local boolean, host_base text) ON COMMIT DROP"
    )
    with state.cursor().copy(
        "COPY pod_people (person_id, account, host, local) FROM STDIN"
    ) as target:
        pod_db.copy_people(pod, target, above=above, up_to=top)
    pod.rollback()
    result.people_scanned = state.execute(
        "UPDATE pod_people SET host_base = split_part(host, ':', 1)"
    ).rowcount
    state.execute("ANALYZE pod_people")
    for statement in MATCH_SQL.split(";\n\n"):
        state.execute(statement, {"threshold": config["list_sync.threshold"]})
    touched: set[int] = set()
    if full:
        retracted = state.execute(RETRACT_SQL).fetchall()
        result.retracted = len(retracted)
        touched |= {row["case_id"] for row in retracted}
    *prepare, insert = ADD_SQL.split(";\n\n")
    state.execute(";\n\n".join(prepare))
    added = state.execute(insert).fetchall()
    result.added = len(added)
    touched |= {row["case_id"] for row in added}
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
    _set_watermark(state, top)
    return result


LOCK_CANDIDATES_SQL = """
SELECT DISTINCT ON (s.person_id) s.person_id, s.case_id, s.created_at, l.name AS list,
       s.details ->> 'version' AS version, s.details ->> 'entry' AS entry
FROM podmod.signals s
JOIN podmod.lists l ON l.id = s.list_id AND l.policy = 'lock'
JOIN podmod.cases c ON c.id = s.case_id AND c.local
WHERE s.kind = 'list' AND s.retracted_at IS NULL
  -- each match locks at most once, and never again after a person unlocked the account
  AND NOT EXISTS (
      SELECT 1 FROM podmod.decisions d
      WHERE d.person_id = s.person_id AND d.created_at >= s.created_at
        AND (d.action = 'unlock'
             OR (d.action IN ('lock', 'lock_refused') AND d.source = 'list:' || l.name)))
ORDER BY s.person_id, s.id
"""


def carry_out_lock_policies(config: Config, state: psycopg.Connection) -> list[str]:
    """Lock local accounts matched by a `lock` list, through the action path; never an admin or a
    moderator. Returns the handles locked now."""
    candidates = state.execute(LOCK_CANDIDATES_SQL).fetchall()
    state.commit()
    locked = []
    for candidate in candidates:
        details = {
            "list": candidate["list"],
            "version": candidate["version"],
            "entry": candidate["entry"],
        }
        try:
            result = actions.lock_account(
                config,
                person_id=candidate["person_id"],
                actor=f"list:{candidate['list']}",
                source=f"list:{candidate['list']}",
                case_id=candidate["case_id"],
                reason=f"matched {candidate['entry']} in list {candidate['list']} "
                f"(version {candidate['version']}) whose policy is lock",
                details=details,
                confirm_staff=False,
            )
        except actions.ActionRefused as refusal:
            # An admin, a moderator: never locked by a list. Recorded once, visibly.
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
        if result.changed:
            locked.append(result.account)
    return locked
