"""Wire contracts: MQTT topics, Kafka topics and message models, shared by edge and stream.

Everything that crosses a process boundary is defined here once. Gateways import this
package without Faust or psycopg installed.
"""

from citywatch.contracts.codec import decode, encode
from citywatch.contracts.errors import (
    ContractError,
    MalformedMessage,
    MessageTooLarge,
    TopicError,
    UnsupportedVersion,
    WrongMessageType,
)
from citywatch.contracts.messages import (
    Alert,
    AlertKind,
    DeviceKind,
    DeviceRef,
    Evidence,
    EvidenceRef,
    Location,
    Message,
    Phase,
    Reading,
    Receipt,
    ReceiptStatus,
    Status,
    Telemetry,
    WorkOrderEvent,
)
from citywatch.contracts.topics import Channel, KafkaTopics, TopicAddress
from citywatch.contracts.version import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "Alert",
    "AlertKind",
    "Channel",
    "ContractError",
    "DeviceKind",
    "DeviceRef",
    "Evidence",
    "EvidenceRef",
    "KafkaTopics",
    "Location",
    "MalformedMessage",
    "Message",
    "MessageTooLarge",
    "Phase",
    "Reading",
    "Receipt",
    "ReceiptStatus",
    "Status",
    "Telemetry",
    "TopicAddress",
    "TopicError",
    "UnsupportedVersion",
    "WorkOrderEvent",
    "WrongMessageType",
    "decode",
    "encode",
]
