"""The center over HTTPS, and which proxies it believes (issue 17: TLS on every link)."""

from __future__ import annotations

import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from citywatch.config.center import CenterConfig, CenterTls
from citywatch.stack.tls import EmbeddedCa
from tests.center.conftest import auth, free_port


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedCa:
    """A private CA with a server certificate for 127.0.0.1 (the embedded stack's kind)."""
    authority = EmbeddedCa(tmp_path_factory.mktemp("tls"))
    authority.ensure()
    return authority


@pytest.fixture(scope="module")
def https_center(center_settings, ca: EmbeddedCa) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The center served by uvicorn with the options ``citywatch center serve`` uses."""
    import uvicorn

    from citywatch.center.app import create_app
    from citywatch.center.serving import base_url, uvicorn_options

    tls = CenterTls(cert_file=ca.server_cert, key_file=ca.server_key)
    options = uvicorn_options(
        center_settings.config.center, host="127.0.0.1", port=free_port(), tls=tls
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(center_settings), log_level="warning", **options)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the center did not start"
        time.sleep(0.05)
    yield base_url(options)
    server.should_exit = True
    thread.join(15)


def test_the_center_answers_over_https_with_its_certificate(
    https_center: str, ca: EmbeddedCa
) -> None:
    """A client that trusts the CA gets its answer over TLS."""
    assert https_center.startswith("https://")
    context = ssl.create_default_context(cafile=str(ca.ca_cert))
    request = urllib.request.Request(f"{https_center}/api/v1/me", headers=auth("viewer"))
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        assert response.status == 200


def test_a_client_that_does_not_trust_the_certificate_is_refused(https_center: str) -> None:
    """Without the CA the handshake fails on the certificate; no token crosses the wire."""
    context = ssl.create_default_context()
    request = urllib.request.Request(f"{https_center}/api/v1/me", headers=auth("viewer"))
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(request, context=context, timeout=10)


def test_plain_http_to_the_https_port_gets_no_answer(https_center: str) -> None:
    """Nothing is served in clear on the HTTPS port."""
    plain = https_center.replace("https://", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"{plain}/api/v1/me", timeout=10)


def test_proxy_headers_are_believed_only_from_configured_proxies() -> None:
    """By default no X-Forwarded-For is believed (uvicorn's default trusts 127.0.0.1, which
    would let a local client pose as another address past the per-address limits)."""
    from citywatch.center.serving import uvicorn_options

    default = uvicorn_options(CenterConfig())
    assert default["proxy_headers"] is False and default["forwarded_allow_ips"] is None
    behind = uvicorn_options(CenterConfig(trusted_proxies=("10.0.0.5", "10.0.0.6")))
    assert behind["proxy_headers"] is True and behind["forwarded_allow_ips"] == "10.0.0.5,10.0.0.6"


def test_an_ingress_network_can_be_trusted_as_a_whole() -> None:
    """On Kubernetes the ingress controller's pods change address: a CIDR names them all,
    and uvicorn is handed the network as it is."""
    from citywatch.center.serving import uvicorn_options

    options = uvicorn_options(CenterConfig(trusted_proxies=("10.42.0.0/16", "192.0.2.7")))
    assert options["forwarded_allow_ips"] == "10.42.0.0/16,192.0.2.7"
    with pytest.raises(ValueError, match="trusted_proxies"):
        CenterConfig(trusted_proxies=("10.42.0.0/33",))


def test_missing_certificate_files_are_named() -> None:
    """A wrong path in center.tls says which file and what to do."""
    from citywatch.center.serving import uvicorn_options

    tls = CenterTls(
        cert_file=Path("/nonexistent/center.crt"), key_file=Path("/nonexistent/center.key")
    )
    with pytest.raises(FileNotFoundError, match=re.escape("/nonexistent/center.crt")):
        uvicorn_options(CenterConfig(), tls=tls)
