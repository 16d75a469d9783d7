"""What an idle cycle costs, in calls (the benchmark's figures that do not depend on time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.idle_cycle import LISTING_CALLS, count_calls, populate
from liquidityhelper.config import load_settings
from liquidityhelper.main import Daemon
from liquidityhelper.simulator import Simulator
from liquidityhelper.wiring import build_runtime

WALLETS = 20


async def test_an_idle_cycle_asks_two_calls_per_wallet_and_ranks_no_peer(tmp_path: Path) -> None:
    async with Simulator(seed=2) as sim:
        info = populate(sim, WALLETS)
        calls = count_calls(sim)
        settings = load_settings(
            api_url=info["api_url"],
            api_token=info["token"],
            daemon_url=info["rpc_url"],
            daemon_user=info["rpc_user"],
            daemon_password=info["rpc_password"],
            network="regtest",
            data_dir=tmp_path,
            cashout_lightning_address=info["cashout"],
        )
        async with build_runtime(settings) as rt:
            rt.nodes.import_seed_data(info["nodes"], "simulator")
            ranked: list[str] = []
            candidates = rt.peers.candidates

            def counting_candidates(wallet_id: str, *args: Any, **kwargs: Any) -> Any:
                ranked.append(wallet_id)
                return candidates(wallet_id, *args, **kwargs)

            rt.peers.candidates = counting_candidates  # type: ignore[method-assign]
            daemon = Daemon(settings, rt.backends, rt.journal, rt.peers, rt.http)
            await daemon.cycle()
            calls.clear()
            report = await daemon.cycle()

    assert report.wallets == WALLETS and report.actions == 0 and not report.section_errors
    per_wallet = {k: n for k, n in calls.items() if k not in LISTING_CALLS}
    assert per_wallet == {
        ("rest", "/wallets/{id}/balance"): WALLETS,
        ("rest", "/wallets/{id}/channels"): WALLETS,
    }
    assert sum(calls.values()) / WALLETS <= 3
    assert ranked == []  # the node database is consulted only when a channel is wanted
