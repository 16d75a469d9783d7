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


def electrum_yield(capacity: int, estimate_sat_vb: int, held_back: int) -> tuple[int, int]:
    """(what we can send once OPEN, what the peer can send us after we pushed it less the
    routing budget), in sats, as the simulator's Electrum has it."""
    estimates = FeeEstimates(regtest=True)
    estimates.set_all(estimate_sat_vb)
    current = ec.current_target_feerate_per_kw(estimates)
    assert current is not None
    # Opened at `current`, then Electrum's first update_fee as the initiator.
    feerate = ec.proposed_feerate(current, current, remote_ctn=0) or current
    reserve = max(capacity // 100, 546)  # each side's, as Electrum asks it of the other
    in_flight = capacity * 1000

    def terms(local_msat: int) -> ec.Terms:
        return ec.Terms(
            feerate,
            ec.Side(local_msat, reserve, 546, max_htlc_in_flight_msat=in_flight),
            ec.Side(capacity * 1000 - local_msat, reserve, 546, max_htlc_in_flight_msat=in_flight),
            ec.LOCAL,
        )

    sendable = ec.available_to_spend(terms(capacity * 1000), ec.LOCAL) // 1000
    pushed = sendable - held_back  # the budget stays with us (a real route costs less)
    receivable = ec.available_to_spend(terms((capacity - pushed) * 1000), ec.REMOTE) // 1000
    return sendable, receivable


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=200_000, max_value=cf.MAX_CHANNEL_SAT),
    st.integers(min_value=1, max_value=150),
    st.integers(min_value=0, max_value=5_000),
)
def test_promised_inbound_is_what_the_channel_yields(
    capacity: int, estimate: int, held_back: int
) -> None:
    feerate = cf.anchor_channel_feerate_per_kw(estimate)
    promised = cf.usable_inbound_for_capacity(capacity, feerate, held_back)
    sendable, achieved = electrum_yield(capacity, estimate, held_back)
    assert cf.funder_sendable_sat(capacity, max(capacity // 100, 546), feerate) <= sendable
    assert achieved - TOLERANCE_SAT <= promised <= achieved, (promised, achieved)


def test_the_real_stacks_channel() -> None:
    """200,000 sats at 20 sat/vB: the real Electrum kept ~26,000 unspendable."""
    sendable, achieved = electrum_yield(200_000, 20, 100)
    assert sendable == 174_030
    promised = cf.usable_inbound_for_capacity(200_000, cf.anchor_channel_feerate_per_kw(20), 100)
    assert achieved - TOLERANCE_SAT <= promised <= achieved
