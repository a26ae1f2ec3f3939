"""The functions RQ workers run. Each loads the configuration the worker was started with
(PODMOD_CONFIG and PODMOD_* variables) and calls into podmod; each is idempotent."""

from __future__ import annotations

from podmod import intake
from podmod.config import load_config


def ingest_report_batch(batch_id: int) -> int:
    """Store one intake batch of reports as cases and signals; returns the new signals."""
    return intake.ingest_batch(load_config(), batch_id)


def scan_content_batch(batch_id: int) -> int:
    """Match one batch of new posts, comments, profiles or photos against the lists' content
    entries; returns the new content signals."""
    from podmod import scan

    return scan.scan_batch(load_config(), batch_id)


def scan_content_run(run_id: int) -> bool:
    """Work on a scan of the content already on the pod (a list version's new entries) for a
    while; returns whether it is done (the reader enqueues the rest)."""
    from podmod import scan

    return scan.scan_run(load_config(), run_id)
