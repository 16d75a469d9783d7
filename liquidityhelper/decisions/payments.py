"""Cashouts and fee payments: how many sats can really leave, and how many are owed.

Sendable = balance above the channel reserve and a commitment-fee allowance, only on channels
that can send (live; in trampoline mode, to a trampoline). One payment goes through one
channel, so a cashout is also capped by the best single channel. The routing-fee budget is the
absolute cap (``max_routing_fee_sat``), reserved in full so a payment and its fee always fit.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from liquidityhelper.actions import Decision, PayLightningAddress, Skip
from liquidityhelper.config import Settings
from liquidityhelper.snapshot import WalletSnapshot


def routing_fee_cap_msat(amount_sat: int, max_fee_sat: int, max_fee_ppm: int) -> int:
    """The most a payment of ``amount_sat`` may pay in routing fees: both caps hold."""
    # amount_msat * ppm / 1e6 == amount_sat * ppm / 1e3
    return min(max_fee_sat * 1000, amount_sat * max_fee_ppm // 1000)


def least_amount_for_routing(settings: Settings) -> int:
    """The smallest payment (sats) whose routing-fee cap reaches ``routing_fee_floor_msat``.

    Below it no real route fits the cap (trampoline fees are 1,000-3,125 msat), so such a
    payment cannot succeed: it waits until it is bigger instead of failing and backing off.
    """
    floor = settings.routing_fee_floor_msat
    if floor <= 0:
        return 1
    if settings.max_routing_fee_sat * 1000 < floor or settings.max_routing_fee_ppm == 0:
        return 0  # no amount can ever fit: the caps themselves are below the floor
    # amount * ppm // 1000 >= floor  <=>  amount >= ceil(floor * 1000 / ppm)
    return -(-floor * 1000 // settings.max_routing_fee_ppm)


def fee_due_sat(
    revenue_sat: int,
    fee_rate: Decimal,
    fees_paid_sat: int,
    network_fees_sat: int = 0,
) -> int:
    """``floor(fee_rate × revenue) − fees already paid − network fees deducted``, at least 0."""
    owed = int((Decimal(revenue_sat) * fee_rate).to_integral_value(rounding=ROUND_FLOOR))
    return max(0, owed - fees_paid_sat - network_fees_sat)


def decide_cashout(
    snap: WalletSnapshot,
    settings: Settings,
    *,
    fee_due: int,
    backoff_until: datetime | None,
    now: datetime,
) -> list[Decision]:
    section, wid = "cashouts", snap.wallet_id
    address = settings.cashout_lightning_address
    if address is None:
        return [Skip(section, wid, "no_cashout_address", {})]
    if backoff_until is not None and now < backoff_until:
        return [Skip(section, wid, "backing_off", {"until": backoff_until.isoformat()})]
    cashable = snap.cashable_sats()
    total, single = sum(cashable), max(cashable, default=0)
    second = cashable[1] if len(cashable) > 1 else 0
    budget = settings.max_routing_fee_sat
    # Leave the fee due (and its own routing budget) behind for the fee payment. A payment
    # goes through one channel: the fee can follow from the second-best channel when that one
    # holds it, else the cashout leaves it in the best one.
    held_for_fee = fee_due + budget if fee_due > 0 and settings.fees_enabled else 0
    amount = (single if second >= held_for_fee else single - held_for_fee) - budget
    numbers = {
        "sendable_sat": total,
        "best_channel_sat": single,
        "fee_due_sat": fee_due,
        "held_for_fee_sat": held_for_fee,
        "routing_budget_sat": budget,
        "min_cashout_sat": settings.min_cashout_sat,
    }
    least = max(settings.min_cashout_sat, least_amount_for_routing(settings))
    if amount < least:
        return [Skip(section, wid, "below_min_cashout", {**numbers, "amount_sat": max(0, amount)})]
    return [PayLightningAddress("cashout", wid, address, amount, least, numbers)]


def decide_fee_payment(
    snap: WalletSnapshot,
    settings: Settings,
    *,
    fee_due: int,
    numbers: dict[str, int],
    backoff_until: datetime | None,
    now: datetime,
) -> list[Decision]:
    section, wid = "fee_payments", snap.wallet_id
    if settings.fee_rate == 0:
        return [Skip(section, wid, "fees_off", {"fee_rate": str(settings.fee_rate)})]
    if settings.fee_lightning_address is None:
        return [Skip(section, wid, "no_fee_address", {})]
    numbers = {
        **numbers,
        "fee_due_sat": fee_due,
        "min_fee_payment_sat": settings.min_fee_payment_sat,
    }
    if fee_due < settings.min_fee_payment_sat:
        return [Skip(section, wid, "fee_below_min", numbers)]
    least = least_amount_for_routing(settings)
    if least == 0:
        return [
            Skip(
                section,
                wid,
                "routing_caps_below_floor",
                {
                    **numbers,
                    "max_routing_fee_sat": settings.max_routing_fee_sat,
                    "max_routing_fee_ppm": settings.max_routing_fee_ppm,
                    "routing_fee_floor_msat": settings.routing_fee_floor_msat,
                },
            )
        ]
    if fee_due < least:
        # Too small for any real route under the caps: let it grow, no back-off.
        return [
            Skip(
                section,
                wid,
                "fee_below_routing_floor",
                {**numbers, "least_payable_sat": least},
            )
        ]
    if backoff_until is not None and now < backoff_until:
        return [Skip(section, wid, "backing_off", {"until": backoff_until.isoformat()})]
    cashable = snap.cashable_sats()
    total, single = sum(cashable), max(cashable, default=0)
    available = single - settings.max_routing_fee_sat
    amount = min(fee_due, available)
    if amount < max(settings.min_fee_payment_sat, least):
        return [
            Skip(
                section,
                wid,
                "insufficient_outbound",
                {**numbers, "sendable_sat": total, "best_channel_sat": single},
            )
        ]
    return [
        PayLightningAddress(
            "fee_payment",
            wid,
            settings.fee_lightning_address,
            amount,
            max(settings.min_fee_payment_sat, least),
            numbers,
        )
    ]
