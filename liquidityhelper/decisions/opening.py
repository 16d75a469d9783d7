"""Channel opening: close the liquidity gap from on-chain funds, or put spare funds to work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from liquidityhelper import common_functions as cf
from liquidityhelper.actions import Decision, OpenChannel, Skip
from liquidityhelper.config import Settings
from liquidityhelper.decisions.liquidity import LiquidityPlan
from liquidityhelper.snapshot import WalletSnapshot

SECTION = "channel_opening"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A peer the node database offers, best first."""

    pubkey: str
    connection_string: str


@dataclass(frozen=True, slots=True)
class WantedChannels:
    """Channels the wallet should open now, before peers are chosen for them."""

    capacities: tuple[int, ...]
    reason: str  # "need_liquidity" or "spare_funds"
    fee_rate: int
    margin_sat: int | None = None  # spare sats left once these opens and reserves are paid


def wanted_channels(
    snap: WalletSnapshot,
    plan: LiquidityPlan,
    settings: Settings,
    *,
    open_in_flight: bool,
) -> WantedChannels | Skip:
    """What to open now, or why nothing: the checks that need no peers."""
    wid = snap.wallet_id
    if settings.cashout_lightning_address is None:
        # Nothing would ever push a new channel's balance out: it would give no inbound.
        return Skip(SECTION, wid, "no_cashout_address", {"setting": "cashout_lightning_address"})
    opening = len(snap.opening_channels)
    if open_in_flight or opening:
        return Skip(SECTION, wid, "open_pending", {"opening_channels": opening})
    if plan.peers_refuse_sizes:
        return Skip(SECTION, wid, "peers_refuse_channel_size", plan.size_numbers)
    if plan.needs_liquidity and plan.topup_due:
        return Skip(
            SECTION, wid, "topup_due", {"topup_sat": plan.topup_sat, "needs": ",".join(plan.needs)}
        )
    if snap.fee_rate is None:
        return Skip(SECTION, wid, "fee_rate_unknown", {})
    if snap.fee_rate > settings.max_onchain_fee_rate:
        return Skip(
            SECTION,
            wid,
            "fee_rate_above_ceiling",
            {"fee_rate": snap.fee_rate, "ceiling": settings.max_onchain_fee_rate},
        )
    if plan.needs_liquidity:
        margin = plan.spare_sat - cf.plan_cost(plan.planned_capacities, snap.fee_rate, snap.coins)
        return WantedChannels(plan.planned_capacities, "need_liquidity", snap.fee_rate, margin)
    goal_met = {
        "inbound_sat": plan.inbound_sat,
        "target_sat": plan.target_sat,
        "channels": plan.channels,
        "target_channels": plan.target_channels,
        "spare_sat": plan.spare_sat,
    }
    if not settings.open_spare_funds:
        return Skip(SECTION, wid, "goal_met", {**goal_met, "open_spare_funds": "off"})
    size = spare_channel_size(plan.spare_sat, snap.fee_rate, plan, snap.coins)
    if size == 0:
        return Skip(
            SECTION, wid, "goal_met", {**goal_met, "min_channel_size": plan.min_channel_sat}
        )
    margin = plan.spare_sat - cf.plan_cost([size], snap.fee_rate, snap.coins)
    return WantedChannels((size,), "spare_funds", snap.fee_rate, margin)


def spare_channel_size(
    spare_sat: int, fee_rate: int, plan: LiquidityPlan, coins: tuple[int, ...] | None
) -> int:
    """The channel ``spare_sat`` sats open with its reserves at ``fee_rate``, within the
    plan's channel sizes; 0 when too small for one."""
    return cf.sats_to_max_channel_size(
        spare_sat,
        fee_rate,
        max_channel=plan.max_channel_sat,
        min_channel=plan.min_channel_sat,
        coins=coins,
    )


def assign_peers(
    wallet_id: str, wanted: WantedChannels, candidates: Sequence[Candidate]
) -> list[Decision]:
    """One open per wanted channel, to distinct peers best first; a skip for any shortfall."""
    count = len(wanted.capacities)
    if not candidates:
        return [Skip(SECTION, wallet_id, "no_peer_available", {"channels_wanted": count})]
    decisions: list[Decision] = [
        OpenChannel(
            wallet_id,
            peer.pubkey,
            peer.connection_string,
            capacity,
            wanted.reason,
            wanted.fee_rate,
            wanted.margin_sat,
        )
        for peer, capacity in zip(candidates, wanted.capacities, strict=False)
    ]
    if len(candidates) < count:
        decisions.append(
            Skip(
                SECTION,
                wallet_id,
                "too_few_peers",
                {"channels_wanted": count, "peers": len(candidates)},
            )
        )
    return decisions


def decide_opening(
    snap: WalletSnapshot,
    plan: LiquidityPlan,
    settings: Settings,
    candidates: Sequence[Candidate],
    *,
    open_in_flight: bool,
) -> list[Decision]:
    """The whole rule, for callers that already have the peers (status, tests)."""
    wanted = wanted_channels(snap, plan, settings, open_in_flight=open_in_flight)
    if isinstance(wanted, Skip):
        return [wanted]
    return assign_peers(snap.wallet_id, wanted, candidates)
