"""`liquidityhelper history`: every journal entry once, newest first, 80 columns, read-only."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from liquidityhelper.cli import main as cli_main
from liquidityhelper.datadir import DataDirLock
from liquidityhelper.history import (
    History,
    HistoryRow,
    history_async,
    parse_since,
    render_text,
)
from liquidityhelper.journal import _MIGRATIONS, JOURNAL_FILE, Journal, Kind, Status
from tests.scenario import Scenario, scenario, use_operator
from tests.test_report import FEES
from tests.test_scenarios import fund_and_open


async def merchant_day(sc: Scenario) -> None:
    """The demo's story: top-up, channels, cashouts, customers, the operator's fee."""
    use_operator(sc)
    await fund_and_open(sc)
    await sc.cycle()
    for sats in (42_000, 25_000, 61_000):
        sc.clock.advance(minutes=7)
        invoice = sc.sim.create_invoice(sc.store_id, Decimal(sats) / 10**8, currency="BTC")
        sc.sim.customer_pay(invoice, lightning=True)
    for _ in range(3):
        sc.clock.advance(minutes=5)
        await sc.cycle()
    assert sc.daemon.journal.entries(kind=Kind.FEE_PAYMENT)


async def history_of(sc: Scenario, *, as_json: bool = False, **kw: object) -> str:
    out = io.StringIO()
    assert await history_async(sc.settings, as_json=as_json, out=out, **kw) == 0  # type: ignore[arg-type]
    return out.getvalue()


async def test_every_entry_once_newest_first(tmp_path: Path) -> None:
    async with scenario(tmp_path, stores=2, **FEES) as sc:
        await merchant_day(sc)
        entries = sc.daemon.journal.entries()
        kinds = {e.kind for e in entries}
        assert {Kind.TOPUP_INVOICE, Kind.CHANNEL_OPEN, Kind.CASHOUT, Kind.FEE_PAYMENT} <= kinds
        # The daemon holds its data directory, as `run` does: history reads beside it.
        with DataDirLock(sc.settings.data_dir):
            rows = json.loads(await history_of(sc, as_json=True))
            text = await history_of(sc)
        ids = [r["entry_id"] for r in rows if r["entry_id"] is not None]
        assert sorted(ids) == [e.id for e in entries]  # every entry, once
        times = [r["at"] for r in rows]
        assert times == sorted(times, reverse=True)
        [paid] = [r for r in rows if r["kind"] == "topup_paid"]
        [asked] = [e for e in entries if e.kind is Kind.TOPUP_INVOICE]
        assert (paid["reference"], paid["amount_sat"]) == (asked.reference, asked.amount_sat)
        assert paid["detail"].endswith("on-chain (complete)") and paid["what"] == "top-up paid"
        kinds_in_order = [r["kind"] for r in rows]
        assert kinds_in_order.index("topup_paid") < kinds_in_order.index("topup_invoice")
        by_id = {r["entry_id"]: r for r in rows}
        for e in entries:
            row = by_id[e.id]
            assert (row["kind"], row["amount_sat"], row["wallet_id"]) == (
                e.kind.value,
                e.amount_sat,
                e.wallet_id,
            )
            assert row["stores"] == [
                {"id": sc.store_id, "name": "Shop 0"},
                {"id": row["stores"][1]["id"], "name": "Shop 1"},
            ]
            if e.kind is Kind.CASHOUT and e.status is Status.SUCCEEDED:
                assert row["fee_msat"] == e.fee_msat
                assert row["fee_sat"] == -(-(e.fee_msat or 0) // 1000)
            if e.kind is Kind.CHANNEL_OPEN:
                assert row["fee_sat"] and row["fee_sat"] > 0  # the funding tx's, from Bitcart
        lines = text.splitlines()
        assert lines[0].split()[:3] == ["time", "(UTC)", "store"]
        assert len(lines) == 1 + len(rows)
        assert all(len(line) <= 80 for line in lines)
        assert any(" open " in line and "200,000" in line for line in lines)
        assert any(" top-up paid " in line for line in lines)
        assert any(" fee payment " in line and " ok " in line for line in lines)


async def test_filters_and_a_bitcart_out_of_reach(tmp_path: Path) -> None:
    async with scenario(tmp_path, **FEES) as sc:
        await merchant_day(sc)
        entries = sc.daemon.journal.entries()
        all_rows = json.loads(await history_of(sc, as_json=True))
        mine = json.loads(await history_of(sc, as_json=True, wallet=sc.wallet_id))
        assert mine == all_rows
        assert json.loads(await history_of(sc, as_json=True, wallet="nobody")) == []
        assert json.loads(await history_of(sc, as_json=True, store=sc.store_id)) == all_rows
        late = entries[-1].created_at
        recent = json.loads(await history_of(sc, as_json=True, since=late))
        assert recent and all(r["at"] >= late.isoformat(timespec="seconds") for r in recent)
        assert len(recent) < len(all_rows)

        sc.sim.faults.set_rate(1.0, kinds=["503"], target="rest")  # Bitcart is down
        text = await history_of(sc)
        rows = json.loads(await history_of(sc, as_json=True, store=sc.store_id))
        sc.sim.faults.clear()
        # Every entry still, under the wallet's id; no paid top-up (only Bitcart knows it).
        assert sorted(r["entry_id"] for r in rows) == [e.id for e in entries]
        assert all(r["stores"] == [] for r in rows)
        assert sc.wallet_id[:10] + "…" in text
        assert "note: bitcart (token 1) not readable" in text
        assert all(len(line) <= 80 for line in text.splitlines())


def test_read_only_never_migrates_nor_writes(tmp_path: Path) -> None:
    # A journal written by the previous version (schema 1): read as it is.
    conn = sqlite3.connect(tmp_path / JOURNAL_FILE)
    conn.executescript(_MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO actions (kind, wallet_id, amount_sat, destination, status, created_at,"
        " updated_at) VALUES ('cashout', 'w1', 5000, 'm@x', 'succeeded', ?, ?)",
        (datetime.now(UTC).isoformat(), datetime.now(UTC).isoformat()),
    )
    conn.commit()
    conn.close()
    before = (tmp_path / JOURNAL_FILE).read_bytes()
    journal = Journal.open_read_only(tmp_path)
    assert journal.schema_version == 1 and len(journal.entries()) == 1
    assert journal.samples("w1") == []  # the table came later
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        journal.set_state("x", 1, now=datetime.now(UTC))
    journal.close()
    assert (tmp_path / JOURNAL_FILE).read_bytes() == before
    with pytest.raises(FileNotFoundError):
        Journal.open_read_only(tmp_path / "elsewhere")


def test_history_command_without_bitcart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIQUIDITYHELPER_DATA_DIR", str(tmp_path))
    assert cli_main(["history"]) == 1  # no journal there
    assert "no journal at" in capsys.readouterr().err
    journal = Journal.open(tmp_path)
    now = datetime.now(UTC)
    journal.record_event(Kind.TOPUP_INVOICE, "w" * 26, 408_030, "s1", now=now, reference="inv1")
    e = journal.record_intent(Kind.CASHOUT, "w" * 26, 191_412, "m@x", now=now, payment_hash="h")
    journal.finish(e.id, Status.SUCCEEDED, now=now, fee_msat=192_413)
    journal.close()
    assert cli_main(["history"]) == 0
    text = capsys.readouterr().out
    assert "cashout" in text and "191,412" in text and " 193 " in text
    assert "top-up asked" in text and "invoice inv1" in text
    assert cli_main(["history", "--json", "--since", "1d"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in rows] == ["cashout", "topup_invoice"]
    with pytest.raises(SystemExit):
        cli_main(["history", "--wallet", "a", "--store", "b"])


def test_rows_fit_80_columns_whatever_their_length() -> None:
    at = datetime(2026, 11, 28, 9, 50, tzinfo=UTC)
    rows = [
        HistoryRow(
            at - timedelta(minutes=i),
            "W" * 26,
            [{"id": "s", "name": "A store with a very long name indeed" * 2}],
            "topup_invalidated",
            "top-up invalidated",
            5_000_000_000,
            12_345_678,
            None,
            "done",
            "invoice X: superseded by a new amount " * 4,
        )
        for i in range(3)
    ]
    out = io.StringIO()
    render_text(History(rows, ["a note " * 30]), out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 and all(len(line) <= 80 for line in lines)
    assert lines[1].startswith("2026-11-28 09:50 A store")


def test_parse_since() -> None:
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T08:30") == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    assert parse_since("2026-11-01T08:30+02:00").utcoffset() == timedelta(hours=2)
    assert parse_since("30d", now) == now - timedelta(days=30)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    with pytest.raises(ValueError, match="expected a date"):
        parse_since("last tuesday")
