"""Issue 15: settings that fail closed. Every bad value exits 2 with one line, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from liquidityhelper import cli
from liquidityhelper.lnurl import parse_lightning_address
from liquidityhelper.wiring import direct_to_loopback


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run(
        [sys.executable, "-m", "liquidityhelper", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_typo_in_a_variable_name_stops_the_program_naming_the_setting() -> None:
    """LIQUIDITYHELPER_DRYRUN=true was ignored: dry-run stayed off and real money moved."""
    proc = run_cli({"LIQUIDITYHELPER_DRYRUN": "true"}, "config", "check")
    assert proc.returncode == 2, proc.stdout
    [line] = proc.stderr.strip().splitlines()
    assert "LIQUIDITYHELPER_DRYRUN" in line and "LIQUIDITYHELPER_DRY_RUN" in line
    assert "dry_run" in line and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("LIQUIDITYHELPER_API_URL", "backend:8000", "api_url"),
        ("LIQUIDITYHELPER_DAEMON_URL", "bitcoin:5000", "daemon_url"),
        ("LIQUIDITYHELPER_API_URL", "http://", "api_url"),
        ("LIQUIDITYHELPER_CASHOUT_LIGHTNING_ADDRESS", "notanaddress", "cashout_lightning_address"),
        ("LIQUIDITYHELPER_CASHOUT_LIGHTNING_ADDRESS", "me@", "cashout_lightning_address"),
        (
            "LIQUIDITYHELPER_FEE_LIGHTNING_ADDRESS",
            "me@http://example.com",
            "fee_lightning_address",
        ),
        ("LIQUIDITYHELPER_EXTRA_API_TOKENS", "tok1,tok2", "extra_api_tokens"),
        ("LIQUIDITYHELPER_FEE_RATE_TARGET_BLOCKS", "6", "fee_rate_target_blocks"),
        ("LIQUIDITYHELPER_HEALTH_LISTEN", ":9100", "health_listen"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_2(name: str, value: str, key: str) -> None:
    proc = run_cli({name: value}, "config", "check")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_a_config_path_that_is_a_directory_is_one_line(tmp_path: Path) -> None:
    proc = run_cli({}, "config", "check", "--config", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"config file {tmp_path}: is a directory, not a TOML file"
    ]


def test_plain_http_on_loopback_is_for_regtest_or_an_explicit_switch() -> None:
    """It used to be always allowed, with no switch."""
    url = {"LIQUIDITYHELPER_CASHOUT_LIGHTNING_ADDRESS": "http://127.0.0.1:8080/lnurlp/me"}
    regtest = {**url, "LIQUIDITYHELPER_NETWORK": "regtest"}
    assert run_cli(regtest, "config", "check").returncode == 0
    refused = run_cli(url, "config", "check")  # mainnet by default
    assert refused.returncode == 2 and "allow_loopback_http_lnurl" in refused.stderr
    switch = {**url, "LIQUIDITYHELPER_ALLOW_LOOPBACK_HTTP_LNURL": "true"}
    assert run_cli(switch, "config", "check").returncode == 0
    # user@host on loopback is reached over https unless plain http is allowed.
    assert parse_lightning_address("me@127.0.0.1:8080", loopback_http=False).url.startswith(
        "https://"
    )
    assert parse_lightning_address("me@127.0.0.1:8080").url.startswith("http://")
    onion = "me@" + "a" * 56 + ".onion"
    onion_env = {"LIQUIDITYHELPER_CASHOUT_LIGHTNING_ADDRESS": onion}
    assert run_cli(onion_env, "config", "check").returncode == 0


async def test_proxies_are_never_used_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://192.0.2.1:3128")
    async with httpx.AsyncClient(mounts=direct_to_loopback()) as client:
        transport = client._transport_for_url(httpx.URL("http://127.0.0.1:9/x"))
        assert transport is not client._transport_for_url(httpx.URL("http://example.com/x"))
        assert getattr(transport, "_pool", None) is not None
        assert "proxy" not in type(transport._pool).__name__.lower()  # type: ignore[attr-defined]


def test_config_check_via_main_has_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "check", "--config", "/nonexistent/x.toml"]) == 2
    assert "Traceback" not in capsys.readouterr().err


async def test_a_back_off_ends_when_the_address_it_failed_on_is_fixed(tmp_path: Path) -> None:
    from tests.scenario import scenario
    from tests.test_scenarios import fund_and_open

    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)
        sc.sim.payment_faults.push(*["fail"] * 8)
        await sc.cycle()
        assert sc.daemon.backoff_until("cashout", sc.wallet_id) is not None
        sc.sim.payment_faults.clear()
        other = sc.sim.add_lightning_address("merchant2")
        settings = sc.settings.model_copy(update={"cashout_lightning_address": other})
        sc.daemon.settings = settings
        assert sc.daemon.backoff_until("cashout", sc.wallet_id) is None
        await sc.cycle()
        assert len(sc.sim.payments_to(other)) == 1
