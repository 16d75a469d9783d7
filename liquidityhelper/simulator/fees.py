"""On-chain fee estimates as the daemon's Electrum holds them (``electrum/fee_policy.py``).

Electrum asks its server for an estimate per confirmation target and keeps what it gets:
a target the server cannot estimate is simply missing (a fresh regtest Bitcoin Core has
none at all). Lookups clamp to Electrum's hard limits; on regtest a missing estimate reads
as the hard-coded 150 sat/vB, elsewhere as None. Rates are int sat/kvB, as on the wire.
"""

from __future__ import annotations

from decimal import ROUND_HALF_DOWN, ROUND_HALF_EVEN, Decimal

# Targets Electrum requests, most patient first; 1 is never requested, it is derived from 2.
FEE_ETA_TARGETS = (1008, 144, 25, 10, 5, 2, 1)
REQUESTED_TARGETS = FEE_ETA_TARGETS[:-1]
FEERATE_MAX_DYNAMIC = 1_500_000
FEERATE_FALLBACK_STATIC_FEE = 150_000  # also the regtest stand-in for a missing estimate
FEERATE_DEFAULT_RELAY = 1_000
# The policy Electrum funds transactions with (config ``fee_policy``, "eta:2").
FUNDING_TARGET = 2


class FeeEstimates:
    """Electrum's ``FeeTimeEstimates``: what the server said, per target, in sat/kvB."""

    def __init__(self, regtest: bool) -> None:
        self.regtest = regtest
        self.data: dict[int, int] = {}

    def set_all(self, sat_per_vb: int | None) -> None:
        """One rate for every requested target; None: the server can estimate nothing."""
        self.data = (
            {} if sat_per_vb is None else dict.fromkeys(REQUESTED_TARGETS, sat_per_vb * 1000)
        )

    def set_targets(self, rates_sat_per_kvb: dict[int, int | None]) -> None:
        """Per-target answers; None drops the target (the server answered -1)."""
        for target, rate in rates_sat_per_kvb.items():
            if target not in REQUESTED_TARGETS:
                raise ValueError(f"Electrum never requests target {target}")
            if rate is None:
                self.data.pop(target, None)
            else:
                self.data[target] = int(rate)

    def get_data(self) -> dict[int, int]:
        """``getinfo``'s ``fee_estimates``: raw, unclamped, in the order Electrum requests."""
        return {t: self.data[t] for t in REQUESTED_TARGETS if t in self.data}

    def eta_target_to_fee(self, target: object) -> int | None:
        """Electrum's ``eta_target_to_fee`` (Bitcart's ``recommended_fee`` returns it as is).

        Any key is looked up as given, so a target Electrum does not request (3, "2") misses;
        a miss is the regtest fallback on regtest and None elsewhere.
        """
        fee: int | None
        if target == 1:
            # "next block" is not asked for: Electrum takes the 2-block estimate plus half.
            base = self.data.get(2)
            fee = None if base is None else base + base // 2
        else:
            # An unhashable target (a list) raises TypeError here, as in Electrum.
            fee = self.data.get(target)  # type: ignore[call-overload]
        if fee is None and self.regtest:
            fee = FEERATE_FALLBACK_STATIC_FEE
        if fee is None:
            return None
        return max(FEERATE_DEFAULT_RELAY, min(FEERATE_MAX_DYNAMIC, fee))

    def funding_rate(self) -> int | None:
        """The rate for the wallet's own transactions (policy eta:2); None: no estimate."""
        return self.eta_target_to_fee(FUNDING_TARGET)


def fee_for_vbytes(rate_sat_per_kvb: int, vbytes: int) -> int:
    """Electrum's ``estimate_fee_for_feerate``: sat/vB kept to 0.1, times size, rounded."""
    per_vb = (Decimal(rate_sat_per_kvb) / 1000).quantize(Decimal("0.1"), rounding=ROUND_HALF_DOWN)
    return int((per_vb * vbytes).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def fee_tooltip(rate_sat_per_kvb: int) -> str:
    """Electrum's ``format_fee_satoshis`` of the rate in sat/vB: ``"31. sat/vbyte"``,
    ``"7.5 sat/vbyte"`` (0.1 precision, trailing zeros dropped, the dot kept)."""
    per_vb = (Decimal(rate_sat_per_kvb) / 1000).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)
    return f"{per_vb:.1f}".rstrip("0") + " sat/vbyte"
