"""Bitcart store invoices: creation (with the currency pitfall), customer payments, statuses."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import structlog

from liquidityhelper.simulator import bolt11util
from liquidityhelper.simulator.entities import (
    PR_PAID,
    PR_UNCONFIRMED,
    IssuedInvoice,
    PaymentMethod,
    Request,
    StoreInvoice,
    Wallet,
)
from liquidityhelper.simulator.errors import SimError
from liquidityhelper.simulator.formats import COIN, format_plain, quantize
from liquidityhelper.simulator.lightning import new_preimage
from liquidityhelper.simulator.ports import ModelPort

log = structlog.get_logger(__name__)

CURRENCY_DATA: dict[str, dict[str, Any]] = {
    "BTC": {"name": "Bitcoin", "divisibility": 8, "crypto": True, "symbol": None},
    "USD": {"name": "US Dollar", "symbol": "$", "divisibility": 2, "crypto": False},
    "EUR": {"name": "Euro", "symbol": "€", "divisibility": 2, "crypto": False},
    "GBP": {"name": "British Pound", "symbol": "£", "divisibility": 2, "crypto": False},
}


def currency_data(code: str) -> dict[str, Any]:
    return dict(
        CURRENCY_DATA.get(code, {"name": code, "symbol": "", "divisibility": 2, "crypto": False})
    )


def divisibility(code: str) -> int:
    return int(currency_data(code)["divisibility"])


class Shop:
    def __init__(self, model: ModelPort) -> None:
        self.m = model
        self._by_rhash: dict[str, tuple[str, str]] = {}  # rhash -> (invoice id, method id)
        self._onchain: dict[str, tuple[str, str, str]] = {}  # txid -> (invoice, method, key)

    # -- reading ----------------------------------------------------------------------------

    def status_of(self, inv: StoreInvoice) -> str:
        """The status, with "expired" worked out from the clock (reading changes nothing)."""
        if inv.status == "pending" and self.time_left(inv) <= 0:
            return "expired"
        return inv.status

    def time_left(self, inv: StoreInvoice) -> int:
        return max(0, int(inv.created + inv.expiration * 60 - self.m.now()))

    def rate(self, currency: str) -> Decimal:
        if currency == "BTC":
            return Decimal(1)
        try:
            return Decimal(self.m.config.fiat_rates.get(currency, "1"))
        except InvalidOperation:
            return Decimal(1)

    # -- creating ---------------------------------------------------------------------------

    def create_invoice(
        self,
        store_id: str,
        price: Decimal,
        *,
        currency: str = "",
        notes: str = "",
        expiration: int | None = None,
        metadata: dict[str, Any] | None = None,
        order_id: str = "",
        buyer_email: str = "",
        payment_methods: list[str] | None = None,
    ) -> StoreInvoice:
        """Bitcart's invoice creation: no currency means the store's (the USD-at-rate-1 trap)."""
        store = self.m.stores.get(store_id)
        if store is None:
            raise SimError(f"no store {store_id}")
        currency = (currency or store.default_currency).upper()
        expiration = int(expiration or store.checkout_settings.get("expiration", 15))
        price = quantize(Decimal(price), divisibility(currency))
        inv = StoreInvoice(
            id=self.m.ids.ulid(),
            user_id=store.user_id,
            store_id=store.id,
            price=price,
            currency=currency,
            created=self.m.stamp(),
            expiration=expiration,
            metadata=dict(metadata or {}),
            notes=notes,
            order_id=order_id,
            buyer_email=buyer_email,
        )
        wallet_ids = payment_methods if payment_methods else list(store.wallets)
        inv.payment_methods = [w for w in wallet_ids if w in store.wallets]
        if self.m.daemon_state == "up":
            rate = self.rate(currency)
            amount_sat = int(quantize(price / rate, 8) * COIN)
            for wid in inv.payment_methods:
                self._add_methods(inv, self.m.wallets[wid], amount_sat, rate)
        inv.updated = self.m.now()
        self.m.invoices[inv.id] = inv
        return inv

    def _recommended_fee(self, inv: StoreInvoice) -> Decimal:
        """Bitcart's on-chain ``recommended_fee``: the daemon's estimate for the store's
        target in sat/kvB, divided by 1024 (sic) to two places; 0 when there is none."""
        store = self.m.stores[inv.store_id]
        target = store.checkout_settings.get("recommended_fee_target_blocks", 1)
        rate = self.m.fee_estimates.eta_target_to_fee(target)
        return (Decimal(rate or 0) / 1024).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)

    def _add_methods(
        self, inv: StoreInvoice, wallet: Wallet, amount_sat: int, rate: Decimal
    ) -> None:
        dw = self.m.daemon_wallet(wallet.key)
        ts = int(self.m.now())
        exp = inv.expiration * 60
        fee_vb = self._recommended_fee(inv)
        name_on, name_ln = (wallet.label, wallet.label) if wallet.label else ("BTC", "BTC (⚡)")
        address = self.m.take_address(dw)
        request_id = self.m.ids.hex(5)
        dw.requests[request_id] = Request(
            request_id, False, amount_sat, "", ts, exp, address=address
        )
        inv.payments.append(
            PaymentMethod(
                id=self.m.ids.ulid(),
                wallet_id=wallet.id,
                lightning=False,
                amount_sat=amount_sat,
                payment_address=address,
                payment_url=f"bitcoin:{address}?amount={format_plain(amount_sat)}&time={ts}&exp={exp}",
                lookup_field=request_id,
                created=self.m.stamp(),
                label=wallet.label,
                name=name_on,
                rate=rate,
                request_id=request_id,
                recommended_fee=fee_vb,
            )
        )
        if not (self.m.config.lightning and wallet.lightning_enabled and dw.can_lightning):
            return
        preimage, rhash = new_preimage(self.m)
        bolt11 = bolt11util.encode(
            bolt11util.InvoiceSpec(
                currency=self.m.config.hrp,
                payment_hash=rhash,
                payment_secret=self.m.ids.hex(32),
                timestamp=ts,
                expiry=exp,
                amount_msat=amount_sat * 1000,
                description="",
            ),
            dw.node_secret_hex,
        )
        self.m.register_issued(
            IssuedInvoice(
                rhash,
                preimage,
                bolt11,
                amount_sat * 1000,
                dw.node_id,
                ts,
                exp,
                "",
                kind="request",
                owner=dw.key,
            )
        )
        dw.requests[rhash] = Request(
            rhash, True, amount_sat, "", ts, exp, payment_hash=rhash, bolt11=bolt11
        )
        method = PaymentMethod(
            id=self.m.ids.ulid(),
            wallet_id=wallet.id,
            lightning=True,
            amount_sat=amount_sat,
            payment_address=bolt11,
            payment_url=bolt11,
            lookup_field=rhash,
            created=self.m.stamp(),
            label=wallet.label,
            name=name_ln,
            rate=rate,
            request_id=rhash,
            rhash=rhash,
            node_id=dw.node_id,
        )
        inv.payments.append(method)
        self._by_rhash[rhash] = (inv.id, method.id)

    # -- customers --------------------------------------------------------------------------

    def customer_pay(
        self,
        invoice_id: str,
        *,
        lightning: bool = True,
        amount_sat: int | None = None,
        wallet_id: str | None = None,
    ) -> str:
        """A customer pays; returns the payment hash (Lightning) or the txid (on-chain)."""
        inv = self.m.invoices.get(invoice_id)
        if inv is None:
            raise SimError(f"no invoice {invoice_id}")
        if self.status_of(inv) != "pending":
            raise SimError(f"invoice is {self.status_of(inv)}")
        method = next(
            (
                p
                for p in inv.payments
                if p.lightning == lightning and (wallet_id is None or p.wallet_id == wallet_id)
            ),
            None,
        )
        if method is None:
            raise SimError("the invoice has no such payment method")
        sats = method.amount_sat if amount_sat is None else amount_sat
        dw = self.m.daemon_wallet(self.m.wallets[method.wallet_id].key)
        if lightning:
            issued = self.m.issued[str(method.rhash)]
            self.m.ln.receive(dw, sats * 1000, issued.payment_hash, issued.preimage)
            issued.settled = True
            self._mark_paid(inv, method, sats, "complete")
            return issued.payment_hash
        tx = self.m.add_tx(dw, sats, kind="customer", label=f"invoice {inv.id}")
        request = dw.requests.get(method.request_id)
        if request is not None:
            request.status = PR_UNCONFIRMED
            request.tx_hashes.append(tx.txid)
        inv.tx_hashes.append(tx.txid)
        self._onchain[tx.txid] = (inv.id, method.id, dw.key)
        self._mark_paid(inv, method, sats, "paid")
        return tx.txid

    def on_lightning_paid(self, rhash: str, amount_msat: int) -> None:
        """A simulated wallet paid one of our invoices' BOLT11s."""
        ref = self._by_rhash.get(rhash)
        if ref is None:
            return
        inv = self.m.invoices[ref[0]]
        method = next(p for p in inv.payments if p.id == ref[1])
        if self.status_of(inv) == "pending":
            self._mark_paid(inv, method, amount_msat // 1000, "complete")

    def _mark_paid(self, inv: StoreInvoice, method: PaymentMethod, sats: int, status: str) -> None:
        method.is_used = True
        method.paid_sat = sats
        inv.payment_id = method.id
        inv.paid_currency = method.name
        inv.sent_amount = Decimal(sats) / COIN
        inv.updated = self.m.now()
        if sats < method.amount_sat and not method.lightning:
            inv.exception_status = "paid_partial"
            return
        inv.exception_status = (
            "none" if sats == method.amount_sat or method.lightning else "paid_over"
        )
        inv.status = status
        inv.paid_date = inv.paid_date or self.m.now()
        log.info("sim_invoice_paid", status=status, sats=sats, lightning=method.lightning)

    def on_block(self) -> None:
        for txid, (inv_id, method_id, key) in list(self._onchain.items()):
            inv = self.m.invoices[inv_id]
            dw = self.m.daemon_wallets[key]
            tx = next((t for t in dw.txs if t.txid == txid), None)
            if tx is None or tx.height <= 0:
                continue
            method = next(p for p in inv.payments if p.id == method_id)
            method.confirmations = self.m.confirmations(tx.height)
            request = dw.requests.get(method.request_id)
            if request is not None:
                request.status = PR_PAID
            if inv.status == "paid":
                inv.status = "complete"
                inv.updated = self.m.now()
            del self._onchain[txid]
