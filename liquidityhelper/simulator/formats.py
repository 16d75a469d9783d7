"""How Bitcart and Electrum write numbers and times on the wire."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation

COIN = 100_000_000


def btc8(sats: int) -> str:
    """Bitcart's money string: BTC with exactly 8 decimals (``"0.00010000"``)."""
    return f"{Decimal(sats) / COIN:.8f}"


def electrum_btc(sats: int) -> str:
    """Electrum's ``str(Decimal(sat) / COIN)`` (getbalance): ``"0"``, ``"0.0001"``."""
    return str(Decimal(sats) / COIN)


def format_satoshis(sats: int | Decimal) -> str:
    """Electrum's ``format_satoshis``: trailing zeros dropped, a bare ``"."`` kept (``"10."``)."""
    text = f"{Decimal(sats).quantize(Decimal(1)) / COIN:.8f}".rstrip("0")
    return text


def format_plain(sats: int) -> str:
    """BIP21 amount: like :func:`format_satoshis` without a trailing dot (``"10"``)."""
    return format_satoshis(sats).rstrip(".")


def to_sats(amount: object) -> int:
    """Electrum's ``satoshis()``: BTC as str/int/float/Decimal -> int sats (truncating)."""
    if isinstance(amount, bool) or amount is None:
        raise ValueError(f"bad amount {amount!r}")
    if isinstance(amount, float):
        amount = repr(amount)
    try:
        value = Decimal(str(amount))
    except InvalidOperation as exc:
        raise ValueError(f"bad amount {amount!r}") from exc
    if not value.is_finite():
        raise ValueError(f"bad amount {amount!r}")
    return int((value * COIN).to_integral_value(rounding=ROUND_DOWN))


def quantize(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


def iso_z(ts: float | None) -> str | None:
    """Bitcart's times: ISO 8601 in UTC with microseconds and ``Z``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def electrum_date(ts: float | None) -> str | None:
    """Electrum's datetime encoding (``isoformat(' ')[:-3]``), in the daemon's UTC."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None).isoformat(" ")[:-3]
