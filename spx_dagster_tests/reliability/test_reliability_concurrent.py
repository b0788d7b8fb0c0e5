"""Two ``spx-data process`` of the same session at the same time, as real processes.

Both share one home (config, Dagster instance, temp and output directories) like two terminals
of one user. Whatever the interleaving, one publishes and the other waits for it or fails
cleanly (exit 1, a category, a message): the session ends published exactly once, with the same
bytes a lone run publishes, and never with files of two runs mixed.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from spx_dagster.core.storage import load_manifest
from spx_dagster.defs.constants import ERROR_CATEGORY_TAG
from spx_dagster.simulator import FaultRule
from spx_dagster_tests.reliability.support import (
    all_runs,
    home_env,
    invoke,
    published_tree_problems,
    session_runs,
    spawn_cli,
    use_env,
)

pytestmark = pytest.mark.slow

SESSION = dt.date(2024, 11, 12)


@pytest.fixture
def lone_run_hashes(tmp_path, tiny_simulator) -> dict[str, str]:
    """What one run alone publishes for SESSION: relative path → sha256 of every data file."""
    with pytest.MonkeyPatch.context() as mp:
        use_env(mp, home_env(tmp_path / "lone", tiny_simulator.base_url))
        assert invoke("process", SESSION.isoformat()).exit_code == 0
        manifest = load_manifest(tmp_path / "lone" / "data", SESSION)
    return {f.path: f.sha256 for f in manifest.files}


def _race(*args: str) -> list[tuple[int, str, str]]:
    env = {**os.environ, "SPX_DATA_THETADATA__CONCURRENCY": "1"}
    processes = [spawn_cli(*args, "--json", env=env) for _ in range(2)]
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=240)
        outcomes.append((process.returncode, out, err))
    return outcomes


def _check_outcomes(outcomes, output_dir, lone_run_hashes) -> list[str]:
    codes = sorted(code for code, _, _ in outcomes)
    assert codes in ([0, 0], [0, 1]), outcomes
    categories = []
    for code, out, err in outcomes:
        if code == 1:
            category = json.loads(out)["error_category"]
            assert category not in (None, "unknown"), err
            assert f"({category})" in err and "what to try" in err, err
            categories.append(category)
            print(f"\nthe run that did not publish (exit 1):\n{err.strip()}")
    manifest = load_manifest(output_dir, SESSION)
    assert {f.path: f.sha256 for f in manifest.files} == lone_run_hashes
    assert published_tree_problems(output_dir) == []
    assert [r.run_id for r in all_runs() if not r.is_finished] == []
    return categories


def test_two_runs_of_one_session_publish_it_once_never_interleaved(
    pipeline_home, tiny_simulator, lone_run_hashes
):
    # Each answer 0.2 s late, one request at a time: both runs are in flight together.
    tiny_simulator.add_fault(FaultRule(kind="latency", seconds=0.2, path="/option/history"))
    fresh = _race("process", SESSION.isoformat())
    first = _check_outcomes(fresh, pipeline_home.output_dir, lone_run_hashes)

    # The same with the session already published: two forced re-runs replace it, whole.
    forced = _race("process", SESSION.isoformat(), "--force")
    second = _check_outcomes(forced, pipeline_home.output_dir, lone_run_hashes)

    runs = session_runs(SESSION)
    failed = [r.tags.get(ERROR_CATEGORY_TAG) for r in runs if r.tags.get(ERROR_CATEGORY_TAG)]
    print(
        f"\ntwo concurrent runs, twice: exit codes {[c for c, _, _ in fresh]} then "
        f"{[c for c, _, _ in forced]}; failure categories {first + second}; "
        f"{len(runs)} runs recorded, failed ones tagged {failed}"
    )
