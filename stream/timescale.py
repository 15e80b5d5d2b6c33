"""TimescaleDB policies from config: retention, compression and aggregate refresh.

Applied at every start (after migrations) when the extension is present, so that changing
``services.database.timescale`` in the YAML takes effect without a new migration. Each
policy is removed and added again: Timescale has no "alter policy" for these.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import psycopg

from citywatch.config.services import TimescalePolicies

log = logging.getLogger(__name__)


def _interval(value: timedelta) -> str:
    return f"INTERVAL '{int(value.total_seconds())} seconds'"


def policy_statements(policies: TimescalePolicies) -> list[str]:
    """The SQL that brings the database's policies in line with ``policies``."""
    refresh = policies.aggregate_refresh
    return [
        "SELECT remove_retention_policy('alerts', if_exists => TRUE)",
        f"SELECT add_retention_policy('alerts', {_interval(policies.alerts_retention)})",
        "SELECT remove_retention_policy('telemetry', if_exists => TRUE)",
        f"SELECT add_retention_policy('telemetry', {_interval(policies.telemetry_retention)})",
        "SELECT remove_compression_policy('telemetry', if_exists => TRUE)",
        f"SELECT add_compression_policy('telemetry', {_interval(policies.telemetry_compress_after)})",
        "SELECT remove_continuous_aggregate_policy('alerts_hourly', if_exists => TRUE)",
        "SELECT add_continuous_aggregate_policy('alerts_hourly',"
        f" start_offset => {_interval(max(timedelta(days=3), refresh * 4))},"
        f" end_offset => {_interval(timedelta(hours=1))},"
        f" schedule_interval => {_interval(refresh)})",
    ]


def apply_policies(database_url: str, policies: TimescalePolicies) -> None:
    """Apply the policies in one transaction (call only when TimescaleDB is present)."""
    with psycopg.connect(database_url) as conn, conn.transaction():
        for statement in policy_statements(policies):
            conn.execute(statement)
    log.info("TimescaleDB policies applied: %s", policies.model_dump(mode="json"))
