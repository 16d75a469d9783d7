"""Closing channels whose peer is unreliable, from our own observations only.

A channel (state OPEN, with a peer) is closed cooperatively when either rule holds:

- ``offline``: its peer is offline now and has not been seen online for more than
  ``close_offline_after_days`` (since the channel was first seen, if never online);
- ``low_uptime``: its peer's uptime for this wallet over ``uptime_window_days`` is below
  ``min_uptime_ratio``, with at least ``min_uptime_samples`` samples.

Either rule also needs ``min_observation_coverage`` of the hours in its window to hold a
sample: after our own downtime (or an Electrum restart, when every peer is briefly
disconnected) we do not know enough, so we do not close. At most
``max_closes_per_wallet_per_day`` closes per wallet in any 24 h (closes already recorded
count). A channel whose close failed is not tried again for ``close_retry_hours``. Electrum
needs the peer connected for a cooperative close, so the ``offline`` rule usually succeeds only
once the peer reappears; until then each attempt fails fast and is retried later. The closed
peer is blacklisted ("unreliable") for ``blacklist_days``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.nodes.model import normalize_pubkey, to_ts
from liquidityhelper.nodes.settings import NodeSettings
from liquidityhelper.wallet.base import Channel, ChannelState, WalletBackend, WalletError

log = structlog.get_logger(__name__)

DAY = 86400


@dataclass(frozen=True, slots=True)
class CloseDecision:
    channel_point: str
    pubkey: str
    reason: str  # "offline" or "low_uptime"
    details: dict[str, Any] = field(default_factory=dict)


def channels_to_close(
    db: NodeDB,
    wallet_id: str,
    channels: list[Channel],
    *,
    settings: NodeSettings,
    now: datetime,
) -> list[CloseDecision]:
    """Which of ``wallet_id``'s channels to close now (pure decision from the database)."""
    ts = to_ts(now)
    budget = settings.max_closes_per_wallet_per_day - db.closes_by_us_since(wallet_id, ts - DAY + 1)
    if budget <= 0:
        return []
    found: list[tuple[tuple[int, float, str], CloseDecision]] = []
    for ch in channels:
        try:
            decision = _decide(db, wallet_id, ch, settings, now)
        except Exception as exc:  # one odd record must not stop the others
            log.warning(
                "close_decision_failed", channel_point=ch.channel_point, error=type(exc).__name__
            )
            continue
        if decision is not None:
            d = decision.details
            # Worst first: longest offline, then lowest uptime; then by channel point.
            key = (
                0 if decision.reason == "offline" else 1,
                -float(d.get("offline_days", 0))
                if decision.reason == "offline"
                else float(d.get("uptime", 0)),
                ch.channel_point,
            )
            found.append((key, decision))
    found.sort(key=lambda item: item[0])
    return [decision for _, decision in found[:budget]]


def _decide(
    db: NodeDB, wallet_id: str, ch: Channel, settings: NodeSettings, now: datetime
) -> CloseDecision | None:
    pubkey = normalize_pubkey(ch.peer_pubkey)
    if pubkey is None or ch.state is not ChannelState.OPEN:
        return None
    ts = to_ts(now)
    failed_at = db.last_failed_close_at(wallet_id, ch.channel_point)
    if failed_at is not None and ts < failed_at + settings.close_retry_hours * 3600:
        return None
    record = db.channel(wallet_id, ch.channel_point)
    if record is None:
        return None  # never observed: nothing to judge it by

    if not ch.peer_online:
        # Offline since the first sample that saw it so: hours our own node was down (no
        # samples at all) are not the peer's.
        since = next(
            t
            for t in (record.offline_seen_at, record.last_online_at, record.first_seen_at)
            if t is not None
        )
        threshold = settings.close_offline_after_days * DAY
        if ts - since > threshold:
            coverage = _coverage(db, wallet_id, pubkey, threshold, now)
            if coverage >= settings.min_observation_coverage:
                return CloseDecision(
                    ch.channel_point,
                    pubkey,
                    "offline",
                    {
                        "offline_days": round((ts - since) / DAY, 2),
                        "threshold_days": settings.close_offline_after_days,
                        "coverage": round(coverage, 3),
                        "peer_online": False,
                    },
                )

    window = settings.uptime_window_days * DAY
    if ts - record.first_seen_at < window:
        return None  # too young to judge over the whole window
    stats = db.uptime_stats(pubkey, timedelta(seconds=window), now, wallet_id=wallet_id)
    ratio = stats.ratio
    if ratio is None or stats.samples < settings.min_uptime_samples:
        return None
    if ratio < settings.min_uptime_ratio:
        coverage = _coverage(db, wallet_id, pubkey, window, now)
        if coverage >= settings.min_observation_coverage:
            return CloseDecision(
                ch.channel_point,
                pubkey,
                "low_uptime",
                {
                    "uptime": round(ratio, 4),
                    "min_uptime": settings.min_uptime_ratio,
                    "window_days": settings.uptime_window_days,
                    "samples": stats.samples,
                    "coverage": round(coverage, 3),
                    "peer_online": ch.peer_online,
                },
            )
    return None


def _coverage(db: NodeDB, wallet_id: str, pubkey: str, seconds: float, now: datetime) -> float:
    """Share of the hours in the last ``seconds`` in which we sampled this peer."""
    hours = max(1, int(seconds // 3600))
    stats = db.uptime_stats(pubkey, timedelta(seconds=seconds), now, wallet_id=wallet_id)
    return min(1.0, stats.hours / hours)


def record_close_done(
    db: NodeDB,
    wallet_id: str,
    decision: CloseDecision,
    *,
    settings: NodeSettings,
    now: datetime,
    txid: str | None = None,
) -> None:
    """Record a close we made: the channel (closed by us), the attempt, and an "unreliable"
    blacklist entry for ``blacklist_days`` so the peer is not chosen again soon."""
    db.record_close_attempt(
        wallet_id,
        decision.channel_point,
        decision.pubkey,
        ok=True,
        reason=decision.reason,
        now=now,
        txid=txid,
    )
    db.record_channel_closed(
        wallet_id, decision.channel_point, decision.pubkey, "us", now, reason=decision.reason
    )
    until = now + timedelta(days=settings.blacklist_days)
    db.blacklist(decision.pubkey, f"unreliable: {decision.reason}", until, now=now, source="auto")


def record_close_failed(
    db: NodeDB, wallet_id: str, decision: CloseDecision, *, now: datetime, error_class: str
) -> None:
    """Record a failed close; the channel is tried again after ``close_retry_hours``."""
    db.record_close_attempt(
        wallet_id,
        decision.channel_point,
        decision.pubkey,
        ok=False,
        reason=decision.reason,
        now=now,
        error_class=error_class,
    )


async def close_unreliable_channels(
    db: NodeDB,
    wallet: WalletBackend,
    wallet_id: str,
    channels: list[Channel],
    *,
    settings: NodeSettings,
    now: datetime,
    dry_run: bool,
) -> list[CloseDecision]:
    """Decide and perform cooperative closes (``force=False``); nothing moves in dry-run.

    Returns the decisions (in dry-run: what would have been closed). Each close is logged
    with its reason and recorded; a failure is logged and recorded, never raised.
    """
    decisions = channels_to_close(db, wallet_id, channels, settings=settings, now=now)
    for decision in decisions:
        fields = {
            "wallet_id": wallet_id,
            "channel_point": decision.channel_point,
            "peer": decision.pubkey,
            "reason": decision.reason,
            **decision.details,
        }
        if dry_run:
            log.info("channel_close_dry_run", **fields)
            continue
        try:
            txid = await wallet.close_channel(wallet_id, decision.channel_point, force=False)
        except WalletError as exc:
            record_close_failed(db, wallet_id, decision, now=now, error_class=type(exc).__name__)
            log.warning("channel_close_failed", error=type(exc).__name__, **fields)
            continue
        record_close_done(db, wallet_id, decision, settings=settings, now=now, txid=txid)
        log.info("channel_closed", txid=txid, **fields)
    return decisions
