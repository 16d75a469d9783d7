"""Closing unreliable channels: once per wallet per day, cooperatively, never in dry-run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import cast

import pytest
import structlog
from structlog.testing import capture_logs

from liquidityhelper.nodes.closing import (
    channels_to_close,
    close_unreliable_channels,
    record_close_done,
)
from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.nodes.ranking import explain
from liquidityhelper.wallet.base import Channel, ChannelState, TransientError, WalletBackend
from tests.nodes_support import T0, channel, memory_db, pk, sample_hourly, settings

P1, P2, P3 = "1" * 64 + ":0", "2" * 64 + ":0", "3" * 64 + ":0"


@pytest.fixture(autouse=True)
def _default_structlog() -> Iterator[None]:
    """Another test may leave structlog filtering at WARNING; these tests read INFO events."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


class FakeWallet:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, bool]] = []
        self.fail = fail

    async def close_channel(self, wallet_id: str, channel_point: str, force: bool = False) -> str:
        self.calls.append((wallet_id, channel_point, force))
        if self.fail:
            raise TransientError("peer not connected")
        return "c" * 64


def _channels(offline: bool) -> list[Channel]:
    return [
        channel(pk(1), point=P1, online=not offline),
        channel(pk(2), point=P2, online=not offline),
        channel(pk(3), point=P3, online=True),
    ]


def _two_peers_offline_for(db: NodeDB, days: int) -> datetime:
    """A day online, then ``days`` offline, sampled hourly; returns the last sample's time."""
    return sample_hourly(db, "w1", lambda i: _channels(offline=i >= 24), T0, 24 * (days + 1))


async def test_offline_peer_is_closed_once_cooperatively_and_not_in_dry_run() -> None:
    db = memory_db()
    now = _two_peers_offline_for(db, 15)
    s = settings()
    decisions = channels_to_close(db, "w1", _channels(True), settings=s, now=now)
    assert [(d.channel_point, d.reason) for d in decisions] == [(P1, "offline")]
    assert decisions[0].details["offline_days"] > 14

    wallet = FakeWallet()
    with capture_logs() as logs:
        dry = await close_unreliable_channels(
            db,
            cast(WalletBackend, wallet),
            "w1",
            _channels(True),
            settings=s,
            now=now,
            dry_run=True,
        )
    assert [d.channel_point for d in dry] == [P1]
    assert wallet.calls == []
    assert [e["event"] for e in logs if "close" in e["event"]] == ["channel_close_dry_run"]
    assert db.closes_by_us_since("w1", 0) == 0

    with capture_logs() as logs:
        done = await close_unreliable_channels(
            db,
            cast(WalletBackend, wallet),
            "w1",
            _channels(True),
            settings=s,
            now=now,
            dry_run=False,
        )
    assert [d.channel_point for d in done] == [P1]
    assert wallet.calls == [("w1", P1, False)]
    closed_log = next(e for e in logs if e["event"] == "channel_closed")
    assert closed_log["reason"] == "offline" and closed_log["channel_point"] == P1
    record = db.channel("w1", P1)
    assert record is not None and record.closed_by == "us" and record.close_reason == "offline"
    # The peer we closed is not offered again soon; a close by us is not "closed on us".
    evaluation = explain(db, pk(1), s, now)
    assert evaluation is not None
    assert any(e.startswith("blacklisted: unreliable") for e in evaluation.exclusions)
    assert not any(e.startswith("closed_on_us") for e in evaluation.exclusions)

    # Same day: the second offline channel waits (at most one close per wallet per day).
    after = [
        channel(pk(1), point=P1, state=ChannelState.CLOSING, online=False),
        *_channels(True)[1:],
    ]
    again = await close_unreliable_channels(
        db,
        cast(WalletBackend, wallet),
        "w1",
        after,
        settings=s,
        now=now + timedelta(hours=23),
        dry_run=False,
    )
    assert again == [] and len(wallet.calls) == 1

    # A day later the next one goes.
    sample_hourly(db, "w1", lambda i: after, now + timedelta(hours=1), 24)
    next_day = now + timedelta(hours=24)
    later = await close_unreliable_channels(
        db, cast(WalletBackend, wallet), "w1", after, settings=s, now=next_day, dry_run=False
    )
    assert [d.channel_point for d in later] == [P2]
    assert wallet.calls[-1] == ("w1", P2, False)


def test_not_closed_before_the_threshold() -> None:
    db = memory_db()
    now = _two_peers_offline_for(db, 13)
    offline_rule_only = settings(min_uptime_ratio=0)
    assert channels_to_close(db, "w1", _channels(True), settings=offline_rule_only, now=now) == []
    # With the default uptime rule (50% over 7 days) such a peer goes anyway.
    decisions = channels_to_close(db, "w1", _channels(True), settings=settings(), now=now)
    assert [d.reason for d in decisions] == ["low_uptime"]


def test_not_closed_when_we_were_not_watching() -> None:
    """After our own downtime a peer seen offline once is not judged offline for weeks."""
    db = memory_db()
    db.record_peer_samples("w1", _channels(offline=False), T0)
    now = T0 + timedelta(days=20)
    db.record_peer_samples("w1", _channels(offline=True), now)
    assert channels_to_close(db, "w1", _channels(True), settings=settings(), now=now) == []
    # Even with coverage not required: it has been seen offline only since now (the gap was
    # ours); it is judged once that first offline sample is old enough.
    loose = settings(min_observation_coverage=0)
    assert channels_to_close(db, "w1", _channels(True), settings=loose, now=now) == []
    later = now + timedelta(days=20)
    db.record_peer_samples("w1", _channels(offline=True), later)
    assert len(channels_to_close(db, "w1", _channels(True), settings=loose, now=later)) == 1


def test_low_uptime_over_the_window_is_closed() -> None:
    db = memory_db()
    flaky = [channel(pk(1), point=P1, online=True)]
    now = sample_hourly(
        db, "w1", lambda i: [channel(pk(1), point=P1, online=i % 10 < 3)], T0, 24 * 8
    )
    decisions = channels_to_close(db, "w1", flaky, settings=settings(), now=now)
    assert [(d.channel_point, d.reason) for d in decisions] == [(P1, "low_uptime")]
    assert 0.25 < decisions[0].details["uptime"] < 0.35
    lenient = settings(min_uptime_ratio=0.25)
    assert channels_to_close(db, "w1", flaky, settings=lenient, now=now) == []


async def test_a_failed_close_is_retried_later_and_does_not_use_up_the_day() -> None:
    db = memory_db()
    now = _two_peers_offline_for(db, 15)
    s = settings(close_retry_hours=6)
    wallet = FakeWallet(fail=True)
    with capture_logs() as logs:
        await close_unreliable_channels(
            db,
            cast(WalletBackend, wallet),
            "w1",
            _channels(True),
            settings=s,
            now=now,
            dry_run=False,
        )
    assert wallet.calls == [("w1", P1, False)]
    assert any(e["event"] == "channel_close_failed" and e["log_level"] == "warning" for e in logs)
    assert db.closes_by_us_since("w1", 0) == 0
    # P1 waits for its retry; the daily budget is intact, so P2 is next.
    soon = channels_to_close(db, "w1", _channels(True), settings=s, now=now + timedelta(hours=1))
    assert [d.channel_point for d in soon] == [P2]


def test_recorded_closes_count_toward_the_daily_limit() -> None:
    db = memory_db()
    now = _two_peers_offline_for(db, 15)
    s = settings(max_closes_per_wallet_per_day=2)
    decisions = channels_to_close(db, "w1", _channels(True), settings=s, now=now)
    assert [d.channel_point for d in decisions] == [P1, P2]
    record_close_done(db, "w1", decisions[0], settings=s, now=now, txid="t")
    remaining = [c for c in _channels(True) if c.channel_point != P1]
    assert [
        d.channel_point for d in channels_to_close(db, "w1", remaining, settings=s, now=now)
    ] == [P2]
    record_close_done(db, "w1", decisions[1], settings=s, now=now)
    assert channels_to_close(db, "w1", _channels(True), settings=s, now=now) == []
    # Other wallets have their own budget; 0 means never.
    assert (
        channels_to_close(
            db,
            "w1",
            _channels(True),
            settings=settings(max_closes_per_wallet_per_day=0),
            now=now + timedelta(days=2),
        )
        == []
    )
