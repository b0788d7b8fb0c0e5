"""Entry point of a benchmark's child process: ``python -m bench.child MODULE:FUNCTION``.

Reads the keyword arguments as JSON on stdin, calls ``bench.MODULE.FUNCTION(**kwargs)`` and
prints its (JSON-serialisable) return value on one stdout line marked ``RESULT_PREFIX``; see
``harness.run_child``, which measures this process's CPU time and peak RSS.
"""

from __future__ import annotations

import importlib
import json
import sys

from bench.harness import RESULT_PREFIX


def main() -> None:
    module_name, function_name = sys.argv[1].split(":")
    kwargs = json.loads(sys.stdin.read() or "{}")
    function = getattr(importlib.import_module(f"bench.{module_name}"), function_name)
    value = function(**kwargs)
    print(RESULT_PREFIX + json.dumps(value, default=str), flush=True)


if __name__ == "__main__":
    main()
