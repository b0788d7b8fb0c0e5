"""Exit codes of the ``spx-data`` contract (see README "Exit codes")."""

OK = 0
WORK_FAILED = 1  # some dates failed, verification found corruption
USAGE = 2  # bad usage or invalid configuration
TERMINAL_UNREACHABLE = 3  # ThetaTerminal not reachable
INTERRUPTED = 130  # Ctrl-C
