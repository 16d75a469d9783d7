"""Peer choice: exclusions, cooldowns, the score's preferences, determinism."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.nodes.model import ELECTRUM_HARDCODED_TRAMPOLINES, parse_address
from liquidityhelper.nodes.ranking import PeerChoice, choose_peers, cooldown_seconds, explain
from liquidityhelper.nodes.settings import NodeSettings
from liquidityhelper.nodes.sources import ensure_package_seed
from tests.nodes_support import (
    T0,
    YEAR,
    add_provider_node,
    channel,
    memory_db,
    pk,
    sample_hourly,
    settings,
)

ACINQ = "03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f"


def choose(
    db: NodeDB,
    count: int = 10,
    *,
    s: NodeSettings | None = None,
    now: Any = T0,
    existing: set[str] | None = None,
    trampoline: bool = False,
    prefer: list[str] | None = None,
) -> list[PeerChoice]:
    return choose_peers(
        db,
        "w1",
        count,
        settings=s or settings(),
        now=now,
        existing_peers=existing or set(),
        require_trampoline=trampoline,
        prefer_pubkeys=prefer or [],
    )


def keys(choices: list[PeerChoice]) -> list[str]:
    return [c.pubkey for c in choices]


def test_failed_open_starts_an_exponential_cooldown() -> None:
    db = memory_db()
    add_provider_node(db, pk(1))
    s = settings(open_failure_cooldown_base_seconds=3600, open_failure_cooldown_max_seconds=10_000)
    db.record_open_attempt("w1", pk(1), False, "DaemonError", T0)
    assert keys(choose(db, s=s, now=T0 + timedelta(seconds=3599))) == []
    evaluation = explain(db, pk(1), s, T0 + timedelta(seconds=3599))
    assert evaluation is not None and evaluation.exclusions[0].startswith("cooldown")
    assert keys(choose(db, s=s, now=T0 + timedelta(seconds=3600))) == [pk(1)]
    # A second failure doubles it; a third hits the maximum.
    db.record_open_attempt("w1", pk(1), False, "DaemonError", T0 + timedelta(hours=1))
    assert keys(choose(db, s=s, now=T0 + timedelta(hours=2, seconds=-1))) == []
    assert keys(choose(db, s=s, now=T0 + timedelta(hours=3))) == [pk(1)]
    assert [cooldown_seconds(n, s) for n in range(5)] == [0, 3600, 7200, 10_000, 10_000]
    # Past the cooldown the failures still cost score; a success clears them.
    penalised = choose(db, s=s, now=T0 + timedelta(hours=3))[0]
    assert any("failed open" in r for r in penalised.reasons)
    db.record_open_attempt("w1", pk(1), True, None, T0 + timedelta(hours=3), "tx:0")
    cleared = choose(db, s=s, now=T0 + timedelta(hours=3))[0]
    assert cleared.score > penalised.score


def test_errors_that_are_not_the_peers_fault_start_no_cooldown() -> None:
    db = memory_db()
    add_provider_node(db, pk(1))
    db.record_open_attempt("w1", pk(1), False, "InsufficientFundsError", T0)
    db.record_open_attempt("w1", pk(1), False, "TransientError", T0)
    assert keys(choose(db)) == [pk(1)]


def test_repeated_failures_blacklist_the_node_for_blacklist_days() -> None:
    db = memory_db()
    add_provider_node(db, pk(1))
    s = settings(
        max_failures_before_blacklist=3,
        blacklist_days=10,
        open_failure_cooldown_base_seconds=60,
        open_failure_cooldown_max_seconds=60,
    )
    for i in range(3):
        db.record_open_attempt("w1", pk(1), False, "DaemonError", T0 + timedelta(minutes=i))
    evaluation = explain(db, pk(1), s, T0 + timedelta(days=9))
    assert evaluation is not None
    assert evaluation.exclusions[0].startswith("repeated_failures")
    assert keys(choose(db, s=s, now=T0 + timedelta(days=10, minutes=3))) == [pk(1)]


def test_friendly_long_lived_well_connected_nodes_rank_first() -> None:
    db = memory_db()
    friendly, plain, small, young = pk(1), pk(2), pk(3), pk(4)
    for key in (friendly, plain):
        add_provider_node(db, key, channels=100, capacity=10**9, age=3 * YEAR)
    add_provider_node(db, small, channels=11, capacity=2_000_000, age=3 * YEAR)
    add_provider_node(db, young, channels=100, capacity=10**9, age=YEAR + timedelta(days=10))
    # `friendly` accepted our channel and kept it up (and online) for 40 days.
    db.record_open_attempt("w2", friendly, True, None, T0 - timedelta(days=41), "f:0")
    point = "f" * 64 + ":0"
    start = T0 - timedelta(days=40)
    for day in range(41):
        db.record_peer_samples("w2", [channel(friendly, point=point)], start + timedelta(days=day))
    ranked = keys(choose(db))
    assert ranked == [friendly, plain, young, small]
    best = explain(db, friendly, settings(), T0)
    assert best is not None and best.friendly
    assert any("accepted a channel" in r for r in best.reasons)


def test_low_observed_uptime_ranks_below_unknown_uptime() -> None:
    db = memory_db()
    flaky, unknown = pk(1), pk(2)
    for key in (flaky, unknown):
        add_provider_node(db, key)
    sample_hourly(
        db,
        "w2",
        lambda i: [channel(flaky, online=i % 10 == 0, point="a:0")],
        T0 - timedelta(days=2),
        48,
    )
    assert keys(choose(db)) == [unknown, flaky]


def test_the_cashout_node_is_preferred() -> None:
    db = memory_db()
    add_provider_node(db, pk(1), channels=2000, capacity=10**11)
    add_provider_node(db, pk(2), channels=20)
    db.learn_payee("cash@example.com", pk(2), T0)
    prefer = db.payee_pubkeys("cash@example.com")
    chosen = choose(db, prefer=prefer)
    assert keys(chosen) == [pk(2), pk(1)]
    assert "cashout node" in chosen[0].reasons[0]


def test_trampoline_mode_only_offers_trampolines_even_without_provider_data() -> None:
    db = memory_db()
    ensure_package_seed(db, T0)
    add_provider_node(db, pk(1), channels=5000, capacity=10**12)
    chosen = choose(db, trampoline=True)
    assert set(keys(chosen)) == set(ELECTRUM_HARDCODED_TRAMPOLINES)
    assert all(c.trampoline for c in chosen)
    acinq = next(c for c in chosen if c.pubkey == ACINQ)
    assert acinq.connection_string == f"{ACINQ}@node.acinq.co:9735"
    assert acinq.alternatives == (f"{ACINQ}@3.33.236.230:9735",)
    # Without trampoline mode the well-connected provider node competes too.
    assert pk(1) in keys(choose(db, trampoline=False))


def test_a_hardcoded_trampoline_without_any_address_connects_by_bare_pubkey() -> None:
    db = memory_db()
    db.import_seed_data({"nodes": [{"pubkey": ACINQ, "trampoline": True}]}, "seed", now=T0)
    db.import_seed_data({"nodes": [{"pubkey": pk(9), "trampoline": True}]}, "seed", now=T0)
    chosen = choose(db, trampoline=True)
    assert [(c.pubkey, c.connection_string) for c in chosen] == [(ACINQ, ACINQ)]
    other = explain(db, pk(9), settings(), T0, require_trampoline=True)
    assert other is not None and other.exclusions == ["no_address: no address known"]


def test_static_trampolines_count_in_trampoline_mode() -> None:
    db = memory_db()
    s = settings(
        static_peers=[f"{pk(1)}@127.0.0.1:9735"],
        static_trampoline_peers=[f"{pk(2)}@127.0.0.1:9736"],
    )
    assert [c.connection_string for c in choose(db, s=s, trampoline=True)] == [
        f"{pk(2)}@127.0.0.1:9736"
    ]
    assert set(keys(choose(db, s=s))) == {pk(1), pk(2)}


def test_tor_only_nodes_need_allow_tor_and_clearnet_is_preferred() -> None:
    db = memory_db()
    onion = parse_address("d" * 56 + ".onion:9735")
    clear = parse_address("198.51.100.3:9735")
    assert onion and clear
    add_provider_node(db, pk(1), address=None)
    db.upsert_node(pk(1), source="p2", now=T0, addresses=[onion])
    add_provider_node(db, pk(2), address=None)
    db.upsert_node(pk(2), source="p2", now=T0 + timedelta(hours=1), addresses=[onion, clear])
    assert [c.connection_string for c in choose(db)] == [f"{pk(2)}@198.51.100.3:9735"]
    allowed = choose(db, s=settings(allow_tor_peers=True))
    by_key = {c.pubkey: c for c in allowed}
    assert by_key[pk(1)].connection_string.endswith(".onion:9735")
    assert by_key[pk(2)].connection_string == f"{pk(2)}@198.51.100.3:9735"


def test_existing_peers_are_skipped_unless_allowed() -> None:
    db = memory_db()
    add_provider_node(db, pk(1))
    add_provider_node(db, pk(2))
    assert keys(choose(db, existing={pk(1)})) == [pk(2)]
    s = settings(allow_same_peer_channels=True)
    assert set(keys(choose(db, s=s, existing={pk(1)}))) == {pk(1), pk(2)}


def test_blacklist_and_minimums() -> None:
    db = memory_db()
    add_provider_node(db, pk(1))
    add_provider_node(db, pk(2), capacity=999_999)
    add_provider_node(db, pk(3), channels=9)
    add_provider_node(db, pk(4), age=YEAR - timedelta(days=10))
    add_provider_node(db, pk(5), age=None)
    db.blacklist(pk(1), "manual", T0 + timedelta(days=1), now=T0)
    assert keys(choose(db)) == []
    assert keys(choose(db, now=T0 + timedelta(days=1))) == [pk(1)]
    loose = settings(min_capacity_sat=0, min_channel_count=0, min_age_days=0)
    assert set(keys(choose(db, s=loose))) == {pk(2), pk(3), pk(4)}  # pk(5): age unknown
    # Seeded nodes are exempt from the minimums.
    db.import_seed_data({"nodes": [{"pubkey": pk(5)}]}, "seed", now=T0)
    assert pk(5) in keys(choose(db))


def test_only_a_known_remote_close_counts_as_closed_on_us() -> None:
    db = memory_db()
    add_provider_node(db, pk(1))
    add_provider_node(db, pk(2))
    db.record_channel_closed("w1", "a:0", pk(1), None, T0 - timedelta(days=1))
    db.record_channel_closed("w1", "b:0", pk(2), "remote", T0 - timedelta(days=1))
    assert keys(choose(db)) == [pk(1)]
    evaluation = explain(db, pk(2), settings(), T0)
    assert evaluation is not None and evaluation.exclusions[0].startswith("closed_on_us")


def test_a_broken_record_does_not_stop_the_choice() -> None:
    db = memory_db()
    add_provider_node(db, pk(1))
    add_provider_node(db, pk(2))
    add_provider_node(db, pk(3))
    db.conn.execute("UPDATE nodes SET first_seen = 'not a date' WHERE pubkey = ?", (pk(2),))
    db.conn.execute(
        "UPDATE nodes SET first_seen = NULL, capacity_sat = 'x' WHERE pubkey = ?", (pk(3),)
    )
    db.import_seed_data({"nodes": [{"pubkey": pk(3)}]}, "seed", now=T0)  # seeded: no minimums
    assert keys(choose(db)) == [pk(1), pk(3)]


def test_same_database_same_choice_ties_by_pubkey() -> None:
    db = memory_db()
    for n in (5, 3, 9, 1):
        add_provider_node(db, pk(n))
    first = choose(db, 3)
    assert keys(first) == [pk(1), pk(3), pk(5)]
    assert choose(db, 3) == first
    assert len({c.pubkey for c in choose(db, 10)}) == 4
    assert choose(db, 0) == []
