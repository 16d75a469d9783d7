"""Seed lists as data: their format, strict parsing, the shipped list's text, reading a file.

Pure of the node database (``nodes.db`` imports this module; ``nodes.sources`` puts a seed
into a database).

Seed format (JSON, UTF-8)::

    {
      "about": "free text (optional)",
      "version": 1,                      (optional int)
      "nodes": [
        {
          "pubkey": "02…|03…",           required: 33-byte compressed key, 66 hex characters
          "alias": "ACINQ",              optional: text, at most 64 characters
          "address": "3.33.236.230:9735",  optional: host:port (IPv4, [IPv6]:port, DNS, .onion)
          "address_dns": "node.acinq.co:9735",  optional: a DNS name:port
          "addresses": ["host:port", …], optional: more addresses
          "trampoline": true,            optional bool: a trampoline node (Electrum can only send
                                         through channels to trampolines in trampoline mode)
          "capacity_sat": 123,           optional int >= 0
          "channel_count": 10,           optional int >= 0
          "first_seen": 1514764800,      optional: unix seconds, or an ISO-8601 date/time
          "note": "free text"            optional
        }
      ]
    }

Entries are validated strictly: an unknown key, a wrong type or a bad value skips that entry
with a WARNING (the rest still import). Unknown top-level keys are ignored with a WARNING. A
document without a ``nodes`` list imports nothing (:class:`SeedFormatError` from
:func:`parse_seed_data`, a WARNING and ``(0, 0)`` from ``NodeDB.import_seed_data``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import structlog

from liquidityhelper.nodes.model import (
    NodeAddress,
    NodeInfo,
    normalize_pubkey,
    parse_address,
    to_ts,
)

log = structlog.get_logger(__name__)

PACKAGE_SEED_SOURCE = "package-seed"
_ENTRY_KEYS = frozenset(
    {
        "pubkey",
        "alias",
        "address",
        "address_dns",
        "addresses",
        "trampoline",
        "capacity_sat",
        "channel_count",
        "first_seen",
        "note",
    }
)
_TOP_KEYS = frozenset({"about", "version", "updated", "nodes"})
_MAX_DETAILED_WARNINGS = 20


class SeedFormatError(ValueError):
    """The document as a whole is not a seed list (no ``nodes`` list)."""


class SeedEntryError(ValueError):
    """One entry is invalid; the message says why."""


@dataclass(frozen=True, slots=True)
class ParsedSeed:
    nodes: list[NodeInfo]
    skipped: int


def parse_seed_data(data: Any, source: str) -> ParsedSeed:
    """Validate a decoded seed document; bad entries are skipped with a WARNING."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise SeedFormatError("a seed list is a JSON object with a 'nodes' list")
    extra = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if extra:
        log.warning("seed_unknown_keys_ignored", source=source, keys=",".join(extra[:10]))
    nodes: list[NodeInfo] = []
    seen: set[str] = set()
    skipped = 0
    for index, raw in enumerate(data["nodes"]):
        try:
            info = parse_seed_entry(raw)
            if info.pubkey in seen:
                raise SeedEntryError("duplicate pubkey")
        except SeedEntryError as exc:
            skipped += 1
            if skipped <= _MAX_DETAILED_WARNINGS:
                log.warning("seed_entry_skipped", source=source, index=index, reason=str(exc))
            continue
        seen.add(info.pubkey)
        nodes.append(info)
    if skipped > _MAX_DETAILED_WARNINGS:
        log.warning("seed_entries_skipped", source=source, skipped=skipped)
    return ParsedSeed(nodes, skipped)


def parse_seed_entry(raw: Any) -> NodeInfo:
    """One entry of the seed format; raises :class:`SeedEntryError` when anything is off."""
    if not isinstance(raw, dict):
        raise SeedEntryError("entry is not an object")
    unknown = sorted(str(k) for k in raw if k not in _ENTRY_KEYS)
    if unknown:
        raise SeedEntryError(f"unknown keys: {','.join(unknown[:5])}")
    pubkey = normalize_pubkey(raw.get("pubkey"))
    if pubkey is None:
        raise SeedEntryError("pubkey missing or not 66 hex characters starting 02/03")
    alias = raw.get("alias")
    if alias is not None and (
        not isinstance(alias, str) or len(alias) > 64 or not alias.isprintable()
    ):
        raise SeedEntryError("alias must be printable text of at most 64 characters")
    note = raw.get("note")
    if note is not None and not isinstance(note, str):
        raise SeedEntryError("note must be text")
    trampoline = raw.get("trampoline")
    if trampoline is not None and not isinstance(trampoline, bool):
        raise SeedEntryError("trampoline must be true or false")
    return NodeInfo(
        pubkey=pubkey,
        alias=alias or None,
        addresses=_entry_addresses(raw),
        capacity_sat=_optional_count(raw, "capacity_sat"),
        channel_count=_optional_count(raw, "channel_count"),
        first_seen=_first_seen(raw.get("first_seen")),
        trampoline=trampoline,
    )


def _entry_addresses(raw: dict[str, Any]) -> tuple[NodeAddress, ...] | None:
    texts: list[tuple[str, Any]] = []
    for key in ("address", "address_dns"):
        if key in raw:
            texts.append((key, raw[key]))
    if "addresses" in raw:
        if not isinstance(raw["addresses"], list):
            raise SeedEntryError("addresses must be a list")
        texts.extend(("addresses", item) for item in raw["addresses"])
    if not texts:
        return None
    out: list[NodeAddress] = []
    for key, text in texts:
        address = parse_address(text)
        if address is None:
            raise SeedEntryError(f"{key}: not a valid host:port: {str(text)[:80]!r}")
        if key == "address_dns" and address.kind != "dns":
            raise SeedEntryError("address_dns must be a DNS name:port")
        if address not in out:
            out.append(address)
    return tuple(out)


def _optional_count(raw: dict[str, Any], key: str) -> int | None:
    if key not in raw or raw[key] is None:
        return None
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SeedEntryError(f"{key} must be a non-negative integer")
    return value


def _first_seen(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if 1_230_768_000 <= value <= 32_503_680_000:  # 2009 .. 3000: unix seconds
            return value
        raise SeedEntryError("first_seen out of range (unix seconds expected)")
    if isinstance(value, str):
        try:
            if len(value) == 10:
                day = date.fromisoformat(value)
                return to_ts(datetime(day.year, day.month, day.day, tzinfo=UTC))
            return to_ts(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            pass
    raise SeedEntryError("first_seen must be unix seconds or an ISO-8601 date")


# ---------------------------------------------------------------------------------------------
# The shipped list and files
# ---------------------------------------------------------------------------------------------


def package_seed_text() -> str:
    """The seed list shipped in the package (``liquidityhelper/data/seed_nodes.json``)."""
    return (resources.files("liquidityhelper") / "data" / "seed_nodes.json").read_text("utf-8")


def read_seed_file(path: str | Path) -> Any:
    """Decode a seed file; raises OSError or ValueError (json) for the caller to report."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
