"""Schema migrations on the real PostgreSQL of the embedded stack, and the TimescaleDB
statements by inspection (the extension is not installable from this project's sources)."""

from __future__ import annotations

import re

import psycopg
import pytest

from citywatch.stream.migrate import bundled_migrations, migrate

pytestmark = pytest.mark.integration


def test_migrate_is_idempotent_and_says_plain_postgres(stack) -> None:  # type: ignore[no-untyped-def]
    """A second run applies nothing; without the extension no hypertable is attempted."""
    migrate(stack.endpoints.database_url)
    again = migrate(stack.endpoints.database_url)
    assert again.applied == ()
    assert again.timescale is False
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


def test_timescale_policies_follow_the_config() -> None:
    """Retention, compression and refresh policies are re-applied from config on every start."""
    from datetime import timedelta

    from citywatch.config.services import TimescalePolicies
    from citywatch.stream.timescale import policy_statements

    sql = policy_statements(TimescalePolicies(telemetry_retention=timedelta(days=30)))
    assert "SELECT add_retention_policy('telemetry', INTERVAL '2592000 seconds')" in sql
    assert sql.index("SELECT remove_retention_policy('telemetry', if_exists => TRUE)") < sql.index(
        "SELECT add_retention_policy('telemetry', INTERVAL '2592000 seconds')"
    )
    assert any(s.startswith("SELECT add_continuous_aggregate_policy('alerts_hourly'") for s in sql)
    assert any(s.startswith("SELECT add_compression_policy('telemetry'") for s in sql)
