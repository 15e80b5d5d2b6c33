"""Dead-letter records: the original bytes plus why they could not be processed.

Headers follow Kafka Connect's dead-letter convention so existing tooling can read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HEADER_PREFIX = "__connect.errors."


@dataclass(frozen=True)
class DeadLetter:
    source_topic: str
    partition: int
    offset: int
    error_class: str
    message: str
    key: bytes | None
    value: bytes
    original_headers: tuple[tuple[str, bytes], ...] = ()

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            *self.original_headers,
            (HEADER_PREFIX + "topic", self.source_topic.encode()),
            (HEADER_PREFIX + "partition", str(self.partition).encode()),
            (HEADER_PREFIX + "offset", str(self.offset).encode()),
            (HEADER_PREFIX + "exception.class.name", self.error_class.encode()),
            (HEADER_PREFIX + "exception.message", self.message.encode()[:4096]),
        ]


def header_map(headers: Any) -> dict[str, bytes]:
    """Normalise Kafka headers (a list of pairs or a mapping) to ``{name: bytes}``."""
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, dict) else headers
    out: dict[str, bytes] = {}
    for name, value in items:
        out[name if isinstance(name, str) else name.decode()] = (
            value if isinstance(value, bytes) else str(value).encode()
        )
    return out
