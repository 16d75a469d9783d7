"""The wallet interface the sections talk to, in our own terms.

Every amount is an ``int`` of sats (``_msat`` where Lightning needs millisats). Bitcart's
BTC strings and Electrum's raw dicts never cross this line: an implementation converts them
at its boundary. Another wallet kind (an LND-backed Bitcart, say) is another implementation
of :class:`WalletBackend`, not a branch in the sections.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class WalletError(Exception):
    """Base of every error a wallet backend raises."""


class TransientError(WalletError):
    """Worth retrying later: connection refused, timeout, 502/503/504, a daemon that is down."""


class AuthError(WalletError):
    """The token is missing, wrong or lacks a scope (401/403)."""


class NotFoundError(WalletError):
    """The store, wallet, invoice or payment does not exist (404)."""


class APIError(WalletError):
    """Bitcart refused a request; ``detail`` carries Bitcart's own words."""

    def __init__(self, status: int, detail: str, path: str = "") -> None:
        self.status = status
        self.detail = detail
        self.path = path
        super().__init__(f"Bitcart answered {status} on {path or 'request'}: {detail}")


class BadReplyError(WalletError):
    """A reply we cannot trust: malformed JSON, a missing field, an impossible value."""


class ChannelsUnavailableError(TransientError):
    """The channel list cannot be trusted now (the daemon failed behind ``GET /channels``).

    Never treat this as "no channels": opening on it would double the wallet's channels.
    """


class DaemonError(WalletError):
    """A JSON-RPC error from the coin daemon (it answers HTTP 200 with an ``error`` object)."""

    code: int = -32603

    def __init__(self, message: str, code: int | None = None) -> None:
        if code is not None:
            self.code = code
        self.message = message
        super().__init__(f"daemon error {self.code}: {message}")


class InsufficientFundsError(DaemonError):
    code = -32006


class InvalidNodeIdError(DaemonError):
    code = -32007


class InvalidInvoiceError(DaemonError):
    code = -32009


class NoPathError(DaemonError):
    code = -32010


class LightningUnsupportedError(DaemonError):
    code = -32011


class InvoiceNotFoundError(DaemonError):
    code = -32012


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


class ChannelState(enum.StrEnum):
    """Electrum's channel states grouped by what they mean for liquidity."""

    OPENING = "opening"  # PREOPENING, OPENING, FUNDED: funds committed, not usable yet
    OPEN = "open"  # OPEN: carries payments (when the peer is online)
    CLOSING = "closing"  # SHUTDOWN, CLOSING, FORCE_CLOSING, REQUESTED_FCLOSE, WE_ARE_TOXIC
    CLOSED = "closed"  # CLOSED, REDEEMED
    BACKUP = "backup"  # a row restored from a channel backup: no balances, no peer
    UNKNOWN = "unknown"


class LightningMode(enum.StrEnum):
    TRAMPOLINE = "trampoline"  # Electrum's default: only channels to trampolines can send
    GOSSIP = "gossip"  # local path finding: any well-connected peer can send
    UNKNOWN = "unknown"


class PaymentStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"  # in flight: never pay again while this holds
    UNKNOWN = "unknown"  # the wallet has no record of it


@dataclass(frozen=True, slots=True)
class Store:
    id: str
    name: str
    wallet_ids: tuple[str, ...]
    default_currency: str = "BTC"


@dataclass(frozen=True, slots=True)
class WalletInfo:
    id: str
    name: str
    currency: str
    lightning_enabled: bool
    # The key the daemon knows the wallet by (an xpub, or the seed of a hot wallet). Kept out
    # of repr so it can never reach a log line through a dataclass dump.
    key: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Balance:
    confirmed_sat: int
    unconfirmed_sat: int = 0
    unmatured_sat: int = 0
    lightning_sat: int = 0


@dataclass(frozen=True, slots=True)
class Channel:
    channel_point: str  # "txid:vout"
    state: ChannelState
    raw_state: str  # Electrum's own word, for logs
    peer_pubkey: str | None
    peer_online: bool  # peer_state == GOOD
    capacity_sat: int
    local_sat: int
    remote_sat: int
    local_reserve_sat: int
    remote_reserve_sat: int
    channel_id: str = ""
    short_channel_id: str | None = None

    @property
    def is_live(self) -> bool:
        """Open and the peer is online: the only channels that carry payments now."""
        return self.state is ChannelState.OPEN and self.peer_online

    @property
    def inbound_sat(self) -> int:
        """What the peer can still send us: its balance above the reserve it must keep."""
        return max(0, self.remote_sat - self.remote_reserve_sat)

    @property
    def sendable_sat(self) -> int:
        """Our balance above the reserve we must keep (before commitment and routing fees)."""
        return max(0, self.local_sat - self.local_reserve_sat)


@dataclass(frozen=True, slots=True)
class PaymentResult:
    payment_hash: str
    status: PaymentStatus
    preimage: str | None = None
    fee_msat: int | None = None
    amount_msat: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DecodedInvoice:
    """A BOLT11 invoice as the wallet reads it."""

    bolt11: str
    payment_hash: str
    amount_msat: int | None
    payee_pubkey: str
    timestamp: int  # unix seconds
    expiry_seconds: int
    description: str | None = None
    description_hash: str | None = None  # hex
    network: str = ""  # "bc", "tb", "bcrt", "tbs" …: the human-readable part's currency prefix


@dataclass(frozen=True, slots=True)
class LightningHistoryItem:
    payment_hash: str
    amount_msat: int  # positive received, negative sent (principal, without the fee)
    fee_msat: int  # routing fee we paid (0 for received)
    timestamp: datetime | None
    label: str = ""
    preimage: str | None = None


@dataclass(frozen=True, slots=True)
class OnchainHistoryItem:
    txid: str
    amount_sat: int  # the wallet's net change: positive in, negative out (fee included)
    fee_sat: int | None  # None when we did not fund it
    timestamp: datetime | None
    confirmations: int = 0
    label: str = ""


@dataclass(frozen=True, slots=True)
class InvoicePayment:
    amount_sat: int
    wallet_id: str
    lightning: bool
    is_used: bool
    address: str = ""  # the on-chain address (or BOLT11 for a ⚡ method) to pay


@dataclass(frozen=True, slots=True)
class StoreInvoice:
    """A Bitcart invoice (a customer's or a top-up)."""

    id: str
    store_id: str
    status: str  # pending, paid, confirmed, complete, expired, invalid, refunded
    price: str  # as Bitcart echoes it (a decimal string in `currency`)
    currency: str
    metadata: dict[str, Any]
    payments: tuple[InvoicePayment, ...] = ()
    created: datetime | None = None
    paid_date: datetime | None = None
    checkout_url: str = ""
    payment_methods: tuple[str, ...] = ()  # wallet ids the invoice can be paid into

    def onchain_address(self, wallet_id: str) -> str:
        """The on-chain address this invoice offers for ``wallet_id``; "" when none."""
        for p in self.payments:
            if p.wallet_id == wallet_id and not p.lightning and p.address:
                return p.address
        return ""

    @property
    def paid_over_lightning(self) -> bool:
        """Paid, and the method used was a Lightning one."""
        used = [p for p in self.payments if p.is_used]
        return bool(used) and all(p.lightning for p in used)

    @property
    def received_sat_by_wallet(self) -> dict[str, int]:
        """Sats actually received, from the payment method the customer used (never `price`)."""
        out: dict[str, int] = {}
        for p in self.payments:
            if p.is_used:
                out[p.wallet_id] = out.get(p.wallet_id, 0) + p.amount_sat
        return out


@dataclass(frozen=True, slots=True)
class FeeBudget:
    """Electrum's Lightning payment fee limit (daemon-wide, lost on daemon restart)."""

    max_millionths: int
    cutoff_msat: int


# ---------------------------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class WalletBackend(Protocol):
    """What the liquidity loop needs from a wallet system. All methods are async."""

    async def list_stores(self) -> list[Store]:
        """Every store the credentials see, however many pages."""

    async def list_wallets(self) -> list[WalletInfo]:
        """Every wallet the credentials see, however many pages."""

    async def get_wallet(self, wallet_id: str) -> WalletInfo: ...

    async def balance(self, wallet_id: str) -> Balance: ...

    async def channels(self, wallet_id: str) -> list[Channel]:
        """Raises :class:`ChannelsUnavailableError` when the list cannot be trusted."""

    async def node_id(self, wallet_id: str) -> str | None:
        """The wallet's Lightning node id, or None when it has no Lightning."""

    async def lightning_mode(self, wallet_id: str) -> LightningMode: ...

    async def fee_rate(self, wallet_id: str, target_blocks: int = 2) -> int:
        """On-chain fee-rate estimate in sat/vB (rounded up)."""

    async def open_channel(self, wallet_id: str, connection_string: str, amount_sat: int) -> str:
        """Open a channel of ``amount_sat`` to ``pubkey@host:port``; returns the channel point."""

    async def close_channel(self, wallet_id: str, channel_point: str, force: bool = False) -> str:
        """Close a channel; returns the closing txid."""

    async def pay_invoice(self, wallet_id: str, bolt11: str) -> PaymentResult: ...

    async def lookup_payment(self, wallet_id: str, payment_hash: str) -> PaymentResult:
        """What the wallet knows of an outgoing payment, for reconciliation after a restart."""

    async def decode_invoice(self, wallet_id: str, bolt11: str) -> DecodedInvoice: ...

    async def lightning_history(self, wallet_id: str) -> list[LightningHistoryItem]: ...

    async def label_payment(self, wallet_id: str, payment_hash: str, label: str) -> None:
        """Label a payment in the wallet itself (Electrum ``setlabel``): the record that
        survives a lost journal."""

    async def onchain_history(self, wallet_id: str) -> list[OnchainHistoryItem]: ...

    async def coins(self, wallet_id: str) -> list[tuple[int, int]]:
        """The wallet's unspent coins as (sats, height), largest first (Electrum
        ``listunspent``; height 0 or below: unconfirmed): what a funding tx will spend."""
        ...

    async def deposit_address(self, wallet_id: str) -> str: ...

    async def create_store_invoice(
        self,
        store_id: str,
        amount_sat: int,
        *,
        metadata: dict[str, Any],
        notes: str = "",
        expiration_minutes: int = 60 * 24,
        payment_methods: list[str] | None = None,
    ) -> StoreInvoice:
        """Create an invoice priced in BTC, payable only into ``payment_methods`` (wallet ids;
        None: every wallet of the store); BadReplyError if Bitcart echoes another amount."""

    async def invalidate_invoices(self, invoice_ids: list[str]) -> None:
        """Mark invoices invalid in Bitcart (the batch ``mark_invalid`` command)."""

    async def list_store_invoices(
        self,
        store_id: str,
        *,
        status: str | None = None,
        metadata: dict[str, str] | None = None,
        created_since: datetime | None = None,
    ) -> list[StoreInvoice]:
        """Every invoice of one store (filtered with ``query=store_id:ID``, and created at or
        after ``created_since``), all pages."""

    async def create_lightning_wallet(self, name: str, store_id: str) -> WalletInfo:
        """Create a hot, Lightning-enabled wallet and attach it to the store. Never log its seed."""

    async def get_fee_budget(self, wallet_id: str) -> FeeBudget: ...

    async def set_fee_budget(self, wallet_id: str, budget: FeeBudget) -> None:
        """Set it and read it back: a daemon that did not keep it raises a WalletError."""
        ...

    async def aclose(self) -> None: ...
