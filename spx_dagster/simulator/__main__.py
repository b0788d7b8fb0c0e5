"""``python -m spx_dagster.simulator``: the same as ``spx-data simulator`` (see its --help)."""

from spx_dagster.simulator.command import simulator

if __name__ == "__main__":
    simulator(prog_name="python -m spx_dagster.simulator")
