"""``liquidityhelper status``: per store and wallet, what it has, what it wants, and why.

The reasons are computed with the same pure decisions the loop uses, from a fresh snapshot,
so "why did nothing happen?" has the same answer here as in the log. Nothing is changed:
no invoice, no payment, no node observation.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from liquidityhelper import common_functions as cf
from liquidityhelper.actions import Decision, OpenChannel, PayLightningAddress, Skip
from liquidityhelper.config import Settings
from liquidityhelper.controls import paused
from liquidityhelper.decisions.liquidity import LiquidityPlan, plan_liquidity
from liquidityhelper.decisions.opening import decide_opening, spare_channel_size
from liquidityhelper.decisions.payments import decide_cashout, decide_fee_payment
from liquidityhelper.decisions.topup import decide_topup
from liquidityhelper.journal import Entry, Journal, Kind
from liquidityhelper.revenue import TOPUP_TAG
from liquidityhelper.snapshot import CycleSnapshot, WalletSnapshot
from liquidityhelper.topups import LIGHTNING_PAID_NOTE, is_topup_of
from liquidityhelper.wallet.base import WalletError

if TYPE_CHECKING:  # the loop runs these functions; they never start it
    from liquidityhelper.main import Daemon

WIDTH = 80
LABEL = 13  # width of the row labels ("last cashout" and one space)


@dataclass
class WalletStatus:
    wallet_id: str
    wallet_name: str
    stores: list[dict[str, str]]
    onchain_confirmed_sat: int
    onchain_unconfirmed_sat: int
    lightning_local_sat: int
    lightning_remote_sat: int
    live_channels: int
    opening_channels: int
    target_channels: int
    inbound_sat: int  # after the next cashouts
    target_inbound_sat: int
    topup_sat: int
    topup_invoice: dict[str, str] | None  # id, store, address, checkout, note
    inbound_now_sat: int  # what live peers can send now
    mode: str
    fee_rate: int | None
    last_cashout: dict[str, Any] | None
    last_fee_payment: dict[str, Any] | None
    in_flight: list[dict[str, Any]]
    reasons: dict[str, str] = field(default_factory=dict)


def _entry(e: Entry | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {
        "id": e.id,
        "kind": e.kind.value,
        "amount_sat": e.amount_sat,
        "status": e.status.value,
        "to": e.destination,
        "at": e.updated_at.astimezone(UTC).isoformat(timespec="seconds"),
    }


def _describe(decisions: list[Decision]) -> str:
    """The decisions in words: a skip's reason code with its numbers, or what would be done."""
    parts = []
    for d in decisions:
        if isinstance(d, Skip):
            nums = " ".join(f"{k}={v}" for k, v in d.numbers.items())
            parts.append(f"{d.reason} {nums}".strip())
        elif isinstance(d, PayLightningAddress):
            parts.append(f"would pay {_sat(d.amount_sat)} -> {d.address}")
        elif isinstance(d, OpenChannel):
            parts.append(f"would open {_sat(d.capacity_sat)} to {d.pubkey[:16]}...")
        else:
            parts.append(f"would {type(d).__name__}")
    return "; ".join(parts) or "nothing to decide"


async def collect(daemon: Daemon) -> tuple[list[WalletStatus], CycleSnapshot]:
    """Read Bitcart once and explain every managed wallet. The daemon must not be running."""
    daemon.record_observations = False
    daemon.fees.persist = False
    daemon.fees.new_cycle()
    snapshot = await daemon.fetch_snapshot()
    now = daemon.clock()
    names = {row.store.id: row.store.name for row in snapshot.stores}
    out = []
    for wallet_id in sorted(snapshot.wallets):
        # Priced as the loop prices it: from the wallet's coins when it may open.
        snap = await daemon.with_coins(snapshot, snapshot.wallets[wallet_id])
        out.append(await _wallet_status(daemon, snap, names, now))
    return out, snapshot


async def _reasons(daemon: Daemon, snap: WalletSnapshot, now: datetime) -> dict[str, str]:
    """What each section would do now, checked in the order and with the guards of the loop."""
    s = daemon.settings
    plan = daemon.plan(snap)
    held = paused(daemon.journal, (snap.wallet_id, *snap.store_ids))
    if held:
        why = "paused " + ", ".join(f"{k} since {v[:16]}" for k, v in sorted(held.items()))
        return dict.fromkeys(("channel_opening", "topups", "cashouts", "fee_payments"), why)
    pending = daemon.journal.pending(snap.wallet_id)
    if pending:
        busy = f"action_in_flight entry={pending[0].id} kind={pending[0].kind.value}"
        return {
            "channel_opening": busy,
            "topups": _topup_reason(plan.topup_due, plan.topup_sat),
            "cashouts": busy,
            "fee_payments": busy,
        }
    candidates = daemon.candidates(snap, max(1, len(plan.planned_capacities)))
    topups = decide_topup(snap, plan, s, peers_available=bool(candidates))
    reasons = {
        "channel_opening": _opening_reason(
            snap, plan, s, decide_opening(snap, plan, s, candidates, open_in_flight=False)
        ),
        "topups": _describe([d for d in topups if isinstance(d, Skip)])
        or _topup_reason(plan.topup_due, plan.topup_sat),
    }
    fee_due, fee_numbers = 0, {}
    if s.fees_enabled:
        try:
            ledger = await daemon.fees.fee_due(daemon.backends[snap.backend_index], snap)
            fee_due, fee_numbers = ledger.due_sat, ledger.numbers
        except WalletError as exc:
            reasons["fee_payments"] = f"revenue_unreadable {exc}"
    if s.cashout_lightning_address is None:
        reasons["cashouts"] = "no_cashout_address (set cashout_lightning_address)"
    else:
        reasons["cashouts"] = _describe(
            decide_cashout(
                snap,
                s,
                fee_due=fee_due,
                backoff_until=daemon.backoff_until("cashout", snap.wallet_id),
                now=now,
            )
        )
    if not s.fees_enabled:
        reasons["fee_payments"] = "fees_off" if s.fee_rate == 0 else "no_fee_address"
    reasons.setdefault(
        "fee_payments",
        _describe(
            decide_fee_payment(
                snap,
                s,
                fee_due=fee_due,
                numbers=fee_numbers,
                backoff_until=daemon.backoff_until("fee_payment", snap.wallet_id),
                now=now,
            )
        ),
    )
    return reasons


def _opening_reason(
    snap: WalletSnapshot, plan: LiquidityPlan, s: Settings, decisions: list[Decision]
) -> str:
    """The opening decisions in words, and for spare funds (goal met) what they come to: the
    channel they open, or the one ``open_spare_funds = false`` or the floor
    (``onchain_extra_reserve``) holds back."""
    text = _describe(decisions)
    first = decisions[0] if len(decisions) == 1 else None
    floor = s.onchain_extra_reserve
    if isinstance(first, OpenChannel) and first.reason == "spare_funds":
        return (
            f"{text} (spare_funds: goal met, spare_sat={plan.spare_sat} above the close "
            f"reserves and onchain_extra_reserve={floor})"
        )
    fee_rate = snap.fee_rate
    if not (isinstance(first, Skip) and first.reason == "goal_met") or fee_rate is None:
        return text
    if not s.open_spare_funds:
        size = spare_channel_size(plan.spare_sat, fee_rate, plan, snap.coins)
        return f"{text}: on, it would open {_sat(size)}" if size else text
    if floor:
        unbounded = plan_liquidity(snap, s.model_copy(update={"onchain_extra_reserve": 0}))
        size = spare_channel_size(unbounded.spare_sat, fee_rate, plan, snap.coins)
        text += f" onchain_extra_reserve={floor}"
        if size:
            text += f": the floor holds back a {_sat(size)} channel"
    return text


async def _topup_invoice(daemon: Daemon, snap: WalletSnapshot) -> dict[str, str] | None:
    """The wallet's live top-up invoice (pending, in any of its stores), with where to pay."""
    backend = daemon.backends[snap.backend_index]
    for store_id in snap.store_ids:
        try:
            invoices = await backend.list_store_invoices(
                store_id, metadata={"liquidityhelper": TOPUP_TAG}
            )
        except WalletError:
            return None
        ours = [i for i in invoices if is_topup_of(i, snap.wallet_id)]
        ln_paid = any(i.status == "complete" and i.paid_over_lightning for i in ours)
        for invoice in ours:
            if invoice.status == "pending":
                return {
                    "id": invoice.id,
                    "store": invoice.store_id,
                    "address": invoice.onchain_address(snap.wallet_id),
                    "checkout": daemon.topup_desk.checkout_link(invoice.id),
                    "note": LIGHTNING_PAID_NOTE if ln_paid else "",
                }
        if ln_paid:
            return dict.fromkeys(("id", "store", "address", "checkout"), "") | {
                "note": LIGHTNING_PAID_NOTE
            }
    return None


def _topup_reason(due: bool, sats: int) -> str:
    return f"{sats} sat needed" if due else "none needed"


async def _wallet_status(
    daemon: Daemon, snap: WalletSnapshot, names: dict[str, str], now: datetime
) -> WalletStatus:
    st = wallet_status_of(daemon.settings, daemon.journal, snap, names)
    if daemon.plan(snap).topup_due:
        st.topup_invoice = await _topup_invoice(daemon, snap)
    st.reasons = await _reasons(daemon, snap, now)
    return st


def wallet_status_of(
    settings: Settings, journal: Journal, snap: WalletSnapshot, names: dict[str, str]
) -> WalletStatus:
    """What a snapshot and the journal say of one wallet, without asking Bitcart anything:
    no top-up invoice (None) and no reasons ({}) — :func:`collect` adds those."""
    plan = plan_liquidity(snap, settings)
    live = snap.live_channels
    return WalletStatus(
        wallet_id=snap.wallet_id,
        wallet_name=snap.wallet.name,
        stores=[{"id": sid, "name": names.get(sid, "")} for sid in snap.store_ids],
        onchain_confirmed_sat=snap.balance.confirmed_sat,
        onchain_unconfirmed_sat=snap.balance.unconfirmed_sat,
        lightning_local_sat=sum(c.local_sat for c in live),
        lightning_remote_sat=sum(c.remote_sat for c in live),
        live_channels=len(live),
        opening_channels=len(snap.opening_channels),
        target_channels=settings.min_channel_count,
        inbound_sat=plan.inbound_sat,
        inbound_now_sat=snap.inbound_now_sat,
        target_inbound_sat=plan.target_sat,
        topup_sat=plan.topup_sat if plan.topup_due else 0,
        topup_invoice=None,
        mode=snap.mode.value,
        fee_rate=snap.fee_rate,
        last_cashout=_entry(journal.last(snap.wallet_id, Kind.CASHOUT)),
        last_fee_payment=_entry(journal.last(snap.wallet_id, Kind.FEE_PAYMENT)),
        in_flight=[x for x in (_entry(e) for e in journal.pending(snap.wallet_id)) if x],
    )


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _sat(n: int) -> str:
    return f"{n:,} sat"


def _when(iso: str) -> str:
    return iso[:16].replace("T", " ") + " UTC"


def _payment(e: dict[str, Any] | None) -> str:
    if e is None:
        return "none"
    return f"{_sat(e['amount_sat'])} {e['status']} {_when(e['at'])} -> {e['to']}"


def wallet_rows(st: WalletStatus) -> list[tuple[str, str]]:
    """(label, value) rows of one wallet: what `status` prints, and the status page shows."""
    fee_rate = f", fees {st.fee_rate} sat/vB" if st.fee_rate is not None else ""
    met = st.inbound_sat >= st.target_inbound_sat and st.live_channels >= st.target_channels
    topup = "not needed"
    if st.topup_sat:
        topup = f"{_sat(st.topup_sat)} ({cf.format_btc(st.topup_sat)} BTC)"
        inv = st.topup_invoice or {}
        if inv.get("id"):
            topup += f": pay Bitcart invoice {inv['id']} on-chain"
            if inv.get("store") and inv["store"] not in {x["id"] for x in st.stores[:1]}:
                topup += f" (store {inv['store']})"
            if inv.get("address"):
                topup += f" to {inv['address']}"
            if inv.get("checkout"):
                topup += f", {inv['checkout']}"
        else:
            topup += ", on-chain to the wallet's address"
        if inv.get("note"):
            topup += f"; last one {inv['note']}"
    return [
        ("wallet", f"{st.wallet_name} ({st.wallet_id}), {st.mode} mode"),
        (
            "on-chain",
            f"{_sat(st.onchain_confirmed_sat)} confirmed, "
            f"{_sat(st.onchain_unconfirmed_sat)} unconfirmed{fee_rate}",
        ),
        (
            "lightning",
            f"local {_sat(st.lightning_local_sat)}, remote {_sat(st.lightning_remote_sat)}",
        ),
        (
            "channels",
            f"{st.live_channels} live of {st.target_channels} wanted, "
            f"{st.opening_channels} opening",
        ),
        (
            "inbound",
            f"{_sat(st.inbound_now_sat)} now, {_sat(st.inbound_sat)} after the next cashouts, "
            f"of {_sat(st.target_inbound_sat)} wanted" + (" (goal met)" if met else ""),
        ),
        ("top-up", topup),
        ("last cashout", _payment(st.last_cashout)),
        ("last fee", _payment(st.last_fee_payment)),
        (
            "unfinished",
            ", ".join(f"{e['kind']} #{e['id']} {_sat(e['amount_sat'])}" for e in st.in_flight)
            or "none",
        ),
        ("next open", st.reasons.get("channel_opening", "")),
        ("next cashout", st.reasons.get("cashouts", "")),
        ("next fee", st.reasons.get("fee_payments", "")),
    ]


def render_text(statuses: list[WalletStatus], snapshot: CycleSnapshot, out: TextIO) -> None:
    """One block per managed wallet, headed by its store(s); no line over 80 columns."""
    lines: list[str] = []
    for st in statuses:
        word = "store" if len(st.stores) == 1 else "stores"
        names = ", ".join(f"{x['name'] or '?'} ({x['id']})" for x in st.stores)
        lines.extend(wrap(f"{word} ", names))
        for label, value in wallet_rows(st):
            lines.extend(wrap(f"  {label:<{LABEL}} ", value))
        lines.append("")
    for row in snapshot.stores:
        if row.managed_wallet_id is None:
            lines.extend(wrap("store ", f"{row.store.name} ({row.store.id}): {row.problem}"))
    for wid, why in snapshot.failures.items():
        lines.extend(wrap("wallet ", f"{wid}: unreadable: {why}"))
    for index, why in snapshot.backend_failures.items():
        lines.extend(wrap(f"bitcart (token {index + 1}) ", f"not readable: {why}"))
    if not statuses and not snapshot.stores and not snapshot.backend_failures:
        lines.append("no stores visible with the configured token(s)")
    out.write("\n".join(lines).rstrip() + "\n")


def wrap(prefix: str, text: str, width: int = WIDTH) -> list[str]:
    """``prefix`` then ``text`` broken at spaces (or after commas); continuation lines indented
    under the text. A word longer than the room left (an id, a URL) is cut, so no line ever
    exceeds ``width``.
    """
    room = max(10, width - len(prefix))
    atoms: list[tuple[str, bool]] = []  # (text, glued to the previous atom without a space)
    for word in text.split():
        for i, part in enumerate(p for p in re.split(r"(?<=,)", word) if p):
            atoms += [(part[j : j + room], i > 0 or j > 0) for j in range(0, len(part), room)]
    rows, cur = [], ""
    for atom, glued in atoms:
        sep = "" if glued else " "
        if cur and len(cur) + len(sep) + len(atom) > room:
            rows.append(cur)
            cur = atom
        else:
            cur = f"{cur}{sep}{atom}" if cur else atom
    rows.append(cur)
    indent = " " * len(prefix)
    return [(prefix + rows[0]).rstrip()] + [indent + r for r in rows[1:]]


def status_document(statuses: list[WalletStatus], snapshot: CycleSnapshot) -> dict[str, Any]:
    """What ``status --json`` prints: plain JSON types only."""
    return {
        "wallets": [asdict(st) for st in statuses],
        "stores_without_wallet": [
            {"id": r.store.id, "name": r.store.name, "reason": r.problem}
            for r in snapshot.stores
            if r.managed_wallet_id is None
        ],
        "unreadable_wallets": dict(snapshot.failures),
        "unreachable_backends": len(snapshot.backend_failures),
    }


def render_json(statuses: list[WalletStatus], snapshot: CycleSnapshot, out: TextIO) -> None:
    json.dump(status_document(statuses, snapshot), out, indent=2)
    out.write("\n")
