"""Bitcart's merchants REST API over one shared ``httpx.AsyncClient``.

This layer moves JSON: it returns Bitcart's bodies as they are (``bitcart.py`` parses them
with ``parsing.py``) and turns every failure into the typed errors of ``base.py``:

- transport failures, 502/503/504 and malformed JSON from a 2xx are retried with tenacity
  (bounded attempts, exponential backoff with full jitter), then raise ``TransientError``;
- money calls (lnpay, channel open/close, invoice and wallet creation) are **never** retried once
  the request may have reached Bitcart: only a connection that was never made (connect error or
  connect/pool timeout) is retried; anything later surfaces at once as ``TransientError`` and the
  caller reconciles through its journal;
- 401/403 -> ``AuthError``, 404 -> ``NotFoundError``, other 4xx -> ``APIError`` with Bitcart's
  own ``detail``, other 5xx -> ``TransientError`` (not retried).

The retry helper here is shared with ``daemon_rpc.py`` so both speak the same policy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base, wait_random_exponential

from liquidityhelper.wallet.base import (
    APIError,
    AuthError,
    BadReplyError,
    NotFoundError,
    TransientError,
    WalletError,
)
from liquidityhelper.wallet.parsing import error_detail, parse_page

log = structlog.get_logger(__name__)

RETRY_STATUSES = frozenset({502, 503, 504})
# Raised before a single byte of the request left: safe to retry even a payment.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MAX_PAGE_SIZE = 1000  # Bitcart's cap on ?limit=


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded attempts with exponential backoff and full jitter (waits are injectable)."""

    attempts: int = 4
    wait_base_seconds: float = 0.25
    wait_max_seconds: float = 8.0
    wait: wait_base | None = None  # overrides the two numbers above (tests pass wait_none())

    def waiter(self) -> wait_base:
        if self.wait is not None:
            return self.wait
        return wait_random_exponential(multiplier=self.wait_base_seconds, max=self.wait_max_seconds)


class _Retryable(Exception):
    """One attempt failed in a way that may pass; ``sent`` says whether Bitcart may have acted."""

    def __init__(self, reason: str, *, sent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent


def redact_url(url: str) -> str:
    """A URL without its user:password part, for messages and reprs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _decode_json(response: httpx.Response) -> tuple[bool, Any]:
    try:
        return True, response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False, response.text[:200]


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    idempotent: bool,
    policy: RetryPolicy,
    timeout: httpx.Timeout,
    json_body: Any = None,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
) -> tuple[int, Any]:
    """One HTTP exchange under the retry policy -> (status, decoded JSON or error text).

    ``what`` names the call in logs and errors; it must hold no secret.
    """

    async def attempt() -> tuple[int, Any]:
        try:
            response = await client.request(
                method,
                url,
                json=json_body,
                params=params,
                headers=headers,
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=timeout,
            )
        except httpx.UnsupportedProtocol as e:
            raise WalletError(f"{what}: unusable URL ({e})") from None
        except _NOT_SENT as e:
            raise _Retryable(f"{type(e).__name__}: {e}", sent=False) from None
        except httpx.TransportError as e:
            raise _Retryable(f"{type(e).__name__}: {e}", sent=True) from None
        if response.status_code in RETRY_STATUSES:
            raise _Retryable(f"HTTP {response.status_code}", sent=True)
        ok, body = _decode_json(response)
        if not ok and 200 <= response.status_code < 300:
            raise _Retryable(f"malformed JSON in a {response.status_code} reply", sent=True)
        return response.status_code, body

    def worth_retrying(exc: BaseException) -> bool:
        return isinstance(exc, _Retryable) and (idempotent or not exc.sent)

    def before_sleep(state: RetryCallState) -> None:
        # Retries are routine: DEBUG. One WARNING when the call gives up, below.
        exc = state.outcome.exception() if state.outcome else None
        log.debug(
            "http_retry",
            reason=getattr(exc, "reason", str(exc)),
            call=what,
            attempt=state.attempt_number,
        )

    try:
        async for attempt_state in AsyncRetrying(
            stop=stop_after_attempt(max(1, policy.attempts)),
            wait=policy.waiter(),
            retry=retry_if_exception(worth_retrying),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt_state:
                return await attempt()
    except _Retryable as e:
        log.warning(
            "http_gave_up",
            reason=e.reason,
            call=what,
            url=_without_secrets(str(url)),
            attempts=max(1, policy.attempts),
        )
        if e.sent and not idempotent:
            raise TransientError(
                f"{what}: {e.reason} after the request may have been received; not retried "
                "(a money call): reconcile before trying again"
            ) from None
        raise TransientError(f"{what}: {e.reason} (gave up after retries)") from None
    raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying always ends above


def _without_secrets(url: str) -> str:
    """The URL to name in a log line: scheme, host, port and path; never userinfo or query."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


class BitcartAPI:
    """Thin REST client: paths, auth, pagination and error mapping; bodies stay raw JSON."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        client: httpx.AsyncClient,
        timeout_seconds: float = 30,
        pay_timeout_seconds: float = 180,
        retry: RetryPolicy | None = None,
        page_size: int = 100,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Bitcart API URL must be http(s): {redact_url(base_url)!r}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        self._base = base_url.rstrip("/")
        self.__token = token
        self._client = client
        self._timeout = httpx.Timeout(timeout_seconds)
        # Paying waits for the route search; connecting must still fail fast.
        self._pay_timeout = httpx.Timeout(pay_timeout_seconds, connect=timeout_seconds)
        self._retry = retry or RetryPolicy()
        self.page_size = page_size

    def __repr__(self) -> str:
        return f"BitcartAPI(base_url={redact_url(self._base)!r})"

    # -- plumbing ---------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> Any:
        status, body = await send(
            self._client,
            method,
            self._base + path,
            what=f"{method} {path}",
            idempotent=idempotent,
            policy=self._retry,
            timeout=timeout or self._timeout,
            json_body=json_body,
            params=params,
            headers={"Authorization": f"Bearer {self.__token}", "Accept": "application/json"},
        )
        if 200 <= status < 300:
            return body
        raise self._error(status, body, method, path)

    @staticmethod
    def _error(status: int, body: Any, method: str, path: str) -> WalletError:
        detail = error_detail(body)
        if status in (401, 403):
            return AuthError(
                f"Bitcart refused the API token on {method} {path} ({status}: {detail}): the "
                "token is missing, wrong or lacks a scope; use a full_control token of the "
                "user who owns the stores"
            )
        if status == 404:
            return NotFoundError(f"Bitcart has no {path} (404: {detail})")
        if 400 <= status < 500:
            return APIError(status, detail, path)
        if status >= 500:
            return TransientError(f"Bitcart failed on {method} {path} ({status}: {detail})")
        return BadReplyError(f"unexpected HTTP {status} on {method} {path}: {detail}")

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self._request("GET", path, idempotent=True, params=params)

    async def get_all(self, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every row of a paginated list: offset steps by the page size, never by ``count``."""
        rows: list[Any] = []
        seen: set[str] = set()
        offset = 0
        for _ in range(1_000_000 // self.page_size + 1):
            body = await self.get(
                path, {**(params or {}), "limit": self.page_size, "offset": offset}
            )
            page, count, _next = parse_page(body)
            for row in page:
                # Rows are newest first: one created while we page shifts the rest by one,
                # so the same row can show up twice.
                row_id = str(row.get("id", ""))
                if row_id and row_id in seen:
                    continue
                seen.add(row_id)
                rows.append(row)
            offset += self.page_size
            if len(page) < self.page_size or offset >= count:
                return rows
        raise BadReplyError(f"GET {path}: pagination did not end")

    # -- stores and wallets -----------------------------------------------------------------

    async def list_stores(self) -> list[Any]:
        return await self.get_all("/stores")

    async def get_store(self, store_id: str) -> Any:
        return await self.get(f"/stores/{_seg(store_id)}")

    async def update_store(self, store_id: str, changes: Mapping[str, Any]) -> Any:
        # PATCH is a partial update setting fields to given values: repeating it is harmless.
        return await self._request(
            "PATCH", f"/stores/{_seg(store_id)}", idempotent=True, json_body=dict(changes)
        )

    async def list_wallets(self) -> list[Any]:
        return await self.get_all("/wallets")

    async def get_wallet(self, wallet_id: str) -> Any:
        return await self.get(f"/wallets/{_seg(wallet_id)}")

    async def wallet_balance(self, wallet_id: str) -> Any:
        return await self.get(f"/wallets/{_seg(wallet_id)}/balance")

    async def checkln(self, wallet_id: str) -> Any:
        return await self.get(f"/wallets/{_seg(wallet_id)}/checkln")

    async def channels(self, wallet_id: str) -> Any:
        return await self.get(f"/wallets/{_seg(wallet_id)}/channels")

    async def create_seed(self) -> Any:
        """POST /wallets/create: a fresh hot-wallet seed (a secret: never log the reply)."""
        return await self._request(
            "POST",
            "/wallets/create",
            idempotent=False,
            json_body={"currency": "btc", "hot_wallet": True},
        )

    async def create_wallet(self, body: Mapping[str, Any]) -> Any:
        return await self._request("POST", "/wallets", idempotent=False, json_body=dict(body))

    # -- money ------------------------------------------------------------------------------

    async def open_channel(self, wallet_id: str, connection_string: str, amount_btc: str) -> Any:
        return await self._request(
            "POST",
            f"/wallets/{_seg(wallet_id)}/channels/open",
            idempotent=False,
            json_body={"node_id": connection_string, "amount": amount_btc},
            timeout=self._pay_timeout,  # connects to the peer and funds: slower than a read
        )

    async def close_channel(self, wallet_id: str, channel_point: str, force: bool) -> Any:
        return await self._request(
            "POST",
            f"/wallets/{_seg(wallet_id)}/channels/close",
            idempotent=False,
            json_body={"channel_point": channel_point, "force": force},
            timeout=self._pay_timeout,
        )

    async def lnpay(self, wallet_id: str, bolt11: str) -> Any:
        return await self._request(
            "POST",
            f"/wallets/{_seg(wallet_id)}/lnpay",
            idempotent=False,
            json_body={"invoice": bolt11},
            timeout=self._pay_timeout,
        )

    # -- invoices ---------------------------------------------------------------------------

    async def create_invoice(self, body: Mapping[str, Any]) -> Any:
        return await self._request("POST", "/invoices", idempotent=False, json_body=dict(body))

    async def batch_invoices(self, ids: list[str], command: str) -> Any:
        """``POST /invoices/batch``: one command (``mark_invalid`` …) on many invoices."""
        return await self._request(
            "POST",
            "/invoices/batch",
            idempotent=True,  # marking invalid twice is the same as once
            json_body={"ids": list(ids), "command": command},
        )

    async def list_invoices(self, query: str) -> list[Any]:
        """Invoices matching Bitcart's search syntax (``store_id:ID status:paid …``), all pages."""
        return await self.get_all("/invoices", {"query": query})


def _seg(value: str) -> str:
    """An id as one path segment (an id with a slash must not reach another route)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"an id must be a non-empty string, got {value!r}")
    return quote(value, safe="")
