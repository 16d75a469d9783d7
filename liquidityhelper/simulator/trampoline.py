"""Trampoline fees as Electrum 4.6 pays them (``electrum/trampoline.py``, ``lnworker.py``).

Electrum cannot know what a trampoline charges, so it offers a share of the payment's fee
budget: at fee level L (1 to 6) the trampoline hop gets ``budget // 2**(6 - L)``. A payment
starts at level 1 (config ``initial_trampoline_fee_level``) and moves one level up each
time the trampoline answers TRAMPOLINE_FEE_INSUFFICIENT; past level 6 it gives up
("highest trampoline fee level reached"). A trampoline takes the payment when the offer
covers what forwarding costs it; Electrum's own forwarder refuses anything under 1 sat.
"""

from __future__ import annotations

from collections.abc import Iterator

from liquidityhelper.simulator.entities import NetworkNode

INITIAL_TRAMPOLINE_FEE_LEVEL = 1
MAX_TRAMPOLINE_FEE_LEVEL = 6
ELECTRUM_FORWARDER_MIN_FEE_MSAT = 1_000  # lnpeer: budget.fee_msat < 1000 -> insufficient
FEE_INSUFFICIENT = "TRAMPOLINE_FEE_INSUFFICIENT"


def level_fee_msat(budget_msat: int, level: int) -> int:
    """What Electrum offers the trampoline at ``level`` (``_allocate_fee_along_route``)."""
    if level == 0:
        return 0
    return budget_msat // 2 ** (MAX_TRAMPOLINE_FEE_LEVEL - level)


def offers(budget_msat: int) -> Iterator[tuple[int, int]]:
    """(level, fee) in the order Electrum tries them."""
    for level in range(INITIAL_TRAMPOLINE_FEE_LEVEL, MAX_TRAMPOLINE_FEE_LEVEL + 1):
        yield level, level_fee_msat(budget_msat, level)


def required_fee_msat(node: NetworkNode, amount_msat: int) -> int:
    """The least fee ``node`` forwards ``amount_msat`` for."""
    fee = node.fee_base_msat + amount_msat * node.fee_ppm // 1_000_000
    if node.kind == "electrum":
        fee = max(fee, ELECTRUM_FORWARDER_MIN_FEE_MSAT)
    return fee
