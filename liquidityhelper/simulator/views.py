"""JSON shapes, field for field as the recorded Bitcart and Electrum answers have them."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from liquidityhelper.simulator.channels import CLOSED_OR_CLOSING
from liquidityhelper.simulator.entities import (
    PR_EXPIRED,
    PR_UNPAID,
    STATUS_STR,
    Channel,
    DaemonWallet,
    OutgoingPayment,
    PaymentMethod,
    Request,
    Store,
    StoreInvoice,
    Token,
    User,
    Wallet,
)
from liquidityhelper.simulator.formats import (
    btc8,
    electrum_btc,
    electrum_date,
    format_satoshis,
    iso_z,
    quantize,
)
from liquidityhelper.simulator.shop import currency_data, divisibility

if TYPE_CHECKING:
    from liquidityhelper.simulator.model import SimModel

_EMAIL_SETTINGS = {
    "address": "",
    "host": "",
    "port": 25,
    "user": "",
    "password": "",
    "auth_mode": "starttls",
}


# -- merchants API ----------------------------------------------------------------------------


def user_json(u: User, *, times: bool = True) -> dict[str, Any]:
    """``/users/me``; embedded in a wallet (``times=False``) it has no created/updated."""
    out: dict[str, Any] = {"created": iso_z(u.created), "updated": None} if times else {}
    return out | {
        "metadata": {},
        "email": u.email,
        "is_superuser": u.is_superuser,
        "settings": {"balance_currency": u.balance_currency, "fetch_balance": True},
        "id": u.id,
        "is_verified": False,
        "is_enabled": True,
        "totp_key": u.totp_key,
        "totp_url": f"otpauth://totp/Bitcart:{quote(u.email)}?secret={u.totp_key}&issuer=Bitcart",
        "tfa_enabled": False,
        "fido2_devices": [],
    }


def token_json(t: Token) -> dict[str, Any]:
    return {
        "created": iso_z(t.created),
        "updated": None,
        "app_id": t.app_id,
        "redirect_url": t.redirect_url,
        "permissions": list(t.permissions),
        "user_id": t.user_id,
        "id": t.id,
    }


def store_json(s: Store, *, public: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "created": iso_z(s.created),
        "updated": iso_z(s.updated),
        "metadata": dict(s.metadata),
        "name": s.name,
        "default_currency": s.default_currency,
        "checkout_settings": dict(s.checkout_settings),
        "theme_settings": {"store_theme_url": "", "checkout_theme_url": ""},
    }
    if not public:
        out.update(
            {
                "wallets": list(s.wallets),
                "email_settings": dict(_EMAIL_SETTINGS),
                "notifications": [],
                "templates": {},
                "plugin_settings": {"shopify": {"shop_name": "", "api_key": "", "api_secret": ""}},
            }
        )
    out.update(
        {"id": s.id, "user_id": s.user_id, "currency_data": currency_data(s.default_currency)}
    )
    return out


def wallet_json(w: Wallet, user: User, confirmed_sat: int, error: bool) -> dict[str, Any]:
    return {
        "created": iso_z(w.created),
        "updated": iso_z(w.updated),
        "metadata": dict(w.metadata),
        "name": w.name,
        "xpub": w.key,
        "currency": w.currency,
        "lightning_enabled": w.lightning_enabled,
        "label": w.label,
        "hint": w.hint,
        "contract": "",
        "additional_xpub_data": {},
        "transaction_speed": None,
        "id": w.id,
        "user_id": w.user_id,
        "user": user_json(user, times=False),
        "balance": btc8(confirmed_sat),
        "error": error,
    }


def _rate_str(rate: Decimal, currency: str) -> tuple[str, str]:
    if currency == "BTC":
        text = f"{quantize(rate, 8):.8f}"
        return text, f"{text} BTC"
    text = f"{quantize(rate, 2):.2f}"
    symbol = currency_data(currency).get("symbol") or ""
    return text, f"{symbol}{text} ({currency})"


def method_json(m: PaymentMethod, inv: StoreInvoice) -> dict[str, Any]:
    rate, rate_str = _rate_str(m.rate, inv.currency)
    return {
        "created": iso_z(m.created),
        "recommended_fee": 0.0 if m.lightning else float(m.recommended_fee),
        "invoice_id": inv.id,
        "wallet_id": m.wallet_id,
        "amount": btc8(m.amount_sat),
        "rate": rate,
        "discount": None,
        "confirmations": m.confirmations,
        "currency": "btc",
        "symbol": "btc",
        "payment_address": m.payment_address,
        "payment_url": m.payment_url,
        "rhash": m.rhash,
        "lookup_field": m.lookup_field,
        "lightning": m.lightning,
        "contract": "",
        "divisibility": 8,
        "user_address": None,
        "node_id": m.node_id,
        "label": m.label,
        "hint": "",
        "is_used": m.is_used,
        "id": m.id,
        "updated": None,
        "metadata": {},
        "rate_str": rate_str,
        "name": m.name,
    }


def invoice_json(inv: StoreInvoice, status: str, time_left: int) -> dict[str, Any]:
    places = divisibility(inv.currency)
    return {
        "created": iso_z(inv.created),
        "updated": iso_z(inv.updated),
        "metadata": dict(inv.metadata),
        "order_id": inv.order_id,
        "notification_url": inv.notification_url,
        "redirect_url": inv.redirect_url,
        "buyer_email": inv.buyer_email,
        "shipping_address": "",
        "notes": inv.notes,
        "id": inv.id,
        "user_id": inv.user_id,
        "store_id": inv.store_id,
        "time_left": time_left,
        "expiration_seconds": inv.expiration * 60,
        "product_names": {},
        "product_quantities": {},
        "payments": [method_json(m, inv) for m in inv.payments],
        "paid_date": iso_z(inv.paid_date),
        "payment_id": inv.payment_id,
        "refund_id": None,
        "paid_currency": inv.paid_currency,
        "discount": None,
        "price": f"{quantize(inv.price, places):.{places}f}",
        "status": status,
        "exception_status": inv.exception_status,
        "currency": inv.currency,
        "tx_hashes": list(inv.tx_hashes),
        "promocode": "",
        "products": [],
        "sent_amount": float(inv.sent_amount),
        "expiration": inv.expiration,
        "payment_methods": list(inv.payment_methods),
    }


# -- daemon -----------------------------------------------------------------------------------


def channel_row(c: Channel, peer_state: str) -> dict[str, Any]:
    if c.kind == "BACKUP":
        return {
            "type": "BACKUP",
            "short_channel_id": c.short_channel_id,
            "channel_id": c.channel_id,
            "channel_point": c.channel_point,
            "closing_txid": c.closing_txid,
            "state": c.state.value,
        }
    return {
        "type": "CHANNEL",
        "short_channel_id": c.short_channel_id,
        "channel_id": c.channel_id,
        "channel_point": c.channel_point,
        # A remote force-close shows nothing until it is mined (the row stays OPEN).
        "closing_txid": c.closing_txid if c.state in CLOSED_OR_CLOSING else None,
        "state": c.state.value,
        "peer_state": peer_state,
        "remote_pubkey": c.peer_pubkey,
        "local_balance": c.local_msat // 1000,
        "remote_balance": c.remote_msat // 1000,
        "local_ctn": c.local_ctn,
        "remote_ctn": c.remote_ctn,
        "local_reserve": c.local_reserve_sat,
        "remote_reserve": c.remote_reserve_sat,
        "local_unsettled_sent": c.local_unsettled_msat // 1000,
        "remote_unsettled_sent": c.remote_unsettled_msat // 1000,
    }


def getbalance_json(
    confirmed: int, unconfirmed: int, unmatured: int, lightning: int
) -> dict[str, str]:
    """Electrum's ``getbalance``: ``confirmed`` always, the others only when non-zero."""
    out = {"confirmed": electrum_btc(confirmed)}
    if unconfirmed:
        out["unconfirmed"] = electrum_btc(unconfirmed)
    if unmatured:
        out["unmatured"] = electrum_btc(unmatured)
    if lightning:
        out["lightning"] = electrum_btc(lightning)
    return out


def onchain_history(model: SimModel, dw: DaemonWallet) -> list[dict[str, Any]]:
    """Electrum 4.6's ``onchain_history``: a list of ``OnchainHistoryItem.to_dict()``."""
    ordered = sorted(dw.txs, key=lambda t: (t.height <= 0, t.height, t.timestamp))
    balance = 0
    out = []
    for i, t in enumerate(ordered):
        balance += t.amount_sat
        confirmed = t.height > 0
        ts = model.block_times.get(t.height) if confirmed else None
        ts_int = int(ts) if ts is not None else None
        out.append(
            {
                "txid": t.txid,
                "amount_sat": t.amount_sat,
                "fee_sat": t.fee_sat,
                "height": t.height,
                "confirmations": model.confirmations(t.height),
                "timestamp": ts_int,
                "monotonic_timestamp": ts_int if ts_int is not None else int(t.timestamp),
                "incoming": t.amount_sat > 0,
                "bc_value": format_satoshis(t.amount_sat),
                "bc_balance": format_satoshis(balance),
                "date": electrum_date(ts_int),
                "txpos_in_block": i + 1 if confirmed else None,
                "wanted_height": None,
                "label": t.label,
                "group_id": None,
            }
        )
    return out


def onchain_history_with_summary(model: SimModel, dw: DaemonWallet) -> dict[str, Any]:
    """The pre-4.6 shape: ``{"summary": {...}, "transactions": [...]}`` (summary {} if empty)."""
    items = onchain_history(model, dw)
    if not items:
        return {"summary": {}, "transactions": []}
    first, last = items[0], items[-1]
    incoming = sum(i["amount_sat"] for i in items if i["amount_sat"] > 0)
    outgoing = -sum(i["amount_sat"] for i in items if i["amount_sat"] < 0)
    start_balance = 0  # the history starts with the wallet

    def point(item: dict[str, Any], balance: int) -> dict[str, Any]:
        return {
            "date": item["date"],
            "block_height": item["height"],
            "BTC_balance": format_satoshis(balance),
        }

    return {
        "summary": {
            "begin": point(first, start_balance),
            "end": point(last, start_balance + incoming - outgoing),
            "flow": {
                "BTC_incoming": format_satoshis(incoming),
                "BTC_outgoing": format_satoshis(outgoing),
            },
        },
        "transactions": items,
    }


def _ln_item(
    kind: str,
    ts: float,
    amount_msat: int,
    *,
    fee_msat: int | None = None,
    payment_hash: str | None = None,
    preimage: str | None = None,
    label: str = "",
    group_id: str | None = None,
    direction: int | None = None,
) -> dict[str, Any]:
    # A wallet's history is asked for again and again and only grows: format each row once.
    row = _ln_row(
        kind, ts, amount_msat, fee_msat, payment_hash, preimage, label, group_id, direction
    )
    return dict(row)


@functools.lru_cache(maxsize=65_536)
def _ln_row(
    kind: str,
    ts: float,
    amount_msat: int,
    fee_msat: int | None,
    payment_hash: str | None,
    preimage: str | None,
    label: str,
    group_id: str | None,
    direction: int | None,
) -> dict[str, Any]:
    return {
        "type": kind,
        "label": label,
        "timestamp": int(ts),
        "date": electrum_date(int(ts)),
        "amount_msat": amount_msat,
        "fee_msat": fee_msat,
        "payment_hash": payment_hash,
        "preimage": preimage,
        "group_id": group_id,
        "ln_value": format_satoshis(Decimal(amount_msat) / 1000),
        "direction": direction,
    }


def lightning_history(model: SimModel, dw: DaemonWallet) -> list[dict[str, Any]]:
    """Electrum's ``lightning_history``: settled payments plus channel open/close rows."""
    rows = []
    for p in dw.outgoing.values():
        if p.settled_at is not None and p.preimage:
            rows.append(
                _ln_item(
                    "payment",
                    p.settled_at,
                    -(p.amount_msat + p.fee_msat),
                    fee_msat=p.fee_msat,
                    payment_hash=p.payment_hash,
                    preimage=p.preimage,
                    # get_label_for_rhash: the wallet's label, else the invoice's message
                    label=dw.labels.get(p.payment_hash) or p.message,
                    direction=0,
                )
            )
    for r in dw.received:
        rows.append(
            _ln_item(
                "payment",
                r.timestamp,
                r.amount_msat,
                payment_hash=r.payment_hash,
                preimage=r.preimage,
                label=r.label,
                direction=1,
            )
        )
    for c in dw.channels.values():
        if c.kind != "CHANNEL":
            continue
        sid = c.short_channel_id or c.channel_id[:16]
        initial = c.capacity_sat * 1000 if c.initiator == "local" else 0
        opened = model.block_times.get(c.funding_height, c.opened_at)
        rows.append(
            _ln_item(
                "channel_opening",
                opened,
                initial,
                label=f"Open channel {sid}",
                group_id=c.funding_txid,
            )
        )
        if c.closing_txid and c.close_height:
            closed = model.block_times.get(c.close_height, model.now())
            rows.append(
                _ln_item(
                    "channel_closing",
                    closed,
                    -c.local_msat,
                    label=f"Close channel {sid}",
                    group_id=c.closing_txid,
                )
            )
    rows.sort(key=lambda r: r["timestamp"])
    return rows


def outgoing_invoice_json(p: OutgoingPayment, now: float) -> dict[str, Any]:
    """Electrum's ``export_invoice`` for a Lightning invoice (``list_invoices``)."""
    status = p.status
    if status == PR_UNPAID and p.expiry and now > p.timestamp + p.expiry:
        status = PR_EXPIRED
    out: dict[str, Any] = {
        "is_lightning": True,
        "amount_BTC": format_satoshis(p.amount_msat // 1000),
        "message": p.message,
        "timestamp": p.timestamp,
        "expiry": p.expiry,
        "status": status,
        "status_str": STATUS_STR.get(status, "Unknown"),
        "amount_sat": p.amount_msat // 1000,
        "amount_msat": p.amount_msat,
        "invoice_id": p.payment_hash,
        "lightning_invoice": p.bolt11,
    }
    if status == 3:
        out["preimage"] = p.preimage
    return out


def _expires_in(seconds: int) -> str:
    if seconds < 90:
        return "Expires in about 1 minute" if seconds >= 45 else "Expires in less than a minute"
    minutes = round(seconds / 60)
    if minutes < 45:
        return f"Expires in about {minutes} minutes"
    hours = round(seconds / 3600)
    return f"Expires in about {hours} hour{'s' if hours != 1 else ''}"


def request_json(r: Request, now: float, hrp_uri: str = "bitcoin") -> dict[str, Any]:
    """Electrum's ``export_request`` (``add_request``, ``list_requests``)."""
    status = r.status
    left = r.timestamp + r.expiry - int(now)
    if status == PR_UNPAID and r.expiry and left <= 0:
        status = PR_EXPIRED
    status_str = _expires_in(left) if status == PR_UNPAID and r.expiry else STATUS_STR[status]
    out: dict[str, Any] = {
        "is_lightning": r.is_lightning,
        "amount_BTC": format_satoshis(r.amount_sat),
        "message": r.message,
        "timestamp": r.timestamp,
        "expiry": r.expiry,
        "status": status,
        "status_str": status_str,
        "amount_sat": r.amount_sat,
    }
    if r.is_lightning:
        out.update(
            {
                "amount_msat": r.amount_sat * 1000,
                "request_id": r.request_id,
                "rhash": r.payment_hash,
                "lightning_invoice": r.bolt11,
                "can_receive": False,
            }
        )
    else:
        amount = format_satoshis(r.amount_sat).rstrip(".")
        msg = f"&message={quote(r.message)}" if r.message else ""
        out.update(
            {
                "request_id": r.request_id,
                "address": r.address,
                "URI": f"{hrp_uri}:{r.address}?amount={amount}{msg}&time={r.timestamp}"
                f"&exp={r.expiry}",
                "tx_hashes": list(r.tx_hashes),
            }
        )
    return out


def listunspent(m: SimModel, dw: DaemonWallet) -> list[dict[str, Any]]:
    """Electrum's ``listunspent``: ``txin.to_json()`` with ``value`` as ``str(Decimal/COIN)``.

    Only what the daemon reads is modelled (value, outpoint, height). Without
    ``SimConfig.coin_selection`` the model tracks no coins: the wallet is one coin then.
    """
    if not m.config.coin_selection:
        total = m.spendable(dw)
        return [{"value": electrum_btc(total), "height": 1, "prevout_n": 0}] if total else []
    return [
        {
            "prevout_hash": coin.tx.txid,
            "prevout_n": n,
            "value": electrum_btc(coin.amount_sat),
            "height": coin.tx.height,
        }
        for n, coin in enumerate(dw.coins)
    ]
