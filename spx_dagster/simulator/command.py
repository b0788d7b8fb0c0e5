"""``spx-data simulator``: run the built-in ThetaTerminal simulator in the foreground.

Thin over ``spx_dagster.simulator.SimulatorServer``. Also the entry point of
``python -m spx_dagster.simulator`` (with the hidden ``--ready-file`` used by tests and
``SimulatorProcess`` to learn the port).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from spx_dagster.core.thetadata.vendor import (
    API_PREFIX,
    DEFAULT_V2_BASE_URL,
    DEFAULT_V3_BASE_URL,
    LIST_EXPIRATIONS_PATH,
    TERMINAL_QUEUE_DEFAULT,
    TIER_ORDER,
    V2_LIST_EXPIRATIONS_PATH,
)
from spx_dagster.simulator.anomalies import FAMILIES, PLANNERS, parse_anomaly
from spx_dagster.simulator.faults import PROFILES
from spx_dagster.simulator.listing import CHAINS, DATA_START

# The exit codes of the spx-data contract (spx_dagster/cli/exit_codes.py), spelled here so that
# the simulator starts without importing the CLI package.
USAGE_EXIT = 2
INTERRUPTED_EXIT = 130

DEFAULT_PORTS = {
    "v3": urlsplit(DEFAULT_V3_BASE_URL).port,
    "v2": urlsplit(DEFAULT_V2_BASE_URL).port,
}

HELP = (
    f"""Run the built-in ThetaTerminal simulator in the foreground (Ctrl-C stops it).

It speaks the terminal's HTTP API (v3 by default, or the legacy v2) on a local port with the
same paths, parameters, CSV columns, CRLF line ends and status codes, and serves realistic,
deterministic SPX/SPXW chains for any trading session (472 on holidays, weekends, the future and
before {DATA_START.isoformat()}). Point spx-data at it with
`spx-data config set thetadata.base_url http://127.0.0.1:PORT`.

\b
Profiles:
"""
    + "\n".join(f"  {p.name:<10} {p.summary}" for p in PROFILES.values())
    + """

\b
Chains:
"""
    + "\n".join(f"  {c.name:<10} {c.description}" for c in CHAINS.values())
    + """

\b
Quality anomalies (--anomaly FAMILY[:N], repeatable: N per session, seeded by
--seed and the date, listed by GET /_sim/anomalies?date=YYYY-MM-DD):
"""
    + "\n".join(f"  {name:<20} {', '.join(kinds)}" for name, (kinds, _) in PLANNERS.items())
    + """

\b
Control (from any process): GET /_sim/stats, POST /_sim/faults (JSON FaultRule),
DELETE /_sim/faults, POST /_sim/connected?value=false, GET /_sim/info,
GET|POST|DELETE /_sim/anomalies.

\b
Example:
  spx-data simulator --port 25503 --profile realistic
  curl 'http://127.0.0.1:25503/v3/option/list/expirations?symbol=SPXW'
  curl -X POST -d '{"kind": "status", "status": 474, "times": 3}' http://127.0.0.1:25503/_sim/faults
"""
)


def _today(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    from spx_dagster.core.calendar import DateError, parse_date

    try:
        return parse_date(value)
    except DateError as error:
        raise click.BadParameter(str(error)) from None


def _anomalies(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list:
    try:
        return [parse_anomaly(value) for value in values]
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


class _Terminated(Exception):
    """SIGTERM: stop like Ctrl-C, but exit 0."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated


@click.command(help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="TCP port (default 25503 for v3, 25510 for v2; 0 picks a free one).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--profile",
    type=click.Choice(list(PROFILES)),
    default="fast",
    show_default=True,
    help="Latency and fault profile (see above).",
)
@click.option(
    "--chain",
    type=click.Choice(list(CHAINS)),
    default="full",
    show_default=True,
    help="Size of the option chain (see above).",
)
@click.option(
    "--api-version",
    type=click.Choice(list(API_PREFIX)),
    default="v3",
    show_default=True,
    help="Terminal generation to imitate.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Requests served at once (the subscription tier's limit: free 1, value 2, "
    "standard 4, pro 8).",
)
@click.option(
    "--queue",
    type=click.IntRange(0, 128),
    default=TERMINAL_QUEUE_DEFAULT,
    show_default=True,
    help="Requests waiting beyond --concurrency; past it the simulator answers 429.",
)
@click.option(
    "--tier",
    type=click.Choice([t.value for t in TIER_ORDER]),
    default="pro",
    show_default=True,
    help="Subscription tier: endpoints and history beyond it answer 471.",
)
@click.option(
    "--today",
    callback=_today,
    default=None,
    help="The simulated current date (YYYY-MM-DD; default: today in New York).",
)
@click.option(
    "--anomaly",
    "anomalies",
    multiple=True,
    callback=_anomalies,
    metavar="FAMILY[:N]",
    help="Plant N (default 1) quality anomalies of FAMILY in every session served "
    f"(repeatable; families: {', '.join(FAMILIES)}).",
)
@click.option("--log-requests", is_flag=True, help="Print one line per request on stderr.")
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    hidden=True,
    help="Write {base_url, port, pid} as JSON here once listening (for test harnesses).",
)
def simulator(
    port: int | None,
    host: str,
    profile: str,
    chain: str,
    api_version: str,
    seed: int,
    concurrency: int,
    queue: int,
    tier: str,
    today: dt.date | None,
    anomalies: list[tuple[str, int]],
    log_requests: bool,
    ready_file: Path | None,
) -> None:
    """See HELP."""
    from spx_dagster.simulator.server import PortInUse, SimulatorServer

    server = SimulatorServer(
        port=DEFAULT_PORTS[api_version] if port is None else port,
        host=host,
        profile=profile,
        chain=chain,
        seed=seed,
        api_version=api_version,
        concurrency=concurrency,
        queue=queue,
        today=today,
        tier=tier,
        log_requests=log_requests,
    )
    for family, count in anomalies:
        server.add_anomaly(family, count)
    try:
        server.start()
    except PortInUse as error:
        click.echo(f"error: {error.strerror or error}", err=True)
        sys.exit(USAGE_EXIT)
    example = LIST_EXPIRATIONS_PATH if api_version == "v3" else V2_LIST_EXPIRATIONS_PATH
    symbol = "symbol" if api_version == "v3" else "root"
    url = server.base_url
    click.echo(
        f"ThetaTerminal simulator ({api_version}, profile {profile}, chain {chain}, seed {seed}) "
        f"listening at {url}"
    )
    click.echo(f"  try:      curl '{url}{API_PREFIX[api_version]}{example}?{symbol}=SPXW'")
    click.echo(f"  control:  curl {url}/_sim/stats")
    if anomalies:
        planted = ", ".join(f"{f}:{n}" for f, n in server.anomalies()["anomalies"].items())
        click.echo(f"  planting: {planted} per session (curl '{url}/_sim/anomalies?date=...')")
    click.echo(f"  use it:   spx-data config set thetadata.base_url {url}")
    click.echo("Press Ctrl-C to stop.")
    sys.stdout.flush()
    if ready_file is not None:
        payload = {"base_url": url, "port": server.port, "pid": os.getpid(), **server.info()}
        partial = ready_file.with_suffix(".tmp")
        partial.write_text(json.dumps(payload))
        partial.replace(ready_file)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
        click.echo("simulator stopped")
        sys.exit(INTERRUPTED_EXIT)
    except _Terminated:
        server.stop()
        click.echo("simulator stopped (terminated)")
    finally:
        signal.signal(signal.SIGTERM, previous)
