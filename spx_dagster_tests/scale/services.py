"""Real services for the scale-out tests: PostgreSQL, Redis, the Dagster daemon, Celery workers.

Each is a context manager that starts the real program from Debian's packages or the venv on
loopback, waits until it answers, and stops it (its whole process group) on the way out.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
CODE_LOCATION = "spx_dagster.definitions"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, *, timeout_s: float, what: str, interval_s: float = 0.2):
    """Poll ``predicate`` until it returns a truthy value; AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def stop_group(proc: subprocess.Popen, *, timeout_s: float = 20.0) -> None:
    """SIGTERM the process group ``proc`` leads (started with start_new_session), then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)
    # Children (run workers, pool processes) may outlive the leader: end the rest of the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------
def postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl, if installed."""
    found = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bindir = Path(initdb).parent
        version = bindir.parent.name
        if (bindir / "pg_ctl").exists() and version.isdigit():
            found.append((int(version), bindir))
    return max(found)[1] if found else None


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    db_name: str

    def env(self) -> dict[str, str]:
        """The ``SPX_DATA_PG_*`` variables deploy/postgres/dagster.yaml reads."""
        return {
            "SPX_DATA_PG_HOST": self.host,
            "SPX_DATA_PG_PORT": str(self.port),
            "SPX_DATA_PG_USER": self.user,
            "SPX_DATA_PG_PASSWORD": self.password,
            "SPX_DATA_PG_DB": self.db_name,
        }


def _service_user() -> tuple[list[str], int | None, int | None]:
    """How to run a server that refuses root: (command prefix, uid, gid) for the data dir."""
    if os.geteuid() != 0:
        return [], None, None
    # initdb and postgres refuse to run as root; Debian's package creates the postgres user.
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root and neither a postgres nor a nobody user exists")


@contextlib.contextmanager
def postgres_server(bindir: Path, *, db_name: str = "spx_dagster") -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with password auth, removed afterwards."""
    import psycopg2

    prefix, uid, gid = _service_user()
    # Not under pytest's tmp_path: that is private to root, and the server runs as another user.
    root = Path(tempfile.mkdtemp(prefix="spx-pg-"))
    data, log, pwfile = root / "data", root / "server.log", root / "pw"
    user, password = "spx", secrets.token_hex(12)
    pwfile.write_text(password + "\n")
    if uid is not None:
        for path in (root, pwfile):
            os.chown(path, uid, gid)
    port = free_port()
    run = dict(check=True, capture_output=True, text=True)
    try:
        subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                user,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            **run,
        )
        options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=200"
        subprocess.run(
            [
                *prefix,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            **run,
        )
        try:
            conn = psycopg2.connect(
                host="127.0.0.1", port=port, user=user, password=password, dbname="postgres"
            )
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{db_name}"')
            conn.close()
            yield PostgresServer("127.0.0.1", port, user, password, db_name)
        finally:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
            )
    except subprocess.CalledProcessError as error:
        raise RuntimeError(
            f"{error.cmd[len(prefix)]} failed ({error.returncode}): {error.stderr}{tail(log)}"
        ) from error
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """Debian's redis-server on 127.0.0.1 without persistence; yields ``redis://127.0.0.1:P``."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    log = directory / "redis.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)

        def answers() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"redis-server exited: {tail(log)}")
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, timeout_s=20, what="redis-server to answer PING")
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop_group(proc)


# ---------------------------------------------------------------------------------------------
# Dagster daemon and Celery workers
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def dagster_daemon(env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """``dagster-daemon run`` on the code location, with everything it spawns in one group."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "dagster-daemon"), "run", "-m", CODE_LOCATION],
            env=dict(env),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        stop_group(proc)


@contextlib.contextmanager
def celery_workers(
    names: list[str], env: Mapping[str, str], directory: Path
) -> Iterator[list[subprocess.Popen]]:
    """One ``deploy/celery/start-worker.sh NAME 1`` per name, waiting until each is online."""
    from celery import Celery

    procs = []
    try:
        for name in names:
            log = directory / f"celery-{name}.log"
            with log.open("w") as out:
                procs.append(
                    subprocess.Popen(
                        [str(REPO / "deploy" / "celery" / "start-worker.sh"), name, "1"],
                        env={**env, "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"},
                        cwd=REPO,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        app = Celery(broker=env["SPX_DATA_CELERY_BROKER"])

        def all_online() -> bool:
            for proc, name in zip(procs, names, strict=True):
                if proc.poll() is not None:
                    log = directory / f"celery-{name}.log"
                    raise AssertionError(f"celery worker {name} exited: {tail(log)}")
            replies = app.control.ping(timeout=1.0) or []
            online = {node.split("@", 1)[0] for reply in replies for node in reply}
            return set(names) <= online

        wait_until(all_online, timeout_s=60, what=f"celery workers {names} to answer ping")
        yield procs
    finally:
        for proc in procs:
            stop_group(proc)
