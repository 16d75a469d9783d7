"""Real BOLT11 invoices for the simulator (``bolt11`` package), and Electrum-style decoding."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import bech32
import bolt11
from bolt11 import Bolt11, Feature, FeatureExtra, Features, FeatureState, MilliSatoshi, Tags
from bolt11 import TagChar as T

from liquidityhelper.simulator.errors import electrum

# Electrum's OPTION_TRAMPOLINE_ROUTING_OPT_ELECTRUM is bit 151: optional bit of feature 75.
TRAMPOLINE_ELECTRUM_FEATURE = 75
_FEATURE_NAMES = {
    "var_onion_optin": "VAR_ONION",
    "payment_secret": "PAYMENT_SECRET",
    "basic_mpp": "BASIC_MPP",
}
_TRAMPOLINE_NAME = "OPTION_TRAMPOLINE_ROUTING_OPT_ELECTRUM"
MIN_FINAL_CLTV = 147


@dataclass(slots=True)
class InvoiceSpec:
    """What goes into an invoice; the LNURL modes tweak these fields to build bad ones."""

    currency: str  # "bcrt", "bc", "tb", "tbs"
    payment_hash: str
    payment_secret: str
    timestamp: int
    expiry: int | None
    amount_msat: int | None
    description: str | None = None
    description_hash: str | None = None
    min_final_cltv: int = MIN_FINAL_CLTV
    trampoline_feature: bool = True


def encode(spec: InvoiceSpec, secret_hex: str) -> str:
    """Sign ``spec`` with the payee's key; an expiry of 0 is written as a zero-length field."""
    tags = Tags()
    tags.add(T.payment_hash, spec.payment_hash)
    tags.add(T.payment_secret, spec.payment_secret)
    if spec.description_hash is not None:
        tags.add(T.description_hash, spec.description_hash)
    else:
        tags.add(T.description, spec.description or "")
    tags.add(T.min_final_cltv_expiry, spec.min_final_cltv)
    if spec.expiry is not None:
        tags.add(T.expire_time, spec.expiry)
    features: dict[Feature | FeatureExtra, FeatureState] = {
        Feature.var_onion_optin: FeatureState.required,
        Feature.payment_secret: FeatureState.required,
        Feature.basic_mpp: FeatureState.supported,
    }
    if spec.trampoline_feature:
        features[FeatureExtra(TRAMPOLINE_ELECTRUM_FEATURE)] = FeatureState.supported
    tags.add(T.features, Features.from_feature_list(features))
    amount = MilliSatoshi(spec.amount_msat) if spec.amount_msat else None
    invoice = Bolt11(currency=spec.currency, date=spec.timestamp, tags=tags, amount_msat=amount)
    return str(bolt11.encode(invoice, secret_hex, ignore_exceptions=True))


@dataclass(slots=True)
class Decoded:
    bolt11: str
    currency: str
    payment_hash: str
    payment_secret: str | None
    amount_msat: int | None
    timestamp: int
    expiry: int
    payee: str
    description: str
    description_hash: str | None
    min_final_cltv: int
    features: list[str] = field(default_factory=list)
    tags: list[list[Any]] = field(default_factory=list)  # Electrum's (char, value) list

    def is_expired(self, now: float) -> bool:
        return self.expiry > 0 and now > self.timestamp + self.expiry


def decode(text: str, hrp: str, *, exc_path: str = "electrum.lnaddr.LnDecodeException") -> Decoded:
    """Decode like Electrum's ``lndecode`` and fail with its messages.

    ``exc_path`` is how the daemon names the exception: ``lnpay`` lets LnDecodeException
    through, ``decode_invoice`` wraps it in ``electrum.util.InvoiceError``.
    """
    invoice = text.strip()
    prefix, data5 = bech32.bech32_decode(invoice)
    if prefix is None or data5 is None:
        raise electrum(exc_path, "Bad bech32 checksum")
    if not prefix.startswith("ln"):
        raise electrum(exc_path, "Does not start with ln")
    if not prefix[2:].startswith(hrp):
        raise electrum(exc_path, f"Wrong Lightning invoice HRP {prefix[2:]}, should be {hrp}")
    if len(data5) < 65 * 8 // 5:
        raise electrum(exc_path, "Too short to contain signature")
    try:
        parsed = bolt11.decode(invoice, ignore_exceptions=True)
    except Exception as exc:  # the library's own errors: bad amount, bad tag, bad signature
        raise electrum(exc_path, str(exc) or "bad signature") from exc
    return _from_parsed(invoice, parsed)


def _from_parsed(invoice: str, parsed: Bolt11) -> Decoded:
    if not parsed.has_payment_hash:
        raise electrum("electrum.lnaddr.LnDecodeException", "missing payment hash")
    feats = parsed.features.readable if parsed.features else {}
    names = []
    for name, state in feats.items():
        if name == f"extra_{TRAMPOLINE_ELECTRUM_FEATURE}":
            names.append(_TRAMPOLINE_NAME)
            continue
        base = _FEATURE_NAMES.get(name, name.upper())
        names.append(f"{base}_{'REQ' if state == 'required' else 'OPT'}")
    return Decoded(
        bolt11=invoice,
        currency=parsed.currency,
        payment_hash=parsed.payment_hash,
        payment_secret=parsed.payment_secret,
        amount_msat=int(parsed.amount_msat) if parsed.amount_msat else None,
        timestamp=int(parsed.date),
        expiry=int(parsed.expiry),
        payee=parsed.payee or "",
        description=parsed.description or "",
        description_hash=parsed.description_hash,
        min_final_cltv=int(parsed.min_final_cltv_expiry),
        features=names,
        tags=_tags(parsed),
    )


def _tags(parsed: Bolt11) -> list[list[Any]]:
    """The tagged fields in invoice order, as Electrum's ``lnaddr.tags`` (p, s, n left out)."""
    out: list[list[Any]] = []
    for tag in parsed.tags:
        char = tag.char.value
        if char in ("p", "s", "n"):
            continue
        if char == "9":
            out.append([char, int(tag.data.data.uint)])
        elif char in ("d", "h", "x", "c"):
            out.append([char, tag.data])
    return out


def amount_btc_str(amount_msat: int | None) -> str:
    """Electrum's ``str(lnaddr.amount)``: a Decimal BTC (``"0.0001"``), or ``"None"``."""
    if amount_msat is None:
        return "None"
    return str(Decimal(amount_msat) / Decimal(100_000_000_000))


def debug_json(d: Decoded) -> dict[str, Any]:
    """``decode_invoice``'s answer (Electrum ``Invoice.to_debug_json``)."""
    return {
        "amount_msat": d.amount_msat,
        "message": d.description,
        "time": d.timestamp,
        "exp": d.expiry,
        "outputs": None,
        "height": 0,
        "bip70": None,
        "lightning_invoice": d.bolt11,
        "lnaddr": {
            "pubkey": d.payee,
            "amount_BTC": amount_btc_str(d.amount_msat),
            "rhash": d.payment_hash,
            "payment_secret": d.payment_secret,
            "description": d.description,
            "exp": d.expiry,
            "time": d.timestamp,
            "min_final_cltv_delta": d.min_final_cltv,
            "features": d.features,
            "tags": d.tags,
            "unknown_tags": [],
        },
    }
