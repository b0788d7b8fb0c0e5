"""Vendor holes and the revisit schedule (``core.revisits``), and the manifest fields that carry
them: what a hole is in manifests written before and after the ``coverage`` family, when a
revisit is due, and that manifests written before the fields still load."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from spx_dagster.core import revisits
from spx_dagster.core.history import GapKind, PublishedFact, find_gaps, session_records
from spx_dagster.core.storage.manifest import (
    Manifest,
    ManifestSummary,
    QualitySummary,
    SourceInfo,
    Versions,
)

SESSION = dt.date(2024, 11, 4)
PUBLISHED = dt.datetime(2024, 11, 4, 23, 0, tzinfo=dt.UTC)


def quality(listed: int, covered: int, coverage: dict | None = None) -> QualitySummary:
    families = {"coverage": coverage} if coverage is not None else {}
    counts = {"expirations_listed": listed, "expirations_covered": covered}
    return QualitySummary(score=0.9, counts=counts, families=families)


@pytest.mark.parametrize(
    ("summary", "holes"),
    [
        (quality(4, 4), 0),  # old manifest, every listed expiration has rows
        (quality(4, 3), 1),  # old manifest, a no-data answer for a listed expiration
        (QualitySummary(), 0),  # nothing measured
        (quality(4, 4, {"score": 1.0, "threshold": 0.99, "violations": 0}), 0),
        (
            quality(
                4,
                4,
                {
                    "score": 0.95,
                    "threshold": 0.99,
                    "violations": 2,
                    "counts": {"listed_without_data": 1, "incomplete_contracts": 1},
                },
            ),
            2,
        ),  # coverage below its threshold though every expiration has some rows
        (
            quality(
                4,
                2,
                {
                    "score": 0.995,
                    "threshold": 0.99,
                    "violations": 2,
                    "counts": {"listed_without_data": 2},
                },
            ),
            2,
        ),  # no-data answers for listed expirations, though the score passes
        (
            quality(4, 2, {"score": 1.0, "threshold": 0.99, "violations": 0, "counts": {}}),
            0,
        ),  # below the Value tier: far expirations not yet listed that day are no holes
        (quality(4, 4, {"score": None, "threshold": 0.99, "violations": 0}), 0),
    ],
)
def test_a_hole_is_a_listed_expiration_without_data_or_coverage_below_threshold(summary, holes):
    assert revisits.session_holes(summary) == holes


def test_revisits_fall_due_one_and_seven_days_after_the_first_publish():
    assert revisits.due_revisit(PUBLISHED, (), PUBLISHED + dt.timedelta(hours=23)) is None
    assert revisits.due_revisit(PUBLISHED, (), PUBLISHED + dt.timedelta(days=1)) == 1
    assert revisits.next_revisit_at(PUBLISHED, [1]) == PUBLISHED + dt.timedelta(days=7)
    assert revisits.due_revisit(PUBLISHED, [1], PUBLISHED + dt.timedelta(days=6)) is None
    assert revisits.due_revisit(PUBLISHED, [1], PUBLISHED + dt.timedelta(days=7)) == 7
    assert revisits.next_revisit_at(PUBLISHED, [1, 7]) is None
    assert revisits.due_revisit(PUBLISHED, [1, 7], PUBLISHED + dt.timedelta(days=99)) is None
    # A sensor stopped for a week runs only the later revisit, and none after it.
    assert revisits.due_revisit(PUBLISHED, (), PUBLISHED + dt.timedelta(days=8)) == 7
    assert revisits.next_revisit_at(PUBLISHED, [7]) is None


def manifest(**kw) -> Manifest:
    return Manifest(
        session=SESSION,
        source=SourceInfo("simulator", "http://127.0.0.1:1", "v3"),
        versions=Versions("0", "0", "0", "0"),
        created_at=PUBLISHED,
        quality=quality(4, 3),
        **kw,
    )


def test_a_manifest_written_before_the_revisit_fields_still_loads():
    old = manifest().to_dict()
    del old["first_published_at"], old["revisits"]
    loaded = Manifest.from_json(json.dumps(old))
    assert loaded.first_published_at is None and loaded.revisits == []
    summary = ManifestSummary.of(loaded)
    assert summary.first_published_at == PUBLISHED.isoformat()  # its created_at
    assert summary.holes == 1 and summary.revisits == ()


def test_the_revisit_fields_round_trip():
    record = revisits.Revisit(
        "2024-11-06T00:00:00+00:00", 1, "run-1", 1, 0, revisits.KEPT_NEW
    ).to_dict()
    written = manifest(first_published_at=PUBLISHED, revisits=[record])
    loaded = Manifest.from_json(written.to_json())
    assert loaded.first_published_at == PUBLISHED and loaded.revisits == [record]
    assert ManifestSummary.of(loaded).revisits == (1,)


def test_gaps_show_a_session_with_holes_as_incomplete_with_its_next_revisit():
    fact = PublishedFact(
        SESSION,
        "complete",
        rows=10,
        bytes=100,
        quality=0.99,
        seconds=1.0,
        created_at=PUBLISHED.isoformat(),
        holes=1,
        first_published_at=PUBLISHED.isoformat(),
        revisits=(1,),
    )
    records = session_records([SESSION], {SESSION: fact}, [])
    (gap,) = find_gaps(records, today=SESSION, min_quality=0.5)
    assert gap.kind is GapKind.INCOMPLETE
    assert gap.next_revisit == dt.date(2024, 11, 11)  # 7 days after 19:00 ET on the 4th
    assert gap.to_dict()["next_revisit"] == "2024-11-11"
    clean = session_records(
        [SESSION], {SESSION: PublishedFact(SESSION, "complete", 10, 100, 0.99, 1.0)}, []
    )
    assert find_gaps(clean, today=SESSION, min_quality=0.5) == []
