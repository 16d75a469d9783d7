"""Operator controls: pause and resume one store's actions, retry ends back-offs."""

from __future__ import annotations

from pathlib import Path

from liquidityhelper.controls import run_control
from liquidityhelper.journal import Kind
from tests.scenario import scenario
from tests.test_scenarios import fund_and_open


async def test_pause_stops_one_store_and_resume_restarts_it(tmp_path: Path) -> None:
    async with scenario(tmp_path) as sc:
        other_store = sc.sim.create_store(sc.token, "Other shop")
        other_wallet = sc.sim.create_wallet(sc.token, store_ids=[other_store])
        backend = sc.runtime.backends[0]
        assert run_control(sc.settings, "pause", sc.store_id) == 0
        await sc.cycle()
        assert await backend.list_store_invoices(sc.store_id) == []  # paused: no top-up asked
        assert len(await backend.list_store_invoices(other_store)) == 1  # the other goes on
        assert sc.daemon.journal.entries(sc.wallet_id, Kind.TOPUP_INVOICE) == []
        assert len(sc.daemon.journal.entries(other_wallet, Kind.TOPUP_INVOICE)) == 1

        assert run_control(sc.settings, "resume", sc.store_id) == 0
        await sc.cycle()
        assert len(await backend.list_store_invoices(sc.store_id)) == 1
        assert run_control(sc.settings, "resume", sc.store_id) == 1  # not paused any more


async def test_a_paused_wallet_pays_nothing_and_status_says_so(tmp_path: Path) -> None:
    from liquidityhelper.status import collect

    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)
        run_control(sc.settings, "pause", sc.wallet_id)
        await sc.cycle()
        assert sc.daemon.journal.entries(sc.wallet_id, Kind.CASHOUT) == []
        statuses, _ = await collect(sc.daemon)
        assert statuses[0].reasons["cashouts"].startswith(f"paused {sc.wallet_id} since ")


async def test_retry_ends_the_back_offs(tmp_path: Path) -> None:
    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)
        sc.sim.payment_faults.push(*["fail"] * 8)
        await sc.cycle()
        assert sc.daemon.backoff_until("cashout", sc.wallet_id) is not None
        assert run_control(sc.settings, "retry", None) == 0
        assert sc.daemon.backoff_until("cashout", sc.wallet_id) is None
