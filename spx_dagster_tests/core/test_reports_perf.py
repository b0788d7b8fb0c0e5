"""Performance history: summaries, trends and alerts (core.perf_report, plain Python)."""

from __future__ import annotations

import datetime as dt

import pytest

from spx_dagster.core.perf_report import PerfSample, perf_report

T0 = dt.datetime(2024, 3, 1, 23, 0, tzinfo=dt.UTC).timestamp()


def sample(i: int, *, rows=600_000, seconds=60.0, rss=800.0, retries=0, session=None):
    day = session or dt.date(2024, 1, 2) + dt.timedelta(days=i)
    return PerfSample(
        session=day,
        when=T0 + i * 3600,
        rows=rows,
        bytes=rows * 50,
        seconds=seconds,
        peak_rss_mb=rss,
        retries=retries,
        run_id=f"run-{i}",
    )


def test_steady_history_has_trends_and_no_alerts() -> None:
    report = perf_report([sample(i) for i in range(20)], memory_total_bytes=16_000_000_000)
    assert report.alerts == []
    t = report.trends["records_per_min"]
    assert (t.window, t.recent, t.previous, t.change, t.better) == (10, 600_000, 600_000, 0, None)
    summary = report.summaries["mb_per_min"]
    assert summary.median == pytest.approx(30.0)  # 30 MB in one minute
    assert report.total_rows == 20 * 600_000 and report.notes == []


def test_throughput_down_more_than_30_percent_alerts() -> None:
    samples = [sample(i) for i in range(10)] + [sample(i, seconds=120.0) for i in range(10, 20)]
    report = perf_report(samples)
    t = report.trends["records_per_min"]
    assert t.change == pytest.approx(-0.5) and t.better is False
    assert report.trends["seconds"].change == pytest.approx(1.0)
    metrics = {a.metric for a in report.alerts}
    assert {"records_per_min", "mb_per_min", "seconds"} <= metrics
    message = next(a.message for a in report.alerts if a.metric == "records_per_min")
    assert "throughput down 50 %" in message and "600,000 → 300,000" in message


def test_a_small_drop_is_not_an_alert() -> None:
    samples = [sample(i) for i in range(10)] + [sample(i, seconds=75.0) for i in range(10, 20)]
    report = perf_report(samples)
    assert report.trends["records_per_min"].change == pytest.approx(-0.2)
    assert not [a for a in report.alerts if a.metric == "records_per_min"]


def test_retries_rising_from_none_alerts() -> None:
    samples = [sample(i) for i in range(10)] + [sample(i, retries=3) for i in range(10, 20)]
    alerts = perf_report(samples).alerts
    assert [a.metric for a in alerts] == ["retries"]
    assert "0.0 → 3.0 per session" in alerts[0].message


def test_memory_close_to_the_machine_total_is_critical() -> None:
    samples = [sample(i, rss=900.0) for i in range(4)]
    report = perf_report(samples, memory_total_bytes=1_000_000_000)
    critical = [a for a in report.alerts if a.level == "critical"]
    assert critical and critical[0].metric == "peak_rss_mb"
    assert perf_report(samples, memory_total_bytes=8_000_000_000).alerts == []


def test_short_history_compares_halves_and_says_so() -> None:
    samples = [sample(i) for i in range(3)] + [sample(i, seconds=30.0) for i in range(3, 6)]
    report = perf_report(samples)
    t = report.trends["records_per_min"]
    assert t.window == 3 and t.change == pytest.approx(1.0) and t.better is True
    assert "newer half with the older half" in report.notes[0]
    tiny = perf_report([sample(0), sample(1), sample(2)])
    assert tiny.trends == {} and "trends need at least 4" in tiny.notes[0]


def test_order_is_processing_time_not_session_date() -> None:
    # An old session backfilled last is the newest sample.
    samples = [sample(i) for i in range(4)]
    samples.append(sample(9, session=dt.date(2016, 1, 4), seconds=600.0))
    report = perf_report(samples)
    assert report.samples[-1].session == dt.date(2016, 1, 4)
    assert report.summaries["seconds"].latest == 600.0


def test_manifest_samples_have_no_memory_or_retry_figures() -> None:
    manifest_only = PerfSample(
        session=dt.date(2024, 1, 2), when=T0, rows=10, bytes=100, seconds=6.0, source="manifest"
    )
    report = perf_report([manifest_only])
    assert report.summaries["peak_rss_mb"].samples == 0
    assert report.summaries["records_per_min"].latest == pytest.approx(100.0)
    assert any("outside Dagster" in n for n in report.notes)
    document = report.to_dict()
    assert document["history"][0]["source"] == "manifest"
    assert document["history"][0]["when"].startswith("2024-03-01T23:00")


def test_two_against_two_is_a_trend_but_not_an_alert() -> None:
    samples = [sample(0), sample(1), sample(2, seconds=240.0), sample(3, seconds=240.0)]
    report = perf_report(samples)
    assert report.trends["records_per_min"].change == pytest.approx(-0.75)
    assert report.alerts == []
