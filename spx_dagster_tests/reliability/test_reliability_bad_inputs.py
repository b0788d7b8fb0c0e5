"""Every command against bad input: the contract's exit code, a message that says what to do,
and nothing changed — not the config store, not the published data, not Dagster's records.

One home is shared by the module: a published session, a stored setting, a Dagster instance
with its run. Each case runs one ``spx-data`` command in process against it (with environment
overrides where the bad input is a setting) and compares everything before and after.
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from spx_dagster.cli import exit_codes
from spx_dagster.defs.instance_queries import corrupt_sessions
from spx_dagster.simulator import SimulatorServer
from spx_dagster_tests.reliability.support import home_env, invoke, tree_snapshot, use_env

pytestmark = pytest.mark.slow

PUBLISHED = dt.date(2024, 11, 4)
OTHER = "2024-11-05"
USAGE, FAILED, UNREACHABLE = (
    exit_codes.USAGE,
    exit_codes.WORK_FAILED,
    exit_codes.TERMINAL_UNREACHABLE,
)
DATE_HELP = "use YYYY-MM-DD"
REVERSED = ("reversed", "did you mean")


@dataclass(frozen=True)
class Home:
    root: Path
    not_a_dir: Path  # a regular file: a directory "inside" it can never be created
    read_only: Path | None  # a read-only filesystem (None when mounting is not permitted)
    dead_url: str  # nothing listens there
    v2_url: str  # a terminal that speaks v2 while the settings say v3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_simulator) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("bad-inputs")
    not_a_dir = root / "a-file"
    not_a_dir.write_text("not a directory\n")
    read_only = root / "read-only"
    read_only.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)],
            capture_output=True,
        ).returncode
        == 0
    )
    tiny_simulator.clear_faults()
    tiny_simulator.set_connected(True)
    with (
        pytest.MonkeyPatch.context() as mp,
        SimulatorServer(port=0, chain="tiny", api_version="v2") as v2,
    ):
        use_env(mp, home_env(root / "spx", tiny_simulator.base_url))
        assert invoke("config", "set", "quality.min_score", "0.9").exit_code == 0
        assert invoke("process", PUBLISHED.isoformat()).exit_code == 0
        yield Home(
            root=root / "spx",
            not_a_dir=not_a_dir,
            read_only=read_only if mounted else None,
            dead_url=f"http://127.0.0.1:{_free_port()}",
            v2_url=v2.base_url,
        )
    if mounted:
        subprocess.run(["umount", "-l", str(read_only)], check=False)


def state(home: Home) -> dict:
    """Everything a bad command must leave alone."""
    instance = dg.DagsterInstance.get()
    return {
        "config store": tree_snapshot(home.root, skip=("dagster", "data", "tmp", "progress")),
        "published data": tree_snapshot(home.root / "data"),
        "runs": sorted(r.dagster_run.run_id for r in instance.get_run_records()),
        "backfills": sorted(b.backfill_id for b in instance.get_backfills()),
        "corrupt in dagster": sorted(corrupt_sessions(instance)),
    }


# (id, args, environment overrides, exit code, words the message must contain)
CASES = [
    # Malformed dates: the value, why, and the format to use.
    ("process-month-13", ["process", "2024-13-45"], {}, USAGE, ["2024-13-45", DATE_HELP]),
    ("process-words", ["process", "yesterdayish"], {}, USAGE, ["yesterdayish", DATE_HELP]),
    ("process-saturday", ["process", "2024-11-09"], {}, USAGE, ["Saturday", "2024-11-08"]),
    ("backfill-bad-end", ["backfill", "2024-11-04", "nope"], {}, USAGE, ["nope", DATE_HELP]),
    ("list-feb-30", ["list", "--from", "2024-02-30"], {}, USAGE, ["2024-02-30", DATE_HELP]),
    ("gaps-month-99", ["gaps", "--to", "2024-99-01"], {}, USAGE, ["2024-99-01", DATE_HELP]),
    ("verify-feb-30", ["verify", "2024-02-30"], {}, USAGE, ["2024-02-30", DATE_HELP]),
    ("errors-words", ["errors", "--from", "x"], {}, USAGE, ["'x'", DATE_HELP]),
    ("perf-month-99", ["perf", "--to", "2024-99-01"], {}, USAGE, ["2024-99-01", DATE_HELP]),
    ("retry-month-13", ["retry", "2024-13-01"], {}, USAGE, ["2024-13-01", DATE_HELP]),
    (
        "fill-gaps-bad",
        ["fill-gaps", "--from", "2024-13-01", "--dry-run"],
        {},
        USAGE,
        ["2024-13-01", DATE_HELP],
    ),
    (
        "config-start-date",
        ["config", "set", "processing.start_date", "2024-13-01"],
        {},
        USAGE,
        ["processing.start_date", "2024-13-01", "Example: spx-data config set"],
    ),
    # Reversed ranges: both ends and the range the user probably meant.
    ("backfill-reversed", ["backfill", OTHER, "2024-11-04"], {}, USAGE, [*REVERSED, OTHER]),
    *(
        (
            f"{command}-reversed",
            [command, "--from", OTHER, "--to", "2024-11-04"],
            {},
            USAGE,
            [*REVERSED, f"--from 2024-11-04 --to {OTHER}"],
        )
        for command in ("list", "gaps", "verify", "errors", "perf", "fill-gaps")
    ),
    # Unknown keys: named, with the nearest key or where to find them.
    (
        "config-set-unknown",
        ["config", "set", "thetadata.bogus", "1"],
        {},
        USAGE,
        ["thetadata.bogus", "Did you mean"],
    ),
    ("config-get-unknown", ["config", "get", "nope.key"], {}, USAGE, ["nope.key", "config list"]),
    ("config-reset-unknown", ["config", "reset", "bogus"], {}, USAGE, ["bogus", "config list"]),
    ("list-unknown-status", ["list", "--status", "bogus"], {}, USAGE, ["bogus", "corrupt"]),
    # Absurd concurrency.
    *(
        (
            f"backfill-concurrency-{value}",
            ["backfill", "2024-11-04", OTHER, "--concurrency", value],
            {},
            USAGE,
            ["--concurrency", value],
        )
        for value in ("0", "-3", "many")
    ),
    ("fill-gaps-batch-0", ["fill-gaps", "--batch-size", "0"], {}, USAGE, ["--batch-size", "0"]),
    *(
        (
            f"config-concurrency-{value}",
            ["config", "set", "thetadata.concurrency", value],
            {},
            USAGE,
            ["thetadata.concurrency", value, "Example"],
        )
        for value in ("0", "100000")
    ),
    (
        "process-env-concurrency",
        ["process", OTHER],
        {"SPX_DATA_THETADATA__CONCURRENCY": "100000"},
        USAGE,
        ["SPX_DATA_THETADATA__CONCURRENCY", "128"],
    ),
]


@pytest.mark.parametrize(
    ("args", "env", "code", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_input_exits_with_the_contract_code_and_changes_nothing(
    home, monkeypatch, args, env, code, words
):
    _check(home, monkeypatch, args, env, code, words)


def _check(home: Home, monkeypatch, args, env, code, words, *, quiet: bool = True) -> None:
    before = state(home)
    use_env(monkeypatch, env)
    result = invoke(*args)
    monkeypatch.undo()
    assert result.exit_code == code, result.output
    message = result.stderr
    for word in words:
        assert word in message, f"{word!r} not in: {message}"
    if quiet:
        assert result.stdout == "", "a refused command prints nothing on stdout"
    assert state(home) == before


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["process", OTHER], UNREACHABLE),
        (["retry", OTHER], UNREACHABLE),
        (["backfill", "2024-11-04", OTHER], UNREACHABLE),
    ],
    ids=["process", "retry", "backfill"],
)
def test_an_unreachable_terminal_is_named_with_what_to_start(home, monkeypatch, args, code):
    words = [home.dead_url, "spx-data simulator", "thetadata.base_url"]
    env = {"SPX_DATA_THETADATA__BASE_URL": home.dead_url}
    # retry shows its plan before it looks for the terminal.
    _check(home, monkeypatch, args, env, code, words, quiet=args[0] != "retry")


@pytest.mark.parametrize(
    "args", [["process", OTHER], ["backfill", "2024-11-04", OTHER]], ids=["process", "backfill"]
)
def test_a_terminal_of_the_wrong_api_version_says_which_setting_to_change(home, monkeypatch, args):
    words = [home.v2_url, "v2", "spx-data config set thetadata.api_version v2"]
    _check(home, monkeypatch, args, {"SPX_DATA_THETADATA__BASE_URL": home.v2_url}, USAGE, words)


def _unwritable(home: Home, kind: str) -> Path:
    if kind == "read-only":
        if home.read_only is None:
            pytest.skip("cannot mount a read-only tmpfs here (needs root)")
        return home.read_only / "data"
    return home.not_a_dir / "data"


@pytest.mark.parametrize("kind", ["under-a-file", "read-only"])
@pytest.mark.parametrize("key", ["storage.output_dir", "storage.temp_dir"])
def test_config_set_refuses_an_unwritable_directory(home, monkeypatch, kind, key):
    path = str(_unwritable(home, kind))
    _check(home, monkeypatch, ["config", "set", key, path], {}, USAGE, [key, path, "Example"])


@pytest.mark.parametrize("kind", ["under-a-file", "read-only"])
@pytest.mark.parametrize(
    ("key", "args"),
    [
        ("storage.output_dir", ["process", OTHER]),
        ("storage.temp_dir", ["process", OTHER]),
        ("storage.output_dir", ["retry", OTHER, "--force"]),
    ],
    ids=["process-output", "process-temp", "retry-output"],
)
def test_work_refuses_an_unwritable_directory_before_fetching(home, monkeypatch, kind, key, args):
    """Found before anything is fetched, as a configuration error (exit 2) naming the setting
    and where its value came from — not after the fetch, as a failed publish."""
    path = _unwritable(home, kind)
    env_var = "SPX_DATA_" + key.upper().replace(".", "__")
    words = [key, str(path), env_var, "Example: spx-data config set"]
    _check(home, monkeypatch, args, {env_var: str(path)}, USAGE, words, quiet=args[0] != "retry")


def test_verify_with_an_output_dir_that_cannot_exist_records_nothing(home, monkeypatch):
    """A mistyped output directory is a configuration error, not the corruption of every
    session Dagster has published."""
    path = home.not_a_dir / "data"
    env = {"SPX_DATA_STORAGE__OUTPUT_DIR": str(path)}
    _check(home, monkeypatch, ["verify", "--all"], env, USAGE, ["storage.output_dir", str(path)])
