"""Two runs of one session share its temp directories; the one that publishes removes them.

The other run must then fail cleanly (StageInputMissing, nothing published) rather than publish
what is left over the whole day. Real simulator over HTTP, real files; the stages run in this
process, interleaved by hand the way two processes can interleave them.
"""

from __future__ import annotations

import datetime as dt

import pytest

from spx_dagster.core.config import load_settings
from spx_dagster.core.session_fetch import staged_paths
from spx_dagster.core.session_stages import (
    PipelineSettings,
    StageInputMissing,
    fetch_session,
    load_plan,
    publish_session,
    validate_session,
)
from spx_dagster.core.storage import load_manifest, verify_session
from spx_dagster.core.storage.layout import TempLayout
from spx_dagster.core.thetadata.client import ThetaClient

SESSION = dt.date(2024, 11, 12)


def fetch(cfg: PipelineSettings) -> None:
    with ThetaClient.from_settings(load_settings()) as client:
        fetch_session(client, cfg, SESSION)


@pytest.fixture
def cfg(pipeline_home) -> PipelineSettings:
    return PipelineSettings.from_settings(load_settings(), source_kind="simulator")


def test_a_run_that_validated_before_the_other_published_publishes_nothing(pipeline_home, cfg):
    fetch(cfg)
    validate_session(cfg, SESSION)  # run B is ready to publish ...
    published = publish_session(cfg, SESSION).manifest  # ... when run A publishes first
    with pytest.raises(StageInputMissing, match="another run of this session"):
        publish_session(cfg, SESSION)  # run B
    manifest = load_manifest(pipeline_home.output_dir, SESSION)
    assert manifest.files == published.files and manifest.rows == published.rows > 0
    assert verify_session(pipeline_home.output_dir, SESSION).ok


def test_answers_removed_under_a_run_stop_its_validation(pipeline_home, cfg):
    fetch(cfg)
    plan = load_plan(cfg, SESSION)
    _data, sidecar = staged_paths(
        TempLayout.of(cfg.temp_dir).staging_dir(SESSION), plan.requests[0]
    )
    sidecar.unlink()  # what the other run's clean-up does, one file at a time
    with pytest.raises(StageInputMissing, match=f"1 of the {len(plan.requests)} planned answers"):
        validate_session(cfg, SESSION)
    assert load_manifest(pipeline_home.output_dir, SESSION) is None


def test_a_validated_part_lost_before_publishing_publishes_nothing(pipeline_home, cfg):
    fetch(cfg)
    validate_session(cfg, SESSION)
    part = TempLayout.of(cfg.temp_dir).validated_parts(SESSION, "greeks")[0]
    TempLayout.of(cfg.temp_dir).validated_file(SESSION, "greeks", part).unlink()
    with pytest.raises(StageInputMissing, match="validated parts for"):
        publish_session(cfg, SESSION)
    assert load_manifest(pipeline_home.output_dir, SESSION) is None
