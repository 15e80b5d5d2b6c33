"""Typed errors for everything that can be wrong with a message on the wire.

The stream tier turns each of these into a dead-letter record whose `error class` header is
the exception's class name, so the classes are part of the contract.
"""


class ContractError(ValueError):
    """A message or topic does not follow the citywatch wire contract."""


class MalformedMessage(ContractError):
    """The bytes are not JSON, or the JSON does not validate against the message model."""


class MessageTooLarge(ContractError):
    """The message is larger than any citywatch message may be (evidence goes by reference)."""


class UnsupportedVersion(ContractError):
    """The message's schema major version is not one this build understands."""


class WrongMessageType(ContractError):
    """The message is valid but of another type than the channel or caller expects."""


class TopicError(ContractError):
    """An MQTT topic does not follow the citywatch topic layout."""
