"""SIGKILL ``spx-data process`` at seeded random points; the store survives every one.

Each iteration starts the real CLI in its own process (the session job runs in it, on the
instance at ``DAGSTER_HOME``, against the simulator over HTTP), waits for a point chosen by a
seeded draw — during the fetch (after a random number of answers), during validation, during
publishing, or the instant the manifest (the commit point) appears — waits a random few
milliseconds more and kills the process with SIGKILL: no handler, no cleanup, like a power cut.

After every kill: ``spx-data verify --all`` exits 0 (every manifest's files match their
checksums; whatever the crash left is at most a warning), the session is either untouched (its
old manifest and files) or not published at all, and a re-run of the session completes and
verifies, leaving no orphan or partial file behind.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from collections import Counter

import pytest

from spx_dagster.core import calendar
from spx_dagster.core.storage import load_manifest, verify_session
from spx_dagster.defs.constants import ERROR_CATEGORY_TAG
from spx_dagster.simulator import FaultRule
from spx_dagster_tests.reliability.support import (
    all_runs,
    invoke,
    kill_at,
    published_tree_problems,
    spawn_cli,
)

pytestmark = pytest.mark.slow

SEED = 20240315
POINTS = ("fetch", "validate", "publish", "manifest")
ITERATIONS = 8  # two kills at each point, in a seeded order
SESSIONS = calendar.sessions_between(dt.date(2024, 9, 3), dt.date(2024, 9, 30))


def test_sigkill_at_random_points_never_damages_the_store(pipeline_home, tiny_simulator):
    # One request at a time, each answer 0.3 s late: a fetch lasts ~2 s, long enough to be hit
    # after a random number of answers.
    tiny_simulator.add_fault(FaultRule(kind="latency", seconds=0.3, path="/option/history"))
    env = {**os.environ, "SPX_DATA_THETADATA__CONCURRENCY": "1"}
    rng = random.Random(SEED)
    points = list(POINTS) * (ITERATIONS // len(POINTS))
    rng.shuffle(points)
    home, output_dir = pipeline_home.home, pipeline_home.output_dir
    published: list[dt.date] = []
    fresh = iter(SESSIONS)
    landed: Counter = Counter()

    for n, point in enumerate(points):
        # Every other kill hits a forced re-run of a published session: its old files must
        # survive the crash untouched, or be replaced whole.
        forced = n % 2 == 1 and bool(published)
        day = rng.choice(published) if forced else next(fresh)
        old = load_manifest(output_dir, day)
        args = ["process", day.isoformat(), *(["--force"] if forced else [])]
        where = kill_at(spawn_cli(*args, env=env), point, rng, home, day)
        landed[f"{point}→{where}"] += 1

        verified = invoke("verify", "--all")
        assert verified.exit_code == 0, (n, point, where, verified.output)
        manifest = load_manifest(output_dir, day)
        if manifest is not None:
            assert verify_session(output_dir, day).ok
            if old is not None and manifest.created_at == old.created_at:
                assert manifest.files == old.files  # the old session, untouched
        else:
            assert old is None, "a crash removed a published session"

        rerun = invoke("process", day.isoformat())
        assert rerun.exit_code == 0, (n, point, where, rerun.output)
        assert invoke("verify", day.isoformat()).exit_code == 0
        assert published_tree_problems(output_dir) == [], (n, point, where)
        # The killed run was found dead by the re-run: failed with category crash, its pool
        # slot freed (else the re-run would have waited for it for ever), nothing in progress.
        runs = all_runs()
        assert [r.run_id for r in runs if not r.is_finished] == []
        crashed = [r for r in runs if r.tags.get(ERROR_CATEGORY_TAG) == "crash"]
        assert len(crashed) == n + 1, (n, point, where)
        if day not in published:
            published.append(day)

    final = invoke("verify", "--all", "--json")
    assert final.exit_code == 0
    assert json.loads(final.stdout)["ok"] == len(published)
    print(
        f"\n{ITERATIONS} SIGKILLs (seed {SEED}), target→where the run was: "
        f"{dict(sorted(landed.items()))}; {len(published)} sessions published and verified"
    )
