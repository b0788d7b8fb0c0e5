"""The SQLite config store: versions and history, migrations, damaged files, crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from spx_dagster.core.config import ConfigError, ConfigStore, StoreError, UnknownKeyError
from spx_dagster.core.config.store import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def store(tmp_path: Path) -> ConfigStore:
    return ConfigStore(tmp_path / "home" / "config.sqlite3")


def test_a_missing_store_reads_empty_and_is_not_created(store: ConfigStore):
    assert store.list() == {}
    assert store.history() == []
    assert store.reset() == []
    assert not store.path.exists()
    assert store.schema_version() == 0


def test_set_get_and_history_with_versions(store: ConfigStore):
    first = store.set("thetadata.timeout_s", "30", source="cli", who="ann@box")
    second = store.set("thetadata.timeout_s", 45, source="api", who="bob@box")
    assert store.set("thetadata.timeout_s", "45.0") is None  # same canonical text: no change
    store.set("processing.datasets", " greeks , eod ")

    assert (first.version, first.old_value, first.new_value) == (1, None, "30")
    assert (second.version, second.old_value, second.new_value) == (2, "30", "45")
    stored = store.get("thetadata.timeout_s")
    assert (stored.value, stored.version, stored.updated_by, stored.source) == (
        "45",
        2,
        "bob@box",
        "api",
    )
    assert store.get("processing.datasets").value == "greeks,eod"  # canonical text form
    history = store.history("thetadata.timeout_s")
    assert [(c.version, c.action, c.changed_by) for c in history] == [
        (1, "set", "ann@box"),
        (2, "set", "bob@box"),
    ]
    assert [c.key for c in store.history()] == [
        "thetadata.timeout_s",
        "thetadata.timeout_s",
        "processing.datasets",
    ]
    assert [c.key for c in store.history(limit=1)] == ["processing.datasets"]
    assert [c.version for c in store.history("thetadata.timeout_s", limit=1)] == [2]
    assert store.schema_version() == SCHEMA_VERSION


def test_reset_records_a_new_version_and_the_default_applies_again(store: ConfigStore):
    store.set("retry.max_attempts", "5")
    store.set("quality.min_score", "0.9")
    (reset,) = store.reset("retry.max_attempts", who="ann@box")
    assert (reset.action, reset.version, reset.old_value, reset.new_value) == (
        "reset",
        2,
        "5",
        None,
    )
    assert store.get("retry.max_attempts") is None
    assert store.reset("retry.max_attempts") == []  # nothing stored: nothing to record
    again = store.set("retry.max_attempts", "4")
    assert again.version == 3 and again.old_value is None

    changes = store.reset()
    assert sorted(c.key for c in changes) == ["quality.min_score", "retry.max_attempts"]
    assert store.list() == {}


def test_set_refuses_unknown_keys_and_invalid_values_without_writing(store: ConfigStore):
    store.set("thetadata.base_url", "http://127.0.0.1:25510")
    with pytest.raises(UnknownKeyError, match=r"thetadata\.base_url"):
        store.set("thetadata.baseurl", "http://127.0.0.1:25503")
    with pytest.raises(ConfigError) as caught:
        store.set("thetadata.base_url", "ftp://x")
    message = str(caught.value)
    assert "thetadata.base_url" in message and "ftp://x" in message
    assert "http://127.0.0.1:25503" in message  # an example of a valid value
    assert store.get("thetadata.base_url").value == "http://127.0.0.1:25510"
    assert len(store.history()) == 1


def _write_v1_store(path: Path) -> None:
    """A store exactly as schema 1 wrote it: current values only, no history."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
        INSERT INTO config VALUES ('thetadata.base_url', 'http://127.0.0.1:25510',
                                   '2024-01-02T10:00:00+00:00');
        INSERT INTO config VALUES ('processing.start_date', '2018-01-02',
                                   '2024-01-03T10:00:00+00:00');
        INSERT INTO config VALUES ('legacy.page_size', '500', '2024-01-04T10:00:00+00:00');
        PRAGMA user_version = 1;
        """
    )
    conn.commit()
    conn.close()


def test_a_schema_1_store_is_migrated_keeping_every_value(store: ConfigStore):
    _write_v1_store(store.path)

    stored = store.list()  # the first read migrates

    assert store.schema_version() == SCHEMA_VERSION
    assert {k: v.value for k, v in stored.items()} == {
        "legacy.page_size": "500",  # unknown to this version, but never dropped
        "processing.start_date": "2018-01-02",
        "thetadata.base_url": "http://127.0.0.1:25510",
    }
    assert all(v.version == 1 and v.source == "migration" for v in stored.values())
    history = store.history("processing.start_date")
    assert [(c.action, c.version, c.new_value, c.changed_at) for c in history] == [
        ("migrate", 1, "2018-01-02", "2024-01-03T10:00:00+00:00")
    ]
    change = store.set("processing.start_date", "2019-01-02")
    assert (change.version, change.old_value) == (2, "2018-01-02")
    (reset,) = store.reset("legacy.page_size")
    assert reset.old_value == "500"


def test_a_store_from_a_newer_version_is_refused_untouched(store: ConfigStore):
    store.path.parent.mkdir(parents=True)
    conn = sqlite3.connect(store.path)
    conn.execute("CREATE TABLE future (x)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = store.path.read_bytes()
    with pytest.raises(StoreError, match="newer spx-data"):
        store.list()
    assert store.path.read_bytes() == before


def test_a_file_that_is_not_a_database_gives_guidance(store: ConfigStore):
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as caught:
        store.list()
    assert str(store.path) in str(caught.value) and "move it aside" in str(caught.value)


def test_sigkill_inside_config_set_leaves_the_old_value(tmp_path: Path):
    home = tmp_path / "home"
    store = ConfigStore(home / "config.sqlite3")
    store.set("thetadata.base_url", "http://127.0.0.1:25510")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPX_DATA_")} | {
        "SPX_DATA_HOME": str(home)
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spx_dagster_tests.core.config.config_set_worker",
            "thetadata.base_url",
            "http://127.0.0.1:25999",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "inside-transaction", proc.stderr.read()
        # The new value is written but not committed: SQLite's rollback journal is live.
        assert Path(f"{store.path}-journal").exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    assert store.get("thetadata.base_url").value == "http://127.0.0.1:25510"
    assert [c.new_value for c in store.history("thetadata.base_url")] == ["http://127.0.0.1:25510"]
    assert store.set("thetadata.base_url", "http://127.0.0.1:25999").version == 2
