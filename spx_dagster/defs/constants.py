"""Names the Dagster layer, the CLI and the tests agree on: asset keys, check names, tags, pools."""

import dagster as dg

from spx_dagster.core.quality import Family

ASSET_PREFIX = "spx"
RAW = dg.AssetKey([ASSET_PREFIX, "raw_option_chains"])
VALIDATED = dg.AssetKey([ASSET_PREFIX, "validated_options"])
PARQUET = dg.AssetKey([ASSET_PREFIX, "options_parquet"])
CATALOG = dg.AssetKey([ASSET_PREFIX, "catalog"])
SESSION_ASSETS = (RAW, VALIDATED, PARQUET)

# Asset checks (name -> asset)
SCHEMA_CHECK = dg.AssetCheckKey(VALIDATED, "schema_conformance")
QUALITY_CHECK = dg.AssetCheckKey(VALIDATED, "quality_score")
COVERAGE_CHECK = dg.AssetCheckKey(VALIDATED, "expiration_coverage")
INTERVALS_CHECK = dg.AssetCheckKey(VALIDATED, "interval_completeness")
CHECKSUM_CHECK = dg.AssetCheckKey(PARQUET, "checksums_match")
# One check per research quality family, named after it (core.quality.Family).
FAMILY_CHECKS = {family: dg.AssetCheckKey(VALIDATED, family.value) for family in Family}

SESSION_JOB = "spx_session_job"
CATALOG_JOB = "spx_catalog_job"

# Dagster pool shared by every step that talks to ThetaTerminal: its size is the tier's limit.
THETADATA_POOL = "thetadata"
# The catalog's DuckDB file has a single writer.
CATALOG_POOL = "spx_catalog"

PARTITION_TAG = "dagster/partition"
BACKFILL_TAG = "dagster/backfill"
# `backfill --concurrency N`: runs tagged <prefix>N=<backfill id>, limited to N (dagster.yaml).
BACKFILL_RUNS_TAG_PREFIX = "spx/backfill_runs_"
ERROR_CATEGORY_TAG = "spx/error_category"
ERROR_MESSAGE_TAG = "spx/error_message"
FORCED_TAG = "spx/forced"
TRIGGER_TAG = "spx/trigger"  # cli | schedule | gap_sensor | retry
# A gap sensor's revisit of a session published with vendor holes: the days after its first
# publish (core.revisits.REVISIT_AFTER_DAYS); its publish keeps the previous one if it finds less.
REVISIT_TAG = "spx/revisit"
# A backfill's submission: the machine's busy CPU then (``core.cpu_clock``), on each of its runs,
# so that the estimate can tell what the whole backfill cost the machine per session.
CPU_AT_SUBMIT_TAG = "spx/cpu_at_submit"
