"""A separate process that publishes (or locks) a session, for the crash and lock tests.

``python -m spx_dagster_tests.core.storage_publish_worker OUTPUT SESSION loop``
    publishes version A, then B, then A, ... forever (the test SIGKILLs it at a random moment);
``... hold``
    takes the session lock and holds it until killed;
``... stall-before-commit-A`` (or ``-B``)
    writes every data file of that version, prints ``data-written`` and waits, lock held, for the
    kill that lands between the data and the manifest commit.
It prints ``ready`` once its imports and tables are prepared, so the test's kill timer measures
publishing time only.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

from spx_dagster.core.storage import (
    Manifest,
    SourceInfo,
    Versions,
    commit_manifest,
    publish_dataset,
    session_lock,
)
from spx_dagster_tests.factories import make_table

DATASETS = ("greeks", "eod")


def version_tables(session: dt.date, version: str) -> dict[str, list]:
    """Deterministic chunks of one version ("A" or "B") of a session."""
    seed = 1 if version == "A" else 2
    exps = [session, session + dt.timedelta(days=3)]
    return {
        "greeks": [
            make_table("greeks", session, expirations=[e], n_strikes=8, seed=seed + i)
            for i, e in enumerate(exps)
        ],
        "eod": [make_table("eod", session, expirations=exps, n_strikes=8, seed=seed)],
    }


def manifest_of(session: dt.date, entries: dict, versions) -> Manifest:
    return Manifest(
        session=session,
        source=SourceInfo("simulator", "http://127.0.0.1:1", "v3"),
        versions=versions,
        datasets=entries,
        roots=["SPXW"],
    )


def publish_version(output: Path, session: dt.date, tables: dict[str, list], versions) -> Manifest:
    with session_lock(output, session, timeout_s=30):
        entries = {ds: publish_dataset(output, session, ds, tables[ds]) for ds in DATASETS}
        manifest = manifest_of(session, entries, versions)
        commit_manifest(output, manifest)
    return manifest


def main() -> None:
    output, session, mode = Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2]), sys.argv[3]
    if mode == "hold":
        with session_lock(output, session, timeout_s=30):
            print("ready", flush=True)
            while True:
                time.sleep(1)
    versions = Versions.current()
    tables = {v: version_tables(session, v) for v in ("A", "B")}
    print("ready", flush=True)
    if mode.startswith("stall-before-commit-"):
        with session_lock(output, session, timeout_s=30):
            for ds in DATASETS:
                publish_dataset(output, session, ds, tables[mode[-1]][ds])
            print("data-written", flush=True)
            while True:
                time.sleep(1)
    i = 0
    while True:
        publish_version(output, session, tables["AB"[i % 2]], versions)
        i += 1


if __name__ == "__main__":
    main()
