"""One publisher per session: an exclusive ``flock`` on ``_locks/date=D.lock``; ``verify`` holds
it shared, so it never checks a session halfway through a re-publish.

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
from spx_dagster.core.storage.layout import OutputLayout

DEFAULT_LOCK_TIMEOUT_S = 30.0


class SessionLocked(RuntimeError):
    """Another process is publishing the same session."""

    def __init__(
        self, session: dt.date, path: Path, holder: str, timeout_s: float, *, readers: bool = False
    ) -> None:
        self.session, self.path, self.holder, self.readers = session, path, holder, readers
        # The lock file names the last publisher; readers (verify) hold it shared and write
        # nothing, so when only readers hold it the file's name is not theirs.
        who = (
            ("being read by `spx-data verify` (the lock is held shared)", "that verify")
            if readers
            else (f"being published by another process ({holder or 'unknown'})", "that run")
        )
        super().__init__(
            f"session {session} is {who[0]}; lock {path} still held after {timeout_s:g} s; "
            f"wait for {who[1]} to finish and retry. The lock is released automatically when "
            f"its process exits."
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
    path = OutputLayout.of(output_dir).lock_file(session)
    ensure_dir(path.parent, mode=dir_mode)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, file_mode)
    try:
        _acquire(fd, fcntl.LOCK_EX, session, path, timeout_s, poll_s)
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


@contextlib.contextmanager
def session_read_lock(
    output_dir: Path,
    session: dt.date,
    *,
    timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    poll_s: float = 0.05,
) -> Iterator[Path | None]:
    """Hold the session's lock shared for the block: no publish changes the session meanwhile,
    and several readers (``verify`` runs) hold it at once. SessionLocked after ``timeout_s``.

    Needs no write access and creates nothing: where the lock file is missing (no publish of the
    session ever started) or cannot be opened, the block runs unlocked and gets None.
    """
    path = OutputLayout.of(output_dir).lock_file(session)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        # No lock file: nothing ever published the session here (publishers create it), and a
        # reader writes nothing (a refused run leaves the output directory as it was).
        fd = None
    if fd is None:
        yield None
        return
    try:
        _acquire(fd, fcntl.LOCK_SH, session, path, timeout_s, poll_s)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(
    fd: int, operation: int, session: dt.date, path: Path, timeout_s: float, poll_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                readers = operation == fcntl.LOCK_EX and _held_shared(path)
                raise SessionLocked(
                    session, path, _holder(path), timeout_s, readers=readers
                ) from None
            time.sleep(poll_s)


def _held_shared(path: Path) -> bool:
    """Whether the lock is held by readers only: a shared lock can still be taken beside them."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
