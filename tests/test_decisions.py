"""The pure rules of each section, on hand-built snapshots, amounts to the sat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from liquidityhelper import common_functions as cf
from liquidityhelper.actions import OpenChannel, PayLightningAddress, ShowTopup, Skip
from liquidityhelper.config import Settings
from liquidityhelper.decisions.liquidity import plan_liquidity
from liquidityhelper.decisions.opening import Candidate, decide_opening
from liquidityhelper.decisions.payments import (
    decide_cashout,
    decide_fee_payment,
    fee_due_sat,
    routing_fee_cap_msat,
)
from liquidityhelper.decisions.topup import decide_topup
from liquidityhelper.wallet.base import ChannelState, LightningMode
from tests.factories import OTHER, channel, settings, wallet_snapshot

NOW = datetime(2026, 11, 24, tzinfo=UTC)
PEERS = [Candidate("02" + f"{i:02x}" * 32, f"02{i:02x}@127.0.0.1:{9735 + i}") for i in range(5)]


def test_fresh_wallet_needs_everything_and_a_topup_of_exactly_the_plan() -> None:
    s = settings()
    snap = wallet_snapshot(confirmed=0, fee_rate=2)
    plan = plan_liquidity(snap, s)
    assert set(plan.needs) == {
        "inbound_below_target",
        "channels_below_target",
        "no_channel_big_enough",
    }
    # 100,000 sats over 2 channels: 50,000 each, sized so each yields >= 50,000 inbound.
    size = cf.liquidity_to_channel_size(50_000, cf.anchor_channel_feerate_per_kw(2), 100)
    assert plan.planned_capacities == (max(size, 200_000),) * 2
    assert plan.topup_sat == cf.plan_cost(plan.planned_capacities, 2)
    decisions = decide_opening(snap, plan, s, PEERS, open_in_flight=False)
    assert decisions == [
        Skip(
            "channel_opening",
            "w1",
            "topup_due",
            {"topup_sat": plan.topup_sat, "needs": ",".join(plan.needs)},
        )
    ]
    topups = decide_topup(snap, plan, s)
    assert topups == [ShowTopup("w1", "store1", plan.topup_sat, True, topups[0].numbers)]


def test_funded_with_exactly_the_topup_opens_the_plan_to_distinct_peers() -> None:
    s = settings()
    first = plan_liquidity(wallet_snapshot(confirmed=0), s)
    snap = wallet_snapshot(confirmed=first.topup_sat)
    plan = plan_liquidity(snap, s)
    assert plan.topup_sat == 0
    opens = decide_opening(snap, plan, s, PEERS, open_in_flight=False)
    assert [type(d) for d in opens] == [OpenChannel, OpenChannel]
    assert len({o.pubkey for o in opens if isinstance(o, OpenChannel)}) == 2
    assert sum(o.capacity_sat for o in opens if isinstance(o, OpenChannel)) == sum(
        first.planned_capacities
    )


def test_one_sat_short_still_asks_for_one_sat() -> None:
    s = settings()
    need = plan_liquidity(wallet_snapshot(confirmed=0), s).topup_sat
    plan = plan_liquidity(wallet_snapshot(confirmed=need - 1), s)
    assert plan.topup_sat == 1


def test_unconfirmed_topup_on_its_way_is_not_asked_again() -> None:
    s = settings()
    need = plan_liquidity(wallet_snapshot(confirmed=0), s).topup_sat
    assert plan_liquidity(wallet_snapshot(unconfirmed=need), s).topup_sat == 0


def test_short_of_liquidity_but_not_of_channels_plans_one_channel() -> None:
    big = channel(200_000, remote=55_000, local=100_000)
    chans = (big, channel(200_000, remote=20_000, local=100_000, peer=OTHER))
    snap = wallet_snapshot(confirmed=5_000_000, channels=chans, mode=LightningMode.GOSSIP)
    s = settings(cashout_lightning_address=None)  # local balance will not become inbound
    plan = plan_liquidity(snap, s)
    assert plan.needs == ("inbound_below_target",)
    assert plan.inbound_sat == 55_000 - 2_000 + 20_000 - 2_000
    assert len(plan.planned_capacities) == 1
    # 29,000 missing, but no channel is opened for less than 50,000 of inbound (then >= 200k).
    size = cf.liquidity_to_channel_size(50_000, cf.anchor_channel_feerate_per_kw(2), 100)
    assert plan.planned_capacities[0] == max(200_000, size)
    # ... and without a cashout address nothing would push it out: no open, no top-up.
    assert decide_opening(snap, plan, s, PEERS, open_in_flight=False)[0].reason == (
        "no_cashout_address"
    )
    assert decide_topup(snap, plan, s)[0].reason == "no_cashout_address"


def test_at_exactly_the_targets_nothing_is_needed() -> None:
    s = settings(
        min_inbound_liquidity=100_000,
        min_inbound_liquidity_per_channel=50_000,
        cashout_lightning_address=None,  # inbound now only: nothing will be pushed out
    )
    reserve = cf.channel_reserve_sat(1_000_000)
    chans = (
        channel(1_000_000, remote=50_000 + reserve, local=900_000),
        channel(1_000_000, remote=50_000 + reserve, local=900_000, peer=OTHER),
    )
    plan = plan_liquidity(wallet_snapshot(channels=chans), s)
    assert plan.inbound_sat == 100_000 and not plan.needs_liquidity
    chans_short = (
        chans[0],
        channel(1_000_000, remote=50_000 + reserve - 1, local=900_000, peer=OTHER),
    )
    assert plan_liquidity(wallet_snapshot(channels=chans_short), s).needs == (
        "inbound_below_target",
    )


def test_pending_open_blocks_new_opens_and_counts_toward_the_plan() -> None:
    s = settings()
    opening = (
        channel(200_000, state=ChannelState.OPENING),
        channel(200_000, state=ChannelState.OPENING, peer=OTHER),
    )
    snap = wallet_snapshot(confirmed=0, channels=opening)
    plan = plan_liquidity(snap, s)
    assert not plan.needs_liquidity and plan.topup_sat == 0  # never asked twice
    assert decide_opening(snap, plan, s, PEERS, open_in_flight=False)[0].reason == "open_pending"


def test_fee_rate_above_ceiling_opens_nothing_and_says_why() -> None:
    s = settings(max_onchain_fee_rate=20)
    snap = wallet_snapshot(confirmed=10_000_000, fee_rate=21)
    d = decide_opening(snap, plan_liquidity(snap, s), s, PEERS, open_in_flight=False)
    assert d == [
        Skip("channel_opening", "w1", "fee_rate_above_ceiling", {"fee_rate": 21, "ceiling": 20})
    ]
    snap = wallet_snapshot(confirmed=10_000_000, fee_rate=20)
    d = decide_opening(snap, plan_liquidity(snap, s), s, PEERS, open_in_flight=False)
    assert all(isinstance(x, OpenChannel) for x in d)


def test_unknown_fee_rate_opens_nothing() -> None:
    s = settings()
    snap = wallet_snapshot(confirmed=10_000_000, fee_rate=None)
    d = decide_opening(snap, plan_liquidity(snap, s), s, PEERS, open_in_flight=False)
    assert d[0].reason == "fee_rate_unknown"


def test_goal_met_spare_funds_go_into_the_biggest_safe_channel() -> None:
    s = settings(max_channel_size=1_000_000)
    chans = (
        channel(1_000_000, remote=400_000, local=500_000),
        channel(1_000_000, remote=400_000, local=500_000, peer=OTHER),
    )
    snap = wallet_snapshot(confirmed=3_000_000, channels=chans, fee_rate=3)
    plan = plan_liquidity(snap, s)
    d = decide_opening(snap, plan, s, PEERS, open_in_flight=False)
    assert isinstance(d[0], OpenChannel) and d[0].reason == "spare_funds"
    assert d[0].capacity_sat == 1_000_000  # capped by max_channel_size
    snap2 = wallet_snapshot(confirmed=50_000, channels=chans, fee_rate=3)
    d2 = decide_opening(snap2, plan_liquidity(snap2, s), s, PEERS, open_in_flight=False)
    assert (
        d2[0].reason == "goal_met"
        and d2[0].numbers["spare_sat"] == plan_liquidity(snap2, s).spare_sat
    )


def test_no_peers_says_so() -> None:
    s = settings()
    snap = wallet_snapshot(confirmed=10_000_000)
    d = decide_opening(snap, plan_liquidity(snap, s), s, [], open_in_flight=False)
    assert d[0].reason == "no_peer_available"


def test_two_stores_one_wallet_one_invoice() -> None:
    snap = wallet_snapshot(stores=("a", "b"))
    d = decide_topup(snap, plan_liquidity(snap, settings()), settings())
    assert [(x.store_id, x.make_invoice) for x in d if isinstance(x, ShowTopup)] == [
        ("a", True),
        ("b", False),
    ]


# --- cashouts and fees --------------------------------------------------------------------


def _live(local: int) -> tuple:
    return (channel(1_000_000, local=local, remote=1_000_000 - local - 6_488),)


def _cashing_out_with_fees() -> Settings:
    """Cashouts on, a 100-sat routing budget and a 1 % operator fee."""
    return settings(
        cashout_lightning_address="m@127.0.0.1",
        max_routing_fee_sat=100,
        fee_rate=Decimal("0.01"),
        fee_lightning_address="op@127.0.0.1",
        fee_start_date="2026-01-01",
    )


def test_cashout_leaves_reserve_allowance_budget_and_fee_due_behind() -> None:
    s = _cashing_out_with_fees()
    snap = wallet_snapshot(channels=_live(500_000))
    # Electrum's available_to_spend at the highest feerate the channel may carry (its target
    # plus the 25 % it drifts before an update).
    feerate = snap.commitment_feerate_per_kw
    assert feerate == cf.channel_feerate_upper_per_kw(cf.anchor_channel_feerate_per_kw(5))
    sendable = cf.funder_sendable_sat(500_000, cf.channel_reserve_sat(1_000_000), feerate)
    assert sendable < 500_000 - 10_000 - cf.funder_unspendable_sat()
    d = decide_cashout(snap, s, fee_due=2_000, backoff_until=None, now=NOW)
    assert isinstance(d[0], PayLightningAddress)
    assert d[0].amount_sat == sendable - (2_000 + 100) - 100
    assert d[0].address == "m@127.0.0.1" and d[0].min_amount_sat == s.min_cashout_sat


def test_the_fee_held_back_fits_in_one_channel() -> None:
    """The year's last cashout: the fee due was held back from the sum over both channels,
    but a payment goes through one, so the fee payment found no channel that could carry it
    (insufficient_outbound) and the plan's promise fell 694 sats short."""
    s = _cashing_out_with_fees()
    best = channel(1_000_000, local=500_000, remote=480_000)
    thin = channel(1_000_000, local=18_443, remote=960_000)
    snap = wallet_snapshot(channels=(best, thin))
    assert 0 < snap.channel_cashable(thin) < 1_125
    d = decide_cashout(snap, s, fee_due=1_025, backoff_until=None, now=NOW)
    assert isinstance(d[0], PayLightningAddress)
    assert d[0].amount_sat == snap.channel_cashable(best) - 1_125 - 100
    # A second channel that holds the fee and its budget lets the cashout take the best one.
    roomy = channel(1_000_000, local=19_943, remote=960_000)
    snap = wallet_snapshot(channels=(best, roomy))
    d = decide_cashout(snap, s, fee_due=1_025, backoff_until=None, now=NOW)
    assert isinstance(d[0], PayLightningAddress)
    assert d[0].amount_sat == snap.channel_cashable(best) - 100


def test_cashout_through_a_non_trampoline_is_impossible_in_trampoline_mode() -> None:
    s = settings(cashout_lightning_address="m@127.0.0.1")
    chans = (channel(1_000_000, local=900_000, remote=50_000, peer=OTHER),)
    d = decide_cashout(wallet_snapshot(channels=chans), s, fee_due=0, backoff_until=None, now=NOW)
    assert d[0].reason == "below_min_cashout" and d[0].numbers["sendable_sat"] == 0
    d = decide_cashout(
        wallet_snapshot(channels=chans, mode=LightningMode.GOSSIP),
        s,
        fee_due=0,
        backoff_until=None,
        now=NOW,
    )
    assert isinstance(d[0], PayLightningAddress)


def test_cashout_off_without_address_and_while_backing_off() -> None:
    snap = wallet_snapshot(channels=_live(500_000))
    assert (
        decide_cashout(
            snap, settings(cashout_lightning_address=None), fee_due=0, backoff_until=None, now=NOW
        )[0].reason
        == "no_cashout_address"
    )
    s = settings(cashout_lightning_address="m@127.0.0.1")
    d = decide_cashout(snap, s, fee_due=0, backoff_until=NOW + timedelta(minutes=1), now=NOW)
    assert d[0].reason == "backing_off"


def test_offline_peer_sends_nothing() -> None:
    s = settings(cashout_lightning_address="m@127.0.0.1")
    chans = (channel(1_000_000, local=900_000, remote=50_000, online=False),)
    assert (
        decide_cashout(wallet_snapshot(channels=chans), s, fee_due=0, backoff_until=None, now=NOW)[
            0
        ].reason
        == "below_min_cashout"
    )


def test_fee_due_formula() -> None:
    assert fee_due_sat(1_000_000, Decimal("0.01"), 0) == 10_000
    assert fee_due_sat(1_000_099, Decimal("0.01"), 0) == 10_000  # floor, never over-pay
    assert fee_due_sat(1_000_000, Decimal("0.01"), 4_000, 1_000) == 5_000
    assert fee_due_sat(1_000_000, Decimal("0.01"), 12_000) == 0


@pytest.mark.parametrize(("amount", "cap"), [(1_000_000, 100_000), (10_000, 50_000), (1, 5)])
def test_routing_fee_cap_holds_both_limits(amount: int, cap: int) -> None:
    got = routing_fee_cap_msat(amount, max_fee_sat=100, max_fee_ppm=5_000)
    assert got == cap
    assert got <= 100_000 and got * 1_000_000 <= amount * 1000 * 5_000


def test_fee_payment_rules() -> None:
    s = settings(
        fee_rate=Decimal("0.01"),
        fee_lightning_address="op@127.0.0.1",
        fee_start_date="2026-01-01",
        min_fee_payment_sat=1_000,
    )
    snap = wallet_snapshot(channels=_live(500_000))
    d = decide_fee_payment(snap, s, fee_due=999, numbers={}, backoff_until=None, now=NOW)
    assert d[0].reason == "fee_below_min"
    d = decide_fee_payment(snap, s, fee_due=5_000, numbers={}, backoff_until=None, now=NOW)
    assert isinstance(d[0], PayLightningAddress) and d[0].amount_sat == 5_000
    assert d[0].kind == "fee_payment" and d[0].address == "op@127.0.0.1"
    off = settings()
    assert (
        decide_fee_payment(snap, off, fee_due=5_000, numbers={}, backoff_until=None, now=NOW)[
            0
        ].reason
        == "fees_off"
    )


def test_an_unconfirmed_spend_is_not_spendable_and_not_a_topup() -> None:
    """Electrum shows a funding tx as negative unconfirmed while its coins stay confirmed."""
    s = settings()
    opening = (channel(60_000, state=ChannelState.OPENING),)
    snap = wallet_snapshot(confirmed=5_000_000, unconfirmed=-60_750, channels=opening)
    plan = plan_liquidity(snap, s)
    assert plan.spare_sat == cf.safe_to_spend(5_000_000 - 60_750, [60_000], 2)
    assert plan.topup_sat == 0


def test_a_per_channel_goal_no_channel_reaches_at_todays_feerate_waits() -> None:
    """Config checks the per-channel goal at a quiet feerate. When fees are high even a
    max_channel_size channel falls short of it: asking a top-up for one would buy a channel
    that cannot meet the goal, so that need waits for fees to come down."""
    s = settings(max_channel_size=1_000_000, min_inbound_liquidity_per_channel=950_000)
    # Two channels already give the wallet's inbound and count; none reaches 950,000 sats.
    chans = (channel(500_000, remote=250_000), channel(500_000, remote=250_000))
    quiet = plan_liquidity(wallet_snapshot(channels=chans, fee_rate=2), s)
    assert quiet.needs == ("no_channel_big_enough",) and quiet.topup_due
    busy = plan_liquidity(wallet_snapshot(channels=chans, fee_rate=45), s)
    assert busy.numbers["per_channel_reachable_sat"] < 950_000
    assert busy.needs == () and not busy.topup_due
