"""`podmod bench` as a podmin runs it: every figure beside a naive baseline measured in the same
run, as a table or JSON. Timings are not asserted (they are the benchmark's output, not a test);
what is checked is that each side really did its work and that the table says what it measured."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from podmod import bench

TINY = {
    "reports": 400,
    "posts": 2000,
    "baseline-reports": 40,
    "rate": 50,
    "seconds": 1,
    "entries": 2000,
    "people": 1500,
    "matches": 30,
    "list-syncs": 2,
    "cases": 200,
    "signals": 2000,
    "requests": 8,
}


def run_bench(services, *args: str, timeout: float) -> dict:
    """`podmod bench ARGS --json` against the test services; its parsed output."""
    done = subprocess.run(
        [sys.executable, "-m", "podmod.cli", "bench", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            "PATH": "/usr/bin:/bin",
            "PODMOD_BENCH_DATABASE_URL": services["postgres"],
            "PODMOD_BENCH_REDIS_URL": services["redis"],
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.timeout(300)
def test_podmod_bench_measures_every_figure_beside_its_baseline(services):
    flags = [f"--{name}={value}" for name, value in TINY.items()]
    result = run_bench(services, *flags, timeout=280)
    details = result["details"]

    # Each side did the whole of its work on the same data.
    assert details["intake"]["ingested"] == TINY["reports"]
    assert details["intake_naive"]["ingested"] >= TINY["baseline-reports"]
    assert details["latency"]["visible"] == details["latency"]["reports"] == 50
    assert details["latency_naive"]["reports"] == 50
    own, mastodon = details["lists"]["podmod"], details["lists"]["mastodon"]
    assert own["matches"] == own["apply_matches"] == TINY["matches"]  # the baseline found the same
    assert own["format"] == "podmod" and mastodon["format"] == "mastodon-csv"
    assert 0 < mastodon["matches"] == mastodon["apply_matches"]  # so did the subdomain baseline
    assert mastodon["exact_host_apply_matches"] == 0  # the list names apexes: only subdomains match
    assert mastodon["entries"] == TINY["entries"] * 9 // 10  # one row in ten is obfuscated
    for shape in (own, mastodon):
        assert shape["floor_seconds"] > 0 and shape["times_the_floor"] > 0
        # PostgreSQL alone storing the rows podmod's reading wrote: all of them, every index built
        assert shape["store_rows"] == shape["entries"] and shape["store_index_seconds"] > 0
        assert shape["store_times_the_floor"] > 0
        assert shape["reader_seconds"] > 0  # (and podmod's reading alone, beside it)
        # each sync anew on a fresh schema: each stored the whole list and matched again
        assert len(shape["runs"]) == TINY["list-syncs"], shape["runs"]
        assert all(seconds > 0 and floor > 0 for seconds, floor, _ in shape["runs"])
        assert shape["status"] == "applied"
        # where the first sync went: its phases and the process around them add up to it
        phases = shape["sync_phases"]
        assert {"fetch", "open", "rows", "indexes", "match", "process"} <= set(phases), phases
        assert all(seconds >= 0 for seconds in phases.values()), phases
        if len(shape["runs"]) <= 2:  # (the medians of one or two runs are means: they add up)
            assert sum(phases.values()) == pytest.approx(shape["sync_and_apply_seconds"], abs=0.02)
        # the next version: of every 100 rows one removed, one changed, one added
        step = TINY["entries"] // 100
        assert shape["changed_version"] == {"status": "applied", "added": step, "removed": step}
        # then one removing three rows in five: held, its changes kept, and looked at
        held = shape["held_version"]
        assert held["status"] == "held" and held["removed"] > shape["entries"] // 2, held
        assert shape["held_resync_seconds"] > 0 and shape["held_first_diff_seconds"] > 0
    assert details["web"]["open_cases"] == TINY["cases"]
    assert details["web"]["memory"]["requests"] == 2 + TINY["requests"]

    figures = {figure["name"]: figure for figure in result["figures"]}
    assert len(figures) == 18
    for figure in figures.values():
        assert figure["podmod"] > 0, figure
        assert figure["baseline"] > 0 and figure["baseline_name"], figure
        expected = (
            figure["podmod"] / figure["baseline"]
            if figure["higher_is_better"]
            else figure["baseline"] / figure["podmod"]
        )
        assert figure["ratio"] == pytest.approx(expected, rel=0.01, abs=0.01)
    memory = [f for f in figures.values() if f["unit"] == "MiB"]
    assert [f["name"].split()[0] for f in memory] == ["reader", "worker", "web"]


def test_the_table_says_better_or_worse_and_names_each_baseline():
    figures = [
        bench.Figure("intake", "reports/s", 5000.0, 50.0, "one job each", higher_is_better=True),
        bench.Figure("lock p95", "ms", 20.0, 10.0, "three writes", target="< 100 ms"),
        bench.Figure("sync", "s", 25.0, None, ""),
        bench.Figure("sync + apply", "s", 3.0, 2.0, "floor", relation="the floor"),
    ]
    table = bench.format_table(
        {"figures": [figure.as_json() for figure in figures], "seconds": 1.0}
    )
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["figure", "podmod", "naive"]
    intake, lock, sync, floor = lines[2:6]
    assert "100.0× better" in intake and "5,000 reports/s" in intake and "one job each" in intake
    assert "2.0× worse" in lock and "< 100 ms" in lock
    assert sync.split()[-1] == "—"
    assert "1.50× the floor" in floor


def test_the_table_says_where_a_list_sync_went_beside_its_floor():
    lists = {
        "mastodon": {
            "sync_and_apply_seconds": 3.75,
            "sync_phases": {"fetch": 0.26, "rows": 1.51, "process": 0.34},
            "floor_seconds": 1.15,
            "floor_copy_seconds": 0.29,
            "floor_index_seconds": 0.44,
            "floor_join_seconds": 0.41,
            "reader_seconds": 1.3,
            "store_seconds": 1.54,
        }
    }
    table = bench.format_table({"figures": [], "seconds": 1.0, "details": {"lists": lists}})
    assert (
        "Mastodon export sync 3.75 s: fetch 0.26 s, rows 1.51 s, process 0.34 s; its floor"
        " 1.15 s: COPY 0.29 s, index 0.44 s, join 0.41 s; alone, the reading 1.30 s, PostgreSQL"
        " storing 1.54 s"
    ) in table.splitlines()


@pytest.mark.timeout(240)
def test_podmod_bench_outage_measures_both_workers_through_the_same_outage(services):
    result = run_bench(services, "outage", "--reports=400", "--outage=3", timeout=220)
    assert result["ingested"] == 400, "every report of the backlog is a signal in the end"
    assert result["connections_cut"] > 0, "the outage cut podmod's connections"
    assert 0 < result["resumed_seconds"] <= result["recovery_seconds"]
    assert 0 < result["naive_resumed_seconds"] <= result["naive_recovery_seconds"]
    expected = result["naive_recovery_seconds"] / result["recovery_seconds"]
    assert result["times_sooner"] == pytest.approx(expected, rel=0.05, abs=0.1)


@pytest.mark.timeout(240)
def test_podmod_bench_prune_prunes_a_long_history_beside_a_live_sync(services):
    result = run_bench(
        services, "prune", "--entries=20000", "--versions=12", "--days=4", timeout=220
    )
    history, prune, sync = result["history"], result["prune"], result["sync"]
    assert history["rows"] == 20000 + 11 * 200  # (an ended entry stays a row)
    # versions 1-8 were in force before the cutoff (8 was in force at it): what ended before 8
    assert prune["rows_removed"] == 6 * 200 and prune["versions_marked"] == 7
    assert prune["longest_transaction_seconds"] < prune["seconds"] + 0.001
    assert sync["alone_seconds"] > 0 and sync["beside_prune_seconds"] > 0
    assert sync["longest_lock_wait_seconds"] < 5
    # (the space VACUUM freed, where PostgreSQL has pg_freespacemap; said unknown where not, as
    # on the embedded PostgreSQL of a bare machine)
    reusable = prune["bytes_reusable_after_vacuum"]
    assert (reusable is None) == ("bytes_reusable_unknown" in prune), prune


@pytest.mark.parametrize(
    ("module", "may_load"),
    [
        ("podmod.cli", set()),
        # The baselines' processes: their memory is a figure, so they load no other benchmark.
        ("podmod.bench.intake_naive", {"podmod.bench", "podmod.bench.sizes"}),
        ("podmod.bench.web_naive", {"podmod.bench", "podmod.bench.sizes"}),
    ],
)
def test_importing_the_command_line_or_a_baseline_loads_no_benchmark(module, may_load):
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, {module}; print(*(m for m in sys.modules if m.startswith('podmod.b')))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert set(done.stdout.split()) - {module} == may_load, done.stdout


def test_a_measured_command_is_reported_at_its_own_peak_memory_not_the_benchmarks():
    # The benchmark holds a million floor rows and two versions of a list when it starts a sync:
    # a child it forks itself was reported at the benchmark's size (496 MiB for a 363 MiB sync).
    import os
    import sys

    from podmod.bench.scratch import run_measured

    ballast = b"x" * (400 * 2**20)  # (resident: written, not only allocated)
    code, out, err, seconds, peak_kib = run_measured(
        [sys.executable, "-c", "print(len(b'y' * (120 * 2**20)))"], dict(os.environ)
    )

    assert len(ballast) and code == 0 and out.strip() == str(120 * 2**20), err
    assert 120 * 1024 <= peak_kib < 250 * 1024, peak_kib
    assert 0 < seconds < 60
