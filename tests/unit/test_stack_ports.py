"""Picking free loopback ports for the embedded stack."""

from __future__ import annotations

import socket

from citywatch.stack.ports import LOOPBACK, choose_port, is_port_free, pick_free_port


def test_picked_port_can_be_bound() -> None:
    """The port the kernel hands out is free for a listener right after."""
    port = pick_free_port()
    with socket.socket() as sock:
        sock.bind((LOOPBACK, port))


def test_picked_port_avoids_excluded_ports() -> None:
    """Ports already promised to another service of the stack are never handed out again."""
    first = pick_free_port()
    picks = {pick_free_port(exclude={first}) for _ in range(20)}
    assert first not in picks


def test_port_with_a_listener_is_not_free() -> None:
    """A port someone listens on is reported taken."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not is_port_free(port)
    assert is_port_free(port)


def test_choose_port_reuses_the_previous_port_when_free() -> None:
    """After `down`, `up` keeps the URLs clients already hold."""
    previous = pick_free_port()
    assert choose_port(previous) == previous


def test_choose_port_moves_when_the_previous_port_is_taken() -> None:
    """A port taken meanwhile is replaced by a fresh free one."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        taken = sock.getsockname()[1]
        new = choose_port(taken)
        assert new != taken
        assert is_port_free(new)


def test_choose_port_without_history_picks_a_free_port() -> None:
    """The first `up` has no previous port."""
    assert is_port_free(choose_port(None))
