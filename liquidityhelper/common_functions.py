"""Pure sizing arithmetic: channel sizes, on-chain reserves, top-ups and BTC/sat conversion.

Every amount is an ``int`` of sats (``_msat`` where Lightning needs millisats) and every fee
rate is an ``int`` in sat/vB. Nothing here does I/O, logs or reads the clock, so each rule is
pinned by tests alone. Sizes and weights come from BOLT 3 and Electrum 4.6 (the daemon Bitcart
0.10 ships); where a figure is an estimate, its comment says what it assumes.

Floats are refused everywhere (``TypeError``): ``int(0.29 * 1e8) == 28_999_999``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

# ---------------------------------------------------------------------------------------------
# Channel limits (Electrum as patched by Bitcart)
# ---------------------------------------------------------------------------------------------

# Bitcart's daemon lowers Electrum's minimum funding to 60,000 sats at start-up
# ("funding_sat too low: N sat < 60000").
MIN_CHANNEL_SAT = 60_000
# 2**24 - 1: the legacy limit when the peer (or our config) lacks large-channel ("wumbo") support.
MAX_CHANNEL_SAT = 16_777_215
# Electrum's own dust limit (DUST_LIMIT_P2PKH). Its channel reserve is max(capacity // 100, dust),
# and the reserve it accepts from the peer is at most 1% and at least this.
DUST_LIMIT_SAT = 546
# Anchor channels (Electrum's default) carry two 330-sat anchor outputs, paid by the funder.
ANCHOR_OUTPUTS_SAT = 2 * 330
# Bitcoin's supply cap; a BTC amount beyond it is garbage, not money.
MAX_MONEY_SAT = 21_000_000 * 100_000_000

SATS_PER_BTC = 100_000_000


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


# ---------------------------------------------------------------------------------------------
# Transaction weights (weight units; vbytes = ceil(weight / 4))
# ---------------------------------------------------------------------------------------------

# version (4) + input count (1) + output count (1) + locktime (4), plus the segwit marker and flag.
_TX_OVERHEAD_WU = 4 * 10 + 2
# Every input's non-witness part: outpoint (36) + empty scriptSig (1) + sequence (4).
_INPUT_BASE_WU = 4 * 41
# p2wpkh input: witness = item count (1) + 73-byte signature (1+73) + 33-byte key (1+33).
_P2WPKH_INPUT_WU = _INPUT_BASE_WU + 1 + 74 + 34
# Anchor input: witness = count (1) + signature (1+73) + 40-byte anchor script (1+40).
_ANCHOR_INPUT_WU = _INPUT_BASE_WU + 1 + 74 + 41
# Delayed to_local input: witness = count (1) + signature (1+73) + empty item (1) selecting the
# delayed branch + 77-byte to_local script (1+77, with a 2-byte to_self_delay).
_TO_LOCAL_INPUT_WU = _INPUT_BASE_WU + 1 + 74 + 1 + 78
# Outputs: value (8) + script length (1) + script (22 for p2wpkh, 34 for p2wsh).
_P2WPKH_OUTPUT_WU = 4 * 31
_P2WSH_OUTPUT_WU = 4 * 43

# BOLT 3: an anchor commitment tx without HTLC outputs weighs 1124; each HTLC output adds 172.
COMMITMENT_TX_WEIGHT = 1124
HTLC_OUTPUT_WEIGHT = 172

# Funding tx: two p2wpkh inputs (a merchant's wallet holds a few invoice payments), the p2wsh
# channel output and p2wpkh change: 221 vB. Electrum picks the coins; more inputs cost more:
# when the wallet's coins are known (:func:`funding_inputs`), they price it, never below this.
FUNDING_TX_INPUTS = 2


def funding_tx_vbytes(inputs: int) -> int:
    """Size of a funding tx spending ``inputs`` p2wpkh coins, with change: 153 vB for one,
    221 for two, 68 more per input."""
    if isinstance(inputs, bool) or not isinstance(inputs, int) or inputs < 0:
        raise MoneyError(f"inputs must be a non-negative int, got {inputs!r}")
    weight = _TX_OVERHEAD_WU + inputs * _P2WPKH_INPUT_WU + _P2WSH_OUTPUT_WU + _P2WPKH_OUTPUT_WU
    return _ceil_div(weight, 4)


FUNDING_TX_VBYTES = funding_tx_vbytes(FUNDING_TX_INPUTS)

# An anchor force-close, everything paid at the current fee rate from on-chain funds:
# 1. the commitment tx itself (281 vB). Its pre-signed fee targets ~1008 blocks, so at a real
#    fee rate the CPFP child must pay for it as a package; counting all of it is conservative;
COMMITMENT_TX_VBYTES = _ceil_div(COMMITMENT_TX_WEIGHT, 4)
# 2. the CPFP child: our anchor + one wallet coin in, p2wpkh change out (180 vB);
ANCHOR_CPFP_CHILD_VBYTES = _ceil_div(
    _TX_OVERHEAD_WU + _ANCHOR_INPUT_WU + _P2WPKH_INPUT_WU + _P2WPKH_OUTPUT_WU, 4
)
# 3. the sweep of our delayed to_local output to the wallet after to_self_delay (121 vB).
TO_LOCAL_SWEEP_VBYTES = _ceil_div(_TX_OVERHEAD_WU + _TO_LOCAL_INPUT_WU + _P2WPKH_OUTPUT_WU, 4)
# 582 vB in all: 582 sats at 1 sat/vB, 29,100 at 50 sat/vB. The original's flat 11,000 sats
# covered a close only at low rates. In-flight HTLC outputs and their second-stage txs are not
# counted: a close with HTLCs pending needs more.
FORCE_CLOSE_VBYTES = COMMITMENT_TX_VBYTES + ANCHOR_CPFP_CHILD_VBYTES + TO_LOCAL_SWEEP_VBYTES

# Electrum's fee targets (fee_policy.FEE_ETA_TARGETS): it estimates only these block counts.
# Asking for any other (6, say) gets the hard-coded 150 sat/vB fallback on regtest and no
# estimate at all on mainnet.
ELECTRUM_FEE_TARGETS = (1, 2, 5, 10, 25, 144, 1008)
# The target Electrum sets an anchor channel's commitment feerate from
# (fee_policy.FEE_LN_MINIMUM_ETA_TARGET).
ANCHOR_FEE_TARGET_BLOCKS = 1008
# Stock Electrum refuses incoming channels below this (lnutil.MIN_FUNDING_SAT); Bitcart lowers it
# only for its own daemon, so the Electrum trampolines we open to keep it. They refuse without
# a word to the opener: Bitcart's daemon times out after ~20 s and REST says only "Failed to
# open channel".
ELECTRUM_PEER_MIN_FUNDING_SAT = 200_000
# Electrum's floor for any commitment feerate (FEERATE_PER_KW_MIN_RELAY_LIGHTNING), sat/kw.
FEERATE_PER_KW_MIN_RELAY = 253
# lnworker.current_target_feerate_per_kw: anchor channels never go below 5 sat/vB.
ANCHOR_FEERATE_FLOOR_SAT_VB = 5

# What the funder (us) can never push out of a channel, besides its reserve: Electrum's
# lnchannel.available_to_spend(LOCAL) for the funder keeps the fee-spike buffer (the commitment
# fee at twice the channel's feerate with two more HTLC outputs), the two anchors and the fee of
# the new HTLC output. The channel's feerate follows the live estimate: Electrum 4.6 keeps an
# anchor channel at max(1008-block estimate, 5 sat/vB) plus a 50% buffer (lnpeer
# maybe_update_fee), so 7.5 sat/vB = 1875 sat/kw on a quiet mempool and 7500 sat/kw at 20 sat/vB.
ANCHOR_COMMITMENT_FEERATE_PER_KW = 1875


class MoneyError(ValueError):
    """An amount that is not valid money here (malformed, fractional sats, out of range)."""


# ---------------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------------


def _require_int(name: str, value: object) -> int:
    """Return ``value`` if it is a real ``int``; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int of sats, got {type(value).__name__}: {value!r}")
    return value


def _require_non_negative(name: str, value: object) -> int:
    amount = _require_int(name, value)
    if amount < 0:
        raise MoneyError(f"{name} must not be negative, got {amount}")
    return amount


def _effective_feerate(feerate: object) -> int:
    """Fee rates below 1 sat/vB are raised to 1: no tx relays below that, so 0 would hide costs."""
    return max(_require_int("feerate", feerate), 1)


# ---------------------------------------------------------------------------------------------
# What a channel can send (Electrum's arithmetic)
# ---------------------------------------------------------------------------------------------


def anchor_channel_feerate_per_kw(estimate_sat_vb: int | None) -> int:
    """The commitment feerate (sat/kw) Electrum keeps on an anchor channel it funds.

    ``max(estimate, 5 sat/vB)`` as sat/kw (÷4, at least 253), plus Electrum's 50 % buffer.
    ``estimate_sat_vb`` is the 1008-block estimate; ``None`` (no estimate) gives the quiet
    mempool's 1875 sat/kw.
    """
    if estimate_sat_vb is None:
        return ANCHOR_COMMITMENT_FEERATE_PER_KW
    rate = max(_require_int("estimate_sat_vb", estimate_sat_vb), ANCHOR_FEERATE_FLOOR_SAT_VB)
    per_kw = max(FEERATE_PER_KW_MIN_RELAY, rate * 1000 // 4)
    return per_kw + per_kw // 2


def commitment_fee_sat(feerate_per_kw: int, num_htlcs: int = 0) -> int:
    """BOLT 3 fee of an anchor commitment tx with ``num_htlcs`` HTLC outputs, rounded up."""
    feerate_per_kw = _require_non_negative("feerate_per_kw", feerate_per_kw)
    num_htlcs = _require_non_negative("num_htlcs", num_htlcs)
    return _ceil_div(feerate_per_kw * (COMMITMENT_TX_WEIGHT + num_htlcs * HTLC_OUTPUT_WEIGHT), 1000)


def funder_unspendable_sat(feerate_per_kw: int = ANCHOR_COMMITMENT_FEERATE_PER_KW) -> int:
    """What the funder of an idle anchor channel can never send, its reserve aside.

    Fee-spike buffer (commitment fee at ``2 × feerate`` with the new HTLC and one more) + two
    330-sat anchors + the fee of the new HTLC output at ``feerate``: 25,970 - 2,000 reserve on a
    200,000-sat channel at 7500 sat/kw, as Electrum's ``available_to_spend`` has it.
    """
    feerate_per_kw = _require_non_negative("feerate_per_kw", feerate_per_kw)
    spike = commitment_fee_sat(2 * feerate_per_kw, 2)
    htlc_fee = _ceil_div(feerate_per_kw * HTLC_OUTPUT_WEIGHT, 1000)
    return spike + ANCHOR_OUTPUTS_SAT + htlc_fee


# The allowance at the quiet-mempool feerate (kept for callers that know no feerate): 5828 sat.
COMMITMENT_FEE_ALLOWANCE_SAT = funder_unspendable_sat() - ANCHOR_OUTPUTS_SAT


def receiving_floor_sat(feerate_per_kw: int) -> int:
    """What the funder must hold above its reserve for the peer to send it an HTLC.

    Electrum's ``available_to_spend(REMOTE)`` on a channel we funded: the receiver (us, the
    funder) must still pay the commitment fee, the new HTLC output's fee and the two anchors,
    else the peer can send only sub-dust amounts. A cashout that drains our side to the
    fee-spike buffer of a quiet day leaves a channel that cannot receive once the feerate has
    more than doubled: hold this back at the feerate the channel must stay able to receive at.
    """
    feerate_per_kw = _require_non_negative("feerate_per_kw", feerate_per_kw)
    return _ceil_div(feerate_per_kw * (COMMITMENT_TX_WEIGHT + HTLC_OUTPUT_WEIGHT), 1000) + (
        ANCHOR_OUTPUTS_SAT
    )


def channel_feerate_upper_per_kw(target_per_kw: int) -> int:
    """The highest feerate an anchor channel we fund may carry while Electrum targets
    ``target_per_kw`` (:func:`anchor_channel_feerate_per_kw`).

    Electrum's ``maybe_update_fee`` leaves the feerate alone while it is within 20 % of the
    target (``5 * |feerate - target| <= feerate``), so it may sit up to a quarter above it:
    what a channel can send is counted at that feerate, or cashouts ask for sats it lacks.
    """
    return _require_non_negative("target_per_kw", target_per_kw) * 5 // 4


def funder_sendable_sat(
    local_sat: int, local_reserve_sat: int, feerate_per_kw: int, unsettled_sat: int = 0
) -> int:
    """What a channel we funded can send now: Electrum's ``available_to_spend(LOCAL)``.

    ``local - reserve - in-flight HTLCs - funder_unspendable_sat(feerate)``, floored at 0.
    """
    local_sat = _require_non_negative("local_sat", local_sat)
    local_reserve_sat = _require_non_negative("local_reserve_sat", local_reserve_sat)
    unsettled_sat = _require_non_negative("unsettled_sat", unsettled_sat)
    left = local_sat - local_reserve_sat - unsettled_sat - funder_unspendable_sat(feerate_per_kw)
    return max(left, 0)


# ---------------------------------------------------------------------------------------------
# Channel sizing
# ---------------------------------------------------------------------------------------------


def channel_reserve_sat(capacity: int) -> int:
    """Electrum's channel reserve: ``max(capacity // 100, DUST_LIMIT_SAT)``.

    1% of capacity, never below the dust limit (Electrum, lnpeer). Electrum also refuses a peer
    reserve above 1%, so this bounds both sides' reserves.
    """
    return max(_require_non_negative("capacity", capacity) // 100, DUST_LIMIT_SAT)


def kept_by_funder_sat(feerate_per_kw: int, hold_feerate_per_kw: int = 0) -> int:
    """What a cashout leaves on our side above our reserve: Electrum's own floor
    (:func:`funder_unspendable_sat` at the channel's feerate) or the sats that keep the channel
    able to receive at ``hold_feerate_per_kw`` (:func:`receiving_floor_sat`), the larger."""
    return max(funder_unspendable_sat(feerate_per_kw), receiving_floor_sat(hold_feerate_per_kw))


def usable_inbound_for_capacity(
    capacity: int,
    feerate_per_kw: int = ANCHOR_COMMITMENT_FEERATE_PER_KW,
    held_back: int = 0,
    hold_feerate_per_kw: int = 0,
) -> int:
    """Inbound liquidity a channel we fund yields once a cashout has pushed out all it can.

    ``capacity - kept_by_funder_sat(feerate, hold_feerate) - 2 * channel_reserve_sat -
    held_back``, floored at 0. As funder we keep our reserve, the anchors and Electrum's
    fee-spike buffer at the channel's feerate, or what keeps the channel able to receive at
    ``hold_feerate_per_kw`` if that is more; the cashout keeps ``held_back`` (its routing
    budget) too; the peer must then keep its own reserve out of what we pushed, so that is not
    receivable either. Not monotonic in ``capacity``: at each multiple of 100 sats both
    reserves grow by 1 sat while the capacity grows by 1, so the result dips by 1 sat there.
    """
    capacity = _require_non_negative("capacity", capacity)
    held_back = _require_non_negative("held_back", held_back)
    kept = kept_by_funder_sat(feerate_per_kw, hold_feerate_per_kw)
    stuck = kept + 2 * channel_reserve_sat(capacity) + held_back
    return max(capacity - stuck, 0)


def _least_inbound_from(
    capacity: int, feerate_per_kw: int, held_back: int, hold_feerate_per_kw: int = 0
) -> int:
    """The least usable inbound of any capacity >= ``capacity``.

    Usable inbound rises by 1 per sat except onto a multiple of 100 (where it drops by 1), and
    it is 98+ sats higher 100 sats later. So over [capacity, inf) its minimum is at
    ``capacity`` itself or at the next multiple of 100.
    """
    next_hundred = (capacity // 100 + 1) * 100
    return min(
        usable_inbound_for_capacity(capacity, feerate_per_kw, held_back, hold_feerate_per_kw),
        usable_inbound_for_capacity(next_hundred, feerate_per_kw, held_back, hold_feerate_per_kw),
    )


def liquidity_to_channel_size(
    liquidity: int,
    feerate_per_kw: int = ANCHOR_COMMITMENT_FEERATE_PER_KW,
    held_back: int = 0,
    hold_feerate_per_kw: int = 0,
) -> int:
    """The smallest capacity from which every capacity yields at least ``liquidity`` inbound.

    Inverts :func:`usable_inbound_for_capacity` (same feerate and hold-back) by exponential
    then binary search (about 50 evaluations, never a scan). Because usable inbound dips by 1
    sat at multiples of 100, we ask that every larger capacity also suffices (at most 2 sats
    more than the smallest single fit), so a caller that rounds the size up, e.g. to the
    minimum channel size, still gets the liquidity. Non-decreasing in ``liquidity``;
    ``liquidity <= 0`` gives 0. Not clamped to the channel limits: see
    :func:`clamp_channel_size`.
    """
    liquidity = _require_int("liquidity", liquidity)
    if liquidity <= 0:
        return 0
    too_small, big_enough = 0, 1  # usable inbound of 0 sats is 0 < liquidity
    args = (feerate_per_kw, held_back, hold_feerate_per_kw)
    while _least_inbound_from(big_enough, *args) < liquidity:
        too_small, big_enough = big_enough, big_enough * 2
    while big_enough - too_small > 1:
        middle = (too_small + big_enough) // 2
        if _least_inbound_from(middle, *args) >= liquidity:
            big_enough = middle
        else:
            too_small = middle
    return big_enough


def clamp_channel_size(
    capacity: int, *, min_channel: int = MIN_CHANNEL_SAT, max_channel: int = MAX_CHANNEL_SAT
) -> int:
    """``capacity`` moved into ``[min_channel, max_channel]``.

    Raising a size from :func:`liquidity_to_channel_size` keeps its liquidity; lowering it to
    ``max_channel`` loses some, which the caller must cover with more channels.
    """
    capacity = _require_non_negative("capacity", capacity)
    min_channel, max_channel = _channel_bounds(min_channel, max_channel)
    return min(max(capacity, min_channel), max_channel)


def _channel_bounds(min_channel: int, max_channel: int) -> tuple[int, int]:
    min_channel = _require_non_negative("min_channel", min_channel)
    max_channel = _require_non_negative("max_channel", max_channel)
    if min_channel > max_channel:
        raise MoneyError(f"min_channel {min_channel} is above max_channel {max_channel}")
    return min_channel, max_channel


def distribute_sats_over_channels(total: int, channels: int) -> list[int]:
    """Split ``total`` sats into ``channels`` parts that differ by at most 1, larger ones first.

    ``divmod(total, channels)``: every part gets the quotient and the first ``remainder`` parts
    one sat more, so the parts sum to ``total`` exactly. Zero channels can only hold zero sats
    (returns ``[]``); the caller decides how many channels a shortfall needs.
    """
    total = _require_non_negative("total", total)
    channels = _require_non_negative("channels", channels)
    if channels == 0:
        if total:
            raise MoneyError(f"cannot distribute {total} sats over 0 channels")
        return []
    share, remainder = divmod(total, channels)
    return [share + 1] * remainder + [share] * (channels - remainder)


# ---------------------------------------------------------------------------------------------
# On-chain costs and reserves
# ---------------------------------------------------------------------------------------------


def onchain_reserves_to_keep_for_channel(capacity: int, feerate: int) -> int:
    """On-chain sats to keep so the channel can still be force-closed and swept at ``feerate``.

    ``FORCE_CLOSE_VBYTES * feerate``: commitment tx + anchor CPFP child + to_local sweep, all
    paid at the given rate (sat/vB, below 1 counts as 1). Pass the rate you want to be able to
    close at, at least the current estimate. It does not depend on the capacity today (the
    channel's balance pays nothing up front in an anchor close); the argument is validated and
    kept so a capacity-dependent term can be added without touching callers.
    """
    _require_non_negative("capacity", capacity)
    return FORCE_CLOSE_VBYTES * _effective_feerate(feerate)


def channel_open_cost(capacity: int, feerate: int, inputs: int = FUNDING_TX_INPUTS) -> int:
    """On-chain sats an open spends: ``capacity + funding_tx_vbytes(inputs) * feerate``."""
    capacity = _require_non_negative("capacity", capacity)
    return capacity + funding_tx_vbytes(inputs) * _effective_feerate(feerate)


def funding_inputs(coins: Sequence[int], capacity: int, feerate: int) -> int:
    """How many of ``coins`` a funding tx of ``capacity`` spends: the fewest, largest first,
    that cover it and the fee of a tx with that many inputs (Electrum's coin chooser keeps the
    largest-first prefix of what it picks and penalises every input beyond the first). Never
    fewer than :data:`FUNDING_TX_INPUTS` (the priced default), all of them when nothing covers.
    """
    capacity = _require_non_negative("capacity", capacity)
    rate = _effective_feerate(feerate)
    total, inputs = 0, 0
    for inputs, amount in enumerate(sorted(coins, reverse=True), 1):
        total += _require_non_negative("coin", amount)
        if total >= capacity + funding_tx_vbytes(inputs) * rate:
            break
    return max(inputs, FUNDING_TX_INPUTS)


def close_reserves_for_channels(capacities: Sequence[int], feerate: int) -> int:
    """Sum of :func:`onchain_reserves_to_keep_for_channel` over ``capacities``."""
    return sum(onchain_reserves_to_keep_for_channel(c, feerate) for c in capacities)


def plan_cost(capacities: Sequence[int], feerate: int, coins: Sequence[int] | None = None) -> int:
    """On-chain sats a plan of new channels needs: open cost plus close reserve of each.

    Without ``coins`` each funding tx is priced at :data:`FUNDING_TX_INPUTS` inputs. With the
    wallet's coins (sats, as ``listunspent`` has them), each open in turn spends the inputs
    :func:`funding_inputs` says, and its change is a coin for the next (spent last: it is
    unconfirmed, and Electrum prefers confirmed coins).
    """
    rate = _effective_feerate(feerate)
    pool = None if coins is None else sorted(coins, reverse=True)
    cost = 0
    for capacity in capacities:
        inputs = FUNDING_TX_INPUTS
        if pool is not None:
            inputs = funding_inputs(pool, capacity, rate)
            used, pool = pool[:inputs], pool[inputs:]
            change = sum(used) - capacity - funding_tx_vbytes(inputs) * rate
            if change > DUST_LIMIT_SAT:
                pool.append(change)
        cost += channel_open_cost(capacity, rate, inputs)
        cost += onchain_reserves_to_keep_for_channel(capacity, rate)
    return cost


def sats_to_max_channel_size(
    spendable: int,
    feerate: int,
    *,
    max_channel: int = MAX_CHANNEL_SAT,
    min_channel: int = MIN_CHANNEL_SAT,
    coins: Sequence[int] | None = None,
) -> int:
    """The largest capacity ``C <= max_channel`` that ``spendable`` sats can open and reserve for.

    Largest ``C`` with ``channel_open_cost(C) + onchain_reserves_to_keep_for_channel(C)
    <= spendable``, found by binary search over ``[min_channel, max_channel]`` (the cost grows
    with ``C``), or 0 when even ``min_channel`` does not fit (including negative budgets).
    ``coins`` price the funding tx from the wallet's real inputs (:func:`plan_cost`).
    """
    spendable = _require_int("spendable", spendable)
    min_channel, max_channel = _channel_bounds(min_channel, max_channel)
    rate = _effective_feerate(feerate)

    def fits(capacity: int) -> bool:
        return plan_cost([capacity], rate, coins) <= spendable

    if not fits(min_channel):
        return 0
    if fits(max_channel):
        return max_channel
    fitting, too_big = min_channel, max_channel
    while too_big - fitting > 1:
        middle = (fitting + too_big) // 2
        if fits(middle):
            fitting = middle
        else:
            too_big = middle
    return fitting


def safe_to_spend(
    onchain_confirmed: int,
    channel_capacities: Sequence[int],
    feerate: int,
    extra_reserve: int = 0,
) -> int:
    """Confirmed on-chain sats not needed to close the existing channels: floored at 0.

    ``max(0, onchain_confirmed - close_reserves_for_channels(...) - extra_reserve)``. Pass the
    capacities of every channel not yet closed, pending opens included.
    """
    onchain_confirmed = _require_int("onchain_confirmed", onchain_confirmed)
    extra_reserve = _require_non_negative("extra_reserve", extra_reserve)
    reserves = close_reserves_for_channels(channel_capacities, feerate)
    return max(onchain_confirmed - reserves - extra_reserve, 0)


def topup_amount(
    planned_capacities: Sequence[int],
    onchain_available: int,
    existing_channel_capacities: Sequence[int],
    feerate: int,
    extra_reserve: int = 0,
    coins: Sequence[int] | None = None,
) -> int:
    """Sats the merchant must send so the planned channels and every reserve can be funded.

    ``max(0, plan_cost(planned) + close reserves of existing + extra_reserve -
    onchain_available)``: the least amount after which
    ``safe_to_spend(onchain_available + topup, existing, ...) >= plan_cost(planned)``.
    Opens already under way belong in ``existing_channel_capacities`` (their funds are spent),
    never in the plan, or the merchant is asked twice for them. With the wallet's ``coins``
    the funding txs are priced from its real inputs, the top-up itself one more coin.
    """
    onchain_available = _require_int("onchain_available", onchain_available)
    extra_reserve = _require_non_negative("extra_reserve", extra_reserve)
    kept = close_reserves_for_channels(existing_channel_capacities, feerate) + extra_reserve
    topup = max(plan_cost(planned_capacities, feerate) + kept - onchain_available, 0)
    if coins is None:
        return topup
    if plan_cost(planned_capacities, feerate, coins) + kept <= onchain_available:
        return 0
    # The top-up arrives as one more coin: price the funding txs from the coins with it, and
    # grow it until it covers them (a bigger coin never needs more inputs).
    topup = max(topup, 1)
    for _ in range(16):
        cost = plan_cost(planned_capacities, feerate, [*coins, topup])
        needed = max(cost + kept - onchain_available, 0)
        if needed <= topup:
            return topup if needed > 0 else 0
        topup = needed
    return topup


# ---------------------------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------------------------

# Plain decimals with an optional exponent (str(Decimal) can give "1E-8"); ASCII digits only.
_BTC_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_MAX_MONEY_BTC = Decimal(MAX_MONEY_SAT // SATS_PER_BTC)


def btc_to_sats(value: str | int | Decimal) -> int:
    """Exact sats in a BTC amount: ``"0.29"`` -> 29_000_000, ``"0.00010000"`` -> 10_000.

    Accepts a decimal string (surrounding spaces, sign and exponent allowed), a ``Decimal`` or
    an ``int`` of whole BTC. Negative amounts are allowed (histories carry outgoing amounts).
    Raises ``TypeError`` for floats (inexact) and bools, and :class:`MoneyError` for malformed
    text, NaN/Infinity, more than 21M BTC, or a fraction of a sat (trailing zeros past 8
    decimals are fine: ``"0.290000000"`` is exact).
    """
    amount = _to_decimal(value)
    if not amount.is_finite():
        raise MoneyError(f"not a finite BTC amount: {value!r}")
    if amount.copy_abs() > _MAX_MONEY_BTC:  # comparisons are exact; abs() would round
        raise MoneyError(f"BTC amount beyond the 21M supply: {value!r}")
    sign, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int):  # only NaN/Infinity have a str exponent
        raise MoneyError(f"not a finite BTC amount: {value!r}")
    # Drop trailing zeros so only real precision beyond 8 decimals counts as a fraction.
    significant = len(digits)
    while significant > 1 and digits[significant - 1] == 0:
        significant -= 1
    exponent += len(digits) - significant
    coefficient = int("".join(map(str, digits[:significant])))
    if coefficient == 0:
        return 0
    if exponent < -8:
        raise MoneyError(f"BTC amount has a fraction of a sat: {value!r}")
    sats = coefficient * 10 ** (exponent + 8)
    return -sats if sign else sats


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, bool):
        raise TypeError(f"a bool is not a BTC amount: {value!r}")
    if isinstance(value, float):
        raise TypeError(f"floats are refused to keep money exact; pass a str or Decimal: {value!r}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        text = value.strip()
        if not _BTC_TEXT.fullmatch(text):
            raise MoneyError(f"not a BTC amount: {value!r}")
        return Decimal(text)
    raise TypeError(f"a BTC amount must be str, int or Decimal, got {type(value).__name__}")


def sats_to_btc(sats: int) -> Decimal:
    """``sats`` as BTC, exactly, with 8 decimal places (``Decimal("0.00010000")``).

    Built from the digits with exponent -8, so no decimal context can round it.
    """
    sats = _require_int("sats", sats)
    digits = tuple(int(d) for d in str(abs(sats)))
    return Decimal((1 if sats < 0 else 0, digits, -8))


def format_btc(sats: int) -> str:
    """``sats`` as a BTC string with 8 decimals and no exponent: 10_000 -> ``"0.00010000"``."""
    return format(sats_to_btc(sats), "f")


def sat_to_msat(sats: int) -> int:
    """Sats to millisats: ``sats * 1000``."""
    return _require_int("sats", sats) * 1000


def msat_to_sat_floor(msat: int) -> int:
    """Millisats to whole sats, rounded down (``msat // 1000``; -1500 -> -2)."""
    return _require_int("msat", msat) // 1000
