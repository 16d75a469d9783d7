"""The health listener over loopback: /healthz follows the cycles, /metrics their figures."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from liquidityhelper import __version__
from liquidityhelper.config import CONFIG_ENV, Settings, load_settings
from liquidityhelper.health import (
    START_GRACE,
    HealthServer,
    parse_listen,
    probe,
    probe_url,
    stale_after,
    start_health_server,
)
from liquidityhelper.journal import Kind
from liquidityhelper.metrics import Metrics, WalletGauges
from tests.scenario import Scenario, scenario
from tests.test_scenarios import fund_and_open


def samples(text: str) -> dict[str, float]:
    """Prometheus text format to {'name{labels}': value}; comments must be HELP or TYPE."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert line.split()[1] in ("HELP", "TYPE"), line
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


async def started(sc: Scenario) -> HealthServer:
    server = await start_health_server(sc.settings, sc.daemon)
    sc.runtime.close_with(server)
    return server


async def get(server: HealthServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{server.port}{path}")


async def test_healthz_follows_the_cycles(tmp_path: Path) -> None:
    async with scenario(tmp_path, health_listen="127.0.0.1:0") as sc:
        server = await started(sc)
        reply = await get(server, "/healthz")
        assert (reply.status_code, reply.text) == (200, "ok: first cycle under way\n")

        sc.clock.advance(seconds=START_GRACE.total_seconds() + 1)
        reply = await get(server, "/healthz")
        assert (reply.status_code, reply.text) == (503, "stale: no cycle has finished\n")

        await sc.cycle()
        reply = await get(server, "/healthz")
        assert reply.status_code == 200
        assert reply.text.startswith("ok: last cycle 0 s ago")

        limit = stale_after(sc.settings)
        sc.clock.advance(seconds=limit.total_seconds())
        assert (await get(server, "/healthz")).status_code == 200  # exactly at the limit
        sc.clock.advance(seconds=1)
        reply = await get(server, "/healthz")
        assert reply.status_code == 503
        assert reply.text.startswith(f"stale: last cycle {int(limit.total_seconds()) + 1} s ago")

        await sc.cycle()
        assert (await get(server, "/healthz")).status_code == 200
        assert (await get(server, "/nothing")).status_code == 404


async def test_metrics_carry_the_wallet_figures(tmp_path: Path) -> None:
    async with scenario(tmp_path, health_listen="127.0.0.1:0") as sc:
        server = await started(sc)
        await sc.cycle()  # a fresh wallet: a top-up is needed
        reply = await get(server, "/metrics")
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
        m = samples(reply.text)
        label = f'{{wallet="{sc.wallet_id}"}}'
        gauges = sc.daemon.metrics.wallets[sc.wallet_id]
        assert gauges.topup_sat > 0
        assert m[f"liquidityhelper_topup_needed_sats{label}"] == gauges.topup_sat
        assert m[f"liquidityhelper_inbound_sats{label}"] == 0
        assert m[f"liquidityhelper_inbound_target_sats{label}"] == 100_000
        assert m["liquidityhelper_cycles_total"] == 1
        assert m["liquidityhelper_cycle_duration_seconds"] >= 0
        assert m["liquidityhelper_last_cycle_timestamp_seconds"] == pytest.approx(
            sc.clock.now.timestamp(), abs=1
        )
        assert m[f'liquidityhelper_build_info{{version="{__version__}"}}'] == 1
        assert m['liquidityhelper_bitcart_reachable{backend="0"}'] == 1
        assert m[f'liquidityhelper_channels{{state="open",wallet="{sc.wallet_id}"}}'] == 0
        assert m["process_resident_memory_bytes"] > 0

        await fund_and_open(sc)
        await sc.cycle()  # the first cashout
        m = samples((await get(server, "/metrics")).text)
        assert m['liquidityhelper_payments_total{outcome="succeeded"}'] == 1
        assert m[f"liquidityhelper_topup_needed_sats{label}"] == 0
        assert m[f"liquidityhelper_inbound_sats{label}"] >= 100_000
        assert not any(k.startswith("liquidityhelper_api_errors_total") for k in m)
        assert m[f'liquidityhelper_channels{{state="open",wallet="{sc.wallet_id}"}}'] >= 1

        sc.sim.faults.set_rate(1.0, kinds=["503"], target="rest")
        await sc.cycle()  # Bitcart down: counted by kind
        sc.sim.faults.clear()
        m = samples((await get(server, "/metrics")).text)
        errors = {k: v for k, v in m.items() if k.startswith("liquidityhelper_api_errors_total")}
        assert errors and all(v > 0 for v in errors.values())
        assert m['liquidityhelper_bitcart_reachable{backend="0"}'] == 0
        # The wallet's last known figures stay while Bitcart cannot be read.
        assert m[f'liquidityhelper_channels{{state="open",wallet="{sc.wallet_id}"}}'] >= 1


def test_metrics_escape_label_values() -> None:
    metrics = Metrics(wallets={'a"b\\c': WalletGauges(1, 2, 3)})
    metrics.errors["Weird\nKind"] += 1
    text = metrics.render()
    assert 'liquidityhelper_inbound_sats{wallet="a\\"b\\\\c"} 1' in text
    assert 'liquidityhelper_api_errors_total{kind="Weird\\nKind"} 1' in text


def test_metrics_are_per_daemon_and_list_every_channel_state() -> None:
    first, second = Metrics(), Metrics()  # each its own registry: no duplicate-name error
    first.channels = {"w": {"open": 2}}
    first.backends_reachable = {0: True, 1: False}
    m, other = samples(first.render()), samples(second.render())
    assert m['liquidityhelper_channels{state="open",wallet="w"}'] == 2
    assert m['liquidityhelper_channels{state="opening",wallet="w"}'] == 0
    assert m['liquidityhelper_bitcart_reachable{backend="1"}'] == 0
    assert not any(k.startswith("liquidityhelper_channels") for k in other)
    assert "process_cpu_seconds_total" in other


async def test_probe_for_the_healthcheck(tmp_path: Path) -> None:
    async with scenario(tmp_path, health_listen="127.0.0.1:0") as sc:
        server = await started(sc)
        await sc.cycle()
        # The container binds a wildcard; the probe asks over loopback.
        settings = load_settings(health_listen=f"0.0.0.0:{server.port}")
        ok, why = await asyncio.to_thread(probe, settings)
        assert (ok, why) == (True, "ok: last cycle 0 s ago")
        sc.clock.advance(seconds=stale_after(sc.settings).total_seconds() + 60)
        ok, why = await asyncio.to_thread(probe, settings)
        assert not ok and why.startswith("503: stale: last cycle")
        port = server.port
        await server.aclose()
        ok, why = await asyncio.to_thread(probe, settings)
        assert not ok and f":{port}/healthz" in why


def test_probe_without_a_listener_setting() -> None:
    ok, why = probe(load_settings())
    assert not ok and "health_listen is not set" in why


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        (":9100", ("127.0.0.1", 9100)),
        ("9100", ("127.0.0.1", 9100)),
        ("[::1]:9100", ("::1", 9100)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["localhost", "127.0.0.1:http", "127.0.0.1:70000", ""])
def test_parse_listen_refuses_nonsense(value: str) -> None:
    with pytest.raises(ValueError, match="health_listen"):
        parse_listen(value)


def test_probe_url_reaches_a_wildcard_bind_over_loopback() -> None:
    assert probe_url("0.0.0.0:9100") == "http://127.0.0.1:9100/healthz"
    assert probe_url("[::]:9100") == "http://[::1]:9100/healthz"
    assert probe_url("10.0.0.5:9100") == "http://10.0.0.5:9100/healthz"


def test_staleness_allows_a_few_intervals_and_one_slow_payment() -> None:
    settings = load_settings(poll_interval_seconds=300, payment_timeout_seconds=180)
    assert stale_after(settings) == timedelta(seconds=3 * 300 + 180)
    fast = load_settings(poll_interval_seconds=1, payment_timeout_seconds=10)
    assert stale_after(fast) == timedelta(minutes=2, seconds=10)


# --- the deployment files use real settings ----------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def env_assignments(path: Path) -> dict[str, str]:
    """LIQUIDITYHELPER_* assignments in a Dockerfile, compose file, env file or unit,
    commented-out examples included (they must name real keys too)."""
    found = {}
    for m in re.finditer(r"(LIQUIDITYHELPER_[A-Z_]+)\s*[=:]\s*([^\s\\]*)", path.read_text()):
        found[m.group(1)] = m.group(2)
    return found


@pytest.mark.parametrize(
    "name",
    [
        "Dockerfile",
        "deploy/docker-compose.yml",
        "deploy/liquidityhelper.env.example",
        "deploy/liquidityhelper.service",
    ],
)
def test_deployment_files_name_real_settings(name: str) -> None:
    keys = set(env_assignments(ROOT / name))
    assert keys
    known = {f"LIQUIDITYHELPER_{k.upper()}" for k in Settings.model_fields} | {CONFIG_ENV}
    assert keys <= known


def test_the_image_environment_is_valid_and_turns_health_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in env_assignments(ROOT / "Dockerfile").items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.health_listen == "127.0.0.1:9100"
    assert str(settings.data_dir) == "/data"
    assert probe_url(settings.health_listen) == "http://127.0.0.1:9100/healthz"
    assert 'CMD ["python", "-m", "liquidityhelper.health"]' in (ROOT / "Dockerfile").read_text()


async def test_healthz_turns_503_while_bitcart_is_down_and_200_when_it_returns(
    tmp_path: Path,
) -> None:
    """It answered 200 `ok` with the API down for 4 cycles (CRITICAL in the log)."""
    async with scenario(tmp_path, health_listen="127.0.0.1:0") as sc:
        server = await started(sc)
        await sc.cycle()
        sc.sim.faults.set_rate(1.0, ["502"], target="rest")  # Bitcart's API is down
        for n in range(1, 4):
            sc.clock.advance(minutes=5)
            await sc.cycle()
            reply = await get(server, "/healthz")
            assert reply.status_code == (503 if n >= 3 else 200), (n, reply.text)
        assert reply.text == "unhealthy: bitcart_unreadable for 3 cycles\n"
        sc.sim.faults.clear()
        sc.clock.advance(minutes=5)
        await sc.cycle()
        assert (await get(server, "/healthz")).status_code == 200


async def test_healthz_turns_503_when_every_wallet_is_unreadable(tmp_path: Path) -> None:
    """The BTC daemon down: the API answers, every wallet fails; it used to say 200 `ok`."""
    async with scenario(tmp_path, health_listen="127.0.0.1:0") as sc:
        server = await started(sc)
        await fund_and_open(sc)
        await sc.sim.set_daemon_down(True)
        for _ in range(3):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        reply = await get(server, "/healthz")
        assert reply.status_code == 503
        assert reply.text == "unhealthy: every_wallet_unreadable for 3 cycles\n"
        assert sc.daemon.last_report is not None
        assert sc.daemon.last_report.unreadable_wallets == 1


async def test_the_cycle_summary_counts_what_was_done(tmp_path: Path) -> None:
    """`actions=0` was logged even in a cycle that created invoices."""
    async with scenario(tmp_path) as sc:
        report = await sc.cycle_report()
        assert report.actions == 1  # the top-up invoice
        assert report.unreadable_wallets == 0 and report.wallet_errors == 0


async def test_once_exits_1_when_every_wallet_is_unreadable(tmp_path: Path) -> None:
    """Daemon down or a wrong password: `once` said 0 while it managed nothing."""
    from liquidityhelper.main import run

    async with scenario(tmp_path) as sc:
        await sc.cycle()
        await sc.sim.set_daemon_down(True)
        settings = sc.settings.model_copy(update={"single_run": True})
        assert await run(settings) == 1
        await sc.sim.set_daemon_down(False)
        assert await run(settings) == 0


async def test_metrics_count_what_was_spent_and_bought(tmp_path: Path) -> None:
    """Counters: fees paid by kind, inbound created, cashed out, top-ups paid."""
    async with scenario(tmp_path, health_listen="127.0.0.1:0") as sc:
        server = await started(sc)
        await fund_and_open(sc)  # the top-up was paid on-chain
        await sc.cycle()  # the first cashout
        m = samples((await get(server, "/metrics")).text)
        label = f'{{wallet="{sc.wallet_id}"}}'
        [cashout] = sc.daemon.journal.entries(sc.wallet_id, Kind.CASHOUT)
        assert m[f"liquidityhelper_cashed_out_sats_total{label}"] == cashout.amount_sat
        assert m[f"liquidityhelper_inbound_created_sats_total{label}"] == cashout.amount_sat
        routing = f'liquidityhelper_fees_paid_sats_total{{kind="routing",wallet="{sc.wallet_id}"}}'
        assert m[routing] == -(-(cashout.fee_msat or 0) // 1000)
        [topup] = sc.daemon.journal.entries(sc.wallet_id, Kind.TOPUP_INVOICE)
        assert m[f"liquidityhelper_topups_paid_sats_total{label}"] == topup.amount_sat
