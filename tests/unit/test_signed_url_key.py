"""Signed URLs across center processes: a shared ``center.url_signing_key`` lets a URL one
process minted open at another (behind a load balancer, or after a restart); a per-process
key does not."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from citywatch.center.auth import User
from citywatch.center.signed_urls import BadSignature, Signer

PATH = "/api/v1/alerts/a-1/evidence/snapshot"
OFFICER = User(name="zhang", role="operator", display_name="Zhang")


def opens(minted_by: Signer, checked_by: Signer) -> bool:
    url, _ = minted_by.sign(PATH, OFFICER, now=1000.0)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    try:
        checked_by.verify(PATH, query, 1001.0)
    except BadSignature:
        return False
    return True


def test_a_shared_key_opens_urls_minted_by_another_process() -> None:
    """Two processes with the same configured secret accept each other's URLs."""
    assert opens(Signer.shared("s3cret", 60), Signer.shared("s3cret", 60))


@pytest.mark.parametrize(
    ("first", "second"),
    [(Signer.fresh(60), Signer.fresh(60)), (Signer.shared("a", 60), Signer.shared("b", 60))],
    ids=["per-process keys", "different secrets"],
)
def test_a_url_from_another_key_is_refused(first: Signer, second: Signer) -> None:
    """Without the same secret, a URL minted elsewhere does not open."""
    assert not opens(first, second)


def test_the_center_signs_with_the_configured_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """``center.url_signing_key`` is resolved like every secret (here ``env:``), and two
    centers started from that config agree; without it each start makes its own key."""
    from citywatch.center.settings import CenterSettings
    from citywatch.config import load_config
    from tests.unit.test_config import DEMO

    monkeypatch.setenv("CW_URL_KEY", "one key for the whole center tier")
    config = load_config(DEMO)
    shared = config.model_copy(
        update={"center": config.center.model_copy(update={"url_signing_key": "env:CW_URL_KEY"})}
    )
    first, second = CenterSettings(shared, "postgresql://unused"), CenterSettings(shared, "x")
    assert opens(first.url_signer(), second.url_signer())
    alone = CenterSettings(config, "postgresql://unused")
    assert not opens(alone.url_signer(), alone.url_signer())
