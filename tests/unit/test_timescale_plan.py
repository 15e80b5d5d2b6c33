"""Whether citywatch uses TimescaleDB, decided from the facts the catalog queries return, and
which migrations a site that installs TimescaleDB later still needs (issue 21)."""

from __future__ import annotations

import pytest

from citywatch.stream.migrate import Migration, pending_timescale_halves
from citywatch.stream.timescale_plan import ServerFacts, Version, decide, preloaded

SUPERUSER_READY = ServerFacts(
    installed=None,
    available="2.17.2",
    preload_libraries="timescaledb",
    disable_load="off",
    superuser=True,
    trusted=False,
    may_create=True,
)


def facts(**changes: object) -> ServerFacts:
    """The facts of a server ready for TimescaleDB, with some changed."""
    values = {**SUPERUSER_READY.__dict__, **changes}
    return ServerFacts(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("2.13.1", Version(2, 13, 1)),
        ("2.9", Version(2, 9, 0)),
        ("2.14.0-dev", Version(2, 14, 0)),
        (" 2.11.2 ", Version(2, 11, 2)),
    ],
)
def test_versions_parse_from_extversion(text: str, version: Version) -> None:
    """extversion texts, released or not, parse to numbers."""
    assert Version.parse(text) == version


def test_versions_compare_numerically_not_as_text() -> None:
    """2.9 is older than 2.11, which a text comparison gets wrong."""
    assert Version.parse("2.9.3") < Version.parse("2.11.0")
    assert str(Version.parse("2.9")) == "2.9.0"


def test_a_version_that_is_not_one_is_refused_by_name() -> None:
    """A text that is no version raises naming it."""
    with pytest.raises(ValueError, match="'latest'"):
        Version.parse("latest")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("timescaledb", True),
        ("pg_stat_statements, timescaledb", True),
        ("'timescaledb'", True),
        ('"timescaledb"', True),
        ("$libdir/timescaledb", True),
        ("timescaledb-2.13.1", True),
        ("", False),
        ("pg_stat_statements", False),
        ("timescaledb_toolkit", False),
    ],
)
def test_preload_setting_is_read_as_a_list(setting: str, expected: bool) -> None:
    """shared_preload_libraries names the library in any of its spellings, and nothing else counts."""
    assert preloaded(setting) is expected


@pytest.mark.parametrize(
    ("server", "use", "create", "reason_part"),
    [
        (facts(), True, True, "creating the extension"),
        (facts(installed="2.13.1"), True, False, "TimescaleDB 2.13.1"),
        (facts(installed="2.13.1", superuser=False), True, False, "TimescaleDB 2.13.1"),
        (facts(installed="2.13.1", preload_libraries=""), False, False, "not preloaded"),
        (facts(installed="1.7.5"), False, False, "ALTER EXTENSION timescaledb UPDATE"),
        (facts(available=None), False, False, "not installed on this server"),
        (facts(preload_libraries="pg_stat_statements"), False, False, "shared_preload_libraries"),
        (facts(superuser=False), False, False, "may not CREATE EXTENSION"),
        (facts(superuser=False, trusted=True, may_create=True), True, True, "creating"),
        (facts(superuser=False, trusted=True, may_create=False), False, False, "superuser"),
        (facts(available="1.7.5"), False, False, "older than 2.0.0"),
        (facts(installed="2.15.0", preload_libraries=None), True, False, "TimescaleDB 2.15.0"),
        (
            facts(installed="2.15.0", preload_libraries=None, disable_load=None),
            False,
            False,
            "its library is not preloaded",
        ),
        (facts(installed="2.15.0", disable_load="on"), False, False, "disable_load is on"),
        (facts(preload_libraries=None, disable_load=None), False, False, "not preloaded"),
        (facts(preload_libraries=None, superuser=False), False, False, "CREATE EXTENSION"),
    ],
)
def test_decision_follows_the_server_facts(
    server: ServerFacts, use: bool, create: bool, reason_part: str
) -> None:
    """Installed and preloaded is used; available needs the preload and the right to create it;
    otherwise plain PostgreSQL, with the reason and the fix in one line."""
    decision = decide(server)
    assert (decision.use, decision.create_extension) == (use, create)
    assert reason_part in decision.reason
    assert "\n" not in decision.reason


def test_a_server_without_timescaledb_is_a_note_and_a_thwarted_one_a_warning() -> None:
    """Only a server that has TimescaleDB's files but cannot use it is worth a warning."""
    assert decide(facts(available=None)).intended is False
    assert decide(facts(preload_libraries="")).intended is True
    assert decide(facts(superuser=False)).intended is True


def test_the_decision_carries_the_version_it_will_gate_features_on() -> None:
    """The installed version wins over the server's default version once created."""
    assert decide(facts(installed="2.10.1", available="2.17.2")).version == Version(2, 10, 1)
    assert decide(facts()).version == Version(2, 17, 2)
    assert decide(facts(available=None)).version is None


def migration(version: int, timescale: bool) -> Migration:
    """A migration with or without a TimescaleDB half."""
    half = f"SELECT create_hypertable('t{version}', 'time')" if timescale else None
    return Migration(version, f"m{version}", f"CREATE TABLE t{version} ()", half)


def test_upgrade_applies_only_the_skipped_timescale_halves_in_order() -> None:
    """Versions applied on plain PostgreSQL that have a TimescaleDB half are pending, oldest first;
    those applied with TimescaleDB, without a half, or not applied yet are not."""
    migrations = [migration(3, True), migration(1, True), migration(2, False), migration(4, True)]
    recorded = {1: False, 2: False, 3: False}
    pending = pending_timescale_halves(migrations, recorded)
    assert [m.version for m in pending] == [1, 3]
    assert pending_timescale_halves(migrations, {1: True, 2: True, 3: True}) == []
