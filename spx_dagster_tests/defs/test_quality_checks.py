"""Each quality family is an asset check in the UI: score and counts as numbers (so Dagster plots
them across partitions) and the worst rows as a markdown table. Real assets, a real instance, the
real simulator over HTTP with anomalies planted."""

from __future__ import annotations

import dagster as dg

from spx_dagster.core.quality import Family
from spx_dagster.core.quality.thresholds import alert_threshold
from spx_dagster.defs.constants import FAMILY_CHECKS
from spx_dagster_tests.core.test_quarantine_malformed import materialize_session


def test_every_family_reports_its_check_with_numeric_metadata(pipeline_home, tiny_simulator):
    tiny_simulator.add_anomaly(Family.STRIKE_ARBITRAGE.value, 2)
    try:
        with dg.instance_for_test() as instance:
            result = materialize_session(instance)
            assert result.success
            evaluations = {e.asset_check_key: e for e in result.get_asset_check_evaluations()}
    finally:
        tiny_simulator.clear_anomalies()
    for family, key in FAMILY_CHECKS.items():
        evaluation = evaluations[key]
        metadata = evaluation.metadata
        assert metadata["threshold"].value == alert_threshold(family.value)
        assert isinstance(metadata["checked"].value, int)
        assert isinstance(metadata["worst"], dg.MarkdownMetadataValue)
    arbitrage = evaluations[FAMILY_CHECKS[Family.STRIKE_ARBITRAGE]]
    assert arbitrage.metadata["violations"].value >= 2
    assert 0 < arbitrage.metadata["score"].value < 1
    assert "| dataset | root |" in arbitrage.metadata["worst"].value
    # A warning check: it fails when the family's score falls below its alert level.
    threshold = alert_threshold(Family.STRIKE_ARBITRAGE.value)
    assert arbitrage.passed == (arbitrage.metadata["score"].value >= threshold)
    assert arbitrage.severity == dg.AssetCheckSeverity.WARN
