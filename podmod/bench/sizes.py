"""How big `podmod bench`'s synthetic pods are, for the whole run and for each benchmark on its own:
one dataclass a command, one field a flag. Imports nothing of the benchmarks, so that building the
command line stays cheap."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _size(default: int | float, text: str | None = None) -> Any:
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
    list_syncs: int = _size(3, "Times each list is synced anew, the floor beside each (medians).")
    cases: int = _size(5_000, "Open cases for the web figures.")
    signals: int = _size(50_000, "Signals for the web figures.")
    requests: int = _size(50, "Timed requests per web figure.")


# Each benchmark on its own (`podmod bench intake` and the others): the sizes the targets name.


@dataclass
class IntakeSizes:
    reports: int = _size(100_000)
    posts: int = _size(200_000)
    workers: int = _size(1)


@dataclass
class LatencySizes:
    rate: float = _size(20.0, "Reports inserted per second.")
    seconds: float = _size(15.0)
    posts: int = _size(200_000)


@dataclass
class OutageSizes:
    reports: int = _size(20_000, "Reports in the backlog.")
    outage: float = _size(15.0, "Seconds every connection is cut.")


@dataclass
class ListSizes:
    entries: int = _size(1_000_000)
    people: int = _size(1_000_000)
    matches: int = _size(10_000, "About how many people on the synthetic pod the list names.")
    syncs: int = _size(
        3,
        "Times each list is synced anew (podmod's schema made again), the floor measured beside"
        " each: the figures are their medians.",
    )


@dataclass
class WebSizes:
    cases: int = _size(100_000, "Open cases in the store.")
    signals: int = _size(1_000_000, "Signals in the store.")
    requests: int = _size(200, "Timed requests per figure.")


@dataclass
class ScanSizes:
    posts: int = _size(200_000, "Posts on the synthetic pod (plus a quarter as many comments).")
    phrases: int = _size(100_000)
    hashtags: int = _size(10_000)
    urls: int = _size(10_000)
    pdq: int = _size(1_000_000, "PDQ hashes in the list too (they weigh on memory, not on text).")


@dataclass
class PruneSizes:
    entries: int = _size(1_000_000, "Entries of the list (pod entries).")
    versions: int = _size(50, "Daily versions in its history, each changing `churn` of it.")
    churn: float = _size(0.01, "Share of the entries each version ends and adds.")
    days: int = _size(10, "retention.list_history_days of the prune.")


@dataclass
class PdqSizes:
    hashes: int = _size(1_000_000, "List PDQ hashes.")
    lookups: int = _size(400)
    images: int = _size(30, "1-megapixel images hashed.")
