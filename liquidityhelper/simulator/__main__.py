"""Run a standalone simulator: ``python -m liquidityhelper.simulator --seed 1 --demo``.

Prints where its servers listen and a bootstrap token, then runs until Ctrl-C. With
``--demo`` it also creates a merchant with a funded Lightning wallet and a store, and writes
the network's nodes (the shape of ``seed_nodes.json``) when ``--nodes-out`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

from liquidityhelper.logs import configure_logging
from liquidityhelper.simulator.config import SimConfig
from liquidityhelper.simulator.server import Simulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m liquidityhelper.simulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port-api", type=int, default=0)
    p.add_argument("--port-rpc", type=int, default=0)
    p.add_argument("--port-lnurl", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--network", default="regtest", choices=["regtest", "testnet", "signet", "mainnet"]
    )
    p.add_argument("--fee-rate", type=int, default=5, help="on-chain estimate in sat/vB")
    p.add_argument(
        "--no-fee-estimates",
        action="store_true",
        help="no estimate for any target (regtest then reads 150 sat/vB, like a fresh node)",
    )
    p.add_argument("--block-interval", type=float, default=None, help="mine a block every N s")
    p.add_argument("--rpc-user", default="electrum")
    p.add_argument("--rpc-password", default="electrumz")
    p.add_argument("--demo", action="store_true", help="create a demo merchant, wallet and store")
    p.add_argument("--demo-stores", type=int, default=1)
    p.add_argument("--nodes-out", default=None, help="write the network's nodes as JSON here")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def _demo(sim: Simulator, token: str, stores: int) -> dict[str, object]:
    wallet_id = sim.create_wallet(token, "liquidityhelper")
    store_ids = [
        sim.create_store(token, f"Demo store {i + 1}", "USD", [wallet_id]) for i in range(stores)
    ]
    sim.fund_wallet(wallet_id, 5_000_000)
    address = sim.add_lightning_address("cashout")
    return {"wallet_id": wallet_id, "store_ids": store_ids, "lightning_address": address}


async def run(args: argparse.Namespace) -> None:
    fee_rate = None if args.no_fee_estimates else args.fee_rate
    config = SimConfig(network=args.network, fee_rate_sat_vb=fee_rate)
    sim = Simulator(
        args.seed,
        config=config,
        host=args.host,
        api_port=args.port_api,
        rpc_port=args.port_rpc,
        lnurl_port=args.port_lnurl,
        rpc_user=args.rpc_user,
        rpc_password=args.rpc_password,
        block_interval_s=args.block_interval,
    )
    await sim.start()
    token = sim.create_user("admin@example.com")
    info: dict[str, object] = {
        "api_url": sim.api_url,
        "rpc_url": sim.rpc_url,
        "rpc_user": sim.rpc_user,
        "rpc_password": sim.rpc_password,
        "lnurl_base": sim.lnurl_base,
        "token": token,
    }
    if args.demo:
        info.update(_demo(sim, token, args.demo_stores))
    if args.nodes_out:
        with open(args.nodes_out, "w", encoding="utf-8") as fh:
            json.dump(sim.network_nodes_json(), fh, indent=1)
    sys.stdout.write(json.dumps(info, indent=1) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level)  # to stderr: stdout carries the URLs and token
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
