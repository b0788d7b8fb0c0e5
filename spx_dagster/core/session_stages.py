"""The three stages of a session, as plain functions: fetch → validate → publish.

The Dagster assets (``defs/assets.py``) call these one per asset; the benchmarks call them
directly. Stages hand over through files in ``storage.temp_dir`` so that any stage can be re-run
on its own, in another process, after a crash:

    <temp>/staging/date=D/_plan.json        the listed chain and the request plan (fetch)
    <temp>/staging/date=D/_fetch.json       the fetch figures (fetch)
    <temp>/validated/date=D/_quality.json   the quality report, validation figures and the
                                            quarantine per dataset (validate)

Publishing removes the session's temp directories once the manifest is committed. A stage that
fails for lack of space on the filesystem holding ``storage.temp_dir`` removes them too: kept,
they would refuse every later session for want of the space they hold.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spx_dagster.core.chains import ListedChain, PlannedRequest, SessionPlan, list_chain
from spx_dagster.core.chains import plan_session as make_plan
from spx_dagster.core.cpu_clock import (
    CPU_EXTRA,
    read_cpu,
    reading_to_json,
    session_start_reading,
)
from spx_dagster.core.progress import ProgressReporter
from spx_dagster.core.quality.coverage import contract_drift, listing_coverage
from spx_dagster.core.quality.listing_rules import expected_expirations
from spx_dagster.core.quality.thresholds import Thresholds
from spx_dagster.core.revisits import RevisitRun
from spx_dagster.core.session_fetch import FetchSummary, StagedAnswer, fetch_plan, load_staged
from spx_dagster.core.storage import (
    DEFAULT_DIR_MODE,
    DEFAULT_FILE_MODE,
    STATUS_COMPLETE,
    STATUS_NO_DATA,
    DatasetEntry,
    Durations,
    Manifest,
    SourceInfo,
    Versions,
    atomic_write_bytes,
    check_session_space,
    estimate_session_bytes,
    iter_validated_tables,
    publish_dataset,
    remove_session_temp,
    session_lock,
)
from spx_dagster.core.storage.atomic import copy_atomic, ensure_dir
from spx_dagster.core.storage.disk import (
    InsufficientDiskSpace,
    disk_full,
    has_history,
    same_filesystem,
)
from spx_dagster.core.storage.layout import OutputLayout, StorageLayout
from spx_dagster.core.storage.manifest import QualitySummary, read_manifest
from spx_dagster.core.storage.republish import commit_republish
from spx_dagster.core.storage.rollforward import recover_session
from spx_dagster.core.thetadata.vendor import Tier
from spx_dagster.core.validation import (
    QualityAccumulator,
    QualityReport,
    ValidationContext,
    reconcile_session,
    validate_staged_dataset,
)

PLAN_FILE = "_plan.json"
FETCH_FILE = "_fetch.json"
QUALITY_FILE = "_quality.json"
# Published sessions whose sizes feed the disk-space estimate of the next one.
SIZE_HISTORY_SESSIONS = 5


class StageInputMissing(RuntimeError):
    """A stage found nothing from the stage before it (e.g. the temp directory was cleaned)."""


@dataclass(frozen=True)
class PipelineSettings:
    """What the stages need from the configuration, in plain types.

    Built from the user's settings by ``from_settings``; tests and benchmarks build it directly.
    """

    output_dir: Path
    temp_dir: Path
    roots: tuple[str, ...] = ("SPX", "SPXW")
    datasets: tuple[str, ...] = ("greeks", "eod", "open_interest")
    interval: str = "1m"
    max_dte: int | None = None
    tier: Tier = Tier.STANDARD
    concurrency: int = 4
    min_free_gb: float = 1.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    file_mode: int = DEFAULT_FILE_MODE
    dir_mode: int = DEFAULT_DIR_MODE
    source: SourceInfo = field(
        default_factory=lambda: SourceInfo("terminal", "http://127.0.0.1:25503", "v3")
    )

    @functools.cached_property
    def layout(self) -> StorageLayout:
        """Every path of the output and temp directories, resolved once."""
        return StorageLayout.resolve(self.output_dir, self.temp_dir)

    @classmethod
    def from_settings(cls, settings: Any, *, source_kind: str | None = None) -> PipelineSettings:
        """From ``core.config.Settings``; ``source_kind`` says simulator or terminal."""
        td, proc, store = settings.thetadata, settings.processing, settings.storage
        file_mode = _mode(getattr(store, "file_mode", None), DEFAULT_FILE_MODE)
        layout = StorageLayout.from_settings(store)
        return cls(
            output_dir=layout.output.root,
            temp_dir=layout.temp.root,
            roots=tuple(proc.roots),
            datasets=tuple(proc.datasets),
            interval=str(proc.interval),
            max_dte=proc.max_dte,
            tier=Tier(str(td.subscription_tier)),
            concurrency=int(settings.effective_concurrency),
            min_free_gb=float(store.min_free_gb),
            thresholds=Thresholds.from_settings(getattr(settings, "quality", None)),
            file_mode=file_mode,
            # Directories get the file's permissions plus the search bit where reading is allowed.
            dir_mode=file_mode | ((file_mode & 0o444) >> 2),
            source=SourceInfo(source_kind or "terminal", str(td.base_url), str(td.api_version)),
        )


def _mode(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, int):
        return value
    return int(str(value), 8)


# ---------------------------------------------------------------------------------------------
# Fetch
# ---------------------------------------------------------------------------------------------
@dataclass
class FetchOutcome:
    plan: SessionPlan
    summary: FetchSummary
    requests_sent: int  # HTTP requests, retries included
    listing_seconds: float
    disk_estimate_bytes: int = 0  # checked after the listing (no history), else 0

    @property
    def all_no_data(self) -> bool:
        return not self.plan.requests or all(a.no_data for a in self.summary.answers)


def _recent_manifests(
    output_dir: Path, limit: int, *, before: dt.date | None = None
) -> list[Manifest]:
    """The newest ``limit`` readable manifests (of sessions before ``before``), oldest first."""
    layout = OutputLayout.of(output_dir)
    directory = layout.manifests_dir()
    if not directory.is_dir():
        return []
    names = sorted(p for p in directory.iterdir() if p.suffix == ".json")
    if before is not None:
        names = [p for p in names if p.name < layout.manifest_path(before).name]
    out = []
    for path in names[-limit:]:
        try:
            out.append(read_manifest(path))
        except (OSError, ValueError):
            continue
    return out


def recent_dataset_bytes(output_dir: Path, limit: int = SIZE_HISTORY_SESSIONS) -> list[dict]:
    """Bytes per dataset of the newest published sessions (oldest first), for estimates."""
    return [
        {name: entry.bytes for name, entry in manifest.datasets.items()}
        for manifest in _recent_manifests(output_dir, limit)
    ]


def trailing_contracts(output_dir: Path, session: dt.date, limits: Thresholds) -> list[int]:
    """Contract counts of the published sessions before ``session`` (oldest first), for the
    coverage family's drift test."""
    return [
        int(manifest.quality.counts.get("contracts", 0))
        for manifest in _recent_manifests(output_dir, limits.drift_sessions, before=session)
    ]


def check_space_for(cfg: PipelineSettings, chain: ListedChain | None = None) -> int:
    """Raise InsufficientDiskSpace unless one more session fits; return the estimate used.

    The estimate comes from the sizes of recent published sessions. Without them it comes from
    the session's listing (``chain``: contracts × rows × bytes per row); called without a chain
    then, it checks nothing and returns 0: the fetch checks once the chain is listed, before it
    writes anything.
    """
    history = recent_dataset_bytes(cfg.output_dir)
    if chain is None and not has_history(cfg.datasets, history):
        return 0
    return _check_space(cfg, history, chain)


def _check_space(cfg: PipelineSettings, history: list[dict], chain: ListedChain | None) -> int:
    contracts = chain.contract_count if chain is not None else None
    need = estimate_session_bytes(cfg.datasets, history, interval=cfg.interval, contracts=contracts)
    check_session_space(cfg.output_dir, cfg.temp_dir, need, cfg.min_free_gb)
    return need


def _chain_to_json(chain: ListedChain) -> dict:
    return {
        "session": chain.session.isoformat(),
        "source": chain.source,
        "expirations": {r: [e.isoformat() for e in exps] for r, exps in chain.expirations.items()},
        "contracts": [[r, e.isoformat(), n] for (r, e), n in sorted(chain.contracts.items())],
    }


def _chain_from_json(data: Mapping) -> ListedChain:
    return ListedChain(
        session=dt.date.fromisoformat(data["session"]),
        expirations={
            r: [dt.date.fromisoformat(e) for e in exps] for r, exps in data["expirations"].items()
        },
        contracts={(r, dt.date.fromisoformat(e)): int(n) for r, e, n in data["contracts"]},
        source=data["source"],
    )


def _write_json(path: Path, payload: Any, cfg: PipelineSettings) -> None:
    text = json.dumps(payload, indent=1, default=str) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)  # a fresh temp_dir has no session dir yet
    atomic_write_bytes(path, text.encode(), mode=cfg.file_mode)


def load_plan(cfg: PipelineSettings, session: dt.date) -> SessionPlan | None:
    """The plan staged by an earlier fetch of ``session`` with the same datasets, if any."""
    path = cfg.layout.temp.staging_dir(session) / PLAN_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if tuple(data.get("datasets", ())) != cfg.datasets or data.get("max_dte") != cfg.max_dte:
        return None  # settings changed since: list again
    return make_plan(_chain_from_json(data["chain"]), datasets=cfg.datasets)


@contextlib.contextmanager
def _temp_released_on_disk_full(
    cfg: PipelineSettings, session: dt.date, *, writes_to: Path
) -> Iterator[None]:
    """Remove the session's temp stages when the block fails for space on the temp filesystem.

    ``writes_to`` is where the stage writes (the temp or the output directory): stages kept on
    another, roomy filesystem stay for the retry to resume from.
    """
    try:
        yield
    except BaseException as error:
        if disk_full(error):
            short = error.path if isinstance(error, InsufficientDiskSpace) else writes_to
            if same_filesystem(short, cfg.temp_dir):
                remove_session_temp(cfg.temp_dir, session)
        raise


def fetch_session(
    client: Any,
    cfg: PipelineSettings,
    session: dt.date,
    *,
    progress: ProgressReporter | None = None,
    stop: threading.Event | None = None,
) -> FetchOutcome:
    """List the session's chain, then stage every planned request not staged yet.

    Resumes: a plan and answers staged by an interrupted run are reused.
    """
    with _temp_released_on_disk_full(cfg, session, writes_to=cfg.temp_dir):
        return _fetch_session(client, cfg, session, progress=progress, stop=stop)


def _fetch_session(
    client: Any,
    cfg: PipelineSettings,
    session: dt.date,
    *,
    progress: ProgressReporter | None,
    stop: threading.Event | None,
) -> FetchOutcome:
    started = time.monotonic()
    cpu_at_start = session_start_reading()
    requests_before = _client_requests(client)
    if progress:
        progress.stage("listing")
    plan = load_plan(cfg, session)
    disk_estimate = 0
    if plan is None:
        chain = list_chain(client, session, roots=cfg.roots, tier=cfg.tier, max_dte=cfg.max_dte)
        history = recent_dataset_bytes(cfg.output_dir)
        if not has_history(cfg.datasets, history):
            # From the listing, before the plan file: nothing is written yet.
            disk_estimate = _check_space(cfg, history, chain)
        plan = make_plan(chain, datasets=cfg.datasets)
        _write_json(
            cfg.layout.temp.staging_dir(session) / PLAN_FILE,
            {
                "datasets": list(cfg.datasets),
                "max_dte": cfg.max_dte,
                "chain": _chain_to_json(chain),
            },
            cfg,
        )
    listing_seconds = time.monotonic() - started
    if progress:
        progress.stage("fetch", total=len(plan.requests), done=0)

    def on_answer(request: PlannedRequest, answer: StagedAnswer) -> None:
        if progress:
            progress.advance(
                current=request.describe(),
                rows=answer.rows,
                nbytes=answer.bytes,
                retries=sum(answer.retries.values()),
            )

    summary = fetch_plan(
        client,
        plan,
        cfg.layout.temp.staging_dir(session),
        interval=cfg.interval,
        concurrency=cfg.concurrency,
        on_answer=on_answer,
        stop=stop,
    )
    outcome = FetchOutcome(
        plan=plan,
        summary=summary,
        requests_sent=_client_requests(client) - requests_before,
        listing_seconds=listing_seconds,
        disk_estimate_bytes=disk_estimate,
    )
    _write_json(
        cfg.layout.temp.staging_dir(session) / FETCH_FILE,
        {
            "requests": summary.requests,
            "requests_sent": outcome.requests_sent,
            "rows": summary.rows,
            "bytes": summary.bytes,
            "no_data": summary.no_data,
            "malformed_rows": summary.malformed_rows,
            "resumed": summary.resumed,
            "retries": summary.retries,
            "seconds": time.monotonic() - started,
            "cpu_at_start": reading_to_json(cpu_at_start),
        },
        cfg,
    )
    return outcome


def _client_requests(client: Any) -> int:
    stats = getattr(client, "stats", None)
    return int(getattr(stats, "requests", 0) or 0)


def read_fetch_figures(cfg: PipelineSettings, session: dt.date) -> dict:
    """The figures the fetch stage wrote; StageInputMissing when there is no staged session."""
    path = cfg.layout.temp.staging_dir(session) / FETCH_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise StageInputMissing(
            f"nothing is staged for {session} in {path.parent} (the fetch did not finish, "
            "another run of this session published it and removed its temp files, or the temp "
            "directory was cleaned); materialize spx/raw_option_chains for this session first, "
            f"e.g. `spx-data process {session}`"
        ) from None


def require_staged_answers(cfg: PipelineSettings, session: dt.date, plan: SessionPlan) -> None:
    """StageInputMissing unless every request of ``plan`` has its answer staged.

    Two runs of one session share its temp directories (that is how a run resumes another's
    answers); when one publishes, it removes them. Without this check the other run would go on
    with what was left and could publish a part of the day over the whole one.
    """
    staging = cfg.layout.temp.staging_dir(session)
    missing = [r for r in plan.requests if load_staged(staging, r) is None]
    if missing:
        raise StageInputMissing(
            f"{len(missing)} of the {len(plan.requests)} planned answers of {session} are not "
            f"staged in {staging} (first: {missing[0].dataset} {missing[0].name}): another run "
            "of this session published it and removed its temp files, or the temp directory was "
            f"cleaned. Nothing was published by this run; `spx-data list` shows the session, "
            f"`spx-data process {session} --force` fetches it again"
        )


# ---------------------------------------------------------------------------------------------
# Validate
# ---------------------------------------------------------------------------------------------
@dataclass
class ValidateOutcome:
    report: QualityReport
    rows: int
    valid_rows: int
    rejected_rows: int  # malformed lines included
    quarantine: dict[str, str]  # dataset -> quarantine path
    seconds: float
    listed_expirations: int
    quarantined_rows: dict[str, int] = field(default_factory=dict)  # dataset -> rows
    malformed_rows: int = 0  # lines the client could not parse (all quarantined)


def validate_session(
    cfg: PipelineSettings,
    session: dt.date,
    *,
    progress: ProgressReporter | None = None,
) -> ValidateOutcome:
    """Validate every staged response of the session; SchemaBreak stops it (nothing published)."""
    with _temp_released_on_disk_full(cfg, session, writes_to=cfg.temp_dir):
        return _validate_session(cfg, session, progress=progress)


def _judge_across_datasets(
    cfg: PipelineSettings,
    session: dt.date,
    plan: SessionPlan,
    summaries: dict,
    accumulator: QualityAccumulator,
) -> None:
    """The families that judge the whole session: reconciliation of its datasets (flags into
    the validated EOD parts) and coverage of the listing and of the chain's size."""
    limits = cfg.thresholds
    verdict = reconcile_session(
        cfg.temp_dir,
        session,
        summaries,
        limits,
        file_mode=cfg.file_mode,
        dir_mode=cfg.dir_mode,
    )
    if verdict is not None:
        accumulator.add(verdict)
    horizon = limits.listing_horizon_days
    if cfg.max_dte is not None:
        horizon = min(horizon, cfg.max_dte)
    expected = expected_expirations(session, cfg.roots, horizon) if limits.listing_rules else None
    intraday = next((d for d in ("greeks", "quote") if d in cfg.datasets), None)
    with_data = (
        accumulator.stats(intraday).expirations
        if intraday
        else set().union(*(accumulator.stats(d).expirations for d in cfg.datasets))
    )
    listed = [(root, exp) for root, exps in plan.chain.expirations.items() for exp in exps]
    # list/expirations (below the Value tier) lists every expiration ever: only those within
    # the horizon were surely listed on the session.
    sure_until = None if plan.chain.source == "contracts" else session + dt.timedelta(days=horizon)
    accumulator.add_session_family(
        listing_coverage(expected, listed, with_data, sure_until=sure_until)
    )
    contracts = sum(accumulator.stats(d).contracts for d in cfg.datasets)
    accumulator.add_session_family(
        contract_drift(
            contracts, trailing_contracts(cfg.output_dir, session, limits), limits, session
        )
    )


def _validate_session(
    cfg: PipelineSettings, session: dt.date, *, progress: ProgressReporter | None
) -> ValidateOutcome:
    started = time.monotonic()
    read_fetch_figures(cfg, session)
    plan = load_plan(cfg, session)
    if plan is None:
        raise StageInputMissing(
            f"the request plan of {session} is missing from "
            f"{cfg.layout.temp.staging_dir(session)}; re-run the fetch, e.g. "
            f"`spx-data process {session}`"
        )
    require_staged_answers(cfg, session, plan)
    listed = [(root, exp) for root, exps in plan.chain.expirations.items() for exp in exps]
    accumulator = QualityAccumulator(listed=listed)
    context = ValidationContext(
        session, interval=cfg.interval, planned=frozenset(listed), thresholds=cfg.thresholds
    )
    if progress:
        progress.stage("validate", total=len(cfg.datasets), done=0)
    quarantine: dict[str, str] = {}
    quarantined_rows: dict[str, int] = {}
    outside_plan: dict[str, int] = {}
    summaries: dict = {}
    for dataset in cfg.datasets:
        if progress:
            progress.working_on(dataset)
        result = validate_staged_dataset(
            cfg.temp_dir,
            session,
            dataset,
            context,
            accumulator,
            summaries=summaries,
            file_mode=cfg.file_mode,
            dir_mode=cfg.dir_mode,
        )
        if result.quarantine is not None:
            # Where the rows will be published; until then they wait in the temp stage.
            quarantine[dataset] = str(cfg.layout.output.quarantine_file(session, dataset))
            quarantined_rows[dataset] = result.quarantine.rows
        outside_plan[dataset] = result.stats.outside_plan_rows
        if progress:
            progress.advance(current=dataset, rows=result.stats.rows)
    _judge_across_datasets(cfg, session, plan, summaries, accumulator)
    report = accumulator.report()
    outcome = ValidateOutcome(
        report=report,
        rows=report.counts.get("rows", 0),
        valid_rows=report.counts.get("valid_rows", 0),
        rejected_rows=report.counts.get("rejected_rows", 0),
        quarantine=quarantine,
        seconds=time.monotonic() - started,
        listed_expirations=len(listed),
        quarantined_rows=quarantined_rows,
        malformed_rows=report.counts.get("malformed_rows", 0),
    )
    _write_json(
        cfg.layout.temp.validated_dir(session) / QUALITY_FILE,
        {
            "quality": asdict(report.to_summary()),
            "seconds": outcome.seconds,
            # Relative to the output directory, as the manifest records paths.
            "quarantine": {
                dataset: {
                    "rows": quarantined_rows[dataset],
                    "path": cfg.layout.output.relative_to_output(Path(path)),
                }
                for dataset, path in quarantine.items()
            },
            "dropped_outside_plan": outside_plan,
        },
        cfg,
    )
    return outcome


# ---------------------------------------------------------------------------------------------
# Publish
# ---------------------------------------------------------------------------------------------
@dataclass
class PublishOutcome:
    manifest: Manifest
    manifest_path: Path
    removed: list[Path]
    seconds: float


def publish_session(
    cfg: PipelineSettings,
    session: dt.date,
    *,
    progress: ProgressReporter | None = None,
    lock_timeout_s: float | None = None,
    revisit: RevisitRun | None = None,
) -> PublishOutcome:
    """Publish the validated session atomically: data files, then the manifest (the commit).

    Holds the session lock so that two processes never interleave one session's files; removes
    the session's temp directories only after the manifest is committed. A ``revisit`` that
    found less than the published session keeps it (``core.storage.republish``).
    """
    with _temp_released_on_disk_full(cfg, session, writes_to=cfg.output_dir):
        return _publish_session(
            cfg, session, progress=progress, lock_timeout_s=lock_timeout_s, revisit=revisit
        )


def _publish_session(
    cfg: PipelineSettings,
    session: dt.date,
    *,
    progress: ProgressReporter | None,
    lock_timeout_s: float | None,
    revisit: RevisitRun | None = None,
) -> PublishOutcome:
    started = time.monotonic()
    fetch = read_fetch_figures(cfg, session)
    plan = load_plan(cfg, session)
    quality_path = cfg.layout.temp.validated_dir(session) / QUALITY_FILE
    try:
        validated = json.loads(quality_path.read_text())
    except (OSError, ValueError):
        raise StageInputMissing(
            f"{session} has not been validated ({quality_path} is missing); materialize "
            "spx/validated_options for this session first"
        ) from None
    quality = QualitySummary(**validated["quality"])
    lock_kwargs = {} if lock_timeout_s is None else {"timeout_s": lock_timeout_s}
    if progress:
        progress.stage("publish", total=len(cfg.datasets), done=0)
    with session_lock(
        cfg.output_dir, session, file_mode=cfg.file_mode, dir_mode=cfg.dir_mode, **lock_kwargs
    ):
        # A publish of this session killed between its commit and its renames is finished first.
        recover_session(cfg.output_dir, session)
        # Under the lock: a run of this session that published while this one validated has
        # removed the inputs; publishing what is left would replace the whole day with a part.
        _require_validated_inputs(cfg, session, plan, quality_path)
        entries = {}
        for dataset in cfg.datasets:
            if progress:
                progress.working_on(dataset)
            if cfg.layout.temp.validated_parts(session, dataset):
                entries[dataset] = publish_dataset(
                    cfg.output_dir,
                    session,
                    dataset,
                    iter_validated_tables(cfg.temp_dir, session, dataset),
                    file_mode=cfg.file_mode,
                    dir_mode=cfg.dir_mode,
                )
            if progress:
                progress.advance(current=dataset)
        _stage_quarantine(cfg, session, entries, validated.get("quarantine", {}))
        _attach_outside_plan(entries, validated.get("dropped_outside_plan", {}))
        covered = _covered_expirations(plan, entries)
        manifest = Manifest(
            session=session,
            source=cfg.source,
            versions=Versions.current(),
            status=STATUS_COMPLETE if entries else STATUS_NO_DATA,
            datasets=entries,
            roots=list(cfg.roots),
            expirations=covered,
            quality=quality,
            requests=int(fetch.get("requests_sent") or fetch.get("requests", 0)),
            retries=dict(fetch.get("retries", {})),
            no_data=int(fetch.get("no_data", 0)),
            durations=Durations(
                fetch_s=round(float(fetch.get("seconds", 0.0)), 3),
                validate_s=round(float(validated.get("seconds", 0.0)), 3),
                publish_s=round(time.monotonic() - started, 3),
            ),
            extra={
                "interval": cfg.interval,
                "datasets": list(cfg.datasets),
                # The machine's busy CPU from this run's start to now (``core.cpu_clock``).
                CPU_EXTRA: {"start": fetch.get("cpu_at_start"), "end": reading_to_json(read_cpu())},
            },
        )
        manifest, result = commit_republish(
            cfg.output_dir,
            manifest,
            revisit=revisit,
            file_mode=cfg.file_mode,
            dir_mode=cfg.dir_mode,
        )
        remove_session_temp(cfg.temp_dir, session)  # under the lock: see above
    return PublishOutcome(
        manifest=manifest,
        manifest_path=result.manifest_path,
        removed=list(result.removed),
        seconds=time.monotonic() - started,
    )


def _require_validated_inputs(
    cfg: PipelineSettings, session: dt.date, plan: SessionPlan | None, quality_path: Path
) -> None:
    """StageInputMissing unless the staged answers, the validation record and one validated
    part per staged part of every dataset are all still there."""
    if plan is None or not quality_path.exists():
        raise StageInputMissing(
            f"the validated stage of {session} is gone from {quality_path.parent}: another run "
            "of this session published it meanwhile, or the temp directory was cleaned. Nothing "
            f"was published by this run; `spx-data process {session} --force` fetches it again"
        )
    require_staged_answers(cfg, session, plan)
    for dataset in cfg.datasets:
        staged = cfg.layout.temp.staged_parts(session, dataset)
        validated = cfg.layout.temp.validated_parts(session, dataset)
        if staged != validated:
            raise StageInputMissing(
                f"{dataset} of {session} has {len(validated)} validated parts for "
                f"{len(staged)} staged ones: the temp directory changed under this run (another "
                f"run of the session?). Nothing was published; re-run `spx-data process "
                f"{session}`"
            )


def _stage_quarantine(
    cfg: PipelineSettings,
    session: dt.date,
    entries: dict[str, DatasetEntry],
    quarantine: Mapping[str, Any],
) -> None:
    """Put each dataset's refused rows (from the validate stage) beside its pending data files,
    and record them in its entry: they are committed, and replaced, with the session.

    A dataset whose every row was refused publishes no file but still gets an entry, so that the
    manifest says where its rows went.
    """
    for dataset, found in quarantine.items():
        source = cfg.layout.temp.validated_quarantine_file(session, dataset)
        if not source.exists():
            raise StageInputMissing(
                f"the quarantine of {dataset} for {session} is gone from {source.parent}: the "
                "temp directory changed under this run. Nothing was published; re-run "
                f"`spx-data process {session}`"
            )
        final = cfg.layout.output.quarantine_file(session, dataset)
        target = cfg.layout.output.pending_path(session, final)
        ensure_dir(target.parent, mode=cfg.dir_mode)
        size, sha256 = copy_atomic(source, target, mode=cfg.file_mode)
        entry = entries.setdefault(dataset, DatasetEntry())
        entry.quarantined_rows = int(found["rows"])
        entry.quarantine_path = cfg.layout.output.relative_to_output(final)
        entry.quarantine_bytes = size
        entry.quarantine_sha256 = sha256


def _attach_outside_plan(entries: dict[str, DatasetEntry], dropped: Mapping[str, int]) -> None:
    """Record per dataset the rows dropped for expirations outside the plan (max_dte)."""
    for dataset, rows in dropped.items():
        if rows:
            entries.setdefault(dataset, DatasetEntry()).dropped_outside_plan = int(rows)


def _covered_expirations(
    plan: SessionPlan | None, entries: Mapping[str, Any]
) -> dict[str, list[dt.date]]:
    if plan is None or not entries:
        return {}
    return {root: list(exps) for root, exps in plan.chain.expirations.items() if exps}
