"""``liquidityhelper demo``: the real daemon against a simulated Bitcart, time sped up.

A simulator on 127.0.0.1 plays Bitcart, its BTC daemon, the Lightning network and two
lightning-address servers. The real :class:`~liquidityhelper.main.Daemon` (real backends over
HTTP, real journal in a temporary directory) runs cycle after cycle while the demo plays the
world in between: the merchant pays the top-up invoice, blocks are mined, customers pay.
Simulator and daemon share one clock, moved forward by hand, so invoices stay valid and an
afternoon passes in seconds.

Nothing here reads the environment or a config file: the settings are built in code, so no
``LIQUIDITYHELPER_*`` variable can point the demo at a real Bitcart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import structlog
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from liquidityhelper import common_functions as cf
from liquidityhelper.config import ENV_PREFIX, Settings
from liquidityhelper.journal import Journal, Kind, Status
from liquidityhelper.logs import configure_logging
from liquidityhelper.main import CycleReport, Daemon
from liquidityhelper.report import Report, collect_report
from liquidityhelper.report import render_text as render_report
from liquidityhelper.simulator import SimConfig, SimError, Simulator
from liquidityhelper.snapshot import CycleSnapshot
from liquidityhelper.status import collect, render_text, status_document, wrap
from liquidityhelper.wiring import build_runtime

SEED = 3  # a network whose trampolines route the demo's cashouts within the fee cap
STORE_NAME = "Demo coffee shop"
WALLET_NAME = "liquidityhelper"
FEE_RATE = Decimal("0.01")  # the operator's 1 %
# Their 1 % (1,280 sat) is a fee payment big enough for a real route's fee under the caps.
CUSTOMER_PAYMENTS_SAT = (42_000, 25_000, 61_000)
# Then a big order paid on-chain, once the goal is met: sats the wallet does not need, so
# the daemon puts them into one more channel ("spare funds", on by default). It is revenue:
# the operator's fee counts it too.
ONCHAIN_ORDER_SAT = 300_000
POLL = timedelta(minutes=5)  # simulated time between two cycles
BLOCK = timedelta(minutes=10)
MAX_CLOSING_CYCLES = 6
TTY_PACE_SECONDS = 0.35  # a short pause between steps, only when a person watches

# Daemon events that mean something went wrong: the demo reports them and fails.
PROBLEM_EVENTS = frozenset(
    {
        "channel_open_failed",
        "channel_open_outcome_unknown",
        "payment_outcome_unknown",
        "payment_refused",
        "lnurl_refused",
        "section_failed",
        "wallet_failed",
        "store_failed",
        "topup_failed",
        "backend_unreadable",
        "wallet_unreadable",
        "bitcart_unreachable",
    }
)


class DemoSettings(Settings):
    """Settings from code only: no environment, no file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class DemoClock:
    """One clock for the simulator and the daemon; the demo moves it forward."""

    def __init__(self) -> None:
        self.start = self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def timestamp(self) -> float:
        return self.now.timestamp()

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class DemoResult:
    """The machine summary (``demo --json``)."""

    ok: bool = False
    topups: list[dict[str, Any]] = field(default_factory=list)
    channels: list[dict[str, Any]] = field(default_factory=list)
    customer_payments_sat: list[int] = field(default_factory=list)  # over Lightning
    onchain_payments_sat: list[int] = field(default_factory=list)  # the spare funds' source
    cashouts: list[dict[str, Any]] = field(default_factory=list)
    fee_payments: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cycles: int = 0
    simulated_minutes: int = 0
    seconds: float = 0.0
    final_status: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)  # what `report --json` shows
    # The simulator's own books at the end, to check the report against: what it holds for
    # the wallet, what reached each lightning address, the routing fees its network took.
    simulator_books: dict[str, int] = field(default_factory=dict)


class Story:
    """One line per step on ``out`` (None: silent), from the demo and from the daemon's events."""

    def __init__(self, out: TextIO | None, clock: DemoClock, pace: float = 0.0) -> None:
        self.out = out
        self.clock = clock
        self.pace = pace
        self.aliases: dict[str, str] = {}
        self.topups: list[dict[str, Any]] = []
        self.spare_opens: list[tuple[str, int]] = []  # spare-funds channels: peer, capacity
        self.extra_reserve = 0  # the settings' onchain_extra_reserve, for the story
        self.problems: list[str] = []

    def say(self, text: str) -> None:
        if self.out is None:
            return
        minutes = int((self.clock() - self.clock.start).total_seconds()) // 60
        lines = wrap(f"[{minutes // 60:02d}:{minutes % 60:02d}] ", text)
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def intro(self) -> None:
        if self.out is not None:
            self.out.write(
                "The real liquidityhelper daemon against a simulated Bitcart on 127.0.0.1:\n"
                f"one cycle every {POLL.seconds // 60} simulated minutes, no real coins, "
                "a temporary data directory.\n\n"
            )

    async def pause(self) -> None:
        if self.pace:
            await asyncio.sleep(self.pace)

    def alias(self, pubkey: str) -> str:
        return self.aliases.get(pubkey, pubkey[:16] + "...")

    def on_event(self, ev: MutableMapping[str, Any]) -> None:
        name = ev.get("event")
        if name == "topup_needed":
            sat = ev["amount_sat"]
            self.topups.append({"sat": sat, "btc": ev["btc"], "invoice": ev.get("invoice")})
            self.say(f"top-up needed: {sat:,} sat ({ev['btc']} BTC), invoiced in the store")
        elif name == "channel_opened":
            self.say(f"channel opened to {self.alias(str(ev['peer']))} {ev['amount_sat']:,} sat")
            if ev.get("reason") == "spare_funds":
                self.spare_opens.append((str(ev["peer"]), int(ev["amount_sat"])))
                self.say(
                    f"→ spare funds: the goal is met, so the on-chain sats above the close "
                    f"reserves and the onchain_extra_reserve floor ({self.extra_reserve:,} "
                    f"sat here) went into one more channel, as large as they allow: "
                    f"{ev['amount_sat']:,} sat. Cashed out, it is more inbound; "
                    "open_spare_funds = false would keep them on-chain"
                )
        elif name == "payment_succeeded":
            what = "cashout" if ev.get("kind") == "cashout" else "fee"
            self.say(f"{what} {ev['amount_sat']:,} sat → {ev['address']}")
        elif name == "payment_failed":  # the daemon steps down or backs off by itself
            what = "cashout" if ev.get("kind") == "cashout" else "fee"
            self.say(f"{what} of {ev['amount_sat']:,} sat failed ({ev.get('error')})")
        elif name == "payment_stepping_down":
            self.say(f"trying {ev['amount_sat']:,} sat instead")
        elif name in PROBLEM_EVENTS:
            detail = " ".join(
                f"{k}={ev[k]}" for k in ("kind", "amount_sat", "reason", "error") if ev.get(k)
            )
            self.problems.append(f"{name} {detail}".strip())
            self.say(f"problem: {name} {detail}".strip())


# --- logging: the story taps the daemon's events, the log itself is mostly hidden -------------

_LEVELS = logging.getLevelNamesMapping()


def _tap_logs(story: Story, level: str | None, fmt: str | None) -> None:
    """Show the daemon's log at ``level`` (ERROR unless asked) on stderr; feed the story."""
    shown = (level or "ERROR").upper()
    configure_logging(shown, fmt or "auto")
    rest = structlog.get_config()["processors"]
    threshold = _LEVELS[shown]

    def tap(_: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        try:
            story.on_event(event_dict)
        except Exception:  # a story bug must never break a log call inside the daemon
            story.problems.append(f"story could not tell {event_dict.get('event')}")
        if _LEVELS.get(method.upper(), logging.INFO) < threshold:
            raise structlog.DropEvent
        return event_dict

    structlog.configure(
        processors=[tap, *rest],
        wrapper_class=structlog.make_filtering_bound_logger(min(threshold, logging.INFO)),
    )


# --- the demo ---------------------------------------------------------------------------------


def demo_settings(
    sim: Simulator, token: str, data_dir: Path, merchant: str, operator: str, start: datetime
) -> Settings:
    values: dict[str, Any] = {
        "api_url": sim.api_url,
        "api_token": token,
        "daemon_url": sim.rpc_url,
        "daemon_user": sim.rpc_user,
        "daemon_password": sim.rpc_password,
        "network": "regtest",
        "data_dir": data_dir,
        "cashout_lightning_address": merchant,
        "fee_rate": FEE_RATE,
        "fee_lightning_address": operator,
        "fee_start_date": start - timedelta(days=1),
        "poll_interval_seconds": int(POLL.total_seconds()),
        "max_onchain_fee_rate": 50,
    }
    return DemoSettings(**values)


class _Demo:
    def __init__(self, sim: Simulator, daemon: Daemon, clock: DemoClock, story: Story) -> None:
        self.sim = sim
        self.daemon = daemon
        self.clock = clock
        self.story = story
        self.cycles = 0
        self.onchain_paid: list[int] = []
        self._inbound: int | None = None
        daemon.on_cycle.append(self._after_cycle)

    async def cycle(self) -> CycleReport:
        self.clock.advance(POLL)
        self.cycles += 1
        report = await self.daemon.cycle()
        await self.story.pause()
        return report

    def _after_cycle(self, report: CycleReport, snapshot: CycleSnapshot) -> None:
        inbound = sum(g.inbound_sat for g in self.daemon.metrics.wallets.values())
        target = sum(g.target_sat for g in self.daemon.metrics.wallets.values())
        if report.actions and inbound != self._inbound:
            self.story.say(f"inbound liquidity now {inbound:,} sat (target {target:,} sat)")
            self._inbound = inbound

    async def mine(self, blocks: int, why: str) -> None:
        await self.sim.mine(blocks)
        self.clock.advance(BLOCK * blocks)
        self.story.say(f"{blocks} block{'s' if blocks > 1 else ''} mined: {why}")
        await self.story.pause()

    async def play(self, store_id: str) -> list[int]:
        """The merchant's first afternoon; returns what customers paid."""
        await self.cycle()  # a fresh wallet: the daemon asks for a top-up and invoices it
        invoice = self.story.topups[-1]["invoice"] if self.story.topups else None
        if invoice:
            self.sim.customer_pay(invoice, lightning=False)
            self.story.say("→ the merchant pays it from Bitcart's checkout, on-chain")
            await self.mine(1, "the top-up payment confirms")
        await self.cycle()  # funded: channels open
        await self.mine(3, "the channels are open")
        await self.cycle()  # the first cashout turns channel capacity into inbound
        paid = []
        for sats in CUSTOMER_PAYMENTS_SAT:
            self.clock.advance(timedelta(minutes=7))
            invoice = self.sim.create_invoice(store_id, cf.format_btc(sats), currency="BTC")
            try:
                self.sim.customer_pay(invoice, lightning=True)
            except SimError as exc:
                self.story.problems.append(f"customer_payment_failed {exc}")
                self.story.say(f"problem: a customer could not pay {sats:,} sat: {exc}")
                continue
            paid.append(sats)
            self.story.say(f"a customer pays {sats:,} sat over Lightning")
            await self.story.pause()
        self.onchain_paid = await self.onchain_order(store_id)
        # Cashouts, the fee and the spare-funds channel, until nothing is left to do.
        for _ in range(MAX_CLOSING_CYCLES):
            spare_opens = len(self.story.spare_opens)
            report = await self.cycle()
            if len(self.story.spare_opens) > spare_opens:
                await self.mine(3, "the spare-funds channel is open")
            elif not report.actions and self.daemon.journal.entries(kind=Kind.FEE_PAYMENT):
                break
        return paid

    async def onchain_order(self, store_id: str) -> list[int]:
        """A big order paid on-chain once the goal is met: spare funds. What was paid."""
        self.clock.advance(timedelta(minutes=7))
        invoice = self.sim.create_invoice(
            store_id, cf.format_btc(ONCHAIN_ORDER_SAT), currency="BTC"
        )
        try:
            self.sim.customer_pay(invoice, lightning=False)
        except SimError as exc:
            self.story.problems.append(f"customer_payment_failed {exc}")
            self.story.say(f"problem: a customer could not pay on-chain: {exc}")
            return []
        self.story.say(
            f"a customer pays {ONCHAIN_ORDER_SAT:,} sat on-chain (a catering order): the "
            "liquidity goal is met already, so these sats are spare"
        )
        await self.mine(1, "the catering order confirms")
        return [ONCHAIN_ORDER_SAT]


def _payments(journal: Journal, kind: Kind) -> list[dict[str, Any]]:
    return [
        {"sat": e.amount_sat, "to": e.destination, "routing_fee_msat": e.fee_msat or 0}
        for e in journal.entries(kind=kind)
        if e.status is Status.SUCCEEDED
    ]


LIVE_SIM_STATES = frozenset({"PREOPENING", "OPENING", "FUNDED", "OPEN"})


def simulator_books(
    sim: Simulator, wallet_id: str, merchant: str, operator: str, topups_paid_sat: int
) -> dict[str, int]:
    """The simulator's truth about the demo's wallet, exact (msat where Lightning has them)."""
    balance = sim.balance(wallet_id)
    local = sum(c.local_msat for c in sim.channels(wallet_id) if c.state.value in LIVE_SIM_STATES)
    key = sim.wallet_key(wallet_id)
    mine = [p for p in sim.payments if p.wallet_key == key and p.status == 3]
    return {
        "topups_paid_sat": topups_paid_sat,
        "onchain_sat": balance["confirmed"] + balance["unconfirmed"],
        "channels_local_msat": local,
        "held_msat": (balance["confirmed"] + balance["unconfirmed"]) * 1000 + local,
        "to_merchant_msat": sim.received_by_address(merchant),
        "to_operator_msat": sim.received_by_address(operator),
        "routing_fees_msat": sum(p.fee_msat for p in mine),
    }


def books_line(report: Report, books: dict[str, int]) -> tuple[bool, str]:
    """Does every sat the report counts in equal every sat out plus what the simulator says
    the wallet holds, to the msat? And the sentence saying so."""
    total = report.total
    balanced = total.sats_in * 1000 == total.sats_out_msat + books["held_msat"]
    out = (total.sats_out_msat + 500) // 1000
    if balanced:
        return True, (
            f"every sat accounted for: {total.sats_in:,} sat in = {out:,} sat out "
            f"+ {total.sats_in - out:,} sat held"
        )
    held = books["held_msat"] / 1000
    return False, (
        f"books do not balance: {total.sats_in:,} sat in, {total.sats_out_msat / 1000:,} sat "
        f"out, {held:,} sat held"
    )


def _channels(journal: Journal, story: Story) -> list[dict[str, Any]]:
    out = []
    for e in journal.entries(kind=Kind.CHANNEL_OPEN):
        if e.status is Status.SUCCEEDED:
            peer = e.destination.split("@", 1)[0]
            spare = (peer, e.amount_sat) in story.spare_opens
            out.append(
                {
                    "peer": peer,
                    "alias": story.aliases.get(peer, ""),
                    "capacity_sat": e.amount_sat,
                    "channel_point": e.reference,
                    "reason": "spare_funds" if spare else "need_liquidity",
                }
            )
    return out


async def run_demo_async(story: Story, clock: DemoClock) -> DemoResult:
    result = DemoResult()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="liquidityhelper-demo-") as tmp:
        sim = Simulator(SEED, config=SimConfig(network="regtest"), clock=clock.timestamp)
        async with sim:
            story.aliases = {n.pubkey: n.alias for n in sim.network_nodes}
            token = sim.create_user("merchant@demo.invalid")
            store_id = sim.create_store(token, STORE_NAME, "USD")
            wallet_id = sim.create_wallet(token, WALLET_NAME, store_ids=[store_id])
            merchant = sim.add_lightning_address("merchant")
            await sim.add_lnurl_server("operator")
            operator = sim.add_lightning_address("fees", server="operator")
            settings = demo_settings(sim, token, Path(tmp), merchant, operator, clock.start)
            story.extra_reserve = settings.onchain_extra_reserve
            story.intro()
            story.say(f"Bitcart (simulated, regtest) at {sim.api_url}")
            story.say(f'store "{STORE_NAME}": new Lightning wallet, no coins, no channels')
            story.say(f"cashouts go to {merchant}")
            story.say(f"the operator's {FEE_RATE:%} fee goes to {operator}")
            await story.pause()
            async with build_runtime(settings) as rt:
                rt.nodes.import_seed_data(sim.network_nodes_json(), "simulator")
                daemon = Daemon(settings, rt.backends, rt.journal, rt.peers, rt.http, clock=clock)
                demo = _Demo(sim, daemon, clock, story)
                result.customer_payments_sat = await demo.play(store_id)
                result.onchain_payments_sat = demo.onchain_paid
                statuses, snapshot = await collect(daemon)
                report = await collect_report(
                    rt.backends, rt.journal, settings, since=None, now=clock()
                )
                result.cycles = demo.cycles
                result.channels = _channels(rt.journal, story)
                result.cashouts = _payments(rt.journal, Kind.CASHOUT)
                result.fee_payments = _payments(rt.journal, Kind.FEE_PAYMENT)
                unfinished = rt.journal.pending()
            result.final_status = status_document(statuses, snapshot)
            result.report = report.document()
            paid = sum(t["sat"] for t in story.topups[-1:])  # the merchant paid the last one
            result.simulator_books = simulator_books(sim, wallet_id, merchant, operator, paid)
            balanced, books = books_line(report, result.simulator_books)
            if not balanced:
                story.problems.append(books)
            problems = report.problems + [f for w in report.wallets for f in w.flags]
            story.problems.extend(f"report: {p}" for p in problems)
            if story.out is not None:
                story.out.write("\nFinal status (what `liquidityhelper status` shows):\n\n")
                render_text(statuses, snapshot, story.out)
                story.out.write("\nWhat it cost and bought (`liquidityhelper report`):\n\n")
                render_report(report, story.out)
                story.out.write("\n" + "\n".join(wrap("", books)) + "\n")
    result.topups = story.topups
    result.problems = [*story.problems, *(f"unfinished {e.kind.value} #{e.id}" for e in unfinished)]
    result.simulated_minutes = int((clock() - clock.start).total_seconds()) // 60
    result.seconds = round(time.monotonic() - began, 2)
    result.ok = bool(
        result.topups
        and result.channels
        and any(c["reason"] == "spare_funds" for c in result.channels)
        and result.cashouts
        and len(result.fee_payments) == 1
        and not result.problems
    )
    return result


def _closing_lines(result: DemoResult) -> list[str]:
    if not result.ok:
        missing = [
            what
            for what, done in (
                ("a top-up", result.topups),
                ("a channel", result.channels),
                (
                    "a spare-funds channel",
                    any(c["reason"] == "spare_funds" for c in result.channels),
                ),
                ("a cashout", result.cashouts),
                ("exactly one fee payment", len(result.fee_payments) == 1),
            )
            if not done
        ]
        return [
            "",
            "demo FAILED: " + ", ".join(missing + result.problems or ["see the log above"]),
            "rerun with --log-level INFO to see the daemon's own log",
        ]
    hours, minutes = divmod(result.simulated_minutes, 60)
    spare = sum(c["reason"] == "spare_funds" for c in result.channels)
    return [
        "",
        *wrap(
            "",
            f"{hours} h {minutes:02d} min of a merchant's day in {result.seconds} s: "
            f"{len(result.channels)} channels ({spare} from spare funds), "
            f"{len(result.cashouts)} cashouts, 1 fee payment.",
        ),
        "With your own Bitcart: `liquidityhelper config check`, then",
        "`liquidityhelper --dry-run once` (see README.md).",
    ]


def run_demo(
    *,
    json_output: bool = False,
    log_level: str | None = None,
    log_format: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the demo; print the story (or, with ``json_output``, one JSON summary). 0 if it
    went as it should, 1 otherwise."""
    if out is None:
        out = sys.stdout
        with contextlib.suppress(AttributeError, ValueError):  # a non-UTF-8 terminal: no crash
            sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    ignored = sorted(k for k in os.environ if k.startswith(ENV_PREFIX))
    if ignored:
        sys.stderr.write(
            f"demo: ignoring {', '.join(ignored)}: the demo only talks to its own simulator\n"
        )
    clock = DemoClock()
    watching = not json_output and out.isatty()
    story = Story(None if json_output else out, clock, TTY_PACE_SECONDS if watching else 0.0)
    saved = structlog.get_config()
    _tap_logs(story, log_level, log_format)
    try:
        result = asyncio.run(run_demo_async(story, clock))
    finally:
        structlog.configure(**saved)
    if json_output:
        json.dump(asdict(result), out, indent=2)
        out.write("\n")
    else:
        out.write("\n".join(_closing_lines(result)) + "\n")
    return 0 if result.ok else 1
