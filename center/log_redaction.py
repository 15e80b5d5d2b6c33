"""Keep credentials out of the logs: a logging filter that masks ``access_token=``, a signed
URL's ``sig=`` and ``Authorization: Bearer …`` in every record of the loggers the center
writes to (uvicorn's access log prints each request's full path and query).
"""

from __future__ import annotations

import logging
import re

SECRET_PARAMS = ("access_token", "sig", "token")
_QUERY = re.compile(rf"((?:^|[?&;\s\"']){'|'.join(SECRET_PARAMS)})=[^&\s\"']*", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)[^\s\"',]+", re.IGNORECASE)
MASK = "[redacted]"
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "citywatch.center")


def redact(text: str) -> str:
    """``text`` with token and signature values replaced by :data:`MASK`."""
    return _BEARER.sub(rf"\1{MASK}", _QUERY.sub(rf"\1={MASK}", text))


class RedactSecrets(logging.Filter):
    """Rewrites a record's message and arguments before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def install() -> None:
    """Add the filter to the center's loggers and to the root logger's handlers (once; safe
    to call again, e.g. after uvicorn configured its logging)."""
    targets: list[logging.Filterer] = [logging.getLogger(name) for name in LOGGERS]
    targets += logging.getLogger().handlers
    for target in targets:
        if not any(isinstance(f, RedactSecrets) for f in target.filters):
            target.addFilter(RedactSecrets())
