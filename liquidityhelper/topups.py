"""Top-up invoices a merchant can pay without risk: one live invoice per managed wallet.

A top-up is shown as a WARNING (amount in sat and BTC, where to pay) and, once per wallet, as a
Bitcart invoice in the wallet's first store. That invoice is payable only into the managed
wallet (``payment_methods``), reused while its amount still covers the need within
:data:`REUSE_TOLERANCE_PERCENT`, and marked invalid in Bitcart before another one is made, or
when no top-up is needed any more: a merchant can never find two invoices for one shortfall.

A payment seen but not yet final stops new invoices until it settles; a top-up paid over
Lightning (Bitcart also offers the wallet's ⚡ method) is reported once: those sats land in a
channel, and the next cashout sends them back to the merchant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from liquidityhelper import common_functions as cf
from liquidityhelper.actions import ShowTopup
from liquidityhelper.config import Settings
from liquidityhelper.journal import Journal, Kind
from liquidityhelper.revenue import TOPUP_TAG
from liquidityhelper.wallet.base import StoreInvoice, WalletBackend

log = structlog.get_logger(__name__)

# A pending invoice is reused while need <= its amount <= need + 10 %: an estimate moving a
# few sat/vB does not replace it, and the merchant never pays more than 10 % above the need
# (the excess stays in the managed wallet as spare funds, not lost).
REUSE_TOLERANCE_PERCENT = 10
# Bitcart's statuses of an invoice whose payment was seen but is not final yet.
PAYMENT_SEEN = ("paid", "confirmed")
# journal state per paid top-up invoice: {"wallet", "amount_sat"} (the /metrics counter).
TOPUP_PAID_PREFIX = "topup_paid:"
LIGHTNING_PAID_NOTE = (
    "paid over Lightning: top-ups must be paid on-chain; the sats go back to your cashout address"
)


@dataclass(frozen=True, slots=True)
class LiveTopup:
    """The invoice a wallet's stores point the merchant to."""

    invoice_id: str
    store_id: str
    amount_sat: int
    address: str  # the managed wallet's on-chain address from the invoice
    checkout_link: str  # "" without bitcart_admin_url


def covers(amount_sat: int, need_sat: int) -> bool:
    """An invoice of ``amount_sat`` still serves a need of ``need_sat``."""
    return need_sat <= amount_sat <= need_sat + need_sat * REUSE_TOLERANCE_PERCENT // 100


def is_topup_of(invoice: StoreInvoice, wallet_id: str) -> bool:
    meta = invoice.metadata
    return str(meta.get("liquidityhelper", "")) == TOPUP_TAG and meta.get("wallet_id") == wallet_id


def invoice_amount_sat(invoice: StoreInvoice) -> int:
    try:
        return int(str(invoice.metadata.get("amount_sat")))
    except ValueError:
        return cf.btc_to_sats(invoice.price) if invoice.currency == "BTC" else 0


class TopupDesk:
    """Shows top-ups and keeps each wallet's one live invoice in Bitcart."""

    def __init__(self, settings: Settings, journal: Journal, clock: Callable[[], datetime]):
        self.settings = settings
        self.journal = journal
        self.clock = clock
        self._live: dict[str, LiveTopup] = {}  # wallet id -> this cycle's invoice
        self._changed = 0  # invoices made or withdrawn by the call under way

    @property
    def dry_run(self) -> bool:
        return self.settings.dry_run

    def checkout_link(self, invoice_id: str) -> str:
        base = self.settings.bitcart_admin_url
        return f"{base.rstrip('/')}/i/{invoice_id}" if base else ""

    # --- showing ---------------------------------------------------------------------------

    async def show(self, backend: WalletBackend, action: ShowTopup) -> int:
        """WARNING with everything needed to pay; at most every reminder interval or on
        change. The wallet's first store holds the invoice; the others point to it. Returns
        how many invoices were made or withdrawn in Bitcart."""
        self._changed = 0
        now = self.clock()
        key = f"topup:{action.store_id}"
        state: dict[str, Any] = self.journal.get_state(key) or {}
        live: LiveTopup | None = None
        if action.make_invoice and self.settings.create_topup_invoices:
            found = await self._live_invoice(backend, action, now)
            if isinstance(found, str):  # "waiting": a payment is on its way
                return self._changed
            live = found
            if live is not None:
                self._live[action.wallet_id] = live
        elif not action.make_invoice:
            live = self._live.get(action.wallet_id)
        changed = state.get("amount_sat") != action.amount_sat or (
            live is not None and state.get("invoice_id") != live.invoice_id
        )
        last = datetime.fromisoformat(state["shown_at"]) if state.get("shown_at") else None
        interval = timedelta(seconds=self.settings.topup_reminder_interval_seconds)
        if not changed and last is not None and now - last < interval:
            log.debug(
                "topup_reminder_suppressed",
                store=action.store_id,
                wallet=action.wallet_id,
                amount_sat=action.amount_sat,
            )
            return self._changed
        log.warning(
            "topup_needed",
            store=action.store_id,
            wallet=action.wallet_id,
            amount_sat=action.amount_sat,
            btc=cf.format_btc(action.amount_sat),
            **self._where(action, live),
            **({"dry_run": True} if self.dry_run else {}),
            **action.numbers,
        )
        if not self.dry_run:
            self.journal.set_state(
                key,
                {
                    "amount_sat": action.amount_sat,
                    "shown_at": now.isoformat(),
                    "invoice_id": live.invoice_id if live else None,
                    "invoice_store": live.store_id if live else None,
                },
                now=now,
            )
        return self._changed

    def _where(self, action: ShowTopup, live: LiveTopup | None) -> dict[str, Any]:
        if live is None:
            return {"send_to": f"the on-chain address of wallet {action.wallet_id} (on-chain only)"}
        where: dict[str, Any] = {"invoice": live.invoice_id}
        if live.store_id != action.store_id:
            where["invoice_store"] = live.store_id  # a wallet shared with that store
        if live.checkout_link:
            where["checkout"] = live.checkout_link
        if live.address:
            where["address"] = live.address
        where["send_to"] = (
            f"Bitcart invoice {live.invoice_id}"
            + (f" of store {live.store_id}" if live.store_id != action.store_id else "")
            + ", on-chain"
        )
        return where

    # --- the one live invoice ------------------------------------------------------------------

    async def _live_invoice(
        self, backend: WalletBackend, action: ShowTopup, now: datetime
    ) -> LiveTopup | str | None:
        """The wallet's live invoice for this need (reused or new), ``"waiting"`` while a
        payment to one is seen but not final, or None (dry run)."""
        ours = [
            i
            for i in await backend.list_store_invoices(
                action.store_id, metadata={"liquidityhelper": TOPUP_TAG}
            )
            if is_topup_of(i, action.wallet_id)
        ]
        self._report_lightning_paid(ours, action, now)
        seen = [i for i in ours if i.status in PAYMENT_SEEN]
        if seen:
            log.info(
                "nothing_to_do",
                section="topups",
                reason="topup_payment_seen",
                wallet=action.wallet_id,
                store=action.store_id,
                invoice=seen[0].id,
                status=seen[0].status,
                amount_sat=invoice_amount_sat(seen[0]),
            )
            return "waiting"
        pending = [i for i in ours if i.status == "pending"]
        keep = next((i for i in pending if covers(invoice_amount_sat(i), action.amount_sat)), None)
        stale = [i for i in pending if i is not keep]
        await self._invalidate(backend, stale, action.wallet_id, "superseded", now)
        if keep is not None:
            return self._as_live(keep, action.wallet_id)
        if self.dry_run:
            log.info(
                "dry_run_create_topup_invoice",
                store=action.store_id,
                wallet=action.wallet_id,
                amount_sat=action.amount_sat,
            )
            return None
        invoice = await backend.create_store_invoice(
            action.store_id,
            action.amount_sat,
            metadata={
                "liquidityhelper": TOPUP_TAG,
                "wallet_id": action.wallet_id,
                "amount_sat": str(action.amount_sat),
            },
            notes=f"liquidityhelper top-up: {action.amount_sat} sats for Lightning channels, "
            "pay on-chain",
            expiration_minutes=self.settings.topup_invoice_expiration_minutes,
            payment_methods=[action.wallet_id],
        )
        self._changed += 1
        self.journal.record_event(
            Kind.TOPUP_INVOICE,
            action.wallet_id,
            action.amount_sat,
            action.store_id,
            now=now,
            reference=invoice.id,
        )
        log.info(
            "topup_invoice_created",
            store=action.store_id,
            wallet=action.wallet_id,
            amount_sat=action.amount_sat,
            invoice=invoice.id,
        )
        return self._as_live(invoice, action.wallet_id)

    def _as_live(self, invoice: StoreInvoice, wallet_id: str) -> LiveTopup:
        return LiveTopup(
            invoice_id=invoice.id,
            store_id=invoice.store_id,
            amount_sat=invoice_amount_sat(invoice),
            address=invoice.onchain_address(wallet_id),
            checkout_link=self.checkout_link(invoice.id),
        )

    async def _invalidate(
        self,
        backend: WalletBackend,
        invoices: Sequence[StoreInvoice],
        wallet_id: str,
        why: str,
        now: datetime,
    ) -> None:
        if not invoices:
            return
        ids = [i.id for i in invoices]
        if self.dry_run:
            log.info("dry_run_invalidate_topup_invoices", wallet=wallet_id, invoices=ids, why=why)
            return
        await backend.invalidate_invoices(ids)
        self._changed += len(ids)
        for invoice in invoices:
            self.journal.record_event(
                Kind.TOPUP_INVALIDATED,
                wallet_id,
                invoice_amount_sat(invoice),
                invoice.store_id,
                now=now,
                reference=invoice.id,
                detail=why,
            )
        log.info("topup_invoices_invalidated", wallet=wallet_id, invoices=ids, why=why)

    def _report_lightning_paid(
        self, invoices: Sequence[StoreInvoice], action: ShowTopup, now: datetime
    ) -> None:
        for invoice in invoices:
            if invoice.status != "complete" or not invoice.paid_over_lightning:
                continue
            key = f"topup_ln_paid:{invoice.id}"
            if self.journal.get_state(key):
                continue
            log.warning(
                "topup_paid_over_lightning",
                store=action.store_id,
                wallet=action.wallet_id,
                invoice=invoice.id,
                amount_sat=invoice_amount_sat(invoice),
                note=LIGHTNING_PAID_NOTE,
            )
            if not self.dry_run:
                self.journal.set_state(key, now.isoformat(), now=now)

    # --- when no top-up is needed ------------------------------------------------------------

    async def retire(self, backend: WalletBackend, wallet_id: str, store_id: str) -> int:
        """No top-up is needed: the invoice last shown for it must not be paid any more.
        Returns how many invoices were withdrawn."""
        self._changed = 0
        key = f"topup:{store_id}"
        state: dict[str, Any] = self.journal.get_state(key) or {}
        if not state.get("invoice_id"):
            return 0  # nothing live: costs no request in an idle cycle
        now = self.clock()
        ours = [
            i
            for i in await backend.list_store_invoices(
                store_id, metadata={"liquidityhelper": TOPUP_TAG}
            )
            if is_topup_of(i, wallet_id)
        ]
        pending = [i for i in ours if i.status == "pending"]
        await self._invalidate(backend, pending, wallet_id, "not_needed", now)
        if not self.dry_run:
            for invoice in ours:  # what was paid, for the top-ups-paid counter
                received = invoice.received_sat_by_wallet.get(wallet_id, 0)
                if received and invoice.status in (*PAYMENT_SEEN, "complete"):
                    self.journal.set_state(
                        f"{TOPUP_PAID_PREFIX}{invoice.id}",
                        {"wallet": wallet_id, "amount_sat": received},
                        now=now,
                    )
        if not self.dry_run:
            self.journal.delete_state(key)
            self._live.pop(wallet_id, None)
        return self._changed


def topups_paid_sat(journal: Journal) -> dict[str, int]:
    """Wallet -> sats received on top-up invoices the daemon saw paid (all time)."""
    out: dict[str, int] = {}
    for value in journal.states_with_prefix(TOPUP_PAID_PREFIX).values():
        if isinstance(value, dict):
            wallet = str(value.get("wallet", ""))
            out[wallet] = out.get(wallet, 0) + int(value.get("amount_sat", 0))
    return out
