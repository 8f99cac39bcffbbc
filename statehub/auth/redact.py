"""Keep tokens out of logs, whatever level an operator runs the server at.

uvicorn logs a WebSocket handshake's path with its query string at INFO (on
``uvicorn.error``, not the access log), and browsers can only send a token on a
WebSocket in the query string. This filter rewrites such records before any
handler sees them.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactTokens", "install_redaction", "redact"]

_QUERY = re.compile(r"([?&](?:token|access_token)=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9_\-+/=.]+", re.IGNORECASE)
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar")


def redact(text: str) -> str:
    return _BEARER.sub(r"\1[redacted]", _QUERY.sub(r"\1[redacted]", text))


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_redaction(loggers: tuple[str, ...] = SERVER_LOGGERS) -> None:
    """Add the filter to each logger once (filters on a logger see only its own records)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
