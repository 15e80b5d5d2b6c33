"""``citywatch edge quarantine …``: the alerts the center rejected, kept by each gateway.

A rejected alert leaves the gateway's outbox for its quarantine (same file), never the
disk. These commands let an operator see why, re-queue it once the cause is fixed (a
validator relaxed, a device firmware updated) or delete it for good. They work on the
outbox file directly, beside a running gateway.
"""

from __future__ import annotations

import json
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from citywatch.cli.options import (
    DEFAULT_CONFIG,
    ConfigOpt,
    DataDirOpt,
    GatewayOpt,
    load_config_or_exit,
)
from citywatch.edge.quarantine import QuarantinedMessage, QuarantineFile

__all__ = ["quarantine_app"]

console = Console()
err = Console(stderr=True)
quarantine_app = typer.Typer(
    help="Alerts the center rejected: list, show, re-queue or purge them.", no_args_is_help=True
)

IdsArg = Annotated[
    list[str] | None, typer.Argument(help="Alert ids, as `list` shows them.", show_default=False)
]
AllOpt = Annotated[bool, typer.Option("--all", help="Every quarantined alert of the gateway.")]


def _open(config: Path, data_dir: Path | None, gateway: str) -> QuarantineFile:
    """The gateway's quarantine, found where its agent keeps the outbox; exit 1 if absent."""
    from citywatch.edge.gateway_session import outbox_path

    path = outbox_path(load_config_or_exit(config), gateway, data_dir)
    try:
        return QuarantineFile(path)
    except FileNotFoundError as exc:
        err.print(f"[red]✗[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _when(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "-"
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


def _selection(ids: list[str] | None, every: bool, verb: str) -> list[str] | None:
    """The ids to act on (``None``: all), or exit 2 unless exactly one of them was given."""
    if bool(ids) == every:
        err.print(f"[red]✗[/] name the alerts to {verb}, or give --all (not both)")
        raise typer.Exit(2)
    return None if every else list(ids or [])


@quarantine_app.command("list")
def quarantine_list(
    gateway: GatewayOpt,
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    limit: Annotated[int, typer.Option(help="Show at most this many, newest first.")] = 100,
) -> None:
    """List the gateway's quarantined alerts: id, device, kind, reason, when.

    Alerts rejected while the gateway's disk was full or read-only are listed once it has
    written them (its status reports them meanwhile).
    """
    with closing(_open(config, data_dir, gateway)) as quarantine:
        total, found = quarantine.count(), quarantine.entries(limit)
    if not found:
        console.print(f"the quarantine of {gateway} is empty")
        return
    table = Table(title=f"quarantine of {gateway}: {total} alert(s)")
    for column in ("id", "device", "kind", "reason", "quarantined at (UTC)", "attempts"):
        table.add_column(column, overflow="fold")
    for m in found:
        table.add_row(
            m.message_id, m.device_id, m.kind, m.reason, _when(m.quarantined_at), str(m.attempts)
        )
    console.print(table)
    if total > len(found):
        console.print(f"{total - len(found)} more: raise --limit to see them")


@quarantine_app.command("show")
def quarantine_show(
    message_id: Annotated[str, typer.Argument(help="The alert id.")],
    gateway: GatewayOpt,
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
) -> None:
    """Print one quarantined alert as JSON: the message as sent, and why it was rejected."""
    with closing(_open(config, data_dir, gateway)) as quarantine:
        message = quarantine.get(message_id)
    if message is None:
        err.print(f"[red]✗[/] {message_id} is not in the quarantine of {gateway}")
        raise typer.Exit(1)
    console.print_json(json.dumps(_as_json(message), ensure_ascii=False))


def _as_json(m: QuarantinedMessage) -> dict[str, object]:
    try:
        payload: object = json.loads(m.payload)
    except ValueError:  # not JSON (or not UTF-8): show it as the bytes it is
        payload = m.payload.decode("utf-8", errors="backslashreplace")
    return {
        "id": m.message_id,
        "device": m.device_id,
        "kind": m.kind,
        "topic": m.topic,
        "reason": m.reason,
        "rejected_at": _when(m.rejected_at),
        "quarantined_at": _when(m.quarantined_at),
        "attempts": m.attempts,
        "message": payload,
    }


@quarantine_app.command("requeue")
def quarantine_requeue(
    gateway: GatewayOpt,
    ids: IdsArg = None,
    every: AllOpt = False,
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
) -> None:
    """Put quarantined alerts back into the outbox: the gateway sends them again (same ids).

    Do it after fixing the cause, or the center rejects them again and they come back here.
    """
    selected = _selection(ids, every, "re-queue")
    with closing(_open(config, data_dir, gateway)) as quarantine:
        moved = quarantine.requeue(selected, time.time())
    for message_id in moved:
        console.print(f"[green]✓[/] {message_id} re-queued", highlight=False)
    missed = [m for m in selected or [] if m not in moved]
    for message_id in missed:
        err.print(
            f"[yellow]![/] {message_id}: not in the quarantine, or already pending in the outbox",
            highlight=False,
        )
    console.print(f"{len(moved)} alert(s) re-queued for {gateway}")
    if missed:
        raise typer.Exit(1)


@quarantine_app.command("purge")
def quarantine_purge(
    gateway: GatewayOpt,
    ids: IdsArg = None,
    every: AllOpt = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: the alerts are deleted for good.")
    ] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete quarantined alerts for good (needs the ids or --all, and --yes)."""
    selected = _selection(ids, every, "purge")
    if not yes:
        err.print("[red]✗[/] purge deletes the alerts for good: add --yes to confirm")
        raise typer.Exit(2)
    with closing(_open(config, data_dir, gateway)) as quarantine:
        purged = quarantine.purge(selected)
    missed = [m for m in selected or [] if m not in purged]
    for message_id in missed:
        err.print(f"[yellow]![/] {message_id} is not in the quarantine", highlight=False)
    console.print(f"{len(purged)} alert(s) purged from the quarantine of {gateway}")
    if missed:
        raise typer.Exit(1)
