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
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from podmod.config import Config, load_config
from podmod.errors import PodmodError


def fail(message: str, code: int = 1) -> None:
    click.echo(f"podmod: {message}", err=True)
    sys.exit(code)


def podmin_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn PodmodError into one line on stderr and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PodmodError as error:
            fail(str(error), error.exit_code)

    return wrapper


def get_config(ctx: click.Context) -> Config:
    obj = ctx.ensure_object(dict)
    if "config" not in obj:
        obj["config"] = load_config()
        from podmod.logs import setup_logging

        setup_logging(obj["config"]["log.level"])
    return obj["config"]


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
    from podmod import intake, pod_db, queue, store
    from podmod.db import pod_connection, state_connection

    config = get_config(ctx)
    rconn = queue.redis_connection(config)
    with state_connection(config) as state, pod_connection(config) as pod:
        pod_db.check_diaspora_schema(pod)
        store.require_current_schema(state)
        if not intake.acquire_reader_lock(state, wait=wait):
            fail("another `podmod read` is already running; only one reader runs at a time.", 4)
        stopping: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda number, _frame: stopping.append(number))
        result = intake.run_reader(
            config, pod, state, rconn, once=once, stop=lambda: bool(stopping)
        )
        if once:
            click.echo(
                f"read {result.new_reports} new reports into {len(result.new_batches)} batches; "
                f"enqueued {len(result.enqueued)} jobs; {result.reviewed_synced} reports newly "
                f"reviewed in diaspora*; {result.gaps_open} report ids awaited."
            )


@main.command()
@click.option("--burst", is_flag=True, help="Work until the queues are empty, then exit.")
@click.option("--name", help="Worker name (default: podmod-HOST-PID).")
@click.pass_context
@podmin_errors
def worker(ctx: click.Context, burst: bool, name: str | None) -> None:
    """Run an RQ worker for podmod's queues (start as many as you like, on any host)."""
    from rq import Worker

    from podmod import queue, store
    from podmod.db import state_connection

    config = get_config(ctx)
    with state_connection(config) as state:
        store.require_current_schema(state)
    rconn = queue.redis_connection(config)
    worker = Worker(
        queue.all_queues(config, rconn),
        connection=rconn,
        name=name or f"podmod-{socket.gethostname()}-{os.getpid()}",
    )
    worker.work(burst=burst, with_scheduler=True, logging_level=config["log.level"])


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
        f"{'ID':>7}  {'PRIO':>4}  {'STATUS':<9} {'REPORTS':>7} {'BY':>3}  {'AGE':>5}  ACCOUNT"
    )
    for case in found:
        age = _age(now, case.last_signal_at)
        where = "local" if case.local else "remote"
        account = case.account or "(author unknown: item deleted)"
        click.echo(
            f"{case.id:>7}  {case.priority:>4}  {case.status:<9} {case.pending_report_count:>7} "
            f"{case.reporter_count:>3}  {age:>5}  {account} ({where})"
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
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Check config, databases, schema and Redis; exit non-zero if anything is wrong."""
    from podmod import pod_db, queue, store
    from podmod.db import pod_connection, state_connection

    results: list[dict[str, Any]] = []

    def step(name: str, action: Callable[[], str]) -> bool:
        try:
            results.append({"check": name, "ok": True, "detail": action()})
            return True
        except PodmodError as error:
            results.append({"check": name, "ok": False, "detail": str(error)})
            return False

    def pod_ok() -> str:
        with pod_connection(config) as pod:
            pod_db.check_diaspora_schema(pod)
        return "reachable; diaspora* tables present"

    def schema_ok() -> str:
        with state_connection(config) as state:
            store.require_current_schema(state)
        return "up to date"

    def redis_ok() -> str:
        queue.redis_connection(config)
        return "reachable; not Sidekiq's database"

    config: Config
    if step("config", lambda: f"loaded from {get_config(ctx).source}"):
        config = get_config(ctx)
        step("pod database", pod_ok)
        step("podmod schema", schema_ok)
        step("redis", redis_ok)
    ok = all(r["ok"] for r in results)
    if as_json:
        click.echo(json.dumps({"ok": ok, "checks": results}, indent=2))
    else:
        for r in results:
            click.echo(f"{'ok  ' if r['ok'] else 'FAIL'} {r['check']}: {r['detail']}")
    sys.exit(0 if ok else 1)


@main.group()
def bench() -> None:
    """Measure podmod on a synthetic pod in a scratch database (see README, "Performance")."""


def bench_options(command: Callable[..., Any]) -> Callable[..., Any]:
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
    return click.option("--json", "as_json", is_flag=True)(command)


def print_figures(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        click.echo(f"{name:<{width}}  {value}")


@bench.command("intake")
@click.option("--reports", default=100_000, show_default=True)
@click.option("--posts", default=200_000, show_default=True)
@click.option("--workers", default=1, show_default=True)
@bench_options
@podmin_errors
def bench_intake(
    reports: int,
    posts: int,
    workers: int,
    server_url: str | None,
    redis_url: str | None,
    as_json: bool,
) -> None:
    """Time to ingest a backlog of reports into cases, reader and workers as processes."""
    from podmod import bench as benchmarks

    print_figures(
        benchmarks.bench_intake(
            server_url, redis_url, reports=reports, posts=posts, workers=workers
        ),
        as_json,
    )


@bench.command("latency")
@click.option("--rate", default=20.0, show_default=True, help="Reports inserted per second.")
@click.option("--seconds", default=15.0, show_default=True)
@click.option("--posts", default=200_000, show_default=True)
@bench_options
@podmin_errors
def bench_latency(
    rate: float,
    seconds: float,
    posts: int,
    server_url: str | None,
    redis_url: str | None,
    as_json: bool,
) -> None:
    """Report-to-case latency while the reader and a worker run."""
    from podmod import bench as benchmarks

    print_figures(
        benchmarks.bench_latency(server_url, redis_url, rate=rate, seconds=seconds, posts=posts),
        as_json,
    )


if __name__ == "__main__":
    main()
