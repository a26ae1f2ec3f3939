"""`podmod bench`: measure podmod on synthetic pods in scratch databases, each figure beside a naive
baseline measured in the same run, on the same data.

Everything runs for real: the diaspora* tables, `podmod read` and `podmod worker` as processes,
PostgreSQL and Redis (given by URL, or embedded ones started for the run). A module per figure,
its naive baseline beside it: intake (with the outage; intake_naive), latency, lists (lists_naive),
web (web_naive), scan, pdq. What they stand on is in scratch; how big each run is, in sizes. This
module runs every figure at once (run_all) and makes the table. Nothing here is used by podmod at
run time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podmod.bench.sizes import Sizes


@dataclass
class Figure:
    """One measured figure of podmod beside the naive baseline measured in the same run."""

    name: str
    unit: str
    podmod: float
    baseline: float | None
    baseline_name: str
    higher_is_better: bool = False
    target: str = ""
    relation: str = ""  # set: the baseline is a bound, and the table says "1.8 times the floor"

    @property
    def ratio(self) -> float | None:
        """How many times better podmod is (above 1) or worse (below 1) than the baseline."""
        if self.baseline is None or not self.podmod or not self.baseline:
            return None
        if self.higher_is_better:
            return self.podmod / self.baseline
        return self.baseline / self.podmod

    def as_json(self) -> dict[str, object]:
        ratio = self.ratio
        return {
            "name": self.name,
            "unit": self.unit,
            "podmod": self.podmod,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "higher_is_better": self.higher_is_better,
            "ratio": None if ratio is None else round(ratio, 2),
            "target": self.target,
            "relation": self.relation,
        }


def run_all(server_url: str | None, redis_url: str | None, sizes: Sizes, progress=print) -> dict:
    """Every benchmark with its baseline; returns {"sizes", "figures", "details", "seconds"}."""
    # Imported here, not at the top: a baseline's process (the naive worker, the bare Flask app)
    # runs one module of this package, and its memory is a figure.
    from podmod.bench.intake import bench_intake, bench_intake_naive
    from podmod.bench.latency import bench_latency
    from podmod.bench.lists import bench_lists
    from podmod.bench.scratch import servers
    from podmod.bench.web import bench_web

    intake = {"reports": sizes.reports, "posts": sizes.posts}
    latency = {"rate": sizes.rate, "seconds": sizes.seconds, "posts": sizes.posts}
    runs: list[tuple[str, str, Callable[..., Any], dict[str, Any]]] = [
        (f"intake: {sizes.reports:,} reports, podmod", "intake", bench_intake, intake),
        (
            f"intake: naive baseline, first {sizes.baseline_reports:,} reports",
            "intake_naive",
            bench_intake_naive,
            intake | {"measured": sizes.baseline_reports},
        ),
        (
            f"latency: {sizes.rate:g} reports/s for {sizes.seconds:g} s, podmod and naive",
            "latency",
            bench_latency,
            latency,
        ),
        ("", "latency_naive", bench_latency, latency | {"naive": True}),
        (
            f"lists: {sizes.entries:,} entries on {sizes.people:,} people",
            "lists",
            bench_lists,
            {
                "entries": sizes.entries,
                "people": sizes.people,
                "matches": sizes.matches,
                "syncs": sizes.list_syncs,
            },
        ),
        (
            f"web: {sizes.cases:,} open cases, {sizes.signals:,} signals",
            "web",
            bench_web,
            {"cases": sizes.cases, "signals": sizes.signals, "requests": sizes.requests},
        ),
    ]
    began = time.perf_counter()
    details: dict[str, object] = {}
    with servers(server_url, redis_url) as (server_url, redis_url):
        for message, name, benchmark, arguments in runs:
            if message:
                progress(message)
            details[name] = benchmark(server_url, redis_url, **arguments)
    return {
        "sizes": sizes.__dict__,
        "figures": [figure.as_json() for figure in figures_of(details, sizes)],
        "details": details,
        "seconds": round(time.perf_counter() - began, 1),
    }


def figures_of(details: dict, sizes: Sizes) -> list[Figure]:
    """The table: podmod's figure, the baseline's, and what the baseline is."""
    intake, naive = details["intake"], details["intake_naive"]
    latency, latency_naive = details["latency"], details["latency_naive"]
    lists, web = details["lists"], details["web"]
    per_report = "one RQ job per report, row-by-row inserts"
    in_time = f" ({latency_naive['visible']} of {latency_naive['reports']} in time)"
    return [
        Figure(
            f"intake throughput, backlog of {sizes.reports:,} reports",
            "reports/s",
            intake["reports_per_second"],
            naive["reports_per_second"],
            per_report + f" (first {naive['measured']:,} reports)",
            higher_is_better=True,
            target="100,000 in < 30 s",
        ),
        *(
            Figure(
                f"report → case latency {p} at {sizes.rate:g} reports/s",
                "s",
                latency[f"{p}_seconds"],
                latency_naive[f"{p}_seconds"],
                per_report + said,
                target=target,
            )
            for p, said, target in (("p50", "", ""), ("p95", in_time, "< 2 s"))
        ),
        *list_figures(lists, sizes),
        *(
            Figure(
                name, "ms", web[ours]["p95_ms"], web["naive"][theirs]["p95_ms"], what, target=target
            )
            for name, ours, theirs, what, target in (
                (
                    f"queue page p95, {web['open_cases']:,} open cases",
                    "queue_first_page",
                    "queue_first_page",
                    "priority aggregated per request, OFFSET",
                    "< 50 ms",
                ),
                (
                    "queue page 90% deep p95",
                    "queue_deep_keyset_page",
                    "queue_deep_page",
                    "the same, OFFSET 90%",
                    "< 50 ms",
                ),
                (
                    "case page p95",
                    "case_page",
                    "case_page",
                    "a query per signal and item",
                    "< 50 ms",
                ),
                (
                    "lock click → locked_at committed p95",
                    "lock_click_to_locked_at_committed",
                    "lock",
                    "3 autocommitted writes",
                    "< 100 ms",
                ),
            )
        ),
        *(
            Figure(name, "MiB", ours, theirs, what)
            for name, ours, theirs, what in (
                (
                    "reader peak memory",
                    intake["reader_peak_memory_mib"],
                    naive["reader_peak_memory_mib"],
                    "naive reader (whole rows, one enqueue each)",
                ),
                (
                    "worker peak memory (worker and its work horse)",
                    intake["worker_peak_memory_mib"],
                    naive["worker_peak_memory_mib"],
                    "plain RQ worker running the naive job",
                ),
                (
                    "web peak memory (podmod serve, signed-in pages)",
                    web["memory"]["web_peak_memory_mib"],
                    web["memory"]["bare_flask_mib"],
                    "a bare Flask app under waitress",
                ),
            )
        ),
    ]


def list_figures(lists: dict, sizes: Sizes) -> list[Figure]:
    """The list rows: apply beside the naive loop, sync + apply beside the floor (the COPY, index
    and join the same rows cost at least), subdomain matching beside exact-host matching."""
    own, mastodon = lists["podmod"], lists["mastodon"]
    size = f"{sizes.entries:,} × {sizes.people:,} people"
    floor = "floor: COPY of the entry rows, index on the value, join against the people"
    return [
        Figure(
            f"list apply, podmod format, {size}",
            "s",
            own["apply_seconds"],
            own["naive_apply_seconds"],
            "Python loop over people, a query each",
        ),
        Figure(
            f"list apply, Mastodon export (subdomains), {size}",
            "s",
            mastodon["apply_seconds"],
            mastodon["naive_apply_seconds"],
            "Python loop over people, a query each",
        ),
        Figure(
            f"list sync + apply as a process, podmod format, {size}",
            "s",
            own["sync_and_apply_seconds"],
            own["floor_seconds"],
            floor,
            relation="the floor",
        ),
        Figure(
            f"list sync + apply as a process, Mastodon export, {size}",
            "s",
            mastodon["sync_and_apply_seconds"],
            mastodon["floor_seconds"],
            floor,
            relation="the floor",
            target="< 2× the floor",
        ),
        Figure(
            f"PostgreSQL alone storing the entries as podmod stores them, Mastodon export, {size}",
            "s",
            mastodon["store_seconds"],
            mastodon["floor_seconds"],
            floor,
            relation="the floor",
        ),
        Figure(
            f"list sync of the next version (1% of rows changed, 1% removed, 1% added), Mastodon"
            f" export, {size}",
            "s",
            mastodon["changed_resync_seconds"],
            mastodon["sync_and_apply_seconds"],
            "the first sync of the same list",
            relation="the first sync",
        ),
        Figure(
            "subdomain matching: finding the matches, Mastodon export",
            "s",
            mastodon["subdomain_finding_seconds"],
            mastodon["exact_host_finding_seconds"],
            "the same, matching exact hosts only",
            relation="exact-host",
            target="< 2× exact-host",
        ),
        Figure(
            "subdomain matching: the whole apply (storing the matches it finds)",
            "s",
            mastodon["apply_seconds"],
            mastodon["exact_host_apply_seconds"],
            "the same, matching exact hosts only (which finds none of them)",
            relation="exact-host",
        ),
    ]


def format_table(result: dict) -> str:
    """The figures as a plain-text table, ratios as "N times better" or "worse"."""

    def number(value: float | None) -> str:
        if value is None:
            return "—"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"

    rows = [("figure", "podmod", "naive baseline", "vs baseline", "target", "baseline is")]
    for figure in result["figures"]:
        ratio = figure["ratio"]
        if ratio is None:
            versus = "—"
        elif figure.get("relation"):
            versus = f"{figure['podmod'] / figure['baseline']:,.2f}× {figure['relation']}"
        elif ratio >= 1:
            versus = f"{ratio:,.1f}× better"
        else:
            versus = f"{1 / ratio:,.1f}× worse"
        rows.append(
            (
                figure["name"],
                f"{number(figure['podmod'])} {figure['unit']}",
                "—"
                if figure["baseline"] is None
                else f"{number(figure['baseline'])} {figure['unit']}",
                versus,
                figure["target"] or "",
                figure["baseline_name"],
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.extend(sync_phases_text(result.get("details", {}).get("lists", {})))
    lines.append(f"({result['seconds']} s in all)")
    return "\n".join(lines)


def sync_phases_text(lists: dict) -> list[str]:
    """Where each list shape's first sync went (medians), beside the floor's parts and the two
    halves of its rows phase measured alone: "Mastodon export sync 3.75 s: process 0.34 s, fetch
    0.26 s, …; its floor 1.15 s: COPY 0.29 s, …; alone, the reading 1.30 s, PostgreSQL storing
    1.54 s"."""
    shapes = {"podmod": "podmod format", "mastodon": "Mastodon export"}
    lines = []
    for shape, run in lists.items():
        phases = ", ".join(
            f"{name} {seconds:.2f} s" for name, seconds in run["sync_phases"].items()
        )
        lines.append(
            f"{shapes.get(shape, shape)} sync {run['sync_and_apply_seconds']:.2f} s: {phases};"
            f" its floor {run['floor_seconds']:.2f} s: COPY {run['floor_copy_seconds']:.2f} s,"
            f" index {run['floor_index_seconds']:.2f} s, join {run['floor_join_seconds']:.2f} s;"
            f" alone, the reading {run['reader_seconds']:.2f} s, PostgreSQL storing"
            f" {run['store_seconds']:.2f} s"
        )
    return lines
