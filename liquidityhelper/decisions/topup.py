"""Top-ups: when a wallet cannot fund the channels it needs, tell its stores how much to send."""

from __future__ import annotations

from liquidityhelper.actions import Decision, ShowTopup, Skip
from liquidityhelper.config import Settings
from liquidityhelper.decisions.liquidity import LiquidityPlan
from liquidityhelper.snapshot import WalletSnapshot

SECTION = "topups"


def decide_topup(
    snap: WalletSnapshot,
    plan: LiquidityPlan,
    settings: Settings,
    *,
    peers_available: bool = True,
) -> list[Decision]:
    """A ShowTopup for every store of the wallet; the invoice only in the first one.

    Stores sharing a wallet share its shortfall: invoicing each would ask for it twice. No
    top-up is asked for channels that could never give inbound (no cashout address).
    """
    wid = snap.wallet_id
    if settings.cashout_lightning_address is None:
        return [Skip(SECTION, wid, "no_cashout_address", {"setting": "cashout_lightning_address"})]
    if not plan.needs_liquidity:
        return [
            Skip(
                SECTION,
                wid,
                "goal_met",
                {"inbound_sat": plan.inbound_sat, "target_sat": plan.target_sat},
            )
        ]
    if plan.peers_refuse_sizes:
        # Every peer on offer refused channels of the sizes allowed: sats sent now would buy
        # nothing. Raise max_channel_size, or offer other peers (nodes import).
        return [Skip(SECTION, wid, "peers_refuse_channel_size", plan.size_numbers)]
    if not plan.topup_due:
        return [
            Skip(
                SECTION,
                wid,
                "funds_suffice",
                {
                    "spare_sat": plan.spare_sat,
                    "incoming_sat": plan.numbers.get("incoming_sat", 0),
                },
            )
        ]
    if not peers_available:
        # Sats sent now could never become a channel: say what is missing instead.
        return [
            Skip(
                SECTION,
                wid,
                "no_peer_available",
                {"topup_sat": plan.topup_sat, "how": "run liquidityhelper nodes import"},
            )
        ]
    numbers = {
        "needs": ",".join(plan.needs),
        "inbound_sat": plan.inbound_sat,
        "target_sat": plan.target_sat,
        "channels": plan.channels,
        "target_channels": plan.target_channels,
        "planned_capacities": list(plan.planned_capacities),
        "fee_rate": plan.fee_rate,
    }
    return [
        ShowTopup(wid, store_id, plan.topup_sat, make_invoice=(i == 0), numbers=numbers)
        for i, store_id in enumerate(snap.store_ids)
    ]
