"""podmod.bench.web: the web figures, measured at a small size on the test services."""

from __future__ import annotations

from podmod.bench.web import bench_web


def test_the_web_benchmark_runs_at_a_small_size(services):
    figures = bench_web(
        services["postgres"], services["redis"], cases=300, signals=3000, requests=5
    )
    assert figures["open_cases"] == 300 and figures["signals"] == 3015
    for name in (
        "queue_first_page",
        "queue_deep_keyset_page",
        "case_page",
        "lock_click_to_locked_at_committed",
        "sign_in",
    ):
        assert 0 < figures[name]["p50_ms"] <= figures[name]["p95_ms"] <= figures[name]["max_ms"]
