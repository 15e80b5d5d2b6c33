"""``citywatch center …``: serve the command center and manage who may use it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from citywatch.cli.options import (
    DEFAULT_CONFIG,
    ConfigOpt,
    DatabaseUrlOpt,
    DataDirOpt,
    MetricsHostOpt,
    MetricsPortOpt,
    load_config_or_exit,
    start_metrics_or_exit,
)

if TYPE_CHECKING:
    from citywatch.center.settings import CenterSettings

console = Console()
err = Console(stderr=True)
center_app = typer.Typer(
    help="The command center: API, live feed and web console; users and tokens.",
    no_args_is_help=True,
)
token_app = typer.Typer(help="Issue and revoke bearer tokens.", no_args_is_help=True)
center_app.add_typer(token_app, name="token")


def center_settings(
    config_path: Path, data_dir: Path | None, database_url: str | None = None
) -> CenterSettings:
    """Settings from the site config and the running stack (database, secrets, evidence).

    With ``database_url`` the center needs nothing else of the stack: it is not asked for.
    """
    from citywatch.center.settings import CenterSettings
    from citywatch.stack.endpoints import data_dir_of, resolve_endpoints, secrets_dir_of

    cfg = load_config_or_exit(config_path)
    root = data_dir_of(cfg, data_dir)
    if database_url is None:
        endpoints = resolve_endpoints(cfg, root)
        database_url, secrets_dir = endpoints.database_url, endpoints.secrets_dir
    else:
        secrets_dir = secrets_dir_of(root)
    roots = tuple(dict.fromkeys([*cfg.center.evidence_roots, root / "evidence"]))
    return CenterSettings(
        config=cfg,
        database_url=database_url,
        secrets_dir=secrets_dir,
        evidence_roots=roots,
        config_dir=config_path.resolve().parent,
    )


@center_app.command("serve")
def center_serve(
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default: center.listen).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: center.port).")] = None,
    database_url: DatabaseUrlOpt = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "INFO",
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "0.0.0.0",
) -> None:
    """Serve the API (OpenAPI docs at /docs), the live feed and the console at /.

    Applies pending database migrations first.
    """
    import uvicorn

    from citywatch.center.app import create_app
    from citywatch.center.serving import base_url, uvicorn_options
    from citywatch.cli.logs import setup_logging
    from citywatch.cli.ports import ensure_port_free
    from citywatch.config.center import CenterTls
    from citywatch.stack.endpoints import data_dir_of
    from citywatch.stack.tls import EmbeddedCa
    from citywatch.stream.migrate import migrate_for

    setup_logging(log_level)
    settings = center_settings(config, data_dir, database_url)
    center = settings.config.center
    tls = center.tls
    if tls == "embedded":
        ca = EmbeddedCa.of_stack(data_dir_of(settings.config, data_dir) / "stack")
        tls = CenterTls(cert_file=ca.server_cert, key_file=ca.server_key)
    try:
        options = uvicorn_options(center, host=host, port=port, tls=tls)
    except FileNotFoundError as exc:
        err.print(f"[red]✗[/] {exc}")
        raise typer.Exit(2) from None
    ensure_port_free(options["host"], options["port"])
    migrate_for(settings.config, settings.database_url)
    console.print(f"command center on {base_url(options)}/ (API docs: /docs)")
    from citywatch.center.metrics import CENTER_HEALTH, CENTER_REGISTRY

    start_metrics_or_exit(metrics_port, metrics_host, CENTER_REGISTRY, CENTER_HEALTH)
    uvicorn.run(
        create_app(settings), log_level=log_level.lower(), timeout_graceful_shutdown=3,
        **options,
    )  # fmt: skip


def _run(settings: CenterSettings, work):  # type: ignore[no-untyped-def]
    import psycopg

    from citywatch.stream.migrate import migrate_for

    migrate_for(settings.config, settings.database_url)

    async def main():  # type: ignore[no-untyped-def]
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True
        ) as conn:
            return await work(conn)

    return asyncio.run(main())


@token_app.command("add")
def token_add(
    name: Annotated[str, typer.Argument(help="User name (created if new).")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")] = "operator",
    label: Annotated[str, typer.Option(help="What the token is for, e.g. 'tablet'.")] = "",
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
) -> None:
    """Issue a new token for a user and print it once (only its hash is stored)."""
    from citywatch.center.auth import add_token
    from citywatch.config.center import ROLES

    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}", param_hint="--role")
    settings = center_settings(config, data_dir)
    token = _run(settings, lambda conn: add_token(conn, name, role, label=label))
    console.print(f"token for {name} ({role}); shown once, keep it safe:")
    print(token)


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="User whose tokens to revoke.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke every token of a user (takes effect within seconds)."""
    from citywatch.center.auth import revoke_tokens

    settings = center_settings(config, data_dir)
    count = _run(settings, lambda conn: revoke_tokens(conn, name))
    console.print(f"revoked {count} token(s) of {name}")


@center_app.command("users")
def center_users(config: ConfigOpt = DEFAULT_CONFIG, data_dir: DataDirOpt = None) -> None:
    """List users, roles and live tokens."""

    async def rows(conn):  # type: ignore[no-untyped-def]
        cursor = await conn.execute(
            """SELECT u.name, u.role, u.source, u.disabled_at IS NOT NULL,
                      count(t.*) FILTER (WHERE t.revoked_at IS NULL)
               FROM center_users u LEFT JOIN center_tokens t ON t.user_name = u.name
               GROUP BY u.name ORDER BY u.name"""
        )
        return await cursor.fetchall()

    table = Table("user", "role", "source", "live tokens")
    for name, role, source, disabled, tokens in _run(center_settings(config, data_dir), rows):
        table.add_row(name, role, source + (" (disabled)" if disabled else ""), str(tokens))
    console.print(table)
