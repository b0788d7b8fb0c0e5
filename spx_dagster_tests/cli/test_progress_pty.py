"""`spx-data process` in a real (pseudo-)terminal: the bar moves during the fetch, and Ctrl-C typed
at the keyboard ends the run with one line and exit 130.

The command runs as a subprocess whose stdin, stdout and stderr are the slave side of a pty of 80
columns, with the pty as its controlling terminal, so ``\\x03`` written to the master side is a
SIGINT to its whole foreground process group (Dagster's helper processes included), exactly as
when a user presses Ctrl-C. The simulator answers every data request after 0.4 s, so the fetch
takes several seconds.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from spx_dagster.core.thetadata.vendor import HEALTH_PATHS
from spx_dagster.simulator import FaultRule

SESSION = dt.date(2024, 11, 6)
SPX_DATA = str(Path(sys.executable).with_name("spx-data"))
COLUMNS, ROWS = 80, 24
# A percentage as the bar prints it ("  37.5%").
PERCENT = re.compile(rb"(\d{1,3}\.\d)%")
# Run in the new session: make the pty its controlling terminal (Ctrl-C then reaches the
# foreground process group), then become the command. No preexec_fn: the test process has threads.
TAKE_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


class Terminal:
    """A command on the slave side of a pty; everything it draws is kept in ``output``."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.master = master
        self.output = b""
        self.process = subprocess.Popen(
            [sys.executable, "-c", TAKE_TERMINAL, *args],
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)

    def read(self, timeout_s: float = 0.2) -> bytes:
        """What the command drew within ``timeout_s`` (b"" once it has closed the terminal)."""
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        if not ready:
            return b""
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every slave descriptor is closed
            chunk = b""
        self.output += chunk
        return chunk

    def read_until(self, predicate, *, limit_s: float = 120) -> bool:
        """Read until ``predicate(output)`` holds or the command ends; whether it held."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if predicate(self.output):
                return True
            if not self.read() and self.process.poll() is not None:
                self.read(0)
                return predicate(self.output)
        return predicate(self.output)

    def finish(self, limit_s: float = 120) -> int:
        """Read to the end of the command; its exit code."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if not self.read() and self.process.poll() is not None:
                break
        while self.read(0.1):
            pass
        os.close(self.master)
        return self.process.wait(timeout=30)

    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


def _slow_fetch(simulator) -> dict[str, str]:
    simulator.add_fault(
        FaultRule(kind="latency", seconds=0.4, date=SESSION, path="/option/history")
    )
    return {**os.environ, "SPX_DATA_THETADATA__CONCURRENCY": "1", "TERM": "xterm-256color"}


def _intermediate_percentages(output: bytes) -> list[float]:
    return [float(m) for m in PERCENT.findall(output) if 0 < float(m) < 100]


def _fetching(progress_dir: Path) -> bool:
    """Whether a run's progress file says it has staged some, not all, of its answers."""
    for path in progress_dir.glob("*.json"):
        try:
            snap = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if snap.get("stage") == "fetch" and 1 <= snap.get("done", 0) < snap.get("total", 0):
            return True
    return False


def test_the_bar_moves_through_the_fetch_in_a_terminal(pipeline_home, tiny_simulator):
    terminal = Terminal([SPX_DATA, "process", SESSION.isoformat()], _slow_fetch(tiny_simulator))
    saw_progress = terminal.read_until(lambda out: bool(_intermediate_percentages(out)))
    drawn_before_the_end = terminal.output
    code = terminal.finish()
    text = terminal.text()

    assert code == 0, text
    assert saw_progress, f"no percentage strictly between 0 and 100 was drawn:\n{text}"
    assert b"published" not in drawn_before_the_end
    # Everything the bar promises is on the terminal while the fetch runs.
    for figure in (b"fetching", b"rows/min", b"MB/min", b"mem ", b"ETA ", b"SPX"):
        assert figure in drawn_before_the_end, (figure, text)
    assert "published" in text and "Traceback" not in text


def test_ctrl_c_in_a_terminal_prints_one_line_and_exits_130(pipeline_home, tiny_simulator):
    terminal = Terminal([SPX_DATA, "process", SESSION.isoformat()], _slow_fetch(tiny_simulator))
    progress_dir = pipeline_home.home / "progress"
    fetching = terminal.read_until(lambda _: _fetching(progress_dir))
    assert fetching, terminal.text()
    before = len(terminal.output)
    os.write(terminal.master, b"\x03")
    code = terminal.finish()
    text = terminal.text()
    after = terminal.output[before:].decode("utf-8", "replace")

    assert code == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert after.count("interrupted:") == 1, after
    # One line: nothing printed after Ctrl-C but the bar's two lines (redrawn) and that line.
    printed = [line for line in re.split(r"[\r\n]+", _plain(after)) if line.strip()]
    lines = [line for line in printed if not _bar_line(line) and line != "^C"]
    assert len(lines) == 1, printed
    assert "resumes" in lines[0]


def test_ctrl_c_before_the_run_starts_exits_130_with_one_line(pipeline_home, tiny_simulator):
    # The terminal answers 571 (starting) to every readiness probe: process waits, saying so.
    tiny_simulator.add_fault(FaultRule(kind="status", status=571, path=HEALTH_PATHS["v3"]))
    env = {**os.environ, "SPX_DATA_THETADATA__TIMEOUT_S": "600"}
    terminal = Terminal([SPX_DATA, "process", SESSION.isoformat()], env)
    waiting = terminal.read_until(lambda out: b"waiting for ThetaTerminal" in out)
    assert waiting, terminal.text()
    before = len(terminal.output)
    os.write(terminal.master, b"\x03")
    code = terminal.finish()
    after = _plain(terminal.output[before:].decode("utf-8", "replace"))

    assert code == 130, terminal.text()
    assert "Traceback" not in after and "KeyboardInterrupt" not in after, after
    assert "Aborted!" not in after
    lines = [line for line in re.split(r"[\r\n]+", after) if line.strip() and line != "^C"]
    assert len(lines) == 1 and lines[0].startswith("interrupted"), lines


def _bar_line(line: str) -> bool:
    """Whether ``line`` is one of the bar's: its first (the session) or its second (rates)."""
    return line.startswith(SESSION.isoformat()) or "MB/min" in line


def _plain(text: str) -> str:
    """``text`` without terminal control sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
