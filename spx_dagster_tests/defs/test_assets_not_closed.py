"""Nothing is published for a session before its end-of-day report, whichever path asks (issue 11).

On 43668ef `dagster asset materialize --partition <today>` before 17:15 ET published today as
complete while `spx-data process <today>` refused. The clock is the one part that cannot be chosen
here, so these tests move it (``calendar.now_et``) to 12:00 ET on the session; the rest is real:
the assets, a real Dagster instance, the simulator over HTTP, the files.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from spx_dagster.core import calendar
from spx_dagster.core.failure_categories import FailureCategory
from spx_dagster.core.history import SessionState, session_records
from spx_dagster.core.storage import load_manifest
from spx_dagster.core.storage.layout import TempLayout
from spx_dagster.defs.assets import options_parquet, raw_option_chains, validated_options
from spx_dagster.defs.constants import ERROR_CATEGORY_TAG
from spx_dagster.defs.instance_queries import run_facts
from spx_dagster.defs.resources import SpxSettingsResource, ThetaDataResource

SESSION = dt.date(2024, 11, 4)
MIDDAY = dt.datetime.combine(SESSION, dt.time(12, 0), tzinfo=calendar.ET)
PROCESS_SENTENCE = (
    "2024-11-04 has not closed yet (its end-of-day report comes at 17:15 ET); "
    "the latest closed session is 2024-11-01"
)


def test_materializing_a_session_before_its_close_fails_at_once(pipeline_home, monkeypatch):
    monkeypatch.setattr(calendar, "now_et", lambda: MIDDAY)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [raw_option_chains, validated_options, options_parquet],
            partition_key=SESSION.isoformat(),
            instance=instance,
            resources={"spx_settings": SpxSettingsResource(), "thetadata": ThetaDataResource()},
            raise_on_error=False,
        )
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        assert run.tags[ERROR_CATEGORY_TAG] == FailureCategory.NOT_CLOSED.value
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert PROCESS_SENTENCE in failure.step_failure_data.error.message
        # No step retry was scheduled: the refusal is not transient.
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        facts = run_facts(instance)
    assert load_manifest(pipeline_home.output_dir, SESSION) is None
    assert not TempLayout.of(pipeline_home.temp_dir).staging_dir(SESSION).exists()
    record = session_records([SESSION], {}, facts)[SESSION]
    assert record.attempts == 0 and record.failures_since_success == 0
    assert record.state is SessionState.MISSING


def test_process_and_the_asset_refuse_with_one_sentence():
    """The sentence `spx-data process` prints is the one the asset raises."""
    try:
        calendar.require_session(SESSION, now=MIDDAY)
    except calendar.SessionNotClosed as error:
        assert str(error) == PROCESS_SENTENCE
    else:
        raise AssertionError("require_session accepted a session before its close")


def test_the_cli_names_the_open_session_the_ui_lists(pipeline_home, monkeypatch):
    """The UI lists today's key (end_offset=1, for the evening schedule); the CLI counted one
    session fewer without a word. Now both name it, and the asset's description says why it
    cannot be processed yet."""
    import json

    from click.testing import CliRunner

    from spx_dagster.cli.main import cli
    from spx_dagster.defs.assets import NEWEST_KEY_NOTE
    from spx_dagster.defs.partitions import SESSIONS

    monkeypatch.setattr(calendar, "now_et", lambda: MIDDAY)
    result = CliRunner().invoke(cli, ["list", "--json"], catch_exceptions=False)
    document = json.loads(result.stdout)
    assert document["to"] == "2024-11-01" and document["open_session"] == "2024-11-04"
    assert SESSIONS.has_partition_key("2024-11-04")
    assert (
        "17:15 ET" in raw_option_chains.specs_by_key[next(iter(raw_option_chains.keys))].description
    )
    assert "not_closed" in NEWEST_KEY_NOTE
    table = CliRunner().invoke(cli, ["list"], catch_exceptions=False)
    assert "2024-11-04 is trading now" in table.stderr
