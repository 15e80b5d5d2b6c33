"""Whether a server's port is free, asked before the server says it is ready."""

from __future__ import annotations

import errno
import socket

from citywatch.cli.errors import PortInUse

__all__ = ["ensure_port_free"]


def ensure_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUse` when ``host:port`` cannot be bound.

    Binds as uvicorn does (``SO_REUSEADDR``, so a port in TIME_WAIT counts as free), then lets
    go: uvicorn otherwise prints its ready line and only then fails with Errno 98.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"port {port} on {host} is already in use (another center?): stop that"
                    " process, or serve on another port with --port",
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise PortInUse(
                    f"cannot listen on {host}: no such address on this machine (fix"
                    " center.listen, or pass --host)",
                ) from None
            raise
