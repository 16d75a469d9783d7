"""`liquidityhelper demo`: the real daemon against the simulator, end to end."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from liquidityhelper.cli import main as cli_main
from liquidityhelper.config import Settings
from liquidityhelper.demo import CUSTOMER_PAYMENTS_SAT, FEE_RATE, ONCHAIN_ORDER_SAT, run_demo

REVENUE_SAT = sum(CUSTOMER_PAYMENTS_SAT) + ONCHAIN_ORDER_SAT  # what the operator's fee is on


def sats(text: str) -> int:
    return int(text.replace(",", ""))


def test_demo_tells_the_story_and_ends_with_the_status() -> None:
    out = io.StringIO()
    assert run_demo(out=out) == 0
    text = out.getvalue()
    story, _, status = text.partition("Final status")
    lines = story.splitlines()

    topups = [x for x in lines if "top-up needed:" in x]
    assert len(topups) == 1
    assert re.search(r"top-up needed: [\d,]+ sat \(0\.\d{8} BTC\)", topups[0])
    opened = [x for x in lines if "channel opened to " in x]
    assert len(opened) == 3
    assert all(re.search(r"to \S+-sim 200,000 sat$", x) for x in opened[:2])
    # The third: spare funds, once the goal is met and a customer paid a big order on-chain.
    [spare] = re.findall(r"\] channel opened to \S+-sim ([\d,]+) sat\n.*?→ spare funds", story)
    assert 200_000 < sats(spare) < ONCHAIN_ORDER_SAT
    told = " ".join(story[story.index("→ spare funds") :].split())
    assert told.startswith(
        "→ spare funds: the goal is met, so the on-chain sats above the close reserves and "
        "the onchain_extra_reserve floor (0 sat here) went into one more channel, as large "
        f"as they allow: {spare} sat."
    )
    assert "open_spare_funds = false" in told
    cashouts = [sats(m) for m in re.findall(r"\] cashout ([\d,]+) sat → merchant@", story)]
    assert len(cashouts) >= 3 and all(c > 0 for c in cashouts)
    fees = re.findall(r"\] fee ([\d,]+) sat → fees@", story)
    assert [sats(f) for f in fees] == [int(REVENUE_SAT * FEE_RATE)]  # once
    assert "problem" not in story
    # In order: top-up, channels, a cashout (the goal is met), customers, the on-chain order
    # confirms, the spare-funds channel, the fee; the spare channel's balance is cashed out.
    order = [
        story.index("top-up needed"),
        story.index("channel opened"),
        re.search(r"\] cashout \d", story).start(),  # type: ignore[union-attr]
        story.index("a customer pays"),
        story.index(f"a customer pays {ONCHAIN_ORDER_SAT:,} sat on-chain"),
        story.index("1 block mined: the catering order confirms"),
        story.index("→ spare funds"),
        story.index("] fee "),
        story.index("3 blocks mined: the spare-funds channel is open"),
        story.rindex("] cashout "),
    ]
    assert order == sorted(order)

    assert "  channels      3 live of 2 wanted, 0 opening" in status
    assert "(goal met)" in status
    assert f"  last fee      {fees[0]} sat succeeded" in status
    assert all(len(line) <= 80 for line in text.splitlines())


def test_demo_json_is_one_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever the environment says, the demo talks only to its own simulator.
    monkeypatch.setenv("LIQUIDITYHELPER_API_URL", "http://192.0.2.1:9")
    monkeypatch.setenv("LIQUIDITYHELPER_FEE_RATE", "0.3")
    monkeypatch.setenv("LIQUIDITYHELPER_DATA_DIR", "/nonexistent/never-written")
    out = io.StringIO()
    assert run_demo(json_output=True, out=out) == 0
    doc = json.loads(out.getvalue())  # nothing but the JSON document
    assert doc["ok"] is True
    assert doc["problems"] == []
    [topup] = doc["topups"]
    assert topup["sat"] > 0 and topup["invoice"]
    channels = doc["channels"]
    assert [c["capacity_sat"] for c in channels[:2]] == [200_000, 200_000]
    assert [c["reason"] for c in channels] == ["need_liquidity"] * 2 + ["spare_funds"]
    assert 200_000 < channels[2]["capacity_sat"] < ONCHAIN_ORDER_SAT
    assert len({c["peer"] for c in channels}) == 3
    assert all(c["alias"].endswith("-sim") for c in channels)
    assert doc["customer_payments_sat"] == list(CUSTOMER_PAYMENTS_SAT)
    assert doc["onchain_payments_sat"] == [ONCHAIN_ORDER_SAT]
    assert len(doc["cashouts"]) >= 3
    assert [f["sat"] for f in doc["fee_payments"]] == [REVENUE_SAT // 100]
    [wallet] = doc["final_status"]["wallets"]
    assert wallet["live_channels"] == 3
    assert wallet["inbound_sat"] >= wallet["target_inbound_sat"]
    assert wallet["last_fee_payment"]["amount_sat"] == doc["fee_payments"][0]["sat"]
    assert wallet["in_flight"] == []


def test_demo_from_the_command_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "liquidityhelper", "demo", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"] is True
    assert proc.stderr == ""  # the daemon's log stays hidden unless asked for
    assert list(tmp_path.iterdir()) == []  # no data/ left in the working directory


# --- options reach the command wherever they are written (cli.py) -----------------------------


@pytest.mark.parametrize("argv", [["--log-level", "INFO", "demo"], ["demo", "--log-level", "INFO"]])
def test_demo_gets_the_log_options(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    import liquidityhelper.demo

    seen: dict[str, object] = {}
    monkeypatch.setattr(liquidityhelper.demo, "run_demo", lambda **kw: seen.update(kw) or 0)
    assert cli_main(argv) == 0
    assert seen == {"json_output": False, "log_level": "INFO", "log_format": None}


@pytest.mark.parametrize(
    ("argv", "dry_run"),
    [(["--dry-run", "once"], True), (["once", "--dry-run"], True), (["once"], False)],
)
def test_dry_run_before_or_after_the_command(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], dry_run: bool
) -> None:
    import liquidityhelper.main

    seen: list[Settings] = []
    monkeypatch.setattr(liquidityhelper.main, "run_daemon", lambda s: seen.append(s) or 0)
    monkeypatch.setenv("LIQUIDITYHELPER_API_TOKEN", "t" * 20)
    assert cli_main(argv) == 0
    [settings] = seen
    assert settings.dry_run is dry_run
    assert settings.single_run is True
