"""Properties and boundaries of the sizing arithmetic in liquidityhelper.common_functions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liquidityhelper import common_functions as cf
from liquidityhelper.common_functions import (
    ANCHOR_OUTPUTS_SAT,
    COMMITMENT_FEE_ALLOWANCE_SAT,
    DUST_LIMIT_SAT,
    ELECTRUM_FEE_TARGETS,
    ELECTRUM_PEER_MIN_FUNDING_SAT,
    FORCE_CLOSE_VBYTES,
    FUNDING_TX_VBYTES,
    MAX_CHANNEL_SAT,
    MAX_MONEY_SAT,
    MIN_CHANNEL_SAT,
    MoneyError,
    anchor_channel_feerate_per_kw,
    btc_to_sats,
    channel_open_cost,
    channel_reserve_sat,
    clamp_channel_size,
    close_reserves_for_channels,
    distribute_sats_over_channels,
    format_btc,
    funder_sendable_sat,
    funder_unspendable_sat,
    liquidity_to_channel_size,
    msat_to_sat_floor,
    onchain_reserves_to_keep_for_channel,
    plan_cost,
    safe_to_spend,
    sat_to_msat,
    sats_to_btc,
    sats_to_max_channel_size,
    topup_amount,
    usable_inbound_for_capacity,
)

ORIGINAL_FLAT_RESERVE_SAT = 11_000

feerates = st.integers(min_value=1, max_value=2_000)
capacities = st.integers(min_value=0, max_value=2 * MAX_CHANNEL_SAT)
capacity_lists = st.lists(st.integers(min_value=0, max_value=MAX_CHANNEL_SAT), max_size=8)
liquidities = st.integers(min_value=1, max_value=10 * MAX_CHANNEL_SAT)


# --- constants ---------------------------------------------------------------------------------


def test_constants_match_electrum_and_bitcart() -> None:
    assert MIN_CHANNEL_SAT == 60_000
    assert MAX_CHANNEL_SAT == 2**24 - 1
    assert DUST_LIMIT_SAT == 546
    assert ANCHOR_OUTPUTS_SAT == 660


def test_derived_sizes_are_the_documented_ones() -> None:
    # Derivations are in the module's comments; a change here must be a deliberate one.
    assert FUNDING_TX_VBYTES == 221
    assert FORCE_CLOSE_VBYTES == 281 + 180 + 121
    assert COMMITMENT_FEE_ALLOWANCE_SAT == 5_505 + 323


# --- reserve and usable inbound -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capacity", "reserve"),
    [(0, 546), (54_599, 546), (54_600, 546), (54_699, 546), (54_700, 547), (1_000_000, 10_000)],
)
def test_channel_reserve_is_one_percent_with_a_dust_floor(capacity: int, reserve: int) -> None:
    assert channel_reserve_sat(capacity) == reserve


def test_usable_inbound_subtracts_fees_anchors_and_both_reserves() -> None:
    assert usable_inbound_for_capacity(1_000_000) == 1_000_000 - 5_828 - 660 - 2 * 10_000
    assert usable_inbound_for_capacity(MIN_CHANNEL_SAT) == 60_000 - 5_828 - 660 - 2 * 600


def test_usable_inbound_is_floored_at_zero() -> None:
    assert usable_inbound_for_capacity(0) == 0
    assert usable_inbound_for_capacity(5_000) == 0


def test_usable_inbound_dips_by_one_sat_at_each_hundred() -> None:
    # Both 1% reserves grow at 100_000: this is why sizes ask every larger capacity to fit.
    assert usable_inbound_for_capacity(100_000) == usable_inbound_for_capacity(99_999) - 1


@given(capacities)
def test_usable_inbound_never_exceeds_what_reserves_leave(capacity: int) -> None:
    usable = usable_inbound_for_capacity(capacity)
    assert 0 <= usable <= max(capacity - 2 * channel_reserve_sat(capacity), 0)


@pytest.mark.parametrize("bad", [-1, -MIN_CHANNEL_SAT])
def test_negative_capacity_is_refused(bad: int) -> None:
    with pytest.raises(MoneyError, match=str(bad)):
        usable_inbound_for_capacity(bad)
    with pytest.raises(MoneyError):
        channel_reserve_sat(bad)
    with pytest.raises(MoneyError):
        onchain_reserves_to_keep_for_channel(bad, 5)


# --- distribute_sats_over_channels ---------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=200))
def test_distribution_sums_and_is_even(total: int, channels: int) -> None:
    parts = distribute_sats_over_channels(total, channels)
    assert len(parts) == channels
    assert sum(parts) == total
    assert max(parts) - min(parts) <= 1
    assert parts == sorted(parts, reverse=True)


def test_distribution_examples() -> None:
    assert distribute_sats_over_channels(10, 3) == [4, 3, 3]
    assert distribute_sats_over_channels(2, 5) == [1, 1, 0, 0, 0]
    assert distribute_sats_over_channels(0, 0) == []


def test_distribution_over_zero_channels_needs_zero_sats() -> None:
    with pytest.raises(MoneyError, match="0 channels"):
        distribute_sats_over_channels(1, 0)


@pytest.mark.parametrize(("total", "channels"), [(-1, 2), (10, -1)])
def test_distribution_refuses_negatives(total: int, channels: int) -> None:
    with pytest.raises(ValueError, match="negative"):
        distribute_sats_over_channels(total, channels)


# --- liquidity_to_channel_size --------------------------------------------------------------------


@given(liquidities)
def test_channel_size_is_minimal(liquidity: int) -> None:
    size = liquidity_to_channel_size(liquidity)
    assert usable_inbound_for_capacity(size) >= liquidity
    assert usable_inbound_for_capacity(size - 1) < liquidity


@given(liquidities)
def test_every_larger_channel_also_gives_the_liquidity(liquidity: int) -> None:
    size = liquidity_to_channel_size(liquidity)
    # The reserve term repeats every 100 sats, so two periods cover every kind of dip.
    assert all(usable_inbound_for_capacity(c) >= liquidity for c in range(size, size + 201))


def test_channel_size_skips_a_capacity_whose_next_sat_loses_liquidity() -> None:
    liquidity = usable_inbound_for_capacity(99_999)
    assert usable_inbound_for_capacity(100_000) == liquidity - 1
    # 99_999 fits alone, but rounding it up by one sat would fall short.
    assert liquidity_to_channel_size(liquidity) == 100_001


@given(st.integers(min_value=546, max_value=MAX_CHANNEL_SAT // 100))
def test_targets_met_just_before_a_dip_land_after_it(hundreds: int) -> None:
    liquidity = usable_inbound_for_capacity(hundreds * 100 + 99)
    size = liquidity_to_channel_size(liquidity)
    assert all(usable_inbound_for_capacity(c) >= liquidity for c in range(size, size + 201))


@given(liquidities, liquidities)
def test_channel_size_is_monotonic(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert liquidity_to_channel_size(low) <= liquidity_to_channel_size(high)


@pytest.mark.parametrize("liquidity", [0, -1, -(10**9)])
def test_no_liquidity_needs_no_channel(liquidity: int) -> None:
    assert liquidity_to_channel_size(liquidity) == 0


def test_channel_size_for_one_sat_covers_all_fixed_costs() -> None:
    assert liquidity_to_channel_size(1) == 1 + COMMITMENT_FEE_ALLOWANCE_SAT + 660 + 2 * 546


def test_channel_size_is_not_clamped() -> None:
    assert liquidity_to_channel_size(1_000) < MIN_CHANNEL_SAT
    assert liquidity_to_channel_size(MAX_CHANNEL_SAT) > MAX_CHANNEL_SAT
    # A huge target is a search of a few dozen steps, not a scan.
    assert usable_inbound_for_capacity(liquidity_to_channel_size(10**15)) >= 10**15


def test_clamp_channel_size() -> None:
    assert clamp_channel_size(1_000) == MIN_CHANNEL_SAT
    assert clamp_channel_size(100_000) == 100_000
    assert clamp_channel_size(MAX_CHANNEL_SAT + 1) == MAX_CHANNEL_SAT
    assert clamp_channel_size(5, min_channel=10, max_channel=20) == 10
    with pytest.raises(MoneyError, match="above max_channel"):
        clamp_channel_size(5, min_channel=30, max_channel=20)


# --- reserves and costs ---------------------------------------------------------------------------


@given(capacities, feerates, feerates)
def test_reserve_grows_with_the_feerate(capacity: int, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert onchain_reserves_to_keep_for_channel(
        capacity, low
    ) <= onchain_reserves_to_keep_for_channel(capacity, high)


def test_reserve_at_high_feerate_is_far_above_the_old_flat_reserve() -> None:
    reserve = onchain_reserves_to_keep_for_channel(1_000_000, 50)
    assert reserve == FORCE_CLOSE_VBYTES * 50
    assert reserve > 2 * ORIGINAL_FLAT_RESERVE_SAT


@pytest.mark.parametrize("feerate", [0, -3])
def test_feerate_below_one_counts_as_one(feerate: int) -> None:
    assert onchain_reserves_to_keep_for_channel(100_000, feerate) == FORCE_CLOSE_VBYTES
    assert channel_open_cost(100_000, feerate) == 100_000 + FUNDING_TX_VBYTES


def test_open_cost_adds_the_funding_fee() -> None:
    assert channel_open_cost(100_000, 10) == 100_000 + 221 * 10


def test_plan_cost_sums_open_cost_and_reserve_per_channel() -> None:
    assert plan_cost([], 10) == 0
    assert plan_cost([100_000, 200_000], 10) == 300_000 + 2 * (221 + 582) * 10


@pytest.mark.parametrize("bad", [1.5, True, "5", None])
def test_feerate_must_be_an_int(bad: object) -> None:
    with pytest.raises(TypeError, match="feerate"):
        onchain_reserves_to_keep_for_channel(100_000, bad)  # type: ignore[arg-type]


# --- sats_to_max_channel_size ---------------------------------------------------------------------


@given(st.integers(min_value=-(10**6), max_value=4 * MAX_CHANNEL_SAT), feerates)
def test_max_channel_fits_the_budget_and_is_maximal(spendable: int, feerate: int) -> None:
    size = sats_to_max_channel_size(spendable, feerate)
    if size == 0:
        assert plan_cost([MIN_CHANNEL_SAT], feerate) > spendable
        return
    assert MIN_CHANNEL_SAT <= size <= MAX_CHANNEL_SAT
    assert plan_cost([size], feerate) <= spendable
    if size < MAX_CHANNEL_SAT:
        assert plan_cost([size + 1], feerate) > spendable


@given(feerates)
def test_exact_minimum_budget_boundary(feerate: int) -> None:
    budget = plan_cost([MIN_CHANNEL_SAT], feerate)
    assert sats_to_max_channel_size(budget, feerate) == MIN_CHANNEL_SAT
    assert sats_to_max_channel_size(budget - 1, feerate) == 0


def test_min_channel_budget_at_ten_sat_per_vbyte() -> None:
    budget = MIN_CHANNEL_SAT + (FUNDING_TX_VBYTES + FORCE_CLOSE_VBYTES) * 10
    assert budget == 68_030
    assert sats_to_max_channel_size(68_030, 10) == MIN_CHANNEL_SAT
    assert sats_to_max_channel_size(68_031, 10) == MIN_CHANNEL_SAT + 1
    assert sats_to_max_channel_size(68_029, 10) == 0


def test_max_channel_is_capped() -> None:
    assert sats_to_max_channel_size(10**12, 5) == MAX_CHANNEL_SAT
    assert sats_to_max_channel_size(10**12, 5, max_channel=1_000_000) == 1_000_000


def test_max_channel_respects_a_custom_minimum() -> None:
    budget = plan_cost([100_000], 2)
    assert sats_to_max_channel_size(budget - 1, 2, min_channel=100_000) == 0
    assert sats_to_max_channel_size(budget - 1, 2) == 99_999


@pytest.mark.parametrize("spendable", [0, -1, -(10**9)])
def test_nothing_to_spend_opens_nothing(spendable: int) -> None:
    assert sats_to_max_channel_size(spendable, 1) == 0


def test_max_channel_refuses_inverted_limits() -> None:
    with pytest.raises(MoneyError, match="min_channel"):
        sats_to_max_channel_size(10**9, 1, min_channel=200, max_channel=100)


# --- safe_to_spend and top-ups --------------------------------------------------------------------


@given(st.integers(min_value=-(10**6), max_value=10**10), capacity_lists, feerates)
def test_safe_to_spend_bounds(onchain: int, channels: list[int], feerate: int) -> None:
    safe = safe_to_spend(onchain, channels, feerate)
    reserves = close_reserves_for_channels(channels, feerate)
    assert 0 <= safe <= max(onchain, 0)
    assert safe == max(onchain - reserves, 0)
    assert safe_to_spend(onchain, [*channels, MIN_CHANNEL_SAT], feerate) <= safe
    assert safe_to_spend(onchain, channels, feerate, extra_reserve=1_000) == max(safe - 1_000, 0)


def test_safe_to_spend_example() -> None:
    assert safe_to_spend(1_000_000, [100_000, 200_000], 20) == 1_000_000 - 2 * 582 * 20
    assert safe_to_spend(1_000, [100_000], 20) == 0
    with pytest.raises(MoneyError, match="extra_reserve"):
        safe_to_spend(1_000_000, [], 20, extra_reserve=-1)


def _affordable(
    onchain: int, planned: list[int], existing: list[int], feerate: int, extra: int
) -> bool:
    """Funds cover the plan plus every reserve (not floored, so reserves alone count too)."""
    reserves = close_reserves_for_channels(existing, feerate) + extra
    return onchain - reserves >= plan_cost(planned, feerate)


@given(
    capacity_lists,
    st.integers(min_value=-(10**6), max_value=10**9),
    capacity_lists,
    feerates,
    st.integers(min_value=0, max_value=10**6),
)
def test_topup_is_exactly_enough(
    planned: list[int], onchain: int, existing: list[int], feerate: int, extra: int
) -> None:
    topup = topup_amount(planned, onchain, existing, feerate, extra)
    assert topup >= 0
    funded = onchain + topup
    assert _affordable(funded, planned, existing, feerate, extra)
    assert safe_to_spend(funded, existing, feerate, extra) >= plan_cost(planned, feerate)
    if topup > 0:
        assert not _affordable(funded - 1, planned, existing, feerate, extra)
        if planned:
            assert safe_to_spend(funded - 1, existing, feerate, extra) < plan_cost(planned, feerate)


def test_no_topup_when_nothing_is_planned_and_reserves_are_covered() -> None:
    existing = [100_000, 500_000]
    reserves = close_reserves_for_channels(existing, 10)
    assert topup_amount([], reserves, existing, 10) == 0
    assert topup_amount([], reserves - 1, existing, 10) == 1


def test_topup_example() -> None:
    # One 200k channel planned at 10 sat/vB, one existing channel, 100k on chain.
    expected = (200_000 + 221 * 10 + 582 * 10) + 582 * 10 - 100_000
    assert topup_amount([200_000], 100_000, [1_000_000], 10) == expected
    assert topup_amount([200_000], 100_000, [1_000_000], 10, extra_reserve=5) == expected + 5


# --- BTC and sats ---------------------------------------------------------------------------------


@given(st.integers(min_value=-MAX_MONEY_SAT, max_value=MAX_MONEY_SAT))
def test_btc_round_trip(sats: int) -> None:
    text = format_btc(sats)
    assert btc_to_sats(text) == sats
    assert btc_to_sats(sats_to_btc(sats)) == sats
    assert len(text.split(".")[1]) == 8


def test_parsing_is_exact_where_floats_are_not() -> None:
    assert int(0.29 * 1e8) == 28_999_999  # the original's bug
    assert btc_to_sats("0.29") == 29_000_000


@pytest.mark.parametrize(
    ("value", "sats"),
    [
        ("0.29", 29_000_000),
        ("0.00010000", 10_000),
        ("0.00000001", 1),
        ("1E-8", 1),
        ("1", 100_000_000),
        (" 0.5 ", 50_000_000),
        (".5", 50_000_000),
        ("5.", 500_000_000),
        ("+0.1", 10_000_000),
        ("-0.00010000", -10_000),
        ("0.290000000000", 29_000_000),
        ("-0", 0),
        ("0.000000000000", 0),
        ("21000000", MAX_MONEY_SAT),
        (1, 100_000_000),
        (-2, -200_000_000),
        (Decimal("0.00123456"), 123_456),
        (Decimal("1.10000000000"), 110_000_000),
    ],
)
def test_btc_to_sats_examples(value: str | int | Decimal, sats: int) -> None:
    assert btc_to_sats(value) == sats


@pytest.mark.parametrize(
    "value",
    [
        "0.000000001",
        "0.123456789",
        "1e-9",
        "",
        "abc",
        "1.2.3",
        "0x10",
        "1_000",
        "NaN",
        "Infinity",
        "-inf",
        "\u0661",  # ARABIC-INDIC DIGIT ONE: Decimal would take it
        "21000000.00000001",
        "1e400",
        Decimal("NaN"),
        Decimal("-Infinity"),
        Decimal("0.000000015"),
    ],
)
def test_btc_to_sats_refuses_bad_amounts(value: str | Decimal) -> None:
    with pytest.raises(MoneyError) as info:
        btc_to_sats(value)
    assert repr(value) in str(info.value) or str(value) in str(info.value)


@pytest.mark.parametrize("value", [0.29, True, None, b"0.29"])
def test_btc_to_sats_refuses_inexact_or_foreign_types(value: object) -> None:
    with pytest.raises(TypeError):
        btc_to_sats(value)  # type: ignore[arg-type]


def test_long_zero_padding_is_cheap_and_exact() -> None:
    assert btc_to_sats("0.29" + "0" * 100_000) == 29_000_000
    with pytest.raises(MoneyError, match="fraction"):
        btc_to_sats("0." + "0" * 100_000 + "1")


def test_sats_to_btc_has_eight_decimals() -> None:
    assert sats_to_btc(29_000_000) == Decimal("0.29")
    assert sats_to_btc(0).as_tuple().exponent == -8
    assert sats_to_btc(-1) == Decimal("-0.00000001")
    assert format_btc(10_000) == "0.00010000"
    assert format_btc(0) == "0.00000000"
    assert format_btc(-150_000_000) == "-1.50000000"
    assert format_btc(MAX_MONEY_SAT) == "21000000.00000000"
    with pytest.raises(TypeError):
        sats_to_btc(1.0)  # type: ignore[arg-type]


def test_msat_helpers() -> None:
    assert sat_to_msat(5) == 5_000
    assert msat_to_sat_floor(5_999) == 5
    assert msat_to_sat_floor(-1_500) == -2
    with pytest.raises(TypeError):
        msat_to_sat_floor(True)


# --- What a channel can send, as Electrum computes it ------------------------------------------


def test_anchor_feerate_follows_the_1008_block_estimate_with_electrums_buffer() -> None:
    # Electrum: max(estimate, 5 sat/vB) as sat/kw (÷4), at least 253, then +50 %.
    assert anchor_channel_feerate_per_kw(20) == 7_500
    assert anchor_channel_feerate_per_kw(1) == 1_875  # the 5 sat/vB floor
    assert anchor_channel_feerate_per_kw(None) == 1_875
    assert anchor_channel_feerate_per_kw(80) == 30_000


def test_what_the_real_stack_could_not_send_from_a_200k_channel_at_20_sat_per_vb() -> None:
    """The real Electrum 4.6 kept ~26,000 sats unspendable on a fresh 200,000-sat channel at a
    20 sat/vB estimate; the old fixed allowance assumed 8,488 and 17 of 30 cashouts failed."""
    feerate = anchor_channel_feerate_per_kw(20)
    # fee-spike buffer: 2 × 7500 sat/kw × (1124 + 2 × 172) wu = 22,020; anchors 660;
    # the new HTLC output's fee 7500 × 172 / 1000 = 1,290; reserve 1 % = 2,000.
    assert funder_unspendable_sat(feerate) == 22_020 + 660 + 1_290
    assert funder_sendable_sat(200_000, 2_000, feerate) == 200_000 - 25_970
    assert funder_sendable_sat(20_000, 2_000, feerate) == 0


def test_allowance_at_a_quiet_mempool_is_the_documented_one() -> None:
    assert COMMITMENT_FEE_ALLOWANCE_SAT == 5_828
    assert funder_unspendable_sat() == 5_828 + ANCHOR_OUTPUTS_SAT


@given(capacities, st.integers(min_value=253, max_value=100_000), st.integers(0, 10_000))
def test_sizing_at_a_feerate_keeps_what_the_funder_cannot_send(
    capacity: int, feerate: int, held_back: int
) -> None:
    usable = usable_inbound_for_capacity(capacity, feerate, held_back)
    pushed = funder_sendable_sat(capacity, channel_reserve_sat(capacity), feerate) - held_back
    # What a cashout pushes out, less the peer's reserve, is the inbound the channel yields.
    assert usable == max(0, pushed - channel_reserve_sat(capacity))


@given(st.integers(min_value=1, max_value=5_000_000), st.integers(min_value=253, max_value=30_000))
def test_channel_size_at_a_feerate_gives_the_liquidity(liquidity: int, feerate: int) -> None:
    size = liquidity_to_channel_size(liquidity, feerate, 100)
    assert usable_inbound_for_capacity(size, feerate, 100) >= liquidity
    assert usable_inbound_for_capacity(size + 100, feerate, 100) >= liquidity


def test_electrum_fee_targets_and_peer_minimum() -> None:
    assert ELECTRUM_FEE_TARGETS == (1, 2, 5, 10, 25, 144, 1008)
    assert ELECTRUM_PEER_MIN_FUNDING_SAT == 200_000


# --- funding priced from the wallet's coins -------------------------------------------------------


def test_funding_inputs_takes_the_fewest_largest_coins_never_below_two() -> None:
    assert cf.funding_inputs([500_000], 200_000, 10) == 2  # the priced default
    coins = [5_000] * 60
    # 50 coins carry 250,000; the fee of a 50-input tx at 10 sat/vB is 34,740: 58 are needed.
    n = cf.funding_inputs(coins, 200_000, 10)
    assert sum(coins[:n]) >= 200_000 + cf.funding_tx_vbytes(n) * 10
    assert sum(coins[: n - 1]) < 200_000 + cf.funding_tx_vbytes(n - 1) * 10
    assert cf.funding_inputs([1_000] * 3, 200_000, 10) == 3  # nothing covers: all of them
    assert cf.funding_tx_vbytes(2) == cf.FUNDING_TX_VBYTES == 221


def test_plan_cost_from_coins_spends_the_change_of_the_first_open_last() -> None:
    assert cf.plan_cost([200_000], 10, [1_000_000]) == cf.plan_cost([200_000], 10)
    small = [10_000] * 50
    assert cf.plan_cost([200_000], 10, small) > cf.plan_cost([200_000], 10) + 20 * 68 * 10


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=1_000, max_value=400_000), min_size=0, max_size=80),
    st.lists(st.integers(min_value=200_000, max_value=1_000_000), min_size=1, max_size=2),
    st.integers(min_value=1, max_value=60),
)
def test_a_top_up_priced_from_coins_pays_for_the_plan(
    coins: list[int], planned: list[int], rate: int
) -> None:
    """The top-up arrives as one more coin; with it the plan's funding txs (priced from the
    real inputs) and reserves are covered, and none is asked when the coins already cover it."""
    available = sum(coins)
    topup = cf.topup_amount(planned, available, [], rate, 0, coins)
    covered = cf.plan_cost(planned, rate, coins) <= available
    assert (topup == 0) == covered
    if topup:
        assert cf.plan_cost(planned, rate, [*coins, topup]) <= available + topup
        assert topup >= cf.topup_amount(planned, available, [], rate, 0)
