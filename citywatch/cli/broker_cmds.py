"""``citywatch broker …``: the MQTT broker's accounts for a site's own Mosquitto or EMQX,
and rotating a gateway's secret.

The device registry is the source of every broker account and ACL. ``export`` writes them
in the form an external broker loads (Mosquitto's password file and ACL, or EMQX's
built-in-database users and ``acl.conf``); ``rotate-secret`` gives a gateway a new secret
and makes the embedded broker accept it at once (see the README, "TLS and device identity").
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from citywatch.cli.options import (
    DEFAULT_CONFIG,
    ConfigOpt,
    DataDirOpt,
    GatewayOpt,
    load_config_or_exit,
)

__all__ = ["broker_app"]

console = Console()
err = Console(stderr=True)
broker_app = typer.Typer(
    help="Broker accounts from the device registry: export them, rotate a gateway's secret.",
    no_args_is_help=True,
)

EMQX_IMPORT = (
    "curl -u KEY:SECRET -X POST -F 'filename=@{users}' "
    "'https://EMQX:18083/api/v5/authentication/password_based%3Abuilt_in_database/import_users'"
)


class BrokerKind(StrEnum):
    mosquitto = "mosquitto"
    emqx = "emqx"


FormatOpt = Annotated[BrokerKind, typer.Option("--format", help="The broker that loads them.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Directory to write the files to.")]


def _write(path: Path, text: str, mode: int) -> None:
    """Write ``path`` created with ``mode`` (a hash file is never readable by others)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    console.print(f"wrote {path}")


@broker_app.command("export")
def broker_export(
    out: OutOpt,
    kind: FormatOpt = BrokerKind.mosquitto,
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
) -> None:
    """Write every gateway's and service's login and topic rights for an external broker.

    Secrets not generated yet are generated (as `citywatch stack up` does), so gateways and
    the broker agree. Gateways connecting by certificate need its CN to be their username.
    """
    from citywatch.stack import accounts as acc
    from citywatch.stack.endpoints import data_dir_of, ensure_secrets, mqtt_accounts, secrets_dir_of
    from citywatch.stack.mosquitto import render_external_config

    cfg = load_config_or_exit(config)
    secrets_dir = secrets_dir_of(data_dir_of(cfg, data_dir))
    ensure_secrets(cfg, secrets_dir)
    accounts = mqtt_accounts(cfg, secrets_dir)
    out.mkdir(parents=True, exist_ok=True)
    if kind is BrokerKind.mosquitto:
        _write(out / "passwd", acc.render_password_file(accounts), 0o600)
        _write(out / "acl", acc.render_acl_file(accounts), 0o644)
        _write(out / "mosquitto-citywatch.conf", render_external_config(), 0o644)
        console.print(
            "copy them to /etc/mosquitto/citywatch/, include the .conf, then reload the"
            " broker (SIGHUP, `systemctl reload mosquitto`)"
        )
        return
    _write(out / "emqx-users.json", acc.render_emqx_users(accounts), 0o600)
    _write(out / "emqx-acl.conf", acc.render_emqx_acl(accounts), 0o644)
    console.print(
        "EMQX: a password_based:built_in_database authenticator with password_hash_algorithm"
        f" {{name = pbkdf2, mac_fun = sha512, iterations = {acc.EMQX_PBKDF2_ITERATIONS},"
        f" dk_length = {acc.EMQX_PBKDF2_DK_LENGTH}}}; import the users with\n  "
        + EMQX_IMPORT.format(users=out / "emqx-users.json")
        + "\nand use emqx-acl.conf as the file authorization source (etc/acl.conf)."
    )


@broker_app.command("rotate-secret")
def broker_rotate_secret(
    gateway: GatewayOpt, config: ConfigOpt = DEFAULT_CONFIG, data_dir: DataDirOpt = None
) -> None:
    """Give a gateway a new secret; a running embedded broker accepts only the new one.

    The gateway's agent reads its secret again at every connection: Mosquitto drops the
    session logged in with the old secret when it reloads, and the agent reconnects with the
    new one (its outbox keeps every message meanwhile). Gateways that log in with a
    certificate are not affected.
    """
    from citywatch.edge.gateway_session import gateway_config
    from citywatch.stack.endpoints import (
        EndpointError,
        data_dir_of,
        embedded_stack,
        mqtt_accounts,
        replace_secret,
        resolve_endpoints,
        secrets_dir_of,
    )
    from citywatch.stack.errors import StackError
    from citywatch.stack.launcher import EmbeddedStack
    from citywatch.stack.mosquitto import probe_mqtt
    from citywatch.stack.service import ProbeFailed

    cfg = load_config_or_exit(config)
    root = data_dir_of(cfg, data_dir)
    entry = gateway_config(cfg, gateway)
    try:
        new_secret = replace_secret(entry.credentials.password, secrets_dir_of(root))
    except EndpointError as exc:
        err.print(f"[red]✗[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"new secret written for {gateway} ({entry.credentials.password})")
    if cfg.services.mqtt.url != "embedded" or EmbeddedStack(root / "stack").status() is None:
        console.print(
            "the broker is external (or not running): `citywatch broker export`, load the"
            " files into it and reload it; the gateway reconnects with the new secret"
        )
        return
    try:
        embedded_stack(cfg, root).update_accounts(mqtt_accounts(cfg, secrets_dir_of(root)))
        endpoints = resolve_endpoints(cfg, root)
        probe_mqtt(
            endpoints.mqtt_port, entry.username, new_secret, mqtt_v5=True,
            ca_file=endpoints.mqtt_ca_file if endpoints.mqtt_tls else None,
        )  # fmt: skip
    except (StackError, EndpointError, ProbeFailed) as exc:
        err.print(f"[red]✗[/] the broker did not take the new secret: {exc}")
        raise typer.Exit(1) from None
    console.print(f"[green]✓[/] the embedded broker reloaded and accepts {gateway}'s new secret")
