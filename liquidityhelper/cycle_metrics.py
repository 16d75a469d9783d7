"""The Prometheus figures a finished cycle leaves: its timing, each wallet's gauges, and the
all-time money counters summed by the journal."""

from __future__ import annotations

from liquidityhelper.config import Settings
from liquidityhelper.cycle_report import CycleReport
from liquidityhelper.decisions.liquidity import plan_liquidity
from liquidityhelper.journal import Journal, Kind
from liquidityhelper.metrics import Metrics, WalletGauges
from liquidityhelper.snapshot import CycleSnapshot
from liquidityhelper.topups import TOPUP_PAID_PREFIX


def update_metrics(
    metrics: Metrics,
    report: CycleReport,
    snapshot: CycleSnapshot,
    *,
    settings: Settings,
    journal: Journal,
    backends: int,
) -> None:
    """Record a finished cycle (``backends``: how many Bitcart instances the daemon reads)."""
    assert report.finished is not None
    metrics.cycles += 1
    metrics.last_cycle_finished = report.finished
    metrics.last_cycle_seconds = (report.finished - report.started).total_seconds()
    gauges = {}
    channels: dict[str, dict[str, int]] = {}
    for wallet_id, snap in snapshot.wallets.items():
        plan = plan_liquidity(snap, settings)
        gauges[wallet_id] = WalletGauges(
            plan.inbound_sat, plan.target_sat, plan.topup_sat, snap.inbound_now_sat
        )
        by_state = channels[wallet_id] = {}
        for channel in snap.channels:
            by_state[channel.state.value] = by_state.get(channel.state.value, 0) + 1
    if snapshot.backend_failures:
        # Keep the last known figures of wallets we could not read this time.
        metrics.wallets.update(gauges)
        metrics.channels.update(channels)
    else:
        metrics.wallets = gauges
        metrics.channels = channels
    metrics.money = money_counters(journal)
    metrics.backends_reachable = {
        index: index not in snapshot.backend_failures for index in range(backends)
    }


def money_counters(journal: Journal) -> dict[str, dict[tuple[str, ...], int]]:
    """All-time counters from the journal (exact, whatever Bitcart says this cycle).

    Summed by the journal in SQL (incrementally for payments), not by reading every entry
    each cycle: an idle cycle's cost does not grow with the journal's age."""
    fees: dict[tuple[str, ...], int] = {}
    inbound: dict[tuple[str, ...], int] = {}
    cashed: dict[tuple[str, ...], int] = {}
    for (wallet_id, kind), (amount_sat, routing_sat) in journal.payment_totals().items():
        key = (wallet_id,)
        inbound[key] = inbound.get(key, 0) + amount_sat
        if kind is Kind.CASHOUT:
            cashed[key] = cashed.get(key, 0) + amount_sat
        else:
            op = (wallet_id, "operator")
            fees[op] = fees.get(op, 0) + amount_sat
        routing = (wallet_id, "routing")
        fees[routing] = fees.get(routing, 0) + routing_sat
    # As topups.topups_paid_sat sums them, in SQL over those states only.
    paid = journal.state_totals(TOPUP_PAID_PREFIX, by="wallet", field="amount_sat")
    topups: dict[tuple[str, ...], int] = {(w,): sat for w, sat in paid.items()}
    return {
        "fees_paid_sats": fees,
        "inbound_created_sats": inbound,
        "cashed_out_sats": cashed,
        "topups_paid_sats": topups,
    }
