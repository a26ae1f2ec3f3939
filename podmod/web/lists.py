"""The lists page: each subscription's version in force, how its file was read, entries, matches,
last sync and error, versions held for approval with what they change and an Approve button,
content entries held for matching too many authors with a Confirm button, locks a list's policy
holds back (more than list_sync.max_locks at once) with the page to check and confirm them; and
this pod's own list with its entries, a Remove button for each and a form to add one."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from podmod import actions
from podmod.db import state_connection
from podmod.errors import PodmodError
from podmod.lists import local
from podmod.lists.apply import lock_plan
from podmod.lists.versions import (
    MOVED,
    UNKEPT_CHANGES,
    ListStateError,
    describe_reading,
    describe_signature,
    ended_hold_text,
    ended_holds,
    entry_parts,
    labels_in_use_text,
    lists_overview,
    never_synced,
    pruned_text,
    retry_after_text,
    version_changes,
    version_story_parts,
)
from podmod.notify.alerts import stale_lists, stale_text
from podmod.redact import masked_url, printable
from podmod.scan import breadth
from podmod.web.auth import (
    action_details,
    actor,
    approve_roles,
    lock_roles,
    login_required,
    require_approve_role,
)
from podmod.web.services import pod_conn, services, state_conn

bp = Blueprint("lists", __name__)


@bp.route("/lists")
@login_required
def index() -> str:
    rows = lists_overview(state_conn())
    ended = ended_holds(state_conn())
    for row in rows:
        # (the latest version, held, then rejected or withdrawn: as `lists show` says it)
        row["ended"] = ended_hold_text(ended[row["name"]]) if row["name"] in ended else ""
        row["ended_version"] = ended[row["name"]]["number"] if row["name"] in ended else None
        row["retry_text"] = (
            retry_after_text(row["name"], row["retry_after"]) if row["retry_after"] else ""
        )
        row["reading"] = describe_reading(row) if row["version"] else ""
        row["signed"] = describe_signature(row)
        row["labels_text"] = labels_in_use_text(row)
        moved_to = masked_url(printable(row["moved_to"] or ""))  # (a server's words)
        moved = MOVED.format(url=moved_to) if moved_to else ""
        row["moved"] = moved[:1].upper() + moved[1:]
    waiting = [
        {"name": s.name, "policy": s.policy, "url": masked_url(s.url)}
        for s in never_synced(services().config, rows)
    ]
    subscribed = {s.name for s in services().config.lists}
    before = request.args.get("before", "")
    if before and (not re.fullmatch(r"[0-9]{1,10}", before) or not 0 < int(before) < 2**31):
        abort(400, "This page link is damaged; go back to the lists page.")
    size = services().config["web.page_size"]
    entries = local.entries(state_conn(), size + 1, int(before) if before else None)
    older = url_for("lists.index", before=entries[size - 1]["added_in"]) if entries[size:] else None
    entries_held: dict[str, list[dict]] = {}
    for held in breadth.held_entries(state_conn()):
        entries_held.setdefault(held["list"], []).append(held)
    return render_template(
        "lists.html",
        entries_held=entries_held,
        locks_held=lock_plan(pod_conn(), state_conn()).held(services().config),
        max_locks=services().config["list_sync.max_locks"],
        lists=[row for row in rows if row["origin"] == "subscription"],
        pod_list=next((row for row in rows if row["origin"] == "local"), None),
        pod_list_entries=entries[:size],
        older_entries_url=older,
        newest_entries_url=url_for("lists.index") if before else None,
        never_synced=waiting,
        stale=[
            {"name": row["name"], "text": stale_text(row)}
            for row in stale_lists(services().config, state_conn())
        ],
        subscribed=subscribed,
        approve_roles_text=" or ".join(sorted(approve_roles())),
    )


@bp.route("/lists/this-pod/add", methods=["POST"])
@login_required
def add_to_pod_list() -> Response:
    """Put any account or pod on this pod's own list, by its handle, its host or the address of
    a page that shows it: for those who approve list versions (web.approve_roles), as a list of
    theirs; moderators flag from a case what the case shows."""
    if not g.staff.can_approve:
        abort(
            403,
            f"Only a pod {' or '.join(sorted(approve_roles()))} can add to this pod's list here"
            " (web.approve_roles); a moderator adds a remote account from its case.",
        )
    return _pod_list_change(
        actions.add_to_pod_list, label=request.form.get("label", "").strip()[:200] or None
    )


@bp.route("/lists/this-pod/remove", methods=["POST"])
@login_required
def remove_from_pod_list() -> Response:
    """Take an entry off this pod's own list (its matches are retracted)."""
    return _pod_list_change(actions.remove_from_pod_list)


def _pod_list_change(action: Callable[..., actions.ActionResult], **extra: Any) -> Response:
    try:
        result = action(
            services().config,
            request.form.get("entry", "")[:600],
            # (as typed: one over 2,000 characters is refused in the CLI's sentence, not cut)
            reason=request.form.get("reason"),
            actor=actor(),
            source="web",
            details=action_details(),
            **extra,
        )
    except PodmodError as error:
        flash(str(error), "error")
        return redirect(url_for("lists.index"))
    flash(result.message, "ok" if result.changed else "info")
    return redirect(url_for("lists.index"))


# The added and the removed entries a version's page shows at once, of each.
CHANGES_SHOWN = 200


@dataclass(frozen=True)
class EntryCursor:
    """Where a page of a version's added or removed entries ends: the last entry's kind and
    value (entries are in that order), written `kind:value`."""

    kind: str
    value: str

    def encode(self) -> str:
        return f"{self.kind}:{self.value}"

    @classmethod
    def decode(cls, text: str | None) -> EntryCursor | None:
        if not text:
            return None
        kind, colon, value = text.partition(":")
        if not colon or not re.fullmatch(r"[a-z0-9]{1,20}", kind) or len(value) > 2000:
            abort(400, "This page link is damaged; go back to the version's first page.")
        return cls(kind, value)


@bp.route("/lists/<name>/versions/<int:number>")
@login_required
def version(name: str, number: int) -> str:
    """What a version added and removed, CHANGES_SHOWN of each a page (keyset pages: `added`
    and `removed` name the entry each page starts after). A held version's changes are worked
    out from its file once, at the first view, and kept (podmod.lists.versions)."""
    if number >= 2**31:
        abort(404, f"List {name!r} has no version {number}.")
    after = {key: EntryCursor.decode(request.args.get(key)) for key in ("added", "removed")}
    # (the first view of a held version commits what it changes: a connection of its own)
    with state_connection(services().config) as state:
        try:
            diff: dict[str, Any] = version_changes(
                state,
                name,
                number,
                limit=CHANGES_SHOWN,
                added_after=astuple(after["added"]) if after["added"] else None,
                removed_after=astuple(after["removed"]) if after["removed"] else None,
            )
        except ListStateError as error:
            abort(404, str(error))
    pages: dict[str, Any] = {}
    for key in ("added", "removed"):
        rows = diff[key]
        # (an obfuscated row's text is its publisher's: the page isolates it)
        diff[key] = [
            (*entry_parts(row["kind"], row["value"], row["published"]), bool(row["published"]))
            for row in rows
        ]
        others = {k: v.encode() for k, v in after.items() if k != key and v is not None}
        pages[f"first_{key}"] = (
            url_for("lists.version", name=name, number=number, **others) if after[key] else None
        )
        last = EntryCursor(rows[-1]["kind"], rows[-1]["value"]) if rows else None
        pages[f"next_{key}"] = (
            url_for("lists.version", name=name, number=number, **others, **{key: last.encode()})
            if diff[f"more_{key}"] and last is not None
            else None
        )
    return render_template(
        "list_version.html",
        diff=diff,
        story=version_story_parts(diff),
        pruned=pruned_text(diff),
        pages=pages,
        applied_at=datetime.fromisoformat(diff["applied_at"]) if diff["applied_at"] else None,
        unkept=UNKEPT_CHANGES,
        # (approving reads the list's settings: only a list in the configuration can be)
        subscribed=services().config.subscription(name) is not None,
    )


@bp.route("/lists/<name>/versions/<int:number>/approve", methods=["POST"])
@login_required
def approve(name: str, number: int) -> Response:
    require_approve_role()
    from podmod.lists.sync import approve_version  # (fetching and signatures: loaded when used)

    try:
        outcome = approve_version(
            services().config, name, number, approved_by=actor(), details=action_details()
        )
    except PodmodError as error:
        flash(str(error), "error")
        return redirect(url_for("lists.index"))
    flash(f"{name}: {outcome.message}", "ok")
    for handle in outcome.locked:
        flash(f"{name}: locked {handle} (policy lock)", "ok")
    return redirect(url_for("lists.index"))


@bp.route("/lists/<name>/versions/<int:number>/reject", methods=["POST"])
@login_required
def reject(name: str, number: int) -> Response:
    """A held version refused, with the reason given (as `podmod lists reject`)."""
    require_approve_role()
    from podmod.lists.sync import reject_version

    try:
        outcome = reject_version(
            services().config,
            name,
            number,
            rejected_by=actor(),
            reason=request.form.get("reason", ""),
            details=action_details(),
        )
    except PodmodError as error:
        flash(str(error), "error")
        return redirect(url_for("lists.version", name=name, number=number))
    flash(f"{name}: {outcome.message}", "ok")
    return redirect(url_for("lists.index"))


@bp.route("/lists/<name>/entries/confirm", methods=["POST"])
@login_required
def confirm_entry(name: str) -> Response:
    """A content entry held for matching too many authors confirmed (as `podmod lists
    confirm-entry`): its matches are stored."""
    require_approve_role()
    try:
        message = breadth.confirm_entry(
            services().config, name, request.form.get("entry", "")[:2000], by=actor()
        )
    except PodmodError as error:
        flash(str(error), "error")
        return redirect(url_for("lists.index"))
    flash(f"{name}: {message}", "ok")
    return redirect(url_for("lists.index"))


# The accounts a held-locks page names at most (a publisher's mistake may name thousands).
LOCKS_SHOWN = 500


def _locking_subscription(name: str) -> Any:
    subscription = services().config.subscription(name)
    if subscription is None:
        abort(404, f"No list named {name!r} in the configuration.")
    return subscription


def _confirm_roles_text() -> str:
    """Who may confirm a list's held locks: a role that may both lock and approve."""
    return " or ".join(sorted(lock_roles() & approve_roles())) or "nobody (no role may both)"


@bp.route("/lists/<name>/locks")
@login_required
def held_locks(name: str) -> str:
    """The accounts a list's lock policy would lock, when it holds them back (more than
    list_sync.max_locks at once), each with its case and the entry it matched; the staff it never
    locks; and, for those who may, the button that locks them all."""
    subscription = _locking_subscription(name)
    config = services().config
    plan = lock_plan(pod_conn(), state_conn())
    waiting = sorted(plan.waiting.get(name, []), key=lambda candidate: candidate["handle"])
    return render_template(
        "list_locks.html",
        name=name,
        subscription=subscription,
        waiting=waiting[:LOCKS_SHOWN],
        waiting_count=len(waiting),
        held=name in plan.held(config),
        refused=sorted(plan.refused.get(name, [])),
        seen=plan.seen(name),
        max_locks=config["list_sync.max_locks"],
        confirm_roles_text=_confirm_roles_text(),
    )


@bp.route("/lists/<name>/locks", methods=["POST"])
@login_required
def confirm_held_locks(name: str) -> Response:
    """Lock every account the page showed (refused, with nothing locked, if they have changed)."""
    _locking_subscription(name)
    if not (g.staff.can_lock and g.staff.can_approve):
        abort(
            403,
            f"Only a pod {_confirm_roles_text()} can lock the accounts a list holds back"
            " (web.lock_roles and web.approve_roles).",
        )
    if request.form.get("confirm") != "yes":
        flash("Nothing was locked: tick the box that says you have checked the accounts.", "error")
        return redirect(url_for("lists.held_locks", name=name))
    from podmod.lists.sync import confirm_locks  # (fetching and signatures: loaded when used)

    try:
        locks = confirm_locks(
            services().config,
            name,
            by=actor(),
            seen=request.form.get("seen", "")[:64],
            details=action_details(),
        )
    except PodmodError as error:
        flash(str(error), "error")
        return redirect(url_for("lists.held_locks", name=name))
    count = sum(list_name == name for list_name, _ in locks.locked)
    flash(f"{name}: {count} {'account' if count == 1 else 'accounts'} locked.", "ok")
    return redirect(url_for("lists.index"))
