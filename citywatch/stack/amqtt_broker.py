"""The fallback MQTT broker: amqtt (pure Python, MQTT 3.1.1), for hosts without Mosquitto.

It is installed by `pip install 'citywatch[stack-fallback]'` and offers the same accounts and
topic rules as Mosquitto, through amqtt's password-file and topic-ACL plugins. It speaks only
MQTT 3.1.1, does not reload accounts on SIGHUP (the launcher restarts it instead), and is
meant for development machines where the Debian package cannot be installed.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from citywatch.stack import files
from citywatch.stack.accounts import HEALTH_USERNAME, MqttAccount
from citywatch.stack.binaries import FALLBACK_INSTALL
from citywatch.stack.errors import StackError
from citywatch.stack.mosquitto import probe_mqtt
from citywatch.stack.ports import LOOPBACK
from citywatch.stack.processes import ServiceUser


def _hash(password: str) -> str:
    """amqtt 0.12 verifies argon2 hashes through pwdlib, one of its own dependencies."""
    try:
        from pwdlib.hashers.argon2 import Argon2Hasher
    except ImportError as exc:
        raise StackError(
            f"the amqtt fallback needs pwdlib[argon2]: run `{FALLBACK_INSTALL}`"
        ) from exc
    return str(Argon2Hasher().hash(password))


def render_config(port: int, password_path: Path, accounts: Sequence[MqttAccount]) -> str:
    """amqtt 0.12's broker configuration (YAML; JSON is valid YAML, so no YAML writer needed).

    Only the listed plugins load: no AnonymousAuthPlugin, so clients without a username are
    refused. The health account is among `accounts` with empty lists, which also keeps
    `publish_acl` non-empty (amqtt allows every publish when it is empty).
    """
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(password_path)},
            "amqtt.plugins.topic_checking.TopicAccessControlListPlugin": {
                "acl": {a.username: list(a.subscribe) for a in accounts},
                "publish_acl": {a.username: list(a.publish) for a in accounts},
            },
        },
    }
    return json.dumps(config, indent=2) + "\n"


class AmqttService:
    """The `mqtt` service of the stack, backed by the amqtt broker script."""

    name = "mqtt"
    stop_signal = signal.SIGTERM
    stop_grace_s = 5.0

    def __init__(
        self, data_dir: Path, program: Path, run_as: ServiceUser | None, health_password: str
    ) -> None:
        self.program = program
        self.run_as = run_as
        self.health_password = health_password
        self.log_path = data_dir / "mosquitto.log"  # one name for the MQTT log, whichever broker
        self.conf_dir = data_dir / "amqtt"
        self.conf_path = self.conf_dir / "amqtt.yaml"
        self.password_path = self.conf_dir / "passwd"
        self._accounts: Sequence[MqttAccount] = ()

    def write_accounts(self, accounts: Sequence[MqttAccount]) -> None:
        files.make_dir(self.conf_dir, self.run_as)
        self._accounts = accounts
        text = "".join(f"{a.username}:{_hash(a.password)}\n" for a in accounts)
        files.write_file(self.password_path, text, self.run_as)

    def prepare(self, port: int) -> None:
        text = render_config(port, self.password_path, self._accounts)
        files.write_file(self.conf_path, text, self.run_as)

    def argv(self, port: int) -> list[str]:
        return [str(self.program), "-c", str(self.conf_path)]

    def marker(self, port: int) -> str:
        return str(self.conf_path)

    def probe(self, port: int) -> None:
        probe_mqtt(port, HEALTH_USERNAME, self.health_password, mqtt_v5=False)

    def version(self) -> str:
        result = subprocess.run(
            [str(self.program), "--version"], capture_output=True, text=True, check=False
        )
        return (result.stdout or result.stderr).strip().rsplit(" ", 1)[-1] or "unknown"
