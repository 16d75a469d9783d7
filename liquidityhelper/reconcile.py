"""Settling what the journal left pending: outcomes we could not know when they happened.

A payment is looked up in the wallet by its hash; a channel open or close is matched against
the wallet's channels. What stays unknown stays pending, and nothing new moves on that wallet.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from liquidityhelper.executor_context import ExecutorContext
from liquidityhelper.journal import PAYMENT_KINDS, Entry, Kind, Status
from liquidityhelper.snapshot import WalletSnapshot
from liquidityhelper.wallet.base import ChannelState, PaymentStatus, WalletBackend, WalletError

log = structlog.get_logger(__name__)

OPEN_RECONCILE_AFTER = timedelta(minutes=30)  # an open that left no channel by then failed
EXPIRY_GRACE = timedelta(minutes=2)


async def reconcile_pending(
    ctx: ExecutorContext, backend: WalletBackend, wallet_id: str, snap: WalletSnapshot | None
) -> list[Entry]:
    """Settle what the journal left pending for a wallet; returns what is still pending."""
    now = ctx.clock()
    for entry in ctx.journal.pending(wallet_id):
        try:
            if entry.kind in PAYMENT_KINDS:
                await reconcile_payment(ctx, backend, entry, now)
            elif snap is not None:
                reconcile_channel(ctx, entry, snap, now)
        except WalletError as exc:
            log.warning(
                "reconcile_failed",
                wallet=wallet_id,
                entry=entry.id,
                kind=entry.kind.value,
                error=str(exc),
            )
    return ctx.journal.pending(wallet_id)


async def reconcile_payment(
    ctx: ExecutorContext, backend: WalletBackend, entry: Entry, now: datetime
) -> None:
    """Settle a pending payment from the wallet's record of it (by payment hash)."""
    assert entry.payment_hash is not None
    result = await backend.lookup_payment(entry.wallet_id, entry.payment_hash)
    fields = {
        "wallet": entry.wallet_id,
        "entry": entry.id,
        "kind": entry.kind.value,
        "amount_sat": entry.amount_sat,
        "payment_hash": entry.payment_hash,
    }
    if result.status is PaymentStatus.SUCCEEDED:
        ctx.journal.finish(
            entry.id,
            Status.SUCCEEDED,
            now=now,
            fee_msat=result.fee_msat,
            detail="reconciled: paid",
        )
        log.info("payment_reconciled", outcome="succeeded", fee_msat=result.fee_msat, **fields)
    elif result.status is PaymentStatus.FAILED:
        ctx.journal.finish(entry.id, Status.FAILED, now=now, detail="reconciled: failed")
        log.info("payment_reconciled", outcome="failed", **fields)
    elif (
        result.status is PaymentStatus.UNKNOWN
        and entry.expires_at is not None
        and now > entry.expires_at + EXPIRY_GRACE
    ):
        # The wallet never saw it and the invoice can no longer be paid: it is safe to
        # call it failed (a crash between journaling and sending ends here).
        ctx.journal.finish(entry.id, Status.FAILED, now=now, detail="expired unpaid")
        log.info("payment_reconciled", outcome="expired_unpaid", **fields)
    else:
        log.info("payment_still_pending", status=result.status.value, **fields)


def reconcile_channel(
    ctx: ExecutorContext, entry: Entry, snap: WalletSnapshot, now: datetime
) -> None:
    """Settle a pending open or close from the channels the wallet shows."""
    age = now - entry.created_at
    if entry.kind is Kind.CHANNEL_OPEN:
        pubkey = entry.destination.split("@", 1)[0]
        known = {e.reference for e in ctx.journal.entries(entry.wallet_id, Kind.CHANNEL_OPEN)}
        found = [
            c
            for c in snap.channels
            if c.peer_pubkey == pubkey
            and c.channel_point not in known
            and c.state in (ChannelState.OPENING, ChannelState.OPEN)
        ]
        if found:
            ctx.journal.finish(
                entry.id,
                Status.SUCCEEDED,
                now=now,
                reference=found[0].channel_point,
                detail="reconciled",
            )
        elif age > OPEN_RECONCILE_AFTER:
            ctx.journal.finish(entry.id, Status.FAILED, now=now, detail="no channel appeared")
        else:
            return
    elif entry.kind is Kind.CHANNEL_CLOSE:
        row = next((c for c in snap.channels if c.channel_point == entry.destination), None)
        if row is None or row.state in (ChannelState.CLOSING, ChannelState.CLOSED):
            ctx.journal.finish(entry.id, Status.SUCCEEDED, now=now, detail="reconciled")
        elif age > OPEN_RECONCILE_AFTER:
            ctx.journal.finish(entry.id, Status.FAILED, now=now, detail="channel not closing")
        else:
            return
    log.info(
        "channel_action_reconciled",
        wallet=entry.wallet_id,
        entry=entry.id,
        kind=entry.kind.value,
        outcome=ctx.journal.get(entry.id).status.value,
    )
