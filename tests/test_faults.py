"""Thousands of cycles against a simulated Bitcart that fails at random, money checked to the sat.

The real daemon (``Daemon.cycle``) runs against the simulator over loopback with random faults
on every call: 5xx, timeouts, dropped connections (before the server acts, in the simulator,
and after it acted, in a lossy client transport), malformed JSON and slow answers; Lightning
payments fail, or stay in flight, at random too. 20 stores: 10 on 8 managed wallets, 10 the
daemon only reminds about. Customers buy over Lightning and on-chain, merchants pay their
top-up invoices, blocks are mined, time moves minutes per cycle; cashouts and the operator's
fee are paid. Then faults stop, the clock passes every invoice's expiry, clean cycles
reconcile, and the journal must agree with the simulator's ledger to the sat.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from liquidityhelper.actions import PayLightningAddress
from liquidityhelper.executor import Executor
from liquidityhelper.journal import PAYMENT_KINDS, Journal, Kind, Status
from liquidityhelper.logs import configure_logging
from liquidityhelper.main import Daemon
from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.peerbook import NodePeerBook
from liquidityhelper.simulator import Simulator
from liquidityhelper.simulator.entities import PR_PAID
from liquidityhelper.simulator.errors import SimError
from liquidityhelper.simulator.faults import ALL_KINDS
from liquidityhelper.wallet.base import WalletBackend
from liquidityhelper.wiring import HTTP_LIMITS, HTTP_TIMEOUT, build_backends
from tests.scenario import Clock, scenario_settings

CYCLES = 2_000
STORES = 20
FAULT_RATE = 0.04  # of every HTTP request, on each of the three servers
LOST_REPLY_RATE = 0.02  # the server acted, the answer never came back
LOST_MONEY_REPLY_RATE = 0.15  # the same, for the calls that move money (pay, open, close)
INFLIGHT_RATE = 0.2  # of Lightning payments: the client gives up while the payment goes on
HOLD_RATE = 0.03  # per cycle: the next payment stays in flight for HOLD_S (real seconds)
HOLD_S = 0.3
PAYMENT_FAIL_RATE = 0.1  # Lightning payments that find no route
CLIENT_TIMEOUT_S = 0.05  # the adapter's; the simulator's "timeout" holds a request longer
SIM_TIMEOUT_S = 0.08


class LossyTransport(httpx.AsyncBaseTransport):
    """Faults the simulator cannot make, since it fails a request before handling it.

    ``rate`` of requests (``money_rate`` of those that move money): the server acts, then the
    answer is lost. ``inflight_rate`` of Lightning payments: the connection gives up while the
    payment is still on its way, and it goes on without us (held a while by the simulator when
    a "hold" outcome is queued).
    """

    def __init__(self, rng: random.Random) -> None:
        self.inner = httpx.AsyncHTTPTransport(limits=HTTP_LIMITS)
        self.rng = rng
        self.rate = 0.0
        self.money_rate = 0.0
        self.inflight_rate = 0.0
        self.lost: Counter[str] = Counter()
        self._background: set[asyncio.Task[None]] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/lnpay") and self.rng.random() < self.inflight_rate:
            task = asyncio.ensure_future(self._finish_alone(request))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            await asyncio.sleep(0.005)  # the request is on its way
            self.lost["inflight"] += 1
            raise httpx.ReadTimeout("no answer while the payment was in flight")
        response = await self.inner.handle_async_request(request)
        money = request.method == "POST" and path.endswith(("/lnpay", "/open", "/close"))
        if self.rng.random() < (self.money_rate if money else self.rate):
            await response.aread()
            await response.aclose()
            self.lost["reply"] += 1
            raise httpx.ReadError("connection reset after the request was handled")
        return response

    async def _finish_alone(self, request: httpx.Request) -> None:
        with contextlib.suppress(httpx.HTTPError):
            response = await self.inner.handle_async_request(request)
            await response.aread()
            await response.aclose()

    async def aclose(self) -> None:
        for task in list(self._background):
            await task
        await self.inner.aclose()


@dataclass
class Decided:
    """One payment decision and the journal entries it produced."""

    action: PayLightningAddress
    outcome: str
    entries: list[int] = field(default_factory=list)


@dataclass
class World:
    sim: Simulator
    clock: Clock
    daemon: Daemon
    journal: Journal
    transport: LossyTransport
    rng: random.Random
    store_ids: list[str]
    wallet_ids: list[str]
    addresses: list[str]
    decided: list[Decided] = field(default_factory=list)


def last_entry_id(journal: Journal) -> int:
    # Reading every entry twice per payment would be most of a 2,000-cycle run's time.
    row = journal._conn.execute("SELECT COALESCE(MAX(id), 0) FROM actions").fetchone()
    return int(row[0])


def record_decisions(world: World) -> None:
    """Wrap the executor's pay() to note each decision and the entries it journaled."""
    executor: Executor = world.daemon.executor
    real_pay = executor.pay

    async def pay(backend: WalletBackend, action: PayLightningAddress) -> str:
        before = last_entry_id(world.journal)
        outcome = await real_pay(backend, action)
        made = list(range(before + 1, last_entry_id(world.journal) + 1))
        world.decided.append(Decided(action, outcome, made))
        return outcome

    executor.pay = pay  # type: ignore[method-assign]


@asynccontextmanager
async def world(tmp_path: Path, seed: int) -> AsyncIterator[World]:
    clock = Clock()
    sim = Simulator(seed=seed, clock=lambda: clock.now.timestamp())
    sim.faults.timeout_s = SIM_TIMEOUT_S
    sim.faults.slow_ms = 20
    await sim.start()
    rng = random.Random(seed)
    sim.payment_faults.hold_seconds = HOLD_S
    transport = LossyTransport(random.Random(seed + 1))
    try:
        token = sim.create_user()
        store_ids = [sim.create_store(token, f"Shop {i}") for i in range(STORES)]
        # 6 stores with a wallet each, 2 pairs sharing one (one set of actions for both), and
        # 10 stores the daemon only reminds about: 5 without a wallet, 5 with Lightning off.
        groups = [[s] for s in store_ids[:6]] + [store_ids[6:8], store_ids[8:10]]
        wallet_ids = [sim.create_wallet(token, store_ids=g) for g in groups]
        for s in store_ids[15:]:
            sim.create_wallet(token, lightning=False, store_ids=[s])
        store_ids = store_ids[:10]  # where customers buy
        merchant = sim.add_lightning_address("merchant")
        operator = sim.add_lightning_address("operator")
        settings = scenario_settings(
            sim,
            token,
            tmp_path / "data",
            cashout_lightning_address=merchant,
            fee_rate=Decimal("0.01"),
            fee_start_date="2020-01-01",
            fee_lightning_address=operator,
            min_fee_payment_sat=100,
            cashout_backoff_seconds=900,
            topup_reminder_interval_seconds=3_600,
            max_concurrency=2,
            payment_timeout_seconds=10,
        )
        async with httpx.AsyncClient(
            timeout=HTTP_TIMEOUT, limits=HTTP_LIMITS, follow_redirects=False, transport=transport
        ) as http:
            journal = Journal.open(settings.data_dir)
            nodes = NodeDB.open_in_dir(settings.data_dir)
            nodes.import_seed_data(sim.network_nodes_json(), "simulator")
            peers = NodePeerBook(nodes, settings)
            backends = build_backends(
                settings,
                http,
                retry_attempts=2,
                retry_wait_seconds=0.001,
                retry_wait_max_seconds=0.002,
                timeout_seconds=CLIENT_TIMEOUT_S,
            )
            daemon = Daemon(settings, backends, journal, peers, http, clock=clock)
            w = World(
                sim,
                clock,
                daemon,
                journal,
                transport,
                rng,
                store_ids,
                wallet_ids,
                [merchant, operator],
            )
            record_decisions(w)
            try:
                yield w
            finally:
                for backend in backends:
                    await backend.aclose()
                journal.close()
                nodes.close()
    finally:
        await sim.stop()


def faults_on(w: World) -> None:
    w.sim.faults.set_rate(FAULT_RATE, kinds=ALL_KINDS)
    w.sim.payment_faults.set_rate(PAYMENT_FAIL_RATE)
    w.transport.rate = LOST_REPLY_RATE
    w.transport.money_rate = LOST_MONEY_REPLY_RATE
    w.transport.inflight_rate = INFLIGHT_RATE


def faults_off(w: World) -> None:
    w.sim.faults.clear()
    w.sim.payment_faults.clear()
    w.transport.rate = w.transport.money_rate = w.transport.inflight_rate = 0.0


def customers(w: World) -> None:
    """Random traffic: Lightning sales, on-chain sales, merchants paying their top-ups."""
    model = w.sim.model
    if w.rng.random() < HOLD_RATE:
        w.sim.payment_faults.push("hold")
    for store_id in w.rng.sample(w.store_ids, 3):
        if w.rng.random() > 0.07:
            continue
        sats = w.rng.randrange(1_000, 60_000)
        lightning = w.rng.random() < 0.8
        # No inbound yet, or no wallet: the customer walks away.
        with contextlib.suppress(SimError):
            invoice = w.sim.create_invoice(store_id, Decimal(sats) / 10**8, currency="BTC")
            w.sim.customer_pay(invoice, lightning=lightning)
    for inv in list(model.invoices.values()):
        topup = inv.metadata.get("liquidityhelper") == "topup"
        if topup and inv.status == "pending" and w.rng.random() < 0.3:
            with contextlib.suppress(SimError):  # expired meanwhile
                w.sim.customer_pay(inv.id, lightning=False)


async def run_cycles(w: World, n: int, *, traffic: bool) -> list[int]:
    errors = []
    for i in range(n):
        if traffic:
            customers(w)
        report = await w.daemon.cycle()  # raising here would be the loop stopping
        errors.append(len(report.section_errors))
        w.clock.advance(minutes=w.rng.choice([1, 2, 5]))
        if i % 3 == 2:
            await w.sim.mine(1)
    return errors


def check_money(w: World) -> dict[str, int]:
    """Every invariant about money; returns a few counts for the progress assertions."""
    journal, sim = w.journal, w.sim
    entries = [e for e in journal.entries() if e.kind in PAYMENT_KINDS]
    by_hash = {e.payment_hash: e for e in entries}
    assert len(by_hash) == len(entries)  # one invoice, one entry
    assert journal.pending() == []

    # Each decision: at most one payment succeeded, never more than decided.
    for d in w.decided:
        made = [journal.get(i) for i in d.entries]
        assert all(e.amount_sat <= d.action.amount_sat for e in made), d
        assert all(e.destination == d.action.address for e in made), d
        assert all(e.wallet_id == d.action.wallet_id for e in made), d
        assert sum(e.status is Status.SUCCEEDED for e in made) <= 1, d
    decided_ids = [i for d in w.decided for i in d.entries]
    assert sorted(decided_ids) == sorted(e.id for e in entries)  # no entry without a decision

    # Each simulated payment: one journal entry, same amount, same outcome.
    paid = [p for p in sim.payments if p.status == PR_PAID]
    assert len({p.payment_hash for p in paid}) == len(paid)
    for p in sim.payments:
        entry = by_hash.get(p.payment_hash)
        assert entry is not None, f"the wallet paid {p.payment_hash}, the journal never asked"
        assert p.amount_msat == entry.amount_sat * 1000
        if p.status == PR_PAID:
            assert entry.status is Status.SUCCEEDED, entry
            if entry.fee_msat is not None:
                assert entry.fee_msat == p.fee_msat
        else:
            assert entry.status is Status.FAILED, entry
    succeeded = [e for e in entries if e.status is Status.SUCCEEDED]
    assert {e.payment_hash for e in succeeded} == {p.payment_hash for p in paid}

    # Per destination, the journal's principal equals what the address received, to the sat.
    for address in w.addresses:
        journaled = sum(e.amount_sat for e in succeeded if e.destination == address)
        assert sim.received_by_address(address) == journaled * 1000, address

    # Channel opens: every channel the wallets have was journaled once, as succeeded.
    opens = journal.entries(kind=Kind.CHANNEL_OPEN)
    refs = [e.reference for e in opens if e.status is Status.SUCCEEDED]
    assert len(refs) == len(set(refs))
    chans = {c.channel_point for wid in w.wallet_ids for c in sim.channels(wid)}
    assert set(refs) == chans
    details = Counter(e.detail.split(":")[0] for e in entries)
    return {
        "decisions": len(w.decided),
        "payments": len(succeeded),
        "failed_payments": len(entries) - len(succeeded),
        "cashouts": sum(e.kind is Kind.CASHOUT for e in succeeded),
        "fee_payments": sum(e.kind is Kind.FEE_PAYMENT for e in succeeded),
        "paid_reply_lost": sum(e.detail == "reconciled: paid" for e in entries),
        "expired_unpaid": details["expired unpaid"],
        "channels": len(chans),
        "opens_reconciled": sum(e.detail == "reconciled" for e in opens),
    }


@pytest.mark.slow
async def test_thousands_of_faulty_cycles_lose_and_double_nothing(tmp_path: Path) -> None:
    configure_logging("CRITICAL", "json", stream=io.StringIO())
    async with world(tmp_path, seed=11) as w:
        faults_on(w)
        section_errors = await run_cycles(w, CYCLES, traffic=True)
        faults_off(w)
        w.clock.advance(hours=2)  # every invoice handed out has expired
        for _ in range(30):  # a spurious client timeout may leave one more to reconcile
            section_errors += await run_cycles(w, 1, traffic=False)
            if not w.journal.pending():
                break
        counts = check_money(w)
        faults = Counter(kind for _, _, kind in w.sim.faults.history)
        lost = dict(w.transport.lost)
    print(counts, dict(faults), lost)  # shown with -s
    assert sum(section_errors) == 0
    # The run went through every kind of fault and every hard path, not around them.
    assert set(faults) == {k.value for k in ALL_KINDS}, faults
    assert lost.get("reply", 0) > 50 and lost.get("inflight", 0) > 5, lost
    assert counts["cashouts"] >= 100 and counts["fee_payments"] >= 50, counts
    assert counts["channels"] >= 8, counts
    assert counts["paid_reply_lost"] >= 1 and counts["expired_unpaid"] >= 1, counts
    assert counts["opens_reconciled"] >= 1, counts
