"""Bitcart's BTC daemon: JSON-RPC over HTTP with Basic auth, errors always HTTP 200.

Request handling follows ``daemons/base.py`` and ``daemons/btc.py``: auth, then JSON parse
(-32700), method present (-32601), the wallet loaded from the ``xpub`` named parameter
(-32005 when the key is not one), the method looked up (-32601), a wallet required
(-32000), Lightning required (-32011), then the call; an exception becomes -32603 or the
spec's code for its text. ``GET /spec`` serves the recorded spec.
"""

from __future__ import annotations

import ast
import base64
import binascii
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web

from liquidityhelper.simulator import bolt11util, views
from liquidityhelper.simulator.entities import PR_UNPAID, DaemonWallet, IssuedInvoice, Request
from liquidityhelper.simulator.errors import RpcError, SimError, electrum, no_lightning
from liquidityhelper.simulator.faults import FaultPlan, middleware
from liquidityhelper.simulator.fees import fee_tooltip
from liquidityhelper.simulator.formats import btc8, to_sats
from liquidityhelper.simulator.lightning import new_preimage
from liquidityhelper.simulator.model import SimModel, key_kind
from liquidityhelper.simulator.spec import HELP, SPEC

_HELP_OPEN_CHANNEL = (
    "usage: bitcart-cli open_channel [--push_amount PUSH_AMOUNT] [--public]\n"
    "                                [--zeroconf] [--password PASSWORD]\n"
    "                                connection_string amount\n\n"
    "Open a lightning channel with a peer\n\n"
    "positional arguments:\n"
    "  connection_string     Lightning network node ID or network address\n"
    "  amount                funding amount (in BTC)\n\n"
    "options:\n"
    "  --push_amount PUSH_AMOUNT\n"
    "                        Push initial amount (in BTC)\n"
    "  --public              The channel will be announced\n"
    "  --zeroconf            request zeroconf channel\n"
    "  --password PASSWORD   Wallet password. Use '--password :' if you want a\n"
    "                        prompt.\n\n"
    "Run 'electrum -h to see the list of global options\n"
)
_EXTRA_CONFIG: dict[str, Any] = {
    "fee_policy": "eta:2",
    "lightning_forward_payments": False,
    "lightning_forward_trampoline_payments": False,
    "use_recoverable_channels": True,
    "accept_zeroconf_channels": False,
    "lightning_to_self_delay": 144,
}


@dataclass(slots=True)
class Method:
    func: Callable[..., Any]
    custom: bool  # Bitcart's own (@rpc) rather than an Electrum command
    wallet: bool
    lightning: bool = False


class RpcApi:
    def __init__(self, model: SimModel, faults: FaultPlan, user: str, password: str) -> None:
        self.m = model
        self.faults = faults
        self.user = user
        self.password = password
        self.methods = self._table()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[middleware(self.faults, "rpc", _method_of)])
        app.router.add_post("/", self.handle)
        app.router.add_get("/spec", self.spec)
        return app

    # -- transport --------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("latin1").partition(":")
        except (binascii.Error, ValueError):
            return False
        return user == self.user and password == self.password

    async def spec(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(None, -32600, "Unauthorized")
        spec = dict(SPEC)
        spec["capabilities"] = {"lightning": self.m.config.lightning}
        return web.json_response(spec)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.m.daemon_state == "down" and request.transport is not None:
            request.transport.abort()  # the servers normally stop listening instead
        if not self._authorized(request):
            return _error(None, -32600, "Unauthorized")
        try:
            data = json.loads(await request.text())
        except json.JSONDecodeError:
            return _error(None, -32700, "Parse error")
        if not isinstance(data, dict):
            return web.Response(
                status=500,
                text="500 Internal Server Error\n\nServer got itself in trouble",
                content_type="text/plain",
            )
        req_id, method = data.get("id"), data.get("method")
        if not method:
            return _error(req_id, -32601, "Procedure not found")
        args, kwargs = _parse_params(data.get("params", []))
        xpub = kwargs.pop("xpub", None)
        if isinstance(xpub, dict):
            xpub = xpub.get("xpub")
        try:
            result = await self.execute(str(method), xpub, args, kwargs)
        except RpcError as exc:
            return _error(req_id, exc.code, exc.message)
        return web.json_response({"jsonrpc": "2.0", "result": result, "id": req_id})

    async def execute(
        self, method: str, xpub: str | None, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        entry = self.methods.get(method)
        if self.m.daemon_state == "erroring":
            raise RpcError(self.m.daemon_error)
        self.m.ln.catch_up()  # what the daemon's background tasks did since the last call
        dw = None
        if xpub and (entry is None or not entry.custom or entry.wallet):
            dw = self.m.daemon_wallet(str(xpub))  # -32005 when not a key
        if entry is None:
            if method in HELP:
                raise electrum("NotImplementedError", f"{method} is not simulated")
            raise RpcError("Procedure not found", -32601)
        if entry.wallet and dw is None:
            raise RpcError("Wallet not loaded", -32000)
        if entry.lightning and dw is not None:
            if not self.m.config.lightning:
                raise electrum(
                    "electrum.util.UserFacingException", "Lightning not enabled in this wallet"
                )
            if not dw.can_lightning:
                raise no_lightning()
        try:
            result = (
                entry.func(dw, *args, **kwargs) if entry.wallet else entry.func(*args, **kwargs)
            )
            if hasattr(result, "__await__"):
                result = await result
            return result
        except RpcError:
            raise
        except SimError as exc:
            raise electrum("electrum.util.UserFacingException", str(exc)) from exc
        except Exception as exc:  # a bad call: TypeError, ValueError ... as Python words it
            raise RpcError(f"{type(exc).__name__}: {exc}") from exc

    # -- method table -----------------------------------------------------------------------

    def _table(self) -> dict[str, Method]:
        own = {
            "help": Method(self.help, True, False),
            "getinfo": Method(self.getinfo, True, False),
            "validatekey": Method(self.validatekey, True, False),
            "get_default_fee": Method(self.get_default_fee, True, False),
            "recommended_fee": Method(self.recommended_fee, True, False),
            "get_invoice": Method(self.get_invoice, True, True),
            "get_request": Method(self.get_request, True, True),
            "getrequest": Method(self.get_request, True, True),
            "get_updates": Method(lambda dw: [], True, True),
            "close_wallet": Method(lambda dw=None, key=None: True, True, False),
        }
        electrum_cmds = {
            "version": Method(lambda: "4.6.0b1", False, False),
            "getconfig": Method(self.getconfig, False, False),
            "setconfig": Method(self.setconfig, False, False),
            "getfeerate": Method(self.getfeerate, False, False),
            "decode_invoice": Method(self.decode_invoice, False, False),
            "getbalance": Method(self.getbalance, False, True),
            "listunspent": Method(self.listunspent, False, True),
            "getunusedaddress": Method(lambda dw: self.m.unused_address(dw), False, True),
            "createnewaddress": Method(lambda dw: self.m.take_address(dw), False, True),
            "onchain_history": Method(self.onchain_history, False, True),
            "get_tx_status": Method(self.get_tx_status, False, True),
            "add_request": Method(self.add_request, False, True),
            "list_requests": Method(self.list_requests, False, True),
            "list_invoices": Method(self.list_invoices, False, True),
            "delete_invoice": Method(self.delete_invoice, False, True),
            "lightning_history": Method(self.lightning_history, False, True, True),
            "setlabel": Method(self.setlabel, False, True),
            "nodeid": Method(self.nodeid, False, True, True),
            "list_channels": Method(self.list_channels, False, True, True),
            "list_peers": Method(self.list_peers, False, True, True),
            "add_peer": Method(self.add_peer, False, True, True),
            "gossip_info": Method(self.gossip_info, False, True, True),
            "open_channel": Method(self.open_channel, False, True, True),
            "close_channel": Method(self.close_channel, False, True, True),
            "request_force_close": Method(self.request_force_close, False, True, True),
            "lnpay": Method(self.lnpay, False, True, True),
            "export_channel_backup": Method(self.export_channel_backup, False, True, True),
        }
        return own | electrum_cmds

    # -- Bitcart's own methods --------------------------------------------------------------

    def help(self, func: str | None = None) -> Any:
        if func is None:
            return list(HELP)
        if func == "open_channel":
            return _HELP_OPEN_CHANNEL
        if func in self.methods or func in HELP:
            return f"usage: bitcart-cli {func}\n"
        raise RpcError("Procedure not found", -32601)

    def getinfo(self) -> dict[str, Any]:
        return {
            "network": self.m.config.network,
            "path": f"/data/{self.m.config.network}",
            "server": "127.0.0.1",
            "blockchain_height": self.m.height,
            "server_height": self.m.height,
            "spv_nodes": 1,
            "connected": True,
            "auto_connect": False,
            "version": "4.6.0b1",
            # Electrum's raw estimates per target (int keys; JSON makes them strings).
            "fee_estimates": self.m.fee_estimates.get_data(),
            "synchronized": True,
            "total_wallets": len(self.m.daemon_wallets),
        }

    def validatekey(self, key: Any, *args: Any, **kwargs: Any) -> bool:
        return key_kind(key) is not None

    def get_default_fee(self, tx: Any) -> str:
        size = len(tx) // 2 if isinstance(tx, str) else int(tx)
        return btc8(self.m.funding_fee_sat(size))

    def recommended_fee(self, target: Any) -> int | None:
        """Bitcart hands ``target`` to Electrum's ``eta_target_to_fee`` untouched: a target
        Electrum has no estimate for is 150000 on regtest and null elsewhere."""
        return self.m.fee_estimates.eta_target_to_fee(target)

    def get_invoice(self, dw: DaemonWallet, key: str) -> dict[str, Any]:
        request = dw.requests.get(str(key))
        if request is None:
            raise electrum("Exception", "Invoice not found")
        return views.request_json(request, self.m.now())

    def get_request(self, dw: DaemonWallet, request_id: str) -> dict[str, Any]:
        request = dw.requests.get(str(request_id))
        if request is None:
            raise electrum("electrum.util.UserFacingException", "Request not found")
        return views.request_json(request, self.m.now())

    # -- Electrum commands ------------------------------------------------------------------

    def getconfig(self, key: str) -> Any:
        if key in self.m.electrum:
            return self.m.electrum[key]
        if key in _EXTRA_CONFIG:
            return _EXTRA_CONFIG[key]
        raise RpcError(f'KeyError: "No ConfigVar with key={key!r}"')

    def setconfig(self, key: str, value: Any) -> None:
        if key not in self.m.electrum and key not in _EXTRA_CONFIG:
            raise RpcError(f'KeyError: "No ConfigVar with key={key!r}"')
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = json.loads(value, parse_float=Decimal)
            if isinstance(value, str):
                with contextlib.suppress(ValueError, SyntaxError):
                    value = ast.literal_eval(value)
        self.m.electrum[key] = value

    def getfeerate(self) -> dict[str, Any]:
        rate = self.m.fee_estimates.funding_rate()
        return {
            "policy": "eta:2",
            "description": "Within 2 blocks",
            "sat/kvB": rate,
            "tooltip": "" if rate is None else fee_tooltip(rate),
        }

    def decode_invoice(self, invoice: str) -> dict[str, Any]:
        decoded = bolt11util.decode(
            str(invoice), self.m.config.hrp, exc_path="electrum.util.InvoiceError"
        )
        return bolt11util.debug_json(decoded)

    def getbalance(self, dw: DaemonWallet) -> dict[str, str]:
        return views.getbalance_json(*self.m.balances(dw))

    def listunspent(self, dw: DaemonWallet) -> list[dict[str, Any]]:
        """Electrum's ``listunspent``: every unspent output, unconfirmed ones too (height 0),
        its value a BTC string. Without coin tracking the wallet is one coin."""
        return views.listunspent(self.m, dw)

    def onchain_history(
        self,
        dw: DaemonWallet,
        show_fiat: bool = False,
        year: Any = None,
        show_addresses: bool = False,
    ) -> list[dict[str, Any]] | dict[str, Any]:
        if self.m.config.onchain_history_format == "summary":
            return views.onchain_history_with_summary(self.m, dw)
        return views.onchain_history(self.m, dw)

    def get_tx_status(self, dw: DaemonWallet, txid: str) -> dict[str, int]:
        tx = next((t for t in dw.txs if t.txid == txid), None)
        if tx is None:
            raise electrum("electrum.util.UserFacingException", "Transaction not in wallet.")
        return {"confirmations": self.m.confirmations(tx.height)}

    def add_request(
        self,
        dw: DaemonWallet,
        amount: Any,
        memo: str = "",
        expiry: int = 3600,
        lightning: bool = False,
        force: bool = False,
    ) -> dict[str, Any]:
        sats = to_sats(amount) if amount is not None else 0
        ts, exp = int(self.m.now()), int(expiry) if expiry else 0
        if lightning:
            if not (self.m.config.lightning and dw.can_lightning):
                raise no_lightning()
            preimage, rhash = new_preimage(self.m)
            bolt11 = bolt11util.encode(
                bolt11util.InvoiceSpec(
                    self.m.config.hrp,
                    rhash,
                    self.m.ids.hex(32),
                    ts,
                    exp,
                    sats * 1000 or None,
                    description=memo,
                ),
                dw.node_secret_hex,
            )
            self.m.register_issued(
                IssuedInvoice(
                    rhash,
                    preimage,
                    bolt11,
                    sats * 1000 or None,
                    dw.node_id,
                    ts,
                    exp,
                    memo,
                    "request",
                    dw.key,
                )
            )
            request = Request(rhash, True, sats, memo, ts, exp, payment_hash=rhash, bolt11=bolt11)
        else:
            request = Request(
                self.m.ids.hex(5), False, sats, memo, ts, exp, address=self.m.take_address(dw)
            )
        dw.requests[request.request_id] = request
        return views.request_json(request, self.m.now())

    def list_requests(
        self, dw: DaemonWallet, pending: bool = False, expired: bool = False, paid: bool = False
    ) -> list[dict[str, Any]]:
        rows = [views.request_json(r, self.m.now()) for r in dw.requests.values()]
        return _filter_status(rows, pending, expired, paid)

    def list_invoices(
        self, dw: DaemonWallet, pending: bool = False, expired: bool = False, paid: bool = False
    ) -> list[dict[str, Any]]:
        rows = [views.outgoing_invoice_json(p, self.m.now()) for p in dw.outgoing.values()]
        return _filter_status(rows, pending, expired, paid)

    def delete_invoice(self, dw: DaemonWallet, invoice_id: str) -> bool:
        return dw.outgoing.pop(str(invoice_id), None) is not None

    def setlabel(self, dw: DaemonWallet, key: Any, label: Any) -> None:
        """Electrum's ``wallet.set_label``: any key (address, txid, payment hash); an empty
        label removes it."""
        if label:
            dw.labels[str(key)] = str(label)
        else:
            dw.labels.pop(str(key), None)

    def lightning_history(self, dw: DaemonWallet) -> list[dict[str, Any]]:
        return views.lightning_history(self.m, dw)

    def nodeid(self, dw: DaemonWallet) -> str:
        listen = self.m.electrum.get("lightning_listen") or ""
        return dw.node_id + (f"@{listen}" if listen else "")

    def list_channels(self, dw: DaemonWallet) -> list[dict[str, Any]]:
        return [views.channel_row(c, self.m.ln.peer_state(c)) for c in dw.channels.values()]

    def list_peers(self, dw: DaemonWallet, gossip: bool = False) -> list[dict[str, Any]]:
        if gossip and not self.m.use_gossip:
            raise RpcError("AttributeError: 'NoneType' object has no attribute 'peers'")
        out = []
        for pubkey, address in dw.peers.items():
            if not self.m.ln.peer_connected(pubkey):
                continue
            out.append(
                {
                    "node_id": pubkey,
                    "address": address,
                    "initialized": True,
                    "features": "LnFeatures.VAR_ONION_REQ|PAYMENT_SECRET_REQ|BASIC_MPP_OPT",
                    "channels": [
                        c.channel_point for c in dw.channels.values() if c.peer_pubkey == pubkey
                    ],
                }
            )
        return out

    def add_peer(
        self, dw: DaemonWallet, connection_string: str, timeout: int = 20, gossip: bool = False
    ) -> bool:
        pubkey, hostport = self.m.ln._parse_connection(connection_string)
        if self.m.wallet_by_node(pubkey) is not None:
            raise electrum("electrum.lnworker.ErrorAddingPeer", "cannot connect to self")
        node = self.m.nodes.get(pubkey)
        if node is not None and node.is_up(self.m.now()) and node.address == hostport:
            dw.peers[pubkey] = node.address
        return True

    def gossip_info(self, dw: DaemonWallet) -> dict[str, Any]:
        if not self.m.use_gossip:
            raise RpcError("AttributeError: 'NoneType' object has no attribute 'channel_db'")
        n = len(self.m.nodes)
        return {
            "received": {
                "channel_announcements": 3 * n,
                "channel_updates": 6 * n,
                "channel_updates_good": 6 * n,
                "node_announcements": n,
            },
            "database": {"nodes": n, "channels": 3 * n, "channel_policies": 6 * n},
            "forwarded": [{}],
        }

    async def open_channel(
        self,
        dw: DaemonWallet,
        connection_string: str,
        amount: Any,
        push_amount: Any = 0,
        public: bool = False,
        zeroconf: bool = False,
        password: str | None = None,
    ) -> str:
        return await self.m.ln.waiting_out_timeouts(
            lambda: self.m.ln.open_channel(dw, connection_string, amount)
        )

    async def close_channel(
        self, dw: DaemonWallet, channel_point: str, force: bool = False, password: str | None = None
    ) -> str:
        return await self.m.ln.waiting_out_timeouts(
            lambda: self.m.ln.close_channel(dw, channel_point, bool(force))
        )

    def request_force_close(
        self,
        dw: DaemonWallet,
        channel_point: str,
        connection_string: str | None = None,
        password: str | None = None,
    ) -> None:
        if channel_point not in dw.channels:
            raise electrum("electrum.util.UserFacingException", f"Unknown channel {channel_point}")
        self.m.ln.remote_force_close(channel_point)

    async def lnpay(
        self,
        dw: DaemonWallet,
        invoice: str,
        timeout: int = 120,
        max_cltv: int | None = None,
        max_fee_msat: int | None = None,
        password: str | None = None,
    ) -> dict[str, Any]:
        return await self.m.ln.pay(dw, invoice, int(max_fee_msat) if max_fee_msat else None)

    def export_channel_backup(self, dw: DaemonWallet, channel_point: str) -> str:
        chan = dw.channels.get(channel_point)
        if chan is None:
            raise electrum("electrum.util.UserFacingException", f"Unknown channel {channel_point}")
        return "channel_backup:" + chan.channel_id + format(int(time.time()), "x")


def _filter_status(
    rows: list[dict[str, Any]], pending: bool, expired: bool, paid: bool
) -> list[dict[str, Any]]:
    wanted = PR_UNPAID if pending else 1 if expired else 3 if paid else None
    return rows if wanted is None else [r for r in rows if r["status"] == wanted]


def _parse_params(params: Any) -> tuple[list[Any], dict[str, Any]]:
    """Bitcart's ``parse_params``: a trailing dict in a list is the named arguments."""
    if isinstance(params, list):
        if params and isinstance(params[-1], dict):
            return list(params[:-1]), dict(params[-1])
        return list(params), {}
    if isinstance(params, dict):
        return [], dict(params)
    return [], {}


def _error(req_id: Any, code: int, message: str) -> web.Response:
    return web.json_response(
        {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": req_id}
    )


async def _method_of(request: web.Request) -> str:
    """The fault plan's key for an RPC request: the JSON-RPC method name."""
    if request.method != "POST":
        return request.path
    try:
        data = json.loads(await request.text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    return str(data.get("method", "")) if isinstance(data, dict) else ""
