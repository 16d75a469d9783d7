"""Issue 11's cases, told through the real daemon against the simulator.

Each story was first seen against a real Bitcart and real Electrum peers (``tests/e2e``); the
simulator models the Electrum behaviour behind it from Electrum's source, and the daemon on its
defaults must end each story the way a careful operator would.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from liquidityhelper.journal import Kind
from tests.scenario import Scenario, scenario
from tests.test_scenarios import fund_and_open, settled_to


async def _opened(sc: Scenario) -> int:
    return len(sc.daemon.journal.entries(sc.wallet_id, Kind.CHANNEL_OPEN))


async def test_a_peer_blip_opens_nothing_and_asks_nothing(tmp_path: Path) -> None:
    """lsp1 stopped for ~45 s: the old loop saw 0 inbound and invoiced a top-up."""
    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)
        await sc.cycle()  # the first cashout: the goal is met
        opens = await _opened(sc)
        backend = sc.runtime.backends[0]
        invoices = len(await backend.list_store_invoices(sc.store_id))
        peer = sc.sim.channels(sc.wallet_id)[0].peer_pubkey
        sc.sim.set_node_online(peer, False)
        for _ in range(2):  # two cycles inside the grace period
            sc.clock.advance(minutes=5)
            await sc.cycle()
        assert await _opened(sc) == opens, "a blip opened a channel"
        assert len(await backend.list_store_invoices(sc.store_id)) == invoices, (
            "a blip invoiced a top-up"
        )
        sc.sim.set_node_online(peer, True)
        sc.clock.advance(minutes=5)
        await sc.cycle()
        assert await _opened(sc) == opens


async def test_a_peer_gone_past_the_grace_period_is_replaced(tmp_path: Path) -> None:
    """Hysteresis, not blindness: a peer offline longer than the grace period stops counting."""
    async with scenario(tmp_path, peer_offline_grace_seconds=600) as sc:
        await fund_and_open(sc)
        await sc.cycle()
        opens = await _opened(sc)
        peer = sc.sim.channels(sc.wallet_id)[0].peer_pubkey
        sc.sim.set_node_online(peer, False)
        await sc.cycle()  # seen offline now: still counted
        assert await _opened(sc) == opens
        sc.clock.advance(seconds=601)
        sc.sim.fund_wallet(sc.wallet_id, 1_000_000)
        await sc.cycle()
        assert await _opened(sc) > opens, "a peer gone for good was never replaced"


async def test_a_fee_too_small_for_a_real_route_waits_without_backing_off(
    tmp_path: Path,
) -> None:
    """A 100-sat fee cannot carry a 1,000-3,125 msat trampoline fee under a 5,000 ppm cap
    (500 msat): the old loop tried, failed and backed off for an hour, every time."""
    async with scenario(
        tmp_path,
        fee_rate=Decimal("0.01"),
        fee_start_date="2020-01-01",
        min_fee_payment_sat=100,
        fee_lightning_address="operator@127.0.0.1",
    ) as sc:
        operator = sc.sim.add_lightning_address("operator")
        sc.daemon.settings = sc.daemon.executor.settings = sc.daemon.fees.settings = (
            sc.settings.model_copy(update={"fee_lightning_address": operator})
        )
        await fund_and_open(sc)
        await sc.cycle()
        invoice = sc.sim.create_invoice(sc.store_id, "0.0001", currency="BTC")  # 100 sat fee
        sc.sim.customer_pay(invoice, lightning=True)
        for _ in range(3):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        assert settled_to(sc, operator) == []
        assert sc.daemon.journal.entries(sc.wallet_id, Kind.FEE_PAYMENT) == []
        assert sc.daemon.backoff_until("fee_payment", sc.wallet_id) is None
        # Once the fee due is big enough for a route it goes out, in one payment.
        invoice = sc.sim.create_invoice(sc.store_id, "0.001", currency="BTC")
        sc.sim.customer_pay(invoice, lightning=True)
        for _ in range(3):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        assert settled_to(sc, operator) == [1_100]
