"""The simulator as tests, the demo and the benchmarks use it: servers plus a control API.

async with Simulator(seed=1) as sim:
    token = sim.create_user()
    wallet_id = sim.create_wallet(token)
    store_id = sim.create_store(token, "Shop", wallet_ids=[wallet_id])
    sim.fund_wallet(wallet_id, 1_000_000)
    ...  # point a client at sim.api_url / sim.rpc_url
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from decimal import Decimal
from types import TracebackType
from typing import Any

import structlog
from aiohttp import web

from liquidityhelper.simulator.config import SimConfig
from liquidityhelper.simulator.entities import ChanState, NetworkNode, OutgoingPayment
from liquidityhelper.simulator.errors import SimError
from liquidityhelper.simulator.faults import FaultPlan
from liquidityhelper.simulator.lightning import PaymentFaults
from liquidityhelper.simulator.lnurl import LnurlMode, LnurlServer
from liquidityhelper.simulator.model import SimModel
from liquidityhelper.simulator.network import nodes_json
from liquidityhelper.simulator.rest import RestApi
from liquidityhelper.simulator.rpc import RpcApi

log = structlog.get_logger(__name__)


class _Served:
    """One aiohttp app on one port (the port stays the same across stop/start)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        # Handlers die with their client; stop() does not wait for held requests.
        self.runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        self.host = host
        self.port = port
        self.site: web.TCPSite | None = None

    async def start(self) -> None:
        await self.runner.setup()
        await self.listen()

    async def listen(self) -> None:
        self.site = web.TCPSite(self.runner, self.host, self.port, reuse_address=True)
        await self.site.start()
        if self.port == 0:
            self.port = int(self.runner.addresses[0][1])

    async def deafen(self) -> None:
        if self.site is not None:
            await self.site.stop()
            self.site = None

    async def stop(self) -> None:
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class Simulator:
    def __init__(
        self,
        seed: int = 1,
        *,
        config: SimConfig | None = None,
        host: str = "127.0.0.1",
        api_port: int = 0,
        rpc_port: int = 0,
        lnurl_port: int = 0,
        rpc_user: str = "electrum",
        rpc_password: str = "electrumz",
        block_interval_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.model = SimModel(seed, config, clock)
        self.faults = FaultPlan(seed)
        self.rpc_user = rpc_user
        self.rpc_password = rpc_password
        self.host = host
        self.block_interval_s = block_interval_s
        self._rest = RestApi(self.model, self.faults)
        self._rpc = RpcApi(self.model, self.faults, rpc_user, rpc_password)
        self.lnurl = LnurlServer(self.model, "default", self.faults)
        self.lnurl_servers: dict[str, LnurlServer] = {"default": self.lnurl}
        self._api = _Served(self._rest.app(), host, api_port)
        self._rpcd = _Served(self._rpc.app(), host, rpc_port)
        self._lnurl_port = lnurl_port
        self._lnurl_served: dict[str, _Served] = {}
        self._miner: asyncio.Task[None] | None = None

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> Simulator:
        await self._api.start()
        await self._rpcd.start()
        await self._serve_lnurl(self.lnurl, self._lnurl_port)
        if self.block_interval_s:
            self._miner = asyncio.create_task(self._mine_forever(self.block_interval_s))
        log.info("sim_started", rng=self.model.seed, height=self.model.height)
        return self

    async def stop(self) -> None:
        if self._miner is not None:
            self._miner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._miner
        await self.model.ln.cancel_held()
        for served in [self._api, self._rpcd, *self._lnurl_served.values()]:
            await served.stop()

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _mine_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.model.mine(1)

    async def _serve_lnurl(self, server: LnurlServer, port: int) -> None:
        served = _Served(server.app(), self.host, port)
        await served.start()
        server.base_url = served.url
        self._lnurl_served[server.name] = served

    # -- where things are -------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self._api.url

    @property
    def rpc_url(self) -> str:
        return self._rpcd.url

    @property
    def lnurl_base(self) -> str:
        return self.lnurl.base_url

    # -- users, stores, wallets -------------------------------------------------------------

    def create_user(
        self,
        email: str | None = None,
        *,
        permissions: tuple[str, ...] | list[str] = ("full_control",),
        superuser: bool | None = None,
        password: str = "sim-password",
    ) -> str:
        """A merchant user; returns a bearer token with ``permissions``."""
        user = self.model.create_user(email, password, superuser=superuser)
        return self.model.create_token(user.id, permissions).id

    def create_token(
        self, user: str, permissions: tuple[str, ...] | list[str] = ("full_control",)
    ) -> str:
        return self.model.create_token(self.user_id(user), permissions).id

    def user_id(self, user: str) -> str:
        """The user id behind a token, a user id or an email."""
        return self.model.resolve_user(user).id

    def create_store(
        self,
        user: str,
        name: str,
        default_currency: str = "USD",
        wallet_ids: list[str] | tuple[str, ...] = (),
        metadata: dict[str, Any] | None = None,
    ) -> str:
        return self.model.create_store(
            self.user_id(user), name, default_currency, wallet_ids, metadata
        ).id

    def create_wallet(
        self,
        user: str,
        name: str = "liquidityhelper",
        *,
        lightning: bool = True,
        store_ids: list[str] | tuple[str, ...] = (),
        key: str | None = None,
        watch_only: bool = False,
        label: str = "",
    ) -> str:
        """A wallet record (hot seed unless ``key``/``watch_only``), attached to ``store_ids``."""
        return self.model.create_wallet(
            self.user_id(user),
            name,
            key=key,
            lightning_enabled=lightning,
            store_ids=store_ids,
            watch_only=watch_only,
            label=label,
        ).id

    def wallet_key(self, wallet_id: str) -> str:
        return self._wallet(wallet_id).key

    def node_id(self, wallet_id: str) -> str:
        return self.model.daemon_wallet(self._wallet(wallet_id).key).node_id

    def _wallet(self, wallet_id: str) -> Any:
        wallet = self.model.wallets.get(wallet_id)
        if wallet is None:
            raise SimError(f"no wallet {wallet_id}")
        return wallet

    # -- chain ------------------------------------------------------------------------------

    def fund_wallet(self, wallet_id: str, sats: int, *, confirmed: bool = True) -> str:
        """On-chain coins arrive; returns the txid. Unconfirmed ones confirm on the next block."""
        return self.model.fund(self._wallet(wallet_id).key, sats, confirmed=confirmed).txid

    async def mine(self, n: int = 1) -> int:
        return self.model.mine(n)

    def set_fee_rate(self, sat_per_vb: int | None) -> None:
        """The on-chain estimate for every target; None: no estimate at all (fresh regtest)."""
        self.model.set_fee_rate(sat_per_vb)

    def set_fee_estimates(self, sat_per_vb: dict[int, int | None]) -> None:
        """Estimates of single targets (1008, 144, 25, 10, 5, 2), in sat/vB; None drops one."""
        self.model.set_fee_estimates(sat_per_vb)

    def balance(self, wallet_id: str) -> dict[str, int]:
        c, u, x, ln = self.model.balances(self.model.daemon_wallet(self._wallet(wallet_id).key))
        return {"confirmed": c, "unconfirmed": u, "unmatured": x, "lightning": ln}

    # -- Lightning network ------------------------------------------------------------------

    @property
    def network_nodes(self) -> list[NetworkNode]:
        return list(self.model.nodes.values())

    def network_nodes_json(self) -> dict[str, Any]:
        return nodes_json(self.network_nodes)

    def trampolines(self) -> list[NetworkNode]:
        return [n for n in self.network_nodes if n.trampoline]

    def set_node_online(self, pubkey: str, online: bool) -> None:
        """A node goes away until told, or comes back now (Electrum then reconnects on its
        backoff schedule, so its channels read GOOD only a little later)."""
        self.model.set_node_online(pubkey, online)

    def restart_peer(self, pubkey: str, offline_seconds: float) -> None:
        """A node restarts: away for ``offline_seconds`` of the model's clock from now, then
        its channels go DISCONNECTED -> REESTABLISHING -> GOOD as Electrum reconnects."""
        self.model.restart_peer(pubkey, offline_seconds)

    def peer_good_at(self, pubkey: str) -> float | None:
        """When channels to ``pubkey`` read GOOD again (model clock) after the node's last
        outage or our restart, Electrum's reconnect backoff included; None when the node is
        down until told, or the connection was never lost."""
        node = self.model.nodes.get(pubkey)
        if node is None:
            raise SimError(f"no network node {pubkey}")
        if node.down_since is not None and node.back_at is None:
            return None
        connected = self.model.ln._connected_at(node)
        return None if connected is None else connected + self.model.config.reestablish_s

    def peer_state(self, channel_point: str) -> str:
        """A channel's ``peer_state`` now, as ``list_channels`` shows it."""
        _dw, chan = self.model.ln.find_channel(channel_point)
        return self.model.ln.peer_state(chan)

    def sendable_msat(self, channel_point: str) -> int:
        """Electrum's ``available_to_spend(LOCAL)`` of a channel now: the largest HTLC we
        can add (a payment's amount plus its routing fee must fit)."""
        self.model.ln.catch_up()
        _dw, chan = self.model.ln.find_channel(channel_point)
        return self.model.ln.sendable_msat(chan)

    def receivable_msat(self, channel_point: str) -> int:
        """Electrum's ``available_to_spend(REMOTE)`` of a channel now: the largest HTLC the
        peer can send us."""
        self.model.ln.catch_up()
        _dw, chan = self.model.ln.find_channel(channel_point)
        return self.model.ln.receivable_msat(chan)

    def channels(self, wallet_id: str) -> list[Any]:
        return list(self.model.daemon_wallet(self._wallet(wallet_id).key).channels.values())

    def open_channel_direct(
        self,
        wallet_id: str,
        pubkey: str,
        capacity_sat: int,
        *,
        local_sat: int | None = None,
        state: str = "OPEN",
        initiator: str = "local",
    ) -> str:
        """Put a channel in place without the open flow (no funding spent); its channel point."""
        dw = self.model.daemon_wallet(self._wallet(wallet_id).key)
        return self.model.ln.inject_channel(
            dw,
            pubkey,
            capacity_sat,
            local_sat=local_sat,
            state=ChanState(state),
            initiator=initiator,
        ).channel_point

    def remote_force_close(self, channel_point: str) -> None:
        self.model.ln.remote_force_close(channel_point)

    @property
    def payment_faults(self) -> PaymentFaults:
        return self.model.ln.faults

    def settle_held_payments(self) -> int:
        return self.model.ln.settle_held()

    # -- invoices and customers -------------------------------------------------------------

    def create_invoice(
        self, store_id: str, price: Decimal | int | str, currency: str = "", **kwargs: Any
    ) -> str:
        return self.model.shop.create_invoice(
            store_id, Decimal(str(price)), currency=currency, **kwargs
        ).id

    def customer_pay(
        self,
        invoice_id: str,
        *,
        lightning: bool = True,
        amount_sat: int | None = None,
        wallet_id: str | None = None,
    ) -> str:
        """A customer pays a store invoice; the payment hash or txid."""
        return self.model.shop.customer_pay(
            invoice_id, lightning=lightning, amount_sat=amount_sat, wallet_id=wallet_id
        )

    # -- lightning addresses ----------------------------------------------------------------

    def add_lightning_address(
        self, user: str = "merchant", *, server: str = "default", **kwargs: Any
    ) -> str:
        """``user@127.0.0.1:PORT`` served by the LNURL server ``server``."""
        return self.lnurl_servers[server].add_address(user, **kwargs)

    async def add_lnurl_server(self, name: str, port: int = 0) -> LnurlServer:
        """Another lightning-address host (its own port and payee key)."""
        server = LnurlServer(self.model, name, self.faults)
        self.lnurl_servers[name] = server
        await self._serve_lnurl(server, port)
        return server

    def set_lnurl_mode(
        self,
        mode: LnurlMode | str,
        address: str | None = None,
        stage: str | None = None,
        server: str = "default",
    ) -> None:
        user = address.split("@", 1)[0] if address else None
        self.lnurl_servers[server].set_mode(mode, user, stage)

    def received_by_address(self, address: str) -> int:
        """Msat the simulated network delivered to ``address``."""
        return self.model.lnaddr_received_msat.get(address, 0)

    # -- payments ledger --------------------------------------------------------------------

    @property
    def payments(self) -> list[OutgoingPayment]:
        """Every outgoing Lightning payment any wallet attempted, in order."""
        return list(self.model.ledger)

    def payments_to(self, address: str) -> list[OutgoingPayment]:
        return [p for p in self.model.ledger if p.destination == address and p.status == 3]

    # -- the daemon process -----------------------------------------------------------------

    async def set_daemon_down(self, down: bool = True) -> None:
        """Stop (or restart) the daemon's listener: RPC connections are refused, REST hides it."""
        if down:
            self.model.daemon_state = "down"
            await self._rpcd.deafen()
        else:
            if self._rpcd.site is None:
                await self._rpcd.listen()
            self.model.daemon_state = "up"

    def set_daemon_erroring(self, on: bool = True, message: str | None = None) -> None:
        """The daemon answers every call with -32603 (reachable, but failing)."""
        self.model.daemon_state = "erroring" if on else "up"
        if message:
            self.model.daemon_error = message

    async def restart_daemon(self) -> None:
        """Down and up again: ``setconfig`` values are forgotten, and every channel reads
        DISCONNECTED for ``daemon_reconnect_s`` of the model's clock, then REESTABLISHING,
        then GOOD."""
        await self.set_daemon_down(True)
        self.model.restart_daemon()
        await self.set_daemon_down(False)

    # -- inspection -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return self.model.snapshot()
