"""The operator fee's revenue over a long history: requests and time of an idle cycle.

    python -m benchmarks.revenue --invoices 100000 --stores 10

One merchant with ``--stores`` stores sharing one managed wallet, each with its share of
``--invoices`` paid invoices (on-chain, tiny amounts, already confirmed), the operator fee on.
The daemon (as ``liquidityhelper run`` builds it) runs one cold cycle, which reads the whole
history once and keeps its revenue behind a cursor in the journal, then idle cycles, which read
only invoices created since the oldest one still open. Printed: invoice requests and seconds of
the cold cycle and of each idle cycle, and the revenue each saw. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from pathlib import Path

from benchmarks.idle_cycle import count_calls

TARGET_REQUESTS_PER_STORE = 1  # per idle cycle, whatever the history


async def run(invoices: int, stores: int, idle_cycles: int) -> None:
    from liquidityhelper.config import load_settings
    from liquidityhelper.logs import configure_logging
    from liquidityhelper.main import Daemon
    from liquidityhelper.simulator import Simulator
    from liquidityhelper.wiring import build_runtime

    configure_logging("WARNING", "json", stream=io.StringIO())
    async with Simulator(seed=4) as sim:
        token = sim.create_user()
        store_ids = [sim.create_store(token, f"Shop {i}") for i in range(stores)]
        wallet_id = sim.create_wallet(token, store_ids=store_ids)
        start = time.perf_counter()
        for i in range(invoices):
            invoice = sim.create_invoice(store_ids[i % stores], "0.00001", currency="BTC")
            sim.customer_pay(invoice, lightning=False)
        await sim.mine(1)
        print(f"history: {invoices:,} paid invoices over {stores} stores, built in "
              f"{time.perf_counter() - start:.0f} s")
        calls = count_calls(sim)
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(
                api_url=sim.api_url,
                api_token=token,
                daemon_url=sim.rpc_url,
                daemon_user=sim.rpc_user,
                daemon_password=sim.rpc_password,
                network="regtest",
                data_dir=Path(tmp),
                cashout_lightning_address=sim.add_lightning_address("merchant"),
                fee_rate="0.01",
                fee_start_date="2020-01-01",
                fee_lightning_address=sim.add_lightning_address("operator"),
            )
            async with build_runtime(settings) as rt:
                daemon = Daemon(settings, rt.backends, rt.journal, rt.peers, rt.http)
                for n in range(idle_cycles + 1):
                    calls.clear()
                    start = time.perf_counter()
                    await daemon.cycle()
                    seconds = time.perf_counter() - start
                    requests = calls[("rest", "/invoices")]
                    cached = daemon.fees._cache.get(wallet_id)
                    revenue = cached.numbers["revenue_sat"] if cached else 0
                    label = "cold cycle" if n == 0 else f"idle cycle {n}"
                    verdict = ""
                    if n:
                        ok = requests <= TARGET_REQUESTS_PER_STORE * stores
                        verdict = f"  (target <= {stores}: {'ok' if ok else 'MISSED'})"
                    print(
                        f"{label:<14} {requests:>5} invoice requests  {seconds:7.3f} s  "
                        f"revenue {revenue:,} sat{verdict}"
                    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--idle-cycles", type=int, default=3)
    args = parser.parse_args(argv)
    asyncio.run(run(args.invoices, args.stores, args.idle_cycles))


if __name__ == "__main__":
    main()
