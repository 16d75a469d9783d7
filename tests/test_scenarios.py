"""The liquidity loop against the simulator over loopback, amounts to the sat."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from liquidityhelper import common_functions as cf
from liquidityhelper.journal import Kind, Status
from liquidityhelper.main import Daemon
from liquidityhelper.simulator import Simulator
from liquidityhelper.wallet.base import ChannelState, WalletBackend
from tests.scenario import Scenario, scenario, use_operator


def topup_invoice(sc: Scenario, store_id: str | None = None) -> str:
    state = sc.daemon.journal.get_state(f"topup:{store_id or sc.store_id}")
    assert state and state["invoice_id"], "no top-up invoice recorded"
    return str(state["invoice_id"])


def settled_to(sc: Scenario, address: str) -> list[int]:
    return [p.amount_msat // 1000 for p in sc.sim.payments_to(address)]


async def fund_and_open(sc: Scenario) -> None:
    await sc.cycle()  # top-up shown and invoiced
    sc.sim.customer_pay(topup_invoice(sc), lightning=False)
    await sc.sim.mine(1)
    await sc.cycle()  # channels opened
    await sc.sim.mine(3)


async def test_fresh_wallet_to_fee_paid_once(tmp_path: Path) -> None:
    async with scenario(
        tmp_path,
        fee_rate=Decimal("0.01"),
        fee_start_date="2020-01-01",
        min_fee_payment_sat=100,
        fee_lightning_address="operator@127.0.0.1",
    ) as sc:
        operator = use_operator(sc)

        # 1. Fresh wallet: the exact top-up is shown and invoiced in BTC, tagged.
        await sc.cycle()
        fee_rate = 5  # the simulator's estimate
        size = cf.liquidity_to_channel_size(50_000, cf.anchor_channel_feerate_per_kw(fee_rate), 100)
        plan = [cf.clamp_channel_size(size, min_channel=200_000)] * 2
        expected_topup = cf.topup_amount(plan, 0, [], fee_rate)
        inv_id = topup_invoice(sc)
        backend: WalletBackend = sc.runtime.backends[0]
        [inv] = [i for i in await backend.list_store_invoices(sc.store_id) if i.id == inv_id]
        assert inv.currency.upper() == "BTC"
        assert cf.btc_to_sats(inv.price) == expected_topup
        assert inv.metadata["liquidityhelper"] == "topup"
        await sc.cycle()  # unchanged and pending: reused, not a second invoice
        assert len(await backend.list_store_invoices(sc.store_id)) == 1

        # 2. Funded with exactly that: two channels to distinct trampolines.
        sc.sim.customer_pay(inv_id, lightning=False)
        await sc.sim.mine(1)
        await sc.cycle()
        chans = sc.sim.channels(sc.wallet_id)
        assert sorted(c.capacity_sat for c in chans) == plan
        assert len({c.peer_pubkey for c in chans}) == 2
        trampolines = {n.pubkey for n in sc.sim.trampolines()}
        assert {c.peer_pubkey for c in chans} <= trampolines
        assert sc.sim.balance(sc.wallet_id)[
            "confirmed"
        ] >= 2 * cf.onchain_reserves_to_keep_for_channel(0, fee_rate)

        # 3. Confirmations, then a cashout turns capacity into inbound.
        await sc.sim.mine(3)
        await sc.cycle()
        assert len(settled_to(sc, sc.address)) == 1
        chans = await backend.channels(sc.wallet_id)
        assert sum(c.inbound_sat for c in chans) > 0

        # 4. Customers pay over Lightning; later cycles cash out; the fee is paid once.
        revenue = 0
        for _ in range(3):  # 1 % of it is a fee big enough for a real route (1,000 sats)
            cust = sc.sim.create_invoice(sc.store_id, "0.0005", currency="BTC")
            sc.sim.customer_pay(cust, lightning=True)
            revenue += 50_000
        for _ in range(4):
            await sc.cycle()
        fee_payments = settled_to(sc, operator)
        assert fee_payments == [revenue // 100]  # 1 % of eligible revenue, top-up excluded
        paid = sc.daemon.journal.entries(sc.wallet_id, Kind.FEE_PAYMENT)
        assert [e.status for e in paid] == [Status.SUCCEEDED]
        cashouts = settled_to(sc, sc.address)
        assert len(cashouts) >= 2
        ledger = [
            e.amount_sat
            for e in sc.daemon.journal.entries(sc.wallet_id, Kind.CASHOUT)
            if e.status is Status.SUCCEEDED
        ]
        assert ledger == cashouts  # the journal and the simulator agree to the sat
        assert sc.daemon.journal.pending() == []


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, nothing catches it."""


async def restart(sc: Scenario) -> Daemon:
    rt = sc.runtime
    return Daemon(sc.settings, rt.backends, rt.journal, rt.peers, rt.http, clock=sc.clock)


@pytest.mark.parametrize("when", ["before_pay", "after_pay"])
async def test_killed_around_paying_never_pays_twice(tmp_path: Path, when: str) -> None:
    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)
        backend = sc.runtime.backends[0]
        real_pay = backend.pay_invoice

        async def dying_pay(wallet_id: str, bolt11: str):  # type: ignore[no-untyped-def]
            if when == "after_pay":
                await real_pay(wallet_id, bolt11)
            raise Crash

        backend.pay_invoice = dying_pay  # type: ignore[method-assign]
        with pytest.raises(Crash):
            await sc.cycle()
        backend.pay_invoice = real_pay  # type: ignore[method-assign]
        [pending] = sc.daemon.journal.pending()
        assert pending.kind is Kind.CASHOUT
        assert len(settled_to(sc, sc.address)) == (1 if when == "after_pay" else 0)

        daemon = await restart(sc)
        await daemon.cycle()
        if when == "after_pay":
            assert sc.daemon.journal.get(pending.id).status is Status.SUCCEEDED
            settled = [p.payment_hash for p in sc.sim.payments_to(sc.address)]
            assert settled.count(pending.payment_hash) == 1  # reconciled, not paid again
        else:
            # Not seen by the wallet and not expired: it stays pending, nothing new is paid.
            assert sc.daemon.journal.get(pending.id).status is Status.PENDING
            assert settled_to(sc, sc.address) == []
            sc.clock.advance(hours=2)
            await daemon.cycle()  # expired unpaid -> failed; then a fresh invoice is paid
            assert sc.daemon.journal.get(pending.id).status is Status.FAILED
            assert len(settled_to(sc, sc.address)) == 1
        hashes = [p.payment_hash for p in sc.sim.payments]
        assert len(hashes) == len(set(hashes))
        journaled = [
            e.amount_sat
            for e in sc.daemon.journal.entries(kind=Kind.CASHOUT)
            if e.status is Status.SUCCEEDED
        ]
        assert journaled == settled_to(sc, sc.address)


async def test_bitcart_down_for_a_while_then_recovers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from liquidityhelper.logs import configure_logging

    configure_logging("INFO", "json")
    async with scenario(tmp_path) as sc:
        sc.sim.faults.set_rate(1.0, kinds=["503"], target="rest")
        for _ in range(4):
            await sc.cycle()  # returns: the loop goes on while Bitcart is down
        assert sc.daemon.failed_cycles == 4
        assert sc.daemon.journal.get_state(f"topup:{sc.store_id}") is None
        sc.sim.faults.clear()
        await sc.cycle()
        assert sc.daemon.failed_cycles == 0
        assert sc.daemon.journal.get_state(f"topup:{sc.store_id}") is not None
    events = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    levels = [e["level"] for e in events if e["event"] == "bitcart_unreachable"]
    assert levels == ["error", "error", "critical", "critical"]


async def test_two_stores_sharing_a_wallet_get_one_set_of_actions(tmp_path: Path) -> None:
    async with scenario(tmp_path, stores=2) as sc:
        await sc.cycle()
        backend = sc.runtime.backends[0]
        stores = sorted({s.id for s in await backend.list_stores()})
        invoices = [i for s in stores for i in await backend.list_store_invoices(s)]
        assert len(invoices) == 1  # one top-up invoice for the shared wallet
        sc.sim.customer_pay(invoices[0].id, lightning=False)
        await sc.sim.mine(1)
        await sc.cycle()
        assert len(sc.sim.channels(sc.wallet_id)) == 2  # opened once, not once per store


async def test_once_dry_run_leaves_the_simulator_untouched(tmp_path: Path) -> None:
    async with Simulator(seed=3) as sim, scenario(tmp_path, sim=sim) as sc:
        await fund_and_open(sc)
        await sc.cycle()  # first cashout: the channels now have inbound
        cust = sim.create_invoice(sc.store_id, "0.0001", currency="BTC")
        sim.customer_pay(cust, lightning=True)
        sim.create_store(sc.token, "No wallet yet")
        sim.fund_wallet(sc.wallet_id, 3_000_000)  # spare funds: a channel is due
        await sim.mine(1)
        before = json.dumps(sim.snapshot(), sort_keys=True, default=str)
        lnurl_requests = len(sim.lnurl.log)
        env = {
            **os.environ,
            "LIQUIDITYHELPER_API_URL": sim.api_url,
            "LIQUIDITYHELPER_API_TOKEN": sc.token,
            "LIQUIDITYHELPER_DAEMON_URL": sim.rpc_url,
            "LIQUIDITYHELPER_NETWORK": "regtest",
            "LIQUIDITYHELPER_CASHOUT_LIGHTNING_ADDRESS": sc.address,
            "LIQUIDITYHELPER_CREATE_MISSING_WALLETS": "true",
            "LIQUIDITYHELPER_DATA_DIR": str(tmp_path / "dry"),
            "LIQUIDITYHELPER_NODES__STATIC_TRAMPOLINE_PEERS": json.dumps(
                [f"{n.pubkey}@{n.address}" for n in sim.trampolines()]
            ),
            "LIQUIDITYHELPER_LOG_FORMAT": "json",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "liquidityhelper",
            "once",
            "--dry-run",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert json.dumps(sim.snapshot(), sort_keys=True, default=str) == before
        assert len(sim.lnurl.log) == lnurl_requests  # not even an invoice request
        events = {json.loads(x)["event"] for x in err.decode().splitlines() if x.startswith("{")}
        assert {"dry_run_payment", "dry_run_open_channel", "dry_run_create_wallet"} <= events


async def test_daemon_error_behind_channels_opens_nothing(tmp_path: Path) -> None:
    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)
        opened = len(sc.sim.channels(sc.wallet_id))
        sc.sim.set_daemon_erroring(True)
        sc.sim.fund_wallet(sc.wallet_id, 5_000_000)
        await sc.sim.mine(1)
        await sc.cycle()
        sc.sim.set_daemon_erroring(False)
        assert len(sc.sim.channels(sc.wallet_id)) == opened
        assert all(
            c.state is not ChannelState.CLOSED
            for c in await sc.runtime.backends[0].channels(sc.wallet_id)
        )


async def test_topup_reminder_reuses_the_pending_invoice_even_after_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from liquidityhelper.logs import configure_logging

    configure_logging("INFO", "json")
    async with scenario(tmp_path) as sc:
        await sc.cycle()
        backend = sc.runtime.backends[0]
        first = topup_invoice(sc)
        # A crash after creating the invoice but before recording it: the state is lost.
        sc.daemon.journal.delete_state(f"topup:{sc.store_id}")
        await sc.cycle()
        assert topup_invoice(sc) == first
        sc.clock.advance(hours=6, seconds=1)  # the reminder interval
        await sc.cycle()
        sc.clock.advance(minutes=5)  # within the interval: not repeated
        await sc.cycle()
        assert [i.id for i in await backend.list_store_invoices(sc.store_id)] == [first]
    warnings = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    shown = [w for w in warnings if w["event"] == "topup_needed"]
    assert len(shown) == 3 and {w["invoice"] for w in shown} == {first}
    assert all(w["level"] == "warning" and w["amount_sat"] > 0 and w["btc"] for w in shown)
