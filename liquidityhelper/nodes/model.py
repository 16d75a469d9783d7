"""Plain data and parsing shared by the node database, its sources and its providers.

Times are unix seconds (``int``) inside the package; public functions take aware
``datetime`` values and convert with :func:`to_ts` (a naive datetime is read as UTC, so
mixing the two can never raise).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime

# Electrum's hardcoded mainnet trampolines (electrum/trampoline.py): in trampoline mode Electrum
# can connect to these by bare pubkey, so they stay choosable without a known address.
ELECTRUM_HARDCODED_TRAMPOLINES: frozenset[str] = frozenset(
    {
        "03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f",  # ACINQ
        "03ecef675be448b615e6176424070673ef8284e0fd19d8be062a6cb5b130a0a0d1",  # Electrum
        "02ce014625788a61411398f83c945375663972716029ef9d8916719141dc109a1c",  # hodlister
    }
)

_PUBKEY_RE = re.compile(r"^0[23][0-9a-f]{64}$")
_HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ONION_RE = re.compile(r"^[a-z2-7]{16}\.onion$|^[a-z2-7]{56}\.onion$")

ADDRESS_KINDS = ("ipv4", "ipv6", "dns", "tor")


def to_ts(moment: datetime) -> int:
    """Unix seconds of ``moment``; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def from_ts(ts: int | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


def normalize_pubkey(value: object) -> str | None:
    """The lower-case 33-byte compressed pubkey in hex, or None when ``value`` is not one."""
    if not isinstance(value, str):
        return None
    pubkey = value.strip().lower()
    return pubkey if _PUBKEY_RE.match(pubkey) else None


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """One ``host:port`` a node listens on; ``kind`` keeps clearnet and Tor apart."""

    host: str
    port: int
    kind: str  # one of ADDRESS_KINDS

    @property
    def is_tor(self) -> bool:
        return self.kind == "tor"

    def __str__(self) -> str:
        host = f"[{self.host}]" if self.kind == "ipv6" else self.host
        return f"{host}:{self.port}"


def parse_address(value: object) -> NodeAddress | None:
    """Parse ``host:port`` (IPv4, ``[IPv6]:port``, DNS name or .onion); None when invalid."""
    if not isinstance(value, str) or not value or len(value) > 300:
        return None
    text = value.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            return None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            return None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    port = int(port_text)
    kind = _host_kind(host.lower())
    return None if kind is None else NodeAddress(host.lower(), port, kind)


def _host_kind(host: str) -> str | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return "ipv4" if ip.version == 4 else "ipv6"
    if host.endswith(".onion"):
        return "tor" if _ONION_RE.match(host) else None
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or labels[-1].isdigit():
        return None
    return "dns" if all(_HOST_LABEL_RE.match(label) for label in labels) else None


def parse_connection_string(value: str) -> tuple[str, NodeAddress]:
    """Split ``pubkey@host:port``; raises ValueError when either half is invalid."""
    pubkey_text, sep, address_text = value.strip().partition("@")
    pubkey = normalize_pubkey(pubkey_text)
    if not sep or pubkey is None:
        raise ValueError(f"not a pubkey@host:port connection string: {value!r}")
    address = parse_address(address_text)
    if address is None:
        raise ValueError(f"bad address in connection string: {value!r}")
    return pubkey, address


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What a source or provider says about a node; None means "not told", never "zero"."""

    pubkey: str
    alias: str | None = None
    # None: the source did not say (rankings); (): it says the node announces no address.
    addresses: tuple[NodeAddress, ...] | None = None
    capacity_sat: int | None = None
    channel_count: int | None = None
    first_seen: int | None = None  # unix seconds the network first saw the node
    trampoline: bool | None = None  # only curated lists (seeds, imports) ever say True


def clean_alias(value: object, limit: int = 64) -> str | None:
    """An alias fit for a log line and a terminal: control characters dropped, bounded."""
    if not isinstance(value, str):
        return None
    text = "".join(ch for ch in value if ch.isprintable()).strip()
    return text[:limit] or None


def as_count(value: object) -> int | None:
    """A non-negative int from an int or a decimal string (providers send both); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
