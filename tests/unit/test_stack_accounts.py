"""The MQTT password and ACL files the embedded broker is configured with."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from citywatch.stack.accounts import (
    HEALTH_USERNAME,
    MqttAccount,
    accounts_fingerprint,
    check_unique,
    hash_password,
    health_account,
    render_acl_file,
    render_password_file,
    verify_password,
)

DEVICE = MqttAccount(
    "gw-cam-01",
    "s3cret",
    publish=("citywatch/v1/gw-cam-01/#",),
    subscribe=("citywatch/v1/receipts/gw-cam-01/#",),
)
BRIDGE = MqttAccount(
    "bridge",
    "b-pass",
    publish=("citywatch/v1/receipts/#",),
    subscribe=("citywatch/v1/#", "citywatch/v1/receipts/#"),
)


def test_acl_grants_each_account_only_its_own_filters() -> None:
    """Publish filters become `write`, subscribe filters `read`, one `user` block each."""
    acl = render_acl_file([DEVICE])
    assert "user gw-cam-01\ntopic write citywatch/v1/gw-cam-01/#\n" in acl
    assert "topic read citywatch/v1/receipts/gw-cam-01/#\n" in acl
    assert acl.count("topic ") == 2


def test_acl_merges_a_filter_used_both_ways_into_readwrite() -> None:
    """A filter in both lists is one `readwrite` line, not a write and a read line."""
    acl = render_acl_file([BRIDGE])
    assert "topic readwrite citywatch/v1/receipts/#" in acl
    assert "topic read citywatch/v1/#" in acl
    assert "topic write citywatch/v1/receipts/#" not in acl


def test_acl_has_no_rules_before_the_first_user_block() -> None:
    """Rules before any `user` line would apply to anonymous clients; there are none."""
    acl = render_acl_file([health_account("pw"), DEVICE])
    before_first_user = acl.split("user ", 1)[0]
    assert "topic" not in before_first_user


def test_health_account_gets_a_user_block_without_rights() -> None:
    """The launcher's own login may connect but has no topic rule at all."""
    acl = render_acl_file([health_account("pw")])
    block = acl.split(f"user {HEALTH_USERNAME}\n", 1)[1]
    assert "topic" not in block


def test_password_file_holds_hashes_not_passwords() -> None:
    """One `name:$7$...` line per account, verifiable, with no plaintext."""
    text = render_password_file([DEVICE, BRIDGE])
    lines = text.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["gw-cam-01", "bridge"]
    assert "s3cret" not in text
    device_hash = lines[0].split(":", 1)[1]
    assert device_hash.startswith("$7$101$")
    assert verify_password("s3cret", device_hash)
    assert not verify_password("wrong", device_hash)


def test_hashes_are_salted() -> None:
    """The same password hashes differently each time (a random salt per line)."""
    assert hash_password("same") != hash_password("same")


@pytest.mark.service
@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd absent")
def test_hash_matches_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    """Our PBKDF2 hash is byte-for-byte Mosquitto's: same salt, same digest."""
    passwd = tmp_path / "passwd"
    passwd.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "alice", "pa:ss word"], check=True)
    theirs = passwd.read_text().strip().split(":", 1)[1]
    assert verify_password("pa:ss word", theirs)
    salt = base64.b64decode(theirs.split("$")[3])
    assert hash_password("pa:ss word", salt) == theirs


@pytest.mark.parametrize(
    "bad_filter",
    ["", "a/#/b", "a/b#", "a+/b", "a/+b", "line\nbreak"],
)
def test_invalid_topic_filters_are_rejected(bad_filter: str) -> None:
    """A filter the broker would reject fails when the account is created, not at runtime."""
    with pytest.raises(ValueError, match="topic filter"):
        MqttAccount("dev", "pw", publish=(bad_filter,))


@pytest.mark.parametrize("good_filter", ["#", "+", "a/+/c", "a/b/#", "+/+/#", "$SYS/#"])
def test_valid_topic_filters_are_accepted(good_filter: str) -> None:
    """Wildcards in whole levels are fine."""
    MqttAccount("dev", "pw", subscribe=(good_filter,))


@pytest.mark.parametrize("bad_name", ["", " padded", "a:b", "tab\there"])
def test_usernames_the_password_file_cannot_carry_are_rejected(bad_name: str) -> None:
    """Colons, control characters and surrounding spaces break `name:hash` lines."""
    with pytest.raises(ValueError, match="username"):
        MqttAccount(bad_name, "pw")


def test_empty_password_is_rejected() -> None:
    """An account without a password could never log in."""
    with pytest.raises(ValueError, match="password"):
        MqttAccount("dev", "")


def test_lists_are_stored_as_tuples() -> None:
    """Accounts stay hashable when callers pass lists."""
    account = MqttAccount("dev", "pw", publish=["a/#"], subscribe=["b/#"])  # type: ignore[arg-type]
    assert account.publish == ("a/#",) and account.subscribe == ("b/#",)
    assert hash(account)


def test_health_username_is_reserved() -> None:
    """No caller account may impersonate the launcher's health check."""
    with pytest.raises(ValueError, match="reserved"):
        check_unique([MqttAccount(HEALTH_USERNAME, "pw")])


def test_duplicate_usernames_are_rejected() -> None:
    """Two accounts with one name would silently shadow each other."""
    with pytest.raises(ValueError, match="twice"):
        check_unique([DEVICE, MqttAccount(DEVICE.username, "other")])


def test_fingerprint_changes_with_any_field_and_not_with_order() -> None:
    """A new password or filter forces a rewrite; reordering the same accounts does not."""
    base = accounts_fingerprint([DEVICE, BRIDGE])
    assert accounts_fingerprint([BRIDGE, DEVICE]) == base
    changed = MqttAccount(DEVICE.username, "new", DEVICE.publish, DEVICE.subscribe)
    assert accounts_fingerprint([changed, BRIDGE]) != base
