"""The embedded single-machine stack: Mosquitto, Tansu (Kafka protocol) and PostgreSQL.

See `citywatch.stack.launcher` for the API the CLI and the test fixtures use.
"""

from citywatch.stack.accounts import MqttAccount
from citywatch.stack.launcher import (
    EmbeddedStack,
    ServiceInfo,
    StackError,
    StackInfo,
    default_data_dir,
)

__all__ = [
    "EmbeddedStack",
    "MqttAccount",
    "ServiceInfo",
    "StackError",
    "StackInfo",
    "default_data_dir",
]
