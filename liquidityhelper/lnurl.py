"""Lightning address → verified BOLT11 invoice (LUD-01, LUD-06, LUD-16).

Money is paid to whatever invoice this module returns, so every server reply is hostile until
checked: no redirects, capped bodies, an overall deadline per request, the callback pinned to the
address's host, and the invoice checked for amount, description hash, network, expiry, duplicate
fields and (optionally) payee. Errors are :class:`LnurlError` with a short ``reason`` code; their
messages quote at most a short prefix of an invoice and only sanitised server text.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import bech32
import bolt11
import httpx
import structlog

log = structlog.get_logger(__name__)

DEFAULT_MAX_BODY_BYTES = 64_000
DEFAULT_TIMEOUT_SECONDS = 10.0
# 21M BTC in msat: anything above is not an amount, it is an attack or a bug.
MAX_MSAT = 21_000_000 * 100_000_000 * 1000

NETWORK_PREFIXES: Mapping[str, str] = {
    "bc": "bc",
    "mainnet": "bc",
    "bitcoin": "bc",
    "tb": "tb",
    "testnet": "tb",
    "testnet3": "tb",
    "testnet4": "tb",
    "tbs": "tbs",
    "signet": "tbs",
    "bcrt": "bcrt",
    "regtest": "bcrt",
}

REASONS = frozenset(
    {
        "bad_address",
        "http_error",
        "timeout",
        "redirect_refused",
        "body_too_large",
        "not_json",
        "status_error",
        "bad_pay_request",
        "callback_host_mismatch",
        "amount_out_of_range",
        "bad_invoice",
        "wrong_network",
        "invoice_amount_mismatch",
        "description_hash_mismatch",
        "invoice_expired",
        "invoice_expires_too_soon",
        "payee_changed",
    }
)
# Worth asking again later; every other reason is the server misbehaving or a bad address.
TRANSIENT_REASONS = frozenset({"http_error", "timeout"})

_USER_RE = re.compile(r"[a-z0-9._+-]{1,128}")
_HOST_PORT_RE = re.compile(r"(?P<host>\[[0-9a-f:.]+\]|[^\[\]:/?#@\s\\]+)(?::(?P<port>[0-9]{1,5}))?")
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MAX_TEXT = 2048
# BOLT11 fields that must appear at most once, and the data lengths (in 5-bit words) of the
# fixed-size ones. A reader keeping the first copy and a node keeping the last would disagree on
# the payment hash we reconcile by, so duplicates are refused outright.
_SINGLE_FIELDS = frozenset("psdhnxc9")
_FIELD_WORDS = {"p": 52, "s": 52, "h": 52, "n": 53}
_SIGNATURE_WORDS = 104  # 65 bytes


class LnurlError(Exception):
    """A lightning address or LNURL server we refuse to pay through.

    ``reason`` is a short snake_case code (see :data:`REASONS`); ``message`` names the problem
    and the numbers; ``details`` holds the same numbers for structured logs.
    """

    def __init__(
        self, reason: str, message: str, *, details: Mapping[str, int | str] | None = None
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.details: dict[str, int | str] = dict(details or {})

    @property
    def transient(self) -> bool:
        """True when asking again later may succeed (network trouble, not a hostile reply)."""
        return self.reason in TRANSIENT_REASONS


@dataclass(frozen=True, slots=True)
class LightningAddress:
    """Where to ask for a pay request. ``user`` is empty for LNURL and URL forms."""

    user: str
    host: str  # lowercase ASCII hostname or IP literal (IPv6 without brackets), no port
    url: str

    def __str__(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.url


@dataclass(frozen=True, slots=True)
class PayRequest:
    """A checked LUD-06 payRequest: the callback is on the address's host."""

    callback: str
    min_sendable_msat: int
    max_sendable_msat: int
    metadata: str
    comment_allowed: int
    address: LightningAddress


@dataclass(frozen=True, slots=True)
class VerifiedInvoice:
    """A BOLT11 invoice that passed every check for the amount asked."""

    bolt11: str = field(repr=False)
    payment_hash: str
    amount_msat: int
    payee_pubkey: str
    expires_at: int  # unix seconds
    description_hash: str
    address: LightningAddress


# ---------------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------------


def network_prefix(network: str) -> str:
    """BOLT11 currency prefix ("bc", "tb", "tbs", "bcrt") for a network name or prefix."""
    prefix = NETWORK_PREFIXES.get(network.strip().lower()) if isinstance(network, str) else None
    if prefix is None:
        raise ValueError(f"unknown network {network!r}; use one of {sorted(NETWORK_PREFIXES)}")
    return prefix


def parse_lightning_address(address: str, *, loopback_http: bool = True) -> LightningAddress:
    """Parse ``user@domain[:port]``, an ``lnurl1…`` bech32 LNURL or a direct https URL.

    Plain http is allowed only for .onion (Tor encrypts) and, when ``loopback_http``, for
    loopback hosts (tests, regtest).
    """
    if not isinstance(address, str):
        raise LnurlError("bad_address", f"expected a string, got {type(address).__name__}")
    text = address.strip()
    if not text or len(text) > _MAX_TEXT:
        raise LnurlError("bad_address", f"address is empty or longer than {_MAX_TEXT} chars")
    if text[:10].lower() == "lightning:":
        text = text[10:]
    lowered = text.lower()
    if lowered.startswith("lnurl1"):
        return _parse_url(_decode_lnurl(text), loopback_http)
    if lowered.startswith(("https://", "http://")):
        return _parse_url(text, loopback_http)
    if "://" in lowered:
        raise LnurlError("bad_address", "only https (or http on loopback/.onion) URLs")
    # LUD-16 user names are lowercase, so "Alice@Example.com" can only mean alice@example.com.
    return _parse_user_at_host(lowered, loopback_http)


def _parse_user_at_host(text: str, loopback_http: bool) -> LightningAddress:
    user, at, host_port = text.partition("@")
    if not at or "@" in host_port:
        raise LnurlError("bad_address", "expected exactly one '@' as in user@domain")
    if not _USER_RE.fullmatch(user) or user in {".", ".."}:
        raise LnurlError("bad_address", "user part must be 1-128 chars of a-z 0-9 - _ . +")
    match = _HOST_PORT_RE.fullmatch(host_port)
    host = _normalise_host(match["host"]) if match else None
    if match is None or host is None:
        raise LnurlError("bad_address", f"invalid domain {_sanitise(host_port, 60)!r}")
    port = _check_port(match["port"])
    scheme = "http" if _plain_http_ok(host, loopback_http) else "https"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return LightningAddress(user, host, f"{scheme}://{netloc}/.well-known/lnurlp/{user}")


def _check_port(port: str | None) -> int | None:
    if port is None:
        return None
    number = int(port)
    if not 1 <= number <= 65535:
        raise LnurlError("bad_address", f"port {number} is outside 1..65535")
    return number


def _decode_lnurl(text: str) -> str:
    hrp, words = bech32.bech32_decode(text)
    if hrp != "lnurl" or words is None:
        raise LnurlError("bad_address", "not a valid bech32 LNURL")
    raw = bech32.convertbits(words, 5, 8, False)
    if raw is None:
        raise LnurlError("bad_address", "LNURL has bad bech32 padding")
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise LnurlError("bad_address", "LNURL does not hold a UTF-8 URL") from None


def _parse_url(text: str, loopback_http: bool = True) -> LightningAddress:
    url, host = _checked_url(text)
    if url is None or host is None:
        raise LnurlError("bad_address", f"invalid URL {_sanitise(text, 60)!r}")
    if url.scheme == "http" and not _plain_http_ok(host, loopback_http):
        raise LnurlError("bad_address", "http is allowed only for loopback and .onion hosts")
    return LightningAddress("", host, str(url))


def _checked_url(text: str) -> tuple[httpx.URL | None, str | None]:
    """The URL without fragment and its normalised host, or Nones if unusable."""
    try:
        url = httpx.URL(text)
        raw_host = url.raw_host.decode("ascii")
    except (httpx.InvalidURL, ValueError, TypeError, UnicodeError):
        return None, None
    if url.scheme not in {"http", "https"} or url.userinfo or not raw_host:
        return None, None
    return url.copy_with(fragment=None), _normalise_host(raw_host)


def _normalise_host(host: str) -> str | None:
    """Lowercase ASCII hostname or compressed IP literal; None if not a valid host."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if "%" in host:  # zone ids have no business in an address
            return None
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
    if ":" in host:
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None
    return host


def _plain_http_ok(host: str, loopback_http: bool = True) -> bool:
    if host.endswith(".onion"):
        return True
    return loopback_http and is_loopback(host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# HTTP: one GET, no redirects, capped body, overall deadline
# ---------------------------------------------------------------------------------------------


async def _get_json(
    client: httpx.AsyncClient,
    url: httpx.URL,
    *,
    stage: str,
    max_body_bytes: int,
    timeout: float,
) -> dict[str, Any]:
    try:
        async with asyncio.timeout(timeout):
            status, body = await _get_capped(client, url, max_body_bytes, timeout)
    except (TimeoutError, httpx.TimeoutException):
        raise LnurlError("timeout", f"{stage}: no complete answer within {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise LnurlError("http_error", f"{stage}: {type(exc).__name__}") from None
    if status != 200:
        said = _error_reason(body)
        suffix = f" ({said})" if said else ""
        raise LnurlError(
            "http_error", f"{stage} answered HTTP {status}{suffix}", details={"status": status}
        )
    data = _json_object(body, stage)
    status_field = data.get("status")
    if isinstance(status_field, str) and status_field.upper() == "ERROR":
        said = _sanitise(data.get("reason", "no reason given"))
        raise LnurlError("status_error", f"{stage} server says: {said}")
    return data


async def _get_capped(
    client: httpx.AsyncClient, url: httpx.URL, max_body_bytes: int, timeout: float
) -> tuple[int, bytes]:
    # A bare Request (not client.build_request) so the shared client's default headers, cookies
    # and auth -- a Bitcart token, say -- never reach an LNURL server.
    request = httpx.Request(
        "GET",
        url,
        headers={
            "Accept": "application/json",
            # Compressed bodies could expand far past the cap inside one chunk.
            "Accept-Encoding": "identity",
            "User-Agent": "liquidityhelper",
        },
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )
    response = await client.send(request, stream=True, follow_redirects=False, auth=None)
    try:
        status = response.status_code
        if 300 <= status < 400:
            where = _sanitise(response.headers.get("location", "nowhere"), 60)
            raise LnurlError(
                "redirect_refused",
                f"HTTP {status} redirect to {where!r} not followed",
                details={"status": status},
            )
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in {"", "identity"}:
            raise LnurlError(
                "http_error", f"unrequested Content-Encoding {_sanitise(encoding, 20)!r}"
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            raise _too_large(max_body_bytes, declared=int(declared))
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > max_body_bytes:
                raise _too_large(max_body_bytes)
        return status, bytes(body)
    finally:
        await response.aclose()


def _too_large(max_body_bytes: int, *, declared: int | None = None) -> LnurlError:
    said = f"declares {declared} bytes" if declared is not None else "kept going"
    return LnurlError(
        "body_too_large",
        f"reply {said}, past the {max_body_bytes}-byte cap",
        details={"max_body_bytes": max_body_bytes},
    )


def _json_object(body: bytes, stage: str) -> dict[str, Any]:
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise LnurlError("not_json", f"{stage} reply is not JSON ({len(body)} bytes)") from None
    if not isinstance(data, dict):
        raise LnurlError("not_json", f"{stage} reply is JSON {type(data).__name__}, not an object")
    return data


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _error_reason(body: bytes) -> str | None:
    """The sanitised ``reason`` of a ``{"status": "ERROR"}`` body, if it is one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict) and "reason" in data:
        return _sanitise(data["reason"])
    return None


def _sanitise(value: object, limit: int = 120) -> str:
    """Server text made safe for a log line: printable, single-line, short."""
    text = value if isinstance(value, str) else type(value).__name__
    text = text[: limit * 2]
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= limit else text[:limit] + "…"


# ---------------------------------------------------------------------------------------------
# LUD-06 pay request
# ---------------------------------------------------------------------------------------------


async def fetch_pay_request(
    client: httpx.AsyncClient,
    address: str | LightningAddress,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> PayRequest:
    """Fetch and check the payRequest behind a lightning address (or LNURL / URL)."""
    parsed = address if isinstance(address, LightningAddress) else parse_lightning_address(address)
    try:
        data = await _get_json(
            client,
            httpx.URL(parsed.url),
            stage="pay request",
            max_body_bytes=max_body_bytes,
            timeout=timeout,
        )
        return _parse_pay_request(data, parsed)
    except LnurlError as exc:
        exc.details.setdefault("stage", "pay_request")
        raise


def _parse_pay_request(data: Mapping[str, Any], address: LightningAddress) -> PayRequest:
    tag = data.get("tag")
    if tag != "payRequest":
        raise LnurlError("bad_pay_request", f"tag is {_sanitise(tag, 40)!r}, not 'payRequest'")
    callback = _check_callback(data.get("callback"), address)
    min_msat = _msat_field(data, "minSendable")
    max_msat = _msat_field(data, "maxSendable")
    if min_msat > max_msat:
        raise LnurlError(
            "bad_pay_request",
            f"minSendable {min_msat} msat > maxSendable {max_msat} msat",
            details={"min_msat": min_msat, "max_msat": max_msat},
        )
    return PayRequest(
        callback=callback,
        min_sendable_msat=min_msat,
        max_sendable_msat=max_msat,
        metadata=_check_metadata(data.get("metadata")),
        comment_allowed=_comment_allowed(data.get("commentAllowed")),
        address=address,
    )


def _check_callback(value: object, address: LightningAddress) -> str:
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise LnurlError("bad_pay_request", "callback is missing or not a short string")
    url, host = _checked_url(value)
    if url is None or host is None:
        raise LnurlError("bad_pay_request", f"callback {_sanitise(value, 60)!r} is not a URL")
    if url.scheme == "http" and not _plain_http_ok(host):
        raise LnurlError("bad_pay_request", f"callback on {host} is plain http")
    if host != address.host:
        raise LnurlError(
            "callback_host_mismatch",
            f"callback is on {_sanitise(host, 80)}, the address is on {address.host}",
        )
    return str(url)


def _msat_field(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    # bool is an int in Python; JSON true is not an amount.
    if not isinstance(value, int) or isinstance(value, bool):
        raise LnurlError(
            "bad_pay_request", f"{name} must be an integer of msat, got {type(value).__name__}"
        )
    if value <= 0:
        raise LnurlError("bad_pay_request", f"{name} {value} msat is not positive")
    if value > MAX_MSAT:
        raise LnurlError("bad_pay_request", f"{name} exceeds 21M BTC ({MAX_MSAT} msat)")
    return value


def _check_metadata(value: object) -> str:
    if not isinstance(value, str):
        raise LnurlError("bad_pay_request", "metadata is missing or not a string")
    try:
        entries = json.loads(value)
    except (ValueError, RecursionError):
        raise LnurlError("bad_pay_request", "metadata is not a JSON string") from None
    if not isinstance(entries, list) or not all(
        isinstance(entry, list) and len(entry) >= 2 and isinstance(entry[0], str)
        for entry in entries
    ):
        raise LnurlError("bad_pay_request", "metadata is not an array of [type, content] pairs")
    if not any(entry[0] == "text/plain" and isinstance(entry[1], str) for entry in entries):
        raise LnurlError("bad_pay_request", "metadata has no text/plain entry")
    return value


def _comment_allowed(value: object) -> int:
    # LUD-12 comments never carry money; a junk value just means "no comments".
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000:
        return value
    return 0


# ---------------------------------------------------------------------------------------------
# LUD-06 callback and BOLT11 checks
# ---------------------------------------------------------------------------------------------


async def fetch_invoice(
    client: httpx.AsyncClient,
    pay_request: PayRequest,
    amount_msat: int,
    *,
    network: str,
    now: float | None = None,
    min_expiry_seconds: int = 60,
    expected_payee: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> VerifiedInvoice:
    """Ask the callback for an invoice of exactly ``amount_msat`` and verify it.

    ``network`` is "mainnet"/"testnet"/"signet"/"regtest" or a BOLT11 prefix; an unknown name
    raises ValueError (a configuration bug, not a server fault).
    """
    prefix = network_prefix(network)
    if not isinstance(amount_msat, int) or isinstance(amount_msat, bool):
        raise TypeError(f"amount_msat must be an int, got {type(amount_msat).__name__}")
    address = pay_request.address
    try:
        _check_sendable(pay_request, amount_msat)
        callback = _check_callback(pay_request.callback, address)
        url = httpx.URL(callback).copy_set_param("amount", str(amount_msat))
        data = await _get_json(
            client, url, stage="callback", max_body_bytes=max_body_bytes, timeout=timeout
        )
        pr = data.get("pr")
        if not isinstance(pr, str) or not pr:
            raise LnurlError("bad_invoice", "callback reply has no 'pr' string")
        invoice = _verify_invoice(
            pr,
            amount_msat=amount_msat,
            metadata=pay_request.metadata,
            prefix=prefix,
            now=time.time() if now is None else now,
            min_expiry_seconds=min_expiry_seconds,
            expected_payee=expected_payee,
            address=address,
        )
    except LnurlError as exc:
        # The caller logs the refusal once, with the wallet and payment it concerns.
        exc.details.setdefault("stage", "invoice")
        exc.details.setdefault("asked_msat", amount_msat)
        raise
    log.debug(
        "lnurl_invoice_verified",
        host=address.host,
        amount_msat=invoice.amount_msat,
        expires_at=invoice.expires_at,
    )
    return invoice


def _check_sendable(pay_request: PayRequest, amount_msat: int) -> None:
    low, high = pay_request.min_sendable_msat, pay_request.max_sendable_msat
    if not low <= amount_msat <= high:
        raise LnurlError(
            "amount_out_of_range",
            f"asked {amount_msat} msat, server accepts {low}..{high} msat",
            details={"min_msat": low, "max_msat": high},
        )


def _verify_invoice(
    pr: str,
    *,
    amount_msat: int,
    metadata: str,
    prefix: str,
    now: float,
    min_expiry_seconds: int,
    expected_payee: str | None,
    address: LightningAddress,
) -> VerifiedInvoice:
    decoded = _decode_bolt11(pr)
    short = _short(pr)
    if decoded.currency != prefix:
        raise LnurlError(
            "wrong_network",
            f"invoice {short} is for '{decoded.currency}', expected '{prefix}'",
        )
    _check_fields(pr.lower(), decoded)
    _check_amount(decoded, amount_msat, short)
    _check_description_hash(decoded, metadata, short)
    expires_at = _check_expiry(decoded, now, min_expiry_seconds, short)
    payee = str(decoded.payee or "")
    if expected_payee is not None and payee != expected_payee.strip().lower():
        raise LnurlError(
            "payee_changed", f"invoice {short} pays node {payee}, expected {expected_payee}"
        )
    return VerifiedInvoice(
        bolt11=pr.lower(),
        payment_hash=decoded.payment_hash,
        amount_msat=amount_msat,
        payee_pubkey=payee,
        expires_at=expires_at,
        description_hash=str(decoded.description_hash),
        address=address,
    )


def _short(pr: str) -> str:
    return _sanitise(pr, 20)


def _decode_bolt11(pr: str) -> bolt11.Bolt11:
    if len(pr) > DEFAULT_MAX_BODY_BYTES:
        raise LnurlError("bad_invoice", f"invoice is {len(pr)} chars long")
    # bech32 is single-case; bolt11.decode would lowercase a mixed-case string a node refuses.
    if pr not in {pr.lower(), pr.upper()}:
        raise LnurlError("bad_invoice", f"invoice {_short(pr)} mixes upper and lower case")
    try:
        # Our own checks below are stricter and give precise reasons; the signature is still
        # verified (against an 'n' field) or the payee recovered from it.
        return bolt11.decode(pr, ignore_exceptions=True)
    except Exception as exc:  # the decoder raises anything from bitstring/coincurve
        raise LnurlError(
            "bad_invoice", f"cannot decode invoice {_short(pr)}: {type(exc).__name__}"
        ) from None


def _check_fields(pr: str, decoded: bolt11.Bolt11) -> None:
    """Refuse duplicate or odd-sized fields where two readers could see different invoices."""
    _, words = bech32.bech32_decode(pr)
    if words is None or len(words) < 7 + _SIGNATURE_WORDS:
        raise LnurlError("bad_invoice", f"invoice {_short(pr)} is truncated")
    data = words[:-_SIGNATURE_WORDS]
    seen: set[str] = set()
    pos = 7  # 35-bit timestamp
    while pos < len(data):
        if pos + 3 > len(data):
            raise LnurlError("bad_invoice", f"invoice {_short(pr)} has a cut field header")
        char = bech32.CHARSET[data[pos]]
        length = data[pos + 1] * 32 + data[pos + 2]
        if char in _SINGLE_FIELDS and char in seen:
            raise LnurlError("bad_invoice", f"invoice {_short(pr)} repeats its '{char}' field")
        if char in _FIELD_WORDS and length != _FIELD_WORDS[char]:
            raise LnurlError("bad_invoice", f"invoice {_short(pr)} has a malformed '{char}' field")
        seen.add(char)
        pos += 3 + length
    if pos != len(data):
        raise LnurlError("bad_invoice", f"invoice {_short(pr)} has a cut field")
    if "p" not in seen or not decoded.has_payment_hash:
        raise LnurlError("bad_invoice", f"invoice {_short(pr)} has no payment hash")
    if "s" not in seen:
        raise LnurlError("bad_invoice", f"invoice {_short(pr)} has no payment secret")


def _check_amount(decoded: bolt11.Bolt11, amount_msat: int, short: str) -> None:
    got = decoded.amount_msat
    if got is None:
        raise LnurlError(
            "invoice_amount_mismatch",
            f"invoice {short} has no amount, asked {amount_msat} msat",
            details={"got_msat": 0},
        )
    # BOLT11: a 'p' amount must be whole msat; the decoder would silently round 10005p down.
    hrp = decoded.signature.hrp if decoded.signature else ""
    amount_text = hrp[2 + len(decoded.currency) :]
    if amount_text.endswith("p") and not amount_text.endswith("0p"):
        raise LnurlError("bad_invoice", f"invoice {short} amount {amount_text} is not whole msat")
    if int(got) != amount_msat:
        raise LnurlError(
            "invoice_amount_mismatch",
            f"asked {amount_msat} msat, invoice {short} is for {int(got)} msat",
            details={"got_msat": int(got)},
        )


def _check_description_hash(decoded: bolt11.Bolt11, metadata: str, short: str) -> None:
    want = hashlib.sha256(metadata.encode("utf-8")).hexdigest()
    got = decoded.description_hash
    if got is None:
        raise LnurlError(
            "description_hash_mismatch", f"invoice {short} has no description hash (LUD-06)"
        )
    if str(got).lower() != want:
        raise LnurlError(
            "description_hash_mismatch",
            f"invoice {short} description hash {str(got)[:16]}… is not "
            f"sha256(metadata) {want[:16]}…",
        )


def _check_expiry(decoded: bolt11.Bolt11, now: float, min_expiry_seconds: int, short: str) -> int:
    expiry = int(decoded.expiry)
    expires_at = int(decoded.date) + expiry
    if expiry <= 0:
        raise LnurlError("invoice_expired", f"invoice {short} has zero expiry")
    left = int(expires_at - now)
    if expires_at <= now:
        raise LnurlError(
            "invoice_expired",
            f"invoice {short} expired {-left}s ago",
            details={"expires_at": expires_at},
        )
    if left < min_expiry_seconds:
        raise LnurlError(
            "invoice_expires_too_soon",
            f"invoice {short} expires in {left}s, need at least {min_expiry_seconds}s",
            details={"expires_in_s": left, "min_expiry_s": min_expiry_seconds},
        )
    return expires_at
