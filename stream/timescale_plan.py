"""Whether to use TimescaleDB on this server, decided from what the server reports.

Pure: the facts come from a few catalog queries (:func:`citywatch.stream.timescale.read_facts`)
and the decision is a function of them alone, so every case (installed, available but not
preloaded, no right to ``CREATE EXTENSION``, too old) is a table-driven unit test. Being
listed in ``pg_available_extensions`` is not enough: TimescaleDB's library must be in
``shared_preload_libraries`` and an untrusted extension needs a superuser to create it;
without either, the migration takes the plain-PostgreSQL path instead of failing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class Version:
    """A TimescaleDB release, compared numerically (``2.9`` < ``2.11``, unlike text)."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> Version:
        """``2.13.1``, ``2.14.0-dev`` or ``2.9`` as a Version; a ValueError names the text."""
        match = _VERSION.match(text.strip())
        if not match:
            raise ValueError(f"not a TimescaleDB version: {text!r}")
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


# The oldest release whose API these migrations use: add_*_policy, CREATE MATERIALIZED VIEW …
# WITH (timescaledb.continuous) and the policy job framework all arrived in 2.0.
MINIMUM = Version(2, 0, 0)


@dataclass(frozen=True)
class ServerFacts:
    """What the server says about TimescaleDB, as the catalog queries return it."""

    installed: str | None
    """``extversion`` from ``pg_extension``: created in this database, at this version."""
    available: str | None
    """``default_version`` from ``pg_available_extensions``: its files are on the server."""
    preload_libraries: str | None
    """``shared_preload_libraries`` verbatim; None where this role may not read it (it needs
    superuser or ``pg_read_all_settings``)."""
    disable_load: str | None
    """``current_setting('timescaledb.disable_load', true)``: a setting TimescaleDB's preloaded
    loader defines, so any role sees whether the library is loaded (None: it is not)."""
    superuser: bool
    """Whether the connected role is a superuser (``rolsuper``)."""
    trusted: bool
    """Whether the available version is marked ``trusted`` (PostgreSQL 13+); TimescaleDB is not."""
    may_create: bool
    """``has_database_privilege(current_database(), 'CREATE')``: enough for a trusted extension."""


@dataclass(frozen=True)
class Decision:
    """Use TimescaleDB or not, whether to create the extension first, and why, in one line."""

    use: bool
    create_extension: bool
    version: Version | None
    reason: str
    intended: bool
    """The server has TimescaleDB's files: not using it is worth a warning, not a note."""


def preloaded(shared_preload_libraries: str) -> bool:
    """Whether the setting names TimescaleDB's library (``'timescaledb'``, possibly quoted,
    with a path or a versioned file name such as ``timescaledb-2.13.1``)."""
    for entry in shared_preload_libraries.split(","):
        name = entry.strip().strip('"').strip("'").rsplit("/", 1)[-1]
        if name == "timescaledb" or name.startswith("timescaledb-"):
            return True
    return False


def library_preloaded(facts: ServerFacts) -> bool:
    """The preload setting where this role may read it; otherwise the loader's own setting,
    which exists only where the library was preloaded."""
    if facts.preload_libraries is not None:
        return preloaded(facts.preload_libraries)
    return facts.disable_load is not None


_PRELOAD_FIX = (
    "add timescaledb to shared_preload_libraries in postgresql.conf and restart PostgreSQL,"
    " then run `citywatch db migrate`"
)


def decide(facts: ServerFacts) -> Decision:
    """The decision and its one-line reason; never raises, whatever the server reports."""
    if facts.installed is not None:
        version = Version.parse(facts.installed)
        if not library_preloaded(facts):
            return _plain(
                f"timescaledb {version} is created in this database but its library is not"
                f" preloaded: {_PRELOAD_FIX}; using plain PostgreSQL",
                intended=True,
            )
        if facts.disable_load == "on":
            return _plain(
                "timescaledb.disable_load is on for this role or database: reset it (ALTER ROLE"
                " … RESET timescaledb.disable_load); using plain PostgreSQL",
                intended=True,
            )
        if version < MINIMUM:
            return _plain(
                f"timescaledb {version} is older than {MINIMUM}: run ALTER EXTENSION timescaledb"
                " UPDATE; using plain PostgreSQL",
                intended=True,
            )
        return Decision(True, False, version, f"TimescaleDB {version}", intended=True)
    if facts.available is None:
        return _plain(
            "timescaledb is not installed on this server (not in pg_available_extensions):"
            " plain PostgreSQL with time indexes, no hypertables, compression or retention",
            intended=False,
        )
    version = Version.parse(facts.available)
    if not library_preloaded(facts):
        return _plain(
            f"timescaledb {version} is installed on the server but not preloaded: {_PRELOAD_FIX};"
            " using plain PostgreSQL",
            intended=True,
        )
    if not (facts.superuser or (facts.trusted and facts.may_create)):
        return _plain(
            f"timescaledb {version} is available but this role may not CREATE EXTENSION"
            " (it needs a superuser): run `CREATE EXTENSION timescaledb;` as a superuser in"
            " this database, then `citywatch db migrate`; using plain PostgreSQL",
            intended=True,
        )
    if version < MINIMUM:
        return _plain(
            f"timescaledb {version} on the server is older than {MINIMUM}: install a newer"
            " release; using plain PostgreSQL",
            intended=True,
        )
    return Decision(True, True, version, f"TimescaleDB {version} (creating the extension)", True)


def _plain(reason: str, *, intended: bool) -> Decision:
    return Decision(False, False, None, reason, intended)
