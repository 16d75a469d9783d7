"""structlog set-up: console on a terminal, JSON lines otherwise, secrets scrubbed.

Levels follow the seed's Logging section:
DEBUG diagnosis detail; INFO things working as expected; WARNING a potential problem that is
sometimes normal (a top-up is due, a peer is offline); ERROR a function failed but the daemon
goes on; CRITICAL a main duty cannot be done (Bitcart unreachable for several cycles).

Every money decision is one event carrying its numbers: sats, wallet, store, reason.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

# Keys whose values are never shown, whatever they hold.
_SECRET_KEY = re.compile(
    r"(token|password|passwd|secret|seed|xpub|mnemonic|api_key|authorization)", re.IGNORECASE
)
_MASK = "***"
_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that they are masked wherever they appear in a log line."""
    for v in values:
        if v and len(v) >= 4:  # masking "a" everywhere would garble every line
            _secrets.add(v)


def _scrub_text(text: str) -> str:
    for s in _secrets:
        if s in text:
            text = text.replace(s, _MASK)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, dict):
        return {k: (_MASK if _SECRET_KEY.search(str(k)) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return _scrub_text(str(value))


def scrub_secrets(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secret keys and every registered secret value."""
    for key in list(event_dict):
        if _SECRET_KEY.search(key):
            event_dict[key] = _MASK
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog once for the process. Logs go to stderr unless a stream is given."""
    stream = stream if stream is not None else sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if use_console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            scrub_secrets,  # last before rendering, so exception text is scrubbed too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
