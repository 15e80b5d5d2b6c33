"""MQTT accounts of the embedded broker, and the password and ACL files they become.

Mosquitto authenticates against a password file and authorises every publish and subscribe
against an ACL file. Both are generated here from `MqttAccount` values, so the broker never
holds an account the launcher did not ask for, and the files can be checked without a broker.
Passwords are hashed here (PBKDF2-SHA512, Mosquitto's `$7$` format, byte-for-byte what
`mosquitto_passwd` writes) so that no plaintext password touches the disk.

The same accounts export to EMQX: a users file for its built-in database's import (PBKDF2
hashes as hex with their salt) and an `acl.conf` for its file authorization source, so a
site moving to an EMQX cluster keeps every device's login and topic rights.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: The account the launcher uses to prove the broker accepts real connections. It may not
#: publish or subscribe anywhere.
HEALTH_USERNAME = "citywatch-health"

# Mosquitto 2.0's defaults for `mosquitto_passwd`: PBKDF2-HMAC-SHA512, 101 rounds, 12-byte salt.
_PBKDF2_ROUNDS = 101
_SALT_BYTES = 12


@dataclass(frozen=True)
class MqttAccount:
    """One MQTT login and the topic filters it may use.

    `publish` lists the filters the account may publish to; `subscribe` those it may
    subscribe to and receive from. Filters may use the `+` and `#` wildcards.
    """

    username: str
    password: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate_username(self.username)
        if not self.password or any(c in self.password for c in "\r\n\0"):
            raise ValueError(
                f"MQTT account {self.username!r}: the password must be non-empty and on one line"
            )
        # Accept lists from callers but store tuples, so the account stays hashable.
        object.__setattr__(self, "publish", tuple(self.publish))
        object.__setattr__(self, "subscribe", tuple(self.subscribe))
        for topic_filter in (*self.publish, *self.subscribe):
            validate_topic_filter(topic_filter, username=self.username)


def validate_username(username: str) -> None:
    """Reject names the password file (``name:hash`` lines) or the ACL file cannot carry."""
    if not username or username != username.strip():
        raise ValueError(
            f"MQTT username {username!r} must be non-empty, without surrounding spaces"
        )
    if ":" in username or any(ord(c) < 32 for c in username):
        raise ValueError(f"MQTT username {username!r} may not contain ':' or control characters")


def validate_topic_filter(topic_filter: str, *, username: str = "") -> None:
    """Check an MQTT topic filter the way a broker would (MQTT 5, section 4.7)."""
    owner = f"MQTT account {username!r}: " if username else ""
    if not topic_filter or any(c in topic_filter for c in "\r\n\0"):
        raise ValueError(f"{owner}topic filter {topic_filter!r} must be non-empty, on one line")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(
                f"{owner}topic filter {topic_filter!r}: '#' must be a whole last level"
            )
        if "+" in level and level != "+":
            raise ValueError(f"{owner}topic filter {topic_filter!r}: '+' must be a whole level")


def health_account(password: str) -> MqttAccount:
    """The launcher's own login: it can connect and do nothing else."""
    return MqttAccount(HEALTH_USERNAME, password)


def check_unique(accounts: Iterable[MqttAccount]) -> None:
    """Refuse two accounts with one name, and any account that takes the health account's."""
    seen: set[str] = set()
    for account in accounts:
        if account.username in seen:
            raise ValueError(f"MQTT username {account.username!r} is given twice")
        seen.add(account.username)
    if HEALTH_USERNAME in seen:
        raise ValueError(f"MQTT username {HEALTH_USERNAME!r} is reserved for the stack itself")


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Hash a password in Mosquitto 2.0's `$7$` (PBKDF2-SHA512) password-file format."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ROUNDS)
    salt_b64, digest_b64 = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"$7${_PBKDF2_ROUNDS}${salt_b64}${digest_b64}"


def verify_password(password: str, hashed: str) -> bool:
    """Tell whether `password` matches a `$7$` hash (used by tests and by account diffing)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    rounds, salt, digest = int(parts[2]), base64.b64decode(parts[3]), parts[4]
    computed = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)
    return secrets.compare_digest(base64.b64encode(computed).decode(), digest)


def render_password_file(accounts: Sequence[MqttAccount]) -> str:
    """The Mosquitto `password_file`: one ``username:hash`` line per account."""
    return "".join(f"{a.username}:{hash_password(a.password)}\n" for a in accounts)


def render_acl_file(accounts: Sequence[MqttAccount]) -> str:
    """The Mosquitto `acl_file`: per user, `topic read|write|readwrite FILTER` lines.

    A user with no lines may do nothing; anonymous clients are refused at connect, so no
    rules precede the first `user` line.
    """
    lines = ["# Generated by citywatch from its MQTT accounts; edits are overwritten.", ""]
    for account in accounts:
        lines.append(f"user {account.username}")
        for topic_filter, access in _access_by_filter(account):
            lines.append(f"topic {access} {topic_filter}")
        lines.append("")
    return "\n".join(lines)


def _access_by_filter(account: MqttAccount) -> list[tuple[str, str]]:
    """Merge publish and subscribe filters into ACL access words, in first-seen order."""
    access: dict[str, set[str]] = {}
    for topic_filter in account.publish:
        access.setdefault(topic_filter, set()).add("write")
    for topic_filter in account.subscribe:
        access.setdefault(topic_filter, set()).add("read")
    words = {frozenset({"write"}): "write", frozenset({"read"}): "read"}
    return [(f, words.get(frozenset(kinds), "readwrite")) for f, kinds in access.items()]


def accounts_fingerprint(accounts: Sequence[MqttAccount]) -> str:
    """A digest of the accounts, so a later `up` can tell whether the broker's files changed.

    It is salted with nothing and stored only in the owner-only state file; it lets the
    launcher skip a needless broker reload, nothing more.
    """
    h = hashlib.sha256()
    for a in sorted(accounts, key=lambda a: a.username):
        h.update(repr((a.username, a.password, a.publish, a.subscribe)).encode())
    return h.hexdigest()


#: The PBKDF2 settings the EMQX export hashes with; the EMQX authenticator must be configured
#: with the same (``password_hash_algorithm {name = pbkdf2, mac_fun = sha512,
#: iterations = 4096, dk_length = 64}``).
EMQX_PBKDF2_ITERATIONS = 4096
EMQX_PBKDF2_DK_LENGTH = 64


def emqx_password_hash(password: str, salt: str) -> str:
    """EMQX's pbkdf2 hash of ``password``: hex, the salt used as the text it is."""
    digest = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), salt.encode(), EMQX_PBKDF2_ITERATIONS, EMQX_PBKDF2_DK_LENGTH
    )
    return digest.hex()


def render_emqx_users(accounts: Sequence[MqttAccount]) -> str:
    """The JSON file EMQX's built-in database imports (``…/import_users``): one user each."""
    users = []
    for account in accounts:
        salt = secrets.token_hex(16)
        users.append(
            {
                "user_id": account.username,
                "password_hash": emqx_password_hash(account.password, salt),
                "salt": salt,
                "is_superuser": False,
            }
        )
    return json.dumps(users, indent=2) + "\n"


def render_emqx_acl(accounts: Sequence[MqttAccount]) -> str:
    """EMQX's ``acl.conf`` (file authorization): per user, allow its filters, then deny all."""
    lines = ["%% Generated by citywatch from its device registry; edits are overwritten.", ""]
    for account in accounts:
        user = json.dumps(account.username)
        for action, filters in (("publish", account.publish), ("subscribe", account.subscribe)):
            if filters:
                topics = ", ".join(json.dumps(f) for f in filters)
                lines.append(f"{{allow, {{username, {user}}}, {action}, [{topics}]}}.")
        lines.append("")
    lines.append("{deny, all}.")
    return "\n".join(lines) + "\n"
