"""Does a wallet need liquidity, what would it take, and can the wallet pay for it itself?

One plan per wallet per cycle, shared by channel opening (which acts on it when no top-up is
due) and top-ups (which show the shortfall when one is). Pure: snapshot + settings in, plan out.

Thresholds are strict: a wallet needs liquidity when inbound < target, live channels < target
count, or no channel reaches ``min_inbound_liquidity_per_channel`` (>= is enough).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from liquidityhelper import common_functions as cf
from liquidityhelper.config import Settings
from liquidityhelper.snapshot import WalletSnapshot


@dataclass(frozen=True, slots=True)
class LiquidityPlan:
    wallet_id: str
    needs: tuple[str, ...]  # why liquidity is needed; empty when the goal is met
    inbound_sat: int
    target_sat: int
    channels: int  # live + opening
    target_channels: int
    planned_capacities: tuple[int, ...] = ()
    fee_rate: int = 0  # sat/vB the plan was priced at
    topup_sat: int = 0
    spare_sat: int = 0  # on-chain sats not needed as reserve
    numbers: dict[str, int] = field(default_factory=dict)
    # The channel sizes worth opening: from min_channel_size, or more when every peer on
    # offer refused smaller ones, to max_channel_size.
    min_channel_sat: int = 0
    max_channel_sat: int = 0

    @property
    def peers_refuse_sizes(self) -> bool:
        """No channel within max_channel_size is one a peer on offer takes."""
        return self.min_channel_sat > self.max_channel_sat > 0

    @property
    def size_numbers(self) -> dict[str, int]:
        return {"peer_min_sat": self.min_channel_sat, "max_channel_size": self.max_channel_sat}

    @property
    def needs_liquidity(self) -> bool:
        return bool(self.needs)

    @property
    def topup_due(self) -> bool:
        return self.topup_sat > 0


def plan_liquidity(
    snap: WalletSnapshot, settings: Settings, *, peer_min_sat: int = 0
) -> LiquidityPlan:
    """The wallet's plan. ``peer_min_sat``: the least channel size any peer on offer takes,
    learned from their refusals (0: unknown), raises the planned and spare channels' size."""
    counting_cashout = settings.cashout_lightning_address is not None
    # A cashout keeps its routing budget back and never sends less than min_cashout_sat.
    held_back, min_push = settings.max_routing_fee_sat, settings.min_cashout_sat
    inbound = snap.inbound_sat(counting_cashout, held_back=held_back, min_push=min_push)
    channels = len(snap.counted_channels) + len(snap.opening_channels)
    per_channel_ok = any(
        snap.channel_potential_inbound(c, counting_cashout, held_back, min_push)
        >= settings.min_inbound_liquidity_per_channel
        for c in snap.channels
    )
    needs: list[str] = []
    if inbound < settings.min_inbound_liquidity:
        needs.append("inbound_below_target")
    if channels < settings.min_channel_count:
        needs.append("channels_below_target")
    # At today's channel feerate even the largest channel may fall short of the per-channel
    # goal (config checks it at a quiet feerate): no channel opened or top-up asked now could
    # meet it, so it waits for fees to come down rather than buying a channel that cannot.
    reachable = cf.usable_inbound_for_capacity(
        settings.max_channel_size,
        snap.commitment_feerate_per_kw,
        held_back,
        snap.receive_hold_feerate_per_kw,
    )
    if not per_channel_ok and 0 < settings.min_inbound_liquidity_per_channel <= reachable:
        needs.append("no_channel_big_enough")

    # Price the plan at the current estimate, never above the ceiling: no open happens above
    # it, so a top-up priced there is enough once fees come down. No estimate: the ceiling.
    ceiling = settings.max_onchain_fee_rate
    fee_rate = min(snap.fee_rate, ceiling) if snap.fee_rate is not None else ceiling
    # Electrum reports an unconfirmed spend (a channel funding, say) as negative unconfirmed
    # while the coins still count as confirmed: only the sum is really spendable.
    confirmed = snap.balance.confirmed_sat + min(0, snap.balance.unconfirmed_sat)
    incoming = max(0, snap.balance.unconfirmed_sat)
    existing = snap.unclosed_capacities
    spare = cf.safe_to_spend(confirmed, existing, fee_rate, settings.onchain_extra_reserve)
    base = LiquidityPlan(
        wallet_id=snap.wallet_id,
        needs=tuple(needs),
        inbound_sat=inbound,
        target_sat=settings.min_inbound_liquidity,
        channels=channels,
        target_channels=settings.min_channel_count,
        fee_rate=fee_rate,
        spare_sat=spare,
        min_channel_sat=max(settings.min_channel_size, peer_min_sat),
        max_channel_sat=settings.max_channel_size,
        numbers={
            "spendable_sat": confirmed,
            "incoming_sat": incoming,
            "inbound_now_sat": snap.inbound_now_sat,
            "per_channel_reachable_sat": reachable,
        },
    )
    # Every peer on offer refused channels of the sizes allowed: a top-up could buy nothing.
    if not needs or base.peers_refuse_sizes:
        return base

    capacities = planned_capacities(
        inbound,
        channels,
        per_channel_ok,
        settings,
        feerate_per_kw=snap.commitment_feerate_per_kw,
        hold_feerate_per_kw=snap.receive_hold_feerate_per_kw,
        min_channel=base.min_channel_sat,
    )
    topup = cf.topup_amount(
        capacities, confirmed, existing, fee_rate, settings.onchain_extra_reserve, snap.coins
    )
    # Unconfirmed funds (a top-up on its way) will be spendable soon: do not ask twice.
    topup = max(0, topup - incoming)
    return replace(base, planned_capacities=tuple(capacities), topup_sat=topup)


def planned_capacities(
    inbound: int,
    channels: int,
    per_channel_ok: bool,
    settings: Settings,
    *,
    feerate_per_kw: int = cf.ANCHOR_COMMITMENT_FEERATE_PER_KW,
    hold_feerate_per_kw: int = 0,
    min_channel: int = 0,
) -> list[int]:
    """Channel capacities that close the gap: the missing liquidity over the missing channels.

    Short of liquidity but not of channels still plans one channel (the original divided by
    zero here). Each channel carries at least ``min_inbound_liquidity_per_channel`` after a
    cashout has pushed out all it can at the channel's feerate, keeping its routing budget.
    """
    missing_channels = max(0, settings.min_channel_count - channels)
    count = max(1, missing_channels)
    missing = max(0, settings.min_inbound_liquidity - inbound)
    if not per_channel_ok:
        missing = max(missing, settings.min_inbound_liquidity_per_channel)
    parts = cf.distribute_sats_over_channels(missing, count)
    return [
        cf.clamp_channel_size(
            cf.liquidity_to_channel_size(
                max(part, settings.min_inbound_liquidity_per_channel),
                feerate_per_kw,
                settings.max_routing_fee_sat,
                hold_feerate_per_kw,
            ),
            min_channel=max(settings.min_channel_size, min_channel),
            max_channel=settings.max_channel_size,
        )
        for part in parts
    ]
