"""The one action path: locking and unlocking write the pod row, the decision and the audit row
together, refuse what they must, and never double."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from podmod import actions
from tests.helpers import podmod


def locked_at(pod, username: str):
    return pod.conn.execute(
        "SELECT locked_at FROM users WHERE username = %s", (username,)
    ).fetchone()["locked_at"]


def test_lock_from_the_cli_sets_locked_at_and_records_decision_and_audit(config, state, pod):
    pod.person("spammer")

    result = podmod("lock", "spammer@pod.example", "--reason", "placeholder spam")

    assert result.exit_code == 0
    assert result.output.strip() == "spammer@pod.example is now locked."
    assert locked_at(pod, "spammer") is not None
    decision = state.execute(
        "SELECT action, actor, source, reason FROM podmod.decisions"
    ).fetchone()
    assert decision["action"] == "lock" and decision["source"] == "cli"
    assert decision["actor"].startswith("cli:") and decision["reason"] == "placeholder spam"
    audit = state.execute("SELECT action, account FROM podmod.audit").fetchall()
    assert audit == [{"action": "lock", "account": "spammer@pod.example"}]


def test_lock_writes_only_locked_at_in_the_users_row(config, state, pod):
    pod.person("spammer")
    before = pod.conn.execute("SELECT * FROM users WHERE username = 'spammer'").fetchone()
    podmod("lock", "spammer", "--reason", "x")  # a bare local username works too
    after = pod.conn.execute("SELECT * FROM users WHERE username = 'spammer'").fetchone()
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {"locked_at"}


def test_locking_twice_says_already_locked_and_records_one_decision(config, state, pod):
    pod.person("spammer")
    podmod("lock", "spammer@pod.example", "--reason", "x")
    second = podmod("lock", "spammer@pod.example", "--reason", "x", "--json")
    assert json.loads(second.output)["changed"] is False
    assert "already locked" in json.loads(second.output)["message"]
    assert state.execute("SELECT count(*) AS n FROM podmod.decisions").fetchone()["n"] == 1


def test_two_moderators_locking_at_once_give_one_lock_and_one_already_locked(config, state, pod):
    pod.person("spammer")

    def lock(n: int) -> bool:
        return actions.lock_account(
            config, handle="spammer@pod.example", actor=f"mod{n}", source="web", reason="x"
        ).changed

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lock, range(4)))

    assert sorted(results) == [False, False, False, True]
    assert state.execute("SELECT count(*) AS n FROM podmod.decisions").fetchone()["n"] == 1


def test_remote_accounts_cannot_be_locked_from_this_pod(config, state, pod):
    pod.person("remote", "far.example")
    result = podmod("lock", "remote@far.example", "--reason", "x")
    assert result.exit_code == 5
    assert "remote account: only its own pod can lock it" in result.output
    assert "far.example" in result.output
    assert state.execute("SELECT count(*) AS n FROM podmod.audit").fetchone()["n"] == 0


def test_admins_and_moderators_are_locked_only_with_confirmation(config, state, pod):
    pod.person("boss", roles=("admin",))
    refused = podmod("lock", "boss@pod.example", "--reason", "x")
    assert refused.exit_code == 5 and "needs an explicit confirmation" in refused.output
    assert "boss@pod.example, who holds the role admin, needs" in refused.output, refused.output
    assert "--confirm" in refused.output
    assert locked_at(pod, "boss") is None
    confirmed = podmod("lock", "boss@pod.example", "--reason", "x", "--confirm")
    assert confirmed.exit_code == 0
    assert locked_at(pod, "boss") is not None


def test_unlock_clears_locked_at_and_is_audited(config, state, pod):
    pod.person("spammer")
    podmod("lock", "spammer@pod.example", "--reason", "x")
    result = podmod("unlock", "spammer@pod.example", "--reason", "appeal")
    assert result.output.strip() == "spammer@pod.example is now unlocked."
    assert locked_at(pod, "spammer") is None
    actions_logged = [
        r["action"] for r in state.execute("SELECT action FROM podmod.audit ORDER BY id")
    ]
    assert actions_logged == ["lock", "unlock"]


def test_unknown_account_is_a_clear_error(config, state):
    result = podmod("lock", "nobody@pod.example", "--reason", "x")
    assert result.exit_code == 4
    assert "No account 'nobody@pod.example' on this pod" in result.output


def test_lock_is_attached_to_the_accounts_open_case(config, state, pod):
    from tests.helpers import cases_json, intake_all

    reporter = pod.person("reporter")
    author = pod.person("author")
    pod.report(reporter, "Post", pod.post(author))
    intake_all(config)
    [case] = cases_json("open")

    podmod("lock", "author@pod.example", "--reason", "x")

    row = state.execute("SELECT case_id FROM podmod.decisions").fetchone()
    assert row["case_id"] == case["id"]


def test_sql_looking_handles_are_data_not_code(config, state, pod):
    from tests.helpers import cases_json, intake_all

    hostile = "x'); drop table users; --"
    author = pod.person(hostile, "evil.example")
    pod.report(pod.person("reporter"), "Post", pod.post(author, "text"))
    intake_all(config)

    [case] = cases_json("open")
    assert case["account"] == f"{hostile}@evil.example"
    result = podmod("lock", f"{hostile}@pod.example", "--reason", "x")
    assert result.exit_code == 4 and "No account" in result.output
    assert pod.conn.execute("SELECT count(*) AS n FROM users").fetchone()["n"] == 1


# ---------------------------------------------------------------------------------------------
# Lock and close: one action that locks, marks the reports reviewed and resolves the case.


def reported_case(config, pod, author_name: str = "spammer", host: str = "pod.example") -> int:
    from tests.helpers import cases_json, intake_all

    author = pod.person(author_name, host)
    post_id = pod.post(author, "A placeholder post.")
    for n in range(2):
        pod.report(pod.person(f"reporter{n}"), "Post", post_id, "Placeholder: spam")
    intake_all(config)
    [case] = [c for c in cases_json("open") if c["account"] == f"{author_name}@{host}"]
    return case["id"]


def test_lock_and_close_locks_reviews_and_resolves_the_case_as_locked_in_one_decision(
    config, state, pod
):
    from tests.helpers import assert_cases_consistent

    case_id = reported_case(config, pod)

    result = actions.lock_and_close(
        config, case_id=case_id, actor="podmin@pod.example", source="web", reason="spam"
    )

    assert result.changed and result.action == "lock"
    assert result.message == (
        f"spammer@pod.example is now locked and case {case_id} is closed: locked "
        "(2 reports marked reviewed in diaspora*)."
    )
    assert locked_at(pod, "spammer") is not None
    assert pod.conn.execute("SELECT bool_and(reviewed) AS b FROM reports").fetchone()["b"]
    case = state.execute("SELECT * FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    assert (case["status"], case["resolution"]) == ("resolved", "locked")
    assert case["reporter_count"] == 2 and case["pending_report_count"] == 0
    [decision] = state.execute("SELECT * FROM podmod.decisions").fetchall()
    assert (decision["action"], decision["case_id"], decision["reason"]) == (
        "lock",
        case_id,
        "spam",
    )
    assert decision["details"]["outcome"] == "locked" and len(decision["details"]["reports"]) == 2
    audit = [r["action"] for r in state.execute("SELECT action FROM podmod.audit ORDER BY id")]
    assert audit == ["lock"]
    assert_cases_consistent(state)


def test_lock_and_close_refuses_a_remote_account_and_changes_nothing(config, state, pod):
    case_id = reported_case(config, pod, "faraway", "far.example")
    try:
        actions.lock_and_close(config, case_id=case_id, actor="mod", source="web")
    except actions.ActionRefused as refusal:
        message = str(refusal)
    assert message.startswith("faraway@far.example is a remote account: only its own pod can")
    assert not pod.conn.execute("SELECT bool_or(reviewed) AS b FROM reports").fetchone()["b"]
    case = state.execute("SELECT status FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    assert case["status"] == "open"
    assert state.execute("SELECT count(*) AS n FROM podmod.decisions").fetchone()["n"] == 0


def test_two_admins_lock_and_close_at_once_give_one_lock_and_one_decision(config, state, pod):
    case_id = reported_case(config, pod)

    def lock_and_close(n: int) -> actions.ActionResult:
        return actions.lock_and_close(config, case_id=case_id, actor=f"admin{n}", source="web")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lock_and_close, range(4)))

    assert sorted(r.changed for r in results) == [False, False, False, True]
    assert {r.message for r in results if not r.changed} == {
        f"Case {case_id} (spammer@pod.example) was already closed: locked."
    }
    rows = state.execute("SELECT action FROM podmod.decisions").fetchall()
    assert rows == [{"action": "lock"}]


def test_lock_and_close_of_an_account_locked_already_closes_the_case_as_locked(config, state, pod):
    case_id = reported_case(config, pod)
    actions.lock_account(config, handle="spammer", actor="mod", source="cli", reason="x")

    result = actions.lock_and_close(config, case_id=case_id, actor="mod", source="web")

    assert result.changed and result.message.startswith("spammer@pod.example was already locked;")
    case = state.execute("SELECT * FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    assert (case["status"], case["resolution"]) == ("resolved", "locked")
    rows = state.execute("SELECT action FROM podmod.decisions ORDER BY id").fetchall()
    assert [r["action"] for r in rows] == ["lock", "close"]  # one lock, never two
    assert result.action == "close"


def test_lock_then_mark_reviewed_closes_the_case_as_locked_not_as_no_action(config, state, pod):
    case_id = reported_case(config, pod)
    actions.lock_account(config, handle="spammer", actor="mod", source="web", reason="spam")

    result = actions.mark_reviewed(config, case_id=case_id, actor="mod", source="web")

    assert result.message.endswith(f"case {case_id} is closed: locked."), result.message
    case = state.execute("SELECT * FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    assert (case["status"], case["resolution"]) == ("resolved", "locked")


def test_lock_unlock_then_mark_reviewed_is_reviewed_with_no_action(config, state, pod):
    case_id = reported_case(config, pod)
    actions.lock_account(config, handle="spammer", actor="mod", source="web", reason="spam")
    actions.unlock_account(config, handle="spammer", actor="mod", source="web", reason="mistake")

    result = actions.mark_reviewed(config, case_id=case_id, actor="mod", source="web")

    said = result.message
    assert said.endswith(f"case {case_id} is closed: reviewed, no action."), said
    case = state.execute("SELECT * FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    assert (case["status"], case["resolution"]) == ("resolved", "reviewed")


def test_dismissing_a_case_whose_account_was_locked_on_it_records_locked_not_dismissed(
    config, state, pod
):
    case_id = reported_case(config, pod)
    actions.lock_account(config, handle="spammer", actor="mod", source="web", reason="spam")

    result = actions.dismiss_case(config, case_id=case_id, actor="mod", source="web")

    assert result.message == (
        f"Case {case_id} (spammer@pod.example) is closed: locked (its account was locked on it)."
    )
    case = state.execute("SELECT * FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    assert (case["status"], case["resolution"]) == ("resolved", "locked")
    rows = state.execute("SELECT action, details FROM podmod.decisions ORDER BY id").fetchall()
    assert [r["action"] for r in rows] == ["lock", "close"]
    assert rows[-1]["details"]["outcome"] == "locked"


def test_a_lock_then_reports_reviewed_in_diaspora_close_the_case_as_locked(config, state, pod):
    from tests.helpers import intake_all

    case_id = reported_case(config, pod)
    actions.lock_account(config, handle="spammer", actor="mod", source="cli", reason="spam")
    pod.conn.execute("UPDATE reports SET reviewed = true")  # diaspora*'s own report page

    intake_all(config)

    case = state.execute("SELECT * FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    assert (case["status"], case["resolution"]) == ("resolved", "locked")
