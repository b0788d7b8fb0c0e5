#!/usr/bin/env bash
# Start one spx-data Celery worker in the foreground (README "Scaling out").
#   deploy/celery/start-worker.sh [NAME] [CONCURRENCY]
# NAME defaults to spx-<hostname>; CONCURRENCY (steps at once on this worker) to 1.
# Needs, as on every machine of the deployment: DAGSTER_HOME (with deploy/postgres/dagster.yaml
# when workers run on several machines), SPX_DATA_PG_*, SPX_DATA_CELERY_BROKER/BACKEND, and the
# spx-data settings (SPX_DATA_HOME or SPX_DATA_<SECTION>__<KEY> variables).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${DAGSTER_HOME:?set DAGSTER_HOME to the instance directory (dagster.yaml)}"
: "${SPX_DATA_CELERY_BROKER:=redis://127.0.0.1:6379/0}"
: "${SPX_DATA_CELERY_BACKEND:=redis://127.0.0.1:6379/1}"
export SPX_DATA_CELERY_BROKER SPX_DATA_CELERY_BACKEND
name="${1:-spx-$(hostname -s)}"
concurrency="${2:-1}"
exec dagster-celery worker start -A dagster_celery.app -y "$here/celery.yaml" -n "$name" \
  -- --concurrency="$concurrency"
