"""The Python reader of the published history, for notebooks and backtests.

    from spx_dagster.read import open_history

    history = open_history()                     # storage.output_dir of the settings
    history.sql("SELECT date, count(*) FROM greeks GROUP BY ALL").to_pandas()
    history.chain("2024-11-04", at="15:45", root="SPXW")
    history.dataset("eod", start="2024-11-01", end="2024-11-30", columns=["root", "close"])

Everything it returns is a ``pyarrow.Table`` (``.to_pandas()``, ``polars.from_arrow``). It reads
the files committed manifests list and nothing else (``core.storage.committed``), in an
in-process DuckDB, and never imports Dagster.
"""

from spx_dagster.read.errors import ChainError, FilesChanged, NotPublished, QueryError, ReadError
from spx_dagster.read.history import History, open_history

__all__ = [
    "ChainError",
    "FilesChanged",
    "History",
    "NotPublished",
    "QueryError",
    "ReadError",
    "open_history",
]
