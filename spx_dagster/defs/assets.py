"""The session assets: raw option chains → validated options → options parquet.

Each asset is one stage of ``core/session_stages.py`` for one trading session (partition). The
stages hand over through files in ``storage.temp_dir``, so assets return no value (no IO
manager) and any one of them can be re-materialized on its own. Failures are tagged on the run
with a category (``spx/error_category``) that ``spx-data errors``, ``gaps`` and ``retry`` read;
permanent failures skip Dagster's step retries.
"""

import contextlib
import os
import resource
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from spx_dagster.core import calendar, failures
from spx_dagster.core.config.home import spx_home
from spx_dagster.core.progress import ProgressReporter
from spx_dagster.core.quality import Family, FamilyResult
from spx_dagster.core.quality.thresholds import alert_threshold
from spx_dagster.core.revisits import RevisitRun
from spx_dagster.core.session_stages import (
    check_space_for,
    fetch_session,
    publish_session,
    validate_session,
)
from spx_dagster.core.storage import verify_session
from spx_dagster.core.validation import SchemaBreak
from spx_dagster.defs.constants import (
    CHECKSUM_CHECK,
    COVERAGE_CHECK,
    ERROR_CATEGORY_TAG,
    ERROR_MESSAGE_TAG,
    FAMILY_CHECKS,
    INTERVALS_CHECK,
    PARQUET,
    QUALITY_CHECK,
    RAW,
    REVISIT_TAG,
    SCHEMA_CHECK,
    THETADATA_POOL,
    VALIDATED,
)
from spx_dagster.defs.partitions import SESSIONS, session_from_key
from spx_dagster.defs.resources import SpxSettingsResource, ThetaDataResource

# Partitioned asset checks are a preview feature in Dagster 1.13; the package pins 1.13.* and
# test_defs pins the check definitions, so the per-definition warning is noise for users.
warnings.filterwarnings(
    "ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec"
)

GROUP = "spx"
# Step retries for transient failures (terminal restarts, throttling, dropped connections) that
# outlast the client's own per-request retries; permanent ones raise Failure(allow_retries=False).
TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
PROGRESS_DIRNAME = "progress"
NEWEST_KEY_NOTE = (
    "The newest partition key is the session trading today (the daily schedule needs its key "
    "to exist): it cannot be processed before its end-of-day report at 17:15 ET, and until then "
    "every launch of it fails at once with category not_closed, using no attempt and staging "
    "nothing. `spx-data list` counts only closed sessions."
)


def progress_dir() -> str:
    """Where runs write their live progress (read by ``spx-data status``)."""
    return str(spx_home() / PROGRESS_DIRNAME)


def _reporter(context: dg.AssetExecutionContext) -> ProgressReporter:
    return ProgressReporter(
        session=context.partition_key, run_id=context.run.run_id, directory=Path(progress_dir())
    )


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux; MB are decimal (core/units).
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1)


def _worker() -> str:
    """``host:pid`` of the process that ran the step: shows where work went across workers."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def recorded_failure(context: dg.AssetExecutionContext, stage: str) -> Iterator[None]:
    """Tag the run with the category of any failure; skip step retries for permanent ones."""
    try:
        yield
    except dg.Failure:
        raise
    except BaseException as error:
        category = failures.failure_category(error).value
        message = failures.short_message(error)
        with contextlib.suppress(Exception):
            context.instance.add_run_tags(
                context.run.run_id, {ERROR_CATEGORY_TAG: category, ERROR_MESSAGE_TAG: message}
            )
        context.log.error(f"{stage} of {context.partition_key} failed ({category}): {error}")
        if isinstance(error, Exception) and not failures.is_transient(category):
            raise dg.Failure(
                description=f"{stage} failed ({category}): {error}",
                metadata={"error_category": category, "stage": stage},
                allow_retries=False,
            ) from error
        raise


def _per_minute(amount: float, seconds: float) -> float:
    return round(amount * 60.0 / seconds, 1) if seconds > 0 else 0.0


@dg.asset(
    key=RAW,
    partitions_def=SESSIONS,
    pool=THETADATA_POOL,
    retry_policy=TRANSIENT_RETRY,
    group_name=GROUP,
    kinds={"python", "parquet"},
    description=(
        "Every response of the session fetched from ThetaTerminal (roots × expirations × "
        "datasets), staged on disk as it arrives; an interrupted run resumes from it.\n\n"
        + NEWEST_KEY_NOTE
    ),
)
def raw_option_chains(
    context: dg.AssetExecutionContext,
    spx_settings: SpxSettingsResource,
    thetadata: ThetaDataResource,
) -> dg.MaterializeResult:
    session = session_from_key(context.partition_key)
    with recorded_failure(context, "fetch"):
        # Every path (dagster CLI, UI, backfill, sensor, schedule) reaches this step: nothing is
        # fetched or staged for a session before its end-of-day report.
        calendar.require_closed(session)
        settings = spx_settings.load()
        cfg = spx_settings.pipeline(settings)
        need = check_space_for(cfg)
        progress = _reporter(context)
        with thetadata.get_client(settings) as client:
            outcome = fetch_session(client, cfg, session, progress=progress)
        progress.finish("fetched")
    summary = outcome.summary
    seconds = max(summary.seconds, 1e-6)
    retries = summary.retries
    return dg.MaterializeResult(
        metadata={
            "requests": summary.requests,
            "http_requests": outcome.requests_sent,
            "resumed_requests": summary.resumed,
            "no_data_answers": summary.no_data,
            "malformed_rows": summary.malformed_rows,
            "retries": sum(retries.values()),
            "retries_by_cause": retries,
            "rows": summary.rows,
            "bytes": summary.bytes,
            "expirations": outcome.plan.chain.expiration_count(),
            "contracts": outcome.plan.chain.contract_count,
            "seconds": round(summary.seconds, 3),
            "records_per_min": _per_minute(summary.rows, seconds),
            "mb_per_min": _per_minute(summary.bytes / 1e6, seconds),
            "peak_rss_mb": _peak_rss_mb(),
            "worker": _worker(),
            "disk_estimate_bytes": need or outcome.disk_estimate_bytes,
            "source": f"{cfg.source.kind} at {cfg.source.terminal_url}",
        }
    )


@dg.asset(
    key=VALIDATED,
    deps=[RAW],
    partitions_def=SESSIONS,
    group_name=GROUP,
    kinds={"pandera", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            SCHEMA_CHECK.name,
            asset=VALIDATED,
            blocking=True,
            partitions_def=SESSIONS,
            description="Every response matches the published schema; nothing is published if not.",
        ),
        dg.AssetCheckSpec(
            QUALITY_CHECK.name,
            asset=VALIDATED,
            partitions_def=SESSIONS,
            description="The session's quality score is at least quality.min_score (warns).",
        ),
        dg.AssetCheckSpec(
            COVERAGE_CHECK.name,
            asset=VALIDATED,
            partitions_def=SESSIONS,
            description="Every expiration listed that day has data (warns).",
        ),
        dg.AssetCheckSpec(
            INTERVALS_CHECK.name,
            asset=VALIDATED,
            partitions_def=SESSIONS,
            description="Intraday contracts have every interval of the session (warns).",
        ),
        *(
            dg.AssetCheckSpec(
                key.name,
                asset=VALIDATED,
                partitions_def=SESSIONS,
                description=(
                    f"The {family.value} family of research checks: the share of checked rows it "
                    "flags stays below its alert level (warns; rows are flagged, never dropped)."
                ),
            )
            for family, key in FAMILY_CHECKS.items()
        ),
    ],
    description=(
        "The staged responses checked row by row with pandera; invalid rows go to _quarantine "
        "with the failed check, and the session gets a quality score with its parts."
    ),
)
def validated_options(
    context: dg.AssetExecutionContext, spx_settings: SpxSettingsResource
) -> dg.MaterializeResult:
    session = session_from_key(context.partition_key)
    with recorded_failure(context, "validate"):
        settings = spx_settings.load()
        cfg = spx_settings.pipeline(settings)
        min_score = float(settings.quality.min_score)
        progress = _reporter(context)
        try:
            outcome = validate_session(cfg, session, progress=progress)
        except SchemaBreak as broken:
            return _schema_break_result(context, broken)
        progress.finish("validated")
    return _validated_result(outcome, min_score)


def _schema_break_result(
    context: dg.AssetExecutionContext, broken: SchemaBreak
) -> dg.MaterializeResult:
    context.instance.add_run_tags(
        context.run.run_id,
        {ERROR_CATEGORY_TAG: "schema", ERROR_MESSAGE_TAG: failures.short_message(broken)},
    )
    skipped = {"reason": "the schema check failed; nothing was measured"}
    return dg.MaterializeResult(
        metadata={"schema_break": str(broken)},
        check_results=[
            dg.AssetCheckResult(
                check_name=SCHEMA_CHECK.name,
                passed=False,
                metadata={
                    "dataset": broken.dataset,
                    "source": broken.source,
                    "problems": "; ".join(broken.problems),
                },
                description=str(broken),
            ),
            *(
                dg.AssetCheckResult(
                    check_name=key.name,
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata=skipped,
                )
                for key in (QUALITY_CHECK, COVERAGE_CHECK, INTERVALS_CHECK, *FAMILY_CHECKS.values())
            ),
        ],
    )


def _part(report, name: str) -> float | None:
    value = report.parts.get(name)
    return None if value is None else round(float(value), 6)


def _validated_result(outcome, min_score: float) -> dg.MaterializeResult:
    report = outcome.report
    score = report.score
    coverage = _part(report, "expiration_coverage")
    intervals = _part(report, "interval_completeness")
    counts = dict(report.counts)
    parts = {k: (None if v is None else round(float(v), 6)) for k, v in report.parts.items()}
    common = {"rows": outcome.rows, "rejected_rows": outcome.rejected_rows}
    return dg.MaterializeResult(
        metadata={
            "rows": outcome.rows,
            "valid_rows": outcome.valid_rows,
            "rejected_rows": outcome.rejected_rows,
            "rejected_by_check": dict(report.reasons),
            "quality_score": score,
            "quality_parts": parts,
            "quarantine": outcome.quarantine,
            "seconds": round(outcome.seconds, 3),
            "records_per_min": _per_minute(outcome.rows, max(outcome.seconds, 1e-6)),
            "peak_rss_mb": _peak_rss_mb(),
            "worker": _worker(),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=SCHEMA_CHECK.name,
                passed=True,
                metadata={"datasets_checked": len(report.by_dataset), **common},
            ),
            dg.AssetCheckResult(
                check_name=QUALITY_CHECK.name,
                passed=score is not None and score >= min_score,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"score": score, "min_score": min_score, **parts, **common},
            ),
            dg.AssetCheckResult(
                check_name=COVERAGE_CHECK.name,
                passed=coverage is None or coverage >= 1.0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "score": coverage,
                    "listed_expirations": outcome.listed_expirations,
                },
            ),
            dg.AssetCheckResult(
                check_name=INTERVALS_CHECK.name,
                passed=intervals is None or intervals >= min_score,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "score": intervals,
                    "contracts": counts.get("intraday_contracts", 0),
                    "complete_contracts": counts.get("complete_contracts", 0),
                    "min_score": min_score,
                },
            ),
            *(_family_result(report, family, key) for family, key in FAMILY_CHECKS.items()),
        ],
    )


def _family_result(report, family: Family, key: dg.AssetCheckKey) -> dg.AssetCheckResult:
    """A family's check: score and counts as numbers (Dagster plots them over partitions) and
    its worst examples as a markdown table."""
    result = report.families.get(family.value) or FamilyResult(family)
    threshold = alert_threshold(family.value)
    score = result.score
    return dg.AssetCheckResult(
        check_name=key.name,
        passed=score is None or score >= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "score": dg.MetadataValue.float(score) if score is not None else None,
            "checked": result.checked,
            "violations": result.violations,
            "threshold": threshold,
            **{name: count for name, count in result.counts.items()},
            **{name: dg.MetadataValue.float(value) for name, value in result.measures.items()},
            "worst": dg.MetadataValue.md(result.examples_markdown()),
        },
        description=f"{result.violations} of {result.checked} rows flagged",
    )


@dg.asset(
    key=PARQUET,
    deps=[VALIDATED],
    partitions_def=SESSIONS,
    group_name=GROUP,
    kinds={"parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            CHECKSUM_CHECK.name,
            asset=PARQUET,
            blocking=True,
            partitions_def=SESSIONS,
            description="Every file the manifest lists matches its SHA-256 and size.",
        )
    ],
    description=(
        "The session published under storage.output_dir: zstd parquet per dataset with .sha256 "
        "sidecars, and the manifest written last as the commit point."
    ),
)
def options_parquet(
    context: dg.AssetExecutionContext, spx_settings: SpxSettingsResource
) -> dg.MaterializeResult:
    session = session_from_key(context.partition_key)
    with recorded_failure(context, "publish"):
        cfg = spx_settings.pipeline()
        progress = _reporter(context)
        after_days = context.run.tags.get(REVISIT_TAG, "")
        revisit = RevisitRun(int(after_days), context.run_id) if after_days.isdigit() else None
        outcome = publish_session(cfg, session, progress=progress, revisit=revisit)
        report = verify_session(cfg.output_dir, session)
        progress.finish("done")
    manifest = outcome.manifest
    total_s = manifest.durations.total_s
    return dg.MaterializeResult(
        metadata={
            "status": manifest.status,
            "rows": manifest.rows,
            "bytes": manifest.bytes,
            "files": len(manifest.files),
            "datasets": sorted(manifest.datasets),
            "expirations": sum(len(v) for v in manifest.expirations.values()),
            "requests": manifest.requests,
            "retries": sum(manifest.retries.values()),
            "quality_score": manifest.quality.score,
            "seconds": round(total_s, 3),
            "publish_seconds": round(outcome.seconds, 3),
            "records_per_min": _per_minute(manifest.rows, max(total_s, 1e-6)),
            "mb_per_min": _per_minute(manifest.bytes / 1e6, max(total_s, 1e-6)),
            "peak_rss_mb": _peak_rss_mb(),
            "worker": _worker(),
            "manifest": dg.MetadataValue.path(str(outcome.manifest_path)),
            "source": manifest.source.kind,
            # A revisit's outcome: "new" (its publish replaced the previous one) or "previous".
            **{
                f"revisit_after_{r['after_days']}d": r["kept"]
                for r in manifest.revisits
                if r.get("run_id") == context.run_id
            },
        },
        check_results=[checksum_result(report)],
    )


def checksum_result(report) -> dg.AssetCheckResult:
    """The ``checksums_match`` result of a verify report (also reported by ``spx-data verify``)."""
    problems = [f"{p.kind}: {p.path}: {p.message}" for p in report.errors]
    return dg.AssetCheckResult(
        check_name=CHECKSUM_CHECK.name,
        passed=report.ok,
        metadata={
            "score": 1.0 if report.ok else 0.0,
            "files_checked": report.files_checked,
            "problems": len(problems),
            "first_problems": "\n".join(problems[:20]),
        },
        description=None if report.ok else f"{len(problems)} problem(s): {problems[0]}",
    )
