"""TimescaleDB on a live server: read what it reports, run what the pure modules decide.

The decision (:mod:`citywatch.stream.timescale_plan`) and the statements
(:mod:`citywatch.stream.timescale_sql`) are pure; this shell only queries the catalog and
executes. Called by the migration runner on every start, so that changing
``services.database.timescale`` or ``workflow.late_data`` in the YAML takes effect without a
new migration.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import psycopg

from citywatch.config.services import TimescalePolicies
from citywatch.stream.timescale_plan import ServerFacts, Version
from citywatch.stream.timescale_sql import (
    TELEMETRY_ORDERBY,
    CompressionState,
    backfill_statement,
    settings_from_text,
    setup,
)

log = logging.getLogger(__name__)

# One row of facts. shared_preload_libraries is read from pg_settings, which hides it (NULL)
# from a role without pg_read_all_settings, where current_setting() would raise; the
# loader's timescaledb.disable_load, defined only where the library is preloaded, any role
# may read. ``trusted``
# is read through to_jsonb so that the query also runs on a server whose
# pg_available_extension_versions has no such column (before PostgreSQL 13).
_FACTS = """
SELECT (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),
       (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'),
       (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'),
       current_setting('timescaledb.disable_load', true),
       current_setting('is_superuser') = 'on',
       coalesce((SELECT bool_or(coalesce((to_jsonb(v) ->> 'trusted')::boolean, false))
                 FROM pg_available_extension_versions v
                 WHERE v.name = 'timescaledb'
                   AND v.version = (SELECT default_version FROM pg_available_extensions
                                    WHERE name = 'timescaledb')), false),
       has_database_privilege(current_database(), 'CREATE')
"""


def read_facts(conn: psycopg.Connection) -> ServerFacts:
    """What this server and role say about TimescaleDB (works on plain PostgreSQL too)."""
    row = conn.execute(_FACTS).fetchone()
    assert row is not None  # a SELECT without FROM returns one row
    installed, available, preload, disable_load, superuser, trusted, may_create = row
    return ServerFacts(
        installed=installed,
        available=available,
        preload_libraries=preload,
        disable_load=disable_load,
        superuser=bool(superuser),
        trusted=bool(trusted),
        may_create=bool(may_create),
    )


def read_telemetry_compression(conn: psycopg.Connection) -> CompressionState:
    """Telemetry's compression settings and compressed chunks (needs TimescaleDB loaded)."""
    enabled = conn.execute(
        """SELECT compression_enabled FROM timescaledb_information.hypertables
           WHERE hypertable_schema = current_schema() AND hypertable_name = 'telemetry'"""
    ).fetchone()
    if enabled is None or not enabled[0]:
        return CompressionState(enabled=False)
    segmentby, orderby = _compression_settings(conn)
    compressed = conn.execute(
        """SELECT count(*) FROM timescaledb_information.chunks
           WHERE hypertable_schema = current_schema() AND hypertable_name = 'telemetry'
             AND is_compressed"""
    ).fetchone()
    return CompressionState(True, segmentby, orderby, int(compressed[0]) if compressed else 0)


def _compression_settings(conn: psycopg.Connection) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """From timescaledb_information.compression_settings where it exists (2.0 to its removal
    as deprecated), else from hypertable_compression_settings (2.14 on)."""
    legacy = conn.execute(
        "SELECT to_regclass('timescaledb_information.compression_settings') IS NOT NULL"
    ).fetchone()
    if legacy and legacy[0]:
        columns = conn.execute(
            """SELECT attname, segmentby_column_index, orderby_column_index, orderby_asc
               FROM timescaledb_information.compression_settings
               WHERE hypertable_schema = current_schema() AND hypertable_name = 'telemetry'"""
        ).fetchall()
        segmentby = tuple(c[0] for c in sorted(columns, key=lambda c: c[1] or 0) if c[1])
        orderby = tuple(
            c[0] if c[3] else f"{c[0]} DESC"
            for c in sorted(columns, key=lambda c: c[2] or 0)
            if c[2]
        )
        return segmentby, orderby
    row = conn.execute(
        """SELECT segmentby, orderby FROM timescaledb_information.hypertable_compression_settings
           WHERE hypertable = 'telemetry'::regclass"""
    ).fetchone()
    return settings_from_text(*row) if row else ((), ())


def bring_in_line(
    conn: psycopg.Connection,
    version: Version,
    policies: TimescalePolicies,
    late_data: timedelta,
    *,
    backfill: bool,
) -> None:
    """Compression settings, policies and real-time aggregation as configured, in one
    transaction; then, when asked, materialize ``alerts_hourly`` in full (``conn`` must be in
    autocommit mode: the refresh is a procedure that refuses a transaction block)."""
    plan = setup(version, policies, late_data, read_telemetry_compression(conn))
    for note in plan.notes:
        log.warning("%s", note)
    with conn.transaction():
        for statement in plan.statements:
            conn.execute(statement)
    log.info(
        "TimescaleDB %s policies applied: %s (telemetry orderby %s)",
        version,
        policies.model_dump(mode="json"),
        ", ".join(TELEMETRY_ORDERBY),
    )
    if backfill:
        conn.execute(backfill_statement())
        log.info("alerts_hourly materialized from all stored alerts")
