"""The ``quality.*`` keys reach the research checks: resolved once, used by the stages."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow.parquet as pq

from spx_dagster.core.config import load_settings
from spx_dagster.core.config.settings import QualitySettings
from spx_dagster.core.quality import Flag, Thresholds
from spx_dagster.core.session_stages import PipelineSettings
from spx_dagster_tests.core.test_quarantine_malformed import run_stages


def test_every_quality_key_names_a_threshold_with_the_same_default():
    names = {f.name: f.default for f in dataclasses.fields(Thresholds)}
    keys = {k: v.default for k, v in QualitySettings.model_fields.items() if k != "min_score"}
    assert keys and set(keys) <= set(names)
    assert {k: names[k] for k in keys} == keys


def test_a_stored_tolerance_changes_what_is_flagged(pipeline_home, monkeypatch):
    def iv_flags() -> int:
        _, _, published = run_stages()
        files = published.manifest.datasets["greeks"].files
        flags = pq.read_table(pipeline_home.output_dir / files[0].path)["flags"].to_numpy()
        return int(np.count_nonzero(flags & np.uint32(Flag.IV_BOUNDS)))

    assert iv_flags() == 0
    # An implied volatility of 10 % is "implausibly high" for this (silly) setting.
    monkeypatch.setenv("SPX_DATA_QUALITY__IV_MAX", "0.1")
    cfg = PipelineSettings.from_settings(load_settings())
    assert cfg.thresholds.iv_max == 0.1 and cfg.thresholds.spread_floor == Thresholds().spread_floor
    assert iv_flags() > 0
