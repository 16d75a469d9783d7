"""Bitcart's BTC daemon (Electrum) over JSON-RPC, through the same shared httpx client.

Why not the ``bitcart`` SDK (1.18): its mapped errors carry the spec's docstring instead of
the daemon's message (so "funding_sat too low …" or "Unknown channel …" is lost), its HTTP
timeout is a fixed 5 minutes, it needs its own aiohttp session with Basic auth set by hand
(and a second connection pool beside our httpx one), and respx cannot mock it. The protocol is
small: ``POST /`` with ``{"jsonrpc": "2.0", "id", "method", "params": [...positional, {named}]}``,
Basic auth, and **HTTP 200 for every error** with ``{"error": {"code", "message"}}``. So a
dozen lines over httpx keep the daemon's words, our timeouts and our retry policy.

The wallet is chosen by its key in the ``xpub`` named parameter (an xpub, or the seed of a hot
wallet). Keys never reach a log line; a daemon message that quotes one is scrubbed.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import structlog

from liquidityhelper.wallet.base import (
    AuthError,
    BadReplyError,
    DaemonError,
    InsufficientFundsError,
    InvalidInvoiceError,
    InvalidNodeIdError,
    InvoiceNotFoundError,
    LightningUnsupportedError,
    NoPathError,
    WalletError,
)
from liquidityhelper.wallet.bitcart_api import RetryPolicy, redact_url, send

log = structlog.get_logger(__name__)

_TYPED: dict[int, type[DaemonError]] = {
    InsufficientFundsError.code: InsufficientFundsError,
    InvalidNodeIdError.code: InvalidNodeIdError,
    InvalidInvoiceError.code: InvalidInvoiceError,
    NoPathError.code: NoPathError,
    LightningUnsupportedError.code: LightningUnsupportedError,
    InvoiceNotFoundError.code: InvoiceNotFoundError,
}


class DaemonNotConfiguredError(DaemonError):
    """The call needs the daemon's JSON-RPC and no ``daemon_url`` was given."""


def rpc_error(code: Any, message: Any, method: str) -> WalletError:
    """A JSON-RPC error object -> the typed error of ``base.py``."""
    text = str(message or "").strip() or "no message"
    if not isinstance(code, int) or isinstance(code, bool):
        return DaemonError(f"{method}: {text} (code {code!r})")
    if code in _TYPED:
        return _TYPED[code](text)
    if code == -32600:
        return AuthError(
            "the daemon refused our JSON-RPC credentials (-32600 Unauthorized): check "
            "daemon_user and daemon_password (Bitcart's defaults are electrum/electrumz)"
        )
    if code == -32000:
        return DaemonError(
            f"{method} needs a wallet and the daemon got no wallet key ({text})", code
        )
    if code == -32005:
        return DaemonError(
            f"the daemon could not load the wallet from its key on {method} ({text}): is the "
            "wallet's xpub/seed in Bitcart valid for this daemon's network?",
            code,
        )
    if code == -32601:
        return DaemonError(f"the daemon has no method {method!r} ({text})", code)
    return DaemonError(f"{method}: {text}", code)


class DaemonRPC:
    """``call(method, *args, key=…, **named)`` -> the ``result``, or a typed error."""

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        *,
        client: httpx.AsyncClient,
        timeout_seconds: float = 30,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"daemon URL must be http(s): {redact_url(url)!r}")
        if ":" in user or ":" in password:
            # The daemon splits "user:password" on every colon: such credentials never match.
            raise ValueError("daemon user and password must not contain ':'")
        self._url = url.rstrip("/") + "/"
        self.__auth = httpx.BasicAuth(user, password)
        self._client = client
        self._timeout = httpx.Timeout(timeout_seconds)
        self._retry = retry or RetryPolicy()
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"DaemonRPC(url={redact_url(self._url)!r})"

    async def call(
        self,
        method: str,
        *args: Any,
        key: str | None = None,
        idempotent: bool = True,
        timeout_seconds: float | None = None,
        **named: Any,
    ) -> Any:
        """Call ``method``; ``key`` selects the wallet. Reads are retried, writes are not."""
        if key is not None:
            named["xpub"] = key
        params: list[Any] = list(args)
        if named:
            params.append(named)
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        timeout = httpx.Timeout(timeout_seconds) if timeout_seconds else self._timeout
        status, body = await send(
            self._client,
            "POST",
            self._url,
            what=f"daemon {method}",
            idempotent=idempotent,
            policy=self._retry,
            timeout=timeout,
            json_body=payload,
            auth=self.__auth,
        )
        if status in (401, 403):  # a proxy in front; the daemon itself answers 200
            raise AuthError(f"the daemon's HTTP endpoint refused us ({status}) on {method}")
        if status != 200:
            raise DaemonError(f"{method}: HTTP {status}: {_scrub(str(body)[:200], key)}")
        if not isinstance(body, dict):
            raise BadReplyError(f"daemon {method}: reply is not a JSON-RPC object")
        error = body.get("error")
        if error:
            if not isinstance(error, dict):
                raise DaemonError(f"{method}: {_scrub(str(error)[:300], key)}")
            raise rpc_error(error.get("code"), _scrub(str(error.get("message", "")), key), method)
        if "result" not in body:
            raise BadReplyError(f"daemon {method}: reply has neither result nor error")
        return body["result"]


def _scrub(text: str, key: str | None) -> str:
    # Electrum names wallet files after their key; an error about the file would quote it.
    return text.replace(key, "***") if key and len(key) >= 8 else text
