"""Issue 13: top-up invoices a merchant can pay without risk, through the real daemon.

One live invoice per managed wallet, payable only into that wallet; superseded or unneeded
ones are marked invalid in Bitcart; a Lightning-paid top-up is reported once; a dry run
creates and cancels nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liquidityhelper.journal import Kind
from liquidityhelper.logs import configure_logging
from liquidityhelper.simulator import SimError
from tests.scenario import Scenario, scenario
from tests.test_scenarios import fund_and_open


async def _topups(sc: Scenario, store_id: str | None = None) -> list:  # type: ignore[type-arg]
    invoices = await sc.runtime.backends[0].list_store_invoices(store_id or sc.store_id)
    return [i for i in invoices if i.metadata.get("liquidityhelper") == "topup"]


async def test_a_wandering_fee_estimate_leaves_one_pending_invoice(tmp_path: Path) -> None:
    """10 -> 11 -> 10 -> 12 sat/vB used to leave a pending invoice per amount, each payable."""
    async with scenario(tmp_path) as sc:
        rates = [10, 11, 10, 12, 14, 9, 10, 30, 5, 11] * 2
        for rate in rates:
            sc.sim.set_fee_rate(rate)
            sc.clock.advance(hours=6, seconds=1)  # a reminder each time
            await sc.cycle()
            pending = [i for i in await _topups(sc) if i.status == "pending"]
            assert len(pending) == 1, [(i.id, i.price) for i in pending]
        invalidated = sc.daemon.journal.entries(sc.wallet_id, Kind.TOPUP_INVALIDATED)
        created = sc.daemon.journal.entries(sc.wallet_id, Kind.TOPUP_INVOICE)
        statuses = {i.id: i.status for i in await _topups(sc)}
        assert {e.reference for e in created} == set(statuses)
        assert {e.reference for e in invalidated} == {
            k for k, v in statuses.items() if v == "invalid"
        }
        # The rest expired on their own (24 h) or is the one live invoice.
        assert sorted(set(statuses.values())) == ["expired", "invalid", "pending"]
        assert len(created) < len(rates)  # small moves reuse the invoice (10 % tolerance)


async def test_the_invoice_can_be_paid_only_into_the_managed_wallet(tmp_path: Path) -> None:
    """A store with a `main` wallet: Bitcart offered main's address first; paid that way the
    invoice completed while the managed wallet still held nothing."""
    async with scenario(tmp_path) as sc:
        main = sc.sim.create_wallet(sc.token, "main", store_ids=[sc.store_id])
        await sc.cycle()
        [invoice] = await _topups(sc)
        assert {p.wallet_id for p in invoice.payments} == {sc.wallet_id}
        assert invoice.payment_methods == (sc.wallet_id,)
        with pytest.raises(SimError):
            sc.sim.customer_pay(invoice.id, lightning=False, wallet_id=main)
        # The address the WARNING and status give is the managed wallet's.
        address = invoice.onchain_address(sc.wallet_id)
        assert address and address in {
            p.address for p in invoice.payments if p.wallet_id == sc.wallet_id
        }


async def test_a_shared_wallet_gets_one_invoice_and_its_other_store_points_to_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "json")
    async with scenario(tmp_path, stores=2) as sc:
        await sc.cycle()
        stores = sc.daemon.fetch_snapshot
        snapshot = await stores()
        [store_a, store_b] = snapshot.wallets[sc.wallet_id].store_ids
        assert len(await _topups(sc, store_a)) == 1
        assert await _topups(sc, store_b) == []
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    shown = {w["store"]: w for w in lines if w["event"] == "topup_needed"}
    invoice = shown[store_a]["invoice"]
    assert shown[store_b]["invoice"] == invoice and shown[store_b]["invoice_store"] == store_a
    assert shown[store_a]["address"].startswith("bcrt1")


async def test_an_unneeded_invoice_is_marked_invalid(tmp_path: Path) -> None:
    """The merchant sent the sats another way: the invoice must not be paid on top."""
    async with scenario(tmp_path) as sc:
        await sc.cycle()
        [invoice] = await _topups(sc)
        sc.sim.fund_wallet(sc.wallet_id, 2_000_000)
        await sc.sim.mine(1)
        await sc.cycle()
        [after] = await _topups(sc)
        assert after.id == invoice.id and after.status == "invalid"
        [entry] = sc.daemon.journal.entries(sc.wallet_id, Kind.TOPUP_INVALIDATED)
        assert entry.reference == invoice.id and entry.detail == "not_needed"


async def test_a_lightning_paid_topup_is_reported_once_and_asks_no_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bitcart also offers the managed wallet's ⚡ method: those sats land in a channel and
    the next cashout sends them back, so the same top-up is still due, and no more."""
    configure_logging("INFO", "json")
    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)
        await sc.cycle()  # a cashout makes room to receive over Lightning
        # A third, smaller channel: a top-up one channel of ours can receive over Lightning.
        settings = sc.settings.model_copy(
            update={"min_channel_count": 3, "min_channel_size": 100_000}
        )
        sc.daemon.settings = settings
        await sc.cycle()
        [invoice] = [i for i in await _topups(sc) if i.status == "pending"]
        asked = int(invoice.metadata["amount_sat"])
        sc.sim.customer_pay(invoice.id, lightning=True)
        for _ in range(3):
            sc.clock.advance(hours=6, seconds=1)
            await sc.cycle()
        pending = [i for i in await _topups(sc) if i.status == "pending"]
        assert len(pending) == 1 and int(pending[0].metadata["amount_sat"]) <= asked
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    reported = [w for w in lines if w["event"] == "topup_paid_over_lightning"]
    assert len(reported) == 1 and reported[0]["invoice"] == invoice.id
    assert "must be paid on-chain" in reported[0]["note"]


async def test_dry_run_creates_and_cancels_no_invoice(tmp_path: Path) -> None:
    """Today a change that lets a dry run create top-up invoices passes every test."""
    async with scenario(tmp_path) as sc:
        await sc.cycle()  # a real cycle: one invoice exists
        before = {i.id: i.status for i in await _topups(sc)}
        settings = sc.settings.model_copy(update={"dry_run": True})
        sc.daemon.settings = settings
        for rate in (5, 30, 12):  # each amount would need another invoice
            sc.sim.set_fee_rate(rate)
            sc.clock.advance(hours=6, seconds=1)
            await sc.cycle()
        sc.sim.fund_wallet(sc.wallet_id, 2_000_000)  # ... and now none is needed
        await sc.sim.mine(1)
        await sc.cycle()
        assert {i.id: i.status for i in await _topups(sc)} == before
