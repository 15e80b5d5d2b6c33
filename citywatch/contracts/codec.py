"""Encode and decode wire messages: the one place bytes become models and back.

Decoding checks, in order, size, JSON, schema version and type, so that the dead-letter
reason names the first thing that is wrong.
"""

from __future__ import annotations

import json
from typing import TypeVar, overload

from pydantic import ValidationError

from citywatch.contracts.errors import (
    MalformedMessage,
    MessageTooLarge,
    UnsupportedVersion,
    WrongMessageType,
)
from citywatch.contracts.messages import MESSAGE_TYPES, NO_ESCAPES, Message, WireModel
from citywatch.contracts.version import check_version

MAX_MESSAGE_BYTES = 256 * 1024
M = TypeVar("M", bound=WireModel)


def encode(message: WireModel) -> bytes:
    """Compact UTF-8 JSON of ``message``, without null fields."""
    return message.model_dump_json(exclude_none=True).encode()


@overload
def decode(data: bytes | str) -> Message: ...
@overload
def decode(data: bytes | str, expected: type[M]) -> M: ...
def decode(data: bytes | str, expected: type[WireModel] | None = None) -> WireModel:
    """Parse one message; raise a :class:`ContractError` subclass saying what is wrong.

    ``expected`` restricts the accepted type (a telemetry message on the alerts channel is a
    :class:`WrongMessageType`, not an alert).
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(
            f"message is {len(data)} bytes; the limit is {MAX_MESSAGE_BYTES} (send evidence by reference)"
        )
    if expected is not None:
        message = _decode_valid(data, expected)
        if message is not None:
            return message
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise MalformedMessage(f"a message is a JSON object, got {type(raw).__name__}")
    check_version(raw.get("v"))
    type_name = raw.get("type")
    model = MESSAGE_TYPES.get(type_name) if isinstance(type_name, str) else None
    if model is None:
        raise WrongMessageType(
            f"unknown message type {type_name!r}; one of {sorted(MESSAGE_TYPES)}"
        )
    if expected is not None and model is not expected:
        expected_name = expected.model_fields["type"].default
        raise WrongMessageType(f"expected a {expected_name!r} message, got {type_name!r}")
    try:
        return model.model_validate(raw, context=_context(data))
    except ValidationError as exc:
        raise MalformedMessage(_describe(exc)) from None


def _decode_valid(data: bytes | str, expected: type[M]) -> M | None:
    """The hot path: one parse straight into ``expected``, for a message with nothing wrong.

    None when anything is off (bad JSON, a missing or foreign version or type, a field
    error): the checks above then run in order and name the first problem.
    """
    try:
        message = expected.model_validate_json(data, context=_context(data))
    except ValidationError:
        return None
    given = message.model_fields_set
    if "v" not in given or "type" not in given:
        return None
    try:
        check_version(message.v)
    except UnsupportedVersion:
        return None
    return message


def _context(data: bytes | str) -> dict[str, bool]:
    """Tell the models' storability check it may skip: text with no ``\\u`` escape cannot
    hold a NUL or a lone surrogate once parsed (the parser refuses raw ones)."""
    escape: bytes | str = b"\\u" if isinstance(data, bytes) else "\\u"
    return {NO_ESCAPES: escape not in data}  # type: ignore[operator]


def _describe(exc: ValidationError) -> str:
    """One line per field error: ``field.path: what is wrong``."""
    parts = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{path}: {err['msg']}")
    return "; ".join(parts)
