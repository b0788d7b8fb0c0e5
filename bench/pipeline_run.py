"""Our pipeline on one session, as the Dagster assets run it, minus Dagster.

``run_stages`` is called in a child process (``harness.run_child``) whose environment points
``SPX_DATA_HOME`` at a temporary home and ``thetadata.base_url`` at the simulator. It does what
the three session assets do (``defs/assets.py``): the disk-space check, a progress reporter
writing its file, ``fetch_session`` with the client built from the settings, ``validate_session``
and ``publish_session``, and returns the figures of each stage.

``plan_requests`` lists a session's request plan the way the fetch stage does, so that the bare
bound and the naive baseline send exactly the same requests.
"""

from __future__ import annotations

import datetime as dt
import resource
import time

STAGES = ("fetch", "validate", "publish")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def run_stages(session: str, stages: list[str] | tuple[str, ...] = STAGES) -> dict:
    """Run ``stages`` of ``session`` with the settings of this process's environment."""
    from spx_dagster.core.config import load_settings
    from spx_dagster.core.config.home import spx_home
    from spx_dagster.core.progress import ProgressReporter
    from spx_dagster.core.session_stages import (
        PipelineSettings,
        check_space_for,
        fetch_session,
        publish_session,
        validate_session,
    )
    from spx_dagster.core.thetadata.client import ThetaClient

    day = dt.date.fromisoformat(session)
    settings = load_settings()
    cfg = PipelineSettings.from_settings(settings, source_kind="simulator")
    progress = ProgressReporter(
        session=session, run_id=f"bench-{session}", directory=spx_home() / "progress"
    )
    figures: dict = {"concurrency": cfg.concurrency, "max_dte": cfg.max_dte}
    started = time.monotonic()
    if "fetch" in stages:
        cpu = _cpu_s()
        check_space_for(cfg)
        with ThetaClient.from_settings(settings) as client:
            fetch = fetch_session(client, cfg, day, progress=progress)
        summary = fetch.summary
        figures.update(
            fetch_s=time.monotonic() - started,
            fetch_cpu_s=_cpu_s() - cpu,
            listing_s=fetch.listing_seconds,
            requests=summary.requests,
            http_requests=fetch.requests_sent,
            contracts=fetch.plan.chain.contract_count,
            rows=summary.rows,
            wire_bytes=summary.bytes,
            retries=summary.retries,
            answers=[
                {
                    "request": f"{a.dataset} {a.root} {a.expiration}",
                    "seconds": a.seconds,
                    "rows": a.rows,
                    "bytes": a.bytes,
                }
                for a in summary.answers
            ],
        )
    if "validate" in stages:
        mark, cpu = time.monotonic(), _cpu_s()
        validated = validate_session(cfg, day, progress=progress)
        figures.update(
            validate_s=time.monotonic() - mark,
            validate_cpu_s=_cpu_s() - cpu,
            valid_rows=validated.valid_rows,
            rejected_rows=validated.rejected_rows,
            quality_score=validated.report.score,
        )
    if "publish" in stages:
        mark, cpu = time.monotonic(), _cpu_s()
        published = publish_session(cfg, day, progress=progress)
        figures.update(
            publish_s=time.monotonic() - mark,
            publish_cpu_s=_cpu_s() - cpu,
            parquet_bytes=sum(
                f.bytes for entry in published.manifest.datasets.values() for f in entry.files
            ),
            published_rows=sum(e.rows for e in published.manifest.datasets.values()),
        )
    progress.finish("done")
    figures["total_s"] = time.monotonic() - started
    return figures


def plan_requests(
    base_url: str, session: dt.date, *, max_dte: int | None, datasets: tuple[str, ...]
) -> list[tuple[str, str, dt.date | None]]:
    """(dataset, root, expiration) of every request the fetch stage would send for ``session``."""
    from spx_dagster.core.chains import list_chain, plan_session
    from spx_dagster.core.thetadata.client import ThetaClient
    from spx_dagster.core.thetadata.vendor import ROOTS, Tier

    with ThetaClient(base_url=base_url) as client:
        chain = list_chain(client, session, roots=ROOTS, tier=Tier.STANDARD, max_dte=max_dte)
    plan = plan_session(chain, datasets=datasets)
    return [(r.dataset, r.root, r.expiration) for r in plan.requests]
