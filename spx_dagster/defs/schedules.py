"""The daily schedule: each session once, after its end-of-day report.

ThetaData generates EOD reports at 17:15 ET; the schedule ticks at 18:30 ET on weekdays and
targets that day's session only if the day is a session. Weekends have no tick and holidays skip,
so every session is targeted exactly once. (``build_schedule_from_partitioned_job`` on a daily cron
with weekend exclusions would target Friday from both the Saturday and the Sunday tick.)
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from spx_dagster.core import calendar
from spx_dagster.defs.constants import SESSION_JOB, TRIGGER_TAG
from spx_dagster.defs.partitions import session_key

# 75 minutes after ThetaData's 17:15 ET EOD report, on weekdays (weekends have no session).
DAILY_TIME = dt.time(18, 30)
DAILY_CRON = f"{DAILY_TIME.minute} {DAILY_TIME.hour} * * 1-5"


@dg.schedule(
    name="spx_daily_session",
    cron_schedule=DAILY_CRON,
    execution_timezone=calendar.EXCHANGE_TIMEZONE,
    job_name=SESSION_JOB,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Processes each XNYS session at 18:30 ET, after ThetaData's 17:15 EOD report.",
)
def daily_session_schedule(context: dg.ScheduleEvaluationContext):
    """Request the session that closed today, or skip on a holiday."""
    when = context.scheduled_execution_time.astimezone(calendar.ET)
    day = when.date()
    if not calendar.is_session(day):
        return dg.SkipReason(calendar.describe_non_session(day))
    if calendar.latest_closed_session(when) != day:
        return dg.SkipReason(f"{day} has not closed yet (EOD report at 17:15 ET)")
    key = session_key(day)
    return dg.RunRequest(run_key=f"daily-{key}", partition_key=key, tags={TRIGGER_TAG: "schedule"})
