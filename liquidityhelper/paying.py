"""Paying a lightning address (cashouts and the operator's fee).

One attempt: fetch the LNURL pay request and a verified invoice → set and read back the
routing-fee budget → journal the intent → label the payment in the wallet → pay → record the
outcome. An outcome we cannot know stays ``pending`` for :mod:`liquidityhelper.reconcile`.
A failed attempt steps the amount down (½, ¼ …) to the action's minimum, then backs off.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import structlog

from liquidityhelper import lnurl
from liquidityhelper.actions import PayLightningAddress
from liquidityhelper.decisions.payments import routing_fee_cap_msat
from liquidityhelper.executor_context import ExecutorContext
from liquidityhelper.journal import Entry, Kind, Status, payment_label
from liquidityhelper.wallet.base import (
    FeeBudget,
    PaymentResult,
    PaymentStatus,
    TransientError,
    WalletBackend,
    WalletError,
)

log = structlog.get_logger(__name__)


def _fields(action: PayLightningAddress) -> dict[str, Any]:
    return {"kind": action.kind, "wallet": action.wallet_id, "address": action.address}


def _pin_key(action: PayLightningAddress) -> str:
    """The state key of the node an address's invoices must come from (trust on first use)."""
    return f"payee:{action.address}"


async def pay_lightning_address(
    ctx: ExecutorContext, backend: WalletBackend, action: PayLightningAddress
) -> str:
    """Pay, stepping down (½, ¼ …) to the minimum on failure; then back off.

    Returns the final outcome: succeeded, failed, refused, pending or dry_run.
    """
    fields = _fields(action)
    if ctx.dry_run:
        log.info("dry_run_payment", amount_sat=action.amount_sat, **fields, **action.numbers)
        return "dry_run"
    amount = action.amount_sat
    backoff_key = f"backoff:{action.kind}:{action.wallet_id}"
    while True:
        outcome = await pay_once(ctx, backend, action, amount)
        if outcome == "succeeded":
            ctx.journal.delete_state(backoff_key)
            return outcome
        if outcome == "pending":
            return outcome
        # A refused invoice is not retried at a smaller amount: the server is at fault.
        if outcome == "refused" or amount // 2 < action.min_amount_sat:
            until = ctx.clock() + timedelta(seconds=ctx.settings.cashout_backoff_seconds)
            # Tied to the address: fixing a wrong address must not wait out the back-off.
            ctx.journal.set_state(
                backoff_key,
                {"until": until.isoformat(), "address": action.address},
                now=ctx.clock(),
            )
            if outcome == "refused":  # its one log line already said why and for how long
                return outcome
            log.warning(
                "payment_backing_off",
                until=until.isoformat(),
                outcome=outcome,
                last_amount_sat=amount,
                min_amount_sat=action.min_amount_sat,
                **fields,
            )
            return outcome
        amount //= 2
        log.info("payment_stepping_down", amount_sat=amount, **fields)


async def pay_once(
    ctx: ExecutorContext, backend: WalletBackend, action: PayLightningAddress, amount: int
) -> str:
    """One attempt at ``amount`` sats: succeeded, failed, refused or pending."""
    fields = _fields(action)
    now = ctx.clock()
    pinned = ctx.journal.get_state(_pin_key(action))
    fetched = await fetch_verified_invoice(ctx, action, amount, pinned, now)
    if isinstance(fetched, str):
        return fetched
    amount_msat, invoice = fetched
    amount = amount_msat // 1000

    cap_msat = routing_fee_cap_msat(
        amount, ctx.settings.max_routing_fee_sat, ctx.settings.max_routing_fee_ppm
    )
    if not await enforce_fee_cap(backend, action.wallet_id, amount_msat, cap_msat):
        log.error(
            "payment_refused",
            reason="fee_cap_unenforceable",
            amount_sat=amount,
            cap_msat=cap_msat,
            retry_in_seconds=ctx.settings.cashout_backoff_seconds,
            **fields,
        )
        return "refused"

    entry = ctx.journal.record_intent(
        Kind(action.kind),
        action.wallet_id,
        amount,
        action.address,
        now=now,
        invoice=invoice.bolt11,
        payment_hash=invoice.payment_hash,
        expires_at=datetime.fromtimestamp(invoice.expires_at, now.tzinfo),
    )
    if not await label_payment(ctx, backend, action, entry, invoice, amount):
        return "refused"
    log.info(
        "payment_sending",
        amount_sat=amount,
        fee_cap_msat=cap_msat,
        entry=entry.id,
        payment_hash=invoice.payment_hash,
        **fields,
    )
    result = await send_payment(ctx, backend, action, entry, invoice, amount)
    if isinstance(result, str):
        return result
    return record_result(ctx, action, entry, invoice, result, amount, pinned)


async def fetch_verified_invoice(
    ctx: ExecutorContext,
    action: PayLightningAddress,
    amount: int,
    pinned: Any,
    now: datetime,
) -> tuple[int, lnurl.VerifiedInvoice] | str:
    """The msat amount asked and its checked invoice, or the outcome (failed or refused).

    The amount is clamped to the server's maximum and whole sats; an invoice from a node
    other than the address's pinned one is refused by :func:`lnurl.fetch_invoice`.
    """
    fields = _fields(action)
    try:
        address = lnurl.parse_lightning_address(
            action.address, loopback_http=ctx.settings.loopback_http_ok
        )
        pay_request = await lnurl.fetch_pay_request(ctx.http, address)
        amount_msat = min(amount * 1000, pay_request.max_sendable_msat) // 1000 * 1000
        if amount_msat < pay_request.min_sendable_msat:
            log.warning(
                "payment_below_lnurl_minimum",
                amount_sat=amount_msat // 1000,
                min_msat=pay_request.min_sendable_msat,
                **fields,
            )
            return "failed"
        invoice = await lnurl.fetch_invoice(
            ctx.http,
            pay_request,
            amount_msat,
            network=ctx.settings.network,
            now=now.timestamp(),
            expected_payee=pinned,
        )
    except lnurl.LnurlError as exc:
        log.error(
            "lnurl_refused",
            reason=exc.reason,
            error=exc.message,
            amount_sat=amount,
            retry_in_seconds=ctx.settings.cashout_backoff_seconds,
            **{**exc.details, **fields},
        )
        return "refused"
    return amount_msat, invoice


async def enforce_fee_cap(
    backend: WalletBackend, wallet_id: str, amount_msat: int, cap_msat: int
) -> bool:
    """Set Electrum's payment fee budget so no route may cost more than the cap.

    Electrum allows ``max(cutoff_msat, amount × millionths / 1e6)``; both terms are set at
    or below the cap. The budget is daemon-wide and lost on a daemon restart, so it is set
    before every payment (payments run one at a time); ``set_fee_budget`` reads it back and
    raises when the daemon did not keep it.
    """
    budget = FeeBudget(max_millionths=cap_msat * 1_000_000 // amount_msat, cutoff_msat=cap_msat)
    try:
        await backend.set_fee_budget(wallet_id, budget)
        return True
    except WalletError as exc:
        log.warning("fee_budget_unavailable", wallet=wallet_id, error=str(exc))
        return False


async def label_payment(
    ctx: ExecutorContext,
    backend: WalletBackend,
    action: PayLightningAddress,
    entry: Entry,
    invoice: lnurl.VerifiedInvoice,
    amount: int,
) -> bool:
    """Label the payment in the wallet; False (entry failed) when a fee payment cannot be.

    The wallet's own record of what this payment was: a lost journal can be rebuilt from it,
    so a fee is never paid twice. Without it a fee payment is not sent.
    """
    fields = _fields(action)
    try:
        await backend.label_payment(
            action.wallet_id, invoice.payment_hash, payment_label(action.kind)
        )
    except WalletError as exc:
        if action.kind == Kind.FEE_PAYMENT.value:
            ctx.journal.finish(
                entry.id, Status.FAILED, now=ctx.clock(), detail=f"label failed: {exc}"
            )
            log.error(
                "payment_refused",
                reason="payment_label_failed",
                error=str(exc),
                amount_sat=amount,
                **fields,
            )
            return False
        log.warning("payment_label_failed", error=str(exc), **fields)
    return True


async def send_payment(
    ctx: ExecutorContext,
    backend: WalletBackend,
    action: PayLightningAddress,
    entry: Entry,
    invoice: lnurl.VerifiedInvoice,
    amount: int,
) -> PaymentResult | str:
    """The wallet's answer, or the outcome when it gave none: pending (unknown) or failed."""
    fields = _fields(action)
    try:
        return await asyncio.wait_for(
            backend.pay_invoice(action.wallet_id, invoice.bolt11),
            timeout=ctx.settings.payment_timeout_seconds,
        )
    except (TransientError, TimeoutError) as exc:
        log.warning(
            "payment_outcome_unknown",
            entry=entry.id,
            error=str(exc) or "timeout",
            amount_sat=amount,
            **fields,
        )
        return "pending"
    except WalletError as exc:
        # The daemon refused the invoice outright; nothing left the wallet.
        ctx.journal.finish(entry.id, Status.FAILED, now=ctx.clock(), detail=str(exc)[:500])
        log.warning("payment_failed", entry=entry.id, amount_sat=amount, error=str(exc), **fields)
        return "failed"


def record_result(
    ctx: ExecutorContext,
    action: PayLightningAddress,
    entry: Entry,
    invoice: lnurl.VerifiedInvoice,
    result: PaymentResult,
    amount: int,
    pinned: Any,
) -> str:
    """Journal what the wallet said; pin the payee on its first paid invoice."""
    fields = _fields(action)
    if result.status is PaymentStatus.SUCCEEDED:
        ctx.journal.finish(entry.id, Status.SUCCEEDED, now=ctx.clock(), fee_msat=result.fee_msat)
        # Trust on first use, pinned only once a payment to that node went through: a
        # failed first payment must not lock the address to a node that never got paid.
        if pinned is None:
            ctx.journal.set_state(_pin_key(action), invoice.payee_pubkey, now=ctx.clock())
            log.info("payee_pinned", address=action.address, payee=invoice.payee_pubkey)
        ctx.peers.learn_payee(action.address, invoice.payee_pubkey, ctx.clock())
        log.info(
            "payment_succeeded",
            entry=entry.id,
            amount_sat=amount,
            fee_msat=result.fee_msat,
            **fields,
        )
        return "succeeded"
    if result.status is PaymentStatus.FAILED:
        ctx.journal.finish(entry.id, Status.FAILED, now=ctx.clock(), detail=result.detail[:500])
        log.warning(
            "payment_failed", entry=entry.id, amount_sat=amount, error=result.detail, **fields
        )
        return "failed"
    log.warning(
        "payment_outcome_unknown",
        entry=entry.id,
        amount_sat=amount,
        status=result.status.value,
        **fields,
    )
    return "pending"
