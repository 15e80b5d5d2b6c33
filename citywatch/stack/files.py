"""Writing the stack's files with the owner and mode each service needs.

When citywatch runs as root, PostgreSQL and Mosquitto run as their own system users, so
their directories and secret-bearing files must belong to those users and no one else.
"""

from __future__ import annotations

import os
from pathlib import Path

from citywatch.stack.processes import ServiceUser


def own(path: Path, owner: ServiceUser | None, mode: int) -> None:
    """Set `path`'s mode and, when a service user is in play, hand it to that user."""
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)


def make_dir(path: Path, owner: ServiceUser | None, mode: int = 0o700) -> Path:
    """Create `path` (if needed) as a directory only `owner` can use."""
    path.mkdir(parents=True, exist_ok=True)
    own(path, owner, mode)
    return path


def write_file(path: Path, text: str, owner: ServiceUser | None, mode: int = 0o600) -> bool:
    """Atomically replace `path` with `text`, owned by `owner` with `mode`.

    The file is created with its final mode before any content is written, so a secret is
    never readable by others, not even for a moment. Returns whether the content changed.
    """
    try:
        changed = path.read_text() != text
    except FileNotFoundError:
        changed = True
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    own(tmp, owner, mode)
    os.replace(tmp, path)
    return changed


def touch(path: Path, owner: ServiceUser | None, mode: int = 0o640) -> None:
    """Create `path` if missing and give it to `owner` (a log file the service opens itself)."""
    path.touch(exist_ok=True)
    own(path, owner, mode)
