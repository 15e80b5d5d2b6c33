"""References to secrets, and their resolution at run time.

Passwords never sit in the YAML: a credential is ``env:NAME`` (an environment variable),
``file:/path`` (a file holding it, e.g. a mounted Kubernetes or Docker secret) or
``secret:NAME`` (a file NAME in the secrets directory; the embedded stack generates these).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

_REF = re.compile(r"^(env|file|secret):(.+)$")


class SecretError(LookupError):
    """A referenced secret cannot be found; the message says where it was looked for."""


def _check_ref(value: Any) -> Any:
    if isinstance(value, str) and not _REF.match(value):
        raise ValueError(
            "a credential must reference a secret ('env:NAME', 'file:/path' or 'secret:NAME'),"
            " never hold it: move the value out of the YAML"
        )
    return value


SecretRef = Annotated[
    str,
    BeforeValidator(_check_ref),
    Field(pattern=_REF.pattern, description="env:NAME, file:/path or secret:NAME"),
]


def resolve_secret(ref: str, secrets_dir: Path | None) -> str:
    """Return the secret ``ref`` points at, stripped of a trailing newline."""
    match = _REF.match(ref)
    if not match:
        raise SecretError(f"{ref!r} is not a secret reference")
    scheme, name = match.groups()
    if scheme == "env":
        if name not in os.environ:
            raise SecretError(f"environment variable {name} (from {ref!r}) is not set")
        return os.environ[name]
    path = Path(name) if scheme == "file" else _secret_path(name, secrets_dir)
    try:
        return path.read_text().rstrip("\n")
    except OSError as exc:
        raise SecretError(f"cannot read secret {ref!r} from {path}: {exc.strerror}") from None


def _secret_path(name: str, secrets_dir: Path | None) -> Path:
    if secrets_dir is None:
        raise SecretError(
            f"secret:{name} needs a secrets directory: set CITYWATCH_SECRETS_DIR or start the"
            " embedded stack, which generates one"
        )
    if "/" in name or name.startswith("."):
        raise SecretError(f"secret name {name!r} must be a plain file name")
    return secrets_dir / name


def secret_name(ref: str) -> str | None:
    """The name of a ``secret:NAME`` reference (those the embedded stack can generate)."""
    match = _REF.match(ref)
    return match.group(2) if match and match.group(1) == "secret" else None
