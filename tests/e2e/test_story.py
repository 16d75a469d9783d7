"""The whole story against a real stack, the daemon on its default settings.

A fresh store is told its top-up and pays it on-chain; channels open to the two LSPs and
confirm; cashouts push the funds to carol's lightning address, which turns them into inbound
liquidity; customers pay the store over Lightning; an LSP goes offline and Bitcart's daemon
restarts mid-story without the daemon asking for money or opening channels; the next cashouts
and the operator's fee (dave) go out; and the journal matches what carol and dave received, to
the millisatoshi.

One test per step, in order, sharing a ``Story``; once a step fails the later ones are skipped
(see conftest). ``test_dry_run_once_changes_nothing`` comes first, on the fresh store.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import (
    Bitcart,
    CliRun,
    LiquidityHelper,
    RealStack,
    btc_to_sat,
    channel_inbound_sat,
    sat_to_btc,
    summarize_channels,
    wait_for,
)

STEPWISE = True

# The daemon's defaults this story holds it to (config.py): the goal per wallet.
GOAL_INBOUND_SAT = 100_000
GOAL_PER_CHANNEL_SAT = 50_000
GOAL_CHANNELS = 2
PAID = ("paid", "confirmed", "complete")


@dataclass
class Story:
    stack: RealStack
    bitcart: Bitcart
    lh: LiquidityHelper
    lsps: dict[str, str]  # node id -> lsp1 / lsp2
    topup_invoice_id: str = ""
    topup_sat: int = 0
    customer_paid_sat: list[int] = field(default_factory=list)
    channel_points: set[str] = field(default_factory=set)
    # For BENCHMARKS.md: when the first real `once` started, when the first cashout landed,
    # and what the top-up was planned at.
    started: float = 0.0
    first_cashout_s: float = 0.0
    planned_fee_rate: int = 0
    planned_capacities: list[int] = field(default_factory=list)

    def open_channels(self) -> list[dict[str, Any]]:
        return [c for c in self.bitcart.channels() if c.get("state") == "OPEN"]

    def channels_text(self) -> str:
        return "\n".join(str(c) for c in summarize_channels(self.bitcart.channels()))

    def journal_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.lh.journal() if e["kind"] == kind]

    def wait_peers_connected(self, timeout: float = 120) -> None:
        """Until every OPEN channel of the merchant wallet has its peer connected again."""

        def ok() -> bool:
            chans = self.open_channels()
            return len(chans) >= GOAL_CHANNELS and all(
                c.get("peer_state", "GOOD") == "GOOD" for c in chans
            )

        wait_for("the merchant's channel peers to reconnect", ok, timeout, interval=2)


def _nothing_to_do(run: CliRun, section: str) -> list[str]:
    return [
        f"{e.get('reason')} { ({k: v for k, v in e.items() if k.endswith('_sat')}) }"
        for e in run.named("nothing_to_do", section=section)
    ]


def _sats(event: dict[str, Any]) -> int:
    """The amount of a log line (``amount_sat``, or ``sats`` in older lines)."""
    value = event.get("amount_sat", event.get("sats"))
    assert value is not None, f"no amount in {event}"
    return int(value)


def _money_moves(run: CliRun) -> list[dict[str, Any]]:
    names = (
        "topup_needed",
        "topup_invoice_created",
        "invoice_created",
        "channel_opened",
        "channel_open_failed",
        "channel_open_outcome_unknown",
    )
    return [e for e in run.events if e.get("event") in names]


@pytest.fixture(scope="module")
def story(
    realstack: RealStack, bitcart: Bitcart, tmp_path_factory: pytest.TempPathFactory
) -> Story:
    lh = LiquidityHelper(realstack.env, tmp_path_factory.mktemp("lh-story"))
    lh.import_nodes(realstack.env["REALSTACK_NODES_JSON"])
    lsps = {
        realstack.env["REALSTACK_LSP1_NODE_ID"]: "lsp1",
        realstack.env["REALSTACK_LSP2_NODE_ID"]: "lsp2",
    }
    return Story(realstack, bitcart, lh, lsps)


# --- before the story: dry run on the fresh store ------------------------------------------------


def test_dry_run_once_changes_nothing(
    realstack: RealStack, bitcart: Bitcart, tmp_path: Path
) -> None:
    invoices_before = bitcart.invoices()
    if any((i.get("metadata") or {}).get("liquidityhelper") for i in invoices_before):
        pytest.skip("the store is not fresh: the story already ran a real cycle")
    channels_before = bitcart.channels()
    balance_before = bitcart.balance()
    lh = LiquidityHelper(realstack.env, tmp_path)
    lh.import_nodes(realstack.env["REALSTACK_NODES_JSON"])

    run = lh.once(dry_run=True)

    assert run.named("topup_needed"), (
        "dry run on a fresh store: expected a topup_needed line (what it would ask)\n" + run.brief()
    )
    assert [i["id"] for i in bitcart.invoices()] == [i["id"] for i in invoices_before], (
        "dry run created or removed Bitcart invoices"
    )
    assert summarize_channels(bitcart.channels()) == summarize_channels(channels_before), (
        "dry run changed the wallet's channels"
    )
    assert bitcart.balance() == balance_before, "dry run changed the wallet's balance"
    assert not run.named("channel_opened") and not run.named("payment_sending"), run.brief()
    assert lh.journal() == [], f"dry run journaled money actions: {lh.journal()}"


def test_without_a_cashout_address_nothing_is_opened_or_asked(
    realstack: RealStack, bitcart: Bitcart, tmp_path: Path
) -> None:
    """Issue 12, case 1, against real Electrum: with no cashout address nothing would ever
    push a new channel's balance out, so no channel is opened and no top-up asked; the
    reason names the setting."""
    invoices_before = bitcart.invoices()
    if any((i.get("metadata") or {}).get("liquidityhelper") for i in invoices_before):
        pytest.skip("the store is not fresh: the story already ran a real cycle")
    channels_before = bitcart.channels()
    lh = LiquidityHelper(realstack.env, tmp_path)
    lh.env.pop("LIQUIDITYHELPER_CASHOUT_LIGHTNING_ADDRESS")
    lh.import_nodes(realstack.env["REALSTACK_NODES_JSON"])

    run = lh.once()

    assert run.returncode in (0, 1), run.brief()
    reasons = {(e.get("section"), e.get("reason")) for e in run.named("nothing_to_do")} | {
        (e.get("section"), e.get("reason")) for e in run.events if e.get("level") == "warning"
    }
    assert ("channel_opening", "no_cashout_address") in reasons, run.brief()
    assert ("topups", "no_cashout_address") in reasons, run.brief()
    assert [i["id"] for i in bitcart.invoices()] == [i["id"] for i in invoices_before]
    assert summarize_channels(bitcart.channels()) == summarize_channels(channels_before)
    assert not run.named("topup_needed") and not run.named("channel_opened"), run.brief()
    assert lh.journal() == [], lh.journal()


# --- the story -----------------------------------------------------------------------------------


def test_step_a_topup_asked_and_paid_onchain(story: Story) -> None:
    story.started = time.monotonic()
    run = story.lh.once()
    topups = run.named("topup_needed")
    assert len(topups) == 1 and topups[0]["level"] == "warning", (
        f"a fresh store must get one WARNING topup_needed, got {len(topups)}\n{run.brief()}"
    )
    warning = topups[0]
    invoices = story.bitcart.topup_invoices()
    assert len(invoices) == 1, (
        f"one top-up invoice tagged liquidityhelper=topup expected in the store, got "
        f"{[(i['id'], i['status'], i['price']) for i in invoices]}\n{run.brief()}"
    )
    inv = invoices[0]
    sats = _sats(warning)
    assert inv["status"] == "pending", f"top-up invoice {inv['id']} is {inv['status']}"
    assert warning.get("invoice") == inv["id"], (
        f"the WARNING names invoice {warning.get('invoice')!r}, the store has {inv['id']}"
    )
    assert inv["currency"] == "BTC" and btc_to_sat(inv["price"]) == sats, (
        f"invoice priced {inv['price']} {inv['currency']}, the WARNING says {sats} sat"
    )
    assert inv["metadata"].get("wallet_id") == story.bitcart.wallet_id, inv["metadata"]
    story.topup_invoice_id, story.topup_sat = inv["id"], sats
    story.planned_fee_rate = int(warning.get("fee_rate", 0))
    story.planned_capacities = [int(c) for c in warning.get("planned_capacities", [])]

    full = story.bitcart.invoice(inv["id"])
    # Only the managed wallet can take the payment (payment_methods), on-chain or ⚡.
    assert full["payment_methods"] == [story.bitcart.wallet_id], full["payment_methods"]
    assert {p["wallet_id"] for p in full["payments"]} == {story.bitcart.wallet_id}
    onchain = [p for p in full["payments"] if not p["lightning"]]
    assert len(onchain) == 1, f"one on-chain payment method expected: {full['payments']}"
    address, amount = onchain[0]["payment_address"], onchain[0]["amount"]
    assert btc_to_sat(amount) == sats, f"on-chain amount {amount} BTC != {sats} sat"
    story.stack.fund(address, amount)  # faucet -> the invoice's address, 1 block mined
    story.stack.wait_daemon_synced()

    status = wait_for(
        f"top-up invoice {inv['id']} to be paid",
        lambda: (s := story.bitcart.invoice(inv["id"])["status"]) in PAID and s,
        timeout=120,
        interval=2,
    )
    confirmed = wait_for(
        f"the wallet to show {sats} sat confirmed",
        lambda: (c := btc_to_sat(story.bitcart.balance()["confirmed"])) >= sats and c,
        timeout=120,
        interval=2,
    )
    assert confirmed == sats, f"wallet has {confirmed} sat confirmed after paying {sats}"
    print(f"top-up {sats} sat ({sat_to_btc(sats)} BTC), invoice {inv['id']} {status}")


def test_step_b_channels_open(story: Story) -> None:
    runs: list[CliRun] = []
    for _ in range(6):
        run = story.lh.once()
        runs.append(run)
        # The opens are priced from the wallet's coins: the real daemon's listunspent parses.
        assert not run.named("coins_unknown"), f"listunspent failed:\n{run.brief()}"
        topups = story.bitcart.topup_invoices()
        assert len(topups) == 1, (
            f"a second top-up was asked although the first was paid: "
            f"{[(i['id'], i['price'], i['status']) for i in topups]}\n{run.brief()}"
        )
        assert not run.named("topup_needed"), f"topup_needed after the top-up:\n{run.brief()}"
        chans = story.bitcart.channels()
        if len([c for c in chans if c.get("state") == "OPEN"]) >= GOAL_CHANNELS:
            break
        if any(c.get("state") in ("OPENING", "FUNDED") for c in chans):
            story.stack.mine(3)
            story.stack.wait_daemon_synced()
            wait_for(
                "the opened channels to be OPEN",
                lambda: all(
                    c.get("state") not in ("OPENING", "FUNDED") for c in story.bitcart.channels()
                ),
                timeout=120,
                interval=2,
            )
        if len(story.open_channels()) >= GOAL_CHANNELS:
            break

    opens = [e for r in runs for e in r.named("channel_opened")]
    failed = [e for r in runs for e in r.named("channel_open_failed")]
    why = "\n".join(
        f"cycle {n}: nothing_to_do channel_opening {_nothing_to_do(r, 'channel_opening')}; "
        f"topups {_nothing_to_do(r, 'topups')}"
        for n, r in enumerate(runs, 1)
    )
    chans = story.open_channels()
    peers = sorted(story.lsps.get(c["remote_pubkey"], c["remote_pubkey"]) for c in chans)
    assert peers == ["lsp1", "lsp2"], (
        f"expected 2 OPEN channels, to lsp1 and lsp2; got {peers}\n"
        f"channel_opened: {[(e.get('peer'), _sats(e), e.get('fee_rate')) for e in opens]}\n"
        f"channel_open_failed: {[(e.get('peer'), _sats(e), e.get('error')) for e in failed]}\n"
        f"{why}\nchannels:\n{story.channels_text()}\nlast cycle:\n{runs[-1].brief()}"
    )
    story.channel_points = {c["channel_point"] for c in chans}
    left = btc_to_sat(story.bitcart.balance()["confirmed"])
    print(
        f"channels OPEN after {len(runs)} cycle(s): "
        f"{[(e.get('peer', '')[:10], _sats(e), e.get('fee_rate')) for e in opens]}; "
        f"{left} sat left on-chain of the {story.topup_sat} sat top-up"
    )


def test_step_c_first_cashout_reaches_carol(story: Story) -> None:
    if not story.lh.all_events("payment_succeeded", kind="cashout"):
        story.lh.once()
    pay_events = [
        e
        for e in (e for r in story.lh.runs for e in r.events)
        if str(e.get("event", "")).startswith("payment_") and e.get("kind") == "cashout"
    ]
    first_ok = next(
        (i for i, e in enumerate(pay_events) if e["event"] == "payment_succeeded"), None
    )
    shown = "\n".join(
        f"{e['event']} {e.get('amount_sat', e.get('sats'))} {e.get('error', '')}"
        for e in pay_events
    )
    assert first_ok is not None, (
        f"no cashout succeeded; payment events:\n{shown}\n{story.lh.runs[-1].brief()}"
    )
    before = [e for e in pay_events[:first_ok] if e["event"] != "payment_sending"]
    assert not before, f"the first cashout attempt should succeed; before it:\n{shown}"
    ok = pay_events[first_ok]
    entry = next(e for e in story.journal_kind("cashout") if e["id"] == ok["entry"])
    received = {h["payment_hash"]: h for h in story.stack.received_payments("carol")}
    assert entry["payment_hash"] in received, (
        f"cashout {entry['amount_sat']} sat (hash {entry['payment_hash']}) not in carol's history"
    )
    got = received[entry["payment_hash"]]["amount_msat"]
    assert got == entry["amount_sat"] * 1000, (
        f"carol received {got} msat for a {entry['amount_sat']} sat cashout"
    )
    story.first_cashout_s = time.monotonic() - story.started
    print(f"first cashout {entry['amount_sat']} sat, routing fee {entry['fee_msat']} msat")


def _inbound_problems(story: Story) -> str:
    """Empty when the real channel list meets the goal, else what is missing, with numbers."""
    chans = story.open_channels()
    inbound = {c["channel_point"]: channel_inbound_sat(c) for c in chans}
    total = sum(inbound.values())
    small = {p: v for p, v in inbound.items() if v < GOAL_PER_CHANNEL_SAT}
    problems = []
    if total < GOAL_INBOUND_SAT:
        problems.append(f"inbound {total} sat < goal {GOAL_INBOUND_SAT}")
    if small:
        problems.append(f"channels below the per-channel minimum {GOAL_PER_CHANNEL_SAT}: {small}")
    if not problems:
        return ""
    return (
        "; ".join(problems)
        + " (inbound = remote_balance - remote_reserve)\n"
        + story.channels_text()
    )


def test_step_d_inbound_goal_met(story: Story) -> None:
    """Once the cashouts have settled (a cycle that sends none; at most 3 more cycles), the
    real channel list meets the goal."""
    runs = []
    for _ in range(3):
        run = story.lh.once()
        runs.append(run)
        if not run.named("payment_sending", kind="cashout"):
            break
    problems = _inbound_problems(story)
    log = "\n---\n".join(r.brief(25) for r in runs)
    assert not problems, f"after {len(runs)} more cycle(s): {problems}\n{log}"


def test_step_e_customers_pay_over_lightning(story: Story) -> None:
    # Spread the promised inbound over the channels, as evenly as each one's inbound allows;
    # each channel's share is paid by its peer in two invoices.
    left = GOAL_INBOUND_SAT
    plan: list[tuple[str, int]] = []
    chans = sorted(story.open_channels(), key=channel_inbound_sat)
    for i, c in enumerate(chans):
        share = max(0, min(channel_inbound_sat(c), left // (len(chans) - i)))
        payer = story.lsps.get(c["remote_pubkey"], "lsp1")
        plan += [(payer, share // 2), (payer, share - share // 2)]
        left -= share
    plan = [(p, a) for p, a in plan if a > 0]
    assert left == 0, f"channels cannot take the promised {GOAL_INBOUND_SAT} sat: {plan}"
    for payer, sats in plan:
        inv = story.stack.invoice(sat_to_btc(sats))
        assert inv.get("bolt11"), f"Bitcart invoice without a Lightning method: {inv}"
        result = story.stack.pay_invoice(inv["bolt11"], payer)
        assert result.get("success"), (
            f"{payer} could not pay {sats} sat to the store (invoice {inv['id']}): {result}\n"
            f"paid so far {story.customer_paid_sat}\nchannels:\n{story.channels_text()}"
        )
        invoice_id = inv["id"]

        def complete(invoice_id: str = invoice_id) -> bool:
            return bool(story.bitcart.invoice(invoice_id)["status"] == "complete")

        wait_for(f"invoice {invoice_id} to complete", complete, timeout=90, interval=1)
        story.customer_paid_sat.append(sats)
    assert sum(story.customer_paid_sat) == GOAL_INBOUND_SAT


def test_step_f1_lsp_offline_asks_nothing(story: Story) -> None:
    topups_before = len(story.bitcart.topup_invoices())
    opens_before = len(story.journal_kind("channel_open"))
    story.stack.ecli("lsp1", "stop")
    try:
        wait_for("lsp1 to exit", lambda: not story.stack.alive("lsp1"), timeout=60)
        lsp1 = next(k for k, v in story.lsps.items() if v == "lsp1")
        wait_for(
            "the merchant wallet to see lsp1 offline",
            lambda: any(
                c["remote_pubkey"] == lsp1 and c.get("peer_state", "DISCONNECTED") != "GOOD"
                for c in story.bitcart.channels()
            ),
            timeout=60,
            interval=1,
        )
        run = story.lh.once()
    finally:
        story.stack.run("up", timeout=600)
    moves = _money_moves(run)
    assert not moves, f"with lsp1 offline the daemon asked money or opened channels: {moves}\n" + (
        run.brief()
    )
    assert len(story.bitcart.topup_invoices()) == topups_before, "a new top-up invoice appeared"
    assert len(story.journal_kind("channel_open")) == opens_before, "a channel open was journaled"
    story.wait_peers_connected()


def test_step_f2_bitcart_daemon_restart_asks_nothing(story: Story) -> None:
    topups_before = len(story.bitcart.topup_invoices())
    opens_before = len(story.journal_kind("channel_open"))
    story.stack.kill_service_group("btc-daemon")
    story.stack.run("up", timeout=600)  # restarts it and waits until it answers at the tip
    run = story.lh.once()
    moves = _money_moves(run)
    assert not moves, (
        f"right after Bitcart's daemon restarted, the daemon asked money or opened channels: "
        f"{moves}\n{run.brief()}"
    )
    assert len(story.bitcart.topup_invoices()) == topups_before, "a new top-up invoice appeared"
    assert len(story.journal_kind("channel_open")) == opens_before, "a channel open was journaled"
    story.wait_peers_connected()


def test_step_g_cashouts_and_operator_fee(story: Story) -> None:
    cashouts_before = len([e for e in story.journal_kind("cashout") if e["status"] == "succeeded"])
    runs = []
    for _ in range(5):
        run = story.lh.once()
        runs.append(run)
        fee_done = [e for e in story.journal_kind("fee_payment") if e["status"] == "succeeded"]
        if fee_done and not run.named("payment_sending", kind="cashout"):
            break
    cashouts = [e for e in story.journal_kind("cashout") if e["status"] == "succeeded"]
    fees = [e for e in story.journal_kind("fee_payment") if e["status"] == "succeeded"]
    log = "\n---\n".join(r.brief(30) for r in runs)
    assert len(cashouts) > cashouts_before, f"no further cashout after customers paid\n{log}"
    revenue = sum(story.customer_paid_sat)
    rate = Decimal(LiquidityHelper.FEE_RATE)
    owed = int((Decimal(revenue) * rate).to_integral_value(rounding=ROUND_FLOOR))
    paid = sum(e["amount_sat"] for e in fees)
    assert paid == owed, (
        f"operator fee paid {paid} sat, owed {owed} (= {rate} x {revenue} sat revenue)\n"
        f"fee lines: {[r.named('nothing_to_do', section='fee_payments') for r in runs]}\n{log}"
    )
    assert all(e["destination"] == story.stack.env["REALSTACK_DAVE_LNADDR"] for e in fees)
    print(
        f"after customers paid {revenue} sat: cashouts "
        f"{[e['amount_sat'] for e in cashouts[cashouts_before:]]}, fee {paid} sat to dave"
    )


def test_step_h_books_match_receivers(story: Story) -> None:
    journal = story.lh.journal()
    for kind in ("cashout", "fee_payment"):
        assert any(e["kind"] == kind and e["status"] == "succeeded" for e in journal), (
            f"no succeeded {kind} in the journal: nothing to compare"
        )
    pending = [e for e in journal if e["status"] == "pending"]
    assert not pending, f"journal entries still pending at the end: {pending}"
    hashes = Counter(e["payment_hash"] for e in journal if e["payment_hash"])
    assert all(n == 1 for n in hashes.values()), f"a payment hash journaled twice: {hashes}"
    served = {s["payment_hash"]: s for s in story.stack.lnurl_served()}
    receivers = {"cashout": "carol", "fee_payment": "dave"}
    for kind, who in receivers.items():
        received = story.stack.received_payments(who)
        counts = Counter(h["payment_hash"] for h in received)
        assert all(n == 1 for n in counts.values()), f"{who} was paid twice for one hash: {counts}"
        by_hash = {h["payment_hash"]: h for h in received}
        entries = [e for e in journal if e["kind"] == kind]
        ok = {e["payment_hash"]: e for e in entries if e["status"] == "succeeded"}
        for h, e in ok.items():
            assert h in by_hash, f"{kind} #{e['id']} {e['amount_sat']} sat: {who} has no {h}"
            assert by_hash[h]["amount_msat"] == e["amount_sat"] * 1000, (
                f"{kind} #{e['id']}: journal {e['amount_sat']} sat, {who} received "
                f"{by_hash[h]['amount_msat']} msat"
            )
            assert served.get(h, {}).get("user") == who, f"{h} was not issued by {who}'s address"
            assert served[h]["msat"] == e["amount_sat"] * 1000, (served[h], e)
        for e in entries:
            if e["status"] == "failed":
                assert e["payment_hash"] not in by_hash, f"failed {kind} #{e['id']} was received"
        extra = set(by_hash) - set(ok)
        assert not extra, f"{who} received payments the journal does not show as paid: {extra}"
    topups = story.bitcart.topup_invoices()
    assert [i["id"] for i in topups] == [story.topup_invoice_id], (
        f"exactly one top-up (the one needed) expected: "
        f"{[(i['id'], i['price'], i['status']) for i in topups]}"
    )
    asked = [e for e in journal if e["kind"].startswith("topup")]  # if the journal keeps them
    assert all(e.get("reference") in (None, story.topup_invoice_id) for e in asked), asked
    opens = [e for e in journal if e["kind"] == "channel_open" and e["status"] == "succeeded"]
    assert {e["reference"] for e in opens} >= story.channel_points, (
        f"the OPEN channels {story.channel_points} are not all journaled opens: {opens}"
    )
    print("journal: " + ", ".join(f"{e['kind']} {e['amount_sat']} {e['status']}" for e in journal))


def test_one_live_topup_invoice_when_the_need_changes(story: Story) -> None:
    """After the story: the need grows twice (more channels wanted); each time the pending
    invoice is marked invalid in Bitcart before the new one is made, so one stays payable."""
    if not story.channel_points:
        pytest.skip("the story did not get far enough")
    # Both LSPs are peers already: a further channel may go to one of them again (else the
    # daemon rightly asks nothing: no_peer_available).
    story.lh.env["LIQUIDITYHELPER_NODES__ALLOW_SAME_PEER_CHANNELS"] = "true"
    for channels in (3, 4):
        story.lh.env["LIQUIDITYHELPER_MIN_CHANNEL_COUNT"] = str(channels)
        try:
            run = story.lh.once()
        finally:
            del story.lh.env["LIQUIDITYHELPER_MIN_CHANNEL_COUNT"]
        pending = [i for i in story.bitcart.topup_invoices() if i["status"] == "pending"]
        assert len(pending) == 1, (
            f"{len(pending)} pending top-up invoices with min_channel_count={channels}: "
            f"{[(i['id'], i['price']) for i in pending]}\n{run.brief()}"
        )
        assert pending[0]["payment_methods"] == [story.bitcart.wallet_id]
    statuses = sorted(i["status"] for i in story.bitcart.topup_invoices())
    assert statuses == ["complete", "invalid", "pending"], statuses
    # And with the goal back at its default the last one is withdrawn too.
    del story.lh.env["LIQUIDITYHELPER_NODES__ALLOW_SAME_PEER_CHANNELS"]
    story.lh.once()
    assert not [i for i in story.bitcart.topup_invoices() if i["status"] == "pending"]


def test_story_figures(story: Story) -> None:
    """The real story's figures for BENCHMARKS.md (printed, and written beside the journal)."""
    if not story.channel_points or not story.first_cashout_s:
        pytest.skip("the story did not get far enough")
    capacity = sum(int(c["capacity"]) for c in _capacities(story))
    inbound = sum(channel_inbound_sat(c) for c in story.open_channels())
    onchain_left = btc_to_sat(story.bitcart.balance()["confirmed"])
    funding_vbytes = 221  # the plan's assumption per funding tx (two inputs)
    planned_fees = len(story.planned_capacities) * funding_vbytes * story.planned_fee_rate
    paid_fees = story.topup_sat - capacity - onchain_left
    figures = {
        "seconds_from_first_once_to_first_cashout": round(story.first_cashout_s, 1),
        "topup_paid_sat": story.topup_sat,
        "channel_capacity_sat": capacity,
        "inbound_at_end_sat": inbound,
        "onchain_left_sat": onchain_left,
        "funding_fees_planned_sat": planned_fees,
        "funding_fees_paid_sat": paid_fees,
        "fee_rate_sat_vb": story.planned_fee_rate,
    }
    (story.lh.data_dir.parent / "story-figures.json").write_text(json.dumps(figures, indent=1))
    print("story figures: " + json.dumps(figures))
    assert paid_fees <= planned_fees, "the opens paid more on-chain fee than planned"


def _capacities(story: Story) -> list[dict[str, Any]]:
    out = []
    for c in story.open_channels():
        local = int(c.get("local_balance", 0))
        remote = int(c.get("remote_balance", 0))
        out.append({"capacity": c.get("capacity_sat") or local + remote})
    return out
