"""Research-grade quality checks: flags per row and a score per family (issue 13, Step 10).

Plain Python over Arrow and numpy, vectorised (no per-row Python). Implausible rows are flagged,
never dropped: ``evaluate`` returns one ``uint32`` bitmask per row (``flags.Flag``, one bit per
check) and, per family, what was checked, how many rows broke it and the worst examples.

Families done so far: ``quote_sanity``, ``greeks_bounds`` (row by row, ``row_checks.py``),
``strike_arbitrage`` (across strikes at one minute, ``strike_arbitrage.py``), ``parity`` (put-call
forwards per minute, ``parity.py``) and ``staleness`` (frozen quotes, disagreeing index levels,
``staleness.py``), all per part; ``calendar_arbitrage`` compares expirations from per-part
summaries (``calendar_arbitrage.py``, ``SESSION_FAMILIES``).
"""

from spx_dagster.core.quality.evaluate import SESSION_FAMILIES, SessionFamily, evaluate
from spx_dagster.core.quality.families import Example, Family, FamilyResult
from spx_dagster.core.quality.flags import FLAG_FAMILY, Flag, describe_flags
from spx_dagster.core.quality.thresholds import Thresholds

__all__ = [
    "FLAG_FAMILY",
    "SESSION_FAMILIES",
    "Example",
    "Family",
    "FamilyResult",
    "Flag",
    "SessionFamily",
    "Thresholds",
    "describe_flags",
    "evaluate",
]
