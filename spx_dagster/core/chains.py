"""What to request for one session: the chain listed that day and the request plan over it.

A session's plan is roots × expirations active that day × datasets. Intraday datasets whose
endpoint refuses ``expiration=*`` (first-order greeks) take one request per root and expiration,
which is where per-expiration progress comes from; end-of-day datasets take one wildcard request
per root when the endpoint allows it, and rows of expirations outside the plan (``max_dte``) are
dropped before validation and counted per dataset in the manifest (``dropped_outside_plan``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from spx_dagster.core.thetadata.vendor import ENDPOINTS, LIST_CONTRACTS_TIER, Tier, tier_allows

WILDCARD = "ALL"


class ChainLister(Protocol):
    """The part of the ThetaData client the planner needs."""

    def list_contracts(self, session_date: dt.date, roots: Sequence[str]) -> pa.Table: ...

    def list_expirations(self, root: str) -> list[dt.date]: ...


@dataclass(frozen=True)
class PlannedRequest:
    """One request of a session's plan; ``expiration`` None means the whole chain (``*``)."""

    dataset: str
    root: str
    expiration: dt.date | None

    @property
    def name(self) -> str:
        """Stable file stem for what this request stages: ``SPXW_2024-03-15`` or ``SPX_ALL``."""
        exp = self.expiration.isoformat() if self.expiration else WILDCARD
        return f"{self.root}_{exp}"

    def describe(self) -> str:
        exp = self.expiration.isoformat() if self.expiration else "*"
        return f"{self.dataset} {self.root} {exp}"


@dataclass
class ListedChain:
    """Expirations (and contract counts) listed for a session, per root."""

    session: dt.date
    expirations: dict[str, list[dt.date]]
    contracts: dict[tuple[str, dt.date], int] = field(default_factory=dict)
    source: str = "contracts"  # "contracts" (list/contracts) or "expirations" (list/expirations)

    @property
    def contract_count(self) -> int:
        return sum(self.contracts.values())

    def expiration_count(self) -> int:
        return sum(len(v) for v in self.expirations.values())


@dataclass
class SessionPlan:
    session: dt.date
    chain: ListedChain
    requests: list[PlannedRequest]

    def by_dataset(self) -> dict[str, list[PlannedRequest]]:
        out: dict[str, list[PlannedRequest]] = defaultdict(list)
        for r in self.requests:
            out[r.dataset].append(r)
        return dict(out)

    def planned_expirations(self) -> dict[str, list[dt.date]]:
        return self.chain.expirations


def within_dte(session: dt.date, expiration: dt.date, max_dte: int | None) -> bool:
    """True when ``expiration`` is on or after ``session`` and at most ``max_dte`` days out."""
    if expiration < session:
        return False
    return max_dte is None or (expiration - session).days <= max_dte


def list_chain(
    client: ChainLister,
    session: dt.date,
    *,
    roots: Sequence[str],
    tier: Tier,
    max_dte: int | None,
) -> ListedChain:
    """The chain listed on ``session``: from list/contracts where the tier allows it.

    Below the Value tier only list/expirations is available; it lists every expiration ever, so
    the chain is approximated by the expirations on or after the session (within ``max_dte``) and
    answers of "no data" (472) for the ones not yet listed that day are expected.
    """
    if tier_allows(tier, LIST_CONTRACTS_TIER):
        table = client.list_contracts(session, list(roots))
        counts: dict[tuple[str, dt.date], int] = defaultdict(int)
        for root, exp in zip(
            table.column("root").to_pylist(), table.column("expiration").to_pylist(), strict=True
        ):
            if within_dte(session, exp, max_dte):
                counts[(root, exp)] += 1
        expirations: dict[str, list[dt.date]] = {root: [] for root in roots}
        for root, exp in sorted(counts):
            expirations.setdefault(root, []).append(exp)
        return ListedChain(session, expirations, dict(counts), source="contracts")
    expirations = {
        root: sorted(e for e in client.list_expirations(root) if within_dte(session, e, max_dte))
        for root in roots
    }
    if max_dte is None:
        # Without a DTE limit list/expirations would reach years out; cap at LEAPS range.
        expirations = {
            r: [e for e in exps if (e - session).days <= 3 * 366] for r, exps in expirations.items()
        }
    return ListedChain(session, expirations, {}, source="expirations")


def plan_session(chain: ListedChain, *, datasets: Iterable[str]) -> SessionPlan:
    """Requests for ``chain``, in (dataset, root, expiration) order, nearest expirations first."""
    requests: list[PlannedRequest] = []
    for dataset in datasets:
        endpoint = ENDPOINTS[dataset]
        for root in sorted(chain.expirations):
            exps = chain.expirations[root]
            if not exps:
                continue
            if endpoint.expiration_wildcard and not endpoint.intraday:
                requests.append(PlannedRequest(dataset, root, None))
            else:
                requests.extend(PlannedRequest(dataset, root, e) for e in exps)
    return SessionPlan(chain.session, chain, requests)
