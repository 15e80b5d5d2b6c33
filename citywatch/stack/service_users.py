"""Who the stack's services run as: as citywatch itself, unless citywatch runs as root, when
PostgreSQL (and Mosquitto, where its system user exists) drop to their own users; and a data
directory those users can reach."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from citywatch.stack import processes
from citywatch.stack.errors import StackError
from citywatch.stack.processes import ServiceUser


@dataclass(frozen=True)
class ServiceUsers:
    """Who each service runs as: None means as citywatch itself (always, unless root)."""

    mqtt: ServiceUser | None
    kafka: ServiceUser | None
    postgres: ServiceUser | None

    @classmethod
    def for_this_process(cls) -> ServiceUsers:
        if not processes.running_as_root():
            return cls(None, None, None)
        postgres = ServiceUser.lookup("postgres")
        if postgres is None:
            raise StackError(
                "PostgreSQL refuses to run as root, and this machine has no 'postgres' system "
                "user to run it as: create one (`useradd --system --home /var/lib/postgresql "
                "postgres`) or run citywatch as an unprivileged user."
            )
        # Mosquitto falls back to root (`user root` in its config) where the Debian package's
        # `mosquitto` user is missing. Tansu stays with citywatch's user: its binary is
        # unpacked under that user's home (~/.calfkit/bin), and memory storage writes no files.
        return cls(ServiceUser.lookup("mosquitto"), None, postgres)

    def distinct(self) -> list[ServiceUser]:
        users = [u for u in (self.mqtt, self.kafka, self.postgres) if u is not None]
        return list({u.uid: u for u in users}.values())


def prepare_data_dir(data_dir: Path, users: ServiceUsers) -> None:
    """Create the data directory; let the service users pass through it, nothing more."""
    data_dir.mkdir(parents=True, exist_ok=True)
    service_users = users.distinct()
    # 0711: service users may enter (to reach their own subdirectories), not list.
    os.chmod(data_dir, 0o711 if service_users else 0o700)
    for user in service_users:
        blocked = processes.unreachable_ancestor(data_dir, user)
        if blocked is not None:
            mode = oct(blocked.stat().st_mode & 0o777)
            raise StackError(
                f"The stack's services run as the unprivileged user '{user.name}' "
                f"(citywatch runs as root), and that user cannot reach {data_dir}: "
                f"{blocked} has mode {mode}. Choose a data directory it can reach (the "
                f"default /var/lib/citywatch/stack, or one under /tmp), or allow passage "
                f"with `chmod o+x {blocked}`."
            )
