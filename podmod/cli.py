"""The `podmod` command: init, read, worker, cases, check.

Every command reads the same configuration (`--config` or PODMOD_CONFIG, then PODMOD_* variables).
Errors meant for a podmin print as one line on stderr with a non-zero exit code; `--json` output is
for scripts.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from podmod.config import Config, load_config
from podmod.errors import PodmodError, ServiceUnavailable, first_line
from podmod.redact import printable


def fail(message: str, code: int = 1) -> None:
    click.echo(f"podmod: {message}", err=True)
    sys.exit(code)


def podmin_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn PodmodError into one line on stderr and its exit code; so too a database or Redis
    connection lost in the middle of a command (exit code 3, as when it cannot connect)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Exception as error:
            said = podmin_sentence(error)
            if said is None:
                raise
            fail(*said)

    return wrapper


def podmin_sentence(error: Exception, *, again_in: float | None = None) -> tuple[str, int] | None:
    """The one sentence and exit code a podmin gets for an error (a PodmodError, a database or
    Redis connection lost mid-command, a database that takes no writes); None for any other
    error, which is a bug to show whole. `again_in`: the seconds until a repeated command
    (--every) tries again, said instead of asking the podmin to run it again."""
    if isinstance(error, PodmodError):
        again = "" if again_in is None else f" (again in {again_in:g} s)"
        return str(error) + again, error.exit_code
    message = lost_service_message(error, again_in=again_in)
    return None if message is None else (message, ServiceUnavailable.exit_code)


def lost_service_message(error: BaseException, *, again_in: float | None = None) -> str | None:
    """One sentence for a connection that broke while a command ran, or for a database that
    takes no writes (a standby after a failover), or None for other errors."""
    import psycopg
    import redis

    reason = first_line(error)
    then = ", then run it again" if again_in is None else f" (again in {again_in:g} s)"
    if isinstance(error, psycopg.OperationalError):
        return (
            f"The database connection was lost while this command ran ({reason}); what did not "
            f"commit was rolled back: check that PostgreSQL is running{then}."
        )
    if isinstance(error, psycopg.errors.ReadOnlySqlTransaction):
        return (
            "podmod's database accepts no writes (read-only: a standby after a failover, or a "
            f"database set read-only for maintenance) ({reason}); nothing was changed: point "
            "database_url (and state_database_url, where set) at the primary, or wait until it "
            f"takes writes again{then}."
        )
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        return (
            f"Redis stopped answering while this command ran ({reason}); check that Redis is "
            f"running{then} (the work it carries is kept in PostgreSQL)."
        )
    return None


class Stopped(SystemExit):
    """SIGTERM or SIGINT reached a repeated command (--every). A SystemExit, so that no `except
    Exception` takes it for the round's failure, and psycopg cancels a query under way."""


def repeat_every(every: float, one_round: Callable[[], None]) -> None:
    """Run `one_round` now and every `every` seconds after it ends, until SIGTERM or SIGINT, also
    as a container's PID 1 (which gets no default action for SIGTERM): a round under way is
    abandoned at once (each list, each delivery is a transaction of its own: what did not commit
    is rolled back, and the next start does it again) and the command ends with exit code 0. A
    round that cannot run (a configuration made wrong since, a database restarting or read-only)
    says why on stderr and the next one tries again, as cron's next run would."""
    stopping: list[int] = []
    under_way = [False]

    def stop(signum: int, _frame: Any) -> None:
        if not stopping:  # (a second signal lets the first one's clean-up finish)
            stopping.append(signum)
            raise Stopped(0)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    try:
        while True:
            under_way[0] = True
            try:
                one_round()
            except Exception as error:
                if stopping:  # (what the stop broke: a query cancelled, a connection closed)
                    raise Stopped(0) from None
                said = podmin_sentence(error, again_in=every)
                if said is None:
                    raise
                click.echo(f"podmod: {said[0]}", err=True)
            under_way[0] = False
            time.sleep(every)
    except Stopped:
        pass
    abandoned = ": the round under way was abandoned, what it had not committed rolled back"
    name = signal.Signals(stopping[0]).name
    click.echo(f"podmod: stopped by {name}{abandoned if under_way[0] else ''}.", err=True)


def get_config(ctx: click.Context) -> Config:
    obj = ctx.ensure_object(dict)
    if "config" not in obj:
        obj["config"] = load_config()
        from podmod.logs import setup_logging

        setup_logging(obj["config"]["log.level"])
    return obj["config"]


# Options several commands share, made once (as rq's cli/helpers.py shares its own).
JSON_OPTION = click.option("--json", "as_json", is_flag=True)
REASON_OPTION = click.option(
    "--reason", required=True, help="Why; kept in the decision and the audit log."
)


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (default: $PODMOD_CONFIG or /etc/podmod/podmod.toml).",
)
@click.version_option(package_name="podmod")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """podmod: a moderation sidecar for diaspora* pods."""
    if config_path:
        # An environment variable, so that RQ's work horses and child processes see it too.
        os.environ["PODMOD_CONFIG"] = config_path
    ctx.ensure_object(dict)


@main.command()
@click.pass_context
@podmin_errors
def init(ctx: click.Context) -> None:
    """Create or upgrade podmod's schema (idempotent)."""
    from podmod import pod_db, store
    from podmod.db import pod_connection, state_connection

    config = get_config(ctx)
    with pod_connection(config) as pod:
        pod_db.check_diaspora_schema(pod)
    with state_connection(config) as state:
        applied = store.migrate(state)
    if applied:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied)
        click.echo(f"podmod schema ready: applied {names}.")
    else:
        click.echo("podmod schema is up to date; nothing to do.")


@main.command()
@click.option("--once", is_flag=True, help="One pass, then exit.")
@click.option(
    "--wait", is_flag=True, help="If another reader runs, wait for it instead of exiting."
)
@click.pass_context
@podmin_errors
def read(ctx: click.Context, once: bool, wait: bool) -> None:
    """Read new reports from the pod and queue them for the workers."""
    from podmod import intake

    config = get_config(ctx)
    stopping: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: stopping.append(number))
    result = intake.run_reader(config, once=once, wait=wait, stop=lambda: bool(stopping))
    if once:
        from podmod.words import counted

        click.echo(
            f"read {counted(result.new_reports, 'new report')} into"
            f" {counted(len(result.new_batches), 'batch')}; enqueued"
            f" {counted(len(result.enqueued), 'job')};"
            f" {counted(result.reviewed_synced, 'report')} newly reviewed in diaspora*;"
            f" {counted(result.gaps_open, 'report id')} awaited."
        )


@main.command()
@click.option("--burst", is_flag=True, help="Work until the queues are empty, then exit.")
@click.option("--name", help="Worker name (default: podmod-HOST-PID).")
@click.pass_context
@podmin_errors
def worker(ctx: click.Context, burst: bool, name: str | None) -> None:
    """Run an RQ worker for podmod's queues (start as many as you like, on any host)."""
    from podmod.queue import run_worker

    run_worker(get_config(ctx), burst=burst, name=name)


@main.command()
@click.option(
    "--status",
    type=click.Choice(["open", "resolved", "dismissed", "all"]),
    default="open",
    show_default=True,
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many cases.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array, with every signal.")
@click.pass_context
@podmin_errors
def cases(ctx: click.Context, status: str, limit: int | None, as_json: bool) -> None:
    """Print the review queue, highest priority first."""
    from podmod import store
    from podmod.db import state_connection

    config = get_config(ctx)
    with state_connection(config) as state:
        store.require_current_schema(state)
        found = store.list_cases(
            state, status=None if status == "all" else status, limit=limit, with_signals=as_json
        )
    if as_json:
        click.echo(json.dumps([case.as_json() for case in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo(f"No {'' if status == 'all' else status + ' '}cases.")
        return
    now = datetime.now(UTC)
    click.echo(
        f"{'ID':>7}  {'PRIO':>4}  {'STATUS':<9} {'PENDING':>7} {'REPORTERS':>9}  {'AGE':>5}"
        "  ACCOUNT"
    )
    for case in found:
        age = _age(now, case.last_signal_at)
        where = "local" if case.local else "remote"
        account = printable(case.account or "(author unknown: item deleted)")
        click.echo(
            f"{case.id:>7}  {case.priority:>4}  {case.status:<9} {case.pending_report_count:>7} "
            f"{case.reporter_count:>9}  {age:>5}  {account} ({where})"
        )


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "-"
    seconds = (now - then).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


@main.command()
@JSON_OPTION
def check(as_json: bool) -> None:
    """Check config, databases, privileges, schema, Redis, reader, workers and every list."""
    from podmod.check import run_checks

    results = run_checks()
    ok = all(r.status != "fail" for r in results)
    if as_json:
        click.echo(json.dumps({"ok": ok, "checks": [r.as_json() for r in results]}, indent=2))
    else:
        for r in results:
            click.echo(f"{r.status.upper():<4} {r.name}: {r.detail}")
    sys.exit(0 if ok else 1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8790, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Requests served at once.",
)
@click.pass_context
@podmin_errors
def serve(ctx: click.Context, host: str, port: int, threads: int) -> None:
    """Run the admin web UI (waitress); put it behind the pod's nginx at /podmod/."""
    import waitress

    from podmod import store
    from podmod.db import state_connection
    from podmod.web import create_app

    config = get_config(ctx)
    with state_connection(config) as state:
        store.require_current_schema(state)
    app = create_app(config)
    click.echo(f"podmod web UI on http://{host}:{port}/ (threads: {threads})")
    try:
        waitress.serve(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="podmod",
            clear_untrusted_proxy_headers=False,
        )
    finally:
        app.extensions["podmod"].close()


def cli_actor() -> str:
    """Who acts from the command line: the login name, as the audit log records it."""
    import getpass

    return f"cli:{getpass.getuser()}"


@main.command()
@click.argument("handle")
@REASON_OPTION
@click.option("--confirm", is_flag=True, help="Confirm locking an admin or a moderator.")
@click.option(
    "--close",
    is_flag=True,
    help="Also mark the reports of its open case reviewed and close the case as locked.",
)
@JSON_OPTION
@click.pass_context
@podmin_errors
def lock(
    ctx: click.Context, handle: str, reason: str, confirm: bool, close: bool, as_json: bool
) -> None:
    """Lock a local account (diaspora* signs it out on its next request)."""
    from podmod import actions

    action = actions.lock_and_close if close else actions.lock_account
    try:
        result = action(
            get_config(ctx),
            handle=handle,
            actor=cli_actor(),
            source="cli",
            reason=reason,
            confirm_staff=confirm,
        )
    except actions.ConfirmationNeeded as refusal:
        raise actions.ConfirmationNeeded(refusal.who, "repeat the command with --confirm") from None
    click.echo(json.dumps(result.__dict__) if as_json else result.message)


@main.command()
@click.argument("handle")
@REASON_OPTION
@JSON_OPTION
@click.pass_context
@podmin_errors
def unlock(ctx: click.Context, handle: str, reason: str, as_json: bool) -> None:
    """Unlock a local account."""
    from podmod import actions

    result = actions.unlock_account(
        get_config(ctx), handle=handle, actor=cli_actor(), source="cli", reason=reason
    )
    click.echo(json.dumps(result.__dict__) if as_json else result.message)


@main.group()
def case() -> None:
    """One case, as its page in the web UI shows it and with the same actions: show, review,
    dismiss, reopen, note (lock with `podmod lock HANDLE --close`)."""


CASE_SIGNALS = 500  # as many as the case page shows
CASE_ARGUMENT = click.argument("case_id", metavar="CASE", type=click.IntRange(1, 2**63 - 1))


@case.command("show")
@CASE_ARGUMENT
@click.option("--json", "as_json", is_flag=True, help="The case, its signals and decisions.")
@click.pass_context
@podmin_errors
def case_show(ctx: click.Context, case_id: int, as_json: bool) -> None:
    """Print a case: its account, every signal and every decision."""
    from podmod import pod_db, store
    from podmod.actions import CaseNotFound
    from podmod.db import pod_connection, state_connection

    config = get_config(ctx)
    with state_connection(config) as state:
        store.require_current_schema(state)
        page = store.case_page(state, case_id, max_signals=CASE_SIGNALS)
    if page is None:
        raise CaseNotFound(f"There is no case {case_id}; see `podmod cases`.")
    row = page["case"]
    account = None
    if row["person_id"] is not None:
        with pod_connection(config) as pod:
            account = pod_db.account_details(pod, row["person_id"])
    if as_json:
        shown = store.Case(
            **{name: row[name] for name in store.CASE_COLUMNS.split(", ")},
            signals=page["signals"],
        ).as_json()
        shown["account_state"] = account and {
            "locked": account["locked_at"] is not None,
            "closed": account["closed"],
            "roles": account["roles"],
        }
        shown["decisions"] = [
            {
                "id": d["id"],
                "case_id": d["case_id"],
                "action": d["action"],
                "actor": d["actor"],
                "source": d["source"],
                "reason": d["reason"],
                "details": d["details"],
                "at": d["created_at"].isoformat(),
            }
            for d in page["decisions"]
        ]
        click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    # (each line as it shows: the pod's words in it, a name, a reason, a post, hold no control
    # character that a terminal would act on: retitle its window, hide text, write the clipboard)
    click.echo("\n".join(printable(line) for line in _case_text(page, account)))


def _case_text(page: dict[str, Any], account: dict[str, Any] | None) -> list[str]:
    """The case page as lines of text."""
    from podmod.store import outcome
    from podmod.words import counted

    case = page["case"]
    where = "local" if case["local"] else "remote"
    state = outcome(case["status"], case["resolution"])
    lines = [
        f"Case {case['id']}: {case['account'] or 'author unknown'} ({where}), "
        + (f"closed: {state}" if state else "open"),
        f"Priority {case['priority']} · {case['pending_report_count']:,} pending of "
        f"{counted(case['report_count'], 'report')} · "
        f"{counted(case['reporter_count'], 'reporter')} · "
        f"{counted(case['list_match_count'], 'list match')} · "
        f"{counted(case['content_match_count'], 'content match')} · first signal "
        f"{_when(case['first_signal_at'])} · newest {_when(case['last_signal_at'])}",
    ]
    if account is not None:
        facts = [f"locked since {_when(account['locked_at'])}"] if account["locked_at"] else []
        facts += ["closed"] if account["closed"] else []
        facts += [f"roles {', '.join(account['roles'])}"] if account["roles"] else []
        lines.append(
            f"Account: {', '.join(facts) or 'active'} · {account['name'] or 'no name'} · "
            f"{account['local_contacts']} local users have it as a contact"
        )
    elif case["person_id"] is not None:
        lines.append("Account: no longer in the pod's database")
    else:
        lines.append("Account: unknown (the reported item was deleted before podmod read it)")
    lines += ["", f"Signals ({page['signal_total']}):"]
    for row in page["signals"]:
        lines += [f"  {line}" for line in _signal_text(row)]
    lines += ["", f"Decisions ({len(page['decisions'])}):"]
    for decision in page["decisions"]:
        elsewhere = "" if decision["case_id"] == case["id"] else f" (case {decision['case_id']})"
        lines.append(
            f"  {_when(decision['created_at'])}  {decision['action']}{elsewhere} by "
            f"{decision['actor']} ({decision['source']})"
            + (f": {decision['reason']}" if decision["reason"] else "")
        )
    return lines


def _signal_text(signal: dict[str, Any]) -> list[str]:
    details = signal["details"]
    done = "retracted" if signal["retracted_at"] else "active"
    item = (signal["item_type"] or "item").lower()
    if signal["kind"] == "report":
        state = f"reviewed by {signal['reviewed_by']}" if signal["reviewed"] else "pending"
        return [
            # (the reporter first: "of a post by X" reads as the post's author, who is the case's)
            f"report {signal['id']} by {signal['reporter'] or 'an unknown reporter'} of a {item}, "
            f"{_when(signal['occurred_at'])}, {state}",
            f"  reason: {signal['reason'] or '-'}",
            f"  text: {signal['snapshot'] if signal['snapshot'] is not None else '(no text)'}",
        ]
    if signal["kind"] == "appeal":
        state = "decided" if signal["reviewed"] else "waiting for a decision"
        return [
            f"appeal {signal['id']} from the account, {_when(signal['occurred_at'])}, {state}",
            f"  statement: {signal['reason']}",
        ]
    entry = details.get("entry") or f"{signal['entry_kind']}:{signal['entry_value']}"
    listed = f"list {signal['list_name'] or details.get('list')} version {details.get('version')}"
    if signal["kind"] == "list":
        return [f"list match {signal['id']}: {listed}, entry {entry}, {done}"]
    return [
        f"content match {signal['id']}: {item} {signal['item_id']} matches {listed}, entry "
        f"{entry}, {done}",
        f"  text: {signal['snapshot'] if signal['snapshot'] is not None else '(no text)'}",
    ]


def _case_action(
    ctx: click.Context, action_name: str, case_id: int, as_json: bool, **arguments: Any
) -> None:
    """Run one of podmod.actions' case actions as the CLI's actor."""
    from podmod import actions

    result = getattr(actions, action_name)(
        get_config(ctx), case_id=case_id, actor=cli_actor(), source="cli", **arguments
    )
    click.echo(json.dumps(result.__dict__) if as_json else result.message)


def case_decision(command: Callable[..., Any]) -> Callable[..., Any]:
    """What a decision on a case (review, dismiss, reopen) takes: CASE, --reason and --json."""
    for decorate in (podmin_errors, click.pass_context, JSON_OPTION, REASON_OPTION, CASE_ARGUMENT):
        command = decorate(command)
    return command


@case.command("review")
@case_decision
def case_review(ctx: click.Context, case_id: int, reason: str, as_json: bool) -> None:
    """Mark the case's pending reports reviewed (in diaspora* too); it closes unless a list or
    content match still holds it."""
    _case_action(ctx, "mark_reviewed", case_id, as_json, reason=reason)


@case.command("dismiss")
@case_decision
def case_dismiss(ctx: click.Context, case_id: int, reason: str, as_json: bool) -> None:
    """Close the case with no action needed; its pending reports become reviewed."""
    _case_action(ctx, "dismiss_case", case_id, as_json, reason=reason)


@case.command("reopen")
@case_decision
def case_reopen(ctx: click.Context, case_id: int, reason: str, as_json: bool) -> None:
    """Put a closed case back in the queue."""
    _case_action(ctx, "reopen_case", case_id, as_json, reason=reason)


@case.command("note")
@CASE_ARGUMENT
@click.argument("text")
@JSON_OPTION
@click.pass_context
@podmin_errors
def case_note(ctx: click.Context, case_id: int, text: str, as_json: bool) -> None:
    """Add a note to the case, kept with its decisions and in the audit log."""
    _case_action(ctx, "add_note", case_id, as_json, text=text)


@main.group()
def notify() -> None:
    """Notifications: staff alerts by mail and signed webhooks (README, "Notifications")."""


@notify.command("deliver")
@click.option(
    "--limit", default=1000, show_default=True, type=click.IntRange(min=1), help="Rows per pass."
)
@click.option(
    "--every",
    type=click.FloatRange(min=0.1),
    help="Repeat every this many seconds until stopped (default: one pass).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@podmin_errors
def notify_deliver(ctx: click.Context, limit: int, every: float | None, as_json: bool) -> None:
    """Alert the staff of what is new and deliver every mail and webhook due now, in the
    foreground (`podmod read` and `podmod worker` do this on their own; this is for a one-off run
    or a setup without workers)."""
    from podmod import store
    from podmod.db import state_connection
    from podmod.notify.deliver import deliver_pass

    config = get_config(ctx)

    def one_pass() -> None:
        with state_connection(config) as state:
            store.require_current_schema(state)
        result = deliver_pass(config, limit=limit)
        if as_json:
            click.echo(json.dumps(result.as_json(), indent=2))
        else:
            for outcome in result.outcomes:
                if outcome.status in ("failed", "gave_up"):
                    word = "will retry" if outcome.status == "failed" else "gave up"
                    click.echo(f"outbox {outcome.outbox_id} ({word}): {outcome.detail}", err=True)
            click.echo(
                f"{result.cases_alerted} cases alerted, {result.events_mailed} events mailed to "
                f"the staff, {result.accounts_mailed} accounts told, {result.reporters_mailed} "
                f"reporters told; "
                f"{result.count('delivered')} delivered, {result.count('failed')} "
                f"failed (retried later), {result.count('gave_up')} given up; "
                f"{result.waiting} waiting."
            )
        if result.staff_mail_error:
            if every is None:
                fail(result.staff_mail_error)
            click.echo(f"podmod: {result.staff_mail_error} (again in {every:g} s)", err=True)

    if every is None:
        one_pass()
    else:
        repeat_every(every, one_pass)


@main.group()
def lists() -> None:
    """Shared blocklists: sync, show, diff, approve, publish; this pod's own list: add, remove."""


@lists.command("sync")
@click.option("--name", "names", multiple=True, help="Only this list (repeatable).")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Tell what the sync would do (versions, matches, locks) and keep nothing: each list is "
    "stored and matched, then rolled back; nobody is locked, nothing is sent.",
)
@click.option(
    "--every",
    type=click.FloatRange(min=10),
    help="Sync again every this many seconds until stopped, reading the configuration afresh "
    "each time, where no cron job runs it (a container; default: once).",
)
@click.option(
    "--now",
    is_flag=True,
    help="A sync by hand: ask each list's server even where it asked to be left alone until "
    "later (HTTP 429 or 503 with Retry-After).",
)
@click.option(
    "--cron",
    is_flag=True,
    help="Exit codes for cron's mail (deploy/podmod.cron), each told once: 4 on the sync that "
    "holds a version or holds back locks, 1 on the first sync of a list failing for over an "
    "hour; else 0 (a short failure, a hold already told: the log and the staff's alerts).",
)
@JSON_OPTION
@click.pass_context
@podmin_errors
def lists_sync(
    ctx: click.Context,
    names: tuple[str, ...],
    dry_run: bool,
    every: float | None,
    now: bool,
    cron: bool,
    as_json: bool,
) -> None:
    """Fetch, verify, store and apply every subscribed list.

    Exit codes: 0 done; 1 a list failed; 4 a version was held for approval on this sync, or a
    lock list holds back locks (`podmod lists diff`, `approve`, `reject`, `lock`). With --cron
    (as deploy/podmod.cron runs it), each is told once: 1 only on the first sync of a list
    failing for over an hour, 4 only on the sync that starts a hold."""
    if every is None:
        # cron mails the podmin on a non-zero exit (deploy/podmod.cron): with --cron, what is
        # new and needs the podmin; by hand, a failed list, or one that waits for them.
        sys.exit(_sync_lists(get_config(ctx), names, dry_run, as_json, now=now, cron=cron))
    if dry_run:
        fail("A dry run keeps nothing, so repeating it (--every) tells nothing new; drop one.", 2)
    if now:
        fail("--now is for a sync by hand; a repeated sync (--every) waits as servers ask.", 2)
    get_config(ctx)  # (a configuration wrong from the start stops here)
    repeat_every(every, lambda: _sync_lists(load_config(), names, dry_run, as_json))


def _sync_lists(
    config: Config,
    names: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
    *,
    now: bool = False,
    cron: bool = False,
) -> int:
    """One sync of the subscribed lists (or those named), told on stdout; its exit code: 1 a list
    failed, 4 a version is held or a list holds back locks, else 0 (sync_exit_code)."""
    from podmod import store
    from podmod.db import state_connection
    from podmod.lists.sync import sync_lists

    with state_connection(config) as state:
        store.require_current_schema(state)
    wanted = [s for s in config.lists if not names or s.name in names]
    with click.progressbar(
        length=3 * len(wanted),
        label="syncing lists",
        item_show_func=lambda stage: stage,
        file=sys.stderr,
    ) as bar:
        outcomes = sync_lists(
            config,
            list(names),
            progress=lambda stage: bar.update(1, stage),
            dry_run=dry_run,
            now=now,
        )
    if as_json:
        click.echo(
            json.dumps(
                [o.as_json() | ({"dry_run": True} if dry_run else {}) for o in outcomes], indent=2
            )
        )
    else:
        said, locked = ("(dry run) ", "would lock") if dry_run else ("", "locked")
        for outcome in outcomes:
            mark = "FAILED: " if outcome.failed else ""
            # (a list server's words, a trusted comment say, drive no terminal: printable)
            click.echo(f"{outcome.name}: {said}{mark}{printable(outcome.message)}")
            for handle in outcome.locked:
                click.echo(f"{outcome.name}: {said}{locked} {printable(handle)} (policy lock)")
        if not config.lists:
            # (a pod with no lists yet runs the install's cron line too: nothing to mail about;
            # the sync above retired any list the configuration no longer has)
            click.echo(f"No [[lists]] in the configuration ({config.source}); nothing to sync.")
        if dry_run:
            click.echo(
                "Dry run: nothing above was kept; no account was locked, nothing was sent. "
                "Run `podmod lists sync` to do it."
            )
    if dry_run:  # (what would fail says so; nothing is held)
        return 1 if any(o.failed for o in outcomes) else 0
    _prune_if_due(config, as_json)
    return sync_exit_code(outcomes, cron=cron)


def _prune_if_due(config: Config, as_json: bool) -> None:
    """After a sync: the day's prune (podmod.retention), said in one line when it removed
    anything (not with --json, whose output is the lists')."""
    import psycopg

    from podmod import retention
    from podmod.db import state_connection

    try:
        with state_connection(config) as state:
            report = retention.prune_if_due(config, state, source="lists sync")
    except psycopg.Error as error:  # (the lists are synced: their outcome stands)
        said = printable(error.diag.message_primary or str(error))
        click.echo(
            f"prune: the day's prune failed ({said}); the lists are synced, and the next sync"
            " tries it again.",
            err=True,
        )
        return
    if report is not None and report.total and not as_json:
        click.echo(f"prune: {report.text()} ({report.seconds:.1f} s)")


def sync_exit_code(outcomes: list[Any], *, cron: bool = False) -> int:
    """A sync's exit code: 1 a list failed, 4 a version was held on this sync or a list holds
    back locks, else 0. `cron` (cron mails every non-zero exit): each only once, the sync that
    finds it first: a list failing for over an hour (its first sync past the hour; shorter
    failures, a server between updates, are the log's and the staff's list.failing alert's), a
    hold that starts (not a version taking the place of one held for the same), locks held back
    anew (not every sync while they wait)."""
    if cron:
        # (a list whose server asked to wait, deferred, may cross the hour meanwhile: told too)
        if any(o.failing_for_an_hour for o in outcomes):
            return 1
        return 4 if any(o.newly_held or o.locks_newly_held for o in outcomes) else 0
    if any(o.failed for o in outcomes):
        return 1
    return 4 if any(o.status == "held" or o.locks_held for o in outcomes) else 0


@lists.command("show")
@JSON_OPTION
@click.pass_context
@podmin_errors
def lists_show(ctx: click.Context, as_json: bool) -> None:
    """State of every list: version, how its file was read, entries, settings, last success, last
    error, held versions, no sync for hours; and this pod's own list."""
    from podmod import store
    from podmod.db import pod_connection, state_connection
    from podmod.lists.apply import lock_plan, locks_held_text
    from podmod.lists.versions import (
        MOVED,
        describe_reading,
        describe_signature,
        ended_hold_json,
        ended_hold_text,
        ended_holds,
        labels_in_use_text,
        lists_overview,
        never_synced,
        overview_keys,
        retry_after_text,
    )
    from podmod.notify.alerts import stale_lists, stale_text
    from podmod.redact import masked_url
    from podmod.scan.breadth import confirm_command, held_entries, held_entry_lines

    config = get_config(ctx)
    with state_connection(config) as state:
        store.require_current_schema(state)
        rows = lists_overview(state)
        waiting = never_synced(config, rows)
        # (a list no sync has read yet has the keys of a synced one's row, of no values)
        keys = overview_keys(state) if as_json and waiting else []
        ended = ended_holds(state)
        entries_held = held_entries(state)
        stale = {row["name"]: stale_text(row) for row in stale_lists(config, state)}
        with pod_connection(config) as pod:
            # (the lock lists whose policy locks none: more accounts than list_sync.max_locks)
            locks_held = lock_plan(pod, state).held(config)
    subscribed = {subscription.name for subscription in config.lists}

    def told(name: str) -> dict[str, Any]:
        """What is told of a list beside its row, synced or not yet."""
        return {
            "locks_held": locks_held.get(name, 0),
            "stale": stale.get(name),
            # (a list taken out of the configuration: retired, its versions kept)
            "subscribed": name in subscribed,
            # (the latest version, where it was held and rejected or withdrawn; else null)
            "ended_hold": ended_hold_json(ended.get(name)),
            "held_entries": [
                {
                    "entry": held["entry"],
                    "held_reason": held["held_reason"],
                    "why": held["why"],
                    "undone": held["undone"],
                    "kept": held["kept"],
                    "sample": held["sample"],
                }
                for held in entries_held
                if held["list"] == name
            ],
        }

    for row in rows:
        row |= told(row["name"])
        row["subscribed"] = row["subscribed"] or row["origin"] == "local"
    if as_json:
        rows += [
            dict.fromkeys(keys)
            | {
                "name": s.name,
                "url": masked_url(s.url),
                "policy": s.policy,
                "origin": "subscription",
                "entries": 0,
                "matches": 0,
                "held": [],
            }
            | told(s.name)
            for s in waiting
        ]
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows and not waiting:
        click.echo("No lists subscribed; add a [[lists]] table to the configuration.")

    def say(line: str) -> None:
        # A list server's words are among them (its last error may quote a signature's trusted
        # comment): no escape sequence of theirs reaches the podmin's terminal.
        click.echo(printable(line))

    for subscription in waiting:
        say(
            f"{subscription.name} ({subscription.policy}): subscribed, not synced yet"
            f" (`podmod lists sync --name {subscription.name}`)"
        )
        if subscription.name in stale:
            say(f"  {stale[subscription.name]}")
    for row in rows:
        name = "this pod's own list" if row["origin"] == "local" else row["name"]
        if not row["subscribed"]:
            name += " (no longer subscribed: it applies no more; its versions are kept)"
        say(
            f"{name} ({row['policy']}): version {row['version'] or '-'}"
            f"{' (' + describe_reading(row) + ')' if row['version'] else ''}, "
            f"{row['matches']} active matches; last success {_when(row['last_success_at'])}"
        )
        signed = describe_signature(row)
        if signed:
            say(f"  {signed}")
        labels = labels_in_use_text(row)
        if labels:
            say(f"  labels in use: {labels}")
        settings = _list_settings_text(row)
        if settings:
            say(f"  settings: {settings}")
        if row["held"] and not row["subscribed"]:
            held = ", ".join(str(n) for n in row["held"])
            say(
                f"  held for approval: version {held}; put the list back in the configuration to"
                f" approve it, or `podmod lists reject {row['name']} {row['held'][-1]} --reason R`"
            )
        elif row["held"]:
            held = ", ".join(str(n) for n in row["held"])
            say(f"  held for approval: version {held} (`podmod lists diff {row['name']}`)")
        for held in row["held_entries"]:
            say(
                f"  entry held for approval: {held['entry']}, {held['why']}"
                f" (`{confirm_command(row['name'], held['entry'])}`)"
            )
            for line in held_entry_lines(config, held):
                say(f"    {line}")
        if row["name"] in ended:
            say(f"  {ended_hold_text(ended[row['name']])}")
        if row["moved_to"]:
            say(f"  {MOVED.format(url=row['moved_to'])}")
        if row["locks_held"]:
            say(f"  {locks_held_text(config, row['name'], row['locks_held'])}")
        if row["last_error"]:
            say(f"  last error ({_when(row['last_error_at'])}): {row['last_error']}")
        if row["retry_after"]:
            say(f"  {retry_after_text(row['name'], row['retry_after'])}")
        if row["stale"]:
            say(f"  {row['stale']}")


def _list_settings_text(row: dict[str, Any]) -> str:
    from podmod.config import ENTRY_KINDS

    parts = []
    if tuple(row["kinds"]) != ENTRY_KINDS:
        parts.append("kinds " + ", ".join(row["kinds"]))
    if row["labels"]:
        parts.append("only labels " + ", ".join(row["labels"]))
    if row["lock_labels"]:
        parts.append("lock labels " + ", ".join(row["lock_labels"]))
    if row["format_setting"]:
        parts.append("format " + row["format_setting"])
    if row["require_canary"]:
        parts.append("requires canary " + row["require_canary"])
    if row["severity_setting"]:
        parts.append("rows without a severity: " + row["severity_setting"])
    return "; ".join(parts)


@lists.command("add")
@click.argument("entry", metavar="HANDLE|HOST")
@click.option("--reason", required=True, help="Why; kept with the entry and in the audit log.")
@click.option("--label", help="A label for the entry (what it is about).")
@click.option(
    "--case", "case_id", type=int, help="The case this comes from (its history shows it)."
)
@JSON_OPTION
@click.pass_context
@podmin_errors
def lists_add(
    ctx: click.Context,
    entry: str,
    reason: str,
    label: str | None,
    case_id: int | None,
    as_json: bool,
) -> None:
    """Put an account (user@pod.example) or a pod (pod.example, and its subdomains) on this pod's
    own list: flagged for review from now on, applied at once."""
    from podmod import actions

    result = actions.add_to_pod_list(
        get_config(ctx),
        entry,
        reason=reason,
        label=label,
        actor=cli_actor(),
        source="cli",
        case_id=case_id,
    )
    click.echo(json.dumps(result.__dict__) if as_json else result.message)


@lists.command("remove")
@click.argument("entry", metavar="HANDLE|HOST")
@click.option("--reason", required=True, help="Why; kept in the audit log.")
@JSON_OPTION
@click.pass_context
@podmin_errors
def lists_remove(ctx: click.Context, entry: str, reason: str, as_json: bool) -> None:
    """Take an account or a pod off this pod's own list; its matches are retracted."""
    from podmod import actions

    result = actions.remove_from_pod_list(
        get_config(ctx), entry, reason=reason, actor=cli_actor(), source="cli"
    )
    click.echo(json.dumps(result.__dict__) if as_json else result.message)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


@lists.command("diff")
@click.argument("name")
@click.argument("version", type=int, required=False)
@click.option("--version", "number", type=int, help="Default: the newest version.")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(0, 2**31 - 1),
    help="At most this many added and removed entries each.",
)
@JSON_OPTION
@click.pass_context
@podmin_errors
def lists_diff(
    ctx: click.Context,
    name: str,
    version: int | None,
    number: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """What a version (VERSION, as `lists approve` takes it, or --version; default: the newest)
    added and removed."""
    from podmod.db import state_connection
    from podmod.lists.versions import UNKEPT_CHANGES, pruned_text, version_diff, version_story

    if version is not None and number is not None and version != number:
        raise click.UsageError(f"Name one version: {version} or --version {number}, not both.")
    number = number if version is None else version

    with state_connection(get_config(ctx)) as state:
        diff = version_diff(state, name, number, limit=limit)
    if as_json:
        click.echo(json.dumps(diff, indent=2))
        return
    click.echo(
        f"{name} version {diff['version']} ({diff['status']}): "
        f"+{diff['added_count']} -{diff['removed_count']}"
    )
    if diff["signed"]:
        click.echo(diff["signed"])
    story = version_story(diff)
    if story:
        click.echo(printable(story))
    if diff["status"] in UNKEPT_CHANGES:
        click.echo(f"({UNKEPT_CHANGES[diff['status']]})")
    pruned = pruned_text(diff)
    if pruned:
        click.echo(pruned)
    for entry in diff["added"]:
        click.echo(f"+ {printable(entry)}")
    for entry in diff["removed"]:
        click.echo(f"- {printable(entry)}")


@lists.command("approve")
@click.argument("name")
@click.argument("version", type=int)
@click.pass_context
@podmin_errors
def lists_approve(ctx: click.Context, name: str, version: int) -> None:
    """Apply a version that was held for approval."""
    from podmod.lists.sync import approve_version

    outcome = approve_version(get_config(ctx), name, version, approved_by=cli_actor())
    click.echo(f"{name}: {printable(outcome.message)}")


@lists.command("reject")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--reason", required=True, help="Why; kept with the version and in the audit log.")
@click.pass_context
@podmin_errors
def lists_reject(ctx: click.Context, name: str, version: int, reason: str) -> None:
    """Refuse a version that was held for approval: it stops waiting and can no longer be
    approved; the version in force stays. A later, different file is judged as usual."""
    from podmod.lists.sync import reject_version

    outcome = reject_version(get_config(ctx), name, version, rejected_by=cli_actor(), reason=reason)
    click.echo(f"{name}: {printable(outcome.message)}")


@lists.command("lock")
@click.argument("name")
@click.pass_context
@podmin_errors
def lists_lock(ctx: click.Context, name: str) -> None:
    """Lock the accounts a list's lock policy holds back, once you have checked them: more than
    list_sync.max_locks at once are never locked by a sync on its own."""
    from podmod.lists.sync import confirm_locks

    locks = confirm_locks(get_config(ctx), name, by=cli_actor())
    for list_name, handle in locks.locked:
        confirmed = ", confirmed" if list_name == name else ""
        click.echo(f"{list_name}: locked {printable(handle)} (policy lock{confirmed})")
    count = sum(list_name == name for list_name, _ in locks.locked)
    if not count:
        click.echo(
            f"{name}: no locks held back, nothing to confirm (a sync locks up to"
            " list_sync.max_locks accounts at once by itself)."
        )
        return
    click.echo(f"{name}: {count} {'account' if count == 1 else 'accounts'} locked.")


@lists.command("confirm-entry")
@click.argument("name")
@click.argument("entry", metavar="KIND:VALUE")
@click.pass_context
@podmin_errors
def lists_confirm_entry(ctx: click.Context, name: str, entry: str) -> None:
    """Store the matches of a content entry held for matching too many authors (more than
    list_sync.max_new_match_share of the people the pod knows, or list_sync.max_content_authors
    if fewer), once you have checked it."""
    from podmod.scan.breadth import confirm_entry

    message = confirm_entry(get_config(ctx), name, entry, by=cli_actor())
    click.echo(f"{name}: {printable(message)}")


@lists.command("publish")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The list file to write; its signature goes to OUTPUT.minisig.",
)
@click.option(
    "--secret-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="minisign secret key (from `podmod lists keygen` or minisign -G).",
)
@click.option("--password-env", help="Environment variable holding the secret key's password.")
@click.option(
    "--from-csv",
    "source_csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Entries from this CSV (kind,value,label,comment).",
)
@click.option(
    "--from-decisions",
    is_flag=True,
    help="Entries for every account this pod has locked and still locks.",
)
@click.option(
    "--from-pod-list",
    is_flag=True,
    help="The entries of this pod's own list, with their labels (lists add, Add to this pod's "
    "list).",
)
@click.option(
    "--with-reasons",
    is_flag=True,
    help="With --from-pod-list: publish each entry's reason too (written for this pod's "
    "moderators; left out unless asked).",
)
@click.option(
    "--label", default="locked", show_default=True, help="Label of entries made from decisions."
)
@click.option(
    "--trusted-comment",
    help="Words signed after the signature's time and file name, which subscribers check "
    "(one line, no tabs).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["podmod", "mastodon", "domains"]),
    default="podmod",
    show_default=True,
    help="podmod's kind,value,label,comment; Mastodon's domain-block CSV (whole domains only, "
    "their public comments as the source wrote them, with no spreadsheet apostrophe: Mastodon "
    "and GoToSocial show them as written), which Mastodon and GoToSocial servers import; or "
    "domains, one suspended domain per line (GoToSocial's plain subscriptions, Mastodon's user "
    "import, Misskey). What a format cannot hold is left out and counted.",
)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Leave out the input's invalid rows (named by line) instead of refusing it.",
)
@click.pass_context
@podmin_errors
def lists_publish(
    ctx: click.Context,
    output: Path,
    secret_key: Path,
    password_env: str | None,
    source_csv: Path | None,
    from_decisions: bool,
    from_pod_list: bool,
    with_reasons: bool,
    label: str,
    trusted_comment: str | None,
    output_format: str,
    skip_invalid: bool,
) -> None:
    """Build a list file and sign it, for others to subscribe to."""
    from podmod.lists import minisign, publish
    from podmod.lists.versions import entries_text, skipped_notes

    if [bool(source_csv), from_decisions, from_pod_list].count(True) != 1:
        fail("Give exactly one of --from-csv FILE, --from-decisions or --from-pod-list.", 2)
    if with_reasons and not from_pod_list:
        fail("--with-reasons goes with --from-pod-list (the reasons of this pod's list).", 2)
    if trusted_comment:
        minisign.check_note(trusted_comment)  # (before the key's password is worked through)
    secret = publish.load_secret_key(secret_key, password_env)
    if source_csv:
        parsed = publish.from_csv(source_csv, skip_invalid=skip_invalid)
    else:
        from podmod.db import state_connection

        with state_connection(get_config(ctx)) as state:
            if from_pod_list:
                parsed = publish.from_pod_list(state, with_reasons=with_reasons)
            else:
                parsed = publish.from_decisions(state, label=label)
    for error in parsed.errors:
        click.echo(f"left out {error.unit} {error.line}: {error.message}", err=True)
    written = publish.publish(
        parsed, output, secret, trusted_comment=trusted_comment, output_format=output_format
    )
    left_out = written.left_out_text()
    if written.hidden:
        left_out += f"; {written.hidden} kept hidden (#obfuscate), as their source had them"
    if written.widened:
        left_out += (
            f"; {written.widened} for one host alone written as their domain (the format cannot"
            " say one host alone: subscribers apply them to its subdomains too)"
        )
    click.echo(
        f"wrote {written.body} ({entries_text(written.entries)}, {output_format} format"
        f"{left_out}) "
        f"and {written.signature}"
    )
    # What the source held besides its entries, which no format carries on (its subscribers'
    # syncs say the same of it): told, so that the publisher knows the file lacks it.
    read_past = skipped_notes(
        obfuscated=parsed.obfuscated,
        patterns=parsed.patterns,
        repeated=parsed.duplicates,
        unblocked=parsed.unblocked,
        invalid=0,  # (each named above, by line)
        canaries=[],
        format=parsed.format,
    )
    if parsed.canaries:
        read_past.append(
            f"its canary {', '.join(parsed.canaries)} not written (a canary is its publisher's:"
            " add one of yours for your subscribers' require_canary)"
        )
    if read_past:
        click.echo(f"from the source: {'; '.join(read_past)}")
    warning = written.warning()
    if warning:
        click.echo(f"warning: {warning}", err=True)


@lists.command("keygen")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
)
@click.option("--name", default="podmod", show_default=True)
@click.option("--password-env", help="Encrypt the secret key with the password in this variable.")
@podmin_errors
def lists_keygen(directory: Path, name: str, password_env: str | None) -> None:
    """Make a minisign key pair for publishing lists."""
    from podmod.lists import publish

    public_path, secret_path = publish.keygen(directory, name, publish.password_from(password_env))
    public_line = public_path.read_text().splitlines()[1]
    click.echo(f"public key (give it to subscribers as public_key): {public_line}")
    click.echo(f"wrote {public_path} and {secret_path} (keep the secret key private)")


@main.command()
@click.option(
    "--dry-run", is_flag=True, help="Count what would be removed, per table, and remove nothing."
)
@JSON_OPTION
@click.pass_context
@podmin_errors
def prune(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Remove what the [retention] settings no longer keep: list history older than
    list_history_days, delivered notifications and finished work older than their days. The
    audit log, decisions and cases are never pruned. `podmod lists sync` runs it once a day."""
    from podmod import retention, store
    from podmod.db import state_connection

    with state_connection(get_config(ctx)) as state:
        store.require_current_schema(state)
        report = retention.prune(
            get_config(ctx), state, dry_run=dry_run, actor=cli_actor(), source="cli"
        )
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
        return
    for table, count in report.removed.items():
        click.echo(f"{table}: {'would remove' if dry_run else 'removed'} {count:,}")
    for name, numbers in report.versions.items():
        click.echo(
            f"list {name}: versions {retention.numbers_text(numbers)}"
            f" {'would keep' if dry_run else 'keep'} their counts, not their ended entries"
        )
    click.echo(("Dry run: " if dry_run else "") + report.text() + f" ({report.seconds:.1f} s)")


def _demo_directory() -> Path:
    from podmod.demo import default_directory

    return default_directory()


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: _demo_directory(),
    show_default="~/.local/share/podmod-demo; as root /var/lib/podmod-demo",
    help="Where the demo's databases and files live.",
)
@click.option("--port", type=int, help="Port of the web UI (default: 8790, or the next free one).")
@click.option(
    "--keep", is_flag=True, help="Keep the previous demo's data instead of starting fresh."
)
@podmin_errors
def demo(directory: Path, port: int | None, keep: bool) -> None:
    """Run the whole system with embedded PostgreSQL and Redis and a small demo pod."""
    from podmod import demo as demo_module

    running = demo_module.start(directory, port=port, keep=keep, echo=click.echo)
    stopping: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: stopping.append(number))
    failure = None
    try:
        while not stopping and not failure:
            failure = running.failure()
            time.sleep(0.5)
    finally:
        demo_module.stop(running)
        click.echo("podmod demo stopped.")
    if failure:
        fail(f"{failure}; the demo stopped (see {running.directory / 'podmod.log'}).")


@main.command()
@click.option(
    "--backfill",
    is_flag=True,
    help="Scan everything already on the pod against every content entry in force "
    "(resumes an interrupted backfill).",
)
@click.option(
    "--list",
    "list_name",
    metavar="NAME",
    help="Scan everything already on the pod against one list's content entries.",
)
@click.option("--status", "show_status", is_flag=True, help="Only show what is waiting.")
@JSON_OPTION
@click.pass_context
@podmin_errors
def scan(
    ctx: click.Context, backfill: bool, list_name: str | None, show_status: bool, as_json: bool
) -> None:
    """Match the pod's content against the lists' hashtag, phrase, url, pdq and sha256 entries.

    New content is scanned by the reader and the workers as it appears; list versions queue a
    scan of their new entries. This command scans in the foreground: the scans list versions
    queued (default), one list's entries (--list), or everything (--backfill).
    """
    from podmod import scan as scanning
    from podmod import store
    from podmod.db import state_connection

    config = get_config(ctx)
    with state_connection(config) as state:
        store.require_current_schema(state)
    if show_status:
        waiting = scanning.status(config)
        if as_json:
            click.echo(json.dumps(waiting, indent=2, default=str))
        else:
            _echo_scan_status(waiting)
        return
    if backfill and list_name:
        fail("Give --backfill or --list NAME, not both.", 2)
    bars: list[Any] = []

    def start(run_id: int, total: int) -> None:
        finish()
        if not as_json:
            bar = click.progressbar(
                length=max(total, 1),
                label=f"scan run {run_id}",
                show_pos=True,
                show_eta=True,
                file=sys.stderr,
            )
            bars.append(bar.__enter__())

    def advance(count: int) -> None:
        if bars:
            bars[-1].update(count)

    def finish() -> None:
        while bars:
            bars.pop().__exit__(None, None, None)

    try:
        if backfill:
            outcome = scanning.backfill(
                config, created_by=cli_actor(), on_start=start, progress=advance
            )
            results = [outcome] if outcome else []
        else:
            if list_name:
                scanning.scan_list(config, list_name, created_by=cli_actor())
            results = scanning.process_pending_runs(config, on_start=start, progress=advance)
    finally:
        finish()
    if as_json:
        click.echo(json.dumps([r.as_json() for r in results], indent=2, default=str))
        return
    if not results:
        click.echo(
            "Nothing to scan: no content entry (hashtag, phrase, url, pdq, sha256) applies."
            if backfill or list_name
            else "Nothing to scan: no list version is waiting for a scan of the content already on "
            "the pod (`podmod scan --backfill` scans everything)."
        )
    for r in results:
        rate = r.items / r.seconds if r.seconds else 0.0
        click.echo(
            f"scan run {r.run_id}: {r.items} items in {r.seconds:.1f} s "
            f"({rate:,.0f}/s), {r.matched} new matches; "
            f"{'done' if r.done else 'not done yet (run the command again)'}."
        )


def _echo_scan_status(waiting: dict[str, Any]) -> None:
    """`podmod scan --status` for a person: what waits, then each recent run's progress."""
    matches = waiting["active_matches"]
    click.echo(
        f"{waiting['pending_items']} new items waiting in {waiting['pending_batches']} scan "
        f"batches; {matches} active content match{'es' if matches != 1 else ''} "
        f"({waiting['matches']} ever)."
    )
    for run in waiting["runs"]:
        what = f"list {run['list']} version {run['version']}" if run["version"] else run["list"]
        if run["entry"]:
            what = f"list {run['list']} entry {printable(run['entry'])}"
        tables = ", ".join(
            f"{name} {table['items']} scanned, {table['matched']} matched"
            for name, table in run["tables"].items()
        )
        click.echo(
            f"  run {run['id']} ({run['reason']}, {what or 'everything'}, {run['created_at']}): "
            f"{'done' if run['done'] else 'running'}{'; ' + tables if tables else ''}"
        )


@main.command("not-a-match")
@click.argument("signal_id", type=int)
@click.option("--reason", help="Why; kept in the decision and the audit log.")
@click.option(
    "--account",
    "whole_account",
    is_flag=True,
    help="The entry matches nothing of this account, not only this item.",
)
@JSON_OPTION
@click.pass_context
@podmin_errors
def not_a_match(
    ctx: click.Context, signal_id: int, reason: str | None, whole_account: bool, as_json: bool
) -> None:
    """Mark a content match (a signal id from `podmod cases --json`) as a false positive."""
    from podmod import actions

    result = actions.mark_not_a_match(
        get_config(ctx),
        signal_id=signal_id,
        actor=cli_actor(),
        source="cli",
        reason=reason,
        whole_account=whole_account,
    )
    click.echo(json.dumps(result.__dict__) if as_json else result.message)


def bench_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--server-url, --redis-url and --json, which every benchmark but pdq takes."""
    command = click.option(
        "--server-url",
        envvar="PODMOD_BENCH_DATABASE_URL",
        help="PostgreSQL server for the scratch database (default: an embedded one).",
    )(command)
    command = click.option(
        "--redis-url",
        envvar="PODMOD_BENCH_REDIS_URL",
        help="Redis database the run may flush (default: an embedded Redis).",
    )(command)
    return JSON_OPTION(command)


class SizedCommand(click.Command):
    """A benchmark command whose size flags are the fields of a dataclass in podmod.bench.sizes,
    made when its command line is first read: importing this module imports no benchmark."""

    def __init__(self, *args: Any, sizes: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sizes = sizes
        self.sized = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self.sized:
            import dataclasses

            from podmod.bench import sizes

            self.params[:0] = [
                click.Option(
                    ["--" + size.name.replace("_", "-"), size.name],
                    default=size.default,
                    show_default=True,
                    type=type(size.default),
                    help=size.metadata["help"],
                )
                for size in dataclasses.fields(getattr(sizes, self.sizes))
            ]
            self.sized = True
        return super().get_params(ctx)


class SizedGroup(SizedCommand, click.Group):
    """`podmod bench` itself: every figure in one run, sized by podmod.bench.sizes.Sizes."""


@main.group(cls=SizedGroup, sizes="Sizes", invoke_without_command=True)
@bench_options
@click.pass_context
@podmin_errors
def bench(
    ctx: click.Context,
    server_url: str | None,
    redis_url: str | None,
    as_json: bool,
    **sizes: Any,
) -> None:
    """Measure podmod on synthetic pods in scratch databases, each figure beside a naive
    baseline measured in the same run (see README, "Performance"). The subcommands run one
    benchmark each, at the sizes the targets name."""
    if ctx.invoked_subcommand is not None:
        return
    from podmod.bench import Sizes, format_table, run_all

    def progress(message: str) -> None:
        click.echo(f"… {message}", err=True)

    result = run_all(server_url, redis_url, Sizes(**sizes), progress=progress)
    click.echo(json.dumps(result, indent=2) if as_json else format_table(result))


def print_figures(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    flat: dict[str, Any] = {}
    for name, value in figures.items():
        if isinstance(value, dict):
            flat.update({f"{name}.{inner}": item for inner, item in value.items()})
        else:
            flat[name] = value
    width = max(len(name) for name in flat)
    for name, value in flat.items():
        click.echo(f"{name:<{width}}  {value}")


@bench.command("intake", cls=SizedCommand, sizes="IntakeSizes")
@bench_options
@podmin_errors
def bench_intake(
    server_url: str | None, redis_url: str | None, as_json: bool, **sizes: int
) -> None:
    """Time to ingest a backlog of reports into cases, reader and workers as processes."""
    from podmod.bench import intake

    print_figures(intake.bench_intake(server_url, redis_url, **sizes), as_json)


@bench.command("lists", cls=SizedCommand, sizes="ListSizes")
@click.option(
    "--shape",
    type=click.Choice(["podmod", "mastodon", "both"]),
    default="both",
    show_default=True,
    help="podmod's format (accounts), a Mastodon domain-block export (pods), or both.",
)
@bench_options
@podmin_errors
def bench_lists(
    shape: str, server_url: str | None, redis_url: str | None, as_json: bool, **sizes: int
) -> None:
    """Sync and apply a signed list served over loopback HTTPS, then re-sync it unchanged; beside
    the floor (COPY, index, join of the same rows) and the apply by a naive loop."""
    from podmod.bench import lists

    shapes = tuple(lists.SHAPES) if shape == "both" else (shape,)
    print_figures(lists.bench_lists(server_url, redis_url, shapes=shapes, **sizes), as_json)


@bench.command("web", cls=SizedCommand, sizes="WebSizes")
@bench_options
@podmin_errors
def bench_web(server_url: str | None, redis_url: str | None, as_json: bool, **sizes: int) -> None:
    """Server time of the queue, case page and lock click with a large store."""
    from podmod.bench import web

    print_figures(web.bench_web(server_url, redis_url, **sizes), as_json)


@bench.command("scan", cls=SizedCommand, sizes="ScanSizes")
@bench_options
@podmin_errors
def bench_scan(server_url: str | None, redis_url: str | None, as_json: bool, **sizes: int) -> None:
    """`podmod scan --backfill` throughput and worker memory with large lists loaded."""
    from podmod.bench import scan

    print_figures(scan.bench_scan(server_url, redis_url, **sizes), as_json)


@bench.command("pdq", cls=SizedCommand, sizes="PdqSizes")
@JSON_OPTION
@podmin_errors
def bench_pdq(as_json: bool, **sizes: int) -> None:
    """PDQ lookup among a million list hashes, and hashing a 1-megapixel photo (no database)."""
    from podmod.bench import pdq

    print_figures(pdq.bench_pdq(**sizes), as_json)


@bench.command("prune", cls=SizedCommand, sizes="PruneSizes")
@bench_options
@podmin_errors
def bench_prune(server_url: str | None, redis_url: str | None, as_json: bool, **sizes: Any) -> None:
    """The first prune of a long list history while `lists sync` applies a version beside it:
    its time, the rows and bytes it frees, and how long the sync waited on a lock."""
    from podmod.bench import prune

    print_figures(prune.bench_prune(server_url, redis_url, **sizes), as_json)


@bench.command("outage", cls=SizedCommand, sizes="OutageSizes")
@bench_options
@podmin_errors
def bench_outage(
    server_url: str | None, redis_url: str | None, as_json: bool, **sizes: float
) -> None:
    """Seconds from the end of a database outage to the backlog done, beside a worker whose jobs
    leave a lost connection to RQ's retries."""
    from podmod.bench import intake

    print_figures(intake.compare_outage(server_url, redis_url, **sizes), as_json)


@bench.command("latency", cls=SizedCommand, sizes="LatencySizes")
@bench_options
@podmin_errors
def bench_latency(
    server_url: str | None, redis_url: str | None, as_json: bool, **sizes: float
) -> None:
    """Report-to-case latency while the reader and a worker run."""
    from podmod.bench import latency

    print_figures(latency.bench_latency(server_url, redis_url, **sizes), as_json)


if __name__ == "__main__":
    main()
