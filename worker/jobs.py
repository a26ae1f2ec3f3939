"""The functions RQ workers run. Each loads the configuration the worker was started with
(PODMOD_CONFIG and PODMOD_* variables) and calls into podmod; each is idempotent."""

from __future__ import annotations

from podmod import intake
from podmod.config import load_config


def ingest_report_batch(batch_id: int) -> int:
    """Store one intake batch of reports as cases and signals; returns the new signals."""
    return intake.ingest_batch(load_config(), batch_id)
