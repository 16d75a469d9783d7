"""Lightning-address servers (LUD-06 payRequest, LUD-16 addresses) with hostile modes.

``GET /.well-known/lnurlp/{user}`` answers the payRequest; its callback
``GET /lnurlp/{user}/callback?amount=MSAT`` answers ``{"pr": BOLT11, "routes": []}`` with a
real invoice signed by the server's payee key, for the address's description hash, on the
chain's network. The simulator registers every invoice it hands out, so a wallet paying one
really credits that address (:meth:`received_msat`).

Misbehaviour is data: :data:`MODES` maps each :class:`LnurlMode` to the stage it acts on
and what it changes (the payRequest, the invoice, or the whole HTTP answer). A mode is set
per address or per server; ``hook`` overrides everything for cases no mode covers.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from liquidityhelper.simulator import bolt11util
from liquidityhelper.simulator.config import NETWORK_HRP
from liquidityhelper.simulator.entities import IssuedInvoice
from liquidityhelper.simulator.errors import SimError
from liquidityhelper.simulator.faults import FaultPlan, middleware
from liquidityhelper.simulator.ids import privkey_for, pubkey_hex
from liquidityhelper.simulator.lightning import new_preimage
from liquidityhelper.simulator.model import SimModel


class LnurlMode(enum.StrEnum):
    NORMAL = "normal"
    WRONG_AMOUNT = "wrong_amount"  # invoice for 1 sat more than asked
    WRONG_DESCRIPTION_HASH = "wrong_description_hash"
    NO_DESCRIPTION_HASH = "no_description_hash"  # a plain description instead
    OTHER_NETWORK = "other_network"  # mainnet prefix on regtest, regtest elsewhere
    EXPIRED = "expired"  # issued an hour ago, expiry 10 minutes
    ZERO_EXPIRY = "zero_expiry"  # x field of zero length
    NO_AMOUNT = "no_amount"  # amountless invoice
    OTHER_PAYEE = "other_payee"  # signed by a fresh node key each time
    MISSING_PR = "missing_pr"  # {"routes": []} only
    ABSURD_AMOUNTS = "absurd_amounts"  # minSendable > maxSendable, 21M BTC
    WRONG_TAG = "wrong_tag"  # tag "withdrawRequest"
    CALLBACK_OTHER_HOST = "callback_other_host"
    STATUS_ERROR = "status_error"  # {"status": "ERROR", "reason": ...}
    NON_JSON = "non_json"
    HTTP_ERROR = "http_error"  # 500
    REDIRECT = "redirect"  # 302 to another host
    OVERSIZED_BODY = "oversized_body"  # a 5 MB JSON document
    ENDLESS_BODY = "endless_body"  # a body that never ends (stops at 64 MB)


@dataclass(frozen=True, slots=True)
class ModeSpec:
    stage: str  # "pay_request" or "callback": where the mode acts by default
    pay_request: Callable[[dict[str, Any], LnurlContext], dict[str, Any]] | None = None
    invoice: Callable[[bolt11util.InvoiceSpec, LnurlContext], bolt11util.InvoiceSpec] | None = None
    response: str | None = None  # an HTTP-level misbehaviour, see _http_misbehaviour


@dataclass(slots=True)
class LnurlContext:
    server: LnurlServer
    user: str
    request: web.Request


def _other_network(spec: bolt11util.InvoiceSpec, ctx: LnurlContext) -> bolt11util.InvoiceSpec:
    other = "bc" if spec.currency != "bc" else NETWORK_HRP["regtest"]
    return replace(spec, currency=other)


MODES: dict[LnurlMode, ModeSpec] = {
    LnurlMode.NORMAL: ModeSpec("callback"),
    LnurlMode.WRONG_AMOUNT: ModeSpec(
        "callback", invoice=lambda s, c: replace(s, amount_msat=(s.amount_msat or 0) + 1000)
    ),
    LnurlMode.WRONG_DESCRIPTION_HASH: ModeSpec(
        "callback",
        invoice=lambda s, c: replace(s, description_hash=hashlib.sha256(b"other").hexdigest()),
    ),
    LnurlMode.NO_DESCRIPTION_HASH: ModeSpec(
        "callback", invoice=lambda s, c: replace(s, description_hash=None, description="coffee")
    ),
    LnurlMode.OTHER_NETWORK: ModeSpec("callback", invoice=_other_network),
    LnurlMode.EXPIRED: ModeSpec(
        "callback", invoice=lambda s, c: replace(s, timestamp=s.timestamp - 3600, expiry=600)
    ),
    LnurlMode.ZERO_EXPIRY: ModeSpec("callback", invoice=lambda s, c: replace(s, expiry=0)),
    LnurlMode.NO_AMOUNT: ModeSpec("callback", invoice=lambda s, c: replace(s, amount_msat=None)),
    LnurlMode.OTHER_PAYEE: ModeSpec("callback"),
    LnurlMode.MISSING_PR: ModeSpec("callback", response="missing_pr"),
    LnurlMode.ABSURD_AMOUNTS: ModeSpec(
        "pay_request",
        pay_request=lambda d, c: (
            d | {"minSendable": 2_100_000_000_000_000_000, "maxSendable": 1_000}
        ),
    ),
    LnurlMode.WRONG_TAG: ModeSpec(
        "pay_request", pay_request=lambda d, c: d | {"tag": "withdrawRequest"}
    ),
    LnurlMode.CALLBACK_OTHER_HOST: ModeSpec(
        "pay_request",
        pay_request=lambda d, c: d | {"callback": d["callback"].replace("127.0.0.1", "localhost")},
    ),
    LnurlMode.STATUS_ERROR: ModeSpec("callback", response="status_error"),
    LnurlMode.NON_JSON: ModeSpec("callback", response="non_json"),
    LnurlMode.HTTP_ERROR: ModeSpec("callback", response="http_error"),
    LnurlMode.REDIRECT: ModeSpec("callback", response="redirect"),
    LnurlMode.OVERSIZED_BODY: ModeSpec("callback", response="oversized"),
    LnurlMode.ENDLESS_BODY: ModeSpec("callback", response="endless"),
}

Hook = Callable[[web.Request, str, str], Awaitable[web.StreamResponse | None]]


@dataclass(slots=True)
class LnurlAddress:
    user: str
    min_sendable_msat: int = 1_000
    max_sendable_msat: int = 100_000_000_000
    mode: LnurlMode | None = None  # None: the server's mode
    stage: str | None = None  # None: the mode's own stage
    comment_allowed: int = 0


@dataclass(slots=True)
class LnurlLogEntry:
    stage: str
    user: str
    amount_msat: int | None = None
    bolt11: str | None = None
    mode: str = "normal"


@dataclass
class LnurlServer:
    model: SimModel
    name: str
    faults: FaultPlan
    mode: LnurlMode = LnurlMode.NORMAL
    stage: str | None = None
    hook: Hook | None = None
    addresses: dict[str, LnurlAddress] = field(default_factory=dict)
    log: list[LnurlLogEntry] = field(default_factory=list)
    base_url: str = ""  # set when the server listens

    def __post_init__(self) -> None:
        self.payee_secret = privkey_for(f"lnurl-payee:{self.name}")
        self.payee_pubkey = pubkey_hex(self.payee_secret)

    # -- set-up -----------------------------------------------------------------------------

    @property
    def domain(self) -> str:
        return self.base_url.split("://", 1)[-1].rstrip("/")

    def add_address(self, user: str, **kwargs: Any) -> str:
        if not self.base_url:
            raise SimError("start the simulator before adding lightning addresses")
        self.addresses[user] = LnurlAddress(user=user, **kwargs)
        return f"{user}@{self.domain}"

    def set_mode(
        self, mode: LnurlMode | str, user: str | None = None, stage: str | None = None
    ) -> None:
        """Misbehave in ``mode`` for one address (or the whole server), at ``stage``."""
        mode = LnurlMode(mode)
        if user is None:
            self.mode, self.stage = mode, stage
        else:
            self.addresses[user].mode, self.addresses[user].stage = mode, stage

    def metadata(self, user: str) -> str:
        return json.dumps(
            [["text/plain", f"Payment to {user}"], ["text/identifier", f"{user}@{self.domain}"]]
        )

    def received_msat(self, user: str) -> int:
        return self.model.lnaddr_received_msat.get(f"{user}@{self.domain}", 0)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[middleware(self.faults, "lnurl")])
        app.router.add_get("/.well-known/lnurlp/{user}", self.pay_request)
        app.router.add_get("/lnurlp/{user}/callback", self.callback)
        return app

    # -- handlers ---------------------------------------------------------------------------

    def _mode_for(self, user: str, stage: str) -> LnurlMode:
        address = self.addresses[user]
        mode = address.mode or self.mode
        wanted = (address.stage if address.mode else self.stage) or MODES[mode].stage
        return mode if wanted == stage else LnurlMode.NORMAL

    async def pay_request(self, request: web.Request) -> web.StreamResponse:
        user = request.match_info["user"]
        if user not in self.addresses:
            return web.json_response({"status": "ERROR", "reason": "Unknown user"}, status=404)
        if self.hook is not None and (resp := await self.hook(request, "pay_request", user)):
            return resp
        mode = self._mode_for(user, "pay_request")
        self.log.append(LnurlLogEntry("pay_request", user, mode=mode.value))
        address = self.addresses[user]
        data: dict[str, Any] = {
            "tag": "payRequest",
            "callback": f"{self.base_url}/lnurlp/{user}/callback",
            "minSendable": address.min_sendable_msat,
            "maxSendable": address.max_sendable_msat,
            "metadata": self.metadata(user),
            "commentAllowed": address.comment_allowed,
        }
        spec = MODES[mode]
        if spec.response:
            return await _http_misbehaviour(spec.response, request)
        if spec.pay_request:
            data = spec.pay_request(data, LnurlContext(self, user, request))
        return web.json_response(data)

    async def callback(self, request: web.Request) -> web.StreamResponse:
        user = request.match_info["user"]
        if user not in self.addresses:
            return web.json_response({"status": "ERROR", "reason": "Unknown user"}, status=404)
        if self.hook is not None and (resp := await self.hook(request, "callback", user)):
            return resp
        mode = self._mode_for(user, "callback")
        spec = MODES[mode]
        if spec.response:
            self.log.append(LnurlLogEntry("callback", user, mode=mode.value))
            return await _http_misbehaviour(spec.response, request)
        address = self.addresses[user]
        try:
            amount = int(request.query.get("amount", ""))
        except ValueError:
            return web.json_response({"status": "ERROR", "reason": "Invalid amount"})
        if not address.min_sendable_msat <= amount <= address.max_sendable_msat:
            return web.json_response({"status": "ERROR", "reason": "Amount out of range"})
        bolt11 = self._invoice(user, amount, mode, LnurlContext(self, user, request))
        self.log.append(LnurlLogEntry("callback", user, amount, bolt11, mode.value))
        return web.json_response({"pr": bolt11, "routes": []})

    def _invoice(self, user: str, amount_msat: int, mode: LnurlMode, ctx: LnurlContext) -> str:
        preimage, rhash = new_preimage(self.model)
        now = int(self.model.now())
        spec = bolt11util.InvoiceSpec(
            currency=self.model.config.hrp,
            payment_hash=rhash,
            payment_secret=self.model.ids.hex(32),
            timestamp=now,
            expiry=self.model.config.lnurl_invoice_expiry_s,
            amount_msat=amount_msat,
            description_hash=hashlib.sha256(self.metadata(user).encode()).hexdigest(),
            trampoline_feature=False,
        )
        tweak = MODES[mode].invoice
        if tweak is not None:
            spec = tweak(spec, ctx)
        secret = self.payee_secret
        if mode is LnurlMode.OTHER_PAYEE:
            secret = privkey_for(f"lnurl-payee:{self.name}:{self.model.ids.hex(8)}")
        bolt11 = bolt11util.encode(spec, secret.hex())
        self.model.register_issued(
            IssuedInvoice(
                payment_hash=rhash,
                preimage=preimage,
                bolt11=bolt11,
                amount_msat=spec.amount_msat,
                payee_pubkey=pubkey_hex(secret),
                timestamp=spec.timestamp,
                expiry=spec.expiry if spec.expiry is not None else 3600,
                description=spec.description or "",
                kind="lnaddr",
                owner=f"{user}@{self.domain}",
            )
        )
        return bolt11


async def _http_misbehaviour(kind: str, request: web.Request) -> web.StreamResponse:
    if kind == "missing_pr":
        return web.json_response({"routes": []})
    if kind == "status_error":
        return web.json_response({"status": "ERROR", "reason": "Service temporarily unavailable"})
    if kind == "non_json":
        return web.Response(
            text="<html><body>Not a lightning address</body></html>", content_type="text/html"
        )
    if kind == "http_error":
        return web.Response(status=500, text="Internal Server Error")
    if kind == "redirect":
        target = str(request.url).replace("127.0.0.1", "localhost")
        raise web.HTTPFound(location=target)
    if kind == "oversized":
        padding = "x" * (5 * 1024 * 1024)
        return web.json_response({"status": "OK", "padding": padding})
    return await _endless(request)


async def _endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(b'{"pr": "')
    chunk = b"q" * 65_536
    try:
        for _ in range(1024):  # 64 MB, then give up
            await response.write(chunk)
            await asyncio.sleep(0.001)
    except (ConnectionResetError, RuntimeError):
        pass
    return response
