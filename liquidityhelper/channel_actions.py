"""Opening and closing channels: journaled, sent, recorded; what a refusal teaches us.

A refused open is blamed on the peer (it wants bigger channels: remembered per peer) or on
our coins (remembered per wallet until its coins change), so the same open is not tried again
every cycle.
"""

from __future__ import annotations

import structlog

from liquidityhelper import common_functions as cf
from liquidityhelper.actions import CloseChannel, OpenChannel
from liquidityhelper.executor_context import ExecutorContext
from liquidityhelper.journal import Journal, Kind, Status
from liquidityhelper.wallet.base import (
    InsufficientFundsError,
    TransientError,
    WalletBackend,
    WalletError,
)

log = structlog.get_logger(__name__)


async def open_channel(ctx: ExecutorContext, backend: WalletBackend, action: OpenChannel) -> bool:
    """Returns True when funds may have moved (refresh the wallet's snapshot)."""
    fields = {
        "wallet": action.wallet_id,
        "peer": action.pubkey,
        "amount_sat": action.capacity_sat,
        "fee_rate": action.fee_rate,
        "reason": action.reason,
    }
    peer_min = peer_minimum(ctx.journal, action.pubkey)
    if action.capacity_sat < peer_min:
        # This peer refused a channel this small before: it would refuse again, silently,
        # after stalling the cycle ~20 s.
        log.info(
            "nothing_to_do",
            **{k: v for k, v in fields.items() if k != "reason"},
            section="channel_opening",
            reason="channel_below_peer_minimum",
            open_reason=action.reason,
            peer_min_sat=peer_min,
        )
        return False
    if ctx.dry_run:
        log.info("dry_run_open_channel", **fields)
        return False
    now = ctx.clock()
    entry = ctx.journal.record_intent(
        Kind.CHANNEL_OPEN,
        action.wallet_id,
        action.capacity_sat,
        action.connection_string,
        now=now,
    )
    try:
        point = await backend.open_channel(
            action.wallet_id, action.connection_string, action.capacity_sat
        )
    except TransientError as exc:
        log.warning("channel_open_outcome_unknown", error=str(exc), entry=entry.id, **fields)
        return True
    except WalletError as exc:
        ctx.journal.finish(entry.id, Status.FAILED, now=ctx.clock(), detail=str(exc)[:500])
        cause = open_failure_cause(action, exc)
        remember_open_refusal(ctx, action, cause)
        ctx.peers.record_open_attempt(
            action.wallet_id, action.pubkey, False, cause, None, ctx.clock()
        )
        log.error("channel_open_failed", error=str(exc), cause=cause, **fields)
        return True
    ctx.journal.finish(entry.id, Status.SUCCEEDED, now=ctx.clock(), reference=point)
    ctx.peers.record_open_attempt(action.wallet_id, action.pubkey, True, None, point, ctx.clock())
    log.info("channel_opened", channel_point=point, **fields)
    return True


def peer_minimum(journal: Journal, pubkey: str) -> int:
    """The least channel size this peer takes, learned from its refusal (0: unknown)."""
    raw = journal.get_state(f"peer_min:{pubkey}")
    return int(raw) if isinstance(raw, int | str) and str(raw).isdigit() else 0


def open_failure_cause(action: OpenChannel, exc: WalletError) -> str:
    """Whose fault a refused open is: the peer's (its error class) or ours.

    Bitcart turns every open error into 400 "Failed to open channel", so the cause is
    inferred: an Electrum peer refuses channels under 200,000 sats without a word, and a
    thin funds margin means our wallet likely needed more inputs than planned.
    """
    if isinstance(exc, InsufficientFundsError):
        return "InsufficientFundsError"
    if action.capacity_sat < cf.ELECTRUM_PEER_MIN_FUNDING_SAT:
        return "BelowPeerMinimum"
    if action.margin_sat is not None and action.margin_sat < (
        cf.FUNDING_TX_VBYTES * max(action.fee_rate, 1)
    ):
        return "OurFundsLikely"
    return type(exc).__name__


def remember_open_refusal(ctx: ExecutorContext, action: OpenChannel, cause: str) -> None:
    """Note what a refused open says about the peer's minimum or our wallet's coins."""
    if cause == "BelowPeerMinimum":
        ctx.journal.set_state(
            f"peer_min:{action.pubkey}", cf.ELECTRUM_PEER_MIN_FUNDING_SAT, now=ctx.clock()
        )
    if cause in ("InsufficientFundsError", "OurFundsLikely"):
        # Our coins could not pay for it: the same open would fail again every cycle
        # until the wallet's coins change. Remember what it held.
        ctx.journal.set_state(
            f"open_funds_short:{action.wallet_id}",
            {"capacity_sat": action.capacity_sat, "fee_rate": action.fee_rate},
            now=ctx.clock(),
        )


async def close_channel(ctx: ExecutorContext, backend: WalletBackend, action: CloseChannel) -> bool:
    """Cooperatively close a channel; True when funds may have moved."""
    fields = {
        "wallet": action.wallet_id,
        "channel_point": action.channel_point,
        "peer": action.pubkey,
        "reason": action.reason,
    }
    if ctx.dry_run:
        log.info("dry_run_close_channel", **fields)
        return False
    entry = ctx.journal.record_intent(
        Kind.CHANNEL_CLOSE,
        action.wallet_id,
        0,
        action.channel_point,
        now=ctx.clock(),
        detail=action.reason,
    )
    try:
        txid = await backend.close_channel(action.wallet_id, action.channel_point, force=False)
    except TransientError as exc:
        log.warning("channel_close_outcome_unknown", error=str(exc), **fields)
        return True
    except WalletError as exc:
        ctx.journal.finish(entry.id, Status.FAILED, now=ctx.clock(), detail=str(exc)[:500])
        ctx.peers.record_close(
            action.wallet_id, action.channel_point, False, type(exc).__name__, ctx.clock()
        )
        log.error("channel_close_failed", error=str(exc), **fields)
        return True
    ctx.journal.finish(entry.id, Status.SUCCEEDED, now=ctx.clock(), reference=txid)
    ctx.peers.record_close(action.wallet_id, action.channel_point, True, None, ctx.clock())
    log.info("channel_closed", closing_txid=txid, **fields)
    return True
