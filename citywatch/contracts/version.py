"""The schema version carried by every message as ``"v": "MAJOR.MINOR"``.

A reader accepts any minor version of its own major (new optional fields are ignored) and
refuses another major with :class:`UnsupportedVersion`, so a gateway fleet can be upgraded
one box at a time.
"""

from citywatch.contracts.errors import UnsupportedVersion

SCHEMA_MAJOR = 1
SCHEMA_MINOR = 2
SCHEMA_VERSION = f"{SCHEMA_MAJOR}.{SCHEMA_MINOR}"


def check_version(version: object) -> None:
    """Raise :class:`UnsupportedVersion` unless ``version`` is ``"1.x"``."""
    if not isinstance(version, str):
        raise UnsupportedVersion(f"schema version must be a string like '1.0', got {version!r}")
    major, _, minor = version.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise UnsupportedVersion(f"schema version must look like 'MAJOR.MINOR', got {version!r}")
    if int(major) != SCHEMA_MAJOR:
        raise UnsupportedVersion(
            f"schema major version {major} is not supported (this build reads {SCHEMA_MAJOR}.x);"
            " upgrade citywatch on the receiving side"
        )
