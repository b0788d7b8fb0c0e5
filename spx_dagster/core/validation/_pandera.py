"""Import pandera without letting it change how pyarrow reads time zones.

At import, pandera sets ``PYARROW_IGNORE_TIMEZONE=1`` (meant for pyspark) unless the variable is
already set. pyarrow then ignores the ``tzinfo`` of Python datetimes in this process and in every
child process: ``09:30 America/New_York`` would be stored as ``09:30 UTC``. An empty value keeps
pyarrow's default (any non-empty string, even "0", turns the option on) and stops pandera from
setting it. Every module of ours imports pandera from here.
"""

from __future__ import annotations

import os
import sys

_VARIABLE = "PYARROW_IGNORE_TIMEZONE"

if "pandera" in sys.modules and os.environ.get(_VARIABLE) == "1":
    # Someone imported pandera before us and it set the variable: undo it.
    del os.environ[_VARIABLE]
os.environ.setdefault(_VARIABLE, "")

import pandera.errors as errors  # noqa: E402
import pandera.pandas as pandera_pandas  # noqa: E402

__all__ = ["errors", "pandera_pandas"]
