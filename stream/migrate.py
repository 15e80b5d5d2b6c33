"""Versioned SQL migrations, applied at start by every stream process.

Files ``NNNN_name.sql`` run in order, once each, recorded in ``schema_migrations``; a
sibling ``NNNN_name.timescale.sql`` runs after its base file when the ``timescaledb``
extension is available. An advisory lock makes concurrent workers apply each version once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

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


def timescale_available(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return row is not None


def migrate(database_url: str, migrations: list[Migration] | None = None) -> MigrationReport:
    """Bring the database to the newest version; safe to call from many processes at once."""
    migrations = bundled_migrations() if migrations is None else migrations
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY, name text NOT NULL, timescale boolean NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            timescale = timescale_available(conn)
            if not timescale:
                log.info(
                    "timescaledb extension not available: plain PostgreSQL with time indexes"
                    " (no hypertables, compression or retention policies)"
                )
            applied = []
            for migration in migrations:
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)
                    if timescale and migration.timescale_sql:
                        conn.execute(migration.timescale_sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, timescale) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, timescale),
                    )
                log.info("applied migration %04d_%s", migration.version, migration.name)
                applied.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    current = max((m.version for m in migrations), default=0)
    return MigrationReport(tuple(applied), timescale, current)
