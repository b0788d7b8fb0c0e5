"""Readers while publishes are killed: every read sees one committed version of a session, or none.

A reader thread runs DuckDB over the README's glob (``<output_dir>/<dataset>/*/*.parquet``) in a
loop, a second reads through ``spx_dagster.read.open_history`` (committed files only) and a third
runs ``verify_session``, all while the real ``spx-data process --force`` re-publishes sessions
(alternating ``processing.max_dte`` 4 and 11, so each dataset's rows change) and is SIGKILLed at
seeded random points: during validation, during publishing, and the instant the manifest (the
commit) appears, before the renames. One session is published for the first time by a run that
is killed. For each session and dataset a read must show exactly the rows of one committed
version (fingerprint: row count and a hash of every contract key) or none; a session committed
once must never vanish from the glob; ``verify`` must never report a problem that is not there.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import threading
from collections import Counter
from dataclasses import replace

import duckdb
import pytest

from spx_dagster.core.config import load_settings
from spx_dagster.core.session_stages import (
    PipelineSettings,
    fetch_session,
    publish_session,
    validate_session,
)
from spx_dagster.core.storage import (
    ProblemKind,
    load_manifest,
    session_lock,
    unpublish_session,
    verify_session,
)
from spx_dagster.core.thetadata.client import ThetaClient
from spx_dagster.read import open_history
from spx_dagster.read.history import replaced_while_read
from spx_dagster_tests.reliability.support import invoke, kill_at, spawn_cli

pytestmark = pytest.mark.slow

SEED = 20241104
REPUBLISHED = (dt.date(2024, 11, 4), dt.date(2024, 11, 5))
FIRST_TIME = dt.date(2024, 11, 6)  # never published before the loop; its first run is killed
SESSIONS = (*REPUBLISHED, FIRST_TIME)
DATASETS = ("greeks", "eod", "open_interest")
VARIANTS = (4, 11)  # processing.max_dte: 11 adds an expiration to every session
POINTS = ("publish", "manifest", "validate", "publish", "manifest")
ROUNDS = 10
KEYS = 'root, expiration, strike, "right"'

Fingerprint = tuple[int, int]


def fingerprints(connection, source: str) -> dict[dt.date, Fingerprint]:
    """Per session: row count and a sum of the hashes of every row's contract key."""
    rows = connection.execute(
        f"SELECT date, count(*), sum(hash({KEYS})) FROM {source} GROUP BY date"
    ).fetchall()
    return {day: (int(n), int(h)) for day, n, h in rows}


def glob_source(output_dir, dataset: str) -> str:
    return f"read_parquet('{output_dir}/{dataset}/*/*.parquet', hive_partitioning = true)"


def committed_fingerprints(output_dir) -> dict[tuple[dt.date, str], Fingerprint]:
    """The fingerprint of every dataset of every committed session, from its listed files."""
    found = {}
    with duckdb.connect() as connection:
        for day in SESSIONS:
            manifest = load_manifest(output_dir, day)
            for dataset, entry in manifest.datasets.items():
                paths = ", ".join(f"'{output_dir / f.path}'" for f in entry.files)
                prints = fingerprints(
                    connection, f"read_parquet([{paths}], hive_partitioning = true)"
                )
                found[(day, dataset)] = prints[day]
    return found


def stage_publish(cfg: PipelineSettings, day: dt.date) -> None:
    with ThetaClient.from_settings(load_settings()) as client:
        fetch_session(client, cfg, day)
    validate_session(cfg, day)
    publish_session(cfg, day)


class Watchers:
    """The three readers, each in its own thread, counting what they checked."""

    def __init__(self, output_dir, allowed: dict[tuple[dt.date, str], set[Fingerprint]]):
        self.output_dir = output_dir
        self.allowed = allowed
        # Per reader: each one's snapshot only moves forward, but two readers' snapshots are
        # taken at different instants.
        self.seen_once: dict[str, set[tuple[dt.date, str]]] = {}
        self.stop = threading.Event()
        self.checked: Counter = Counter()
        self.violations: list[str] = []
        self.threads = [
            threading.Thread(target=self._loop, args=(f,), daemon=True)
            for f in (self._glob_read, self._history_read, self._verify)
        ]

    def __enter__(self) -> Watchers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _loop(self, read) -> None:
        while not self.stop.is_set():
            try:
                read()
            except Exception as error:  # a reader that crashes is a violation, not a test error
                self.violations.append(f"{read.__name__}: {type(error).__name__}: {error}")

    def _judge(self, who: str, dataset: str, seen: dict[dt.date, Fingerprint]) -> None:
        for day in SESSIONS:
            key = (day, dataset)
            got = seen.get(day)
            self.checked[who] += 1
            known = self.seen_once.setdefault(who, set())
            if got is None:
                if key in known:  # a committed session vanished for this reader
                    self.violations.append(f"{who}: {day} {dataset} vanished")
                continue
            if got not in self.allowed[key]:
                self.violations.append(f"{who}: {day} {dataset} shows {got}, not one version")
            known.add(key)

    def _glob_read(self) -> None:
        with duckdb.connect() as connection:
            for dataset in DATASETS:
                self._judge("glob", dataset, self._glob_fingerprints(connection, dataset))

    def _glob_fingerprints(self, connection, dataset: str) -> dict[dt.date, Fingerprint]:
        """The README glob read as a researcher would: a query that DuckDB refuses because a
        re-publish renamed a file over the one it had opened (it reads footers and pages
        separately; README, reader contract) is run again, and counted; any other error is a
        violation."""
        while True:
            try:
                return fingerprints(connection, glob_source(self.output_dir, dataset))
            except duckdb.IOException as error:
                if "No files found" in str(error):
                    return {}
                if not replaced_while_read(error):
                    raise
            except duckdb.Error as error:
                if not replaced_while_read(error):
                    raise
            self.checked["glob re-runs (a file replaced mid-query)"] += 1

    def _history_read(self) -> None:
        with open_history(self.output_dir) as history:
            for dataset in DATASETS:
                table = history.sql(
                    f"SELECT date, count(*) AS n, sum(hash({KEYS})) AS h FROM {dataset} "
                    "GROUP BY date"
                )
                seen = {
                    d: (int(n), int(h))
                    for d, n, h in zip(
                        *(table[c].to_pylist() for c in ("date", "n", "h")), strict=True
                    )
                }
                self._judge("history", dataset, seen)

    def _verify(self) -> None:
        for day in SESSIONS:
            report = verify_session(self.output_dir, day)
            self.checked["verify"] += 1
            false = [
                p
                for p in report.errors
                if not (p.kind == ProblemKind.MISSING_MANIFEST and day == FIRST_TIME)
            ]
            if false:
                self.violations.append(f"verify: {day}: {[p.to_dict() for p in false]}")


def test_readers_see_one_committed_version_or_nothing_while_publishes_are_killed(
    pipeline_home, monkeypatch
):
    output_dir = pipeline_home.output_dir
    base = PipelineSettings.from_settings(load_settings(), source_kind="simulator")
    allowed: dict[tuple[dt.date, str], set[Fingerprint]] = {}
    for max_dte in VARIANTS:
        cfg = replace(base, max_dte=max_dte)
        for day in SESSIONS:
            stage_publish(cfg, day)
        for key, print_ in committed_fingerprints(output_dir).items():
            allowed.setdefault(key, set()).add(print_)
    assert all(len(prints) == 2 for prints in allowed.values()), allowed  # the variants differ
    with session_lock(output_dir, FIRST_TIME):
        unpublish_session(output_dir, FIRST_TIME)

    rng = random.Random(SEED)
    landed: Counter = Counter()
    with Watchers(output_dir, allowed) as watchers:
        for n in range(ROUNDS):
            day = FIRST_TIME if n == 0 else rng.choice(REPUBLISHED)
            point = POINTS[n % len(POINTS)]
            env = {
                **os.environ,
                "SPX_DATA_PROCESSING__MAX_DTE": str(VARIANTS[n % 2]),
            }
            process = spawn_cli("process", day.isoformat(), "--force", env=env)
            landed[f"{point}→{kill_at(process, point, rng, pipeline_home.home, day)}"] += 1
        # Every session published to the end through the real CLI, then read and verified.
        monkeypatch.setenv("SPX_DATA_PROCESSING__MAX_DTE", str(VARIANTS[1]))
        for day in SESSIONS:
            result = invoke("process", day.isoformat(), "--force")
            assert result.exit_code == 0, result.output
    final = invoke("verify", "--all")
    assert final.exit_code == 0, final.output
    committed = committed_fingerprints(output_dir)
    with duckdb.connect() as connection:
        for dataset in DATASETS:
            seen = fingerprints(connection, glob_source(output_dir, dataset))
            assert {d: seen[d] for d in SESSIONS} == {d: committed[(d, dataset)] for d in SESSIONS}
    print(
        f"\nreader contract: {ROUNDS} SIGKILLs (seed {SEED}), target→where the run was: "
        f"{dict(sorted(landed.items()))}; reads checked (session × dataset): "
        f"{dict(watchers.checked)}; violations: {len(watchers.violations)}"
    )
    assert watchers.violations == [], "\n".join(watchers.violations)
    assert watchers.checked["glob"] > 0 and watchers.checked["history"] > 0
