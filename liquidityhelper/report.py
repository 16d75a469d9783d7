"""``liquidityhelper report``: what liquidity cost and what it bought, per wallet and in total.

Sats in: top-ups paid (Bitcart invoices tagged ``topup``, what was received into the wallet)
and revenue received over Lightning (every other paid invoice, the Lightning payment method the
customer used, into the wallet; revenue paid on-chain into it is shown apart). Sats out:
cashouts and the operator's fees (the journal), the on-chain fees of channel opens and closes
(the wallet's on-chain history), routing fees (the journal's, and those of our labelled
payments that only the wallet's history shows). What is not out is held: on-chain and in the
channels. Inbound created is what cashouts and fee payments pushed out through channels; its
cost rate is (on-chain + routing fees) per sat of it.

A cooperative close's fee comes out of the channel's balance and no history shows it: such a
close is flagged, its fee not counted.

:func:`wallet_report` computes the figures from plain data (journal entries, invoices,
histories) without any I/O; :func:`collect_report` reads them from Bitcart. Every amount is an
``int`` of sats (routing fees also exactly in msat); ratios are ``Decimal`` and printed only.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TextIO

from liquidityhelper.config import Settings
from liquidityhelper.journal import (
    PAYMENT_KINDS,
    PAYMENT_LABEL_PREFIX,
    Entry,
    Journal,
    Kind,
    Status,
)
from liquidityhelper.revenue import PAID_STATUSES, is_topup
from liquidityhelper.snapshot import bounded_gather, managed_wallets_of
from liquidityhelper.wallet.base import (
    LightningHistoryItem,
    OnchainHistoryItem,
    StoreInvoice,
    WalletBackend,
    WalletError,
)

OPEN_LABEL = "open channel"  # Electrum's label of a funding transaction
CLOSE_LABEL = "close channel"

# ---------------------------------------------------------------------------------------------
# The figures (pure)
# ---------------------------------------------------------------------------------------------


@dataclass
class WalletReport:
    """One wallet's books over a period (or the total of several: ``wallet_id`` "total")."""

    wallet_id: str
    stores: list[dict[str, str]] = field(default_factory=list)  # id, name
    # in
    topups_paid_sat: int = 0
    topups_paid: int = 0
    revenue_lightning_sat: int = 0
    revenue_onchain_sat: int = 0  # customers who paid on-chain into the wallet
    # out
    cashed_out_sat: int = 0
    cashouts: int = 0
    operator_fees_sat: int = 0
    fee_payments: int = 0
    onchain_fees_open_sat: int = 0
    opens: int = 0  # funding transactions seen
    onchain_fees_close_sat: int = 0
    closes: int = 0  # closing (or sweep) transactions seen
    routing_fees_msat: int = 0
    # on-chain fees of transactions that are not channel opens or closes (the merchant's own
    # sends): shown, never counted as a cost of liquidity
    onchain_fees_other_sat: int = 0
    # payments found only in the wallet's history, or whose fee only it knows
    unjournaled_payments: int = 0
    flags: list[str] = field(default_factory=list)

    @property
    def sats_in(self) -> int:
        """Top-ups and revenue (a customer paying on-chain into the wallet is a sat in too)."""
        return self.topups_paid_sat + self.revenue_lightning_sat + self.revenue_onchain_sat

    @property
    def onchain_fees_sat(self) -> int:
        return self.onchain_fees_open_sat + self.onchain_fees_close_sat

    @property
    def routing_fees_sat(self) -> int:
        """Routing fees in sats, rounded up: a fee is never shown smaller than it was."""
        return -(-self.routing_fees_msat // 1000)

    @property
    def network_fees_sat(self) -> int:
        """On-chain and routing fees: what creating the inbound cost."""
        return self.onchain_fees_sat + self.routing_fees_sat

    @property
    def all_fees_sat(self) -> int:
        return self.network_fees_sat + self.operator_fees_sat

    @property
    def inbound_created_sat(self) -> int:
        """Sats pushed out through channels: each one is a sat of inbound capacity."""
        return self.cashed_out_sat + self.operator_fees_sat

    @property
    def sats_out_msat(self) -> int:
        """Everything that left the wallet, exactly (routing fees to the msat)."""
        whole = self.cashed_out_sat + self.operator_fees_sat + self.onchain_fees_sat
        return whole * 1000 + self.routing_fees_msat

    @property
    def inbound_cost_rate(self) -> Decimal | None:
        """On-chain and routing fees per sat of inbound created; None before any."""
        if not self.inbound_created_sat:
            return None
        cost = self.onchain_fees_sat * 1000 + self.routing_fees_msat
        return Decimal(cost) / Decimal(self.inbound_created_sat * 1000)

    @property
    def fees_share_of_revenue(self) -> Decimal | None:
        """Every fee (on-chain, routing, the operator's) per sat of Lightning revenue."""
        if not self.revenue_lightning_sat:
            return None
        cost = (self.onchain_fees_sat + self.operator_fees_sat) * 1000 + self.routing_fees_msat
        return Decimal(cost) / Decimal(self.revenue_lightning_sat * 1000)

    def add(self, other: WalletReport) -> None:
        for name, value in vars(other).items():
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, getattr(self, name) + value)
        self.stores = [*self.stores, *other.stores]
        self.flags = [*self.flags, *(f"{other.wallet_id}: {f}" for f in other.flags)]

    def document(self) -> dict[str, Any]:
        """Plain JSON types: the figures, the derived ones, ratios as decimal strings."""
        out = asdict(self)
        for name in (
            "sats_in",
            "onchain_fees_sat",
            "routing_fees_sat",
            "network_fees_sat",
            "all_fees_sat",
            "inbound_created_sat",
            "sats_out_msat",
        ):
            out[name] = getattr(self, name)
        for name in ("inbound_cost_rate", "fees_share_of_revenue"):
            ratio = getattr(self, name)
            out[name] = None if ratio is None else str(ratio.quantize(Decimal("0.000001")))
        return out


def _within(when: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    """In the period; an undated item (an unconfirmed transaction) is taken as happening now,
    inside any period that reaches the present."""
    if when is None:
        return True
    return (since is None or when >= since) and (until is None or when < until)


def _txid(reference: str | None) -> str:
    return (reference or "").split(":", 1)[0].lower()


def wallet_report(
    wallet_id: str,
    entries: Iterable[Entry],
    invoices: Iterable[StoreInvoice] | None,
    onchain: Iterable[OnchainHistoryItem] | None,
    lightning: Iterable[LightningHistoryItem] | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    stores: Sequence[Mapping[str, str]] = (),
) -> WalletReport:
    """The figures of one wallet over [since, until), from what the journal, Bitcart and the
    wallet show. ``None`` for a source that could not be read: its figures stay 0, flagged.

    ``entries`` may hold other wallets' entries and entries out of the period (they are
    filtered here; every entry of the wallet is used to recognise its channels' transactions).
    """
    rep = WalletReport(wallet_id, stores=[dict(s) for s in stores])
    mine = [e for e in entries if e.wallet_id == wallet_id]
    _invoice_figures(rep, invoices, since, until)
    _payment_figures(rep, mine, lightning, since, until)
    _onchain_figures(rep, mine, onchain, since, until)
    return rep


def _invoice_figures(
    rep: WalletReport,
    invoices: Iterable[StoreInvoice] | None,
    since: datetime | None,
    until: datetime | None,
) -> None:
    if invoices is None:
        rep.flags.append("Bitcart's invoices unreadable: top-ups and revenue not counted")
        return
    seen: set[str] = set()
    lightning_topups = 0
    for inv in invoices:
        if inv.id in seen or inv.status not in PAID_STATUSES:
            continue
        seen.add(inv.id)
        if not _within(inv.paid_date or inv.created, since, until):
            continue
        used = [p for p in inv.payments if p.is_used and p.wallet_id == rep.wallet_id]
        if not used:
            continue
        if is_topup(inv):
            rep.topups_paid_sat += sum(p.amount_sat for p in used)
            rep.topups_paid += 1
            lightning_topups += any(p.lightning for p in used)
            continue
        rep.revenue_lightning_sat += sum(p.amount_sat for p in used if p.lightning)
        rep.revenue_onchain_sat += sum(p.amount_sat for p in used if not p.lightning)
    if lightning_topups:
        rep.flags.append(
            f"{lightning_topups} top-up(s) paid over Lightning: those sats went to a channel "
            "and out with the next cashout"
        )


def _payment_figures(
    rep: WalletReport,
    mine: list[Entry],
    lightning: Iterable[LightningHistoryItem] | None,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Cashouts and fee payments: the journal, checked against the wallet's own history."""
    settled: dict[str, LightningHistoryItem] = {}
    if lightning is None:
        rep.flags.append("Lightning history unreadable: routing fees from the journal only")
    else:
        settled = {i.payment_hash.lower(): i for i in lightning if i.amount_msat < 0}
    journaled = {e.payment_hash.lower() for e in mine if e.payment_hash}
    fee_from_wallet = unknown_fee = 0
    contradicted: list[str] = []
    for e in mine:
        if e.kind not in PAYMENT_KINDS or not _within(e.created_at, since, until):
            continue
        in_wallet = settled.get((e.payment_hash or "").lower())
        if e.status is not Status.SUCCEEDED:
            if in_wallet is None:
                continue  # failed, or still in flight: nothing left the wallet (yet)
            # The wallet shows it paid: the money is gone whatever the journal says.
            contradicted.append(f"#{e.id} {e.status.value}")
        fee = e.fee_msat if e.status is Status.SUCCEEDED else None
        if fee is None:
            if in_wallet is not None:
                fee = in_wallet.fee_msat
                fee_from_wallet += 1
            else:
                fee = 0
                unknown_fee += 1
        _count_payment(rep, e.kind, e.amount_sat, fee)
    for payment_hash, item in settled.items():
        if payment_hash in journaled or not item.label.startswith(PAYMENT_LABEL_PREFIX):
            continue
        kind = item.label.removeprefix(PAYMENT_LABEL_PREFIX)
        if kind not in {k.value for k in PAYMENT_KINDS} or not _within(
            item.timestamp, since, until
        ):
            continue
        rep.unjournaled_payments += 1
        _count_payment(rep, Kind(kind), -item.amount_msat // 1000, item.fee_msat)
    if rep.unjournaled_payments:
        rep.flags.append(
            f"{rep.unjournaled_payments} payment(s) labelled as ours are in the wallet's history "
            "but not in the journal (a lost or replaced journal?): counted from the wallet"
        )
    if fee_from_wallet:
        rep.flags.append(
            f"{fee_from_wallet} payment(s) without a routing fee in the journal: "
            "fee taken from the wallet's history"
        )
    if unknown_fee:
        rep.flags.append(f"{unknown_fee} payment(s) with no known routing fee: counted as 0")
    if contradicted:
        rep.flags.append(
            "the wallet shows paid what the journal does not: " + ", ".join(contradicted)
        )


def _count_payment(rep: WalletReport, kind: Kind, amount_sat: int, fee_msat: int) -> None:
    if kind is Kind.CASHOUT:
        rep.cashed_out_sat += amount_sat
        rep.cashouts += 1
    else:
        rep.operator_fees_sat += amount_sat
        rep.fee_payments += 1
    rep.routing_fees_msat += fee_msat


def _onchain_figures(
    rep: WalletReport,
    mine: list[Entry],
    onchain: Iterable[OnchainHistoryItem] | None,
    since: datetime | None,
    until: datetime | None,
) -> None:
    if onchain is None:
        rep.flags.append("on-chain history unreadable: on-chain fees not counted")
        return
    opened = {_txid(e.reference) for e in mine if e.kind is Kind.CHANNEL_OPEN and e.reference}
    closed = {_txid(e.reference) for e in mine if e.kind is Kind.CHANNEL_CLOSE and e.reference}
    unseen_close_fees = 0
    for item in onchain:
        if not _within(item.timestamp, since, until):
            continue
        txid, label, fee = item.txid.lower(), item.label.lower(), item.fee_sat or 0
        if txid in opened or OPEN_LABEL in label:
            rep.opens += 1
            rep.onchain_fees_open_sat += fee
        elif txid in closed or CLOSE_LABEL in label:
            rep.closes += 1
            rep.onchain_fees_close_sat += fee
            unseen_close_fees += item.fee_sat is None
        else:
            rep.onchain_fees_other_sat += fee
    if unseen_close_fees:
        rep.flags.append(
            f"{unseen_close_fees} channel close(s): the closing fee came out of the channel's "
            "balance and the wallet's history does not show it"
        )
    if rep.onchain_fees_other_sat:
        rep.flags.append(
            f"{rep.onchain_fees_other_sat:,} sat of on-chain fees on transactions that are not "
            "channel opens or closes (not counted as a cost)"
        )


@dataclass
class Report:
    since: datetime | None
    until: datetime
    wallets: list[WalletReport]
    problems: list[str] = field(default_factory=list)  # what could not be read

    @property
    def total(self) -> WalletReport:
        total = WalletReport("total")
        for w in self.wallets:
            total.add(w)
        return total

    def document(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat(),
            "wallets": [w.document() for w in self.wallets],
            "total": self.total.document(),
            "problems": list(self.problems),
        }


def build_report(
    entries: Sequence[Entry],
    books: Mapping[str, WalletBooks],
    *,
    since: datetime | None,
    until: datetime,
    problems: Sequence[str] = (),
) -> Report:
    """Every wallet of ``books`` and every wallet the journal names, one report each."""
    wallet_ids = sorted(set(books) | {e.wallet_id for e in entries})
    out = []
    for wallet_id in wallet_ids:
        b = books.get(wallet_id) or WalletBooks(wallet_id, [], None, None, None)
        rep = wallet_report(
            wallet_id,
            entries,
            b.invoices,
            b.onchain,
            b.lightning,
            since=since,
            until=until,
            stores=b.stores,
        )
        if wallet_id not in books:
            rep.flags.insert(0, "not visible in Bitcart with the configured token(s)")
        out.append(rep)
    return Report(since, until, out, list(problems))


def metric_counters(report: Report) -> list[tuple[str, dict[str, str], int]]:
    """The counters /metrics could carry, per wallet, from a report over everything
    (``since=None``): (name, labels, value)."""
    out: list[tuple[str, dict[str, str], int]] = []
    for w in report.wallets:
        wallet = {"wallet": w.wallet_id}
        for kind, value in (
            ("operator", w.operator_fees_sat),
            ("onchain_open", w.onchain_fees_open_sat),
            ("onchain_close", w.onchain_fees_close_sat),
        ):
            out.append(("fees_paid_sats_total", {**wallet, "kind": kind}, value))
        out.append(("routing_fees_paid_msats_total", wallet, w.routing_fees_msat))
        out.append(("inbound_created_sats_total", wallet, w.inbound_created_sat))
        out.append(("cashed_out_sats_total", wallet, w.cashed_out_sat))
        out.append(("topups_paid_sats_total", wallet, w.topups_paid_sat))
        out.append(("revenue_lightning_sats_total", wallet, w.revenue_lightning_sat))
    return out


# ---------------------------------------------------------------------------------------------
# Reading Bitcart
# ---------------------------------------------------------------------------------------------


@dataclass
class WalletBooks:
    """What Bitcart and the wallet itself show of one wallet; None: could not be read."""

    wallet_id: str
    stores: list[dict[str, str]]  # id, name
    invoices: list[StoreInvoice] | None
    onchain: list[OnchainHistoryItem] | None
    lightning: list[LightningHistoryItem] | None
    backend_index: int | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class Directory:
    """Which backend holds each wallet, and its stores (with their names)."""

    wallets: dict[str, tuple[int, list[dict[str, str]]]]
    problems: list[str] = field(default_factory=list)


async def discover(
    backends: Sequence[WalletBackend], wallet_name: str, also: Iterable[str] = ()
) -> Directory:
    """The managed wallets of every backend, and the wallets in ``also`` (the journal's) that a
    backend sees, each with the stores that use it."""
    wanted = set(also)
    found: dict[str, tuple[int, list[dict[str, str]]]] = {}
    problems = []
    for index, backend in enumerate(backends):
        try:
            stores, wallets = await asyncio.gather(backend.list_stores(), backend.list_wallets())
        except WalletError as exc:
            problems.append(f"bitcart (token {index + 1}) not readable: {exc}")
            continue
        _rows, managed = managed_wallets_of(index, stores, wallets, wallet_name)
        visible = {w.id for w in wallets}
        for wallet_id in sorted((set(managed) | wanted) & visible):
            if wallet_id in found:
                continue
            refs = [
                {"id": s.id, "name": s.name}
                for s in sorted(stores, key=lambda s: (s.name, s.id))
                if wallet_id in s.wallet_ids
            ]
            found[wallet_id] = (index, refs)
    return Directory(found, problems)


async def read_books(
    backends: Sequence[WalletBackend],
    directory: Directory,
    *,
    invoices_since: datetime | None = None,
    topups_only: bool = False,
    histories: tuple[bool, bool] = (True, True),
    max_concurrency: int = 4,
) -> dict[str, WalletBooks]:
    """Each wallet's invoices (of its stores, created since ``invoices_since``; only top-ups
    with ``topups_only``) and its on-chain and Lightning histories (as ``histories`` asks)."""
    items = sorted(directory.wallets.items())

    async def one(item: tuple[str, tuple[int, list[dict[str, str]]]]) -> WalletBooks:
        wallet_id, (index, stores) = item
        backend = backends[index]
        books = WalletBooks(wallet_id, stores, None, None, None, index)
        meta = {"liquidityhelper": "topup"} if topups_only else None
        try:
            invoices: dict[str, StoreInvoice] = {}
            for store in stores:
                for inv in await backend.list_store_invoices(
                    store["id"], metadata=meta, created_since=invoices_since
                ):
                    invoices.setdefault(inv.id, inv)
            books.invoices = list(invoices.values())
        except WalletError as exc:
            books.problems.append(f"wallet {wallet_id}: invoices not readable: {exc}")
        if histories[0]:
            try:
                books.onchain = await backend.onchain_history(wallet_id)
            except WalletError as exc:
                books.problems.append(f"wallet {wallet_id}: on-chain history not readable: {exc}")
        if histories[1]:
            try:
                books.lightning = await backend.lightning_history(wallet_id)
            except WalletError as exc:
                books.problems.append(f"wallet {wallet_id}: Lightning history not readable: {exc}")
        return books

    results = await bounded_gather(items, one, max(1, max_concurrency))
    out = {}
    for (wallet_id, (index, stores)), result in zip(items, results, strict=True):
        if isinstance(result, WalletBooks):
            out[wallet_id] = result
        else:
            out[wallet_id] = WalletBooks(
                wallet_id, stores, None, None, None, index, [f"wallet {wallet_id}: {result!r}"]
            )
    return out


@asynccontextmanager
async def bitcart_backends(settings: Settings) -> AsyncIterator[list[WalletBackend]]:
    """Backends for reading only: no journal, no node database, no lock."""
    from liquidityhelper.wiring import build_backends, http_client

    async with http_client() as http:
        backends = build_backends(settings, http)
        try:
            yield backends
        finally:
            for backend in backends:
                await backend.aclose()


async def collect_report(
    backends: Sequence[WalletBackend],
    journal: Journal,
    settings: Settings,
    *,
    since: datetime | None,
    now: datetime,
) -> Report:
    entries = journal.entries()
    directory = await discover(backends, settings.wallet_name, {e.wallet_id for e in entries})
    books = await read_books(backends, directory, max_concurrency=settings.max_concurrency)
    problems = [*directory.problems, *(p for b in books.values() for p in b.problems)]
    return build_report(entries, books, since=since, until=now, problems=problems)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

LABEL = 28


def _sat(n: int) -> str:
    return f"{n:,} sat"


def _count(n: int, word: str) -> str:
    return f" ({n} {word}{'' if n == 1 else 's'})"


def _percent(ratio: Decimal) -> str:
    return f"{(ratio * 100).quantize(Decimal('0.01'))} %"


def cost_text(w: WalletReport) -> str:
    ratio = w.inbound_cost_rate
    if ratio is None:
        return "n/a (no inbound created)"
    per = ratio.quantize(Decimal("0.0001"))
    return f"{_sat(w.network_fees_sat)}, {per} sat per sat created ({_percent(ratio)})"


def share_text(w: WalletReport) -> str:
    ratio = w.fees_share_of_revenue
    if ratio is None:
        return f"{_sat(w.all_fees_sat)} (no Lightning revenue)"
    return f"{_sat(w.all_fees_sat)}, {_percent(ratio)} of Lightning revenue"


def figure_rows(w: WalletReport) -> list[tuple[str, str]]:
    """(label, value) rows of one wallet's figures, the way text and the status page show
    them."""
    msat = f" = {w.routing_fees_msat:,} msat" if w.routing_fees_msat % 1000 else ""
    rows = [
        ("top-ups paid", _sat(w.topups_paid_sat) + _count(w.topups_paid, "invoice")),
        ("revenue over Lightning", _sat(w.revenue_lightning_sat)),
        ("cashed out", _sat(w.cashed_out_sat) + _count(w.cashouts, "payment")),
        ("operator fees paid", _sat(w.operator_fees_sat) + _count(w.fee_payments, "payment")),
        ("on-chain fees, opens", _sat(w.onchain_fees_open_sat) + _count(w.opens, "transaction")),
        (
            "on-chain fees, closes",
            _sat(w.onchain_fees_close_sat) + _count(w.closes, "transaction"),
        ),
        ("routing fees", _sat(w.routing_fees_sat) + msat),
        ("inbound created", _sat(w.inbound_created_sat)),
        ("inbound cost (network fees)", cost_text(w)),
        ("all fees", share_text(w)),
    ]
    if w.revenue_onchain_sat:
        rows.insert(2, ("revenue on-chain", _sat(w.revenue_onchain_sat)))
    return rows


def _period(report: Report) -> str:
    until = report.until.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if report.since is None:
        return f"everything up to {until}"
    return f"{report.since.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC')} to {until}"


def render_text(report: Report, out: TextIO) -> None:
    from liquidityhelper.status import wrap

    lines = wrap("report: ", _period(report))
    lines.append("")
    blocks = list(report.wallets)
    if len(blocks) > 1:
        blocks.append(report.total)
    for w in blocks:
        if w.wallet_id == "total":
            lines.extend(wrap("all wallets ", f"({len(report.wallets)})"))
        elif w.stores:
            names = ", ".join(f"{s['name'] or '?'} ({s['id']})" for s in w.stores)
            lines.extend(wrap("store " if len(w.stores) == 1 else "stores ", names))
            lines.extend(wrap(f"  {'wallet':<{LABEL}} ", w.wallet_id))
        else:
            lines.extend(wrap("wallet ", f"{w.wallet_id} (its stores are not visible)"))
        for label, value in figure_rows(w):
            lines.extend(wrap(f"  {label:<{LABEL}} ", value))
        if w.wallet_id != "total":
            for flag in w.flags:
                lines.extend(wrap("  ! ", flag))
        lines.append("")
    if not report.wallets:
        lines.append("no wallet in the journal or visible with the configured token(s)")
    for problem in report.problems:
        lines.extend(wrap("problem: ", problem))
    out.write("\n".join(lines).rstrip() + "\n")


def render_json(report: Report, out: TextIO) -> None:
    json.dump(report.document(), out, indent=2)
    out.write("\n")


async def report_async(
    settings: Settings, *, since: datetime | None, as_json: bool, out: TextIO
) -> int:
    try:
        journal = Journal.open_read_only(settings.data_dir)
    except FileNotFoundError as exc:
        sys.stderr.write(f"report: {exc} (has the daemon run with this data_dir?)\n")
        return 1
    try:
        async with bitcart_backends(settings) as backends:
            report = await collect_report(
                backends, journal, settings, since=since, now=datetime.now(UTC)
            )
    finally:
        journal.close()
    (render_json if as_json else render_text)(report, out)
    return 1 if report.problems else 0


def run_report(
    settings: Settings, *, since: datetime | None, as_json: bool, out: TextIO | None = None
) -> int:
    if not settings.api_tokens:
        sys.stderr.write("report: api_token is not set\n")
        return 2
    return asyncio.run(report_async(settings, since=since, as_json=as_json, out=out or sys.stdout))
