"""Sizing promises what Electrum delivers (issue 12): for any channel size, fee estimate and
routing budget, the inbound the plan promises is at most what the simulator's Electrum channel
(``simulator/commitment.py``, written from Electrum's lnchannel/lnpeer) yields once a cashout
has pushed out all it can, and at least that minus a small stated tolerance."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from liquidityhelper import common_functions as cf
from liquidityhelper.simulator import commitment as ec
from liquidityhelper.simulator.fees import FeeEstimates

# Ours rounds each fee up to the sat where Electrum keeps msat: at most a few sats apart.
TOLERANCE_SAT = 3


def electrum_yield(
    capacity: int,
    estimate_sat_vb: int,
    held_back: int,
    hold_per_kw: int = 0,
    rise_to: int | None = None,
) -> tuple[int, int, int]:
    """(what Electrum lets us send once OPEN, what the peer can send us after the daemon's
    cashout pushed out its amount, what it can send once the channel's feerate has risen to
    ``rise_to``, by default ``hold_per_kw``), in sats, as the simulator's Electrum has it."""
    estimates = FeeEstimates(regtest=True)
    estimates.set_all(estimate_sat_vb)
    current = ec.current_target_feerate_per_kw(estimates)
    assert current is not None
    # Opened at `current`, then Electrum's first update_fee as the initiator.
    feerate = ec.proposed_feerate(current, current, remote_ctn=0) or current
    reserve = max(capacity // 100, 546)  # each side's, as Electrum asks it of the other
    in_flight = capacity * 1000

    def terms(local_msat: int, rate: int = feerate) -> ec.Terms:
        return ec.Terms(
            rate,
            ec.Side(local_msat, reserve, 546, max_htlc_in_flight_msat=in_flight),
            ec.Side(capacity * 1000 - local_msat, reserve, 546, max_htlc_in_flight_msat=in_flight),
            ec.LOCAL,
        )

    sendable = ec.available_to_spend(terms(capacity * 1000), ec.LOCAL) // 1000
    # The daemon's cashout: what it counts as cashable (at the highest feerate the channel may
    # drift to, keeping the receiving floor at the hold feerate) less the routing budget it
    # keeps; a real route costs less, the budget stays with us.
    ours = cf.channel_feerate_upper_per_kw(cf.anchor_channel_feerate_per_kw(estimate_sat_vb))
    cashable = min(
        cf.funder_sendable_sat(capacity, reserve, ours),
        capacity - reserve - cf.receiving_floor_sat(hold_per_kw),
    )
    pushed = cashable - held_back
    assert pushed + held_back <= sendable  # Electrum lets the cashout through
    left = (capacity - pushed) * 1000
    receivable = ec.available_to_spend(terms(left), ec.REMOTE) // 1000
    risen = max(hold_per_kw if rise_to is None else rise_to, feerate)
    later = ec.available_to_spend(terms(left, risen), ec.REMOTE) // 1000
    return sendable, receivable, later


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=200_000, max_value=cf.MAX_CHANNEL_SAT),
    st.integers(min_value=1, max_value=150),
    st.integers(min_value=0, max_value=5_000),
    st.integers(min_value=1, max_value=100),
)
def test_promised_inbound_is_what_the_channel_yields(
    capacity: int, estimate: int, held_back: int, ceiling: int
) -> None:
    """For any channel size, fee estimate, routing budget and open ceiling (the feerate the
    channel must stay able to receive at): the promise is what the peer can send after the
    daemon's cashout, and the channel still receives it once the feerate has risen there."""
    feerate = cf.channel_feerate_upper_per_kw(cf.anchor_channel_feerate_per_kw(estimate))
    hold = cf.anchor_channel_feerate_per_kw(ceiling)
    promised = cf.usable_inbound_for_capacity(capacity, feerate, held_back, hold)
    _, achieved, later = electrum_yield(capacity, estimate, held_back, hold)
    assert achieved - TOLERANCE_SAT <= promised <= achieved, (promised, achieved)
    assert achieved - TOLERANCE_SAT <= later, (achieved, later)


def test_the_real_stacks_channel() -> None:
    """200,000 sats at 20 sat/vB: the real Electrum kept ~26,000 unspendable."""
    sendable, achieved, _ = electrum_yield(200_000, 20, 100)
    assert sendable == 174_030
    feerate = cf.channel_feerate_upper_per_kw(cf.anchor_channel_feerate_per_kw(20))
    promised = cf.usable_inbound_for_capacity(200_000, feerate, 100)
    assert achieved - TOLERANCE_SAT <= promised <= achieved


def test_a_cashout_on_a_quiet_day_without_the_hold_leaves_a_channel_that_cannot_receive() -> None:
    """The year, days 85-88: cashouts at 1-5 sat/vB left our side at Electrum's fee-spike
    buffer; the estimate rose to 28 sat/vB and the peers could send only sub-dust amounts."""
    hold = cf.anchor_channel_feerate_per_kw(28)
    _, achieved, later = electrum_yield(200_000, 2, 100, 0, rise_to=hold)
    assert achieved > 150_000 and later < 1_000
    _, achieved, later = electrum_yield(200_000, 2, 100, hold)
    assert later >= achieved - TOLERANCE_SAT
