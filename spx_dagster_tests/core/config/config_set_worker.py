"""A separate process that runs ``spx-data config set KEY VALUE`` and stalls inside the write.

``python -m spx_dagster_tests.core.config.config_set_worker KEY VALUE``

The store's history insert is wrapped so that, after the new value has been written but before
the transaction commits, the process prints ``inside-transaction`` and sleeps; the crash test
SIGKILLs it there. The wrapper is the only test double: the CLI, the validation and SQLite are
the real ones.
"""

from __future__ import annotations

import sys
import time

from spx_dagster.cli.main import cli
from spx_dagster.core.config.store import ConfigStore

STALL_S = 60.0


def main() -> None:
    original = ConfigStore._record

    def stalled_record(self, conn, change):
        print("inside-transaction", flush=True)
        time.sleep(STALL_S)
        return original(self, conn, change)

    ConfigStore._record = stalled_record  # type: ignore[method-assign]
    key, value = sys.argv[1], sys.argv[2]
    cli(["config", "set", key, value], prog_name="spx-data")


if __name__ == "__main__":
    main()
