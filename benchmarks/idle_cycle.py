"""One idle cycle of the real daemon over W wallets against the simulator, with latency.

    python -m benchmarks.idle_cycle --wallets 1000 --latency-ms 20 --concurrency 16

The simulator runs in its own process (so its CPU is not the daemon's) with ``latency-ms``
added to every answer. Its wallets look like real idle ones: two open channels to trampolines
with inbound above target, a little local balance (below the cashout minimum) and some
on-chain sats (too few for another channel); one store each, every fifth wallet shared by a
second store. The daemon (``Daemon.cycle``, as ``liquidityhelper run`` builds it, cashouts
on, fees off) runs one warm-up cycle, then the measured one.

Printed: cycle seconds; the floor ``⌈W/C⌉ × L × calls on the critical path`` (a wallet's own
calls, balance then channels, run one after the other: all are on its path) and the cycle's
ratio to it; the start-of-cycle listing (pages of stores and wallets, daemon facts) that comes
before the wallets and is not in that floor; API calls per wallet, by path; peak RSS of the
daemon's process. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import multiprocessing
import os
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

TARGET_RATIO = 2.0
TARGET_CALLS_PER_WALLET = 3.0
TARGET_RSS_MB = 80.0
# Asked once per cycle (pages of stores and of wallets, daemon-wide facts), not per wallet.
LISTING_CALLS = {
    ("rest", "/stores"),
    ("rest", "/wallets"),
    ("rpc", "getconfig"),
    ("rpc", "recommended_fee"),
    ("rpc", "getfeerate"),
}
_ID = re.compile(r"/[0-9A-Z]{26}")  # the simulator's ULIDs in REST paths


# --- the simulator's process ------------------------------------------------------------------


def serve_simulator(conn: Connection, wallets: int, latency_ms: int, seed: int) -> None:
    asyncio.run(_serve(conn, wallets, latency_ms, seed))


async def _serve(conn: Connection, wallets: int, latency_ms: int, seed: int) -> None:
    from liquidityhelper.logs import configure_logging
    from liquidityhelper.simulator import Simulator

    configure_logging("WARNING", "json", stream=io.StringIO())
    async with Simulator(seed=seed) as sim:
        info = populate(sim, wallets)
        calls = count_calls(sim)
        sim.faults.latency_ms = latency_ms
        conn.send(info)
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "reset":
                calls.clear()
                conn.send(None)
            elif command == "calls":
                conn.send(dict(calls))
            else:
                conn.send(None)
                return


def count_calls(sim: Any) -> Counter[tuple[str, str]]:
    """Count every request the simulator answers, by target and path (ids folded)."""
    calls: Counter[tuple[str, str]] = Counter()
    pick = sim.faults.pick

    def counting_pick(target: str, key: str) -> Any:
        calls[(target, _ID.sub("/{id}", key))] += 1
        return pick(target, key)

    sim.faults.pick = counting_pick
    return calls


def populate(sim: Any, wallets: int) -> dict[str, Any]:
    """W idle wallets: at their liquidity goal, nothing to cash out, nothing to open."""
    token = sim.create_user()
    trampolines = [n.pubkey for n in sim.trampolines()]
    stores = 0
    for i in range(wallets):
        store_ids = [sim.create_store(token, f"Shop {i}")]
        if i % 5 == 0:
            store_ids.append(sim.create_store(token, f"Shop {i} bis"))
        stores += len(store_ids)
        wallet_id = sim.create_wallet(token, store_ids=store_ids)
        sim.fund_wallet(wallet_id, 30_000)
        for peer in trampolines[:2]:
            sim.open_channel_direct(wallet_id, peer, 300_000, local_sat=4_000)
    return {
        "api_url": sim.api_url,
        "rpc_url": sim.rpc_url,
        "rpc_user": sim.rpc_user,
        "rpc_password": sim.rpc_password,
        "token": token,
        "cashout": sim.add_lightning_address("merchant"),
        "nodes": sim.network_nodes_json(),
        "stores": stores,
    }


# --- the daemon's side ------------------------------------------------------------------------


async def measure(info: dict[str, Any], conn: Connection, args: argparse.Namespace) -> None:
    from liquidityhelper.config import load_settings
    from liquidityhelper.logs import configure_logging
    from liquidityhelper.main import Daemon
    from liquidityhelper.wiring import build_runtime

    configure_logging("INFO", "json", stream=open(os.devnull, "w"))  # noqa: SIM115
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(
            api_url=info["api_url"],
            api_token=info["token"],
            daemon_url=info["rpc_url"],
            daemon_user=info["rpc_user"],
            daemon_password=info["rpc_password"],
            network="regtest",
            data_dir=Path(data_dir),
            max_concurrency=args.concurrency,
            cashout_lightning_address=info["cashout"],
        )
        async with build_runtime(settings) as rt:
            rt.nodes.import_seed_data(info["nodes"], "simulator")
            daemon = Daemon(settings, rt.backends, rt.journal, rt.peers, rt.http)
            start = time.perf_counter()
            first = await daemon.cycle()
            first_s = time.perf_counter() - start
            conn.send("reset")
            conn.recv()
            start = time.perf_counter()
            report = await daemon.cycle()
            cycle_s = time.perf_counter() - start
            conn.send("calls")
            calls: dict[tuple[str, str], int] = conn.recv()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    show(args, info, first_s, first.wallets, cycle_s, report, calls, rss_mb)


def show(
    args: argparse.Namespace,
    info: dict[str, Any],
    first_s: float,
    first_wallets: int,
    cycle_s: float,
    report: Any,
    calls: dict[tuple[str, str], int],
    rss_mb: float,
) -> None:
    w, c, latency = args.wallets, args.concurrency, args.latency_ms / 1000
    total = sum(calls.values())
    listing = {k: n for k, n in calls.items() if k in LISTING_CALLS}
    # A wallet's own calls run one after the other: all of them are on its critical path.
    per_wallet_path = (total - sum(listing.values())) / w
    floor = math.ceil(w / c) * latency * per_wallet_path
    pages = max(calls.get(("rest", "/stores"), 0), calls.get(("rest", "/wallets"), 0))
    prefix = (pages + len(listing) - 2) * latency  # the longer listing, then daemon facts
    idle = report.actions == 0 and not report.section_errors and report.wallets == w

    ratio, per = cycle_s / floor, total / w
    row("python, CPUs", f"{sys.version.split()[0]}, {os.cpu_count()}")
    row("wallets W", f"{w} ({info['stores']} stores)")
    row("latency L, concurrency C", f"{args.latency_ms} ms, {c}")
    row("first cycle (cold)", f"{first_s:.3f} s ({first_wallets} wallets)")
    row("idle cycle", f"{cycle_s:.3f} s (idle: {idle}, {report.actions} actions)")
    row("calls on a wallet's path", f"{per_wallet_path:.2f} (one after the other)")
    row("floor ⌈W/C⌉ × L × calls", f"{floor:.3f} s")
    row("ratio", f"{ratio:.2f}", target(ratio, TARGET_RATIO))
    row("  listing before the wallets", f"{prefix:.3f} s ({pages} pages, then daemon facts)")
    row("  ratio to floor + listing", f"{cycle_s / (floor + prefix):.2f}")
    row("API calls per wallet", f"{per:.2f}", target(per, TARGET_CALLS_PER_WALLET))
    for (kind, path), n in sorted(calls.items(), key=lambda kv: -kv[1]):
        print(f"  {n:6d}  {kind:5s} {path}")
    row("peak RSS (daemon process)", f"{rss_mb:.1f} MB", target(rss_mb, TARGET_RSS_MB))


def row(label: str, value: str, note: str = "") -> None:
    print(f"{label:<32}{value}{'   ' + note if note else ''}")


def target(value: float, limit: float) -> str:
    return f"(target <= {limit:g}: {'ok' if value <= limit else 'MISSED'})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wallets", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(
        target=serve_simulator, args=(there, args.wallets, args.latency_ms, args.seed)
    )
    child.start()
    try:
        info = here.recv()
        asyncio.run(measure(info, here, args))
    finally:
        here.send("stop")
        here.recv()
        child.join(10)


if __name__ == "__main__":
    main()
