"""The functions RQ workers run. Each loads the configuration the worker was started with
(PODMOD_CONFIG and PODMOD_* variables) and calls into podmod; each is idempotent, so each rides
out a database outage by starting its work again (podmod.durable.through_outages) for up to half of
worker.job_timeout before it fails and RQ's retries take over."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from podmod import intake
from podmod.config import Config, load_config
from podmod.durable import through_outages

T = TypeVar("T")


def _run(name: str, work: Callable[[Config], T]) -> T:
    config = load_config()
    return through_outages(
        lambda: work(config), name=name, give_up_after=config["worker.job_timeout"] / 2
    )


def ingest_report_batch(batch_id: int) -> int:
    """Store one intake batch of reports as cases and signals; returns the new signals."""
    return _run(f"intake batch {batch_id}", lambda config: intake.ingest_batch(config, batch_id))


def scan_content_batch(batch_id: int) -> int:
    """Match one batch of new posts, comments, profiles or photos against the lists' content
    entries; returns the new content signals."""
    from podmod import scan

    return _run(f"scan batch {batch_id}", lambda config: scan.scan_batch(config, batch_id))


def scan_content_run(run_id: int) -> bool:
    """Work on a scan of the content already on the pod (a list version's new entries) for a
    while; returns whether it is done (the reader enqueues the rest)."""
    from podmod import scan

    return _run(f"scan run {run_id}", lambda config: scan.scan_run(config, run_id))


def deliver_outbox(outbox_id: int) -> str:
    """Deliver one outbox row (a mail or a webhook) if it is due and not done; returns how it went
    (podmod.notify.deliver.Outcome's status)."""
    from podmod.notify import deliver

    return _run(
        f"outbox row {outbox_id}",
        lambda config: deliver.deliver(config, outbox_id).status,
    )
