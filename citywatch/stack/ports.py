"""Free loopback ports for the stack's services.

A port picked by binding to port 0 can be taken by someone else before the service binds it;
the launcher handles that race by restarting a service that failed to bind on a new port.
Here we only pick, and tell whether a given port is free right now.
"""

from __future__ import annotations

import socket
from collections.abc import Collection

LOOPBACK = "127.0.0.1"


def is_port_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a TCP listener could bind `host:port` at this moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Match how the services bind (SO_REUSEADDR), so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(host: str = LOOPBACK, exclude: Collection[int] = ()) -> int:
    """Ask the kernel for a free ephemeral port on `host`, avoiding ports in `exclude`.

    `exclude` holds ports already handed to other services of this stack that may not be
    bound yet, so two services never get the same port.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port
    raise OSError(f"no free TCP port on {host} outside {sorted(exclude)}")


def choose_port(preferred: int | None, host: str = LOOPBACK, exclude: Collection[int] = ()) -> int:
    """Reuse `preferred` (the port a service had before) when it is free, else pick a new one.

    Keeping the port across `down`/`up` keeps the URLs operators and configs already hold.
    """
    if preferred and preferred not in exclude and is_port_free(preferred, host):
        return preferred
    return pick_free_port(host, exclude)
