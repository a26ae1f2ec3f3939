"""The lists page: each subscription's version in force, how its file was read, entries, matches,
last sync and error, versions held for approval with what they change and an Approve button; and
this pod's own list with its entries and a Remove button for each."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from podmod import actions
from podmod.db import state_connection
from podmod.errors import PodmodError
from podmod.lists import local
from podmod.lists.versions import (
    ListStateError,
    describe_reading,
    describe_signature,
    lists_overview,
    version_diff,
)
from podmod.redact import masked_url
from podmod.web.auth import (
    action_details,
    actor,
    approve_roles,
    login_required,
    require_approve_role,
)
from podmod.web.services import services, state_conn

bp = Blueprint("lists", __name__)


@bp.route("/lists")
@login_required
def index() -> str:
    rows = lists_overview(state_conn())
    for row in rows:
        row["reading"] = describe_reading(row) if row["version"] else ""
        row["signed"] = describe_signature(row)
    synced = {row["name"] for row in rows}
    never_synced = [
        {"name": s.name, "policy": s.policy, "url": masked_url(s.url)}
        for s in services().config.lists
        if s.name not in synced
    ]
    subscribed = {s.name for s in services().config.lists}
    return render_template(
        "lists.html",
        lists=[row for row in rows if row["origin"] == "subscription"],
        pod_list=next((row for row in rows if row["origin"] == "local"), None),
        pod_list_entries=local.entries(state_conn()),
        never_synced=never_synced,
        subscribed=subscribed,
        approve_roles_text=" or ".join(sorted(approve_roles())),
    )


@bp.route("/lists/this-pod/remove", methods=["POST"])
@login_required
def remove_from_pod_list() -> Response:
    """Take an entry off this pod's own list (its matches are retracted)."""
    try:
        result = actions.remove_from_pod_list(
            services().config,
            request.form.get("entry", "")[:600],
            reason=request.form.get("reason", "").strip()[:2000] or None,
            actor=actor(),
            source="web",
            details=action_details(),
        )
    except PodmodError as error:
        flash(str(error), "error")
        return redirect(url_for("lists.index"))
    flash(result.message, "ok" if result.changed else "info")
    return redirect(url_for("lists.index"))


@bp.route("/lists/<name>/versions/<int:number>")
@login_required
def version(name: str, number: int) -> str:
    if number >= 2**31:
        abort(404, f"List {name!r} has no version {number}.")
    # A held version's diff stages its entries in a temporary table: a connection of its own.
    with state_connection(services().config) as state:
        try:
            diff: dict[str, Any] = version_diff(state, name, number, limit=200)
        except ListStateError as error:
            abort(404, str(error))
    return render_template("list_version.html", diff=diff)


@bp.route("/lists/<name>/versions/<int:number>/approve", methods=["POST"])
@login_required
def approve(name: str, number: int) -> Response:
    require_approve_role()
    from podmod.lists.sync import approve_version  # (fetching and signatures: loaded when used)

    try:
        outcome = approve_version(services().config, name, number, approved_by=actor())
    except PodmodError as error:
        flash(str(error), "error")
        return redirect(url_for("lists.index"))
    flash(f"{name}: {outcome.message}", "ok")
    for handle in outcome.locked:
        flash(f"{name}: locked {handle} (policy lock)", "ok")
    return redirect(url_for("lists.index"))
