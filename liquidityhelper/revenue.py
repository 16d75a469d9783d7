"""The operator's fee: eligible revenue, fees already paid, and what is due now.

Eligible revenue = sats received into a managed wallet on paid invoices (status paid,
confirmed or complete) since ``fee_start_date``, from ``payments[].amount`` of the method the
customer used (never ``price``), top-up invoices excluded. Fees paid come from our journal
(principal only: a cashout is never a fee, a routing fee is never principal).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from liquidityhelper.config import Settings
from liquidityhelper.decisions.payments import fee_due_sat
from liquidityhelper.journal import Journal, Kind, payment_label
from liquidityhelper.snapshot import WalletSnapshot
from liquidityhelper.wallet.base import (
    LightningHistoryItem,
    StoreInvoice,
    WalletBackend,
    WalletError,
)

log = structlog.get_logger(__name__)

PAID_STATUSES = frozenset({"paid", "confirmed", "complete"})
TOPUP_TAG = "topup"


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

    def new_cycle(self) -> None:
        self._cache.clear()

    def forget(self, wallet_id: str) -> None:
        self._cache.pop(wallet_id, None)

    async def fee_due(self, backend: WalletBackend, snap: WalletSnapshot) -> FeeState:
        cached = self._cache.get(snap.wallet_id)
        if cached is not None:
            return cached
        since = self.settings.fee_start_date
        invoices: list[StoreInvoice] = []
        for store_id in snap.store_ids:
            invoices.extend(await backend.list_store_invoices(store_id))
        revenue = eligible_revenue_sat(invoices, snap.wallet_id, since)
        paid = self.journal.paid_sat(snap.wallet_id, Kind.FEE_PAYMENT)
        network = 0
        if self.settings.fees_include_network_fees:
            network = await self._network_fees_sat(backend, snap.wallet_id, since)
        due = fee_due_sat(revenue, self.settings.fee_rate, paid, network)
        numbers = {"revenue_sat": revenue, "fees_paid_sat": paid, "network_fees_sat": network}
        if due > 0:
            # The journal may be new or lost: what the wallet itself shows as paid counts too.
            try:
                in_wallet = fees_paid_in_wallet(await backend.lightning_history(snap.wallet_id))
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
