"""`liquidityhelper report`: the figures from plain data, and to the msat against the
simulator's own books after the demo's story and after a run with faults."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from liquidityhelper.cli import main as cli_main
from liquidityhelper.demo import CUSTOMER_PAYMENTS_SAT, run_demo
from liquidityhelper.journal import Entry, Journal, Kind, Status, payment_label
from liquidityhelper.report import (
    Report,
    WalletReport,
    collect_report,
    metric_counters,
    render_text,
    report_async,
    wallet_report,
)
from liquidityhelper.simulator import SimError
from liquidityhelper.wallet.base import (
    InvoicePayment,
    LightningHistoryItem,
    OnchainHistoryItem,
    StoreInvoice,
)
from tests.scenario import Scenario, scenario, use_operator
from tests.test_scenarios import fund_and_open

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
W = "wallet-1"


def entry(n: int, kind: Kind, amount: int, **kw: Any) -> Entry:
    values: dict[str, Any] = {
        "id": n,
        "kind": kind,
        "wallet_id": W,
        "amount_sat": amount,
        "destination": "m@example.com",
        "status": Status.SUCCEEDED,
        "created_at": T0 + timedelta(hours=n),
        "updated_at": T0 + timedelta(hours=n),
    }
    values.update(kw)
    return Entry(**values)


def invoice(
    n: int, sats: int, *, lightning: bool, topup: bool = False, status: str = "complete"
) -> StoreInvoice:
    return StoreInvoice(
        id=f"inv{n}",
        store_id="store-1",
        status=status,
        price="0",
        currency="BTC",
        metadata={"liquidityhelper": "topup", "wallet_id": W} if topup else {},
        payments=(
            InvoicePayment(sats, W, lightning=False, is_used=not lightning),
            InvoicePayment(sats, W, lightning=True, is_used=lightning),
        ),
        created=T0 + timedelta(hours=n),
        paid_date=T0 + timedelta(hours=n, minutes=5),
    )


def sent(payment_hash: str, sats: int, fee_msat: int, kind: Kind | None, hours: int) -> Any:
    return LightningHistoryItem(
        payment_hash,
        -sats * 1000,
        fee_msat,
        T0 + timedelta(hours=hours),
        label=payment_label(kind.value) if kind else "",
    )


def test_figures_from_plain_data() -> None:
    entries = [
        entry(1, Kind.CHANNEL_OPEN, 200_000, reference="aa" * 32 + ":0"),
        entry(2, Kind.CHANNEL_OPEN, 200_000, status=Status.FAILED, detail="peer refused"),
        entry(3, Kind.CASHOUT, 150_000, payment_hash="h3", fee_msat=1_500),
        entry(4, Kind.FEE_PAYMENT, 1_000, payment_hash="h4", fee_msat=1_001),
        entry(5, Kind.CASHOUT, 9_000, payment_hash="h5", status=Status.FAILED),
        entry(6, Kind.CASHOUT, 20_000, payment_hash="h6", fee_msat=None),  # reconciled, no fee
        entry(7, Kind.CASHOUT, 30_000, payment_hash="h7", status=Status.PENDING),
        entry(8, Kind.CHANNEL_CLOSE, 0, reference="cc" * 32, destination="aa" * 32 + ":0"),
        entry(9, Kind.TOPUP_INVOICE, 400_000, reference="inv1", destination="store-1"),
        entry(10, Kind.CASHOUT, 5_000, payment_hash="x", wallet_id="another-wallet"),
    ]
    invoices = [
        invoice(1, 401_000, lightning=False, topup=True),
        invoice(1, 401_000, lightning=False, topup=True),  # listed by two stores: counted once
        invoice(2, 42_000, lightning=True),
        invoice(3, 7_000, lightning=False),  # revenue on-chain: not "over Lightning"
        invoice(4, 5_000, lightning=True, status="expired"),
    ]
    onchain = [
        OnchainHistoryItem("bb" * 32, 401_000, None, T0 + timedelta(hours=1)),
        OnchainHistoryItem("aa" * 32, -200_750, 750, T0 + timedelta(hours=1)),
        OnchainHistoryItem("dd" * 32, -200_600, 600, T0 + timedelta(hours=2), label="Open channel"),
        OnchainHistoryItem("cc" * 32, 19_000, None, T0 + timedelta(hours=8)),
        OnchainHistoryItem("ee" * 32, -10_300, 300, T0 + timedelta(hours=9)),  # the merchant's
    ]
    lightning = [
        sent("h3", 150_000, 1_500, Kind.CASHOUT, 3),
        sent("h4", 1_000, 1_001, Kind.FEE_PAYMENT, 4),
        sent("h6", 20_000, 2_345, Kind.CASHOUT, 6),
        sent("h7", 30_000, 700, Kind.CASHOUT, 7),  # settled while the journal says pending
        sent("lost", 12_000, 99, Kind.CASHOUT, 11),  # only the wallet knows it (lost journal)
        sent("theirs", 3_000, 10, None, 11),  # not ours: no label
        LightningHistoryItem("in1", 42_000_000, 0, T0 + timedelta(hours=2)),
    ]
    rep = wallet_report(W, entries, invoices, onchain, lightning)
    assert (rep.topups_paid_sat, rep.topups_paid) == (401_000, 1)
    assert rep.revenue_lightning_sat == 42_000
    assert rep.revenue_onchain_sat == 7_000
    assert (rep.cashed_out_sat, rep.cashouts) == (150_000 + 20_000 + 30_000 + 12_000, 4)
    assert (rep.operator_fees_sat, rep.fee_payments) == (1_000, 1)
    assert rep.routing_fees_msat == 1_500 + 1_001 + 2_345 + 700 + 99
    assert rep.routing_fees_sat == 6  # 5,645 msat, rounded up
    assert (rep.onchain_fees_open_sat, rep.opens) == (1_350, 2)
    assert (rep.onchain_fees_close_sat, rep.closes) == (0, 1)
    assert rep.onchain_fees_other_sat == 300
    assert rep.inbound_created_sat == 213_000
    assert rep.sats_in == 401_000 + 42_000 + 7_000
    assert rep.sats_out_msat == (212_000 + 1_000 + 1_350) * 1000 + 5_645
    assert rep.inbound_cost_rate == Decimal(1_350_000 + 5_645) / Decimal(213_000_000)
    assert rep.fees_share_of_revenue == Decimal(2_350_000 + 5_645) / Decimal(42_000_000)
    assert rep.unjournaled_payments == 1
    flags = " | ".join(rep.flags)
    assert "1 payment(s) labelled as ours" in flags
    assert "fee taken from the wallet's history" in flags
    assert "#7 pending" in flags
    assert "closing fee came out of the channel's balance" in flags
    assert "300 sat of on-chain fees" in flags
    doc = rep.document()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["inbound_cost_rate"] == "0.006365"


def test_a_period_and_unreadable_sources() -> None:
    entries = [
        entry(1, Kind.CASHOUT, 100_000, payment_hash="h1", fee_msat=1_000),
        entry(30, Kind.CASHOUT, 50_000, payment_hash="h30", fee_msat=500),
    ]
    since = T0 + timedelta(hours=10)
    rep = wallet_report(W, entries, None, None, None, since=since)
    assert (rep.cashed_out_sat, rep.routing_fees_msat) == (50_000, 500)
    assert rep.topups_paid_sat == 0 and rep.onchain_fees_sat == 0
    assert len(rep.flags) == 3 and all("unreadable" in f for f in rep.flags)
    assert rep.fees_share_of_revenue is None
    # An unconfirmed funding transaction has no time yet: it belongs to the present.
    pending_open = [OnchainHistoryItem("ab" * 32, -200_800, 800, None, label="Open channel")]
    rep = wallet_report(W, [], [], pending_open, [], since=since, until=since + timedelta(1))
    assert (rep.onchain_fees_open_sat, rep.opens) == (800, 1)
    empty = wallet_report(W, [], [], [], [])
    assert (empty.flags, empty.inbound_cost_rate, empty.sats_out_msat) == ([], None, 0)


def test_totals_add_every_wallet_and_text_fits_80_columns() -> None:
    a = WalletReport("a", [{"id": "s1", "name": "Shop one"}], topups_paid_sat=10, cashouts=1)
    b = WalletReport("b", [{"id": "s2", "name": "Shop two"}], topups_paid_sat=5, flags=["x"])
    a.routing_fees_msat, b.routing_fees_msat = 1_500, 2_600
    report = Report(None, T0, [a, b], ["bitcart (token 2) not readable: down"])
    total = report.total
    assert (total.topups_paid_sat, total.cashouts, total.routing_fees_msat) == (15, 1, 4_100)
    assert total.routing_fees_sat == 5 and total.flags == ["b: x"]
    out = io.StringIO()
    render_text(report, out)
    text = out.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "store Shop one (s1)" in text and "all wallets (2)" in text
    assert "problem: bitcart (token 2) not readable: down" in text
    counters = {(n, tuple(sorted(labels.items()))): v for n, labels, v in metric_counters(report)}
    assert counters[("routing_fees_paid_msats_total", (("wallet", "b"),))] == 2_600
    assert counters[("topups_paid_sats_total", (("wallet", "a"),))] == 10


# --- against the simulator's books --------------------------------------------------------------


def test_the_demo_story_balances_to_the_msat() -> None:
    out = io.StringIO()
    assert run_demo(json_output=True, out=out) == 0
    doc = json.loads(out.getvalue())
    books = doc["simulator_books"]
    [wallet] = doc["report"]["wallets"]
    total = doc["report"]["total"]
    # In: the top-up the merchant paid, the customers' payments.
    assert wallet["topups_paid_sat"] == books["topups_paid_sat"] == doc["topups"][0]["sat"]
    assert wallet["revenue_lightning_sat"] == sum(CUSTOMER_PAYMENTS_SAT)
    onchain_in = sum(doc["onchain_payments_sat"])  # the order whose sats were spare funds
    assert wallet["revenue_onchain_sat"] == onchain_in > 0
    # Out, by kind: what reached each address, the network's routing fees, the open fees.
    assert wallet["cashed_out_sat"] * 1000 == books["to_merchant_msat"]
    assert wallet["cashed_out_sat"] == sum(c["sat"] for c in doc["cashouts"])
    assert wallet["operator_fees_sat"] * 1000 == books["to_operator_msat"]
    assert wallet["routing_fees_msat"] == books["routing_fees_msat"] > 0
    capacity = sum(c["capacity_sat"] for c in doc["channels"])
    assert (
        wallet["onchain_fees_open_sat"]
        == books["topups_paid_sat"] + onchain_in - capacity - books["onchain_sat"]
    )
    assert wallet["onchain_fees_open_sat"] > 0 and wallet["opens"] == len(doc["channels"]) == 3
    # Every sat in = every sat out + what is held (on-chain and the channels' local balance).
    assert total["sats_in"] * 1000 == total["sats_out_msat"] + books["held_msat"]
    assert wallet["inbound_created_sat"] == wallet["cashed_out_sat"] + wallet["operator_fees_sat"]
    assert doc["report"]["problems"] == [] and wallet["flags"] == []


def test_the_demo_ends_with_the_report() -> None:
    out = io.StringIO()
    assert run_demo(out=out) == 0
    text = out.getvalue()
    status, _, report = text.partition("What it cost and bought")
    assert "Final status" in status
    assert "  top-ups paid" in report and "  inbound created" in report
    assert "every sat accounted for:" in report
    assert all(len(line) <= 80 for line in text.splitlines())


@dataclass
class Truth:
    """The simulator's own books for one wallet."""

    topups_sat: int
    ln_received_msat: int
    onchain_sat: int
    local_msat: int
    routing_msat: int
    onchain_fees_sat: int

    @property
    def held_msat(self) -> int:
        return self.onchain_sat * 1000 + self.local_msat


def truth(sc: Scenario, topup_ids: set[str]) -> Truth:
    dw = sc.sim.model.daemon_wallet(sc.sim.wallet_key(sc.wallet_id))
    balance = sc.sim.balance(sc.wallet_id)
    live = {"PREOPENING", "OPENING", "FUNDED", "OPEN"}
    key = sc.sim.wallet_key(sc.wallet_id)
    return Truth(
        topups_sat=sum(
            t.amount_sat for t in dw.txs if t.label.removeprefix("invoice ") in topup_ids
        ),
        ln_received_msat=sum(r.amount_msat for r in dw.received),
        onchain_sat=balance["confirmed"] + balance["unconfirmed"],
        local_msat=sum(c.local_msat for c in sc.sim.channels(sc.wallet_id) if c.state in live),
        routing_msat=sum(
            p.fee_msat for p in sc.sim.payments if p.wallet_key == key and p.status == 3
        ),
        onchain_fees_sat=sum(t.fee_sat or 0 for t in dw.txs),
    )


FEES = {
    "fee_rate": Decimal("0.01"),
    "fee_start_date": "2020-01-01",
    "min_fee_payment_sat": 100,
    "fee_lightning_address": "operator@127.0.0.1",
}


def assert_balances(sc: Scenario, report: Report, t: Truth, merchant: str, operator: str) -> None:
    [w] = report.wallets
    assert w.topups_paid_sat == t.topups_sat > 0
    assert w.revenue_lightning_sat * 1000 == t.ln_received_msat
    assert w.cashed_out_sat * 1000 == sc.sim.received_by_address(merchant)
    assert w.operator_fees_sat * 1000 == sc.sim.received_by_address(operator)
    assert w.routing_fees_msat == t.routing_msat
    assert w.onchain_fees_sat == t.onchain_fees_sat
    assert w.sats_in * 1000 == w.sats_out_msat + t.held_msat  # every sat in, out or held


async def test_report_balances_after_a_day_with_faults(tmp_path: Path) -> None:
    async with scenario(tmp_path, **FEES) as sc:
        operator = use_operator(sc)
        await fund_and_open(sc)
        topups = {str(e.reference) for e in sc.daemon.journal.entries(kind=Kind.TOPUP_INVOICE)}
        await sc.cycle()  # the first cashout: inbound for the customers
        sc.sim.payment_faults.push("fail", "fail")  # the next payments find no route
        sc.sim.faults.set_rate(0.25, kinds=["503", "drop", "malformed"], target="any")
        paid = 0
        for sats in (42_000, 25_000, 61_000, 17_500, 33_000):
            sc.clock.advance(minutes=7)
            inv = sc.sim.create_invoice(sc.store_id, Decimal(sats) / 10**8, currency="BTC")
            with contextlib.suppress(SimError):  # no inbound left for this one: not paid
                sc.sim.customer_pay(inv, lightning=True)
                paid += 1
            await sc.cycle()
        assert paid >= 3 and sc.sim.faults.history  # requests failed, customers paid
        sc.sim.faults.clear()
        sc.sim.payment_faults.clear()
        for _ in range(8):  # clean cycles: back-offs end, cashouts and the fee go out
            sc.clock.advance(hours=1)
            await sc.sim.mine(1)
            await sc.cycle()
        entries = sc.daemon.journal.entries()
        assert any(e.status is Status.FAILED and e.kind is Kind.CASHOUT for e in entries)
        assert sc.daemon.journal.pending() == []
        assert sc.sim.received_by_address(operator) > 0
        report = await collect_report(
            sc.runtime.backends, sc.daemon.journal, sc.settings, since=None, now=sc.clock.now
        )
        assert report.problems == [] and report.wallets[0].flags == []
        assert_balances(sc, report, truth(sc, topups), sc.address, operator)


async def test_report_command_reads_without_writing(tmp_path: Path) -> None:
    async with scenario(tmp_path, **FEES) as sc:
        operator = use_operator(sc)
        await fund_and_open(sc)
        await sc.cycle()
        journal_file = Path(sc.settings.data_dir) / "liquidityhelper.sqlite"
        before = Journal.open_read_only(sc.settings.data_dir).entries()
        out = io.StringIO()
        assert await report_async(sc.settings, since=None, as_json=True, out=out) == 0
        doc = json.loads(out.getvalue())
        assert [w["wallet_id"] for w in doc["wallets"]] == [sc.wallet_id]
        assert doc["wallets"][0]["stores"] == [{"id": sc.store_id, "name": "Shop 0"}]
        assert doc["wallets"][0]["cashed_out_sat"] * 1000 == sc.sim.received_by_address(sc.address)
        assert Journal.open_read_only(sc.settings.data_dir).entries() == before
        assert journal_file.exists() and operator
        out = io.StringIO()
        future = sc.clock.now + timedelta(days=1)
        assert await report_async(sc.settings, since=future, as_json=False, out=out) == 0
        assert "  cashed out                   0 sat (0 payments)" in out.getvalue()


async def test_report_with_bitcart_down_shows_the_journal_and_fails(tmp_path: Path) -> None:
    async with scenario(tmp_path, **FEES) as sc:
        await fund_and_open(sc)
        await sc.cycle()
        sc.sim.faults.set_rate(1.0, kinds=["503"], target="rest")
        out = io.StringIO()
        assert await report_async(sc.settings, since=None, as_json=False, out=out) == 1
        text = out.getvalue()
        cashed = sum(e.amount_sat for e in sc.daemon.journal.entries(kind=Kind.CASHOUT))
        assert f"  cashed out                   {cashed:,} sat (1 payment)" in text
        assert "! not visible in Bitcart with the configured token(s)" in text
        assert "problem: bitcart (token 1) not readable" in text
        assert all(len(line) <= 80 for line in text.splitlines())


def test_report_needs_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["report"]) == 2
    assert "api_token" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_main(["report", "--since", "yesterday-ish"])
    assert exc.value.code == 2
    assert "expected a date" in capsys.readouterr().err
