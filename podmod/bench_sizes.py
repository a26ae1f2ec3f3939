"""How big `podmod bench`'s synthetic pods are: one field a flag. Kept apart from podmod.bench so
that building the command line does not import the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _size(default: int | float, text: str) -> Any:
    """A size with its default and the --help text of its flag."""
    return field(default=default, metadata={"help": text})


@dataclass
class Sizes:
    """The defaults run in well under two minutes on 2 cores; the README's Performance section
    gives the sizes the targets name."""

    reports: int = _size(20_000, "Reports in the intake backlog.")
    posts: int = _size(20_000, "Posts on the intake and latency pods.")
    baseline_reports: int = _size(200, "Reports the naive intake baseline is timed over.")
    rate: float = _size(100.0, "Reports inserted per second for the latency figures.")
    seconds: float = _size(5.0, "How long reports are inserted for the latency figures.")
    entries: int = _size(100_000, "Rows of each signed list (podmod's format; a Mastodon export).")
    people: int = _size(50_000, "People on the list pods.")
    matches: int = _size(1_000, "About how many people on the pod each list names.")
    cases: int = _size(5_000, "Open cases for the web figures.")
    signals: int = _size(50_000, "Signals for the web figures.")
    requests: int = _size(50, "Timed requests per web figure.")
