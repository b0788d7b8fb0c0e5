"""Who a refused publisher is told holds the session's lock: a publisher (named in the lock
file) or readers (``verify`` holds the lock shared and writes nothing into it)."""

from __future__ import annotations

import datetime as dt

import pytest

from spx_dagster.core.storage import SessionLocked, session_lock
from spx_dagster.core.storage.locks import session_read_lock

SESSION = dt.date(2024, 11, 4)


def test_a_publisher_refused_by_a_verify_is_told_a_verify_holds_it(tmp_path):
    with session_lock(tmp_path, SESSION):
        pass  # the last publisher's name stays in the lock file
    with (
        session_read_lock(tmp_path, SESSION),
        pytest.raises(SessionLocked) as refused,
        session_lock(tmp_path, SESSION, timeout_s=0.1),
    ):
        pass
    assert refused.value.readers
    assert "being read by `spx-data verify`" in str(refused.value)
    assert "being published" not in str(refused.value)


def test_a_publisher_refused_by_a_publisher_is_told_its_name(tmp_path):
    with (
        session_lock(tmp_path, SESSION),
        pytest.raises(SessionLocked) as refused,
        session_lock(tmp_path, SESSION, timeout_s=0.1),
    ):
        pass
    assert not refused.value.readers
    assert "being published by another process (pid " in str(refused.value)
