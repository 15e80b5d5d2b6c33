"""PostgreSQL for the embedded stack: cluster creation, command line, readiness and version.

The cluster lives in `<data_dir>/postgres` and listens on loopback TCP only (no Unix socket,
so nothing is written outside the data directory). Its bootstrap superuser is the role
`citywatch`, with a generated password and scram-sha-256 authentication; it owns the
database `citywatch`. Being superuser lets migrations create extensions such as TimescaleDB
where it is available. PostgreSQL refuses to run as root, so when citywatch runs as root the
cluster belongs to, and the server runs as, the `postgres` system user.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import subprocess
from pathlib import Path

from citywatch.stack import files
from citywatch.stack.binaries import PostgresBinaries
from citywatch.stack.errors import StackError
from citywatch.stack.ports import LOOPBACK
from citywatch.stack.processes import ServiceUser, service_env
from citywatch.stack.service import ProbeFailed, read_log_since

log = logging.getLogger(__name__)

ROLE = "citywatch"
DATABASE = "citywatch"
_CONNECT_TIMEOUT_S = 2


class PostgresService:
    """The `postgres` service of the stack."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, then exit
    stop_grace_s = 15.0

    def __init__(
        self,
        data_dir: Path,
        binaries: PostgresBinaries,
        run_as: ServiceUser | None,
        password: str,
    ) -> None:
        self.binaries = binaries
        self.run_as = run_as
        self.password = password
        self.data_dir = data_dir
        self.pgdata = data_dir / "postgres"
        self.log_path = data_dir / "postgres.log"
        self._server_version = ""

    def url(self, port: int, *, with_password: bool = True) -> str:
        secret = f":{self.password}" if with_password else ""
        return f"postgresql://{ROLE}{secret}@{LOOPBACK}:{port}/{DATABASE}"

    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file()

    def prepare(self, port: int) -> None:
        """Create the cluster on first start (initdb), with the `citywatch` superuser."""
        if self.initialized():
            return
        files.make_dir(self.pgdata, self.run_as)
        # initdb reads the password from a file; it exists only for the duration of initdb.
        pwfile = self.data_dir / ".postgres-initdb-password"
        files.write_file(pwfile, self.password + "\n", self.run_as)
        argv = [
            str(self.binaries.bindir / "initdb"),
            "--pgdata",
            str(self.pgdata),
            "--username",
            ROLE,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]
        log.info("creating the PostgreSQL cluster in %s", self.pgdata)
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        try:
            with open(self.log_path, "ab") as log_file:
                result = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=self.pgdata,
                    env=service_env(self.run_as),
                    check=False,
                    timeout=120,
                    user=self.run_as.uid if self.run_as else None,
                    group=self.run_as.gid if self.run_as else None,
                    extra_groups=self.run_as.groups() if self.run_as else None,
                )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(
                f"initdb failed (exit {result.returncode}) creating {self.pgdata}. "
                f"Last lines of {self.log_path}:\n{read_log_since(self.log_path, start)}"
            )

    def argv(self, port: int) -> list[str]:
        return [
            str(self.binaries.bindir / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(port),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
            # When each transaction committed (pg_xact_commit_timestamp): the stream
            # benchmark's clock, and when an operator asks when a row became visible.
            "-c",
            "track_commit_timestamp=on",
        ]

    def marker(self, port: int) -> str:
        return str(self.pgdata)

    def probe(self, port: int) -> None:
        """Log in as `citywatch`, create the `citywatch` database once, and `SELECT 1` in it."""
        try:
            import psycopg
        except ImportError as exc:
            raise StackError(
                "psycopg is needed to check PostgreSQL: `pip install 'psycopg[binary]'`"
            ) from exc
        conninfo = psycopg.conninfo.make_conninfo(
            host=LOOPBACK,
            port=port,
            user=ROLE,
            password=self.password,
            connect_timeout=_CONNECT_TIMEOUT_S,
        )
        try:
            with psycopg.connect(conninfo, dbname="postgres", autocommit=True) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                ).fetchone()
                if not exists:
                    log.info("creating database %s", DATABASE)
                    conn.execute(f'CREATE DATABASE "{DATABASE}"')
            with psycopg.connect(conninfo, dbname=DATABASE) as conn:
                conn.execute("SELECT 1").fetchone()
                row = conn.execute("SHOW server_version").fetchone()
        except psycopg.OperationalError as exc:
            raise ProbeFailed(f"cannot log in to PostgreSQL on port {port}: {exc}") from exc
        self._server_version = str(row[0]) if row else ""

    def version(self) -> str:
        """`SHOW server_version` from the probe, else `postgres --version`."""
        if self._server_version:
            return self._server_version.split(" ", 1)[0]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            result = subprocess.run(
                [str(self.binaries.bindir / "postgres"), "--version"],
                capture_output=True,
                text=True,
                check=False,
                timeout=10,
            )
            match = re.search(r"\(PostgreSQL\) (\S+)", result.stdout)
            if match:
                return match.group(1)
        return "unknown"
