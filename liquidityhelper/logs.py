"""structlog set-up: console on a terminal, JSON lines otherwise, secrets scrubbed.

Levels follow the seed's Logging section:
DEBUG diagnosis detail; INFO things working as expected; WARNING a potential problem that is
sometimes normal (a top-up is due, a peer is offline); ERROR a function failed but the daemon
goes on; CRITICAL a main duty cannot be done (Bitcart unreachable for several cycles).

Every money decision is one event carrying its numbers: sats, wallet, store, reason.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict

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


def drop_none(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """A field that is not known is left out, not written as ``None``."""
    return {k: v for k, v in event_dict.items() if v is not None}


def event_and_reason_first(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """What happened and why lead the line; the numbers follow."""
    head = {k: event_dict[k] for k in ("event", "reason") if k in event_dict}
    return {**head, **{k: v for k, v in event_dict.items() if k not in head}}


# syslog priorities for journald's "<N>" line prefix (sd-daemon(3)).
_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


class JournaldLines:
    """Prefix each rendered line with its syslog priority, so ``journalctl -p warning`` works."""

    def __init__(self, renderer: Any) -> None:
        self.renderer = renderer

    def __call__(self, logger: Any, method: str, event_dict: EventDict) -> str:
        level = str(event_dict.get("level", method)).lower()
        return f"<{_PRIORITY.get(level, 6)}>{self.renderer(logger, method, event_dict)}"


def under_journald(environ: dict[str, str] | None = None) -> bool:
    """systemd sets JOURNAL_STREAM when stdout/stderr go to the journal."""
    return bool((os.environ if environ is None else environ).get("JOURNAL_STREAM"))


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog once for the process. Logs go to stderr unless a stream is given.

    Under journald (``JOURNAL_STREAM``) each line carries its priority and no timestamp of
    its own: the journal stamps every line already.
    """
    stream = stream if stream is not None else sys.stderr
    journald = under_journald()
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty() and not journald, sort_keys=False)
        if use_console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    if journald:
        renderer = JournaldLines(renderer)
    stamp = [] if journald else [structlog.processors.TimeStamper(fmt="iso", utc=True)]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            *stamp,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            drop_none,
            event_and_reason_first,
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
