"""`liquidityhelper status` against the simulator: the numbers, 80 columns, --json, read-only."""

from __future__ import annotations

import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from liquidityhelper import common_functions as cf
from liquidityhelper.cli import main as cli_main
from liquidityhelper.journal import Kind, Status
from liquidityhelper.status import collect, render_text, wrap
from liquidityhelper.status_command import status_async
from tests.scenario import Scenario, scenario
from tests.test_scenarios import fund_and_open, topup_invoice

FEES = {
    "fee_rate": Decimal("0.01"),
    "fee_start_date": "2020-01-01",
    "min_fee_payment_sat": 100,
    "fee_lightning_address": "operator@127.0.0.1",
}


async def text_of(sc: Scenario) -> str:
    statuses, snapshot = await collect(sc.daemon)
    out = io.StringIO()
    render_text(statuses, snapshot, out)
    return out.getvalue()


def row(text: str, label: str) -> str:
    """The value of a row (with its continuation lines joined)."""
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(f"  {label} "))
    parts = [lines[i][16:]]  # "  " + 13 columns of label + " "
    for line in lines[i + 1 :]:
        if not line.startswith(" " * 16):
            break
        parts.append(line.strip())
    return " ".join(parts)


def assert_80_columns(text: str) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert too_wide == []


async def test_fresh_wallet_shows_the_exact_topup(tmp_path: Path) -> None:
    async with scenario(tmp_path, **FEES) as sc:
        await sc.cycle()  # the top-up invoice exists now
        text = await text_of(sc)
        assert_80_columns(text)
        state = sc.daemon.journal.get_state(f"topup:{sc.store_id}")
        sats = state["amount_sat"]
        [invoice] = await sc.runtime.backends[0].list_store_invoices(sc.store_id)
        address = invoice.onchain_address(sc.wallet_id)
        assert address.startswith("bcrt1")
        assert row(text, "top-up") == (
            f"{sats:,} sat ({cf.format_btc(sats)} BTC): pay Bitcart invoice {topup_invoice(sc)}"
            f" on-chain to {address}"
        )
        assert row(text, "channels") == "0 live of 2 wanted, 0 opening"
        assert row(text, "inbound") == (
            "0 sat now, 0 sat after the next cashouts, of 100,000 sat wanted"
        )
        assert row(text, "next open").startswith("topup_due")
        assert text.startswith(f"store Shop 0 ({sc.store_id})\n")


async def test_numbers_match_the_simulator_after_a_cashout(tmp_path: Path) -> None:
    async with scenario(tmp_path, **FEES) as sc:
        await fund_and_open(sc)
        await sc.cycle()  # first cashout
        text = await text_of(sc)
        assert_80_columns(text)

        balance = sc.sim.balance(sc.wallet_id)
        assert row(text, "on-chain").startswith(
            f"{balance['confirmed']:,} sat confirmed, {balance['unconfirmed']:,} sat unconfirmed"
        )
        chans = [c for c in await sc.runtime.backends[0].channels(sc.wallet_id) if c.is_live]
        local, remote = sum(c.local_sat for c in chans), sum(c.remote_sat for c in chans)
        assert local > 0 and remote > 0
        assert row(text, "lightning") == f"local {local:,} sat, remote {remote:,} sat"
        assert row(text, "channels") == f"{len(chans)} live of 2 wanted, 0 opening"
        [paid] = [p.amount_msat // 1000 for p in sc.sim.payments_to(sc.address)]
        assert row(text, "last cashout").startswith(f"{paid:,} sat succeeded ")
        assert row(text, "last cashout").endswith(f"-> {sc.address}")
        assert row(text, "last fee") == "none"
        assert row(text, "top-up") == "not needed"
        assert row(text, "unfinished") == "none"


async def test_json_is_parseable_and_agrees_with_the_simulator(tmp_path: Path) -> None:
    async with scenario(tmp_path, **FEES) as sc:
        await fund_and_open(sc)
        await sc.cycle()
        sc.sim.create_store(sc.token, "Not set up yet")
        out = io.StringIO()
        code = await status_async(sc.settings, as_json=True, out=out)
        assert code == 0
        doc = json.loads(out.getvalue())
        assert set(doc) == {
            "wallets",
            "stores_without_wallet",
            "unreadable_wallets",
            "unreachable_backends",
        }
        [w] = doc["wallets"]
        assert w["wallet_id"] == sc.wallet_id
        assert w["stores"] == [{"id": sc.store_id, "name": "Shop 0"}]
        assert w["onchain_confirmed_sat"] == sc.sim.balance(sc.wallet_id)["confirmed"]
        assert w["live_channels"] == 2 and w["target_channels"] == 2
        assert w["inbound_sat"] >= w["target_inbound_sat"] == 100_000
        assert w["topup_sat"] == 0
        [cashout] = sc.daemon.journal.entries(sc.wallet_id, Kind.CASHOUT)
        assert w["last_cashout"]["amount_sat"] == cashout.amount_sat
        assert w["last_cashout"]["status"] == "succeeded"
        assert w["last_fee_payment"] is None
        assert w["in_flight"] == []
        assert set(w["reasons"]) == {"channel_opening", "topups", "cashouts", "fee_payments"}
        assert [s["name"] for s in doc["stores_without_wallet"]] == ["Not set up yet"]
        assert doc["unreachable_backends"] == 0


async def test_status_changes_nothing(tmp_path: Path) -> None:
    async with scenario(tmp_path, **FEES) as sc:
        await fund_and_open(sc)
        sc.sim.fund_wallet(sc.wallet_id, 2_000_000)  # a channel and a cashout are due now
        await sc.sim.mine(1)
        before = json.dumps(sc.sim.snapshot(), sort_keys=True, default=str)
        entries = sc.daemon.journal.entries()
        out = io.StringIO()
        assert await status_async(sc.settings, as_json=False, out=out) == 0
        assert "would pay" in out.getvalue()  # it says what a cycle would do ...
        assert json.dumps(sc.sim.snapshot(), sort_keys=True, default=str) == before
        assert sc.daemon.journal.entries() == entries  # ... and does none of it


async def test_pending_entry_and_problems_are_shown(tmp_path: Path) -> None:
    async with scenario(tmp_path, **FEES) as sc:
        await fund_and_open(sc)
        entry = sc.daemon.journal.record_intent(
            Kind.CASHOUT, sc.wallet_id, 12_345, sc.address, now=sc.clock(), payment_hash="ab" * 32
        )
        sc.sim.create_store(sc.token, "A store whose name is long enough to need wrapping " * 2)
        text = await text_of(sc)
        assert_80_columns(text)
        assert row(text, "unfinished") == f"cashout #{entry.id} 12,345 sat"
        assert row(text, "next cashout").startswith(f"action_in_flight entry={entry.id}")
        assert "no_managed_wallet" in text.replace("\n", " ")
        sc.daemon.journal.finish(entry.id, Status.FAILED, now=sc.clock())

        sc.sim.faults.set_rate(1.0, kinds=["503"], target="rest")
        statuses, snapshot = await collect(sc.daemon)
        out = io.StringIO()
        render_text(statuses, snapshot, out)
        assert statuses == []
        assert out.getvalue().startswith("bitcart (token 1) not readable: ")
        assert_80_columns(out.getvalue())


def test_wrap_never_exceeds_the_width() -> None:
    text = "needs=" + ",".join(["inbound_below_target"] * 6) + " " + "x" * 150 + " end"
    prefix = "  next open     "
    lines = wrap(prefix, text)
    assert len(lines) > 3
    assert all(len(line) <= 80 for line in lines)
    assert all(line.startswith(" " * len(prefix)) for line in lines[1:])
    rejoined = "".join(line[len(prefix) :] for line in lines)
    assert rejoined.replace(" ", "") == text.replace(" ", "")  # nothing lost, nothing added
    assert wrap("  a ", "short") == ["  a short"]


def test_status_without_a_token_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["status"]) == 2
    assert "api_token" in capsys.readouterr().err


async def test_next_open_shows_the_spare_funds_channel_or_what_holds_it_back(
    tmp_path: Path,
) -> None:
    """Goal met and spare on-chain sats: `next open` names the spare-funds channel and its
    size; with open_spare_funds off or a floor (onchain_extra_reserve) holding the sats, it
    says so and what channel they would make. The daemon then opens exactly that channel."""
    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)
        await sc.cycle()  # first cashout: the goal is met
        assert row(await text_of(sc), "next open").startswith("goal_met ")
        sc.sim.fund_wallet(sc.wallet_id, 300_000)  # more than the wallet needs
        await sc.sim.mine(1)

        text = await text_of(sc)
        assert_80_columns(text)
        spare = row(text, "next open")
        found = re.fullmatch(
            r"would open ([\d,]+) sat to [0-9a-f]{16}\.\.\. \(spare_funds: goal met, "
            r"spare_sat=(\d+) above the close reserves and onchain_extra_reserve=0\)",
            spare,
        )
        assert found, spare
        size, spare_sat = int(found[1].replace(",", "")), int(found[2])
        assert 200_000 <= size < spare_sat <= 300_000 + 10_000

        settings = sc.daemon.settings
        sc.daemon.settings = settings.model_copy(update={"open_spare_funds": False})
        off = row(await text_of(sc), "next open")
        assert off.startswith("goal_met ")
        assert off.endswith(f"open_spare_funds=off: on, it would open {size:,} sat")

        floor = spare_sat - 150_000  # leaves too little above the floor for a channel
        sc.daemon.settings = settings.model_copy(update={"onchain_extra_reserve": floor})
        held = row(await text_of(sc), "next open")
        assert held.startswith("goal_met ")
        assert "spare_sat=150000 min_channel_size=200000" in held
        assert held.endswith(
            f"onchain_extra_reserve={floor}: the floor holds back a {size:,} sat channel"
        )

        sc.daemon.settings = settings
        await sc.cycle()  # status said what the cycle does
        opened = sc.daemon.journal.entries(sc.wallet_id, Kind.CHANNEL_OPEN)
        assert [e.amount_sat for e in opened][-1] == size
        assert len(opened) == 3
