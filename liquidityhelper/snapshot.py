"""What one cycle knows about each managed wallet, fetched once and shared by the sections.

Definitions used everywhere (also in README):

- A channel is *live* when it is OPEN and its peer is online (Electrum peer_state GOOD).
  For planning (the goal, top-ups, opens) an OPEN channel whose peer went offline less than
  ``peer_offline_grace_seconds`` ago still *counts*: a peer or daemon restart is a blip, not
  a reason to open another channel or ask the merchant for money.
- A channel *can send* when it is live and, in trampoline mode, its peer is a trampoline:
  Electrum sends only through trampolines then, so local balance elsewhere is stuck.
- *Inbound now* of a wallet = what the peers of counted channels can send us (their balance
  above the reserve they must keep). *Inbound after the next cashouts* adds what cashouts will
  push out: per channel that can send, its sendable balance (Electrum's arithmetic: reserve,
  fee-spike buffer at the channel's feerate, anchors) less the routing budget a cashout keeps,
  when that reaches ``min_cashout_sat`` and a cashout address is set.
- Channels still OPENING count toward the plan (as their future inbound), so a top-up never asks
  again for sats already committed to an open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import structlog

from liquidityhelper import common_functions as cf
from liquidityhelper.wallet.base import (
    Balance,
    Channel,
    ChannelState,
    LightningMode,
    Store,
    WalletBackend,
    WalletInfo,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WalletSnapshot:
    backend_index: int
    wallet: WalletInfo
    store_ids: tuple[str, ...]
    balance: Balance
    channels: tuple[Channel, ...]
    fee_rate: int | None  # sat/vB; None when the estimate is unavailable
    mode: LightningMode
    trampolines: frozenset[str] = field(default_factory=frozenset)
    # The 1008-block estimate (sat/vB) Electrum sets anchor channels' feerate from; None when
    # unknown (then the open fee rate stands in).
    anchor_fee_rate: int | None = None
    # OPEN channels whose peer is offline but was online within the grace period.
    recently_live: frozenset[str] = field(default_factory=frozenset)
    # The commitment feerate (sat/kw) our channels must stay able to receive at: cashouts
    # leave what that costs on our side (0: no such hold).
    receive_hold_feerate_per_kw: int = 0
    # The wallet's unspent coins (sats, largest first), read only when an open or a top-up
    # may be priced this cycle: they price the funding tx. None: not read (two inputs).
    coins: tuple[int, ...] | None = None

    @property
    def wallet_id(self) -> str:
        return self.wallet.id

    @property
    def live_channels(self) -> list[Channel]:
        return [c for c in self.channels if c.is_live]

    def counts(self, channel: Channel) -> bool:
        """Live, or open with its peer offline for less than the grace period."""
        return channel.is_live or (
            channel.state is ChannelState.OPEN and channel.channel_point in self.recently_live
        )

    @property
    def counted_channels(self) -> list[Channel]:
        return [c for c in self.channels if self.counts(c)]

    @property
    def commitment_feerate_per_kw(self) -> int:
        """The feerate (sat/kw) our channels may carry now: Electrum's target for them, plus
        the 25 % it lets a channel drift before it updates (the conservative side)."""
        estimate = self.anchor_fee_rate if self.anchor_fee_rate is not None else self.fee_rate
        return cf.channel_feerate_upper_per_kw(cf.anchor_channel_feerate_per_kw(estimate))

    @property
    def opening_channels(self) -> list[Channel]:
        return [c for c in self.channels if c.state is ChannelState.OPENING]

    @property
    def unclosed_capacities(self) -> list[int]:
        """Capacities of channels that may still need an on-chain close (reserve them)."""
        return [
            c.capacity_sat
            for c in self.channels
            if c.state in (ChannelState.OPENING, ChannelState.OPEN, ChannelState.CLOSING)
        ]

    def can_send(self, channel: Channel) -> bool:
        if not channel.is_live:
            return False
        if self.mode is LightningMode.GOSSIP:
            return True
        # Trampoline (or unknown) mode: only channels to trampolines carry our payments.
        return channel.peer_pubkey in self.trampolines

    def channel_sendable(self, channel: Channel) -> int:
        """Sats this channel can really send, as Electrum's ``available_to_spend`` has it."""
        if not self.can_send(channel):
            return 0
        # The funder's fee-spike buffer and anchors stay behind; we cannot tell who funded a
        # channel, so assume we did (the conservative side, and the usual one: we open them).
        return cf.funder_sendable_sat(
            channel.local_sat, channel.local_reserve_sat, self.commitment_feerate_per_kw
        )

    def channel_cashable(self, channel: Channel) -> int:
        """What a payment of ours may take out of this channel: what it can send, less what
        keeps it able to receive at ``receive_hold_feerate_per_kw`` (we fund the channel, so
        we pay the commitment fee of every HTLC the peer sends us)."""
        sendable = self.channel_sendable(channel)
        if not sendable:
            return 0
        floor = cf.receiving_floor_sat(self.receive_hold_feerate_per_kw)
        return max(0, min(sendable, channel.local_sat - channel.local_reserve_sat - floor))

    def cashable_sats(self) -> list[int]:
        """:meth:`channel_cashable` of every channel, largest first."""
        return sorted((self.channel_cashable(c) for c in self.channels), reverse=True)

    def channel_pushable(self, channel: Channel, held_back: int, min_push: int) -> int:
        """What a cashout will push out of this channel: cashable less the routing budget it
        keeps, or 0 when that is below the smallest cashout (it would never be sent)."""
        pushed = self.channel_cashable(channel) - held_back
        return pushed if pushed >= max(min_push, 1) else 0

    def channel_receivable_now(self, channel: Channel) -> int:
        """What the peer can send us on this channel now: Electrum's
        ``available_to_spend(REMOTE)`` for a channel we fund. Its balance above its reserve,
        but nothing (sub-dust only) when our side cannot pay the commitment fee of the HTLC
        at the channel's feerate."""
        if not channel.is_live:
            return 0
        ours = channel.local_sat - channel.local_reserve_sat
        if ours < cf.receiving_floor_sat(self.commitment_feerate_per_kw):
            return 0
        return channel.inbound_sat

    def channel_potential_inbound(
        self,
        channel: Channel,
        counting_cashout: bool,
        held_back: int = 0,
        min_push: int = 0,
    ) -> int:
        """Inbound of one channel after the next cashouts (without them when not counting)."""
        if channel.state is ChannelState.OPENING:
            if not counting_cashout:
                return 0  # nothing will push its balance out: it will give no inbound
            return cf.usable_inbound_for_capacity(
                channel.capacity_sat,
                self.commitment_feerate_per_kw,
                held_back,
                self.receive_hold_feerate_per_kw,
            )
        if not self.counts(channel):
            return 0
        pushed = self.channel_pushable(channel, held_back, min_push) if counting_cashout else 0
        # What we push lands on the peer's side, which must keep its reserve out of it.
        return max(0, channel.remote_sat + pushed - channel.remote_reserve_sat)

    def inbound_sat(
        self,
        counting_cashout: bool,
        include_opening: bool = True,
        held_back: int = 0,
        min_push: int = 0,
    ) -> int:
        return sum(
            self.channel_potential_inbound(c, counting_cashout, held_back, min_push)
            for c in self.channels
            if include_opening or c.state is not ChannelState.OPENING
        )

    @property
    def inbound_now_sat(self) -> int:
        """What live peers can send us right now."""
        return sum(self.channel_receivable_now(c) for c in self.channels)

    def with_updates(self, **changes: object) -> WalletSnapshot:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class StoreWallets:
    """A store and what we found of its managed wallet."""

    backend_index: int
    store: Store
    managed_wallet_id: str | None
    problem: str | None = None  # why the store has no managed wallet


@dataclass(slots=True)
class CycleSnapshot:
    stores: list[StoreWallets]
    wallets: dict[str, WalletSnapshot]
    failures: dict[str, str]  # wallet id -> why its snapshot could not be fetched
    backend_failures: dict[int, str]


async def bounded_gather(
    items: Sequence[T], fn: Callable[[T], Awaitable[object]], limit: int
) -> list[object]:
    """Run fn over items with at most `limit` at once; exceptions are returned, not raised."""
    sem = asyncio.Semaphore(limit)

    async def one(item: T) -> object:
        async with sem:
            try:
                return await fn(item)
            except Exception as exc:
                return exc

    return await asyncio.gather(*(one(i) for i in items))


def managed_wallets_of(
    backend_index: int, stores: Sequence[Store], wallets: Sequence[WalletInfo], wallet_name: str
) -> tuple[list[StoreWallets], dict[str, tuple[WalletInfo, tuple[str, ...]]]]:
    """Each store's managed wallet; wallets shared by stores appear once, with all their stores."""
    by_id = {w.id: w for w in wallets}
    out: list[StoreWallets] = []
    managed: dict[str, tuple[WalletInfo, list[str]]] = {}
    for store in stores:
        named = [by_id[w] for w in store.wallet_ids if w in by_id and by_id[w].name == wallet_name]
        usable = [w for w in named if w.lightning_enabled and w.currency.lower() == "btc"]
        if not usable:
            problem = "lightning_disabled" if named else "no_managed_wallet"
            out.append(StoreWallets(backend_index, store, None, problem))
            continue
        chosen = sorted(usable, key=lambda w: w.id)[0]
        out.append(StoreWallets(backend_index, store, chosen.id))
        managed.setdefault(chosen.id, (chosen, []))[1].append(store.id)
    return out, {k: (w, tuple(sorted(s))) for k, (w, s) in managed.items()}


async def fetch_wallet(
    backend: WalletBackend,
    backend_index: int,
    wallet: WalletInfo,
    store_ids: tuple[str, ...],
    *,
    fee_rate: int | None,
    mode: LightningMode,
    trampolines: frozenset[str],
    anchor_fee_rate: int | None = None,
    receive_hold_feerate_per_kw: int = 0,
) -> WalletSnapshot:
    # One after the other: max_concurrency then bounds the requests in flight, and httpx's
    # connection pool costs CPU per pooled connection on every request (BENCHMARKS.md).
    balance = await backend.balance(wallet.id)
    channels = await backend.channels(wallet.id)
    return WalletSnapshot(
        backend_index=backend_index,
        wallet=wallet,
        store_ids=store_ids,
        balance=balance,
        channels=tuple(channels),
        fee_rate=fee_rate,
        mode=mode,
        trampolines=trampolines,
        anchor_fee_rate=anchor_fee_rate,
        receive_hold_feerate_per_kw=receive_hold_feerate_per_kw,
    )
