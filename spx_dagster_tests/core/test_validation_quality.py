"""The quality score: parts, the weighted formula and accumulation over chunks."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from spx_dagster.core.validation import (
    QUALITY_WEIGHTS,
    ChunkStats,
    QualityAccumulator,
    ValidationContext,
    quality_score,
    validate_table,
)
from spx_dagster_tests.factories import make_table

SESSION = dt.date(2024, 3, 15)
EXP1, EXP2, EXP3 = SESSION, SESSION + dt.timedelta(days=3), SESSION + dt.timedelta(days=4)


def test_weights_sum_to_one_and_zero_quotes_weigh_least() -> None:
    assert sum(QUALITY_WEIGHTS.values()) == pytest.approx(1.0)
    # Of the original parts, zero quotes (normal in far wings) weigh least.
    original = ("validity", "expiration_coverage", "interval_completeness", "crossed_quote_rate")
    assert all(QUALITY_WEIGHTS[name] > QUALITY_WEIGHTS["zero_quote_rate"] for name in original)


def test_formula_over_applicable_parts() -> None:
    parts = {
        "validity": 0.9,
        "expiration_coverage": 0.5,
        "interval_completeness": None,  # no intraday dataset: left out, weights renormalised
        "crossed_quote_rate": 0.1,
        "zero_quote_rate": 0.4,
    }
    expected = (0.30 * 0.9 + 0.15 * 0.5 + 0.06 * 0.9 + 0.05 * 0.6) / 0.56
    assert quality_score(parts) == pytest.approx(expected, abs=1e-6)
    assert quality_score(dict.fromkeys(parts)) is None


def test_accumulator_over_chunks_and_datasets() -> None:
    quality = QualityAccumulator([("SPXW", EXP1), ("SPXW", EXP2), ("SPXW", EXP3)])
    quality.add(
        ChunkStats(
            "greeks",
            rows=1000,
            valid_rows=990,
            rejected_rows=10,
            reasons=Counter({"bid must be >= 0": 10}),
            quote_rows=990,
            crossed_rows=9,
            zero_quote_rows=99,
            contracts=10,
            complete_contracts=9,
            expirations={("SPXW", EXP1)},
        )
    )
    quality.add(
        ChunkStats(
            "greeks",
            rows=1000,
            valid_rows=1000,
            quote_rows=1000,
            contracts=10,
            complete_contracts=10,
            expirations={("SPXW", EXP2)},
        )
    )
    quality.add(
        ChunkStats(
            "eod",
            rows=30,
            valid_rows=30,
            quote_rows=30,
            contracts=30,
            expirations={("SPXW", EXP1), ("SPXW", EXP2), ("SPXW", EXP3)},
        )
    )
    report = quality.report()
    assert report.parts["validity"] == pytest.approx(2020 / 2030)
    assert report.parts["interval_completeness"] == pytest.approx(19 / 20)  # intraday only
    assert report.parts["expiration_coverage"] == pytest.approx((2 / 3 + 1) / 2)
    assert report.parts["crossed_quote_rate"] == pytest.approx(9 / 2020)
    assert report.parts["zero_quote_rate"] == pytest.approx(99 / 2020)
    assert report.score == quality_score({k: report.parts[k] for k in QUALITY_WEIGHTS})
    assert report.by_dataset["greeks"]["expiration_coverage"] == pytest.approx(2 / 3)
    assert report.by_dataset["eod"]["interval_completeness"] is None
    assert report.counts["expirations_covered"] == 3 and report.counts["rejected_rows"] == 10
    assert report.reasons == {"bid must be >= 0": 10}
    summary = report.to_summary()
    assert summary.score == report.score and summary.weights == QUALITY_WEIGHTS


def test_a_missing_expiration_lowers_coverage_from_real_validation() -> None:
    context = ValidationContext(SESSION)
    quality = QualityAccumulator([("SPXW", EXP1), ("SPXW", EXP2)])
    for exp in (EXP1,):  # EXP2 never answered
        table = make_table("greeks", SESSION, expirations=[exp], n_strikes=3)
        quality.add(validate_table(table, "greeks", context).stats)
    report = quality.report()
    assert report.parts["expiration_coverage"] == 0.5
    assert report.parts["validity"] == 1.0 and report.parts["interval_completeness"] == 1.0
    # Below quality.min_score's default (0.95): `gaps` reports the session as low quality.
    assert report.score < 0.95
