"""Every TimescaleDB statement citywatch runs, pinned per version and config (issue 21): the
extension is not installable here, so these are checked on a real server by the steps in
deploy/timescaledb.md."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from citywatch.config.services import TimescalePolicies
from citywatch.stream.migrate import bundled_migrations
from citywatch.stream.timescale_plan import Version
from citywatch.stream.timescale_sql import (
    CompressionState,
    TimescalePolicyError,
    backfill_statement,
    refresh_window,
    settings_from_text,
    setup,
)

WEEK = timedelta(days=7)
FRESH = CompressionState(enabled=False)
CONSISTENT = CompressionState(True, ("device_id",), ("time DESC", "id"), compressed_chunks=3)
OLD_SETTINGS = CompressionState(True, ("device_id",), ("time DESC",), compressed_chunks=0)
COMPRESS = (
    "ALTER TABLE telemetry SET (timescaledb.compress,"
    " timescaledb.compress_segmentby = 'device_id',"
    " timescaledb.compress_orderby = 'time DESC, id')"
)
DEFAULT_POLICIES_217 = (
    "SELECT remove_retention_policy('alerts', if_exists => TRUE)",
    "SELECT add_retention_policy('alerts', INTERVAL '63072000 seconds')",
    "SELECT remove_retention_policy('telemetry', if_exists => TRUE)",
    "SELECT add_retention_policy('telemetry', INTERVAL '15552000 seconds')",
    "SELECT remove_compression_policy('telemetry', if_exists => TRUE)",
    "SELECT add_compression_policy('telemetry', INTERVAL '604800 seconds')",
    "SELECT remove_continuous_aggregate_policy('alerts_hourly', if_exists => TRUE)",
    "SELECT add_continuous_aggregate_policy('alerts_hourly',"
    " start_offset => INTERVAL '608400 seconds', end_offset => INTERVAL '3600 seconds',"
    " schedule_interval => INTERVAL '900 seconds')",
    "ALTER MATERIALIZED VIEW alerts_hourly SET (timescaledb.materialized_only = false)",
)


def test_a_fresh_database_on_a_current_release_gets_every_statement_in_order() -> None:
    """On 2.17 with defaults: compression consistent with the key, then every policy, real-time on."""
    plan = setup(Version(2, 17, 2), TimescalePolicies(), WEEK, FRESH)
    assert plan.statements == (COMPRESS, *DEFAULT_POLICIES_217)
    assert plan.notes == ()


def test_compression_keeps_every_unique_key_column_in_segmentby_or_orderby() -> None:
    """Each column of telemetry's primary key, as its migration declares it, is a segmentby or
    orderby column of the ALTER that runs (TimescaleDB's rule for conflict checks)."""
    base = bundled_migrations()[0].sql
    table = base[base.index("CREATE TABLE IF NOT EXISTS telemetry") :]
    key = re.search(r"PRIMARY KEY \(([^)]*)\)", table)
    assert key is not None
    statement = setup(Version(2, 17, 0), TimescalePolicies(), WEEK, FRESH).statements[0]
    settings = re.findall(r"compress_(?:segmentby|orderby) = '([^']*)'", statement)
    columns = {part.split()[0] for setting in settings for part in setting.split(",")}
    assert {c.strip() for c in key.group(1).split(",")} <= columns


def test_settings_already_right_are_not_altered_again() -> None:
    """Matching settings need no ALTER (before 2.14 it fails once chunks are compressed)."""
    plan = setup(Version(2, 12, 0), TimescalePolicies(), WEEK, CONSISTENT)
    assert not any(s.startswith("ALTER TABLE telemetry") for s in plan.statements)
    assert plan.notes == ()


def test_old_settings_without_compressed_chunks_are_brought_in_line() -> None:
    """The segmentby-only settings of the first migration are replaced while nothing is compressed."""
    plan = setup(Version(2, 11, 0), TimescalePolicies(), WEEK, OLD_SETTINGS)
    assert plan.statements[0] == COMPRESS


@pytest.mark.parametrize(
    ("version", "altered"), [(Version(2, 13, 1), False), (Version(2, 14, 0), True)]
)
def test_old_settings_with_compressed_chunks_change_only_from_2_14(
    version: Version, altered: bool
) -> None:
    """Before 2.14 settings cannot change over compressed chunks: a note says what to do."""
    old = CompressionState(True, ("device_id",), ("time DESC",), compressed_chunks=5)
    plan = setup(version, TimescalePolicies(), WEEK, old)
    assert (plan.statements[0] == COMPRESS) is altered
    assert bool(plan.notes) is not altered
    if plan.notes:
        assert "decompress them or upgrade to 2.14.0" in plan.notes[0]


@pytest.mark.parametrize("version", [Version(2, 7, 2), Version(2, 10, 3)])
def test_below_2_11_telemetry_is_not_compressed_and_the_log_says_why(version: Version) -> None:
    """ON CONFLICT into compressed chunks needs 2.11: no compression settings or policy below."""
    plan = setup(version, TimescalePolicies(), WEEK, OLD_SETTINGS)
    assert not any("compress_segmentby" in s for s in plan.statements)
    assert not any(s.startswith("SELECT add_compression_policy") for s in plan.statements)
    assert "SELECT remove_compression_policy('telemetry', if_exists => TRUE)" in plan.statements
    assert "INSERT … ON CONFLICT into compressed chunks needs 2.11.0" in plan.notes[0]


def test_below_2_11_already_compressed_chunks_are_named_with_the_fix() -> None:
    """Chunks compressed by hand on an old release are reported with the decompress statement."""
    old = CompressionState(True, ("device_id",), ("time DESC",), compressed_chunks=2)
    plan = setup(Version(2, 10, 0), TimescalePolicies(), WEEK, old)
    assert "2 telemetry chunks are already compressed" in plan.notes[1]
    assert "decompress_chunk" in plan.notes[1]


@pytest.mark.parametrize(
    ("version", "statement"),
    [
        (Version(2, 7, 0), "SELECT remove_continuous_aggregate_policy('alerts_hourly', if_not_exists => TRUE)"),
        (Version(2, 8, 0), "SELECT remove_continuous_aggregate_policy('alerts_hourly', if_exists => TRUE)"),
    ],
)  # fmt: skip
def test_the_aggregate_policy_removal_uses_the_argument_name_of_its_version(
    version: Version, statement: str
) -> None:
    """remove_continuous_aggregate_policy's if_exists was called if_not_exists before 2.8."""
    assert statement in setup(version, TimescalePolicies(), WEEK, FRESH).statements


@pytest.mark.parametrize("version", [Version(2, 0, 0), Version(2, 12, 0), Version(2, 13, 0)])
def test_real_time_aggregation_is_set_explicitly_on_every_version(version: Version) -> None:
    """materialized_only = false on every release (the default flipped to true in 2.13)."""
    plan = setup(version, TimescalePolicies(), WEEK, FRESH)
    assert plan.statements[-1] == (
        "ALTER MATERIALIZED VIEW alerts_hourly SET (timescaledb.materialized_only = false)"
    )


def test_policies_follow_the_config() -> None:
    """Changed retention and compression ages reach their add_*_policy statements."""
    policies = TimescalePolicies(
        telemetry_retention=timedelta(days=30), telemetry_compress_after=timedelta(days=2)
    )
    sql = setup(Version(2, 17, 0), policies, WEEK, CONSISTENT).statements
    assert "SELECT add_retention_policy('telemetry', INTERVAL '2592000 seconds')" in sql
    assert "SELECT add_compression_policy('telemetry', INTERVAL '172800 seconds')" in sql
    assert sql.index("SELECT remove_retention_policy('telemetry', if_exists => TRUE)") < sql.index(
        "SELECT add_retention_policy('telemetry', INTERVAL '2592000 seconds')"
    )


@pytest.mark.parametrize(
    ("late_data", "refresh", "start"),
    [
        (timedelta(days=7), timedelta(minutes=15), timedelta(days=7, hours=1)),
        (timedelta(days=30), timedelta(minutes=15), timedelta(days=30, hours=1)),
        (timedelta(minutes=10), timedelta(minutes=15), timedelta(hours=3)),
        (timedelta(minutes=10), timedelta(hours=6), timedelta(hours=8)),
    ],
)
def test_the_refresh_window_reaches_back_past_late_data(
    late_data: timedelta, refresh: timedelta, start: timedelta
) -> None:
    """A backlog up to workflow.late_data old lands inside the window; the window spans at least
    two buckets and a whole schedule interval; the open hour is left to real-time aggregation."""
    window = refresh_window(TimescalePolicies(aggregate_refresh=refresh), late_data)
    assert window.start_offset == start
    assert window.end_offset == timedelta(hours=1)
    assert window.schedule_interval == refresh


def test_retention_inside_the_refresh_window_is_refused() -> None:
    """Dropping alerts a refresh still covers would erase their hourly counts: refused, with the fix."""
    policies = TimescalePolicies(alerts_retention=timedelta(days=5))
    with pytest.raises(TimescalePolicyError, match="raise alerts_retention or lower late_data"):
        setup(Version(2, 17, 0), policies, WEEK, FRESH)


def test_the_backfill_materializes_the_whole_aggregate() -> None:
    """Created WITH NO DATA, alerts_hourly is refreshed over all time once."""
    assert backfill_statement() == "CALL refresh_continuous_aggregate('alerts_hourly', NULL, NULL)"


def test_migration_files_leave_version_dependent_statements_to_code() -> None:
    """The .timescale.sql files make hypertables and the aggregate only: the extension is created
    by the runner where the role may, and compression is set per version by timescale_sql."""
    halves = "\n".join(m.timescale_sql or "" for m in bundled_migrations())
    code = [line for line in halves.splitlines() if not line.lstrip().startswith("--")]
    assert not any("CREATE EXTENSION" in line or "compress" in line for line in code)
    assert halves.count("migrate_data => TRUE") == 2
    assert "timescaledb.materialized_only = false" in halves


@pytest.mark.parametrize(
    ("segmentby", "orderby", "expected"),
    [
        ("device_id", '"time" DESC,id', (("device_id",), ("time DESC", "id"))),
        ("device_id", "time DESC NULLS FIRST, id ASC NULLS LAST", (("device_id",), ("time DESC", "id"))),
        ("device_id", "time DESC NULLS LAST", (("device_id",), ("time DESC NULLS LAST",))),
        (None, None, ((), ())),
    ],
)  # fmt: skip
def test_settings_read_as_text_compare_equal_to_ours(
    segmentby: str | None, orderby: str | None, expected: tuple[tuple[str, ...], tuple[str, ...]]
) -> None:
    """hypertable_compression_settings' spelling (quotes, default NULLS) reads as ours, so equal
    settings are not altered again; a different NULLS placement stays different."""
    assert settings_from_text(segmentby, orderby) == expected
