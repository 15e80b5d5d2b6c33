"""``citywatch broker export``: the device registry as an external broker's accounts and ACL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywatch.cli.main import app
from citywatch.config import CitywatchConfig
from citywatch.stack.accounts import MqttAccount, emqx_password_hash, verify_password
from citywatch.stack.endpoints import mqtt_accounts, secrets_dir_of
from citywatch.stack.mosquitto import probe_mqtt
from citywatch.stack.ports import LOOPBACK, pick_free_port
from citywatch.stack.service import ProbeFailed

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo-district.yaml"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def export(tmp_path: Path, kind: str) -> Path:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["broker", "export", "--format", kind, "--out", str(out), "-c", str(DEMO),
         "--data-dir", str(tmp_path / "data")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def registry_accounts(config: CitywatchConfig, tmp_path: Path) -> list[MqttAccount]:
    """The accounts the registry gives, with the secrets the export generated."""
    return mqtt_accounts(config, secrets_dir_of(tmp_path / "data"))


def acl_blocks(acl: str) -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    user = ""
    for line in acl.splitlines():
        if line.startswith("user "):
            user = line.removeprefix("user ")
            blocks[user] = []
        elif line.startswith("topic "):
            blocks[user].append(line)
    return blocks


def test_mosquitto_export_has_every_gateway_with_its_hash_and_topics(
    tmp_path: Path, demo_config: CitywatchConfig
) -> None:
    """passwd holds each account's `$7$` hash of its secret; the ACL each one's own topics."""
    out = export(tmp_path, "mosquitto")
    accounts = registry_accounts(demo_config, tmp_path)
    hashes = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    blocks = acl_blocks((out / "acl").read_text())
    assert {g.username for g in demo_config.devices.gateways} <= set(hashes)
    for account in accounts:
        assert verify_password(account.password, hashes[account.username])
        expected = {f"topic write {t}" for t in account.publish}
        expected |= {f"topic read {t}" for t in account.subscribe}
        assert set(blocks[account.username]) == expected
    assert (out / "passwd").stat().st_mode & 0o777 == 0o600
    conf = (out / "mosquitto-citywatch.conf").read_text()
    assert "use_identity_as_username true" in conf and "allow_anonymous false" in conf


@pytest.mark.service
@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="needs the mosquitto binary")
def test_mosquitto_loads_the_exported_files_and_accepts_only_the_secret(
    tmp_path: Path, demo_config: CitywatchConfig
) -> None:
    """A real Mosquitto with the exported passwd and ACL logs a gateway in by its secret."""
    out = export(tmp_path, "mosquitto")
    gateway = registry_accounts(demo_config, tmp_path)[0]
    port = pick_free_port()
    conf = tmp_path / "m.conf"
    conf.write_text(
        "user root\n"  # as root Mosquitto would switch to `mosquitto`, who cannot read 0600 files
        f"per_listener_settings false\nallow_anonymous false\npassword_file {out / 'passwd'}\n"
        f"acl_file {out / 'acl'}\nlistener {port} {LOOPBACK}\n"
    )
    process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                probe_mqtt(port, gateway.username, gateway.password, mqtt_v5=True)
                break
            except ProbeFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with pytest.raises(ProbeFailed, match="refused"):
            probe_mqtt(port, gateway.username, "wrong", mqtt_v5=True)
    finally:
        process.terminate()
        process.wait(10)


def test_emqx_export_users_import_file_and_acl(
    tmp_path: Path, demo_config: CitywatchConfig
) -> None:
    """EMQX's users JSON has each account's pbkdf2 hash and salt; acl.conf its topics."""
    out = export(tmp_path, "emqx")
    accounts = registry_accounts(demo_config, tmp_path)
    users = {u["user_id"]: u for u in json.loads((out / "emqx-users.json").read_text())}
    assert set(users) == {a.username for a in accounts}
    acl = (out / "emqx-acl.conf").read_text()
    for account in accounts:
        user = users[account.username]
        assert user["is_superuser"] is False
        assert user["password_hash"] == emqx_password_hash(account.password, user["salt"])
        for action, filters in (("publish", account.publish), ("subscribe", account.subscribe)):
            if not filters:
                continue
            rule = re.search(
                rf'^\{{allow, \{{username, "{re.escape(account.username)}"\}}, {action}, \[(.*)\]\}}\.$',
                acl,
                re.MULTILINE,
            )
            assert rule is not None, f"no {action} rule for {account.username}"
            assert json.loads(f"[{rule.group(1)}]") == list(filters)
    assert acl.rstrip().endswith("{deny, all}.")
    assert (out / "emqx-users.json").stat().st_mode & 0o777 == 0o600
