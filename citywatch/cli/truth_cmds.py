"""``citywatch center export-truth``: a camera's truth file from the duty officers' verdicts
(confirmed and false-positive orders), for ``citywatch edge replay --truth``, so a rule
change is back-tested against what people decided.

Registered on ``citywatch center`` by importing this module (``cli/main.py``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from citywatch.cli.center_cmds import center_app, center_settings
from citywatch.cli.options import DEFAULT_CONFIG, ConfigOpt, DatabaseUrlOpt, DataDirOpt

console = Console(stderr=True)


def parse_time(text: str | None, what: str, tz: tzinfo) -> datetime | None:
    """An ISO 8601 time, or a span back from now ("7d", "12h"); bare times are site-local."""
    if text is None:
        return None
    from citywatch.config.base import parse_duration

    try:
        span = parse_duration(text)
    except ValueError:
        span = None
    if isinstance(span, timedelta):
        return datetime.now(UTC) - span
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{what} {text!r} is neither an ISO 8601 time (2026-12-01T08:00) nor a span (7d)",
            param_hint=f"--{what}",
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=tz)


@center_app.command("export-truth")
def export_truth_cmd(
    camera: Annotated[str, typer.Option("--camera", help="Camera id from devices.cameras.")],
    since: Annotated[
        str, typer.Option(help="Orders opened from: ISO 8601 (site time if no zone) or a span, 7d.")
    ] = "30d",
    until: Annotated[str | None, typer.Option(help="Up to (exclusive); default now.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here (default: stdout).")
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Write CAMERA's truth file: one line per confirmed episode, false positives as notes."""
    import psycopg

    from citywatch.center.truth_export import export_truth

    settings = center_settings(config, data_dir)
    url = database_url or settings.database_url
    cameras = sorted(c.id for c in settings.config.devices.cameras)
    if camera not in cameras:
        console.print(
            f"[red]✗[/] no camera {camera!r} in the registry; cameras: {', '.join(cameras)}"
        )
        raise typer.Exit(2)
    start = parse_time(since, "since", settings.tz)
    end = parse_time(until, "until", settings.tz) or datetime.now(UTC)
    assert start is not None
    if start >= end:
        raise typer.BadParameter(f"--since ({start.isoformat()}) must be before --until")

    async def read():  # type: ignore[no-untyped-def]
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return await export_truth(conn, camera, since=start, until=end)

    try:
        export = asyncio.run(read())
    except psycopg.OperationalError as exc:
        console.print(f"[red]✗[/] cannot reach the database: {str(exc).strip().splitlines()[0]}")
        raise typer.Exit(1) from None
    if out is None:
        typer.echo(export.text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(export.text, encoding="utf-8")
    console.print(
        f"{camera}: {export.events} truth events from {export.confirmed_orders} confirmed"
        f" orders, {export.false_positive_orders} false positives noted"
        + (f" → {out}" if out else "")
    )
