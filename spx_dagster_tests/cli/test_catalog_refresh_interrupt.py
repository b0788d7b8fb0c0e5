"""A Ctrl-C while the catalog refreshes after `spx-data process` published a session.

On 43668ef the refresh ran on the main thread, so Dagster caught the KeyboardInterrupt: the
command warned "the catalog was not refreshed (None)" and exited 0. Now the refresh runs on a
worker thread and is let finish (one DuckDB transaction), and the caller learns that
Ctrl-C came (``interrupted``) to say so in one line and exit 130.
"""

from __future__ import annotations

import _thread
import sys
import threading
import time

from spx_dagster.ops import runs
from spx_dagster.ops.instance import open_instance


def test_ctrl_c_during_the_catalog_refresh_lets_it_finish_and_says_so(pipeline_home, monkeypatch):
    real = runs.load_definitions

    def definitions_then_ctrl_c():
        # What the user does while the refresh runs: a KeyboardInterrupt in the main thread,
        # once it waits for this one (not while it is still starting it).
        deadline = time.monotonic() + 30  # on 43668ef the main thread itself runs this
        while _main_thread_call_under("refresh_catalog") != "wait" and time.monotonic() < deadline:
            time.sleep(0.01)
        _thread.interrupt_main()
        return real()

    monkeypatch.setattr(runs, "load_definitions", definitions_then_ctrl_c)
    outcome = runs.refresh_catalog(open_instance(), tags=runs.run_tags(trigger="cli"))

    assert getattr(outcome, "interrupted", False), outcome
    assert outcome.ok, outcome.error
    from spx_dagster.cli.session_running import interrupted_after_publish

    line = interrupted_after_publish(runs.dt.date(2024, 11, 6), "run-1", outcome)
    assert line.startswith("interrupted: 2024-11-06 was published") and "refreshed too" in line


def _main_thread_call_under(function: str) -> str | None:
    """The name of the function the main thread's ``function`` frame is calling now."""
    frame = sys._current_frames().get(threading.main_thread().ident)
    callee = None
    while frame is not None:
        if frame.f_code.co_name == function:
            return callee
        callee, frame = frame.f_code.co_name, frame.f_back
    return None
