"""How uvicorn serves the center: the bind address, HTTPS, and which proxies are believed.

One function for ``citywatch center serve`` and the tests, so what is tested is what runs.
Proxy headers are off unless ``center.trusted_proxies`` names the proxies: uvicorn believes
X-Forwarded-For from 127.0.0.1 by default, which would let any local client pose as another
address and slip past the per-address limits on failed authentication.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from citywatch.config.center import CenterConfig, CenterTls

__all__ = ["base_url", "uvicorn_options"]


def uvicorn_options(
    center: CenterConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    tls: CenterTls | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config``. ``tls`` is the certificate
    to serve with (``center.tls`` resolved: the caller turns ``embedded`` into files)."""
    options: dict[str, Any] = {
        "host": host or center.listen,
        "port": center.port if port is None else port,
        "proxy_headers": bool(center.trusted_proxies),
        "forwarded_allow_ips": ",".join(str(a) for a in center.trusted_proxies) or None,
    }
    if tls is not None:
        for path in (tls.cert_file, tls.key_file):
            if not Path(path).is_file():
                raise FileNotFoundError(
                    f"center.tls: {path} does not exist (give the center's certificate and"
                    " key, or tls: embedded with `citywatch stack up` run first)"
                )
        options |= {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file)}
    return options


def base_url(options: dict[str, Any]) -> str:
    """The URL the center answers on with these options."""
    scheme = "https" if "ssl_certfile" in options else "http"
    return f"{scheme}://{options['host']}:{options['port']}"
