"""Intended actions (what a decision wants done) and skips (why nothing is done).

Decisions are pure functions returning these; the executor performs actions and logs skips.
Every field that is an amount is an int of sats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Skip:
    """Nothing to do for a wallet or store, and why: a short reason code with its numbers."""

    section: str
    wallet_id: str | None
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)
    store_id: str | None = None


@dataclass(frozen=True, slots=True)
class OpenChannel:
    wallet_id: str
    pubkey: str
    connection_string: str
    capacity_sat: int
    reason: str  # "need_liquidity" or "spare_funds"
    fee_rate: int
    # Spare on-chain sats left after this plan's opens and reserves; a failed open with a thin
    # margin is more likely our funds (more inputs than assumed) than the peer's fault.
    margin_sat: int | None = None


@dataclass(frozen=True, slots=True)
class ShowTopup:
    wallet_id: str
    store_id: str
    amount_sat: int
    make_invoice: bool  # one invoice per wallet, in its first store
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PayLightningAddress:
    kind: str  # "cashout" or "fee_payment"
    wallet_id: str
    address: str
    amount_sat: int
    min_amount_sat: int  # step down to here on failure
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CloseChannel:
    wallet_id: str
    channel_point: str
    pubkey: str | None
    reason: str


Action = OpenChannel | ShowTopup | PayLightningAddress | CloseChannel
Decision = Action | Skip
