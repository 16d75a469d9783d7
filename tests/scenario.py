"""A simulated Bitcart plus the real daemon wired to it, for scenario tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from liquidityhelper.config import Settings, load_settings
from liquidityhelper.main import CycleReport, Daemon
from liquidityhelper.simulator import SimConfig, Simulator
from liquidityhelper.wiring import Runtime, build_runtime


class Clock:
    """A clock the test moves by hand; starts at the real time so invoices verify."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@dataclass
class Scenario:
    sim: Simulator
    daemon: Daemon
    runtime: Runtime
    settings: Settings
    token: str
    store_id: str
    wallet_id: str
    address: str
    clock: Clock

    async def cycle(self) -> None:
        await self.daemon.cycle()

    async def cycle_report(self) -> CycleReport:
        return await self.daemon.cycle()

    async def confirm(self, blocks: int = 3) -> None:
        await self.sim.mine(blocks)


def use_operator(sc: Scenario) -> str:
    """An operator's lightning address on the simulator, as the daemon's fee address."""
    operator = sc.sim.add_lightning_address("operator")
    sc.daemon.settings = sc.settings.model_copy(update={"fee_lightning_address": operator})
    return operator


def scenario_settings(sim: Simulator, token: str, data_dir: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "api_url": sim.api_url,
        "api_token": token,
        "daemon_url": sim.rpc_url,
        "daemon_user": sim.rpc_user,
        "daemon_password": sim.rpc_password,
        "network": "regtest",
        "data_dir": data_dir,
        "poll_interval_seconds": 1,
        "max_onchain_fee_rate": 50,
    }
    base.update(overrides)
    return load_settings(**base)


@asynccontextmanager
async def scenario(
    tmp_path: Path,
    *,
    seed: int = 1,
    stores: int = 1,
    cashout: bool = True,
    sim: Simulator | None = None,
    sim_config: SimConfig | None = None,
    **overrides: Any,
) -> AsyncIterator[Scenario]:
    own_sim = sim is None
    clock = Clock()
    # One clock for both sides, so invoices minted "now" are not expired "now".
    sim = sim or Simulator(seed=seed, config=sim_config, clock=lambda: clock.now.timestamp())
    if own_sim:
        await sim.start()
    try:
        token = sim.create_user()
        store_ids = [sim.create_store(token, f"Shop {i}") for i in range(stores)]
        wallet_id = sim.create_wallet(token, "liquidityhelper", store_ids=store_ids)
        address = sim.add_lightning_address("merchant")
        if cashout:
            overrides.setdefault("cashout_lightning_address", address)
        settings = scenario_settings(sim, token, tmp_path / "data", **overrides)
        # Quick retries: the tests inject faults, and waiting seconds for each proves nothing.
        async with build_runtime(
            settings, retry_attempts=2, retry_wait_seconds=0.001, retry_wait_max_seconds=0.002
        ) as rt:
            rt.nodes.import_seed_data(sim.network_nodes_json(), "simulator")
            daemon = Daemon(settings, rt.backends, rt.journal, rt.peers, rt.http, clock=clock)
            yield Scenario(
                sim, daemon, rt, settings, token, store_ids[0], wallet_id, address, clock
            )
    finally:
        if own_sim:
            await sim.stop()
