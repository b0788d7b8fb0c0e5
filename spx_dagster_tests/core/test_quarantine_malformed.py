"""Lines the client cannot parse land in quarantine with a reason; the rest is published.

Real simulator over HTTP (its ``malformed_row`` fault writes ``#ERR`` where a number belongs),
real files; the end-to-end case runs the real Dagster assets on a test instance.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spx_dagster.core.chains import list_chain
from spx_dagster.core.config import load_settings
from spx_dagster.core.datasets import DATASETS
from spx_dagster.core.session_fetch import staged_malformed_path
from spx_dagster.core.session_stages import (
    PipelineSettings,
    fetch_session,
    publish_session,
    validate_session,
)
from spx_dagster.core.storage import PartKey, load_manifest, verify_session
from spx_dagster.core.storage.layout import OutputLayout, TempLayout
from spx_dagster.core.storage.stage_tables import write_stage_table
from spx_dagster.core.thetadata.client import ThetaClient
from spx_dagster.core.thetadata.vendor import ENDPOINTS, RIGHT_WIRE_TO_CODE
from spx_dagster.core.thetadata.wire import SPECS, table_from_records
from spx_dagster.core.validation import (
    RAW_LINE_COLUMN,
    QualityAccumulator,
    ValidationContext,
    malformed_file,
    validate_staged_dataset,
    write_malformed,
)
from spx_dagster.core.validation.malformed import malformed_label
from spx_dagster.defs.assets import options_parquet, raw_option_chains, validated_options
from spx_dagster.defs.resources import SpxSettingsResource, ThetaDataResource
from spx_dagster.simulator import FaultRule

SESSION = dt.date(2024, 11, 4)
ROOT = "SPXW"


def stage_settings() -> tuple[object, PipelineSettings]:
    settings = load_settings()
    return settings, PipelineSettings.from_settings(settings, source_kind="simulator")


def run_stages(session: dt.date = SESSION):
    """fetch → validate → publish with the settings of ``pipeline_home``; the outcomes."""
    settings, cfg = stage_settings()
    with ThetaClient.from_settings(settings) as client:
        fetched = fetch_session(client, cfg, session)
    validated = validate_session(cfg, session)
    published = publish_session(cfg, session)
    return fetched, validated, published


def first_expiration(client: ThetaClient, cfg: PipelineSettings) -> dt.date:
    chain = list_chain(client, SESSION, roots=(ROOT,), tier=cfg.tier, max_dte=cfg.max_dte)
    return chain.expirations[ROOT][0]


def faults_fired(simulator) -> int:
    return int(simulator.stats()["faults"].get("malformed_row", 0))


def inject_bad_lines(simulator, expiration: dt.date) -> None:
    """One bad line in the greeks of one expiration, one in the root's end-of-day answer."""
    simulator.add_fault(
        FaultRule(kind="malformed_row", date=SESSION, root=ROOT, expiration=expiration)
    )
    simulator.add_fault(
        FaultRule(kind="malformed_row", path=ENDPOINTS["eod"].path, date=SESSION, root=ROOT)
    )


def published_table(output_dir, manifest, dataset: str) -> pa.Table:
    tables = [pq.read_table(output_dir / f.path) for f in manifest.datasets[dataset].files]
    return pa.concat_tables(tables)


def row_keys(table: pa.Table, dataset: str) -> Counter:
    """Each row's identity: contract keys (+ timestamp for intraday data)."""
    names = DATASETS[dataset].sort_keys
    return Counter(zip(*(table[n].to_pylist() for n in names), strict=True))


def materialize_session(instance):
    return dg.materialize(
        [raw_option_chains, validated_options, options_parquet],
        partition_key=SESSION.isoformat(),
        instance=instance,
        resources={"spx_settings": SpxSettingsResource(), "thetadata": ThetaDataResource()},
        raise_on_error=False,
    )


def test_bad_lines_are_quarantined_with_reasons_and_the_good_rows_published(
    pipeline_home, tiny_simulator
):
    # The same session without faults first: what the terminal sends when nothing is wrong.
    _, _, clean = run_stages()
    clean_manifest = clean.manifest
    expiration = clean_manifest.expirations[ROOT][0]
    clean_tables = {
        ds: published_table(pipeline_home.output_dir, clean_manifest, ds)
        for ds in ("greeks", "eod")
    }

    inject_bad_lines(tiny_simulator, expiration)
    fired_before = faults_fired(tiny_simulator)
    with dg.instance_for_test() as instance:
        result = materialize_session(instance)
    assert result.success
    injected = faults_fired(tiny_simulator) - fired_before
    assert injected >= 2  # the greeks answer of `expiration` and the end-of-day answer of ROOT

    manifest = load_manifest(pipeline_home.output_dir, SESSION)
    assert manifest.status == "complete"
    assert verify_session(pipeline_home.output_dir, SESSION).ok
    assert manifest.quarantined_rows == injected
    assert manifest.quality.counts["malformed_rows"] == injected
    assert manifest.quality.counts["rejected_rows"] == injected
    assert manifest.quality.parts["validity"] < 1.0
    assert sum(n for r, n in manifest.quality.reasons.items() if r.startswith("malformed")) == (
        injected
    )
    assert manifest.datasets["open_interest"].quarantined_rows == 0
    assert manifest.datasets["open_interest"].quarantine_path is None

    for dataset in ("greeks", "eod"):
        entry = manifest.datasets[dataset]
        assert entry.quarantine_path == f"_quarantine/date={SESSION}/{dataset}.parquet"
        assert pipeline_home.output_dir / entry.quarantine_path == OutputLayout.of(
            pipeline_home.output_dir
        ).quarantine_file(SESSION, dataset)
        quarantined = pq.read_table(pipeline_home.output_dir / entry.quarantine_path)
        assert quarantined.num_rows == entry.quarantined_rows >= 1
        assert quarantined.schema.names[-2:] == [RAW_LINE_COLUMN, "reason"]
        for reason in quarantined["reason"].to_pylist():
            assert reason.startswith("malformed line: column ")
            assert "#ERR" in reason  # the per-row reason names the offending value
        assert all("#ERR" in line for line in quarantined[RAW_LINE_COLUMN].to_pylist())
        assert set(quarantined["root"].to_pylist()) == {ROOT}
        # A per-expiration request tells its expiration; a whole-chain one cannot.
        expected_expiration = expiration if dataset == "greeks" else None
        assert set(quarantined["expiration"].to_pylist()) == {expected_expiration}

        # Every good row is published: exactly the clean rows minus the quarantined lines.
        published = published_table(pipeline_home.output_dir, manifest, dataset)
        assert entry.rows == published.num_rows
        assert entry.rows == clean_manifest.datasets[dataset].rows - entry.quarantined_rows
        missing = row_keys(clean_tables[dataset], dataset) - row_keys(published, dataset)
        assert sum(missing.values()) == entry.quarantined_rows
        assert not row_keys(published, dataset) - row_keys(clean_tables[dataset], dataset)
        # ... and the rows missing are the very lines in quarantine.
        lines = sorted(quarantined[RAW_LINE_COLUMN].to_pylist())
        missing_heads = sorted(
            (root, exp.isoformat(), strike, right) for root, exp, strike, right, *_ in missing
        )
        line_heads = sorted(
            (f[0], f[1], float(f[2]), RIGHT_WIRE_TO_CODE[f[3]])
            for f in (line.split(",") for line in lines)
        )
        assert line_heads == missing_heads


def test_a_session_without_bad_rows_has_no_quarantine_file(pipeline_home, tiny_simulator):
    fetched, validated, published = run_stages()
    assert fetched.summary.malformed_rows == 0
    assert validated.quarantine == {} and validated.rejected_rows == 0
    assert validated.report.parts["validity"] == 1.0
    assert not OutputLayout.of(pipeline_home.output_dir).quarantine_dir(SESSION).exists()
    manifest = published.manifest
    assert manifest.rows > 0
    for entry in manifest.datasets.values():
        assert entry.quarantined_rows == 0 and entry.quarantine_path is None
    assert load_manifest(pipeline_home.output_dir, SESSION).quarantined_rows == 0


def test_a_clean_rerun_replaces_the_quarantine_of_the_faulty_run(pipeline_home, tiny_simulator):
    settings, cfg = stage_settings()
    with ThetaClient.from_settings(settings) as client:
        expiration = first_expiration(client, cfg)
    inject_bad_lines(tiny_simulator, expiration)
    _, _, faulty = run_stages()
    assert faulty.manifest.quarantined_rows >= 2
    assert OutputLayout.of(pipeline_home.output_dir).quarantine_file(SESSION, "greeks").exists()

    tiny_simulator.clear_faults()
    _, _, clean = run_stages()
    assert clean.manifest.quarantined_rows == 0
    assert not OutputLayout.of(pipeline_home.output_dir).quarantine_file(SESSION, "greeks").exists()
    assert not OutputLayout.of(pipeline_home.output_dir).quarantine_file(SESSION, "eod").exists()


def test_resumed_answers_keep_their_bad_lines_and_a_lost_file_is_fetched_again(
    pipeline_home, tiny_simulator
):
    settings, cfg = stage_settings()
    with ThetaClient.from_settings(settings) as client:
        expiration = first_expiration(client, cfg)
        inject_bad_lines(tiny_simulator, expiration)
        first = fetch_session(client, cfg, SESSION)
        assert first.summary.malformed_rows >= 2
        greeks = next(
            r
            for r in first.plan.requests
            if r.dataset == "greeks" and r.root == ROOT and r.expiration == expiration
        )
        staged = staged_malformed_path(TempLayout.of(cfg.temp_dir).staging_dir(SESSION), greeks)
        assert pq.read_table(staged).num_rows == 1

        tiny_simulator.clear_faults()  # a re-fetch now would bring no bad line
        resumed = fetch_session(client, cfg, SESSION)
        assert resumed.summary.resumed == resumed.summary.requests
        assert resumed.requests_sent == 0
        assert resumed.summary.malformed_rows == first.summary.malformed_rows

        # Losing the staged bad lines un-stages their answer: it is fetched again, not dropped.
        staged.unlink()
        again = fetch_session(client, cfg, SESSION)
        assert again.requests_sent == 1
        assert again.summary.malformed_rows == first.summary.malformed_rows - 1
    validated = validate_session(cfg, SESSION)
    assert validated.quarantined_rows == {"eod": 1}
    assert validated.malformed_rows == 1


def test_validate_quarantines_staged_lines_of_every_kind_with_counted_reasons(tmp_path):
    """The validate stage alone, on hand-staged files: the client's real reasons, three kinds."""
    session, dataset = SESSION, "eod"
    temp = tmp_path / "tmp"
    spec = SPECS[dataset]
    good = {name: "1" for name in spec.wire_names}
    good.update(
        symbol=ROOT,
        expiration="2024-11-08",
        strike="5800.000",
        right="CALL",
        created="2024-11-04T17:15:00",
        last_trade="2024-11-04T15:59:59",
    )
    records = [
        good,
        {**good, "bid": "#ERR"},
        {**good, "ask": "n/a"},
        {**good, "strike": None},
    ]
    table, malformed = table_from_records(records, spec)
    assert table.num_rows == 1 and len(malformed) == 3
    malformed.append(("SPXW,2024-11-08,5800.000", "expected 20 fields, got 3"))

    part = PartKey(ROOT, None)
    source = TempLayout.of(temp).staged_file(session, dataset, part)
    write_stage_table(source, table)
    assert (
        write_malformed(
            malformed_file(source.parent, part.stem), malformed, root=ROOT, expiration=None
        )
        == 4
    )

    accumulator = QualityAccumulator(listed=[(ROOT, dt.date(2024, 11, 8))])
    result = validate_staged_dataset(
        temp, session, dataset, ValidationContext(session), accumulator
    )
    assert result.quarantine is not None and result.quarantine.rows == 4
    quarantined = pq.read_table(result.quarantine.path)
    assert quarantined[RAW_LINE_COLUMN].to_pylist() == [line for line, _ in malformed]
    assert quarantined["reason"].to_pylist() == [
        "malformed line: " + reason for _, reason in malformed
    ]
    assert quarantined["root"].to_pylist() == [ROOT] * 4
    assert quarantined["expiration"].null_count == 4
    assert quarantined["strike"].null_count == 4  # nothing of an unparsed line is trusted

    report = accumulator.report()
    assert report.counts["rows"] == 5
    assert report.counts["valid_rows"] == 1
    assert report.counts["rejected_rows"] == report.counts["malformed_rows"] == 4
    assert report.parts["validity"] == pytest.approx(1 / 5)
    # Labels count per failed check, without the offending values.
    assert report.reasons == {
        "malformed line: column 'bid' is not a valid float": 1,
        "malformed line: column 'ask' is not a valid float": 1,
        "malformed line: column 'strike' is missing": 1,
        "malformed line: wrong number of fields": 1,
    }


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        (
            "column 'bid': '#ERR' is not a valid float",
            "malformed line: column 'bid' is not a valid float",
        ),
        (
            "column 'right': 'X' is not a valid string (CALL/PUT)",
            "malformed line: column 'right' is not a valid string (CALL/PUT)",
        ),
        ("column 'strike': missing value", "malformed line: column 'strike' is missing"),
        ("expected 17 fields, got 18", "malformed line: wrong number of fields"),
        ("something new", "malformed line"),
    ],
)
def test_malformed_labels_drop_the_value(reason, label):
    assert malformed_label(reason) == label
