"""A channel's commitment feerate and what each side can send, as Electrum computes them.

From ``electrum/lnutil.py`` (weights, commitment fees), ``lnworker.py``
(``current_target_feerate_per_kw``), ``lnpeer.py`` (``maybe_update_fee``) and
``lnchannel.py`` (``available_to_spend``, ``update_fee``). Every channel here is an
anchor channel (``option_anchors_zero_fee_htlc_tx``), as Electrum 4.6 opens them, so an
HTLC transaction costs nothing extra and an HTLC is trimmed only below the dust limit.
Feerates are int sat/kw, balances int msat.
"""

from __future__ import annotations

from dataclasses import dataclass

from liquidityhelper.simulator.fees import FeeEstimates

COMMITMENT_TX_WEIGHT_ANCHORS = 1124
HTLC_OUTPUT_WEIGHT = 172
FIXED_ANCHOR_SAT = 330
FEERATE_PER_KW_MIN_RELAY_LIGHTNING = 253
# Anchor channels follow the most patient estimate, with a floor of 5 sat/vB.
FEE_LN_MINIMUM_ETA_TARGET = 1008
ANCHOR_FEERATE_FLOOR_SAT_PER_KVB = 5_000
# Electrum's channel parameters for both sides (lnpeer.make_local_config).
MAX_ACCEPTED_HTLCS = 30
LOCAL, REMOTE = "local", "remote"


def current_target_feerate_per_kw(estimates: FeeEstimates) -> int | None:
    """The feerate Electrum wants for an anchor channel now; None without an estimate."""
    per_kvb = estimates.eta_target_to_fee(FEE_LN_MINIMUM_ETA_TARGET)
    if per_kvb is None:
        return None
    per_kvb = max(per_kvb, ANCHOR_FEERATE_FLOOR_SAT_PER_KVB)
    return max(FEERATE_PER_KW_MIN_RELAY_LIGHTNING, per_kvb // 4)


def proposed_feerate(chan_feerate: int, current: int, remote_ctn: int) -> int | None:
    """``maybe_update_fee`` for the initiator of an anchor channel: the new feerate, or None.

    Electrum keeps a 50% buffer over the estimate (channels sit at the low end and must not
    fall out of the mempool) and updates once half the buffer is used up or the feerate is
    more than 20% off; a channel that never updated (remote ctn 0) updates anyway.
    """
    update = current + current // 2  # int(current * 1.5)
    fee_increased = 5 * current > 4 * chan_feerate  # current + buffer/2 > chan_feerate
    changed_significantly = 5 * abs(chan_feerate - update) > chan_feerate  # > 20% off
    if fee_increased or changed_significantly:
        return update
    if remote_ctn == 0:
        # Works around an old eclair bug: bump the ctn with a (slightly different) update.
        return update + 1 if current == chan_feerate else update
    return None


def commit_fee_msat(feerate: int, num_htlcs: int) -> int:
    """``calc_fees_for_commitment_tx`` (unrounded), paid by the initiator."""
    return feerate * (COMMITMENT_TX_WEIGHT_ANCHORS + num_htlcs * HTLC_OUTPUT_WEIGHT)


def htlc_output_fee_msat(feerate: int) -> int:
    """``fee_for_htlc_output``: what one more HTLC output adds to the commitment."""
    return feerate * HTLC_OUTPUT_WEIGHT


@dataclass(frozen=True, slots=True)
class Side:
    """One party of a channel."""

    balance_msat: int  # settled, HTLCs in flight not yet taken off
    reserve_sat: int  # what this side must keep (the other side asked it)
    dust_limit_sat: int  # of this side's own commitment
    offered_htlcs_msat: tuple[int, ...] = ()  # HTLCs this side sent, still in flight
    max_htlc_in_flight_msat: int = 0  # incoming HTLC value this side accepts at once


@dataclass(frozen=True, slots=True)
class Terms:
    feerate: int
    local: Side
    remote: Side
    initiator: str  # LOCAL or REMOTE

    def side(self, who: str) -> Side:
        return self.local if who == LOCAL else self.remote

    def nondust_htlcs(self, ctx_owner: str) -> int:
        """HTLCs that get an output in ``ctx_owner``'s commitment (anchors: dust limit only)."""
        dust = self.side(ctx_owner).dust_limit_sat
        htlcs = self.local.offered_htlcs_msat + self.remote.offered_htlcs_msat
        return sum(1 for amount in htlcs if amount // 1000 >= dust)

    def all_htlcs(self) -> int:
        return len(self.local.offered_htlcs_msat) + len(self.remote.offered_htlcs_msat)


def _other(who: str) -> str:
    return REMOTE if who == LOCAL else LOCAL


def _consider_ctx(t: Terms, sender: str, ctx_owner: str, htlc_is_dust: bool) -> int:
    """The most ``sender`` can add as one HTLC, judged on ``ctx_owner``'s commitment."""
    receiver = _other(sender)
    s, r = t.side(sender), t.side(receiver)
    sender_balance = s.balance_msat - sum(s.offered_htlcs_msat)
    receiver_balance = r.balance_msat - sum(r.offered_htlcs_msat)
    num_htlcs = t.nondust_htlcs(ctx_owner)
    ctx_fee = commit_fee_msat(t.feerate, num_htlcs)
    htlc_fee = htlc_output_fee_msat(t.feerate)
    trim_threshold_msat = t.side(ctx_owner).dust_limit_sat * 1000

    max_send = sender_balance - s.reserve_sat * 1000
    if sender == t.initiator == LOCAL:
        # Fee spike buffer (BOLT PR 740): room for the feerate doubling with this HTLC and one
        # more on the commitment. Electrum can only hold itself to it, not the peer.
        extra = (0 if htlc_is_dust else 1) + 1
        max_send -= commit_fee_msat(2 * t.feerate, num_htlcs + extra)
    elif sender == t.initiator:
        max_send -= ctx_fee
    if sender == t.initiator:
        max_send -= 2 * FIXED_ANCHOR_SAT * 1000
    if htlc_is_dust:
        return min(max_send, trim_threshold_msat - 1)
    if sender == t.initiator:
        return max_send - htlc_fee
    # The receiver funds the commitment: it must afford the extra HTLC output.
    left = (
        receiver_balance - r.reserve_sat * 1000 - ctx_fee - htlc_fee - 2 * FIXED_ANCHOR_SAT * 1000
    )
    return 0 if left < 0 else max_send


def available_to_spend(t: Terms, sender: str) -> int:
    """Electrum's ``Channel.available_to_spend(sender)`` in msat (never negative)."""
    receiver = _other(sender)
    out = min(
        max(_consider_ctx(t, sender, receiver, True), _consider_ctx(t, sender, receiver, False)),
        max(_consider_ctx(t, sender, sender, True), _consider_ctx(t, sender, sender, False)),
    )
    # max_htlc_value_in_flight: sending from us, Electrum applies both sides' limits.
    limit = t.side(receiver).max_htlc_in_flight_msat
    if receiver == LOCAL:
        limit = min(limit, t.remote.max_htlc_in_flight_msat)
    out = min(out, limit - sum(t.side(sender).offered_htlcs_msat))
    # max_accepted_htlcs: strict (every HTLC on the commitment) for our own sends.
    in_use = t.all_htlcs() if sender == LOCAL else len(t.side(sender).offered_htlcs_msat)
    if MAX_ACCEPTED_HTLCS - in_use <= 0:
        out = 0
    return max(out, 0)


def can_afford_feerate(t: Terms, feerate: int) -> bool:
    """``update_fee``'s check: the initiator keeps its reserve at the new feerate."""
    payer = t.side(t.initiator)
    receiver = _other(t.initiator)
    num_htlcs = Terms(feerate, t.local, t.remote, t.initiator).nondust_htlcs(receiver)
    fee = commit_fee_msat(feerate, num_htlcs) // 1000 * 1000  # rounded down to the sat
    balance = payer.balance_msat - sum(payer.offered_htlcs_msat)
    return balance - payer.reserve_sat * 1000 - fee >= 0
