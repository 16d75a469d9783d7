"""The daemon as a real process, killed with SIGKILL at random moments, restarted, and checked.

``python -m liquidityhelper run`` runs against a simulator in the test process while the test
plays customers and miners: stores sell over Lightning, merchants pay their top-ups, blocks
come. The process is killed (seeded RNG) at random times and right after it starts a payment
or a channel open, then restarted on the same data directory. In the end SIGTERM must let the
payment under way finish and exit 0; a last reconciliation (the clock past every invoice's
expiry) must leave nothing pending, and the journal must agree with the simulator to the sat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from liquidityhelper.journal import PAYMENT_KINDS, Journal, Kind, Status
from liquidityhelper.main import Daemon
from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.simulator import Simulator
from liquidityhelper.simulator.config import SimConfig
from liquidityhelper.simulator.entities import PR_PAID
from liquidityhelper.simulator.errors import SimError
from liquidityhelper.wiring import build_runtime
from tests.scenario import scenario_settings

KILLS = 60
WALLETS = 8
TRIGGERS = ("payment_sending", "channel_open_sent", "lnpay_result", "channel_opened")
# Killed between journaling a payment and sending it, the entry waits for its invoice to
# expire: keep that short (the LNURL client wants 60 s left when it gets one).
INVOICE_EXPIRY_S = 75


@dataclass
class Run:
    """One daemon process and the JSON log lines it wrote."""

    proc: asyncio.subprocess.Process
    events: list[dict[str, Any]] = field(default_factory=list)
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").strip()
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not a log line, or one a SIGKILL cut short
            if not isinstance(event, dict) or "event" not in event:
                continue
            self.events.append(event)
            if event["event"] in TRIGGERS:
                self.seen.set()

    async def wait_for(self, name: str, timeout: float) -> dict[str, Any] | None:
        end = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < end:
            found = [e for e in self.events if e["event"] == name]
            if found:
                return found[-1]
            if self.proc.returncode is not None:
                return None
            await asyncio.sleep(0.01)
        return None


def daemon_env(
    sim: Simulator, token: str, data_dir: Path, merchant: str, operator: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQUIDITYHELPER_")}
    env.update(
        {
            "LIQUIDITYHELPER_API_URL": sim.api_url,
            "LIQUIDITYHELPER_API_TOKEN": token,
            "LIQUIDITYHELPER_DAEMON_URL": sim.rpc_url,
            "LIQUIDITYHELPER_DAEMON_USER": sim.rpc_user,
            "LIQUIDITYHELPER_DAEMON_PASSWORD": sim.rpc_password,
            "LIQUIDITYHELPER_NETWORK": "regtest",
            "LIQUIDITYHELPER_DATA_DIR": str(data_dir),
            "LIQUIDITYHELPER_POLL_INTERVAL_SECONDS": "1",
            "LIQUIDITYHELPER_LOG_FORMAT": "json",
            "LIQUIDITYHELPER_MAX_ONCHAIN_FEE_RATE": "50",
            "LIQUIDITYHELPER_CASHOUT_LIGHTNING_ADDRESS": merchant,
            "LIQUIDITYHELPER_CASHOUT_BACKOFF_SECONDS": "5",
            "LIQUIDITYHELPER_FEE_RATE": "0.01",
            "LIQUIDITYHELPER_FEE_START_DATE": "2020-01-01",
            "LIQUIDITYHELPER_FEE_LIGHTNING_ADDRESS": operator,
            "LIQUIDITYHELPER_MIN_FEE_PAYMENT_SAT": "100",
            "LIQUIDITYHELPER_MIN_CASHOUT_SAT": "5000",
        }
    )
    return env


async def start(env: dict[str, str]) -> Run:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "liquidityhelper",
        "run",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        limit=1 << 22,  # a traceback in a log line can be long
    )
    run = Run(proc)
    run.reader = asyncio.create_task(run.read())
    return run


async def finish(run: Run, timeout: float = 30) -> int:
    returncode = await asyncio.wait_for(run.proc.wait(), timeout)
    if run.reader is not None:
        await asyncio.wait_for(run.reader, timeout)
    return returncode


@dataclass
class Shop:
    sim: Simulator
    token: str
    store_ids: list[str]
    wallet_ids: list[str]
    merchant: str
    operator: str
    rng: random.Random


async def customers_and_miners(shop: Shop, stop: asyncio.Event) -> None:
    """Sales over Lightning, top-ups paid on-chain, a block every couple of seconds."""
    sim, rng = shop.sim, shop.rng
    tick = 0
    while not stop.is_set():
        tick += 1
        store_id = rng.choice(shop.store_ids)
        with contextlib.suppress(SimError):  # no inbound yet: the customer walks away
            sale = sim.create_invoice(
                store_id, Decimal(rng.randrange(5_000, 40_000)) / 10**8, currency="BTC"
            )
            sim.customer_pay(sale, lightning=True)
        for inv in list(sim.model.invoices.values()):
            if inv.metadata.get("liquidityhelper") == "topup" and inv.status == "pending":
                with contextlib.suppress(SimError):
                    sim.customer_pay(inv.id, lightning=False)
        if rng.random() < 0.3:
            sim.payment_faults.push("hold")  # the next payment stays in flight a while
        if tick % 4 == 0:
            await sim.mine(1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


@asynccontextmanager
async def shop_world(seed: int) -> AsyncIterator[Shop]:
    config = SimConfig(lnurl_invoice_expiry_s=INVOICE_EXPIRY_S)
    async with Simulator(seed=seed, config=config) as sim:
        sim.faults.latency_ms = 5  # widen the windows a kill can land in
        sim.payment_faults.hold_seconds = 0.5
        token = sim.create_user()
        store_ids = [sim.create_store(token, f"Shop {i}") for i in range(WALLETS)]
        wallet_ids = [sim.create_wallet(token, store_ids=[s]) for s in store_ids]
        merchant = sim.add_lightning_address("merchant")
        operator = sim.add_lightning_address("operator")
        yield Shop(sim, token, store_ids, wallet_ids, merchant, operator, random.Random(seed))


async def kill_at_random(env: dict[str, str], rng: random.Random, kills: int) -> Counter[str]:
    """Start, let it work a random while (or until it starts moving money), SIGKILL; again."""
    how: Counter[str] = Counter()
    for _ in range(kills):
        run = await start(env)
        if rng.random() < 0.5:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.seen.wait(), 4)
            await asyncio.sleep(rng.uniform(0, 0.03))
            how["after_" + (run.events[-1]["event"] if run.events else "nothing")] += 1
        else:
            await asyncio.sleep(rng.uniform(0.3, 2.5))
            how["random"] += 1
        assert run.proc.returncode is None, "the daemon stopped by itself"
        run.proc.send_signal(signal.SIGKILL)
        assert await finish(run) == -signal.SIGKILL
        assert not [e for e in run.events if e["event"] in ("section_failed", "wallet_failed")]
    return how


async def stop_during_a_payment(shop: Shop, env: dict[str, str]) -> list[dict[str, Any]]:
    """SIGTERM while a payment is in flight: it finishes, is recorded, and the exit is 0."""
    run = await start(env)
    sending = None
    for _ in range(20):
        shop.sim.payment_faults.push("hold")
        for store_id in shop.store_ids:
            with contextlib.suppress(SimError):
                sale = shop.sim.create_invoice(store_id, Decimal("0.0002"), currency="BTC")
                shop.sim.customer_pay(sale, lightning=True)
        sending = await run.wait_for("payment_sending", 3)
        if sending is not None:
            break
    assert sending is not None, "no payment started within a minute"
    run.proc.send_signal(signal.SIGTERM)
    assert await finish(run) == 0
    after = run.events[run.events.index(sending) :]
    names = [e["event"] for e in after]
    assert "stopping" in names and names[-1] == "stopped"
    ends = ("payment_succeeded", "payment_failed", "payment_outcome_unknown")
    outcome = [e for e in after if e["event"] in ends and e.get("entry") == sending["entry"]]
    assert len(outcome) == 1, names
    # The signal came while the payment was in flight; its outcome was still written down.
    assert names.index("stopping") < names.index(outcome[0]["event"])
    return run.events


async def reconcile_later(shop: Shop, data_dir: Path) -> None:
    """One more restart, hours later: every pending entry is settled against the wallet."""
    settings = scenario_settings(shop.sim, shop.token, data_dir)
    later = datetime.now(UTC) + timedelta(hours=3)
    async with build_runtime(settings) as rt:
        daemon = Daemon(settings, rt.backends, rt.journal, rt.peers, rt.http, clock=lambda: later)
        snapshot = await daemon.fetch_snapshot()
        for wallet_id in sorted({e.wallet_id for e in rt.journal.pending()}):
            snap = snapshot.wallets[wallet_id]
            await daemon.executor.reconcile(rt.backends[0], wallet_id, snap)


def check_money(shop: Shop, data_dir: Path) -> dict[str, int]:
    sim = shop.sim
    journal = Journal.open(data_dir)
    try:
        assert journal.pending() == []
        entries = [e for e in journal.entries() if e.kind in PAYMENT_KINDS]
        by_hash = {e.payment_hash: e for e in entries}
        paid = [p for p in sim.payments if p.status == PR_PAID]
        assert len({p.payment_hash for p in paid}) == len(paid)  # no invoice paid twice
        for p in sim.payments:
            entry = by_hash.get(p.payment_hash)
            assert entry is not None, "the wallet paid an invoice the journal never recorded"
            assert p.amount_msat == entry.amount_sat * 1000
            want = Status.SUCCEEDED if p.status == PR_PAID else Status.FAILED
            assert entry.status is want, (entry, p.status)
        succeeded = [e for e in entries if e.status is Status.SUCCEEDED]
        assert {e.payment_hash for e in succeeded} == {p.payment_hash for p in paid}
        for address in (shop.merchant, shop.operator):
            journaled = sum(e.amount_sat for e in succeeded if e.destination == address)
            assert sim.received_by_address(address) == journaled * 1000, address
        opens = journal.entries(kind=Kind.CHANNEL_OPEN)
        refs = [e.reference for e in opens if e.status is Status.SUCCEEDED]
        assert len(refs) == len(set(refs))
        chans = {c.channel_point for wid in shop.wallet_ids for c in sim.channels(wid)}
        assert set(refs) == chans
        return {
            "payments": len(succeeded),
            "failed_payments": len(entries) - len(succeeded),
            "channels": len(chans),
            "reconciled_paid": sum(e.detail == "reconciled: paid" for e in entries),
            "expired_unpaid": sum(e.detail == "expired unpaid" for e in entries),
        }
    finally:
        journal.close()


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with shop_world(seed=5) as shop:
        with NodeDB.open_in_dir(data_dir) as nodes:
            nodes.import_seed_data(shop.sim.network_nodes_json(), "simulator")
        env = daemon_env(shop.sim, shop.token, data_dir, shop.merchant, shop.operator)
        stop = asyncio.Event()
        traffic = asyncio.create_task(customers_and_miners(shop, stop))
        try:
            how = await kill_at_random(env, random.Random(7), KILLS)
        finally:
            stop.set()
            await traffic
        await stop_during_a_payment(shop, env)
        await reconcile_later(shop, data_dir)
        counts = check_money(shop, data_dir)
    print(how, counts)
    assert sum(how.values()) >= 50
    assert counts["payments"] >= 20 and counts["channels"] >= WALLETS, counts
