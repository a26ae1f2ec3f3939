"""The naive baseline of the list apply figures: the entries in force matched against the pod's
people by a Python loop over people, a query each, storing the same signals podmod's set-based
apply does (podmod.bench.lists checks that). Nothing here runs in production."""

from __future__ import annotations

import hashlib
import json

import psycopg

# Lists: match the entries in force against the pod's people with a Python loop over people.


def host_names(host: str) -> dict[str, tuple[int, int]]:
    """Every name a host answers to, with how specific it is (lower first): itself and its parent
    domains down to its top-level domain, each with its port (if any) and without, and the SHA-256
    digests of the portless names (as specific as the name)."""
    name, _, port = host.partition(":")
    labels = name.split(".")
    names: dict[str, tuple[int, int]] = {}
    for depth in range(len(labels)):
        parent = ".".join(labels[depth:])
        names[parent] = (depth, -len(parent))
        names["sha256:" + hashlib.sha256(parent.encode()).hexdigest()] = (depth, -len(parent))
        if port:
            names[f"{parent}:{port}"] = (depth, -len(parent) - len(port) - 1)
    return names


def apply_by_python_loop(pod: psycopg.Connection, state: psycopg.Connection) -> int:
    """Ask the database about each person in turn (the account's handle, and every name of its
    host: of each list's pod entries the most specific decides, a noop one flags nobody); open a
    case and store a signal for each match, row by row. Returns the signals stored. Runs inside
    the caller's transaction."""
    added = 0
    lists = {
        row[0]: (row[1], row[2])
        for row in state.execute(
            "SELECT id, name, current_version FROM podmod.lists WHERE policy <> 'ignore'"
        )
    }
    with pod.cursor(name="naive_people") as people:
        people.itersize = 2000
        people.execute("SELECT id, lower(diaspora_handle), owner_id IS NOT NULL FROM people")
        for person_id, account, local in people:
            names = {} if local else host_names(account.split("@", 1)[1])
            rows = state.execute(
                "SELECT list_id, kind, value, label, severity FROM podmod.list_entries"
                " WHERE removed_in IS NULL AND ((kind = 'account' AND value = %s)"
                " OR (kind = 'pod' AND value = ANY(%s)))",
                (account, list(names)),
            ).fetchall()
            hits = [row for row in rows if row[1] == "account" and row[4] != "noop"]
            for list_id in {row[0] for row in rows if row[1] == "pod"}:
                covering = [row for row in rows if row[1] == "pod" and row[0] == list_id]
                decides = min(covering, key=lambda row: names[row[2]])
                if decides[4] != "noop":
                    hits.append(decides)
            for list_id, kind, value, label, severity in hits:
                if list_id not in lists:
                    continue
                subject = f"person:{person_id}"
                case = state.execute(
                    "SELECT id FROM podmod.cases WHERE subject = %s AND status = 'open'",
                    (subject,),
                ).fetchone()
                if case is None:
                    case = state.execute(
                        "INSERT INTO podmod.cases (subject, person_id, account, local)"
                        " VALUES (%s, %s, %s, %s) RETURNING id",
                        (subject, person_id, account, local),
                    ).fetchone()
                name, version = lists[list_id]
                state.execute(
                    "INSERT INTO podmod.signals (case_id, kind, person_id, list_id, entry_kind,"
                    " entry_value, details, occurred_at) VALUES (%s, 'list', %s, %s, %s, %s, %s,"
                    " now())",
                    (
                        case[0],
                        person_id,
                        list_id,
                        kind,
                        value,
                        json.dumps(
                            {"list": name, "version": version, "label": label, "severity": severity}
                        ),
                    ),
                )
                state.execute("SELECT podmod.refresh_cases(%s)", ([case[0]],))
                added += 1
    return added


# ---------------------------------------------------------------------------------------------
