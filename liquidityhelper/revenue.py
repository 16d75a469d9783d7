"""The operator's fee: eligible revenue, fees already paid, and what is due now.

Eligible revenue = sats received into a managed wallet on paid invoices (status paid,
confirmed or complete) since ``fee_start_date``, from ``payments[].amount`` of the method the
customer used (never ``price``), top-up invoices excluded. Fees paid come from our journal
(principal only: a cashout is never a fee, a routing fee is never principal), or from the
wallet's own labelled payments when those show more (a lost journal).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from liquidityhelper.config import Settings
from liquidityhelper.decisions.payments import fee_due_sat
from liquidityhelper.journal import Journal, Kind, KindSummary, payment_label
from liquidityhelper.snapshot import WalletSnapshot
from liquidityhelper.wallet.base import (
    LightningHistoryItem,
    StoreInvoice,
    WalletBackend,
    WalletError,
)

log = structlog.get_logger(__name__)

PAID_STATUSES = frozenset({"paid", "confirmed", "complete"})
# An invoice in one of these will not change any more: its revenue can be kept in the cursor.
FINAL_STATUSES = frozenset({"complete", "expired", "invalid", "refunded"})
TOPUP_TAG = "topup"
# While a fee is due, the wallet's labelled payments are read (its whole Lightning history) to
# find fees the journal lacks. That read is kept, per wallet, while the journal's own fee
# payments for the wallet stay the same, for at most this long. A lost or restored journal is
# found at the process's start (nothing kept yet: read before any fee payment), and every fee
# payment this process makes changes the journal (read again before the next one). What only
# time can reveal is a labelled payment made outside this process: a second daemon on another
# data directory over the same wallets, or a payment settled after its entry was written off.
# An hour bounds how long such a payment goes unseen, at 24 reads a day per wallet with a fee
# due, whatever the poll interval and however long the history (every cycle before).
HISTORY_REREAD_SECONDS = 3600.0


def is_topup(invoice: StoreInvoice) -> bool:
    return str(invoice.metadata.get("liquidityhelper", "")) == TOPUP_TAG


def eligible_revenue_sat(
    invoices: Iterable[StoreInvoice], wallet_id: str, since: datetime | None
) -> int:
    """Sum received into ``wallet_id`` on paid, non-top-up invoices since ``since``.

    Invoices are counted once each, even when several stores (sharing a wallet) list them.
    """
    seen: set[str] = set()
    total = 0
    for inv in invoices:
        if inv.id in seen or inv.status not in PAID_STATUSES or is_topup(inv):
            continue
        seen.add(inv.id)
        when = inv.paid_date or inv.created
        if since is not None and (when is None or when < since):
            continue
        total += inv.received_sat_by_wallet.get(wallet_id, 0)
    return total


def fees_paid_in_wallet(history: Iterable[LightningHistoryItem]) -> int:
    """Principal of settled payments the wallet labels as our fee payments."""
    label = payment_label(Kind.FEE_PAYMENT.value)
    sent = [-i.amount_msat for i in history if i.label == label and i.amount_msat < 0]
    return sum(sent) // 1000


@dataclass(frozen=True, slots=True)
class _HistoryRead:
    """The fees a wallet's history showed paid, and what the journal said when it was read."""

    journal: Journal
    basis: KindSummary
    in_wallet_sat: int
    at: float  # monotonic seconds


@dataclass(frozen=True, slots=True)
class FeeState:
    due_sat: int
    numbers: dict[str, int] = field(default_factory=dict)
    blocked: str = ""  # a reason no fee may be paid now, even if one looks due


class FeeLedger:
    """Computes fee due per wallet, once per cycle (cached until forgotten)."""

    def __init__(self, settings: Settings, journal: Journal) -> None:
        self.settings = settings
        self.journal = journal
        self._cache: dict[str, FeeState] = {}
        self._history: dict[str, _HistoryRead] = {}  # last read per wallet, across cycles
        self.monotonic: Callable[[], float] = time.monotonic
        self.persist = True  # False for read-only commands (status): no cursor writes

    def new_cycle(self) -> None:
        self._cache.clear()

    def forget(self, wallet_id: str) -> None:
        self._cache.pop(wallet_id, None)
        self._history.pop(wallet_id, None)

    async def fee_due(self, backend: WalletBackend, snap: WalletSnapshot) -> FeeState:
        cached = self._cache.get(snap.wallet_id)
        if cached is not None:
            return cached
        since = self.settings.fee_start_date
        revenue = await self._revenue_sat(backend, snap)
        journal_fees = self.journal.kind_summary(snap.wallet_id, Kind.FEE_PAYMENT)
        paid = journal_fees.succeeded_sat
        network = 0
        if self.settings.fees_include_network_fees:
            network = await self._network_fees_sat(backend, snap.wallet_id, since)
        due = fee_due_sat(revenue, self.settings.fee_rate, paid, network)
        numbers = {"revenue_sat": revenue, "fees_paid_sat": paid, "network_fees_sat": network}
        if due > 0:
            # The journal may be new or lost: what the wallet itself shows as paid counts too.
            try:
                in_wallet = await self._fees_in_wallet(backend, snap.wallet_id, journal_fees)
            except WalletError as exc:
                state = FeeState(0, {**numbers, "fee_due_sat": due}, "fee_history_unreadable")
                log.warning(
                    "fee_history_unreadable", wallet=snap.wallet_id, error=str(exc), **numbers
                )
                self._cache[snap.wallet_id] = state
                return state
            if in_wallet > paid:
                log.warning(
                    "fee_ledger_reconciled",
                    wallet=snap.wallet_id,
                    journal_sat=paid,
                    wallet_history_sat=in_wallet,
                    note="fees the journal lacks were found in the wallet's payment history",
                )
                paid = in_wallet
                numbers["fees_paid_sat"] = paid
                due = fee_due_sat(revenue, self.settings.fee_rate, paid, network)
        state = FeeState(due, numbers)
        self._cache[snap.wallet_id] = state
        return state

    async def _fees_in_wallet(
        self, backend: WalletBackend, wallet_id: str, journal_fees: KindSummary
    ) -> int:
        """Fees the wallet's own history shows paid: read again only when the journal's fee
        payments changed since the last read, or it is older than HISTORY_REREAD_SECONDS."""
        now = self.monotonic()
        kept = self._history.get(wallet_id)
        if (
            kept is not None
            and kept.journal is self.journal
            and kept.basis == journal_fees
            and 0 <= now - kept.at < HISTORY_REREAD_SECONDS
        ):
            return kept.in_wallet_sat
        in_wallet = fees_paid_in_wallet(await backend.lightning_history(wallet_id))
        self._history[wallet_id] = _HistoryRead(self.journal, journal_fees, in_wallet, now)
        return in_wallet

    async def _revenue_sat(self, backend: WalletBackend, snap: WalletSnapshot) -> int:
        """Eligible revenue, reading only invoices created since the oldest one still open.

        Invoices created before the cursor are all final and their revenue is kept in the
        journal (``revenue:<wallet>``), so an idle cycle reads one short page per store
        whatever the shop's history. A changed fee_start_date or set of stores starts over.
        """
        start = self.settings.fee_start_date
        key = f"revenue:{snap.wallet_id}"
        basis = {"start": start.isoformat() if start else None, "stores": sorted(snap.store_ids)}
        saved = self.journal.get_state(key)
        cursor, base = start, 0
        if isinstance(saved, dict) and all(saved.get(k) == v for k, v in basis.items()):
            cursor, base = datetime.fromisoformat(saved["since"]), int(saved["base_sat"])
        invoices: dict[str, StoreInvoice] = {}
        for store_id in snap.store_ids:
            for inv in await backend.list_store_invoices(store_id, created_since=cursor):
                invoices.setdefault(inv.id, inv)
        rows = list(invoices.values())
        window = eligible_revenue_sat(rows, snap.wallet_id, start)
        # Move the cursor up to the oldest invoice whose outcome may still change.
        dated = [i for i in rows if i.created is not None]
        still_open = [i.created for i in dated if i.status not in FINAL_STATUSES and i.created]
        newest = max((i.created for i in dated if i.created), default=None)
        new_cursor = min(still_open) if still_open else (newest or cursor)
        if self.persist and new_cursor is not None and new_cursor != cursor:
            settled = [i for i in dated if i.created and i.created < new_cursor]
            self.journal.set_state(
                key,
                {
                    **basis,
                    "since": new_cursor.isoformat(),
                    "base_sat": base + eligible_revenue_sat(settled, snap.wallet_id, start),
                },
                now=datetime.now(UTC),
            )
        return base + window

    async def _network_fees_sat(
        self, backend: WalletBackend, wallet_id: str, since: datetime | None
    ) -> int:
        """On-chain fees of transactions we funded, plus routing fees of our payments."""
        onchain = sum(
            item.fee_sat or 0
            for item in await backend.onchain_history(wallet_id)
            if item.fee_sat and (since is None or (item.timestamp and item.timestamp >= since))
        )
        routing = self.journal.routing_fees_msat(wallet_id, since) // 1000
        return onchain + routing
