"""Schema migrations on the real PostgreSQL of the embedded stack, and the TimescaleDB
statements by inspection (the extension is not installable from this project's sources;
tests/unit/test_timescale_sql.py pins each statement, deploy/timescaledb.md checks them)."""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from citywatch.config.services import TimescalePolicies
from citywatch.stream.migrate import (
    Migration,
    apply_skipped_halves,
    bundled_migrations,
    create_extension,
    migrate,
    pending_timescale_halves,
)
from citywatch.stream.timescale import read_facts
from citywatch.stream.timescale_plan import Decision, Version, decide, preloaded
from tests.conftest import fresh_database

pytestmark = pytest.mark.integration


def test_migrate_is_idempotent_and_says_plain_postgres(stack) -> None:  # type: ignore[no-untyped-def]
    """A second run applies nothing; without the extension no hypertable is attempted."""
    migrate(stack.endpoints.database_url)
    again = migrate(stack.endpoints.database_url)
    assert again.applied == ()
    assert again.timescale is False
    assert "timescaledb is not installed on this server" in again.reason
    assert again.current_version == max(m.version for m in bundled_migrations())
    with psycopg.connect(stack.endpoints.database_url) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        recorded = conn.execute(
            "SELECT version, timescale FROM schema_migrations ORDER BY version"
        ).fetchall()
    assert {"alerts", "telemetry", "devices", "schema_migrations"} <= tables
    assert recorded[0] == (1, False)


def test_alerts_key_holds_the_time_column_for_hypertables(stack) -> None:  # type: ignore[no-untyped-def]
    """TimescaleDB needs the time column in every unique index: the alerts key is (id, event_time)."""
    migrate(stack.endpoints.database_url)
    with psycopg.connect(stack.endpoints.database_url) as conn:
        key = conn.execute(
            """SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
               WHERE i.indrelid = 'alerts'::regclass AND i.indisprimary"""
        ).fetchone()
    assert key is not None and sorted(key[0]) == ["event_time", "id"]


def test_timescale_statements_target_tables_of_their_base_migration() -> None:
    """Every hypertable in a .timescale.sql is a table its base file creates, on a timestamptz column."""
    created: set[str] = set()
    hypertables: set[str] = set()
    for migration in bundled_migrations():
        created |= set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", migration.sql))
        if migration.timescale_sql is None:
            continue
        for table, column in re.findall(
            r"create_hypertable\('(\w+)', '(\w+)'", migration.timescale_sql
        ):
            assert table in created
            assert re.search(rf"\b{column}\s+timestamptz NOT NULL", migration.sql), (table, column)
            hypertables.add(table)
        for view in re.findall(
            r"CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)", migration.timescale_sql
        ):
            assert f"CREATE OR REPLACE VIEW {view}" in migration.sql, (
                "the plain-PostgreSQL path needs the same name"
            )
            assert "timescaledb.continuous" in migration.timescale_sql
    assert hypertables == {"alerts", "telemetry"}


def test_a_role_that_may_not_create_extensions_migrates_on_plain_postgres(stack) -> None:  # type: ignore[no-untyped-def]
    """An application role (no superuser, owner of its database) on a server without
    TimescaleDB preloaded gets the whole schema on plain PostgreSQL, and the report says why."""
    base = stack.endpoints.database_url
    suffix = uuid.uuid4().hex[:10]
    role, database, password = f"cw_app_{suffix}", f"cw_plain_{suffix}", secrets.token_hex(12)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )
    url = make_conninfo(base, dbname=database, user=role, password=password)
    try:
        with psycopg.connect(url) as conn:
            server = read_facts(conn)
        assert (server.superuser, server.may_create, server.installed) == (False, True, None)
        assert server.preload_libraries is None, "hidden from a role without pg_read_all_settings"
        assert server.disable_load is None, "no TimescaleDB loader in this server"
        with psycopg.connect(base) as conn:
            assert not preloaded(read_facts(conn).preload_libraries or "")

        report = migrate(url, policies=TimescalePolicies(), late_data=timedelta(days=7))

        assert report.timescale is False
        assert report.reason == decide(server).reason
        assert report.applied == tuple(m.version for m in bundled_migrations())
        with psycopg.connect(url) as conn:
            recorded = conn.execute(
                "SELECT bool_or(timescale), count(timescale_applied_at) FROM schema_migrations"
            ).fetchone()
            kind = conn.execute(
                "SELECT relkind FROM pg_class WHERE relname = 'alerts_hourly'"
            ).fetchone()
        assert recorded == (False, 0)
        assert kind == ("v",), "alerts_hourly stays the plain view"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_server_that_refuses_create_extension_leaves_plain_postgres(stack) -> None:  # type: ignore[no-untyped-def]
    """Should the server refuse CREATE EXTENSION the facts promised, the migration goes on
    on plain PostgreSQL with the server's reason instead of failing."""
    promised = Decision(True, True, Version(2, 17, 2), "TimescaleDB 2.17.2", intended=True)
    with psycopg.connect(stack.endpoints.database_url, autocommit=True) as conn:
        decision = create_extension(conn, promised)
        still_there = conn.execute("SELECT 1").fetchone()
    assert (decision.use, decision.create_extension, decision.version) == (False, False, None)
    assert decision.reason.startswith("CREATE EXTENSION timescaledb failed (")
    assert "timescaledb" in decision.reason.split("(", 1)[1]
    assert still_there == (1,)


def test_skipped_halves_run_once_and_are_recorded(stack) -> None:  # type: ignore[no-untyped-def]
    """The upgrade step runs each half skipped on plain PostgreSQL and records it, so the next
    migration finds none pending (plain SQL stands in for the TimescaleDB half here); an older
    migrations table gains the column that records it."""
    half = Migration(1, "alerts_telemetry_devices", "", "CREATE TABLE upgraded_marker (n int)")
    with fresh_database(stack, "cw_upgrade") as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE schema_migrations DROP COLUMN timescale_applied_at")
        migrate(url)  # a migrations table from before the upgrade path gains its column
        recorded = dict(conn.execute("SELECT version, timescale FROM schema_migrations").fetchall())
        pending = pending_timescale_halves([half], recorded)
        assert apply_skipped_halves(conn, pending) == [1]
        row = conn.execute(
            "SELECT timescale, timescale_applied_at IS NOT NULL FROM schema_migrations"
            " WHERE version = 1"
        ).fetchone()
        marker = conn.execute("SELECT to_regclass('upgraded_marker') IS NOT NULL").fetchone()
        again = dict(conn.execute("SELECT version, timescale FROM schema_migrations").fetchall())
    assert row == (True, True)
    assert marker == (True,)
    assert pending_timescale_halves([half], again) == []
