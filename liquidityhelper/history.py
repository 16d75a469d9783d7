"""``liquidityhelper history``: every journaled action and event, newest first, one line each.

Channel opens and closes, cashouts, fee payments, top-ups asked (an invoice made) and
invalidated come from the journal; top-ups paid from Bitcart (invoices tagged ``topup`` that
were paid), as do store names and the on-chain fee of each open, when Bitcart can be read.
Read-only: the journal is opened for reading (no lock, no migration), so it runs beside the
daemon.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from liquidityhelper.config import Settings
from liquidityhelper.journal import PAYMENT_KINDS, Entry, Journal, Kind, Status
from liquidityhelper.report import (
    Directory,
    WalletBooks,
    bitcart_backends,
    discover,
    read_books,
)
from liquidityhelper.revenue import PAID_STATUSES, is_topup
from liquidityhelper.wallet.base import WalletBackend

WIDTH = 80
INVOICE_SLACK = timedelta(days=7)
TOPUP_PAID = "topup_paid"
KIND_WORDS = {
    Kind.CHANNEL_OPEN.value: "open",
    Kind.CHANNEL_CLOSE.value: "close",
    Kind.CASHOUT.value: "cashout",
    Kind.FEE_PAYMENT.value: "fee payment",
    Kind.TOPUP_INVOICE.value: "top-up asked",
    Kind.TOPUP_INVALIDATED.value: "top-up invalidated",
    TOPUP_PAID: "top-up paid",
}


@dataclass
class HistoryRow:
    at: datetime
    wallet_id: str
    stores: list[dict[str, str]]  # id, name ([] when Bitcart could not say)
    kind: str  # a journal kind, or "topup_paid"
    what: str  # the kind in words
    amount_sat: int
    fee_sat: int | None  # routing fee (rounded up) of a payment, on-chain fee of an open
    fee_msat: int | None  # a payment's routing fee, exactly
    outcome: str
    detail: str
    destination: str = ""
    reference: str | None = None  # channel point, closing txid, invoice id
    entry_id: int | None = None  # None: not a journal entry (a paid top-up)

    def document(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.astimezone(UTC).isoformat(timespec="seconds")
        return out


@dataclass
class History:
    rows: list[HistoryRow]
    problems: list[str] = field(default_factory=list)
    bitcart_read: bool = False


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: max(0, n - 1)] + "…"


def _outcome(e: Entry) -> str:
    if e.kind is Kind.TOPUP_INVOICE:
        return "created"
    if e.kind is Kind.TOPUP_INVALIDATED:
        return "done"
    return "ok" if e.status is Status.SUCCEEDED else e.status.value  # failed, pending


def _detail(e: Entry) -> str:
    if e.kind is Kind.CHANNEL_OPEN:
        peer = e.destination.split("@", 1)[0]
        text = f"to {peer[:16]}…" if peer else "to ?"
        if e.reference:
            text += f" {e.reference}"
    elif e.kind is Kind.CHANNEL_CLOSE:
        text = f"channel {e.destination}"
    elif e.kind in PAYMENT_KINDS:
        text = f"→ {e.destination}"
    else:
        text = f"invoice {e.reference or '?'}"
    if e.detail and (
        e.status is not Status.SUCCEEDED
        or e.kind
        in (
            Kind.CHANNEL_CLOSE,
            Kind.TOPUP_INVALIDATED,
        )
    ):
        text += f": {e.detail}"
    return text


def history_rows(
    entries: Iterable[Entry],
    books: Mapping[str, WalletBooks],
    *,
    since: datetime | None = None,
) -> list[HistoryRow]:
    """Journal entries and paid top-ups as rows, newest first (pure: no I/O)."""
    open_fees: dict[str, int] = {}
    for book in books.values():
        for item in book.onchain or ():
            if item.fee_sat is not None:
                open_fees[item.txid.lower()] = item.fee_sat
    rows = []
    for e in entries:
        if since is not None and e.created_at < since:
            continue
        known = books.get(e.wallet_id)
        fee_sat = fee_msat = None
        if e.kind in PAYMENT_KINDS and e.fee_msat is not None:
            fee_msat = e.fee_msat
            fee_sat = -(-e.fee_msat // 1000)
        elif e.kind is Kind.CHANNEL_OPEN and e.reference:
            fee_sat = open_fees.get(e.reference.split(":", 1)[0].lower())
        rows.append(
            HistoryRow(
                at=e.created_at,
                wallet_id=e.wallet_id,
                stores=list(known.stores) if known else [],
                kind=e.kind.value,
                what=KIND_WORDS[e.kind.value],
                amount_sat=e.amount_sat,
                fee_sat=fee_sat,
                fee_msat=fee_msat,
                outcome=_outcome(e),
                detail=_detail(e),
                destination=e.destination,
                reference=e.reference,
                entry_id=e.id,
            )
        )
    seen: set[str] = set()
    for b in books.values():
        for inv in b.invoices or ():
            if inv.id in seen or not is_topup(inv) or inv.status not in PAID_STATUSES:
                continue
            got = inv.received_sat_by_wallet.get(b.wallet_id, 0)
            when = inv.paid_date or inv.created
            if not got or when is None or (since is not None and when < since):
                continue
            seen.add(inv.id)
            how = "over Lightning" if inv.paid_over_lightning else "on-chain"
            rows.append(
                HistoryRow(
                    at=when,
                    wallet_id=b.wallet_id,
                    stores=list(b.stores),
                    kind=TOPUP_PAID,
                    what=KIND_WORDS[TOPUP_PAID],
                    amount_sat=got,
                    fee_sat=None,
                    fee_msat=None,
                    outcome="paid",
                    detail=f"invoice {inv.id} {how} ({inv.status})",
                    destination=inv.store_id,
                    reference=inv.id,
                )
            )
    # Newest first. At one instant a paid top-up follows what the journal did (it asked for
    # it), and a later journal entry follows an earlier one.
    rows.sort(key=lambda r: (r.at, r.entry_id is None, r.entry_id or 0), reverse=True)
    return rows


def journal_stores(entries: Iterable[Entry]) -> dict[str, set[str]]:
    """Wallet -> store ids, as the journal's top-up entries tell (Bitcart out of reach)."""
    out: dict[str, set[str]] = {}
    for e in entries:
        if e.kind in (Kind.TOPUP_INVOICE, Kind.TOPUP_INVALIDATED) and e.destination:
            out.setdefault(e.wallet_id, set()).add(e.destination)
    return out


def select(
    entries: Sequence[Entry],
    *,
    wallet: str | None,
    store: str | None,
    directory: Directory | None,
) -> list[Entry]:
    """The entries of one wallet, or of the wallet(s) one store uses."""
    if wallet is not None:
        return [e for e in entries if e.wallet_id == wallet]
    if store is not None:
        wallets = {w for w, ids in journal_stores(entries).items() if store in ids}
        if directory is not None:
            wallets |= {
                w for w, (_, refs) in directory.wallets.items() if store in {s["id"] for s in refs}
            }
        return [e for e in entries if e.wallet_id in wallets]
    return list(entries)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

HEADERS = ("time (UTC)", "store", "kind", "amount", "fee", "outcome", "detail")
STORE_MAX = 16
STORE_MIN = 8
DETAIL_MIN = 12


def store_text(row: HistoryRow) -> str:
    if row.stores:
        return ", ".join(s.get("name") or s["id"] for s in row.stores)
    return row.wallet_id[:10] + "…"  # Bitcart out of reach: the wallet, short


def render_text(history: History, out: TextIO, width: int = WIDTH) -> None:
    cells = [
        (
            r.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            store_text(r),
            r.what,
            f"{r.amount_sat:,}",
            "" if r.fee_sat is None else f"{r.fee_sat:,}",
            r.outcome,
            r.detail,
        )
        for r in history.rows
    ]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(HEADERS[:-1])]
    widths[1] = min(widths[1], STORE_MAX)
    fixed = sum(widths) + len(widths)  # one space after each column
    if width - fixed < DETAIL_MIN:
        widths[1] = max(STORE_MIN, widths[1] - (DETAIL_MIN - (width - fixed)))
        fixed = sum(widths) + len(widths)
    room = max(0, width - fixed)

    def line(row: Sequence[str]) -> str:
        parts = []
        for i, (text, w) in enumerate(zip(row[:-1], widths, strict=True)):
            text = _short(text, w)
            parts.append(text.rjust(w) if i in (3, 4) else text.ljust(w))
        return (" ".join(parts) + " " + _short(row[-1], room)).rstrip()[:width]

    lines = [line(HEADERS)]
    lines += [line(c) for c in cells]
    if not cells:
        lines = ["nothing journaled yet" if not history.problems else "nothing to show"]
    for problem in history.problems:
        lines.append(_short(f"note: {problem}", width))
    out.write("\n".join(lines) + "\n")


def render_json(history: History, out: TextIO) -> None:
    json.dump([r.document() for r in history.rows], out, indent=2)
    out.write("\n")


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


async def collect_history(
    journal: Journal,
    backends: Sequence[WalletBackend],
    settings: Settings,
    *,
    since: datetime | None = None,
    wallet: str | None = None,
    store: str | None = None,
) -> History:
    entries = journal.entries()
    problems: list[str] = []
    directory: Directory | None = None
    books: dict[str, WalletBooks] = {}
    if backends:
        directory = await discover(backends, settings.wallet_name, {e.wallet_id for e in entries})
        problems += directory.problems
    chosen = select(entries, wallet=wallet, store=store, directory=directory)
    if directory is not None and (wallet is not None or store is not None):
        wanted = {e.wallet_id for e in chosen}
        if wallet is not None:
            wanted.add(wallet)
        if store is not None:
            wanted |= {
                w for w, (_, refs) in directory.wallets.items() if store in {s["id"] for s in refs}
            }
        directory = Directory({w: v for w, v in directory.wallets.items() if w in wanted})
    if directory is not None:
        # The top-ups of the period, with slack: one is paid after it is made (within a day).
        books = await read_books(
            backends,
            directory,
            invoices_since=since - INVOICE_SLACK if since else None,
            topups_only=True,
            histories=(True, False),
            max_concurrency=settings.max_concurrency,
        )
        problems += [p for b in books.values() for p in b.problems]
    else:
        problems.append("Bitcart not configured (api_token): no store names, no top-ups paid")
    rows = history_rows(chosen, books, since=since)
    return History(rows, problems, bitcart_read=bool(books))


async def history_async(
    settings: Settings,
    *,
    since: datetime | None = None,
    wallet: str | None = None,
    store: str | None = None,
    as_json: bool = False,
    out: TextIO,
) -> int:
    try:
        journal = Journal.open_read_only(settings.data_dir)
    except FileNotFoundError as exc:
        sys.stderr.write(f"history: {exc} (has the daemon run with this data_dir?)\n")
        return 1
    try:
        async with bitcart_backends(settings) as backends:
            history = await collect_history(
                journal, backends, settings, since=since, wallet=wallet, store=store
            )
    finally:
        journal.close()
    if as_json:
        render_json(history, out)
        for problem in history.problems:
            sys.stderr.write(f"history: {problem}\n")
    else:
        render_text(history, out)
    return 0


def run_history(
    settings: Settings,
    *,
    since: datetime | None = None,
    wallet: str | None = None,
    store: str | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
) -> int:
    return asyncio.run(
        history_async(
            settings,
            since=since,
            wallet=wallet,
            store=store,
            as_json=as_json,
            out=out or sys.stdout,
        )
    )


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``2026-11-01``, ``2026-11-01T08:00`` (UTC unless an offset is given), or a span back
    from now: ``30d``, ``12h``."""
    text = text.strip()
    spans = {"d": "days", "h": "hours", "m": "minutes", "w": "weeks"}
    if text[-1:].lower() in spans and text[:-1].isdigit():
        delta = timedelta(**{spans[text[-1].lower()]: int(text[:-1])})
        return (now or datetime.now(UTC)) - delta
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"expected a date (2026-11-01), a time (2026-11-01T08:00) or a span (30d), got {text!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
