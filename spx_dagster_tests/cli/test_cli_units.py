"""One unit system in every command (issue 11: on 43668ef ``process`` printed KiB/MiB while
``gaps``, ``list`` and the disk refusal printed decimal kB/MB, and rows/min read ``6.58M`` in
``process`` but ``6,580,000`` in ``status`` and ``perf``)."""

from __future__ import annotations

import re

from click.testing import CliRunner

from spx_dagster.cli import progress_view, read_options
from spx_dagster.cli.main import cli
from spx_dagster.core.storage import disk

BINARY_UNITS = re.compile(r"\d (KiB|MiB|GiB)\b")
ROWS_PER_MIN = re.compile(r"\b\d+(\.\d+)?[kMG]? rows/min")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_one_human_bytes_in_decimal_units() -> None:
    from spx_dagster.core.units import human_bytes, human_rows_per_min

    assert progress_view.human_bytes is read_options.human_bytes is disk.human_bytes is human_bytes
    assert [human_bytes(n) for n in (950, 12_345, 10_700_000, 1_200_000_000)] == [
        "950 B",
        "12.3 kB",
        "10.7 MB",
        "1.2 GB",
    ]
    assert human_rows_per_min(6_580_000) == "6.58M rows/min"


def test_process_and_perf_print_decimal_sizes_and_rows_per_min_alike(pipeline_home) -> None:
    processed = invoke("process", "2024-11-05")
    assert processed.exit_code == 0, processed.output
    assert not BINARY_UNITS.search(processed.output), processed.output
    assert re.search(r"\(\d+(\.\d)? (kB|MB)\)", processed.output), processed.output
    assert ROWS_PER_MIN.search(processed.output), processed.output

    perf = invoke("perf")
    assert perf.exit_code == 0, perf.output
    assert not BINARY_UNITS.search(perf.output), perf.output
    assert "records/min" not in perf.output
    assert re.search(r"median \d+(\.\d+)?[kMG]? rows/min", perf.output), perf.output
