"""In-process runs whose process died: how they are marked, found and ended.

A run that the CLI executes in its own process (``process``, ``retry``, ``demo``, the catalog
refresh) carries ``spx/worker: host:pid:process start time``. A process that dies without
recording the end of its run (SIGKILL, out of memory, a power cut) leaves the run STARTED and its
pool slot claimed for ever: every later run would wait for that slot with no end, and the session
would show as in progress. ``reap_dead_runs`` finds such runs by their tag and ends them; the CLI
calls it whenever it opens the instance. Runs the daemon launches have no such tag: Dagster's
run monitoring and ``run_retries`` look after those.
"""

from __future__ import annotations

import socket

import dagster as dg
import psutil

from spx_dagster.defs.constants import ERROR_CATEGORY_TAG, ERROR_MESSAGE_TAG

WORKER_TAG = "spx/worker"
CRASH = "crash"
_UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def worker_tag() -> str:
    """The ``spx/worker`` value naming this process."""
    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{me.create_time():.2f}"


def _worker_dead(tag: str) -> bool:
    """Whether the process ``tag`` names is gone (False when it runs on another host)."""
    try:
        host, pid, started = tag.rsplit(":", 2)
        if host != socket.gethostname():
            return False
        return abs(psutil.Process(int(pid)).create_time() - float(started)) > 1.0  # pid reused
    except psutil.NoSuchProcess:
        return True
    except (ValueError, psutil.Error):
        return False


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """End the in-process runs whose process died without recording it; return their ids.

    Each is marked failed with category ``crash`` (its staged answers stay for the next run to
    resume from) and its pool slots are freed, so the next run neither waits for ever for a slot
    nor sees the session as in progress.
    """
    reaped = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=_UNFINISHED)):
        run = record.dagster_run
        tag = run.tags.get(WORKER_TAG)
        if not tag or not _worker_dead(tag):
            continue
        host, pid, _ = tag.rsplit(":", 2)
        message = (
            f"the process running it (pid {pid} on {host}) died without recording the end of "
            "the run (killed, out of memory or a power cut); staged answers are kept"
        )
        instance.add_run_tags(run.run_id, {ERROR_CATEGORY_TAG: CRASH, ERROR_MESSAGE_TAG: message})
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped
