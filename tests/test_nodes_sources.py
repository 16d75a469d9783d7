"""Seed lists: the shipped one, strict validation, idempotent seeding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from liquidityhelper.nodes.model import ELECTRUM_HARDCODED_TRAMPOLINES
from liquidityhelper.nodes.sources import (
    SeedFormatError,
    ensure_package_seed,
    package_seed_text,
    parse_seed_data,
)
from tests.nodes_support import T0, memory_db, pk

GOOD = {"pubkey": pk(1), "alias": "good", "address": "198.51.100.1:9735"}


def test_shipped_seed_list_is_valid_and_marks_electrums_trampolines() -> None:
    parsed = parse_seed_data(json.loads(package_seed_text()), "package")
    assert parsed.skipped == 0
    assert len(parsed.nodes) >= 12
    trampolines = {n.pubkey for n in parsed.nodes if n.trampoline}
    assert trampolines == set(ELECTRUM_HARDCODED_TRAMPOLINES)
    acinq = next(n for n in parsed.nodes if n.alias == "ACINQ")
    assert acinq.addresses is not None
    assert {a.kind for a in acinq.addresses} == {"ipv4", "dns"}


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("not an object", "not an object"),
        ({"alias": "no key"}, "pubkey"),
        ({"pubkey": "04" + "00" * 32}, "pubkey"),
        ({"pubkey": pk(2)[:-1]}, "pubkey"),
        ({"pubkey": pk(2), "colour": "red"}, "unknown keys"),
        ({"pubkey": pk(2), "address": "198.51.100.1"}, "address"),
        ({"pubkey": pk(2), "address": "198.51.100.1:70000"}, "address"),
        ({"pubkey": pk(2), "address": "bad host!:9735"}, "address"),
        ({"pubkey": pk(2), "address_dns": "198.51.100.1:9735"}, "address_dns"),
        ({"pubkey": pk(2), "addresses": "198.51.100.1:9735"}, "list"),
        ({"pubkey": pk(2), "trampoline": "yes"}, "trampoline"),
        ({"pubkey": pk(2), "alias": "x" * 65}, "alias"),
        ({"pubkey": pk(2), "alias": "bell\x07"}, "alias"),
        ({"pubkey": pk(2), "capacity_sat": -1}, "capacity_sat"),
        ({"pubkey": pk(2), "channel_count": True}, "channel_count"),
        ({"pubkey": pk(2), "first_seen": "yesterday"}, "first_seen"),
        ({"pubkey": pk(2), "first_seen": 12}, "first_seen"),
        (GOOD, "duplicate"),
    ],
)
def test_a_bad_entry_is_skipped_with_a_warning_and_the_rest_imports(entry: Any, why: str) -> None:
    db = memory_db()
    data = {"nodes": [GOOD, entry, {"pubkey": pk(3)}]}
    with capture_logs() as logs:
        assert db.import_seed_data(data, "test", now=T0) == (2, 1)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["event"] == "seed_entry_skipped"
    assert warnings[0]["index"] == 1
    assert why in warnings[0]["reason"]
    assert db.get_node(pk(1)) is not None and db.get_node(pk(3)) is not None
    assert db.get_node(pk(2)) is None


def test_valid_optional_fields_are_kept() -> None:
    entry = {
        "pubkey": " " + pk(0xABCDEF).upper(),
        "addresses": ["[2001:db8::2]:9735", "b" * 56 + ".onion:9735"],
        "capacity_sat": 10,
        "channel_count": 2,
        "first_seen": "2020-01-02",
        "note": "ok",
        "trampoline": False,
    }
    db = memory_db()
    assert db.import_seed_data({"nodes": [entry]}, "t", now=T0) == (1, 0)
    node = db.get_node(pk(0xABCDEF))
    assert node is not None
    assert node.first_seen == 1_577_923_200
    assert [a.kind for a in node.clearnet] == ["ipv6"] and len(node.tor) == 1
    assert not node.trampoline and node.seeded


@pytest.mark.parametrize("document", [[GOOD], {"nodes": "x"}, "nodes", None, {"about": "no"}])
def test_a_document_that_is_not_a_seed_list_imports_nothing(document: Any) -> None:
    with pytest.raises(SeedFormatError):
        parse_seed_data(document, "t")
    db = memory_db()
    with capture_logs() as logs:
        assert db.import_seed_data(document, "t", now=T0) == (0, 0)
    assert [e["event"] for e in logs] == ["seed_rejected"]
    assert db.node_count() == 0


def test_unknown_top_level_keys_only_warn() -> None:
    with capture_logs() as logs:
        parsed = parse_seed_data({"nodes": [GOOD], "homepage": "x"}, "t")
    assert len(parsed.nodes) == 1
    assert logs[0]["event"] == "seed_unknown_keys_ignored"


def test_package_seed_is_imported_once_and_is_trusted() -> None:
    db = memory_db()
    imported, skipped = ensure_package_seed(db, T0)
    assert imported >= 12 and skipped == 0
    assert ensure_package_seed(db, T0) == (0, 0)
    for pubkey in ELECTRUM_HARDCODED_TRAMPOLINES:
        node = db.get_node(pubkey)
        assert node is not None and node.trampoline and node.seeded
