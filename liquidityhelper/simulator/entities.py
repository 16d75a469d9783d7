"""The simulator's state: plain dataclasses, cheap to hold by the thousand.

Two sides, as in the real system: Bitcart's database (users, tokens, stores, wallet records,
store invoices) and the daemon's wallets, keyed by the wallet key (xpub or seed), which own
coins, channels, requests and outgoing payments. Amounts are int sats, Lightning in msat.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

# Electrum's invoice/request status ints (electrum/invoices.py).
PR_UNPAID = 0
PR_EXPIRED = 1
PR_PAID = 3
PR_INFLIGHT = 4
PR_FAILED = 5
PR_UNCONFIRMED = 7

STATUS_STR = {
    PR_UNPAID: "Unpaid",
    PR_EXPIRED: "Expired",
    PR_PAID: "Paid",
    PR_INFLIGHT: "In progress",
    PR_FAILED: "Failed",
    PR_UNCONFIRMED: "Unconfirmed",
}


class ChanState(enum.StrEnum):
    PREOPENING = "PREOPENING"
    OPENING = "OPENING"
    FUNDED = "FUNDED"
    OPEN = "OPEN"
    SHUTDOWN = "SHUTDOWN"
    CLOSING = "CLOSING"
    FORCE_CLOSING = "FORCE_CLOSING"
    REQUESTED_FCLOSE = "REQUESTED_FCLOSE"
    WE_ARE_TOXIC = "WE_ARE_TOXIC"
    CLOSED = "CLOSED"
    REDEEMED = "REDEEMED"


@dataclass(slots=True)
class User:
    id: str
    email: str
    password: str
    is_superuser: bool
    created: float
    totp_key: str
    balance_currency: str = "USD"


@dataclass(slots=True)
class Token:
    id: str  # the bearer value itself, as in Bitcart
    user_id: str
    permissions: list[str]
    created: float
    app_id: str = ""
    redirect_url: str = ""


@dataclass(slots=True)
class Store:
    id: str
    user_id: str
    name: str
    default_currency: str
    wallets: list[str]
    created: float
    updated: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    checkout_settings: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Wallet:
    """Bitcart's wallet record; the coins live in the :class:`DaemonWallet` of ``key``."""

    id: str
    user_id: str
    name: str
    key: str
    currency: str
    lightning_enabled: bool
    created: float
    label: str = ""
    hint: str = ""
    updated: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class OnchainTx:
    txid: str
    amount_sat: int  # net change of the wallet, fee included for spends
    fee_sat: int | None  # None when we did not fund it
    height: int  # 0 = in the mempool
    timestamp: float
    label: str = ""
    kind: str = "deposit"  # deposit, funding, closing, sweep, customer


@dataclass(slots=True)
class Coin:
    """An unspent output of a daemon wallet (kept only with ``SimConfig.coin_selection``)."""

    tx: OnchainTx  # the tx that created it: a payment received, or our own funding's change
    amount_sat: int

    @property
    def spendable(self) -> bool:
        """Every unspent coin: Electrum's ``get_spendable_coins`` takes unconfirmed ones too
        (``confirmed_only`` is off by default); its chooser prefers confirmed ones."""
        return True


@dataclass(frozen=True, slots=True)
class CoinSelection:
    """The inputs a funding tx spends (``SimModel.select_coins``), its fee and its change."""

    coins: list[Coin]
    funding_sat: int
    fee_sat: int
    change_sat: int


@dataclass(slots=True)
class Htlc:
    """An HTLC in flight on a channel."""

    amount_msat: int
    offered_by: str  # "local" (we pay) or "remote" (we are paid)


@dataclass(slots=True)
class Channel:
    channel_point: str
    funding_txid: str
    vout: int
    channel_id: str
    peer_pubkey: str
    capacity_sat: int
    local_msat: int
    remote_msat: int
    local_reserve_sat: int  # what we must keep (set by the peer)
    remote_reserve_sat: int  # what the peer must keep (set by us)
    feerate_per_kw: int  # of the commitment; the initiator pays it and updates it
    initiator: str  # "local" or "remote"
    state: ChanState
    opened_at: float
    funding_height: int = 0
    short_channel_id: str | None = None
    closing_txid: str | None = None
    close_kind: str | None = None  # coop, force_local, force_remote
    close_height: int = 0
    closing_at: float | None = None  # when it left OPEN for a close (reconnects skip it)
    local_ctn: int = 0
    remote_ctn: int = 0
    htlcs: list[Htlc] = field(default_factory=list)
    kind: str = "CHANNEL"  # or BACKUP

    def offered_msat(self, by: str) -> tuple[int, ...]:
        return tuple(h.amount_msat for h in self.htlcs if h.offered_by == by)

    @property
    def local_unsettled_msat(self) -> int:
        return sum(self.offered_msat("local"))

    @property
    def remote_unsettled_msat(self) -> int:
        return sum(self.offered_msat("remote"))


@dataclass(slots=True)
class Request:
    """An incoming payment request of a daemon wallet (``add_request``; store invoices)."""

    request_id: str
    is_lightning: bool
    amount_sat: int
    message: str
    timestamp: int
    expiry: int
    address: str | None = None
    payment_hash: str | None = None
    bolt11: str | None = None
    status: int = PR_UNPAID
    tx_hashes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class IssuedInvoice:
    """A BOLT11 the simulator issued, so it knows where a payment to it lands."""

    payment_hash: str
    preimage: str
    bolt11: str
    amount_msat: int | None
    payee_pubkey: str
    timestamp: int
    expiry: int
    description: str
    kind: str  # "request" (a daemon wallet) or "lnaddr" (a lightning-address server)
    owner: str  # wallet key, or lightning address
    settled: bool = False


@dataclass(slots=True)
class OutgoingPayment:
    """An outgoing invoice of a daemon wallet (Electrum's ``list_invoices``) and its outcome."""

    wallet_key: str = field(repr=False)
    payment_hash: str
    bolt11: str
    amount_msat: int
    message: str
    timestamp: int  # the invoice's
    expiry: int
    status: int = PR_INFLIGHT
    fee_msat: int = 0
    preimage: str | None = None
    attempted_at: float = 0.0
    settled_at: float | None = None
    channel_point: str | None = None
    destination: str = ""  # lightning address or wallet id when the simulator knows it
    attempts: int = 0


@dataclass(slots=True)
class ReceivedPayment:
    payment_hash: str
    preimage: str
    amount_msat: int
    timestamp: float
    channel_point: str
    label: str = ""


@dataclass(slots=True)
class DaemonWallet:
    key: str = field(repr=False)
    kind: str  # seed, xprv, xpub
    can_lightning: bool  # native segwit and able to sign (Electrum's can_have_lightning)
    node_id: str
    node_secret_hex: str = field(repr=False)
    created: float
    next_address_index: int = 0
    txs: list[OnchainTx] = field(default_factory=list)
    coins: list[Coin] = field(default_factory=list)  # with SimConfig.coin_selection only
    channels: dict[str, Channel] = field(default_factory=dict)
    requests: dict[str, Request] = field(default_factory=dict)
    outgoing: dict[str, OutgoingPayment] = field(default_factory=dict)
    received: list[ReceivedPayment] = field(default_factory=list)
    peers: dict[str, str] = field(default_factory=dict)  # pubkey -> "host:port"
    labels: dict[str, str] = field(default_factory=dict)  # Electrum's wallet labels, by key


@dataclass(slots=True)
class NetworkNode:
    pubkey: str
    alias: str
    host: str
    port: int
    trampoline: bool = False
    # "electrum": stock Electrum, which drops an open_channel it refuses without a word (the
    # opener times out); "lnd": answers a refusal with an error message.
    kind: str = "lnd"
    accepts_channels: bool = True
    min_channel_sat: int = 0
    max_channel_sat: int | None = None
    refusal: str = "channel rejected"
    # Forwarding fee; a trampoline takes a payment only when the sender's fee covers it.
    fee_base_msat: int = 1_000
    fee_ppm: int = 1_000
    # Down from ``down_since`` until ``back_at`` (None: until told); up when both are None.
    down_since: float | None = None
    back_at: float | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def is_up(self, now: float) -> bool:
        if self.down_since is None or now < self.down_since:
            return True
        return self.back_at is not None and now >= self.back_at


@dataclass(slots=True)
class PaymentMethod:
    id: str
    wallet_id: str
    lightning: bool
    amount_sat: int
    payment_address: str
    payment_url: str
    lookup_field: str
    created: float
    label: str
    name: str
    rate: Decimal
    request_id: str
    rhash: str | None = None
    node_id: str | None = None
    recommended_fee: Decimal = Decimal(0)  # sat/vB, two decimals
    is_used: bool = False
    confirmations: int = 0
    paid_sat: int = 0


@dataclass(slots=True)
class StoreInvoice:
    id: str
    user_id: str
    store_id: str
    price: Decimal
    currency: str
    created: float
    expiration: int  # minutes
    payments: list[PaymentMethod] = field(default_factory=list)
    payment_methods: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    order_id: str = ""
    buyer_email: str = ""
    notification_url: str = ""
    redirect_url: str = ""
    status: str = "pending"
    exception_status: str = "none"
    paid_date: float | None = None
    payment_id: str | None = None
    paid_currency: str | None = None
    sent_amount: Decimal = Decimal(0)
    tx_hashes: list[str] = field(default_factory=list)
    updated: float | None = None
