"""An idle cycle's cost does not grow with history: the /metrics money counters are summed by
the journal in SQL, kept between cycles, and the wallet's Lightning history (to find fees a
lost journal lacks) is read again only when the journal's fee payments change, or hourly."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from liquidityhelper.cycle_metrics import money_counters
from liquidityhelper.journal import JOURNAL_FILE, PAYMENT_KINDS, Journal, Kind, Status
from liquidityhelper.main import Daemon
from liquidityhelper.revenue import HISTORY_REREAD_SECONDS
from liquidityhelper.topups import TOPUP_PAID_PREFIX, topups_paid_sat
from tests.scenario import Scenario, scenario, use_operator
from tests.test_scenarios import fund_and_open, settled_to

NOW = datetime(2026, 11, 28, tzinfo=UTC)
WALLETS = ("w1", "w2", "w3", "w4")
FEES_MSAT = (None, 0, 1, 999, 1_000, 1_001, 1_999, 2_000, 123_456)


def old_money_counters(journal: Journal) -> dict[str, dict[tuple[str, ...], int]]:
    """The definition before the journal summed them: every entry, read each cycle."""
    fees: dict[tuple[str, ...], int] = {}
    inbound: dict[tuple[str, ...], int] = {}
    cashed: dict[tuple[str, ...], int] = {}
    for e in journal.entries():
        if e.kind not in PAYMENT_KINDS or e.status is not Status.SUCCEEDED:
            continue
        key = (e.wallet_id,)
        inbound[key] = inbound.get(key, 0) + e.amount_sat
        if e.kind is Kind.CASHOUT:
            cashed[key] = cashed.get(key, 0) + e.amount_sat
        else:
            op = (e.wallet_id, "operator")
            fees[op] = fees.get(op, 0) + e.amount_sat
        routing = (e.wallet_id, "routing")
        fees[routing] = fees.get(routing, 0) + -(-(e.fee_msat or 0) // 1000)
    return {
        "fees_paid_sats": fees,
        "inbound_created_sats": inbound,
        "cashed_out_sats": cashed,
        "topups_paid_sats": {(w,): sat for w, sat in topups_paid_sat(journal).items()},
    }


class Book:
    """What the test wrote, and the counters it implies (independently of the journal)."""

    def __init__(self) -> None:
        self.payments: dict[int, tuple[str, Kind, int, Status, int | None]] = {}
        self.topups: dict[str, tuple[str, int]] = {}

    def expected(self) -> dict[str, dict[tuple[str, ...], int]]:
        out: dict[str, dict[tuple[str, ...], int]] = {
            "fees_paid_sats": {},
            "inbound_created_sats": {},
            "cashed_out_sats": {},
            "topups_paid_sats": {},
        }
        for wallet, kind, amount, status, fee_msat in self.payments.values():
            if status is not Status.SUCCEEDED:
                continue
            inbound = out["inbound_created_sats"]
            inbound[(wallet,)] = inbound.get((wallet,), 0) + amount
            if kind is Kind.CASHOUT:
                cashed = out["cashed_out_sats"]
                cashed[(wallet,)] = cashed.get((wallet,), 0) + amount
            else:
                fees = out["fees_paid_sats"]
                fees[(wallet, "operator")] = fees.get((wallet, "operator"), 0) + amount
            fees = out["fees_paid_sats"]
            sats = 0 if fee_msat is None else (fee_msat + 999) // 1000  # up to a whole sat
            fees[(wallet, "routing")] = fees.get((wallet, "routing"), 0) + sats
        topups = out["topups_paid_sats"]
        for wallet, amount in self.topups.values():
            topups[(wallet,)] = topups.get((wallet,), 0) + amount
        return out


def write_history(
    journal: Journal, book: Book, rng: random.Random, n: int, topups: float = 0.05
) -> None:
    """``n`` entries of every kind and outcome, a few payments left pending, and top-ups
    paid (a share ``topups`` of ``n``)."""
    for i in range(n):
        wallet = rng.choice(WALLETS)
        now = NOW + timedelta(minutes=len(book.payments) + i)
        roll = rng.random()
        if roll < 0.45:  # most of a year's journal is top-up invoices and their withdrawals
            kind = rng.choice((Kind.TOPUP_INVOICE, Kind.TOPUP_INVALIDATED))
            journal.record_event(kind, wallet, rng.randrange(10_000, 500_000), "s", now=now)
        elif roll < 0.55:
            if journal.pending(wallet):  # one action in flight per wallet: settle it first
                settle_pending(journal, book, rng, wallet)
            kind = rng.choice((Kind.CHANNEL_OPEN, Kind.CHANNEL_CLOSE))
            e = journal.record_intent(kind, wallet, rng.randrange(100_000, 900_000), "n", now=now)
            journal.finish(e.id, rng.choice((Status.SUCCEEDED, Status.FAILED)), now=now)
        elif roll < 0.55 + topups:
            invoice = f"inv{len(book.topups)}"
            amount = rng.randrange(1, 400_000)
            journal.set_state(
                f"{TOPUP_PAID_PREFIX}{invoice}", {"wallet": wallet, "amount_sat": amount}, now=now
            )
            book.topups[invoice] = (wallet, amount)
        else:
            if journal.pending(wallet):
                settle_pending(journal, book, rng, wallet)
            kind = rng.choice(PAYMENT_KINDS)
            amount = rng.randrange(0, 300_000)
            e = journal.record_intent(
                kind, wallet, amount, "a@b", now=now, payment_hash=f"{len(book.payments):064x}"
            )
            status = rng.choice((Status.SUCCEEDED, Status.SUCCEEDED, Status.FAILED, None))
            fee_msat = rng.choice(FEES_MSAT)
            if status is not None:
                journal.finish(e.id, status, now=now, fee_msat=fee_msat)
            else:
                status, fee_msat = Status.PENDING, None
            book.payments[e.id] = (wallet, kind, amount, status, fee_msat)
    for wallet in WALLETS[:2]:  # payments in flight when the counters are read
        if not journal.pending(wallet):
            amount = rng.randrange(0, 300_000)
            e = journal.record_intent(
                Kind.FEE_PAYMENT, wallet, amount, "a@b", now=NOW, payment_hash=f"p{rng.random()}"
            )
            book.payments[e.id] = (wallet, Kind.FEE_PAYMENT, amount, Status.PENDING, None)
    # Other states under similar keys, and a value that is not an object: not top-ups paid.
    journal.set_state(f"topup:{rng.choice(WALLETS)}", {"wallet": "w1", "amount_sat": 7}, now=NOW)
    journal.set_state("topup_paid", {"wallet": "w1", "amount_sat": 11}, now=NOW)
    journal.set_state(f"{TOPUP_PAID_PREFIX}odd", 13, now=NOW)


def settle_pending(journal: Journal, book: Book, rng: random.Random, wallet: str) -> None:
    for e in journal.pending(wallet):
        status = rng.choice((Status.SUCCEEDED, Status.FAILED))
        fee_msat = rng.choice(FEES_MSAT)
        journal.finish(e.id, status, now=NOW, fee_msat=fee_msat)
        w, kind, amount, _, _ = book.payments[e.id]
        book.payments[e.id] = (w, kind, amount, status, fee_msat)


def vm_steps(journal: Journal, fn: Callable[[], Any]) -> int:
    """SQLite virtual-machine instructions ``fn`` runs on the journal: its cost in rows read."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    journal._conn.set_progress_handler(count, 1)
    try:
        fn()
    finally:
        journal._conn.set_progress_handler(None, 1)
    return steps


def test_money_counters_are_unchanged_on_a_long_mixed_journal(tmp_path: Path) -> None:
    rng = random.Random(7)
    journal = Journal.open(tmp_path)
    book = Book()
    for _ in range(6):  # counters read between batches: the kept sums stay exact
        write_history(journal, book, rng, 400)
        got = money_counters(journal)
        assert got == book.expected() == old_money_counters(journal)
    assert journal.pending(), "the history should end with payments in flight"
    assert any(p[4] is not None and p[4] % 1000 for p in book.payments.values())

    # Payments that were pending when summed, finished since: counted once, when final.
    for wallet in WALLETS:
        settle_pending(journal, book, rng, wallet)
    assert money_counters(journal) == book.expected() == old_money_counters(journal)

    # An entry already summed changed after all (never done, but must not go unseen).
    entry_id, (wallet, kind, amount, _, _) = next(
        (i, p) for i, p in book.payments.items() if p[3] is Status.SUCCEEDED
    )
    journal.finish(entry_id, Status.SUCCEEDED, now=NOW, fee_msat=5_001)
    book.payments[entry_id] = (wallet, kind, amount, Status.SUCCEEDED, 5_001)
    assert money_counters(journal) == book.expected() == old_money_counters(journal)

    # Another connection (another process) writing the journal: seen too.
    other = sqlite3.connect(tmp_path / JOURNAL_FILE)
    with other:
        other.execute("UPDATE actions SET status = 'failed' WHERE id = ?", (entry_id,))
        other.execute(
            "INSERT INTO actions (kind, wallet_id, amount_sat, destination, status, created_at,"
            " updated_at, fee_msat) VALUES ('cashout', 'w9', 4321, 'a@b', 'succeeded', ?, ?, 1)",
            (NOW.isoformat(), NOW.isoformat()),
        )
    other.close()
    new_id = max(e.id for e in journal.entries())
    book.payments[entry_id] = (wallet, kind, amount, Status.FAILED, 5_001)
    book.payments[new_id] = ("w9", Kind.CASHOUT, 4321, Status.SUCCEEDED, 1)
    assert money_counters(journal) == book.expected() == old_money_counters(journal)

    # A fresh reader of the same file sums the same.
    again = Journal.open(tmp_path)
    assert money_counters(again) == book.expected()
    again.close()
    journal.close()


def test_the_money_counters_cost_does_not_grow_with_the_journal(tmp_path: Path) -> None:
    rng = random.Random(3)
    costs = []
    for n in (500, 5_000):
        journal = Journal.open(tmp_path / str(n))
        book = Book()
        write_history(journal, book, rng, n, topups=0)
        write_history(journal, book, rng, 20, topups=0.45)  # a few paid: as many in both
        for wallet in WALLETS:  # an idle daemon has nothing in flight
            settle_pending(journal, book, rng, wallet)
        assert money_counters(journal) == book.expected()  # the first cycle sums everything
        journal.record_event(Kind.TOPUP_INVOICE, "w1", 1_000, "s", now=NOW)  # a cycle's news
        costs.append(vm_steps(journal, lambda j=journal: money_counters(j)))  # type: ignore[misc]
        assert money_counters(journal) == book.expected()
        journal.close()
    small, large = costs
    # Ten times the journal, the same cost.
    assert large < small * 2, costs


async def history_reads(sc: Scenario) -> list[str]:
    """Every read of the wallet's Lightning history, as it happens."""
    reads: list[str] = []
    backend = sc.daemon.backends[0]
    read = backend.lightning_history

    async def counting(wallet_id: str) -> Any:
        reads.append(wallet_id)
        return await read(wallet_id)

    backend.lightning_history = counting  # type: ignore[method-assign]
    return reads


async def test_an_idle_cycle_with_a_fee_due_does_not_read_the_wallet_history_each_time(
    tmp_path: Path,
) -> None:
    async with scenario(
        tmp_path,
        fee_rate=Decimal("0.01"),
        fee_start_date="2020-01-01",
        min_fee_payment_sat=5_000,  # 1% of 0.0015 BTC is due, and stays due: below this
        fee_lightning_address="operator@127.0.0.1",
    ) as sc:
        operator = use_operator(sc)
        await fund_and_open(sc)
        await sc.cycle()
        invoice = sc.sim.create_invoice(sc.store_id, "0.0015", currency="BTC")
        sc.sim.customer_pay(invoice, lightning=True)
        reads = await history_reads(sc)
        clock = [0.0]
        sc.daemon.fees.monotonic = lambda: clock[0]
        await sc.cycle()
        kept = sc.daemon.journal._totals  # the money counters' sums, kept between cycles
        for _ in range(6):
            sc.clock.advance(minutes=5)
            clock[0] += 300
            await sc.cycle()
            assert sc.daemon.fees._cache[sc.wallet_id].due_sat == 1_500
        assert reads == [sc.wallet_id], "the history is read once, not every cycle"
        assert kept is not None and sc.daemon.journal._totals is kept, "summed afresh"

        # The journal's fee payments change (an attempt that failed): read again, once.
        journal = sc.daemon.journal
        e = journal.record_intent(Kind.FEE_PAYMENT, sc.wallet_id, 1_500, operator, now=sc.clock())
        journal.finish(e.id, Status.FAILED, now=sc.clock(), detail="test")
        for _ in range(3):
            clock[0] += 300
            await sc.cycle()
        assert reads == [sc.wallet_id] * 2

        # Nothing changes for an hour: read again all the same (a payment made elsewhere).
        clock[0] += HISTORY_REREAD_SECONDS
        for _ in range(3):
            clock[0] += 300
            await sc.cycle()
        assert reads == [sc.wallet_id] * 3
        assert settled_to(sc, operator) == []


async def test_a_lost_journal_reads_the_wallet_history_before_paying_a_fee(
    tmp_path: Path,
) -> None:
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

        # The process restarts on a new, empty journal (the old volume is gone).
        fresh = Journal.open(tmp_path / "fresh")
        daemon = Daemon(
            sc.daemon.settings,
            sc.runtime.backends,
            fresh,
            sc.runtime.peers,
            sc.runtime.http,
            clock=sc.clock,
        )
        sc.daemon = daemon
        events: list[str] = []
        reads = await history_reads(sc)
        pay = daemon.executor.pay

        async def logged_pay(backend: Any, decision: Any) -> str:
            events.append(f"pay {decision.kind} after {len(reads)} history reads")
            return await pay(backend, decision)

        daemon.executor.pay = logged_pay  # type: ignore[method-assign]
        for _ in range(3):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        assert reads, "the new journal's first fee check read the wallet's history"
        assert not [e for e in events if "fee_payment" in e]
        assert settled_to(sc, operator) == [1_500], "a lost journal repaid the fee"
        assert daemon.fees._cache[sc.wallet_id].numbers["fees_paid_sat"] == 1_500

        # New revenue owes its own share, paid once, after a fresh read of the history.
        invoice = sc.sim.create_invoice(sc.store_id, "0.001", currency="BTC")
        sc.sim.customer_pay(invoice, lightning=True)
        for _ in range(3):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        assert settled_to(sc, operator) == [1_500, 1_000]
        [paid] = [e for e in events if "fee_payment" in e]
        assert paid != "pay fee_payment after 0 history reads"
