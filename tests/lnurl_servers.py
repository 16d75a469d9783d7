"""A hostile LNURL-pay server for tests: real aiohttp.web on 127.0.0.1, real signed invoices.

``LnurlServer`` answers ``/.well-known/lnurlp/<user>`` and ``/cb/<user>`` correctly by default.
A test makes it misbehave by setting ``pay_overrides`` (fields merged into the pay request,
``DROP`` removes one), ``invoice`` (how the next invoice is minted), or by replacing a whole
endpoint with ``pay_handler`` / ``callback_handler`` (see the canned handlers below).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import importlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from unittest import mock

import bolt11
from aiohttp import web
from bitstring import Bits
from bolt11 import Bolt11, MilliSatoshi, TagChar, Tags
from coincurve import PrivateKey

PAYEE_KEY = hashlib.sha256(b"lnurl test payee").hexdigest()
OTHER_KEY = hashlib.sha256(b"lnurl test impostor").hexdigest()
METADATA = json.dumps([["text/plain", "Pay alice"], ["text/identifier", "alice@test"]])
DROP = object()  # a pay_overrides value that removes the field

Handler = Callable[["LnurlServer", web.Request], Awaitable[web.StreamResponse]]
_encode_module = importlib.import_module("bolt11.encode")


def pubkey_of(private_key_hex: str) -> str:
    return PrivateKey.from_hex(private_key_hex).public_key.format(compressed=True).hex()


@dataclass
class InvoiceSpec:
    """How the server mints its next invoice. Defaults give a correct regtest invoice."""

    currency: str = "bcrt"
    amount_delta_msat: int = 0
    omit_amount: bool = False
    raw_amount: str | None = None  # force the hrp amount text, e.g. "10005p"
    description_hash: str | None = "metadata"  # "metadata": the right hash; None: a 'd' field
    expiry: int | None = 3600  # None omits the 'x' field; 0 encodes a 5-bit zero
    empty_expiry_field: bool = False  # a zero-length 'x' field (what bolt11.encode does for 0)
    age_seconds: int = 0
    private_key: str = PAYEE_KEY
    payee_field: str | None = None  # an explicit 'n' field (need not match the signer)
    duplicate_payment_hash: bool = False
    omit_payment_secret: bool = False


def mint_invoice(spec: InvoiceSpec, amount_msat: int, metadata: str) -> str:
    tags = Tags()
    tags.add(
        TagChar.payment_hash, hashlib.sha256(f"preimage {time.time_ns()}".encode()).hexdigest()
    )
    if spec.duplicate_payment_hash:
        tags.add(TagChar.payment_hash, "ee" * 32)
    if not spec.omit_payment_secret:
        tags.add(TagChar.payment_secret, "5e" * 32)
    if spec.description_hash is None:
        tags.add(TagChar.description, "a plain description")
    elif spec.description_hash == "metadata":
        tags.add(TagChar.description_hash, hashlib.sha256(metadata.encode()).hexdigest())
    else:
        tags.add(TagChar.description_hash, spec.description_hash)
    if spec.empty_expiry_field:
        tags.add(TagChar.expire_time, 0)
    elif spec.expiry is not None:
        tags.add(TagChar.expire_time, spec.expiry)
    tags.add(TagChar.min_final_cltv_expiry, 18)
    if spec.payee_field is not None:
        tags.add(TagChar.payee, spec.payee_field)
    invoice = Bolt11(
        currency=spec.currency,
        date=int(time.time()) - spec.age_seconds,
        tags=tags,
        amount_msat=None
        if spec.omit_amount
        else MilliSatoshi(amount_msat + spec.amount_delta_msat),
    )
    with contextlib.ExitStack() as patches:
        if spec.expiry == 0 and not spec.empty_expiry_field:
            # bolt11.encode strips an int to zero bits; a real node writes one zero word.
            original = _encode_module._tagged_int
            patches.enter_context(
                mock.patch.object(
                    _encode_module,
                    "_tagged_int",
                    lambda v: Bits(uint=0, length=5) if v == 0 else original(v),
                )
            )
        if spec.raw_amount is not None:
            raw = spec.raw_amount
            patches.enter_context(
                mock.patch.object(_encode_module, "_create_hrp", lambda cur, _amt: f"ln{cur}{raw}")
            )
        return bolt11.encode(
            invoice,
            spec.private_key,
            ignore_exceptions=True,
            keep_payee=spec.payee_field is not None,
        )


class LnurlServer:
    def __init__(self) -> None:
        self.pay_overrides: dict[str, Any] = {}
        self.pay_handler: Handler | None = None
        self.callback_handler: Handler | None = None
        self.callback_query = "k=v"  # kept by the client next to amount=
        self.invoice = InvoiceSpec()
        self.metadata = METADATA
        self.hits: list[str] = []  # path_qs of every request
        self.headers: list[dict[str, str]] = []  # headers of every request
        self.minted: list[str] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._dispatch)
        # Handlers stuck writing to a vanished client must not hold up teardown.
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- addresses -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def address(self, user: str = "alice") -> str:
        return f"{user}@127.0.0.1:{self.port}"

    def callback_url(self, user: str = "alice") -> str:
        return f"{self.base_url}/cb/{user}?{self.callback_query}"

    @property
    def callback_hits(self) -> list[str]:
        return [hit for hit in self.hits if hit.startswith("/cb/")]

    def pay_request_json(self, user: str = "alice") -> dict[str, Any]:
        body: dict[str, Any] = {
            "tag": "payRequest",
            "callback": self.callback_url(user),
            "minSendable": 1_000,
            "maxSendable": 1_000_000_000,
            "metadata": self.metadata,
            "commentAllowed": 0,
        }
        for key, value in self.pay_overrides.items():
            if value is DROP:
                body.pop(key, None)
            else:
                body[key] = value
        return body

    # --- request handling ------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path_qs)
        self.headers.append(dict(request.headers))
        if request.path.startswith("/.well-known/lnurlp/"):
            return await (self.pay_handler or _default_pay)(self, request)
        if request.path.startswith("/cb/"):
            return await (self.callback_handler or _default_callback)(self, request)
        return web.json_response({"status": "ERROR", "reason": "no such path"}, status=404)


async def _default_pay(server: LnurlServer, request: web.Request) -> web.StreamResponse:
    return web.json_response(server.pay_request_json(request.match_info["tail"].rsplit("/")[-1]))


async def _default_callback(server: LnurlServer, request: web.Request) -> web.StreamResponse:
    amount = int(request.query["amount"])
    pr = mint_invoice(server.invoice, amount, server.metadata)
    server.minted.append(pr)
    return web.json_response({"pr": pr, "routes": []})


# --- canned hostile handlers -------------------------------------------------------------------


def reply_json(body: Any, status: int = 200) -> Handler:
    async def handler(server: LnurlServer, request: web.Request) -> web.StreamResponse:
        return web.Response(text=json.dumps(body), status=status, content_type="application/json")

    return handler


def reply_text(text: str, status: int = 200, content_type: str = "text/html") -> Handler:
    async def handler(server: LnurlServer, request: web.Request) -> web.StreamResponse:
        return web.Response(text=text, status=status, content_type=content_type)

    return handler


def reply_with_invoice(make_body: Callable[[str], Any]) -> Handler:
    """A callback answering ``make_body(correct_invoice)``: for tampering with a real invoice."""

    async def handler(server: LnurlServer, request: web.Request) -> web.StreamResponse:
        pr = mint_invoice(server.invoice, int(request.query["amount"]), server.metadata)
        server.minted.append(pr)
        return web.json_response(make_body(pr))

    return handler


def redirect_to(path: str, status: int = 302) -> Handler:
    async def handler(server: LnurlServer, request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": f"{server.base_url}{path}"})

    return handler


def gzip_json(body: Any) -> Handler:
    async def handler(server: LnurlServer, request: web.Request) -> web.StreamResponse:
        data = gzip.compress(json.dumps(body).encode())
        return web.Response(
            body=data, content_type="application/json", headers={"Content-Encoding": "gzip"}
        )

    return handler


def stream_body(
    *, chunk: bytes = b" " * 4096, total: int | None = None, delay: float = 0.0
) -> Handler:
    """A chunked body of ``total`` bytes, or endless (``None``), ``delay`` s between chunks.

    An endless body stops by itself after 50 MB so a broken client fails instead of hanging.
    """

    async def handler(server: LnurlServer, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        limit = 50_000_000 if total is None else total
        sent = 0
        with contextlib.suppress(ConnectionError):
            await response.write(b'{"tag": "payRequest", "x": "')
            while sent < limit:
                await response.write(chunk)
                sent += len(chunk)
                await asyncio.sleep(delay)
            await response.write(b'"}')
            await response.write_eof()
        return response

    return handler


def declared_length(size: int) -> Handler:
    """A body of ``size`` bytes with an honest Content-Length."""

    async def handler(server: LnurlServer, request: web.Request) -> web.StreamResponse:
        body = b'{"x": "' + b"a" * (size - 10) + b'"}'
        return web.Response(body=body, content_type="application/json")

    return handler
