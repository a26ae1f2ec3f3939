"""The case page (the account, every signal, its recent content, the decisions) and its actions.

Every action goes through podmod.actions, the path the CLI and list policies use too: the pod row,
the decision and the audit row are written in one transaction there, never here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from podmod import actions, pod_db, store
from podmod.errors import PodmodError
from podmod.lists.apply import lock_plan
from podmod.lists.parse import normalise
from podmod.web.auth import (
    action_details,
    actor,
    lock_roles,
    login_required,
    require_lock_role,
)
from podmod.web.queue import Cursor, QueueFilter, case_facts, queue_page
from podmod.web.services import pod_conn, services, state_conn

bp = Blueprint("cases", __name__)

MAX_SIGNALS = 500
RECENT_ITEMS = 10
MAX_REASON = 2000


def load_case(case_id: int) -> dict[str, Any]:
    if case_id >= 2**63:
        abort(404, f"There is no case {case_id}.")
    case = state_conn().execute("SELECT * FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    if case is None:
        abort(404, f"There is no case {case_id}.")
    return case


def held_locks_of(account: dict[str, Any] | None, signals: list[dict[str, Any]]) -> set[str]:
    """The lists whose lock policy would lock this account but holds its locks back (more than
    list_sync.max_locks at once), for the page to say why the list did not lock it: looked up
    (the lock plan, as the lists pages do) only for a local account not locked yet with an active
    match of a list that may lock (policy lock, or lock_labels)."""
    if account is None or not account["local"] or account["locked_at"] or account["closed"]:
        return set()
    config = services().config
    locking = {s.name for s in config.lists if s.policy == "lock" or s.lock_labels}
    if not any(
        s["kind"] == "list" and s["retracted_at"] is None and s["list_name"] in locking
        for s in signals
    ):
        return set()
    plan = lock_plan(pod_conn(), state_conn())
    return {
        name
        for name in plan.held(config)
        if any(c["person_id"] == account["person_id"] for c in plan.waiting[name])
    }


def pod_list_entries(handle: str) -> dict[str, Any]:
    """What this pod's own list holds for a remote account: {"account": entry or None, "pod":
    entry or None} (the account's own entry, and the entry of its host, if any). The list keeps
    them in their normal form (a host in punycode, lower-case), as adding wrote them: a handle
    `bob@pöd.example` is looked up as `bob@xn--pd-fka.example`."""
    from podmod.config import LOCAL_LIST

    host = handle.partition("@")[2]
    account_value, host_value = _normal("account", handle), _normal("pod", host)
    rows = (
        state_conn()
        .execute(
            "SELECT e.kind, e.value, e.label, e.comment, e.added_in FROM podmod.list_entries e"
            " JOIN podmod.lists l ON l.id = e.list_id AND l.name = %s"
            " WHERE e.removed_in IS NULL AND ((e.kind = 'account' AND e.value = %s)"
            "   OR (e.kind = 'pod' AND e.value = %s))",
            (LOCAL_LIST, account_value, host_value),
        )
        .fetchall()
    )
    found = {row["kind"]: row for row in rows}
    return {"account": found.get("account"), "pod": found.get("pod"), "host": host}


def _normal(kind: str, value: str) -> str:
    """`value` as this pod's list keeps it (podmod.lists.parse.normalise), or as it is when it
    is no valid handle or host (then no entry names it)."""
    try:
        return normalise(kind, value)
    except ValueError:
        return value


@bp.route("/cases/<int:case_id>")
@login_required
def show(case_id: int) -> str:
    page = store.case_page(state_conn(), case_id, MAX_SIGNALS) if case_id < 2**63 else None
    if page is None:
        abort(404, f"There is no case {case_id}.")
    case = page["case"]
    account = posts = comments = None
    if case["person_id"] is not None:
        pod = pod_conn()
        account = pod_db.account_details(pod, case["person_id"])
        if account is not None:
            posts = pod_db.recent_posts(pod, case["person_id"], RECENT_ITEMS)
            comments = pod_db.recent_comments(pod, case["person_id"], RECENT_ITEMS)
    first_report: dict[tuple[str, int], int] = {}  # item -> the first report signal shown of it
    repeats: dict[int, int] = {}  # a later report of the same item -> that first one
    for signal in page["signals"]:
        if signal["kind"] == "report" and signal["item_id"] is not None:
            item = (signal["item_type"], signal["item_id"])
            if item in first_report:
                repeats[signal["id"]] = first_report[item]
            else:
                first_report[item] = signal["id"]
    return render_template(
        "case.html",
        **page,
        facts=case_facts(state_conn(), [case["id"]]).get(case["id"]),
        repeats=repeats,
        reported_posts={item_id for kind, item_id in first_report if kind == "Post"},
        reported_comments={item_id for kind, item_id in first_report if kind == "Comment"},
        account=account,
        posts=posts,
        comments=comments,
        pod_list=pod_list_entries(account["handle"]) if account and not account["local"] else None,
        held_locks=held_locks_of(account, page["signals"]),
        max_locks=services().config["list_sync.max_locks"],
        is_staff_account=bool(account and ({"admin", "moderator"} & set(account["roles"]))),
        is_self=bool(account and account["person_id"] == g.staff.person_id),
        lock_roles_text=" or ".join(sorted(lock_roles())),
    )


def _reason() -> str | None:
    text = request.form.get("reason", "").strip()[:MAX_REASON]
    return text or None


def _done(
    case: dict[str, Any], result: actions.ActionResult, *, may_close: bool = True
) -> Response:
    """Back to the case; or, when this action closed it, on to the next open case in queue order
    (the queue when there is none), with a link back to this one."""
    category = "ok" if result.changed else "info"
    if not may_close:  # a lock, unlock or note leaves the case as it was: no need to ask
        flash(result.message, category)
        return redirect(url_for("cases.show", case_id=case["id"]))
    status = (
        state_conn()
        .execute("SELECT status FROM podmod.cases WHERE id = %s", (case["id"],))
        .fetchone()["status"]
    )
    if case["status"] != "open" or status == "open":
        flash(result.message, category)
        return redirect(url_for("cases.show", case_id=case["id"]))
    flash({"text": result.message, "back_to_case": case["id"]}, category)
    following = queue_page(state_conn(), QueueFilter(), Cursor.of(case), 1, with_total=False)
    if following.rows:
        return redirect(url_for("cases.show", case_id=following.rows[0]["id"]))
    return redirect(url_for("queue.index"))


def _act(
    case: dict[str, Any],
    action: Callable[..., actions.ActionResult],
    *args: Any,
    may_close: bool = True,
    **arguments: Any,
) -> Response:
    """Carry out one action of the case page as the signed-in staff member, through the action
    path: a refusal comes back as a message on the case, a result as `_done` says."""
    try:
        result = action(
            services().config,
            *args,
            actor=actor(),
            source="web",
            details=action_details(),
            **arguments,
        )
    except PodmodError as error:
        return _refused(case["id"], error)
    return _done(case, result, may_close=may_close)


def _refused(case_id: int, error: PodmodError) -> Response:
    if isinstance(error, actions.CaseNotFound):
        abort(404, str(error))
    flash(str(error), "error")
    return redirect(url_for("cases.show", case_id=case_id))


@bp.route("/cases/<int:case_id>/lock", methods=["POST"])
@login_required
def lock(case_id: int) -> Any:
    return _lock(case_id, close=False)


@bp.route("/cases/<int:case_id>/lock-and-close", methods=["POST"])
@login_required
def lock_and_close(case_id: int) -> Any:
    """Lock the account, mark the case's reports reviewed and close it as locked: one decision."""
    return _lock(case_id, close=True)


def _lock(case_id: int, *, close: bool) -> Any:
    require_lock_role()
    case = load_case(case_id)
    if case["person_id"] is None:
        flash(
            "The author of this case is unknown (the item was deleted); nothing to lock.", "error"
        )
        return redirect(url_for("cases.show", case_id=case_id))
    confirmed = request.form.get("confirm") == "yes"
    if not confirmed:
        account = pod_db.account_details(pod_conn(), case["person_id"])
        staff_account = account is not None and bool({"admin", "moderator"} & set(account["roles"]))
        if (
            account is not None
            and account["local"]
            and (staff_account or account["person_id"] == g.staff.person_id)
        ):
            return render_template(
                "lock_confirm.html",
                case=case,
                account=account,
                reason=_reason() or "",
                is_self=account["person_id"] == g.staff.person_id,
                close=close,
            )
    arguments = {
        "reason": _reason(),
        "case_id": case_id,
        "confirm_staff": confirmed,
        "actor_person_id": g.staff.person_id,
    }
    if close:
        return _act(case, actions.lock_and_close, **arguments)
    return _act(
        case, actions.lock_account, may_close=False, person_id=case["person_id"], **arguments
    )


@bp.route("/cases/<int:case_id>/unlock", methods=["POST"])
@login_required
def unlock(case_id: int) -> Response:
    require_lock_role()
    case = load_case(case_id)
    if case["person_id"] is None:
        abort(400, "The author of this case is unknown; nothing to unlock.")
    return _act(
        case,
        actions.unlock_account,
        may_close=False,
        person_id=case["person_id"],
        reason=_reason(),
        case_id=case_id,
    )


def _case_action(case_id: int, action: Callable[..., actions.ActionResult]) -> Response:
    return _act(load_case(case_id), action, case_id=case_id, reason=_reason())


@bp.route("/cases/<int:case_id>/review", methods=["POST"])
@login_required
def review(case_id: int) -> Response:
    return _case_action(case_id, actions.mark_reviewed)


@bp.route("/cases/<int:case_id>/dismiss", methods=["POST"])
@login_required
def dismiss(case_id: int) -> Response:
    return _case_action(case_id, actions.dismiss_case)


@bp.route("/cases/<int:case_id>/reopen", methods=["POST"])
@login_required
def reopen(case_id: int) -> Response:
    return _case_action(case_id, actions.reopen_case)


@bp.route("/cases/<int:case_id>/note", methods=["POST"])
@login_required
def note(case_id: int) -> Response:
    return _act(
        load_case(case_id),
        actions.add_note,
        may_close=False,
        case_id=case_id,
        text=request.form.get("note", "")[:MAX_REASON],
    )


@bp.route("/cases/<int:case_id>/signals/<int:signal_id>/not-a-match", methods=["POST"])
@login_required
def not_a_match(case_id: int, signal_id: int) -> Response:
    """A content match is a false positive: retract it and keep it from coming back."""
    case = load_case(case_id)
    if signal_id >= 2**63:
        abort(404, f"There is no signal {signal_id}.")
    owner = (
        state_conn()
        .execute("SELECT case_id FROM podmod.signals WHERE id = %s", (signal_id,))
        .fetchone()
    )
    if owner is None or owner["case_id"] != case_id:
        abort(404, f"Case {case_id} has no signal {signal_id}.")
    return _act(
        case,
        actions.mark_not_a_match,
        signal_id=signal_id,
        reason=_reason(),
        whole_account=request.form.get("whole_account") == "yes",
    )


def _pod_list_value(case: dict[str, Any]) -> str:
    """The remote account of the case, or its pod, as the form chose: never a value from the form
    itself, so a case page can only flag what it shows."""
    account = (
        pod_db.account_details(pod_conn(), case["person_id"])
        if case["person_id"] is not None
        else None
    )
    if account is None or account["local"]:
        abort(400, "Only a remote account, or its pod, goes on this pod's list from a case.")
    if request.form.get("what") == "pod":
        return account["handle"].partition("@")[2]
    return account["handle"]


@bp.route("/cases/<int:case_id>/pod-list", methods=["POST"])
@login_required
def add_to_pod_list(case_id: int) -> Response:
    """Flag a remote account (or every account of its pod) on this pod's own list."""
    return _pod_list_action(
        case_id, actions.add_to_pod_list, label=request.form.get("label", "")[:200]
    )


@bp.route("/cases/<int:case_id>/pod-list/remove", methods=["POST"])
@login_required
def remove_from_pod_list(case_id: int) -> Response:
    return _pod_list_action(case_id, actions.remove_from_pod_list)


def _pod_list_action(
    case_id: int, action: Callable[..., actions.ActionResult], **extra: Any
) -> Response:
    case = load_case(case_id)
    # (the reason as typed: one over 2,000 characters is refused, as by the CLI, not cut)
    reason = request.form.get("reason")
    return _act(case, action, _pod_list_value(case), reason=reason, case_id=case_id, **extra)
