"""Versioned SQL migrations, applied at start by every stream process.

Files ``NNNN_name.sql`` run in order, once each, recorded in ``schema_migrations``; a
sibling ``NNNN_name.timescale.sql`` runs after its base file when TimescaleDB is usable (see
:mod:`citywatch.stream.timescale_plan` for what "usable" takes), and the row records whether
it did. A site that started on plain PostgreSQL and installs TimescaleDB later gets the
skipped halves on its next migration (``create_hypertable(…, migrate_data => TRUE)`` moves
the rows in), recorded with ``timescale_applied_at``. An advisory lock makes concurrent
workers apply each version once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from importlib import resources
from typing import TYPE_CHECKING

import psycopg

from citywatch.config.services import TimescalePolicies
from citywatch.config.workflow import Workflow
from citywatch.stream.timescale import bring_in_line, read_facts
from citywatch.stream.timescale_plan import Decision, decide

if TYPE_CHECKING:
    from citywatch.config.tree import CitywatchConfig

log = logging.getLogger(__name__)
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x63697479  # "city"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    timescale_sql: str | None


@dataclass(frozen=True)
class MigrationReport:
    applied: tuple[int, ...]
    timescale: bool
    current_version: int
    reason: str = ""
    """One line: the TimescaleDB version in use, or why plain PostgreSQL is."""
    upgraded: tuple[int, ...] = ()
    """Versions applied earlier on plain PostgreSQL whose TimescaleDB halves ran now."""


def bundled_migrations() -> list[Migration]:
    """The migrations shipped in ``citywatch.stream.migrations``, in version order."""
    folder = resources.files("citywatch.stream.migrations")
    files = {entry.name: entry for entry in folder.iterdir()}
    migrations = []
    for name in sorted(files):
        match = _NAME.match(name)
        if not match:
            continue
        extra = files.get(name.removesuffix(".sql") + ".timescale.sql")
        migrations.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                sql=files[name].read_text(),
                timescale_sql=extra.read_text() if extra else None,
            )
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return migrations


def pending_timescale_halves(
    migrations: list[Migration], recorded: Mapping[int, bool]
) -> list[Migration]:
    """Applied versions whose TimescaleDB half was skipped (recorded ``timescale = false``),
    in version order: what a site that installed TimescaleDB later still lacks."""
    return [
        m
        for m in sorted(migrations, key=lambda m: m.version)
        if m.timescale_sql and recorded.get(m.version) is False
    ]


def migrate_for(config: CitywatchConfig, database_url: str) -> MigrationReport:
    """:func:`migrate` with the TimescaleDB policies and late-data window of ``config``."""
    return migrate(
        database_url,
        policies=config.services.database.timescale,
        late_data=config.workflow.late_data,
    )


def migrate(
    database_url: str,
    migrations: list[Migration] | None = None,
    *,
    policies: TimescalePolicies | None = None,
    late_data: timedelta | None = None,
) -> MigrationReport:
    """Bring the database to the newest version; safe to call from many processes at once.

    With TimescaleDB, ``policies`` (and ``late_data``, which sets the aggregate's refresh
    window) are applied on every call; a caller without a config passes neither, and then
    the defaults are applied only where this call created the hypertables, so it never
    undoes what a configured worker set.
    """
    migrations = bundled_migrations() if migrations is None else migrations
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            return _migrate_locked(conn, migrations, policies, late_data)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _migrate_locked(
    conn: psycopg.Connection,
    migrations: list[Migration],
    policies: TimescalePolicies | None,
    late_data: timedelta | None,
) -> MigrationReport:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version integer PRIMARY KEY, name text NOT NULL, timescale boolean NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    has_column = conn.execute(
        """SELECT 1 FROM pg_attribute WHERE attrelid = 'schema_migrations'::regclass
               AND attname = 'timescale_applied_at' AND NOT attisdropped"""
    ).fetchone()
    if has_column is None:  # a table made before the upgrade path existed; ALTER needs its owner
        conn.execute("ALTER TABLE schema_migrations ADD COLUMN timescale_applied_at timestamptz")
    recorded: dict[int, bool] = dict(
        conn.execute("SELECT version, timescale FROM schema_migrations").fetchall()
    )
    decision = create_extension(conn, decide(read_facts(conn)))
    _log_decision(decision, recorded)
    ran_halves: list[Migration] = []
    upgraded: list[int] = []
    if decision.use:
        late = pending_timescale_halves(migrations, recorded)
        if late:
            upgraded = apply_skipped_halves(conn, late)
            ran_halves += late
    applied = []
    for migration in migrations:
        if migration.version in recorded:
            continue
        with_timescale = decision.use and migration.timescale_sql is not None
        with conn.transaction():
            conn.execute(migration.sql)
            if with_timescale:
                conn.execute(migration.timescale_sql or "")
                ran_halves.append(migration)
            conn.execute(
                """INSERT INTO schema_migrations (version, name, timescale, timescale_applied_at)
                   VALUES (%s, %s, %s, CASE WHEN %s THEN now() END)""",
                (migration.version, migration.name, decision.use, with_timescale),
            )
        log.info("applied migration %04d_%s", migration.version, migration.name)
        applied.append(migration.version)
    if decision.use and decision.version is not None and (policies is not None or ran_halves):
        bring_in_line(
            conn,
            decision.version,
            policies if policies is not None else TimescalePolicies(),
            late_data if late_data is not None else Workflow.model_fields["late_data"].default,
            backfill=any("timescaledb.continuous" in (m.timescale_sql or "") for m in ran_halves),
        )
    current = max((m.version for m in migrations), default=0)
    return MigrationReport(tuple(applied), decision.use, current, decision.reason, tuple(upgraded))


def apply_skipped_halves(conn: psycopg.Connection, halves: list[Migration]) -> list[int]:
    """Run the TimescaleDB halves of versions applied on plain PostgreSQL, all or none, and
    record each in ``schema_migrations``; the versions upgraded."""
    with conn.transaction():
        for migration in halves:
            conn.execute(migration.timescale_sql or "")
            conn.execute(
                """UPDATE schema_migrations SET timescale = TRUE, timescale_applied_at = now()
                   WHERE version = %s""",
                (migration.version,),
            )
    versions = [m.version for m in halves]
    log.warning(
        "upgraded to TimescaleDB: applied the TimescaleDB parts of versions %s"
        " (existing rows moved into hypertables)",
        versions,
    )
    return versions


def create_extension(conn: psycopg.Connection, decision: Decision) -> Decision:
    """Create the extension where the decision says so; should the server still refuse (a
    restart pending, a policy the catalog does not show), fall back to plain PostgreSQL with
    the server's own words instead of failing the migration."""
    if not decision.create_extension:
        return decision
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return replace(
            decision,
            use=False,
            create_extension=False,
            version=None,
            reason=f"CREATE EXTENSION timescaledb failed ({first_line}); using plain PostgreSQL",
        )
    return decision


def _log_decision(decision: Decision, recorded: Mapping[int, bool]) -> None:
    """One line saying which engine runs and why; a warning when TimescaleDB was meant to."""
    if decision.use:
        log.info("database: %s", decision.reason)
        return
    earlier = sorted(v for v, timescale in recorded.items() if timescale)
    if earlier:
        log.warning(
            "versions %s were applied with TimescaleDB, which is not usable now: %s",
            earlier,
            decision.reason,
        )
    elif decision.intended:
        log.warning("%s", decision.reason)
    else:
        log.info("%s", decision.reason)
