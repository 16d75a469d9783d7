"""The status page: ``GET /`` on the health listener, read-only.

Per wallet: the ``status`` rows (from the daemon's last snapshot and its journal: nothing is
asked of Bitcart for them, and nothing is changed), the last 30 days of the ``report``
(read from Bitcart when the page is asked for, at most once per cycle or every few minutes),
and a small chart of the wallet's inbound against its target over time, from the samples
the daemon writes to the journal after each cycle while the listener runs.

Server-rendered HTML: no JavaScript, no external asset, every value escaped. It shows what
``status`` shows (stores, wallets, amounts, lightning addresses), never a key, seed or token;
bind it where ``health_listen`` says (loopback by default), like ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from liquidityhelper import __version__
from liquidityhelper.controls import paused
from liquidityhelper.decisions.liquidity import plan_liquidity
from liquidityhelper.journal import Journal, Kind, Sample
from liquidityhelper.report import (
    Directory,
    Report,
    WalletReport,
    build_report,
    figure_rows,
    read_books,
)
from liquidityhelper.snapshot import CycleSnapshot
from liquidityhelper.status import WalletStatus, wallet_rows, wallet_status_of

log = structlog.get_logger(__name__)

REPORT_DAYS = 30
REPORT_REFRESH = timedelta(minutes=5)  # a report older than this is read again (on a visit)
REPORT_MIN_AGE = timedelta(minutes=1)  # ... or once a cycle ran since, but not more often
REPORT_WAIT_SECONDS = 5.0  # a visit waits this long for a fresh report, then shows the last
# Invoices paid in the period are looked for among those created up to this much earlier.
INVOICE_SLACK = timedelta(days=7)
REFRESH_SECONDS = 60  # the browser reloads the page (a meta tag, not a script)
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"


@dataclass
class PageWallet:
    status: WalletStatus
    report: WalletReport | None
    samples: list[Sample]
    paused: dict[str, str] = field(default_factory=dict)


@dataclass
class PageData:
    now: datetime
    healthy: bool
    health: str
    last_cycle: datetime | None
    wallets: list[PageWallet]
    stores_without_wallet: list[dict[str, str]] = field(default_factory=list)  # id, name, why
    unreadable_wallets: dict[str, str] = field(default_factory=dict)
    backend_failures: dict[int, str] = field(default_factory=dict)
    report_since: datetime | None = None
    report_note: str = ""  # why the report is missing or old
    cycled: bool = True  # False before the first cycle
    version: str = __version__


# ---------------------------------------------------------------------------------------------
# What the listener keeps: the last snapshot, the samples, the report
# ---------------------------------------------------------------------------------------------


class StatusPage:
    """Follows a running ``main.Daemon`` through its ``on_cycle`` hook."""

    def __init__(self, daemon: Any, health: Callable[[], tuple[bool, str]]) -> None:
        self.daemon = daemon
        self.health = health
        self.snapshot: CycleSnapshot | None = None
        self.cycle_finished: datetime | None = None
        self.cycles = 0
        self._report: Report | None = None
        self._report_cycle = -1
        self._report_error = ""
        self._task: asyncio.Task[None] | None = None

    # --- the hook (called inside the daemon's cycle: never raises) ---------------------------

    def on_cycle(self, report: Any, snapshot: CycleSnapshot) -> None:
        try:
            self.snapshot = snapshot
            self.cycles += 1
            self.cycle_finished = getattr(report, "finished", None) or self.daemon.clock()
            self.record_samples(snapshot, self.cycle_finished)
        except Exception as exc:  # a page must never break the daemon's cycle
            log.error("status_page_hook_failed", error=repr(exc))

    def record_samples(self, snapshot: CycleSnapshot, now: datetime) -> None:
        journal: Journal = self.daemon.journal
        for wallet_id, snap in sorted(snapshot.wallets.items()):
            plan = plan_liquidity(snap, self.daemon.settings)
            journal.add_sample(wallet_id, now, plan.inbound_sat, plan.target_sat)

    async def aclose(self) -> None:
        with contextlib.suppress(ValueError):
            self.daemon.on_cycle.remove(self.on_cycle)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    # --- the report ----------------------------------------------------------------------

    def _report_stale(self) -> bool:
        """None yet; a cycle ran since (and it is a minute old); or it is a few minutes old."""
        if self._report is None:
            return True
        age = self.daemon.clock() - self._report.until
        return age >= REPORT_REFRESH or (
            self._report_cycle != self.cycles and age >= REPORT_MIN_AGE
        )

    async def _read_report(self, snapshot: CycleSnapshot, cycles: int) -> None:
        now = self.daemon.clock()
        since = now - timedelta(days=REPORT_DAYS)
        names = {row.store.id: row.store.name for row in snapshot.stores}
        directory = Directory(
            {
                wid: (
                    snap.backend_index,
                    [{"id": s, "name": names.get(s, "")} for s in snap.store_ids],
                )
                for wid, snap in snapshot.wallets.items()
            }
        )
        try:
            books = await read_books(
                self.daemon.backends,
                directory,
                invoices_since=since - INVOICE_SLACK,
                max_concurrency=self.daemon.settings.max_concurrency,
            )
            entries = [e for e in self.daemon.journal.entries() if e.wallet_id in books]
            problems = [p for b in books.values() for p in b.problems]
            self._report = build_report(entries, books, since=since, until=now, problems=problems)
            self._report_cycle = cycles
            self._report_error = ""
        except Exception as exc:
            self._report_error = f"report not readable: {exc!r}"
            log.warning("status_page_report_failed", error=repr(exc))

    async def report(self) -> tuple[Report | None, str]:
        """The 30-day report: read again when stale, waited for a few seconds at most."""
        snapshot = self.snapshot
        if snapshot is None:
            return None, ""
        if self._report_stale() and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._read_report(snapshot, self.cycles))
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), REPORT_WAIT_SECONDS)
        note = self._report_error
        if self._task is not None and not self._task.done():
            note = "the report is being read from Bitcart; reload in a moment"
        return self._report, note

    # --- the page ------------------------------------------------------------------------

    async def data(self) -> PageData:
        daemon = self.daemon
        ok, why = self.health()
        now = daemon.clock()
        snapshot = self.snapshot
        if snapshot is None:
            return PageData(now, ok, why, None, [], cycled=False)
        report, note = await self.report()
        by_wallet = {w.wallet_id: w for w in report.wallets} if report else {}
        names = {row.store.id: row.store.name for row in snapshot.stores}
        since = now - timedelta(days=REPORT_DAYS)
        wallets = []
        for wallet_id in sorted(snapshot.wallets):
            snap = snapshot.wallets[wallet_id]
            st = wallet_status_of(daemon.settings, daemon.journal, snap, names)
            if st.topup_sat:
                st.topup_invoice = journal_topup(daemon.journal, wallet_id, daemon.settings)
            # Why nothing was done, as the last cycle found (no Bitcart read here).
            last = daemon.sections.reasons(wallet_id)
            st.reasons = {k: f"last cycle: {v}" for k, v in last.items()}
            wallets.append(
                PageWallet(
                    st,
                    by_wallet.get(wallet_id),
                    daemon.journal.samples(wallet_id, since),
                    paused(daemon.journal, (wallet_id, *snap.store_ids)),
                )
            )
        return PageData(
            now=now,
            healthy=ok,
            health=why,
            last_cycle=self.cycle_finished,
            wallets=wallets,
            stores_without_wallet=[
                {"id": r.store.id, "name": r.store.name, "why": r.problem or ""}
                for r in snapshot.stores
                if r.managed_wallet_id is None
            ],
            unreadable_wallets=dict(snapshot.failures),
            backend_failures=dict(snapshot.backend_failures),
            report_since=report.since if report else since,
            report_note=note,
        )

    async def render(self) -> str:
        return render_page(await self.data())


def journal_topup(journal: Journal, wallet_id: str, settings: Any) -> dict[str, str] | None:
    """The wallet's last top-up invoice, unless the journal has it invalidated since."""
    last = journal.last(wallet_id, Kind.TOPUP_INVOICE)
    if last is None or not last.reference:
        return None
    gone = journal.entries(wallet_id, Kind.TOPUP_INVALIDATED)
    if any(e.reference == last.reference and e.id > last.id for e in gone):
        return None
    base = getattr(settings, "bitcart_admin_url", None)
    link = f"{str(base).rstrip('/')}/i/{last.reference}" if base else ""
    return {"id": last.reference, "store": last.destination, "address": "", "checkout": link}


# ---------------------------------------------------------------------------------------------
# Rendering (pure)
# ---------------------------------------------------------------------------------------------


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(t: datetime | None) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if t else "never"


STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c9d1e0}
.ok{color:#7ee2a8}.bad{color:#ff9b8f}
main{padding:16px 24px;max-width:1200px}
section.wallet{background:#fff;border:1px solid #dde1e8;border-radius:8px;
 margin:0 0 16px;padding:12px 16px}
section.wallet h2{margin:0 0 8px;font-size:17px}
.cols{display:flex;flex-wrap:wrap;gap:16px}
.cols>div{flex:1 1 440px;min-width:0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:2px 8px 2px 0;font-size:13.5px}
th{color:#5a6375;font-weight:600;white-space:nowrap;width:11em}
td{overflow-wrap:anywhere}
h3{font-size:14px;margin:10px 0 4px;color:#3a4356}
.flags{color:#8a4b00;font-size:13px;margin:6px 0 0;padding-left:18px}
.note{color:#5a6375;font-size:13px}
svg{display:block;max-width:100%;height:auto}
.met{color:#137a3d}.short{color:#b3261e}
ul.other{padding-left:18px}
"""


def render_page(data: PageData) -> str:
    """The whole page, from plain data (no I/O): every value escaped."""
    state = "ok" if data.healthy else "bad"
    head = (
        f"<header><h1>liquidityhelper</h1><p>version {esc(data.version)} · "
        f'<span class="{state}">{esc("healthy" if data.healthy else "unhealthy")}: '
        f"{esc(data.health)}</span> · figures of the cycle that finished "
        f"{esc(_when(data.last_cycle))} · page made {esc(_when(data.now))}</p></header>"
    )
    body: list[str] = []
    if not data.cycled:
        body.append('<p class="note">No cycle has finished yet: nothing to show.</p>')
    elif not data.wallets and not data.stores_without_wallet and not data.backend_failures:
        body.append('<p class="note">No stores visible with the configured token(s).</p>')
    if data.report_note:
        body.append(f'<p class="note">{esc(data.report_note)}</p>')
    body.extend(render_wallet(w, data) for w in data.wallets)
    body.append(_others(data))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="robots" content="noindex">'
        f"<title>liquidityhelper: {len(data.wallets)} wallet(s)</title>"
        f"<style>{STYLE}</style></head><body>{head}<main>{''.join(body)}</main></body></html>\n"
    )


def _rows(rows: Sequence[tuple[str, str]], css: dict[str, str] | None = None) -> str:
    cells = []
    for label, value in rows:
        cls = f' class="{esc((css or {}).get(label, ""))}"' if (css or {}).get(label) else ""
        cells.append(f"<tr><th>{esc(label)}</th><td{cls}>{esc(value)}</td></tr>")
    return f"<table>{''.join(cells)}</table>"


def render_wallet(w: PageWallet, data: PageData) -> str:
    st = w.status
    names = ", ".join(s["name"] or s["id"] for s in st.stores) or st.wallet_id
    rows = [(label, value) for label, value in wallet_rows(st) if value]
    if w.paused:
        held = ", ".join(f"{k} since {v[:16]}" for k, v in sorted(w.paused.items()))
        rows.insert(1, ("paused", held))
    met = st.inbound_sat >= st.target_inbound_sat and st.live_channels >= st.target_channels
    css = {"inbound": "met" if met else "short", "paused": "short"}
    since = _when(data.report_since)
    if w.report is None:
        figures = '<p class="note">No report (Bitcart not read yet).</p>'
    else:
        figures = _rows(figure_rows(w.report))
        if w.report.flags:
            items = "".join(f"<li>{esc(f)}</li>" for f in w.report.flags)
            figures += f'<ul class="flags">{items}</ul>'
    stores = ", ".join(f"{s['name'] or '?'} ({s['id']})" for s in st.stores)
    return (
        f'<section class="wallet" id="wallet-{esc(st.wallet_id)}">'
        f"<h2>{esc(names)}</h2>"
        f'<p class="note">{esc("store" if len(st.stores) == 1 else "stores")} '
        f"{esc(stores)}</p>"
        '<div class="cols">'
        f"<div><h3>Now</h3>{_rows(rows, css)}</div>"
        f"<div><h3>Inbound and its target</h3>{chart_svg(w.samples)}"
        f"<h3>Last {REPORT_DAYS} days (since {esc(since)})</h3>{figures}</div>"
        "</div></section>"
    )


def _others(data: PageData) -> str:
    items = [
        f"store {esc(s['name'])} ({esc(s['id'])}): {esc(s['why'])}"
        for s in data.stores_without_wallet
    ]
    items += [
        f"wallet {esc(w)}: unreadable: {esc(why)}" for w, why in data.unreadable_wallets.items()
    ]
    items += [
        f"Bitcart (token {i + 1}): not readable: {esc(why)}"
        for i, why in sorted(data.backend_failures.items())
    ]
    if not items:
        return ""
    lis = "".join(f"<li>{x}</li>" for x in items)
    return f'<section class="wallet"><h2>Not managed</h2><ul class="other">{lis}</ul></section>'


# --- the chart ---------------------------------------------------------------------------------

CHART_W, CHART_H = 560, 170
PAD_L, PAD_R, PAD_T, PAD_B = 78, 12, 22, 24


def _nice_ceiling(value: int) -> int:
    """1, 2 or 5 times a power of ten, at or above ``value``."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def chart_svg(samples: Sequence[Sample]) -> str:
    """Inbound (solid) against its target (dashed) over time, as steps; inline SVG."""
    inner_w, inner_h = CHART_W - PAD_L - PAD_R, CHART_H - PAD_T - PAD_B
    points = list(samples)
    title = "inbound liquidity against its target"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_W} {CHART_H}" '
        f'width="{CHART_W}" height="{CHART_H}" role="img" aria-label="{esc(title)}">'
        f"<title>{esc(title)}</title>"
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{inner_w}" height="{inner_h}" '
        'fill="#fafbfc" stroke="#dde1e8"/>'
    ]
    if not points:
        parts.append(
            f'<text x="{PAD_L + inner_w / 2:.0f}" y="{PAD_T + inner_h / 2:.0f}" '
            'text-anchor="middle" font-size="12" fill="#5a6375">no samples yet</text></svg>'
        )
        return "".join(parts)
    top = _nice_ceiling(max(max(p.inbound_sat, p.target_sat) for p in points))
    t0 = points[0].at.timestamp()
    span = max(points[-1].at.timestamp() - t0, 1.0)

    def x(t: datetime) -> float:
        return PAD_L + (t.timestamp() - t0) / span * inner_w

    def y(v: int) -> float:
        return PAD_T + inner_h - v / top * inner_h

    def steps(values: list[int]) -> str:
        path = f"M{x(points[0].at):.1f},{y(values[0]):.1f}"
        for p, v in zip(points[1:], values[1:], strict=True):
            path += f" H{x(p.at):.1f} V{y(v):.1f}"
        return path + f" H{PAD_L + inner_w:.1f}"

    target = steps([p.target_sat for p in points])
    inbound = steps([p.inbound_sat for p in points])
    last = points[-1]
    parts += [
        f'<line x1="{PAD_L}" x2="{PAD_L + inner_w}" y1="{y(top // 2):.1f}" '
        f'y2="{y(top // 2):.1f}" stroke="#eceef2"/>',
        f'<path d="{target}" fill="none" stroke="#b3261e" stroke-width="1.5" '
        'stroke-dasharray="5 4"><title>target</title></path>',
        f'<path d="{inbound}" fill="none" stroke="#1f6feb" stroke-width="2.2">'
        "<title>inbound</title></path>",
        f'<text x="{PAD_L - 6}" y="{PAD_T + 4}" text-anchor="end" font-size="11" '
        f'fill="#5a6375">{top:,} sat</text>',
        f'<text x="{PAD_L - 6}" y="{y(top // 2) + 4:.1f}" text-anchor="end" font-size="11" '
        f'fill="#5a6375">{top // 2:,}</text>',
        f'<text x="{PAD_L - 6}" y="{PAD_T + inner_h + 4}" text-anchor="end" font-size="11" '
        'fill="#5a6375">0</text>',
        f'<text x="{PAD_L}" y="{CHART_H - 6}" font-size="11" fill="#5a6375">'
        f"{esc(_when(points[0].at))}</text>",
        f'<text x="{PAD_L + inner_w}" y="{CHART_H - 6}" text-anchor="end" font-size="11" '
        f'fill="#5a6375">{esc(_when(last.at))}</text>',
        f'<text x="{PAD_L}" y="14" font-size="12" fill="#1f6feb">— inbound '
        f"{last.inbound_sat:,} sat</text>",
        f'<text x="{PAD_L + 210}" y="14" font-size="12" fill="#b3261e">- - target '
        f"{last.target_sat:,} sat</text>",
        f'<text x="{PAD_L + inner_w}" y="14" text-anchor="end" font-size="11" '
        f'fill="#5a6375">{len(points)} sample{"" if len(points) == 1 else "s"}</text>',
        "</svg>",
    ]
    return "".join(parts)
