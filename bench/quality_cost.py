"""Benchmark 9 (issue 13): what the research quality families cost, and how well they find
planted anomalies.

- ``cost``: one session of the simulator's full chain is processed for real through the plain
  stages (as ``pipeline_throughput``); then, in a fresh child, every part of its published greeks
  (one row group per root and expiration, as validation sees them) goes through each family's
  check on one thread, and calendar arbitrage through its per-part summaries and session
  verdict. Reported: seconds per family, their sum, and that sum's share of the session's
  pipeline wall time. Target: ≤ 15 %. The validation stage runs parts on two threads, so the
  families' wall time is lower than their CPU time: the same session is processed once more with
  every family disabled (``without_families``), and the validation stage's wall time without
  them, against its time with them, gives the wall-time share (reported beside, not instead).
- ``recall``: for several simulator seeds, a session with anomalies of every family the
  pipeline runs planted (``/_sim/anomalies``; the small chain, expirations within 15 days) is
  processed; recall = planted anomalies whose rows
  carry their family's flag, precision = flagged rows that belong to a planted anomaly (the clean
  data's own rare crossed quotes count against it).
"""

from __future__ import annotations

import dataclasses
import time

from bench.harness import SESSION, pipeline_env, progress, run_child, simulator, temp_home

NAME = "quality_cost"
SHARE_TARGET_PCT = 15.0


@dataclasses.dataclass(frozen=True)
class Size:
    chain: str
    max_dte: int | None
    seeds: int


FULL = Size("full", None, 8)
QUICK = Size("small", 2, 1)
# Planted anomalies need a chain with strikes around the index and several expirations (the
# tiny chain's strikes all sit above it: no smile for calendar arbitrage to compare).
RECALL_CHAIN, RECALL_MAX_DTE = "small", 15
PLANTED_PER_FAMILY = 2


def time_families(output_dir: str, session: str) -> dict:
    """Seconds per family over every part of the published greeks (runs in a child).

    Each part goes through the families as ``evaluate`` runs them in validation: one
    ``converted_once`` block (columns and orderings shared, paid by the first family that needs
    them), one flags array; then the calendar summary on the part with its flags appended, as
    the validation stage calls it.
    """
    import datetime as dt
    from pathlib import Path

    import numpy as np
    import pandas  # noqa: F401  (pyarrow's first to_numpy imports it: validation has already)
    import pyarrow as pa
    import pyarrow.parquet as pq

    from spx_dagster.core.quality import Family, reconciliation
    from spx_dagster.core.quality.coverage import minute_completeness
    from spx_dagster.core.quality.evaluate import CHECKS, FAMILIES_OF, SESSION_FAMILIES
    from spx_dagster.core.quality.rows import converted_once
    from spx_dagster.core.quality.thresholds import Thresholds
    from spx_dagster.core.storage import load_manifest
    from spx_dagster.core.validation.schemas import ValidationContext
    from spx_dagster.core.validation.validate import _bar_window, _contract_groups

    day = dt.date.fromisoformat(session)
    manifest = load_manifest(Path(output_dir), day)
    parquet = pq.ParquetFile(Path(output_dir) / manifest.datasets["greeks"].files[0].path)
    limits = Thresholds()
    seconds = {family.value: 0.0 for family in FAMILIES_OF["greeks"]}
    seconds.update({family.value: 0.0 for family in SESSION_FAMILIES})
    # Run by validation itself on the contract groups it has already numbered (not timed here).
    seconds.update({Family.COVERAGE.value: 0.0, Family.RECONCILIATION.value: 0.0})
    window = _bar_window(ValidationContext(day))
    summaries: dict = {family: {} for family in SESSION_FAMILIES}
    across: dict = {}
    rows = 0
    for index in range(parquet.num_row_groups):
        table = parquet.read_row_group(index)
        table = table.drop_columns(["flags"])  # the part as validation evaluates it
        rows += table.num_rows
        flags = np.zeros(table.num_rows, dtype=np.uint32)
        with converted_once(table):
            for family in FAMILIES_OF["greeks"]:
                started = time.perf_counter()
                CHECKS[family](table, "greeks", day, limits, flags)
                seconds[family.value] += time.perf_counter() - started
        group, _, _ = _contract_groups(table, "timestamp")
        started = time.perf_counter()
        minute_completeness(table, "greeks", group, window, flags)
        seconds[Family.COVERAGE.value] += time.perf_counter() - started
        started = time.perf_counter()
        across[("greeks", index)] = reconciliation.summarize(table, "greeks", group)
        seconds[Family.RECONCILIATION.value] += time.perf_counter() - started
        published = table.append_column("flags", pa.array(flags))
        for family, spec in SESSION_FAMILIES.items():
            started = time.perf_counter()
            summaries[family][index] = spec.summarize_part(published, limits)
            seconds[family.value] += time.perf_counter() - started
    for family, spec in SESSION_FAMILIES.items():
        started = time.perf_counter()
        spec.check_session(summaries[family], limits)
        seconds[family.value] += time.perf_counter() - started
    started = time.perf_counter()
    reconciliation.reconcile(across, limits, day)
    seconds[Family.RECONCILIATION.value] += time.perf_counter() - started
    return {
        "rows": rows,
        "parts": parquet.num_row_groups,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def without_families(session: str) -> dict:
    """``pipeline_run.run_stages`` with every quality family disabled (in a child): the rows
    still get their ``flags`` column, all zero."""
    import importlib

    from bench.pipeline_run import run_stages

    # The module (the package's ``evaluate`` is its function).
    evaluate = importlib.import_module("spx_dagster.core.quality.evaluate")

    for dataset in evaluate.FAMILIES_OF:
        evaluate.FAMILIES_OF[dataset] = ()
    evaluate.SESSION_FAMILIES.clear()  # the validation stage holds this very dict
    return run_stages(session)


def planted_recall(seed: int, chain: str, max_dte: int | None) -> dict:
    """Recall and precision of the flags on one session with anomalies planted (in a child)."""
    import os
    import tempfile
    from pathlib import Path

    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from spx_dagster.core.config import load_settings
    from spx_dagster.core.quality import Family
    from spx_dagster.core.quality.flags import family_flags
    from spx_dagster.core.session_stages import (
        PipelineSettings,
        fetch_session,
        publish_session,
        validate_session,
    )
    from spx_dagster.core.thetadata.client import ThetaClient
    from spx_dagster.simulator import SimulatorServer

    families = list(Family)
    specs = [f"{f.value}:{PLANTED_PER_FAMILY}" for f in families]
    with (
        SimulatorServer(port=0, profile="fast", chain=chain, seed=seed, anomalies=specs) as server,
        tempfile.TemporaryDirectory() as home,
    ):
        os.environ.update(
            SPX_DATA_HOME=home,
            SPX_DATA_THETADATA__BASE_URL=server.base_url,
            SPX_DATA_STORAGE__MIN_FREE_GB="0",
            SPX_DATA_PROCESSING__DATASETS="greeks,eod",
        )
        if max_dte is not None:
            os.environ["SPX_DATA_PROCESSING__MAX_DTE"] = str(max_dte)
        settings = load_settings()
        cfg = PipelineSettings.from_settings(settings, source_kind="simulator")
        with ThetaClient.from_settings(settings) as client:
            fetch_session(client, cfg, SESSION)
        validate_session(cfg, SESSION)
        manifest = publish_session(cfg, SESSION).manifest
        table = pq.read_table(Path(home) / "data" / manifest.datasets["greeks"].files[0].path)
        eod = pq.read_table(Path(home) / "data" / manifest.datasets["eod"].files[0].path)
        planted = [r for r in server.anomalies(SESSION)["planted"] if r["dataset"] == "greeks"]
        planted += [
            r
            for r in server.anomalies(SESSION)["planted"]
            if r["dataset"] == "eod" and r["family"] == "reconciliation"
        ]
    flags = table["flags"].to_numpy()
    stamp = pc.utf8_slice_codeunits(
        pc.strftime(table["timestamp"], format="%Y-%m-%dT%H:%M:%S"), 0, 19
    )
    expiration = pc.strftime(table["expiration"], "%Y-%m-%d")
    covered = np.zeros(len(flags), dtype=bool)
    found: dict[str, list[int]] = {}
    for record in planted:
        bits = np.uint32(
            sum(
                int(f)
                for f in family_flags(next(f for f in families if f.value == record["family"]))
            )
        )
        if record["family"] in ("coverage", "reconciliation"):
            # Dropped minutes leave no rows: the contract's others carry the flag; an EOD
            # record names no minute.
            source = eod if record["dataset"] == "eod" else table
            mask = pc.and_(
                pc.equal(source["root"], record["root"]),
                pc.equal(pc.strftime(source["expiration"], "%Y-%m-%d"), record["expiration"]),
            )
            mask = pc.and_(mask, pc.equal(source["strike"], float(record["strike"])))
            mask = pc.and_(mask, pc.equal(source["right"], record["right"]))
            rows = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
            if source is table:
                covered[rows] = True
            if len(rows):
                hit = bool((source["flags"].to_numpy()[rows] & bits).any())
                found.setdefault(record["family"], []).append(int(hit))
            continue
        end = record.get("end_timestamp") or record["timestamp"]
        mask = pc.and_(pc.greater_equal(stamp, record["timestamp"]), pc.less_equal(stamp, end))
        mask = pc.and_(mask, pc.equal(table["root"], record["root"]))
        mask = pc.and_(mask, pc.equal(expiration, record["expiration"]))
        if record["strike"] is not None:  # else: every contract of the expiration (calendar)
            mask = pc.and_(mask, pc.equal(table["strike"], float(record["strike"])))
            mask = pc.and_(mask, pc.equal(table["right"], record["right"]))
        rows = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
        covered[rows] = True
        if len(rows) == 0:
            continue  # planted in an expiration beyond processing.max_dte: not published
        hit = bool((flags[rows] & bits).any())
        found.setdefault(record["family"], []).append(int(hit))
    flagged = (flags & ~np.uint32(2)) != 0  # zero_bid is informative, not a finding
    return {
        "seed": seed,
        "planted": {family: len(hits) for family, hits in found.items()},
        "recalled": {family: sum(hits) for family, hits in found.items()},
        "flagged_rows": int(flagged.sum()),
        "flagged_rows_planted": int((flagged & covered).sum()),
    }


def run(quick: bool, shared: dict) -> tuple[dict, dict, bool]:
    size = QUICK if quick else FULL
    with simulator(chain=size.chain) as sim, temp_home(NAME) as home:
        env = pipeline_env(
            home, sim.base_url, processing__datasets="greeks", processing__max_dte=size.max_dte
        )
        progress(f"{NAME}: processing {SESSION} ({size.chain} chain) through the plain stages")
        processed = run_child("pipeline_run:run_stages", env=env, session=SESSION.isoformat())
        progress(f"{NAME}: the same session again with the families disabled")
        bare = run_child(
            "quality_cost:without_families", env=env, session=SESSION.isoformat()
        ).value
        progress(f"{NAME}: timing each family over the published parts")
        timed = run_child(
            "quality_cost:time_families",
            env=env,
            output_dir=str(home / "data"),
            session=SESSION.isoformat(),
        ).value
    total_s = sum(timed["seconds"].values())
    pipeline_s = float(processed.value["total_s"])
    share = 100 * total_s / pipeline_s
    validate_s = float(processed.value["validate_s"])
    wall_share = 100 * (validate_s - float(bare["validate_s"])) / pipeline_s
    seeds = []
    for seed in range(size.seeds):
        progress(f"{NAME}: planted anomalies, seed {seed} of {size.seeds}")
        seeds.append(
            run_child(
                "quality_cost:planted_recall",
                seed=seed,
                chain=RECALL_CHAIN,
                max_dte=RECALL_MAX_DTE,
            ).value
        )
    planted = sum(sum(s["planted"].values()) for s in seeds)
    recalled = sum(sum(s["recalled"].values()) for s in seeds)
    flagged = sum(s["flagged_rows"] for s in seeds)
    precision = sum(s["flagged_rows_planted"] for s in seeds) / flagged if flagged else None
    by_family = {}
    for s in seeds:
        for family, count in s["planted"].items():
            entry = by_family.setdefault(family, [0, 0])
            entry[0] += count
            entry[1] += s["recalled"][family]
    met_by_target = {"share_pct": share <= SHARE_TARGET_PCT, "recall": recalled == planted}
    figures = {
        "session": SESSION.isoformat(),
        "chain": size.chain,
        "rows": timed["rows"],
        "parts": timed["parts"],
        "pipeline_s": round(pipeline_s, 1),
        "validate_s": round(validate_s, 1),
        "pipeline_s_without_families": round(float(bare["total_s"]), 1),
        "validate_s_without_families": round(float(bare["validate_s"]), 1),
        "wall_share_pct": round(wall_share, 1),
        "family_seconds": timed["seconds"],
        "quality_s": round(total_s, 2),
        "share_pct": round(share, 1),
        "seeds": size.seeds,
        "planted": planted,
        "recall": round(recalled / planted, 4) if planted else None,
        "recall_by_family": {f: round(r / p, 4) for f, (p, r) in sorted(by_family.items())},
        "precision_rows": None if precision is None else round(precision, 4),
        "met_by_target": met_by_target,
    }
    target = {"share_pct": f"<= {SHARE_TARGET_PCT}", "recall": "1.0"}
    progress(
        f"{NAME}: quality {total_s:.1f} s of CPU on one thread = {share:.1f} % of the session's "
        f"{pipeline_s:.1f} s (wall: validation {validate_s:.1f} s, {bare['validate_s']:.1f} s "
        f"without the families = {wall_share:.1f} %); recall {figures['recall']}, row precision "
        f"{figures['precision_rows']} over {size.seeds} seeds"
    )
    return figures, target, all(met_by_target.values())
