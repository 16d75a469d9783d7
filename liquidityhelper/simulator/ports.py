"""What the operations (:mod:`channels`, :mod:`lightning`, :mod:`shop`) use of the model.

:class:`~liquidityhelper.simulator.model.SimModel` builds the operations and hands them
itself; they type that back-reference (``self.m``) against :class:`ModelPort`, which
``SimModel`` satisfies structurally. So the imports run one way: ``model`` imports the
operations, and the operations import this module, never ``model``.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from liquidityhelper.simulator.config import SimConfig
from liquidityhelper.simulator.entities import (
    Channel,
    CoinSelection,
    DaemonWallet,
    IssuedInvoice,
    NetworkNode,
    OnchainTx,
    OutgoingPayment,
    Store,
    StoreInvoice,
    Wallet,
)
from liquidityhelper.simulator.fees import FeeEstimates
from liquidityhelper.simulator.ids import IdFactory


class LightningPort(Protocol):
    """What the shop uses of ``model.ln`` (:class:`~.lightning.LightningOps`)."""

    def receive(
        self, dw: DaemonWallet, amount_msat: int, payment_hash: str, preimage: str, label: str = ""
    ) -> Channel: ...


class ShopPort(Protocol):
    """What Lightning payments use of ``model.shop`` (:class:`~.shop.Shop`)."""

    def on_lightning_paid(self, rhash: str, amount_msat: int) -> None: ...


class ModelPort(Protocol):
    """The part of :class:`~.model.SimModel` the operations read and call."""

    config: SimConfig
    rng: random.Random
    ids: IdFactory
    height: int
    fee_estimates: FeeEstimates
    electrum: dict[str, Any]
    daemon_state: str
    daemon_restarted_at: float | None
    # Bitcart's records
    stores: dict[str, Store]
    wallets: dict[str, Wallet]
    invoices: dict[str, StoreInvoice]
    # the daemon and the network
    daemon_wallets: dict[str, DaemonWallet]
    nodes: dict[str, NetworkNode]
    issued: dict[str, IssuedInvoice]
    issued_by_bolt11: dict[str, str]
    lnaddr_received_msat: dict[str, int]
    ledger: list[OutgoingPayment]

    @property
    def ln(self) -> LightningPort: ...

    @property
    def shop(self) -> ShopPort: ...

    @property
    def use_gossip(self) -> bool: ...

    # time
    def now(self) -> float: ...

    def stamp(self) -> float: ...

    # the daemon's wallets and the chain
    def daemon_wallet(self, key: str) -> DaemonWallet: ...

    def wallet_by_node(self, node_id: str) -> DaemonWallet | None: ...

    def take_address(self, dw: DaemonWallet) -> str: ...

    def add_tx(
        self,
        dw: DaemonWallet,
        amount_sat: int,
        *,
        fee_sat: int | None = None,
        confirmed: bool = False,
        kind: str = "deposit",
        label: str = "",
        txid: str | None = None,
    ) -> OnchainTx: ...

    def confirmations(self, height: int) -> int: ...

    def spendable(self, dw: DaemonWallet) -> int: ...

    def select_coins(self, dw: DaemonWallet, funding_sat: int | None) -> CoinSelection: ...

    def spend(self, dw: DaemonWallet, selection: CoinSelection, tx: OnchainTx) -> None: ...

    def funding_fee_sat(self, vbytes: int) -> int: ...

    def fee_sat(self, vbytes: int) -> int: ...

    # issued invoices
    def register_issued(self, inv: IssuedInvoice) -> None: ...
