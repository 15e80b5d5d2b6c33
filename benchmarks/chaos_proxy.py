"""A TCP proxy that can be cut and restored: the chaos suite's network partition.

Put between a client and its server (a gateway and Mosquitto, the worker and PostgreSQL),
it relays bytes both ways until :meth:`TcpProxy.cut`. A cut is a partition, not a refusal:
the connections stay open and bytes vanish in both directions (as on a dead link, so the
client notices only by its keepalive), and new connections are accepted and hear nothing.
:meth:`TcpProxy.restore` closes what was open during the cut (its byte streams have holes)
and relays again. psycopg's own test suite cuts connections the same way.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading

from citywatch.stack.ports import LOOPBACK

log = logging.getLogger(__name__)
_CHUNK = 65536


class TcpProxy:
    """Listens on a free loopback port (``port``) and relays to ``target_port``."""

    def __init__(self, target_port: int, target_host: str = LOOPBACK) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self._listener.getsockname()[1]
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._cut = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()

    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut(self) -> None:
        """From now on bytes vanish both ways, on open and on new connections."""
        self._cut = True

    def restore(self) -> None:
        """Close the connections that lived through the cut, then relay again."""
        with self._lock:
            for sock in list(self._pairs):
                self._close(sock)
            self._cut = False

    def retarget(self, target_port: int) -> None:
        """Relay new connections to another port (a server restarted elsewhere)."""
        self.target = (self.target[0], target_port)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            for sock in list(self._pairs):
                self._close(sock)
        self._listener.close()
        self._selector.close()

    def _run(self) -> None:
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                with self._lock:
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.fileobj in self._pairs:
                        self._relay(key.fileobj)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            server = socket.create_connection(self.target, timeout=2)
        except OSError as exc:
            log.info("proxy %s: cannot reach %s: %s", self.port, self.target, exc)
            client.close()
            return
        for sock in (client, server):
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ)
        self._pairs[client], self._pairs[server] = server, client

    def _relay(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(sock)
            return
        if self._cut:
            return  # the link is down: the bytes are lost
        peer = self._pairs[sock]
        try:
            peer.setblocking(True)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        peer = self._pairs.pop(sock, None)
        for one in (sock, peer):
            if one is None:
                continue
            self._pairs.pop(one, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            with contextlib.suppress(OSError):
                one.close()
