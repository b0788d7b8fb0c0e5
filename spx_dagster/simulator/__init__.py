"""A wire-compatible ThetaTerminal simulator: realistic SPX chains, fault injection, control API.

``SimulatorServer`` answers the terminal's v3 API (or the legacy v2 one) over real HTTP with the
same paths, parameters, CSV columns and number formats, CRLF line ends and status codes (all from
``core/thetadata/vendor.py``), so the client cannot tell it from a terminal. Chains are
deterministic per seed for any session (``listing.py``, ``market.py``); rows are generated and
rendered with numpy/Arrow, never a Python object per row (``generate.py``, ``render.py``).

Profiles (``faults.PROFILES``; random faults are seeded by seed + request identity):

- ``fast``: no latency, no faults.
- ``realistic``: lognormal latency per request (history median 150 ms, p90 ~280 ms; lists
  ~6 ms) before the body streams; no faults.
- ``flaky``: realistic latency; 474 2%, 429 2%, 571 1%, 500 1%, connection dropped mid-body 1%.
- ``hostile``: slower (median 250 ms); 474 4%, 429 5%, 571 3%, 500 3%, dropped 3%, truncated
  3%, slow bodies 5%, a malformed row 3%, an extra column 2%.

Faults per request: ``add_fault(FaultRule(kind, path=..., status=..., times=..., date=...))``
with kinds ``status``, ``latency``, ``slow_body``, ``drop_mid_body``, ``truncate``,
``malformed_row``, ``extra_column`` (``faults.FAULT_KINDS``). Like the terminal, at most
``concurrency`` requests are served at once and ``queue`` wait; beyond that, 429.

Quality anomalies (``anomalies.py``): ``add_anomaly(family, count)`` or ``anomalies=["parity:2"]``
plants that many anomalies of a family in every session, at rows drawn from the seed and the
date; ``anomalies(date)`` lists them (``anomalies.FAMILIES`` documents each kind).

From other processes: the control API under ``/_sim/`` (``control.py``), ``SimulatorControl``,
and ``SimulatorProcess`` / ``python -m spx_dagster.simulator --port 0 --ready-file F``.

Example::

    with SimulatorServer(port=0, chain="tiny", profile="flaky") as sim:
        sim.add_fault(FaultRule(kind="status", status=474, path="greeks", times=2))
        client = ThetaClient(base_url=sim.base_url)  # core.thetadata.client
"""

from spx_dagster.simulator.control import SimulatorControl, SimulatorProcess
from spx_dagster.simulator.faults import FAULT_KINDS, PROFILES, FaultRule
from spx_dagster.simulator.listing import CHAINS
from spx_dagster.simulator.server import PortInUse, SimulatorServer

__all__ = [
    "CHAINS",
    "FAULT_KINDS",
    "PROFILES",
    "FaultRule",
    "PortInUse",
    "SimulatorControl",
    "SimulatorProcess",
    "SimulatorServer",
]
