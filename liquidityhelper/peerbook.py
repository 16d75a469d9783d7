"""The loop's view of the node database: peers to open to, what we saw, what to close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog

from liquidityhelper.actions import CloseChannel
from liquidityhelper.config import Settings
from liquidityhelper.decisions.opening import Candidate
from liquidityhelper.nodes import closing, ranking
from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.nodes.model import parse_connection_string
from liquidityhelper.nodes.providers import NodeProvider
from liquidityhelper.nodes.sources import ensure_package_seed
from liquidityhelper.nodes.throttle import refresh_nodes
from liquidityhelper.snapshot import WalletSnapshot
from liquidityhelper.wallet.base import Channel, ChannelState

log = structlog.get_logger(__name__)


class NodePeerBook:
    def __init__(
        self, db: NodeDB, settings: Settings, providers: Sequence[NodeProvider] = ()
    ) -> None:
        self.db = db
        self.settings = settings
        self.providers = list(providers)
        self._closing: dict[str, closing.CloseDecision] = {}
        self._refreshing: asyncio.Task[object] | None = None
        # One ranking per cycle and mode, shared by every wallet that wants channels.
        self._rankings: dict[tuple[bool, tuple[str, ...]], ranking.Ranking] = {}

    def new_cycle(self) -> None:
        self._rankings.clear()

    def refresh_in_background(self, now: datetime) -> None:
        """Start one throttled provider refresh unless one is still running; never waits.

        Providers are slow and optional: the loop must not wait for them, and a refresh that
        fails only logs (refresh_nodes never raises).
        """
        if not self.providers or (self._refreshing and not self._refreshing.done()):
            return
        self._refreshing = asyncio.create_task(
            refresh_nodes(self.db, self.providers, self.settings.nodes, now)
        )

    async def aclose(self) -> None:
        if self._refreshing and not self._refreshing.done():
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refreshing

    def seed(self, now: datetime | None = None) -> None:
        """Import the shipped seed list: mainnet nodes, useless on any other network."""
        if self.settings.network != "mainnet":
            return
        imported, skipped = ensure_package_seed(self.db, now or datetime.now(UTC))
        if imported or skipped:
            log.info("node_seed_imported", imported=imported, skipped=skipped)

    def trampolines(self) -> frozenset[str]:
        """Pubkeys known to be trampolines (curated sources only), for trampoline-mode sends."""
        rows = self.db.conn.execute("SELECT pubkey FROM nodes WHERE trampoline = 1").fetchall()
        static = set()
        for conn in self.settings.nodes.static_trampoline_peers:
            static.add(parse_connection_string(conn)[0])
        return frozenset({r[0] for r in rows} | static)

    def observe(self, wallet_id: str, channels: Sequence[Channel], now: datetime) -> None:
        self.db.record_peer_samples(wallet_id, list(channels), now)

    def recently_live(
        self, wallet_id: str, channels: Sequence[Channel], now: datetime, grace_seconds: int
    ) -> frozenset[str]:
        """OPEN channels whose peer is offline but was seen online within the grace period.

        A channel never recorded (a fresh node database, ``status`` before any cycle) gets the
        benefit of the doubt: one reading of a restarting peer must not open a channel.
        """
        offline = [
            c.channel_point for c in channels if c.state is ChannelState.OPEN and not c.peer_online
        ]
        if not offline:
            return frozenset()
        since = self.db.offline_since(wallet_id, offline)
        now_ts = int(now.timestamp())
        return frozenset(
            point for point in offline if now_ts - since.get(point, now_ts) < grace_seconds
        )

    def candidates(
        self,
        wallet_id: str,
        count: int,
        *,
        existing: set[str],
        require_trampoline: bool,
        now: datetime,
        prefer_address: str | None,
    ) -> list[Candidate]:
        prefer = tuple(self.db.payee_pubkeys(prefer_address)) if prefer_address else ()
        key = (require_trampoline, prefer)
        ranked = self._rankings.get(key)
        if ranked is None:
            ranked = self._rankings[key] = ranking.rank_candidates(
                self.db,
                settings=self.settings.nodes,
                now=now,
                require_trampoline=require_trampoline,
                prefer_pubkeys=list(prefer),
            )
        chosen = ranked.choose(count, existing)
        return [Candidate(c.pubkey, c.connection_string) for c in chosen]

    def channels_to_close(self, snap: WalletSnapshot, now: datetime) -> list[CloseChannel]:
        decisions = closing.channels_to_close(
            self.db, snap.wallet_id, list(snap.channels), settings=self.settings.nodes, now=now
        )
        out = []
        for d in decisions:
            self._closing[d.channel_point] = d
            out.append(CloseChannel(snap.wallet_id, d.channel_point, d.pubkey, d.reason))
        return out

    def record_open_attempt(
        self,
        wallet_id: str,
        pubkey: str,
        ok: bool,
        error_class: str | None,
        channel_point: str | None,
        now: datetime,
    ) -> None:
        self.db.record_open_attempt(
            wallet_id, pubkey, ok, error_class, now, channel_point=channel_point
        )
        self._rankings.clear()  # a failure may cool this peer down: rank again

    def record_close(
        self,
        wallet_id: str,
        channel_point: str,
        ok: bool,
        error_class: str | None,
        now: datetime,
    ) -> None:
        decision = self._closing.pop(channel_point, None)
        if decision is None:
            return
        if ok:
            closing.record_close_done(
                self.db, wallet_id, decision, settings=self.settings.nodes, now=now
            )
        else:
            closing.record_close_failed(
                self.db, wallet_id, decision, now=now, error_class=error_class or "unknown"
            )

    def learn_payee(self, address: str, pubkey: str, now: datetime) -> None:
        self.db.learn_payee(address, pubkey, now)
