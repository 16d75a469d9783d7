"""Pure parsers: Bitcart's REST JSON and Electrum's JSON-RPC results -> our dataclasses.

No I/O and no logging here, so every function is tested against recorded fixtures. Amounts
become ints of sats (or msat) at this boundary: BTC strings go through ``Decimal``, never
``float``. A shape we cannot trust raises :class:`BadReplyError` naming what was wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from liquidityhelper.common_functions import btc_to_sats, format_btc
from liquidityhelper.wallet.base import (
    BadReplyError,
    Balance,
    Channel,
    ChannelState,
    DecodedInvoice,
    FeeBudget,
    InvoicePayment,
    LightningHistoryItem,
    LightningMode,
    OnchainHistoryItem,
    PaymentResult,
    PaymentStatus,
    Store,
    StoreInvoice,
    WalletInfo,
)

SATS_PER_BTC = Decimal(100_000_000)
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_PUBKEY = re.compile(r"^0[23][0-9a-fA-F]{64}$")
_CHANNEL_POINT = re.compile(r"^[0-9a-fA-F]{64}:\d+$")


# ---------------------------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------------------------


def sats_to_btc_str(sats: int) -> str:
    """Sats -> BTC decimal string with 8 places, as Bitcart and Electrum take amounts."""
    return format_btc(sats)


def sat_per_kvb_to_sat_per_vb(value: Any) -> int:
    """Electrum's sat/kvB (per 1000 vbytes) -> sat/vB rounded up, at least 1."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise BadReplyError(f"fee rate is not a number: {value!r}")
    try:
        rate = Decimal(str(value))
    except InvalidOperation:
        raise BadReplyError(f"fee rate is not a number: {value!r}") from None
    if not rate.is_finite() or rate <= 0:
        raise BadReplyError(f"fee rate is not positive: {value!r}")
    return max(1, math.ceil(rate / 1000))


def _sats(value: Any, what: str) -> int:
    try:
        return btc_to_sats(value)
    except (ValueError, TypeError) as e:
        raise BadReplyError(f"{what}: {e}") from None


def _int(value: Any, what: str, *, default: int | None = None) -> int:
    """An integer field (Electrum gives ints; tolerate digit strings, never floats)."""
    if value is None and default is not None:
        return default
    if isinstance(value, bool):
        raise BadReplyError(f"{what} is not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise BadReplyError(f"{what} is not an integer: {value!r}")


def _opt_int(value: Any, what: str) -> int | None:
    return None if value is None else _int(value, what)


def _str(d: Mapping[str, Any], key: str, what: str) -> str:
    value = d.get(key)
    if not isinstance(value, str) or not value:
        raise BadReplyError(f"{what} has no {key!r}")
    return value


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadReplyError(f"{what} is not an object: {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise BadReplyError(f"{what} is not a list: {type(value).__name__}")
    return value


def parse_datetime(value: Any) -> datetime | None:
    """ISO 8601 (Bitcart, with ``Z``) or unix seconds (Electrum) -> aware UTC datetime."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, bool):
        raise BadReplyError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadReplyError(f"not an ISO timestamp: {value!r}") from None
        # A naive time from Bitcart is UTC; never mix naive and aware datetimes.
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    raise BadReplyError(f"not a timestamp: {value!r}")


# ---------------------------------------------------------------------------------------------
# REST: envelopes, errors
# ---------------------------------------------------------------------------------------------


def parse_page(body: Any) -> tuple[list[dict[str, Any]], int, str | None]:
    """Bitcart's list envelope -> (rows, total count, next URL)."""
    env = _mapping(body, "list reply")
    rows = _list(env.get("result"), "list reply 'result'")
    if not all(isinstance(r, dict) for r in rows):
        raise BadReplyError("list reply has a row that is not an object")
    count = _int(env.get("count"), "list reply 'count'")
    nxt = env.get("next")
    return list(rows), count, nxt if isinstance(nxt, str) and nxt else None


def error_detail(body: Any) -> str:
    """Bitcart's error words: ``detail`` (a string, or pydantic's list summarised) or ``error``."""
    if isinstance(body, Mapping):
        detail = body.get("detail", body.get("error"))
        if isinstance(detail, list):
            return "; ".join(_summarise_validation_item(x) for x in detail) or "invalid request"
        if isinstance(detail, Mapping):  # POST /token: {"message": ..., "status": ...}
            return str(detail.get("message") or detail)
        if detail is not None:
            return str(detail)
    if isinstance(body, str) and body:
        return body[:200]
    return "no detail"


def _summarise_validation_item(item: Any) -> str:
    if not isinstance(item, Mapping):
        return str(item)
    loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
    msg = str(item.get("msg", "invalid"))
    return f"{loc}: {msg}" if loc else msg


# ---------------------------------------------------------------------------------------------
# REST: stores, wallets, balances
# ---------------------------------------------------------------------------------------------


def parse_store(d: Any) -> Store:
    d = _mapping(d, "store")
    wallets = d.get("wallets")
    if not isinstance(wallets, list) or not all(isinstance(w, str) for w in wallets):
        # GET /stores/{id} without store_management quietly answers a public shape with no
        # wallets: treating it as "no wallets" would make us manage nothing.
        raise BadReplyError(f"store {d.get('id')!r} has no wallet list (token lacks a scope?)")
    return Store(
        id=_str(d, "id", "store"),
        name=str(d.get("name") or ""),
        wallet_ids=tuple(wallets),
        default_currency=str(d.get("default_currency") or "USD").upper(),
    )


def parse_wallet(d: Any) -> WalletInfo:
    d = _mapping(d, "wallet")
    lightning = d.get("lightning_enabled", False)
    if not isinstance(lightning, bool):
        raise BadReplyError(f"wallet lightning_enabled is not a bool: {lightning!r}")
    key = d.get("xpub")
    return WalletInfo(
        id=_str(d, "id", "wallet"),
        name=str(d.get("name") or ""),
        currency=str(d.get("currency") or "").lower(),
        lightning_enabled=lightning,
        key=key if isinstance(key, str) else "",
    )


def parse_balance(d: Any) -> Balance:
    """GET /wallets/{id}/balance (all four keys) or Electrum getbalance (only non-zero keys)."""
    d = _mapping(d, "balance")
    if "confirmed" not in d:
        raise BadReplyError("balance has no 'confirmed'")

    def field(key: str) -> int:
        return _sats(d.get(key, "0"), f"balance {key}")

    return Balance(
        confirmed_sat=field("confirmed"),
        unconfirmed_sat=field("unconfirmed"),
        unmatured_sat=field("unmatured"),
        lightning_sat=field("lightning"),
    )


def parse_node_id(value: Any) -> str | None:
    """checkln / nodeid: ``"03ab…"`` or ``"03ab…@host:port"`` -> the pubkey; ``false`` -> None."""
    if value is False or value is None:
        return None
    if not isinstance(value, str):
        raise BadReplyError(f"node id is neither a string nor false: {value!r}")
    pubkey = value.split("@", 1)[0].strip().lower()
    if not _PUBKEY.match(pubkey):
        raise BadReplyError(f"node id is not a 33-byte hex pubkey: {pubkey[:80]!r}")
    return pubkey


# ---------------------------------------------------------------------------------------------
# Channels
# ---------------------------------------------------------------------------------------------

_STATE_GROUPS: dict[str, ChannelState] = {
    "PREOPENING": ChannelState.OPENING,
    "OPENING": ChannelState.OPENING,
    "FUNDED": ChannelState.OPENING,
    "OPEN": ChannelState.OPEN,
    "SHUTDOWN": ChannelState.CLOSING,
    "CLOSING": ChannelState.CLOSING,
    "FORCE_CLOSING": ChannelState.CLOSING,
    "REQUESTED_FCLOSE": ChannelState.CLOSING,
    "WE_ARE_TOXIC": ChannelState.CLOSING,
    "CLOSED": ChannelState.CLOSED,
    "REDEEMED": ChannelState.CLOSED,
}


def parse_channel(row: Any) -> Channel:
    """One Electrum ``list_channels`` row (REST passes it through unchanged)."""
    row = _mapping(row, "channel row")
    point = row.get("channel_point")
    if not isinstance(point, str) or not _CHANNEL_POINT.match(point):
        raise BadReplyError(f"channel row has no valid channel_point: {point!r}")
    raw_state = str(row.get("state") or "")
    scid = row.get("short_channel_id")
    channel_point = point.lower()
    channel_id = str(row.get("channel_id") or "")
    short_channel_id = scid if isinstance(scid, str) and scid else None
    if str(row.get("type", "CHANNEL")).upper() == "BACKUP":
        # Restored from a backup: no balances, no peer; it can only be force-closed.
        return Channel(
            channel_point=channel_point,
            raw_state=raw_state,
            state=ChannelState.BACKUP,
            peer_pubkey=None,
            peer_online=False,
            capacity_sat=0,
            local_sat=0,
            remote_sat=0,
            local_reserve_sat=0,
            remote_reserve_sat=0,
            channel_id=channel_id,
            short_channel_id=short_channel_id,
        )
    local = _int(row.get("local_balance"), "channel local_balance")
    remote = _int(row.get("remote_balance"), "channel remote_balance")
    if local < 0 or remote < 0:
        raise BadReplyError(f"channel {point} has a negative balance")
    explicit = row.get("capacity", row.get("capacity_sat"))
    if explicit is not None:
        capacity = _int(explicit, "channel capacity")
    else:
        # Electrum gives no capacity: the balances plus what is tied up in HTLCs either way.
        capacity = (
            local
            + remote
            + _int(row.get("local_unsettled_sent"), "channel local_unsettled_sent", default=0)
            + _int(row.get("remote_unsettled_sent"), "channel remote_unsettled_sent", default=0)
        )
    peer = row.get("remote_pubkey")
    return Channel(
        channel_point=channel_point,
        raw_state=raw_state,
        state=_STATE_GROUPS.get(raw_state.upper(), ChannelState.UNKNOWN),
        peer_pubkey=peer.lower() if isinstance(peer, str) and peer else None,
        peer_online=row.get("peer_state") == "GOOD",
        capacity_sat=capacity,
        local_sat=local,
        remote_sat=remote,
        local_reserve_sat=_int(row.get("local_reserve"), "channel local_reserve", default=0),
        remote_reserve_sat=_int(row.get("remote_reserve"), "channel remote_reserve", default=0),
        channel_id=channel_id,
        short_channel_id=short_channel_id,
    )


def parse_channels(rows: Any) -> list[Channel]:
    return [parse_channel(r) for r in _list(rows, "channel list")]


def parse_channel_point(value: Any) -> str:
    """The reply of channels/open: ``"<funding txid>:<vout>"``."""
    if not isinstance(value, str) or not _CHANNEL_POINT.match(value.strip()):
        raise BadReplyError(f"open channel did not answer a channel point: {str(value)[:100]!r}")
    return value.strip().lower()


def parse_txid(value: Any) -> str:
    if not isinstance(value, str) or not _HEX64.match(value.strip()):
        raise BadReplyError(f"expected a txid, got {str(value)[:100]!r}")
    return value.strip().lower()


# ---------------------------------------------------------------------------------------------
# Payments
# ---------------------------------------------------------------------------------------------


def summarise_lnpay_log(log: Any) -> str:
    """Electrum's lnpay log (``[route length, channel, message]`` per attempt) in one line."""
    if not isinstance(log, list) or not log:
        return "no route attempted (empty log)"
    last = log[-1]
    if isinstance(last, list | tuple) and len(last) >= 3:
        return f"{len(log)} attempt(s); last: {last[2]} at {last[1]} (route of {last[0]})"
    return f"{len(log)} attempt(s); last: {str(last)[:200]}"


def parse_lnpay(body: Any) -> PaymentResult:
    """lnpay's ``{payment_hash, success, preimage, log}`` (REST and JSON-RPC alike)."""
    d = _mapping(body, "lnpay reply")
    payment_hash = d.get("payment_hash")
    if not isinstance(payment_hash, str) or not _HEX64.match(payment_hash):
        raise BadReplyError(f"lnpay reply has no payment_hash: {payment_hash!r}")
    success = d.get("success")
    if not isinstance(success, bool):
        raise BadReplyError(f"lnpay reply 'success' is not a bool: {success!r}")
    preimage = d.get("preimage")
    if success:
        return PaymentResult(
            payment_hash=payment_hash.lower(),
            status=PaymentStatus.SUCCEEDED,
            preimage=preimage if isinstance(preimage, str) and preimage else None,
            detail="paid",
        )
    return PaymentResult(
        payment_hash=payment_hash.lower(),
        status=PaymentStatus.FAILED,
        detail=summarise_lnpay_log(d.get("log")),
    )


# Electrum's invoice status ints (electrum/invoices.py).
PR_UNPAID, PR_EXPIRED, PR_UNKNOWN, PR_PAID, PR_INFLIGHT, PR_FAILED, PR_ROUTING = range(7)
PR_UNCONFIRMED, PR_BROADCASTING, PR_BROADCAST = 7, 8, 9

_INVOICE_STATUS: dict[int, PaymentStatus] = {
    PR_PAID: PaymentStatus.SUCCEEDED,
    PR_INFLIGHT: PaymentStatus.PENDING,
    PR_ROUTING: PaymentStatus.PENDING,
    PR_UNCONFIRMED: PaymentStatus.PENDING,
    PR_BROADCASTING: PaymentStatus.PENDING,
    PR_BROADCAST: PaymentStatus.PENDING,
    # Saved but not paid and not expired: lnpay saves the invoice just before it starts paying,
    # and a daemon restart forgets in-flight state, so an attempt may exist. Never pay again on
    # it; it turns into EXPIRED (FAILED) when the invoice expires.
    PR_UNPAID: PaymentStatus.PENDING,
    PR_FAILED: PaymentStatus.FAILED,
    PR_EXPIRED: PaymentStatus.FAILED,
    PR_UNKNOWN: PaymentStatus.UNKNOWN,
}


def payment_from_invoices(rows: Any, payment_hash: str) -> PaymentResult | None:
    """Find ``payment_hash`` in Electrum's ``list_invoices`` (outgoing invoices); None if absent."""
    wanted = payment_hash.lower()
    for row in _list(rows, "list_invoices result"):
        if not isinstance(row, Mapping):
            continue
        ids = {str(row.get(k) or "").lower() for k in ("invoice_id", "rhash", "payment_hash")}
        if wanted not in ids:
            continue
        code = _int(row.get("status"), "invoice status")
        status = _INVOICE_STATUS.get(code, PaymentStatus.UNKNOWN)
        preimage = row.get("preimage")
        amount = row.get("amount_msat")
        return PaymentResult(
            payment_hash=wanted,
            status=status,
            preimage=preimage if isinstance(preimage, str) and preimage else None,
            amount_msat=amount
            if isinstance(amount, int) and not isinstance(amount, bool)
            else None,
            detail=f"invoice status {code} {row.get('status_str', '')}".strip(),
        )
    return None


def payment_from_history(
    items: Sequence[LightningHistoryItem], payment_hash: str
) -> PaymentResult | None:
    """A settled outgoing payment in the lightning history (it lists settled payments only)."""
    wanted = payment_hash.lower()
    for item in items:
        if item.payment_hash == wanted and item.amount_msat <= 0:
            return PaymentResult(
                payment_hash=wanted,
                status=PaymentStatus.SUCCEEDED,
                preimage=item.preimage,
                fee_msat=item.fee_msat,
                amount_msat=-item.amount_msat,
                detail="settled (lightning history)",
            )
    return None


# ---------------------------------------------------------------------------------------------
# Invoices (BOLT11) and histories
# ---------------------------------------------------------------------------------------------

# Network names (as in our settings and Electrum) -> BOLT11 currency prefix.
NETWORK_PREFIXES: dict[str, str] = {
    "mainnet": "bc",
    "bitcoin": "bc",
    "testnet": "tb",
    "testnet4": "tb",
    "signet": "tbs",
    "regtest": "bcrt",
    "simnet": "sb",
}


def network_prefix(network: str) -> str:
    """``"regtest"`` or ``"bcrt"`` -> ``"bcrt"``."""
    net = network.strip().lower()
    if net in NETWORK_PREFIXES:
        return NETWORK_PREFIXES[net]
    if net in NETWORK_PREFIXES.values():
        return net
    raise ValueError(f"unknown bitcoin network: {network!r}")


def invoice_network(bolt11: str) -> str:
    """The currency prefix of a BOLT11's human-readable part (``lnbcrt10u1…`` -> ``bcrt``)."""
    s = bolt11.strip().lower()
    if s.startswith("lightning:"):
        s = s[len("lightning:") :]
    hrp = s[: s.rfind("1")] if "1" in s else ""
    m = re.match(r"^ln([a-z]+)", hrp)
    if not m:
        return ""
    return m.group(1)


def parse_decoded_invoice(d: Any, bolt11: str) -> DecodedInvoice:
    """Electrum's ``decode_invoice`` (Invoice.to_debug_json with ``lnaddr``)."""
    d = _mapping(d, "decoded invoice")
    lnaddr = _mapping(d.get("lnaddr"), "decoded invoice 'lnaddr'")
    payment_hash = lnaddr.get("rhash")
    if not isinstance(payment_hash, str) or not _HEX64.match(payment_hash):
        raise BadReplyError(f"decoded invoice has no payment hash: {payment_hash!r}")
    payee = lnaddr.get("pubkey")
    if not isinstance(payee, str) or not _PUBKEY.match(payee):
        raise BadReplyError(f"decoded invoice has no payee pubkey: {payee!r}")
    amount = d.get("amount_msat")
    if amount is None and lnaddr.get("amount_BTC") not in (None, "None"):
        amount = _sats(lnaddr["amount_BTC"], "invoice amount") * 1000
    amount_msat = _opt_int(amount, "invoice amount_msat")
    description_hash = None
    for tag in lnaddr.get("tags") or ():
        if isinstance(tag, list) and len(tag) == 2 and tag[0] == "h" and isinstance(tag[1], str):
            description_hash = tag[1].lower()
    description = lnaddr.get("description", d.get("message"))
    return DecodedInvoice(
        bolt11=bolt11,
        payment_hash=payment_hash.lower(),
        amount_msat=amount_msat or None,  # 0 means "any amount": Electrum cannot pay those
        payee_pubkey=payee.lower(),
        timestamp=_int(lnaddr.get("time", d.get("time")), "invoice time"),
        expiry_seconds=_int(lnaddr.get("exp", d.get("exp")), "invoice expiry", default=3600),
        description=description if isinstance(description, str) else None,
        description_hash=description_hash,
        network=invoice_network(bolt11),
    )


# Electrum's PaymentDirection: SENT 0, RECEIVED 1, SELF_PAYMENT 2, FORWARDING 3.
_PAID_OUT_DIRECTIONS = {0, 2, "sent", "self_payment"}


def parse_lightning_history(rows: Any) -> list[LightningHistoryItem]:
    """Electrum ``lightning_history``: settled payments only (channel open/close rows skipped).

    Electrum's ``amount_msat`` of a sent payment is negative and includes the routing fee;
    ours is the principal, so the fee is added back.
    """
    out: list[LightningHistoryItem] = []
    for row in _list(rows, "lightning history"):
        row = _mapping(row, "lightning history row")
        payment_hash = row.get("payment_hash")
        if row.get("type", "payment") != "payment" or not isinstance(payment_hash, str):
            continue
        amount = _int(row.get("amount_msat"), "lightning history amount_msat")
        direction = row.get("direction")
        direction = direction.lower() if isinstance(direction, str) else direction
        paid_out = direction in _PAID_OUT_DIRECTIONS or (direction is None and amount < 0)
        fee = _opt_int(row.get("fee_msat"), "lightning history fee_msat") if paid_out else None
        fee = max(0, fee or 0)
        preimage = row.get("preimage")
        out.append(
            LightningHistoryItem(
                payment_hash=payment_hash.lower(),
                amount_msat=amount + fee if paid_out else amount,
                fee_msat=fee,
                timestamp=parse_datetime(row.get("timestamp")),
                label=str(row.get("label") or ""),
                preimage=preimage if isinstance(preimage, str) and preimage else None,
            )
        )
    return out


def parse_onchain_history(result: Any) -> list[OnchainHistoryItem]:
    """Electrum ``onchain_history``: a list (4.6) or ``{summary, transactions}`` (older)."""
    if isinstance(result, Mapping):
        result = result.get("transactions")
    out: list[OnchainHistoryItem] = []
    for row in _list(result, "onchain history"):
        row = _mapping(row, "onchain history row")
        if "amount_sat" in row:
            amount = _int(row["amount_sat"], "onchain amount_sat")
        else:  # BTC strings in older versions ("bc_value" / "value")
            value = row.get("bc_value", row.get("value"))
            if value is None:
                raise BadReplyError("onchain history row has no amount")
            amount = _sats(value, "onchain value")
        fee = row.get("fee_sat")
        if fee is None and isinstance(row.get("fee"), str):
            fee = _sats(row["fee"], "onchain fee")
        out.append(
            OnchainHistoryItem(
                txid=parse_txid(row.get("txid")),
                amount_sat=amount,
                fee_sat=_opt_int(fee, "onchain fee_sat"),  # None: we did not fund it
                timestamp=parse_datetime(row.get("timestamp")),
                confirmations=max(0, _int(row.get("confirmations"), "confirmations", default=0)),
                label=str(row.get("label") or ""),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Store invoices
# ---------------------------------------------------------------------------------------------


def parse_invoice_payment(d: Any) -> InvoicePayment | None:
    """One payment method of a store invoice; None for another coin's method."""
    d = _mapping(d, "invoice payment method")
    coin = str(d.get("currency") or d.get("symbol") or "btc").lower()
    if coin != "btc":
        return None
    return InvoicePayment(
        amount_sat=_sats(d.get("amount"), "payment method amount"),
        wallet_id=str(d.get("wallet_id") or ""),
        lightning=bool(d.get("lightning", False)),
        is_used=bool(d.get("is_used", False)),
        address=str(d.get("payment_address") or ""),
    )


def parse_store_invoice(d: Any) -> StoreInvoice:
    d = _mapping(d, "invoice")
    price = d.get("price")
    if isinstance(price, bool) or not isinstance(price, str | int):
        raise BadReplyError(f"invoice price is not a decimal string: {price!r}")
    metadata = d.get("metadata") or {}
    payments = [parse_invoice_payment(p) for p in _list(d.get("payments", []), "payments")]
    return StoreInvoice(
        id=_str(d, "id", "invoice"),
        store_id=str(d.get("store_id") or ""),
        status=str(d.get("status") or ""),
        price=str(price),
        currency=str(d.get("currency") or "").upper(),
        metadata=dict(_mapping(metadata, "invoice metadata")),
        payments=tuple(p for p in payments if p is not None),
        created=parse_datetime(d.get("created")),
        paid_date=parse_datetime(d.get("paid_date")),
        checkout_url=str(d.get("checkout_url") or ""),
        payment_methods=tuple(
            str(w) for w in _list(d.get("payment_methods") or [], "invoice payment_methods")
        ),
    )


def price_equals(echoed: Any, asked_btc: str) -> bool:
    """Bitcart's echoed price equals ours as a decimal (``"0.00123456"`` == ``"0.001234560"``)."""
    try:
        return Decimal(str(echoed)) == Decimal(asked_btc)
    except InvalidOperation:
        return False


# ---------------------------------------------------------------------------------------------
# Daemon settings
# ---------------------------------------------------------------------------------------------


def parse_lightning_mode(use_gossip: Any) -> LightningMode:
    """getconfig ``use_gossip``: false is Electrum's default trampoline mode."""
    if isinstance(use_gossip, str):
        use_gossip = {"true": True, "false": False}.get(use_gossip.strip().lower())
    if use_gossip is True:
        return LightningMode.GOSSIP
    if use_gossip is False:
        return LightningMode.TRAMPOLINE
    return LightningMode.UNKNOWN


def parse_feerate_result(d: Any) -> int:
    """getfeerate ``{"sat/kvB": N, …}`` -> sat/vB rounded up."""
    d = _mapping(d, "getfeerate result")
    return sat_per_kvb_to_sat_per_vb(d.get("sat/kvB"))


def parse_fee_budget(max_millionths: Any, cutoff_msat: Any) -> FeeBudget:
    budget = FeeBudget(
        max_millionths=_int(max_millionths, "lightning_payment_fee_max_millionths"),
        cutoff_msat=_int(cutoff_msat, "lightning_payment_fee_cutoff_msat"),
    )
    if budget.max_millionths < 0 or budget.cutoff_msat < 0:
        raise BadReplyError(f"negative fee budget: {budget}")
    return budget


def parse_unspent(result: Any) -> list[tuple[int, int]]:
    """Electrum ``listunspent``: each coin's value (a BTC string) in sats and its height
    (0 in the mempool, below 0 local or with unconfirmed parents), largest first."""
    out: list[tuple[int, int]] = []
    for row in _list(result, "listunspent"):
        row = _mapping(row, "listunspent row")
        value = _sats(row.get("value"), "listunspent value")
        if value <= 0:
            raise BadReplyError(f"listunspent value is not positive: {row.get('value')!r}")
        out.append((value, _int(row.get("height"), "listunspent height", default=0)))
    return sorted(out, reverse=True)
