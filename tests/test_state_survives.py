"""Issue 14: one instance per journal, writes that cannot race, pins that can be reset."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from liquidityhelper import cli
from liquidityhelper.config import load_settings
from liquidityhelper.datadir import DataDirBusyError, DataDirLock, default_data_dir
from liquidityhelper.journal import JOURNAL_FILE, Journal, JournalBusyError, Kind
from liquidityhelper.payees import pins
from tests.scenario import scenario, use_operator
from tests.test_scenarios import fund_and_open, settled_to

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def test_a_second_instance_refuses_the_same_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIQUIDITYHELPER_API_TOKEN", "t")
    monkeypatch.setenv("LIQUIDITYHELPER_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LIQUIDITYHELPER_DATA_DIR", str(tmp_path))
    with DataDirLock(tmp_path):  # the running daemon
        assert cli.main(["once", "--log-format", "json"]) == 1
        err = capsys.readouterr().err
        assert "data_dir_in_use" in err and str(tmp_path) in err
        assert f'"holder_pid": "{__import__("os").getpid()}"' in err
        with pytest.raises(DataDirBusyError):
            DataDirLock(tmp_path).acquire()
        # Read-only commands still work beside it.
        assert cli.main(["payees", "list"]) == 0
    with DataDirLock(tmp_path):  # released: the next one may start
        pass


def test_recording_an_intent_checks_for_a_pending_one_under_the_write_lock(
    tmp_path: Path,
) -> None:
    """Two processes deciding at once: the second must see the first's entry, not race it."""
    journal = Journal.open(tmp_path)
    started = threading.Event()

    def the_other_process() -> None:
        other = sqlite3.connect(tmp_path / JOURNAL_FILE, timeout=30, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute(
            "INSERT INTO actions (kind, wallet_id, amount_sat, destination, status, created_at,"
            " updated_at) VALUES ('fee_payment', 'w1', 300, 'op@x', 'pending', ?, ?)",
            (NOW.isoformat(), NOW.isoformat()),
        )
        started.set()
        time.sleep(0.3)  # decided, not yet committed
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=the_other_process)
    thread.start()
    assert started.wait(10)
    with pytest.raises(JournalBusyError):
        journal.record_intent(Kind.FEE_PAYMENT, "w1", 300, "op@x", now=NOW)
    thread.join()
    assert len(journal.entries("w1")) == 1
    journal.close()


def test_data_dir_is_absolute_and_does_not_follow_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIQUIDITYHELPER_DATA_DIR", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    assert load_settings().data_dir == tmp_path / "state" / "liquidityhelper"
    assert default_data_dir({"STATE_DIRECTORY": "/var/lib/lh"}) == Path("/var/lib/lh")
    assert load_settings(data_dir="rel").data_dir == tmp_path / "rel"


async def test_a_failed_first_payment_pins_nothing_and_forget_verifies_afresh(
    tmp_path: Path,
) -> None:
    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)
        # The first cashout fails at every amount it steps down to.
        sc.sim.payment_faults.push(*["fail"] * 8)
        await sc.cycle()
        assert settled_to(sc, sc.address) == []
        assert pins(sc.daemon.journal) == {}, "a failed payment pinned its payee"
        sc.daemon.journal.delete_state(f"backoff:cashout:{sc.wallet_id}")
        sc.sim.payment_faults.clear()
        await sc.cycle()
        assert len(settled_to(sc, sc.address)) == 1
        [(address, node)] = pins(sc.daemon.journal).items()
        assert address == sc.address and len(node) == 66

        from liquidityhelper.payees import run_payees

        settings = sc.settings
        assert run_payees(settings, "forget", sc.address) == 0
        assert pins(sc.daemon.journal) == {}
        assert run_payees(settings, "forget", sc.address) == 1  # nothing left to forget


async def test_a_lost_journal_never_pays_the_operator_fee_twice(tmp_path: Path) -> None:
    """A container recreated without its volume: the fee ledger is rebuilt from the wallet's
    own payment history (our payments carry a label there), so nothing is repaid."""
    async with scenario(
        tmp_path,
        fee_rate=Decimal("0.01"),
        fee_start_date="2020-01-01",
        fee_lightning_address="operator@127.0.0.1",
    ) as sc:
        operator = use_operator(sc)
        await fund_and_open(sc)
        await sc.cycle()
        invoice = sc.sim.create_invoice(sc.store_id, "0.0015", currency="BTC")
        sc.sim.customer_pay(invoice, lightning=True)
        for _ in range(3):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        assert settled_to(sc, operator) == [1_500]

        fresh = Journal.open(tmp_path / "fresh")  # the old journal is gone
        sc.daemon.journal = sc.daemon.executor.journal = sc.daemon.fees.journal = fresh
        sc.daemon.topup_desk.journal = fresh
        for _ in range(3):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        assert settled_to(sc, operator) == [1_500], "a lost journal repaid the fee"
        # ... and new revenue still owes exactly its own share.
        invoice = sc.sim.create_invoice(sc.store_id, "0.001", currency="BTC")
        sc.sim.customer_pay(invoice, lightning=True)
        for _ in range(3):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        assert settled_to(sc, operator) == [1_500, 1_000]


async def test_an_idle_cycle_with_the_fee_on_reads_one_page_of_invoices_per_store(
    tmp_path: Path,
) -> None:
    """The old ledger paged through every invoice of every store each cycle (31 requests at
    3,001 invoices); the cursor keeps an idle cycle at one request per store."""
    from benchmarks.idle_cycle import count_calls

    async with scenario(
        tmp_path,
        fee_rate=Decimal("0.01"),
        fee_start_date="2020-01-01",
        fee_lightning_address="operator@127.0.0.1",
    ) as sc:
        for _ in range(450):  # history: several pages of 100 even for the cursor's first read
            invoice = sc.sim.create_invoice(sc.store_id, "0.00001", currency="BTC")
            sc.sim.customer_pay(invoice, lightning=False)
        await sc.sim.mine(1)
        calls = count_calls(sc.sim)
        await sc.cycle()
        first = calls[("rest", "/invoices")]
        assert first >= 5  # the whole history, once
        owed = sc.daemon.fees._cache[sc.wallet_id].numbers["revenue_sat"]
        assert owed == 450 * 1_000
        for _ in range(3):
            calls.clear()
            sc.clock.advance(minutes=5)
            await sc.cycle()
            assert calls[("rest", "/invoices")] <= 1
            assert sc.daemon.fees._cache[sc.wallet_id].numbers["revenue_sat"] == owed
        # New revenue is still seen, and counted once.
        invoice = sc.sim.create_invoice(sc.store_id, "0.0002", currency="BTC")
        sc.sim.customer_pay(invoice, lightning=False)
        for _ in range(2):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        assert sc.daemon.fees._cache[sc.wallet_id].numbers["revenue_sat"] == owed + 20_000


async def test_a_new_journal_beside_wallets_with_channels_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from liquidityhelper.logs import configure_logging

    configure_logging("INFO", "json")
    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)  # a fresh install opening its first channels: nothing said
        await sc.cycle()
        assert "journal_new_but_wallets_have_history" not in capsys.readouterr().err
        fresh = Journal.open(tmp_path / "elsewhere")  # `once` run from another folder, say
        assert fresh.created_now
        sc.daemon.journal = sc.daemon.executor.journal = sc.daemon.fees.journal = fresh
        sc.daemon.topup_desk.journal = fresh
        await sc.cycle()
        await sc.cycle()
    err = capsys.readouterr().err
    assert err.count("journal_new_but_wallets_have_history") == 1
    assert Journal.open(tmp_path / "elsewhere").created_now is False
