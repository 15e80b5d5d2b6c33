"""The TimescaleDB statements citywatch runs, as a pure function of version, config and state.

Every statement is produced here from the extension's version (each feature gated on the
release that brought it), ``services.database.timescale`` and ``workflow.late_data``, and the
telemetry table's current compression state, so unit tests pin each one without a server
(TimescaleDB is not installable from this project's package sources). The I/O shell,
:mod:`citywatch.stream.timescale`, reads the state and runs what comes out.

Version gates (release notes and API reference of TimescaleDB):

- 2.8: ``remove_continuous_aggregate_policy`` takes ``if_exists`` (``if_not_exists`` before).
- 2.11: unique constraints and ``INSERT … ON CONFLICT`` on compressed chunks. The stream
  writes telemetry with ``ON CONFLICT (id, time) DO NOTHING``; below 2.11 a late reading for a
  compressed chunk fails its whole batch, so telemetry is not compressed there.
- 2.13: continuous aggregates are no longer real-time by default; ``alerts_hourly`` sets
  ``materialized_only = false`` explicitly on every version, so the open hour is live.
- 2.14: compression settings may change while compressed chunks exist (before, the
  ``ALTER TABLE … SET`` fails, even with unchanged settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from citywatch.config.services import TimescalePolicies
from citywatch.stream.timescale_plan import Version

AGGREGATE = "alerts_hourly"
BUCKET = timedelta(hours=1)  # alerts_hourly's time_bucket width
# Every column of telemetry's unique key (id, time) is a segmentby or orderby column, as
# TimescaleDB asks, so a conflict check on a compressed chunk reads each batch's min/max of
# time and id instead of decompressing every batch; device_id stays the segment because
# telemetry is read per device.
TELEMETRY_SEGMENTBY = ("device_id",)
TELEMETRY_ORDERBY = ("time DESC", "id")

CAGG_POLICY_IF_EXISTS = Version(2, 8, 0)
UPSERT_INTO_COMPRESSED = Version(2, 11, 0)
REALTIME_OFF_BY_DEFAULT = Version(2, 13, 0)
SETTINGS_CHANGE_WITH_COMPRESSED_CHUNKS = Version(2, 14, 0)


class TimescalePolicyError(ValueError):
    """The configured policies contradict each other (raised before anything is changed)."""


@dataclass(frozen=True)
class CompressionState:
    """Telemetry's compression settings as the server reports them."""

    enabled: bool
    segmentby: tuple[str, ...] = ()
    orderby: tuple[str, ...] = ()
    compressed_chunks: int = 0


def settings_from_text(
    segmentby: str | None, orderby: str | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Segmentby and orderby as ``hypertable_compression_settings`` (2.14+) spells them
    (``device_id``, ``"time" DESC,id``), in the form :data:`TELEMETRY_ORDERBY` uses: quotes
    and the default NULLS placement dropped, so equal settings compare equal."""

    def column(part: str) -> str:
        words = part.replace('"', "").split()
        descending = len(words) > 1 and words[1].upper() == "DESC"
        default_nulls = ["NULLS", "FIRST" if descending else "LAST"]
        if [w.upper() for w in words[-2:]] == default_nulls:
            words = words[:-2]
        return " ".join([words[0], *(w.upper() for w in words[1:] if w.upper() != "ASC")])

    def split(text: str | None) -> tuple[str, ...]:
        return tuple(column(p) for p in (text or "").split(",") if p.strip())

    return split(segmentby), split(orderby)


@dataclass(frozen=True)
class RefreshWindow:
    """The window the refresh policy materializes, as offsets back from now."""

    start_offset: timedelta
    end_offset: timedelta
    schedule_interval: timedelta


@dataclass(frozen=True)
class Setup:
    """The statements to run in one transaction, and what to tell the operator."""

    statements: tuple[str, ...]
    notes: tuple[str, ...]


def interval(value: timedelta) -> str:
    """A SQL interval literal in whole seconds (exact for any Duration the config takes)."""
    return f"INTERVAL '{int(value.total_seconds())} seconds'"


def refresh_window(policies: TimescalePolicies, late_data: timedelta) -> RefreshWindow:
    """How far back each refresh looks: an alert may arrive up to ``late_data`` after its
    event (a gateway's outbox replays its backlog), so the window reaches one bucket beyond
    that; a refresh only recomputes buckets the writes invalidated, so a wide window costs
    nothing when nothing late came. The newest hour is left to real-time aggregation."""
    end = BUCKET
    schedule = policies.aggregate_refresh
    start = max(late_data + BUCKET, end + schedule + BUCKET, end + 2 * BUCKET)
    return RefreshWindow(start, end, schedule)


def verify_retention_outlasts_refresh(policies: TimescalePolicies, window: RefreshWindow) -> None:
    """Retention must drop alerts only behind the refresh window: a refresh over a range
    whose raw rows are gone would delete that range's hourly counts."""
    if policies.alerts_retention <= window.start_offset:
        raise TimescalePolicyError(
            f"services.database.timescale.alerts_retention ({policies.alerts_retention}) must"
            f" be longer than the aggregate refresh window ({window.start_offset}, from"
            " workflow.late_data + 1 h): raise alerts_retention or lower late_data"
        )


def compression_setup(version: Version, state: CompressionState) -> tuple[list[str], list[str]]:
    """The ``ALTER TABLE`` that makes telemetry's compression settings match the unique key
    (when they differ and may change), and notes for what cannot be done on this version."""
    if version < UPSERT_INTO_COMPRESSED:
        notes = [
            f"TimescaleDB {version}: telemetry is not compressed (INSERT … ON CONFLICT into"
            f" compressed chunks needs {UPSERT_INTO_COMPRESSED}); upgrade the extension to"
            " compress it"
        ]
        if state.compressed_chunks:
            notes.append(
                f"{state.compressed_chunks} telemetry chunks are already compressed: late"
                " readings for them fail on this version; decompress them"
                " (SELECT decompress_chunk(c) FROM show_chunks('telemetry') c) or upgrade"
            )
        return [], notes
    wanted = (TELEMETRY_SEGMENTBY, TELEMETRY_ORDERBY)
    if state.enabled and (state.segmentby, state.orderby) == wanted:
        return [], []
    if state.compressed_chunks and version < SETTINGS_CHANGE_WITH_COMPRESSED_CHUNKS:
        return [], [
            f"telemetry compression is segmentby {','.join(state.segmentby) or '-'} orderby"
            f" {', '.join(state.orderby) or '-'}, not {','.join(TELEMETRY_SEGMENTBY)} /"
            f" {', '.join(TELEMETRY_ORDERBY)}; TimescaleDB {version} cannot change it while"
            f" {state.compressed_chunks} chunks are compressed: decompress them or upgrade to"
            f" {SETTINGS_CHANGE_WITH_COMPRESSED_CHUNKS}"
        ]
    return [
        "ALTER TABLE telemetry SET (timescaledb.compress,"
        f" timescaledb.compress_segmentby = '{','.join(TELEMETRY_SEGMENTBY)}',"
        f" timescaledb.compress_orderby = '{', '.join(TELEMETRY_ORDERBY)}')"
    ], []


def policy_statements(
    version: Version, policies: TimescalePolicies, window: RefreshWindow
) -> list[str]:
    """Retention, compression and refresh policies as configured, each removed and added
    again (TimescaleDB has no "alter policy" for them), and real-time aggregation on."""
    cagg_if_exists = "if_exists" if version >= CAGG_POLICY_IF_EXISTS else "if_not_exists"
    statements = [
        "SELECT remove_retention_policy('alerts', if_exists => TRUE)",
        f"SELECT add_retention_policy('alerts', {interval(policies.alerts_retention)})",
        "SELECT remove_retention_policy('telemetry', if_exists => TRUE)",
        f"SELECT add_retention_policy('telemetry', {interval(policies.telemetry_retention)})",
        "SELECT remove_compression_policy('telemetry', if_exists => TRUE)",
    ]
    if version >= UPSERT_INTO_COMPRESSED:
        statements.append(
            "SELECT add_compression_policy('telemetry',"
            f" {interval(policies.telemetry_compress_after)})"
        )
    statements += [
        f"SELECT remove_continuous_aggregate_policy('{AGGREGATE}', {cagg_if_exists} => TRUE)",
        f"SELECT add_continuous_aggregate_policy('{AGGREGATE}',"
        f" start_offset => {interval(window.start_offset)},"
        f" end_offset => {interval(window.end_offset)},"
        f" schedule_interval => {interval(window.schedule_interval)})",
        f"ALTER MATERIALIZED VIEW {AGGREGATE} SET (timescaledb.materialized_only = false)",
    ]
    return statements


def setup(
    version: Version,
    policies: TimescalePolicies,
    late_data: timedelta,
    telemetry: CompressionState,
) -> Setup:
    """Everything that brings a TimescaleDB database in line with the config, in order:
    compression settings before the compression policy that uses them."""
    window = refresh_window(policies, late_data)
    verify_retention_outlasts_refresh(policies, window)
    compression, notes = compression_setup(version, telemetry)
    return Setup(tuple(compression + policy_statements(version, policies, window)), tuple(notes))


def backfill_statement() -> str:
    """Materialize all of ``alerts_hourly`` once (it is created ``WITH NO DATA``, and the
    policy only looks back its window). A procedure: it cannot run inside a transaction."""
    return f"CALL refresh_continuous_aggregate('{AGGREGATE}', NULL, NULL)"
