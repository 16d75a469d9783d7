"""known_ln_nodes.db: schema, migrations, nodes, observations, blacklist, payees."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from liquidityhelper.nodes.db import DB_FILENAME, MIGRATIONS, NodeDB, NodeDBError
from liquidityhelper.nodes.model import parse_address, to_ts
from liquidityhelper.wallet.base import ChannelState
from tests.nodes_support import T0, channel, memory_db, pk


def test_new_database_has_current_schema_and_wal(tmp_path: Path) -> None:
    db = NodeDB.open_in_dir(tmp_path / "data")
    assert (tmp_path / "data" / DB_FILENAME).exists()
    assert db.schema_version == len(MIGRATIONS)
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.upsert_node(pk(1), source="t", now=T0, alias="one")
    db.close()
    # Reopening migrates nothing and keeps the data.
    again = NodeDB.open(tmp_path / "data" / DB_FILENAME)
    assert again.schema_version == len(MIGRATIONS)
    node = again.get_node(pk(1))
    assert node is not None and node.alias == "one"


def test_database_from_a_newer_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    NodeDB.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(NodeDBError):
        NodeDB.open(path)


def test_upsert_keeps_what_a_source_did_not_say_and_replaces_its_own_addresses() -> None:
    db = memory_db()
    a1, a2, onion = (
        parse_address("198.51.100.1:9735"),
        parse_address("[2001:db8::1]:9735"),
        parse_address("a" * 56 + ".onion:9735"),
    )
    assert a1 and a2 and onion
    assert db.upsert_node(
        pk(1), source="p", now=T0, alias="x", addresses=[a1, onion], capacity_sat=5, first_seen=7
    )
    assert not db.upsert_node(pk(1), source="p", now=T0 + timedelta(days=1), channel_count=12)
    node = db.get_node(pk(1))
    assert node is not None
    assert (node.alias, node.capacity_sat, node.channel_count, node.first_seen) == ("x", 5, 12, 7)
    assert node.updated_at == to_ts(T0 + timedelta(days=1))
    assert node.added_at == to_ts(T0)
    # Clearnet and Tor are kept apart.
    assert [str(a) for a in node.clearnet] == ["198.51.100.1:9735"]
    assert [a.kind for a in node.tor] == ["tor"]
    # A new address list from the same source replaces that source's list, not another's.
    db.upsert_node(pk(1), source="q", now=T0, addresses=[a1])
    db.upsert_node(pk(1), source="p", now=T0 + timedelta(days=2), addresses=[a2])
    node = db.get_node(pk(1))
    assert node is not None
    assert [str(a) for a in node.addresses] == ["[2001:db8::1]:9735", "198.51.100.1:9735"]


def test_trampoline_flag_is_only_changed_by_sources_that_say_so() -> None:
    db = memory_db()
    db.upsert_node(pk(1), source="seed", now=T0, trampoline=True, seeded=True)
    db.upsert_node(pk(1), source="provider", now=T0, capacity_sat=1)
    node = db.get_node(pk(1))
    assert node is not None and node.trampoline and node.seeded


def test_peer_samples_give_uptime_and_channel_history() -> None:
    db = memory_db()
    peer = pk(1)
    point = "ab" * 32 + ":1"
    for hour in range(9):
        online = hour % 4 != 0  # offline at hours 0, 4, 8
        ch = channel(peer, online=online, point=point)
        # A second channel to the same peer and a backup row must not add samples.
        other = channel(peer, online=online)
        backup = channel(pk(2), state=ChannelState.BACKUP)
        db.record_peer_samples("w1", [ch, other, backup], T0 + timedelta(hours=hour))
    end = T0 + timedelta(hours=8)
    stats = db.uptime_stats(peer, timedelta(days=1), end)
    assert (stats.samples, stats.online, stats.hours) == (9, 6, 9)
    assert db.uptime(peer, timedelta(days=1), end) == pytest.approx(2 / 3)
    assert db.uptime(pk(2), timedelta(days=1), T0) is None
    record = db.channel("w1", point)
    assert record is not None
    assert record.opened_at == to_ts(T0)
    assert record.last_online_at == to_ts(T0 + timedelta(hours=7))
    assert record.lifetime_seconds == 8 * 3600
    assert db.channel("w1", backup.channel_point) is None
    # The window limits what counts.
    late = db.uptime_stats(peer, timedelta(hours=2), end)
    assert late.samples == 3


def test_channel_seen_closing_ends_its_life_without_naming_a_closer() -> None:
    db = memory_db()
    point = "cd" * 32 + ":0"
    db.record_peer_samples("w1", [channel(pk(1), point=point)], T0)
    db.record_peer_samples(
        "w1",
        [channel(pk(1), point=point, state=ChannelState.CLOSED, online=False)],
        T0 + timedelta(days=3),
    )
    db.record_peer_samples(
        "w1",
        [channel(pk(1), point=point, state=ChannelState.CLOSED, online=False)],
        T0 + timedelta(days=9),
    )
    record = db.channel("w1", point)
    assert record is not None
    assert record.closed_at == to_ts(T0 + timedelta(days=3))
    assert record.closed_by is None
    assert record.lifetime_seconds == 3 * 86400
    stats = db.channel_stats(pk(1))[pk(1)]
    assert stats.last_closed_on_us_at is None
    assert stats.accepted and stats.open_now == 0


def test_record_channel_closed_knows_only_us_remote_or_unknown() -> None:
    db = memory_db()
    db.record_channel_closed("w1", "p:0", pk(1), "remote", T0, reason="peer force-closed")
    assert db.channel_stats()[pk(1)].last_closed_on_us_at == to_ts(T0)
    with pytest.raises(ValueError):
        db.record_channel_closed("w1", "p:1", pk(1), "them", T0)


def test_open_attempts_count_only_peer_side_failures() -> None:
    db = memory_db()
    db.record_open_attempt("w1", pk(1), False, "DaemonError", T0)
    db.record_open_attempt("w1", pk(1), False, "InsufficientFundsError", T0 + timedelta(seconds=1))
    db.record_open_attempt("w2", pk(1), False, "DaemonError", T0 + timedelta(seconds=2))
    stats = db.failure_stats()[pk(1)]
    assert (stats.consecutive, stats.failures, stats.successes) == (2, 2, 0)
    assert stats.last_failure_at == to_ts(T0) + 2
    db.record_open_attempt("w1", pk(1), True, None, T0 + timedelta(seconds=3), "tx:0")
    stats = db.failure_stats(pk(1))[pk(1)]
    assert (stats.consecutive, stats.successes) == (0, 1)
    record = db.channel("w1", "tx:0")
    assert record is not None and record.state == "opening"
    assert [a.ok for a in db.open_attempts(pk(1))] == [True, False, False, False]


def test_blacklist_entries_expire() -> None:
    db = memory_db()
    db.blacklist(pk(1), "manual: spam", T0 + timedelta(days=1), now=T0)
    db.blacklist(pk(2), "forever", None, now=T0)
    assert set(db.active_blacklist(T0)) == {pk(1), pk(2)}
    later = T0 + timedelta(days=2)
    assert db.blacklist_entry(pk(1), later) is None
    entry = db.blacklist_entry(pk(2), later)
    assert entry is not None and entry.reason == "forever" and entry.until is None
    assert db.unblacklist(pk(2))
    assert db.active_blacklist(later) == {}


def test_learn_payee_adds_a_stub_node() -> None:
    db = memory_db()
    db.learn_payee("Cashout@Example.com", pk(5), T0)
    db.learn_payee("cashout@example.com", pk(5), T0 + timedelta(hours=1))
    db.learn_payee("cashout@example.com", pk(6), T0)
    assert db.payee_pubkeys("cashout@example.com") == [pk(5), pk(6)]
    node = db.get_node(pk(5))
    assert node is not None and node.source == "payee" and node.addresses == ()


def test_import_of_20000_synthetic_nodes_in_one_transaction() -> None:
    db = memory_db()
    data = {
        "nodes": [
            {
                "pubkey": pk(i),
                "alias": f"n{i}",
                "address": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:9735",
                "capacity_sat": i,
                "channel_count": i % 50,
            }
            for i in range(20_000)
        ]
    }
    assert db.import_seed_data(data, "bench", now=T0) == (20_000, 0)
    assert db.node_count() == 20_000
    node = db.get_node(pk(19_999))
    assert node is not None and node.seeded and node.capacity_sat == 19_999
    # Importing again updates in place.
    assert db.import_seed_data(data, "bench", now=T0) == (20_000, 0)
    assert db.node_count() == 20_000
