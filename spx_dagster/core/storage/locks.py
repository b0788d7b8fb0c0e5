"""One publisher per session: an exclusive ``flock`` on ``_locks/date=D.lock``.

flock locks belong to the open file and vanish when the holder exits (even on SIGKILL), so a
crashed publisher never leaves a stale lock behind. The lock file itself is never deleted:
deleting it would let two processes hold locks on two different inodes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from spx_dagster.core.storage.atomic import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, ensure_dir
from spx_dagster.core.storage.layout import lock_file

DEFAULT_LOCK_TIMEOUT_S = 30.0


class SessionLocked(RuntimeError):
    """Another process is publishing the same session."""

    def __init__(self, session: dt.date, path: Path, holder: str, timeout_s: float) -> None:
        self.session, self.path, self.holder = session, path, holder
        super().__init__(
            f"session {session} is being published by another process ({holder or 'unknown'}; "
            f"lock {path} still held after {timeout_s:g} s); wait for that run to finish and "
            f"retry. The lock is released automatically when its process exits."
        )


@contextlib.contextmanager
def session_lock(
    output_dir: Path,
    session: dt.date,
    *,
    timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    poll_s: float = 0.05,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> Iterator[Path]:
    """Hold the session's exclusive lock for the block; SessionLocked after ``timeout_s``."""
    path = lock_file(output_dir, session)
    ensure_dir(path.parent, mode=dir_mode)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, file_mode)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SessionLocked(session, path, _holder(path), timeout_s) from None
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            f"pid {os.getpid()} on {socket.gethostname()} since "
            f"{dt.datetime.now(tz=dt.UTC).isoformat(timespec='seconds')}\n".encode(),
            0,
        )
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
