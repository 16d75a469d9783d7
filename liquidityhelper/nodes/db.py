"""``known_ln_nodes.db``: what we know about Lightning nodes and what we saw them do.

Stdlib ``sqlite3`` in WAL mode, a ``schema_version`` table and a list of migrations. Times are
stored as unix seconds; public methods take aware ``datetime`` values (naive ones are read as
UTC). Tables:

- ``nodes``: pubkey, alias, capacity, channel count, first seen by the network, when we first
  learned of it and from whom, who last told us about it and when, trampoline and seeded flags.
- ``node_addresses``: host, port and kind (ipv4, ipv6, dns, tor) per node and per source, so
  clearnet and Tor stay apart and a provider's refresh replaces only its own addresses.
- ``channels``: every channel of ours we saw (per wallet): when first seen, first seen open,
  last seen, last seen with its peer online, when it stopped, who closed it (when known).
- ``peer_uptime``: our samples of each peer's state, aggregated per wallet, peer and hour.
- ``open_attempts`` and ``close_attempts``: each attempt with its outcome and error class.
- ``blacklist``: explicit entries with a reason and an optional expiry.
- ``payees``: the node behind a lightning address (payee of the invoices it returned).
- ``node_refresh``, ``provider_jobs``, ``throttle_requests``, ``throttle_state``: provider
  bookkeeping, persisted so that a restart does not reset any throttle.

Bounded growth: uptime buckets older than 400 days, open attempts older than 400 days and
throttle rows older than an hour are pruned as new rows arrive.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from liquidityhelper.nodes.model import (
    ADDRESS_KINDS,
    NodeAddress,
    NodeInfo,
    normalize_pubkey,
    to_ts,
)
from liquidityhelper.nodes.seedfile import SeedFormatError, parse_seed_data, read_seed_file
from liquidityhelper.wallet.base import Channel, ChannelState

log = structlog.get_logger(__name__)

DB_FILENAME = "known_ln_nodes.db"

# Failed opens with these error classes say nothing about the peer (our funds, our wallet,
# Bitcart being down), so they neither start a cooldown nor count toward a blacklist.
NEUTRAL_OPEN_ERRORS: frozenset[str] = frozenset(
    {
        "InsufficientFundsError",
        "BelowPeerMinimum",
        "OurFundsLikely",
        "LightningUnsupportedError",
        "AuthError",
        "NotFoundError",
        "TransientError",
        "ChannelsUnavailableError",
        "dry_run",
    }
)
CLOSED_BY_VALUES = frozenset({"us", "remote"})
# Within one source: a DNS name (kept current by its operator) before IPs, clearnet before Tor.
_ADDRESS_PREFERENCE = {"dns": 0, "ipv4": 1, "ipv6": 2, "tor": 3}
_PRUNE_SECONDS = 400 * 86400

_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE nodes (
    pubkey TEXT PRIMARY KEY,
    alias TEXT,
    capacity_sat INTEGER,
    channel_count INTEGER,
    first_seen INTEGER,
    added_at INTEGER NOT NULL,
    first_source TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    trampoline INTEGER,
    seeded INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE node_addresses (
    pubkey TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (pubkey, host, port, source)
);
CREATE TABLE channels (
    wallet_id TEXT NOT NULL,
    channel_point TEXT NOT NULL,
    pubkey TEXT NOT NULL,
    capacity_sat INTEGER,
    state TEXT NOT NULL,
    first_seen_at INTEGER NOT NULL,
    opened_at INTEGER,
    last_seen_at INTEGER NOT NULL,
    last_online_at INTEGER,
    closed_at INTEGER,
    closed_by TEXT,
    close_reason TEXT,
    PRIMARY KEY (wallet_id, channel_point)
);
CREATE INDEX channels_pubkey ON channels (pubkey);
CREATE TABLE peer_uptime (
    wallet_id TEXT NOT NULL,
    pubkey TEXT NOT NULL,
    hour INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    online INTEGER NOT NULL,
    PRIMARY KEY (wallet_id, pubkey, hour)
);
CREATE INDEX peer_uptime_pubkey ON peer_uptime (pubkey, hour);
CREATE TABLE open_attempts (
    id INTEGER PRIMARY KEY,
    wallet_id TEXT NOT NULL,
    pubkey TEXT NOT NULL,
    ts INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    error_class TEXT,
    channel_point TEXT
);
CREATE INDEX open_attempts_pubkey ON open_attempts (pubkey, ts);
CREATE TABLE close_attempts (
    id INTEGER PRIMARY KEY,
    wallet_id TEXT NOT NULL,
    channel_point TEXT NOT NULL,
    pubkey TEXT NOT NULL,
    ts INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    reason TEXT NOT NULL,
    error_class TEXT,
    txid TEXT
);
CREATE INDEX close_attempts_wallet ON close_attempts (wallet_id, ts);
CREATE TABLE blacklist (
    pubkey TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    since INTEGER NOT NULL,
    until INTEGER,
    source TEXT NOT NULL
);
CREATE TABLE payees (
    address TEXT NOT NULL,
    pubkey TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    times INTEGER NOT NULL,
    PRIMARY KEY (address, pubkey)
);
CREATE TABLE node_refresh (
    pubkey TEXT NOT NULL,
    provider TEXT NOT NULL,
    last_attempt_at INTEGER,
    last_success_at INTEGER,
    PRIMARY KEY (pubkey, provider)
);
CREATE TABLE provider_jobs (
    provider TEXT NOT NULL,
    job TEXT NOT NULL,
    last_attempt_at INTEGER,
    last_success_at INTEGER,
    PRIMARY KEY (provider, job)
);
CREATE TABLE throttle_requests (key TEXT NOT NULL, ts INTEGER NOT NULL);
CREATE INDEX throttle_requests_key ON throttle_requests (key, ts);
CREATE TABLE throttle_state (key TEXT PRIMARY KEY, blocked_until INTEGER NOT NULL);
"""

# Index i holds the script that takes the schema from version i to i + 1. Append, never edit.
MIGRATIONS: list[str] = [
    _SCHEMA_V1,
    # The first sample that saw an OPEN channel's peer offline since it was last seen online
    # (NULL while online): a gap in our own samples (our node down, liquidityhelper stopped)
    # must not count as the peer's time offline.
    "ALTER TABLE channels ADD COLUMN offline_seen_at INTEGER;",
]


class NodeDBError(Exception):
    """The database cannot be used (e.g. written by a newer version of this program)."""


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeRecord:
    pubkey: str
    alias: str | None
    capacity_sat: int | None
    channel_count: int | None
    first_seen: int | None  # unix s the network first saw it (provider/seed data), if known
    added_at: int  # unix s this database learned of it
    first_source: str
    source: str  # who told us last …
    updated_at: int  # … and when
    trampoline: bool
    seeded: bool  # from a curated list (package seed, seed URL, import)
    addresses: tuple[NodeAddress, ...]  # freshest source first; then dns, ipv4, ipv6, tor

    @property
    def clearnet(self) -> tuple[NodeAddress, ...]:
        return tuple(a for a in self.addresses if not a.is_tor)

    @property
    def tor(self) -> tuple[NodeAddress, ...]:
        return tuple(a for a in self.addresses if a.is_tor)


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    wallet_id: str
    channel_point: str
    pubkey: str
    capacity_sat: int | None
    state: str
    first_seen_at: int
    opened_at: int | None  # first seen OPEN
    last_seen_at: int
    last_online_at: int | None
    closed_at: int | None  # first seen closing/closed, or recorded closed
    closed_by: str | None  # "us", "remote", or None when unknown (Electrum cannot tell)
    close_reason: str | None
    offline_seen_at: int | None = None  # first sample seeing its peer offline, since online

    @property
    def lifetime_seconds(self) -> int:
        """How long it was (or has been) open, from our own observations."""
        if self.opened_at is None:
            return 0
        end = self.closed_at if self.closed_at is not None else self.last_seen_at
        return max(0, end - self.opened_at)


@dataclass(frozen=True, slots=True)
class BlacklistEntry:
    pubkey: str
    reason: str
    since: int
    until: int | None  # None: until removed
    source: str


@dataclass(frozen=True, slots=True)
class OpenAttempt:
    wallet_id: str
    pubkey: str
    ts: int
    ok: bool
    error_class: str | None
    channel_point: str | None


@dataclass(frozen=True, slots=True)
class FailureStats:
    consecutive: int  # peer-side failures since the last success
    last_failure_at: int | None
    failures: int  # all peer-side failures on record
    successes: int


@dataclass(frozen=True, slots=True)
class UptimeStats:
    samples: int
    online: int
    hours: int  # distinct hours with at least one sample
    first_hour: int | None  # unix hour (ts // 3600) of the earliest sample in the window

    @property
    def ratio(self) -> float | None:
        return None if self.samples <= 0 else self.online / self.samples


@dataclass(frozen=True, slots=True)
class ChannelStats:
    channels: int  # channels of ours with this peer ever seen
    accepted: bool  # it accepted at least one channel from us
    longest_lifetime_s: int
    open_now: int
    last_closed_on_us_at: int | None  # only closes known to be the peer's


def _int(value: Any) -> int | None:
    """An int from a column that should hold one; garbage reads as unknown, never raises."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 2**62:
        return int(value)
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------------------------------------
# The database
# ---------------------------------------------------------------------------------------------


class NodeDB:
    """One connection to ``known_ln_nodes.db`` (or ``:memory:``). Not for concurrent threads."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA busy_timeout = 5000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._migrate()

    @classmethod
    def open(cls, path: str | Path) -> NodeDB:
        """Open (creating when missing) the database at ``path``; ``":memory:"`` works."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        return cls(conn)

    @classmethod
    def open_in_dir(cls, data_dir: str | Path) -> NodeDB:
        return cls.open(Path(data_dir) / DB_FILENAME)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> NodeDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        """The raw connection, for tests and one-off maintenance."""
        return self._conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # --- schema --------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        row = self._conn.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        self._conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        if self._conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
            self._conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise NodeDBError(
                f"{DB_FILENAME} has schema version {version}; this program knows "
                f"{len(MIGRATIONS)}. Use a newer liquidityhelper."
            )
        for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # One script per transaction: a crash mid-migration leaves the old version intact.
            self._conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nUPDATE schema_version SET version = {target};\n"
                "COMMIT;"
            )
            log.info("node_db_migrated", version=target)

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # --- nodes ---------------------------------------------------------------------------

    def upsert_node(
        self,
        pubkey: str,
        *,
        source: str,
        now: datetime,
        alias: str | None = None,
        addresses: Iterable[NodeAddress] | None = None,
        capacity_sat: int | None = None,
        channel_count: int | None = None,
        first_seen: int | None = None,
        trampoline: bool | None = None,
        seeded: bool = False,
    ) -> bool:
        """Insert or update one node; None fields keep what we had. True when it was new.

        ``addresses`` (when given) replace the addresses this ``source`` told us before.
        """
        key = normalize_pubkey(pubkey)
        if key is None:
            raise ValueError(f"not a node pubkey: {pubkey!r}")
        info = NodeInfo(
            pubkey=key,
            alias=alias,
            addresses=None if addresses is None else tuple(addresses),
            capacity_sat=capacity_sat,
            channel_count=channel_count,
            first_seen=first_seen,
            trampoline=trampoline,
        )
        added, _ = self.upsert_nodes([info], source=source, now=now, seeded=seeded)
        return added == 1

    def upsert_nodes(
        self, infos: Iterable[NodeInfo], *, source: str, now: datetime, seeded: bool = False
    ) -> tuple[int, int]:
        """Insert or update many nodes in one transaction; returns ``(added, updated)``."""
        ts = to_ts(now)
        node_rows: list[tuple[Any, ...]] = []
        address_owners: list[tuple[str, str]] = []
        address_rows: list[tuple[Any, ...]] = []
        for info in infos:
            node_rows.append(
                (
                    info.pubkey,
                    info.alias,
                    info.capacity_sat,
                    info.channel_count,
                    info.first_seen,
                    ts,
                    source,
                    source,
                    ts,
                    None if info.trampoline is None else int(info.trampoline),
                    int(seeded),
                )
            )
            if info.addresses is not None:
                address_owners.append((info.pubkey, source))
                address_rows.extend(
                    (info.pubkey, a.host, a.port, a.kind, source, ts) for a in info.addresses
                )
        if not node_rows:
            return (0, 0)
        with self._tx() as conn:
            before = conn.execute("SELECT COUNT(*) FROM nodes").fetchone()[0]
            conn.executemany(
                """
                INSERT INTO nodes (pubkey, alias, capacity_sat, channel_count, first_seen,
                                   added_at, first_source, source, updated_at, trampoline, seeded)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(pubkey) DO UPDATE SET
                    alias = COALESCE(excluded.alias, nodes.alias),
                    capacity_sat = COALESCE(excluded.capacity_sat, nodes.capacity_sat),
                    channel_count = COALESCE(excluded.channel_count, nodes.channel_count),
                    first_seen = COALESCE(excluded.first_seen, nodes.first_seen),
                    source = excluded.source,
                    updated_at = excluded.updated_at,
                    trampoline = COALESCE(excluded.trampoline, nodes.trampoline),
                    seeded = MAX(nodes.seeded, excluded.seeded)
                """,
                node_rows,
            )
            after = conn.execute("SELECT COUNT(*) FROM nodes").fetchone()[0]
            conn.executemany(
                "DELETE FROM node_addresses WHERE pubkey = ? AND source = ?", address_owners
            )
            conn.executemany(
                "INSERT OR REPLACE INTO node_addresses (pubkey, host, port, kind, source, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                address_rows,
            )
        added = after - before
        return (added, len(node_rows) - added)

    def import_seed_data(
        self, data: Any, source: str, now: datetime | None = None
    ) -> tuple[int, int]:
        """Import a decoded seed document (see ``nodes.seedfile``); returns (imported, skipped).

        Never raises on bad content: a bad entry is skipped with a WARNING, a document that is
        not a seed list imports nothing (WARNING, ``(0, 0)``). Seeded nodes are trusted: they
        are exempt from the provider minimums in ranking.
        """

        try:
            parsed = parse_seed_data(data, source)
        except SeedFormatError as exc:
            log.warning("seed_rejected", source=source, reason=str(exc))
            return (0, 0)
        moment = now if now is not None else datetime.now().astimezone()
        self.upsert_nodes(parsed.nodes, source=source, now=moment, seeded=True)
        return (len(parsed.nodes), parsed.skipped)

    def import_seed_file(
        self, path: str | Path, source: str | None = None, now: datetime | None = None
    ) -> tuple[int, int]:
        """Import a seed file; raises OSError/ValueError only when the file cannot be read."""

        data = read_seed_file(path)
        return self.import_seed_data(data, source or f"import:{Path(path).name}", now=now)

    def get_node(self, pubkey: str) -> NodeRecord | None:
        key = normalize_pubkey(pubkey)
        if key is None:
            return None
        nodes = self._load_nodes("WHERE pubkey = ?", (key,))
        return nodes[0] if nodes else None

    def list_nodes(self, *, trampoline_only: bool = False) -> list[NodeRecord]:
        """Every node (or every trampoline), ordered by pubkey."""
        if trampoline_only:
            return self._load_nodes(
                "WHERE pubkey IN (SELECT pubkey FROM nodes WHERE trampoline = 1)", ()
            )
        return self._load_nodes("", ())

    def node_count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM nodes").fetchone()[0])

    def _load_nodes(self, where: str, args: tuple[Any, ...]) -> list[NodeRecord]:
        addresses: dict[str, list[tuple[int, int, NodeAddress]]] = {}
        for row in self._conn.execute(
            f"SELECT pubkey, host, port, kind, updated_at FROM node_addresses {where}", args
        ):
            port, kind = _int(row["port"]), _str(row["kind"])
            if port is None or kind not in ADDRESS_KINDS:
                continue
            rank = _ADDRESS_PREFERENCE[kind]
            address = NodeAddress(str(row["host"]), port, str(kind))
            addresses.setdefault(row["pubkey"], []).append(
                (-(_int(row["updated_at"]) or 0), rank, address)
            )
        out: list[NodeRecord] = []
        for row in self._conn.execute(f"SELECT * FROM nodes {where} ORDER BY pubkey", args):
            ordered: list[NodeAddress] = []
            for _, _, address in sorted(
                addresses.get(row["pubkey"], []), key=lambda t: (t[0], t[1], t[2].host, t[2].port)
            ):
                if address not in ordered:
                    ordered.append(address)
            out.append(
                NodeRecord(
                    pubkey=str(row["pubkey"]),
                    alias=_str(row["alias"]),
                    capacity_sat=_int(row["capacity_sat"]),
                    channel_count=_int(row["channel_count"]),
                    first_seen=_int(row["first_seen"]),
                    added_at=_int(row["added_at"]) or 0,
                    first_source=str(row["first_source"]),
                    source=str(row["source"]),
                    updated_at=_int(row["updated_at"]) or 0,
                    trampoline=bool(_int(row["trampoline"])),
                    seeded=bool(_int(row["seeded"])),
                    addresses=tuple(ordered),
                )
            )
        return out

    # --- provider bookkeeping ------------------------------------------------------------

    def nodes_due_for_refresh(
        self, provider: str, *, stale_before: int, retry_before: int, limit: int
    ) -> list[str]:
        """Nodes no provider refreshed since ``stale_before`` that ``provider`` did not try
        since ``retry_before``: payees, our peers, never-fetched, trampolines, seeded first."""
        rows = self._conn.execute(
            """
            SELECT n.pubkey FROM nodes n
            LEFT JOIN (SELECT pubkey, MAX(last_success_at) AS ok_at FROM node_refresh
                       GROUP BY pubkey) r ON r.pubkey = n.pubkey
            LEFT JOIN node_refresh mine ON mine.pubkey = n.pubkey AND mine.provider = ?
            WHERE (r.ok_at IS NULL OR r.ok_at < ?)
              AND (mine.last_attempt_at IS NULL OR mine.last_attempt_at < ?)
            ORDER BY
              n.pubkey IN (SELECT pubkey FROM payees) DESC,
              n.pubkey IN (SELECT pubkey FROM channels) DESC,
              r.ok_at IS NULL DESC,
              COALESCE(n.trampoline, 0) DESC,
              n.seeded DESC,
              COALESCE(n.channel_count, 0) DESC,
              n.pubkey
            LIMIT ?
            """,
            (provider, stale_before, retry_before, limit),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def mark_node_refresh(self, pubkey: str, provider: str, now: datetime, ok: bool) -> None:
        ts = to_ts(now)
        self._conn.execute(
            """
            INSERT INTO node_refresh (pubkey, provider, last_attempt_at, last_success_at)
            VALUES (?, ?, ?, ?)
            ON CONFLICT(pubkey, provider) DO UPDATE SET
                last_attempt_at = excluded.last_attempt_at,
                last_success_at = COALESCE(excluded.last_success_at, node_refresh.last_success_at)
            """,
            (pubkey, provider, ts, ts if ok else None),
        )

    def node_refreshed_at(self, pubkey: str) -> int | None:
        row = self._conn.execute(
            "SELECT MAX(last_success_at) FROM node_refresh WHERE pubkey = ?", (pubkey,)
        ).fetchone()
        return _int(row[0])

    def job_last_success(self, provider: str, job: str) -> int | None:
        row = self._conn.execute(
            "SELECT last_success_at FROM provider_jobs WHERE provider = ? AND job = ?",
            (provider, job),
        ).fetchone()
        return None if row is None else _int(row[0])

    def mark_job(self, provider: str, job: str, now: datetime, ok: bool) -> None:
        """Record an attempt; the job counts as done only when ``ok``."""
        ts = to_ts(now)
        self._conn.execute(
            """
            INSERT INTO provider_jobs (provider, job, last_attempt_at, last_success_at)
            VALUES (?, ?, ?, ?)
            ON CONFLICT(provider, job) DO UPDATE SET
                last_attempt_at = excluded.last_attempt_at,
                last_success_at = COALESCE(excluded.last_success_at, provider_jobs.last_success_at)
            """,
            (provider, job, ts, ts if ok else None),
        )

    def throttle_times(self, key: str, since: int) -> list[int]:
        rows = self._conn.execute(
            "SELECT ts FROM throttle_requests WHERE key = ? AND ts >= ? ORDER BY ts", (key, since)
        ).fetchall()
        return [int(r[0]) for r in rows]

    def throttle_last(self, key: str) -> int | None:
        row = self._conn.execute(
            "SELECT MAX(ts) FROM throttle_requests WHERE key = ?", (key,)
        ).fetchone()
        return _int(row[0])

    def throttle_add(self, key: str, ts: int) -> None:
        with self._tx() as conn:
            conn.execute("INSERT INTO throttle_requests (key, ts) VALUES (?, ?)", (key, ts))
            # Keep the newest row of a key (for the min interval) and the last hour.
            conn.execute(
                "DELETE FROM throttle_requests WHERE key = ? AND ts < ? AND ts < "
                "(SELECT MAX(ts) FROM throttle_requests WHERE key = ?)",
                (key, ts - 3600, key),
            )

    def throttle_blocked_until(self, key: str) -> int | None:
        row = self._conn.execute(
            "SELECT blocked_until FROM throttle_state WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else _int(row[0])

    def throttle_block(self, key: str, until: int) -> None:
        self._conn.execute(
            "INSERT INTO throttle_state (key, blocked_until) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET blocked_until = "
            "MAX(throttle_state.blocked_until, excluded.blocked_until)",
            (key, until),
        )

    # --- observations --------------------------------------------------------------------

    def record_peer_samples(self, wallet_id: str, channels: list[Channel], now: datetime) -> int:
        """Record one cycle's view of a wallet's channels; returns how many peers were sampled.

        Each OPEN channel gives its peer one uptime sample (online = Electrum's peer state is
        GOOD); several channels to one peer give one sample. Channels are remembered with the
        times they were first seen, first seen open, last seen online and first seen closing.
        Backup rows and rows without a peer are ignored.
        """
        ts = to_ts(now)
        hour = ts // 3600
        channel_rows: list[tuple[Any, ...]] = []
        peers: dict[str, bool] = {}
        for ch in channels:
            pubkey = normalize_pubkey(ch.peer_pubkey)
            if pubkey is None or ch.state in (ChannelState.BACKUP, ChannelState.UNKNOWN):
                continue
            is_open = ch.state is ChannelState.OPEN
            ended = ch.state in (ChannelState.CLOSING, ChannelState.CLOSED)
            channel_rows.append(
                (
                    wallet_id,
                    ch.channel_point,
                    pubkey,
                    ch.capacity_sat,
                    ch.state.value,
                    ts,
                    ts if is_open else None,
                    ts,
                    ts if is_open and ch.peer_online else None,
                    ts if ended else None,
                    ts if is_open and not ch.peer_online else None,
                )
            )
            if is_open:
                peers[pubkey] = peers.get(pubkey, False) or ch.peer_online
        if not channel_rows:
            return 0
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO nodes (pubkey, added_at, first_source, source, updated_at)"
                " VALUES (?, ?, 'observed', 'observed', ?)",
                [(row[2], ts, ts) for row in channel_rows],
            )
            conn.executemany(
                """
                INSERT INTO channels (wallet_id, channel_point, pubkey, capacity_sat, state,
                    first_seen_at, opened_at, last_seen_at, last_online_at, closed_at,
                    offline_seen_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(wallet_id, channel_point) DO UPDATE SET
                    pubkey = excluded.pubkey,
                    capacity_sat = excluded.capacity_sat,
                    state = excluded.state,
                    opened_at = COALESCE(channels.opened_at, excluded.opened_at),
                    last_seen_at = excluded.last_seen_at,
                    last_online_at = COALESCE(excluded.last_online_at, channels.last_online_at),
                    closed_at = CASE WHEN excluded.state = 'open' THEN NULL
                                     ELSE COALESCE(channels.closed_at, excluded.closed_at) END,
                    offline_seen_at = CASE WHEN excluded.offline_seen_at IS NULL THEN NULL
                        ELSE COALESCE(channels.offline_seen_at, excluded.offline_seen_at) END
                """,
                channel_rows,
            )
            if len(peers) >= 2 and not any(peers.values()):
                # Every peer offline at once is our outage (our node or Bitcart's daemon down,
                # a restart), not theirs: it must not cost good peers their uptime.
                peers = {}
            conn.executemany(
                """
                INSERT INTO peer_uptime (wallet_id, pubkey, hour, samples, online)
                VALUES (?, ?, ?, 1, ?)
                ON CONFLICT(wallet_id, pubkey, hour) DO UPDATE SET
                    samples = peer_uptime.samples + 1,
                    online = peer_uptime.online + excluded.online
                """,
                [(wallet_id, pk, hour, int(online)) for pk, online in sorted(peers.items())],
            )
            conn.execute("DELETE FROM peer_uptime WHERE hour < ?", ((ts - _PRUNE_SECONDS) // 3600,))
        return len(peers)

    def offline_since(self, wallet_id: str, channel_points: Iterable[str]) -> dict[str, int]:
        """Since when (unix seconds) each channel's peer has been seen offline: the first
        sample that saw it so, else its last online sample, else when it was first seen.
        Channels never recorded are left out.

        The first offline *sample*, not the last online one: when our own node was down for
        hours, nothing was sampled, and a peer seen online before and reconnecting after has
        not been away for those hours."""
        points = list(channel_points)
        if not points:
            return {}
        marks = ",".join("?" * len(points))
        rows = self.conn.execute(
            "SELECT channel_point, COALESCE(offline_seen_at, last_online_at, first_seen_at)"
            " FROM channels"
            f" WHERE wallet_id = ? AND channel_point IN ({marks})",
            [wallet_id, *points],
        ).fetchall()
        return {row[0]: int(row[1]) for row in rows}

    def record_open_attempt(
        self,
        wallet_id: str,
        pubkey: str,
        ok: bool,
        error_class: str | None,
        now: datetime,
        channel_point: str | None = None,
    ) -> None:
        """Record one channel-open attempt. ``error_class`` is the exception class name (e.g.
        ``"DaemonError"``); classes in :data:`NEUTRAL_OPEN_ERRORS` do not count against the
        peer. A success with a channel point starts tracking that channel."""
        key = normalize_pubkey(pubkey)
        if key is None:
            raise ValueError(f"not a node pubkey: {pubkey!r}")
        ts = to_ts(now)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO open_attempts (wallet_id, pubkey, ts, ok, error_class, "
                "channel_point) VALUES (?, ?, ?, ?, ?, ?)",
                (wallet_id, key, ts, int(ok), None if ok else error_class, channel_point),
            )
            conn.execute(
                "INSERT OR IGNORE INTO nodes (pubkey, added_at, first_source, source, updated_at)"
                " VALUES (?, ?, 'observed', 'observed', ?)",
                (key, ts, ts),
            )
            if ok and channel_point:
                conn.execute(
                    "INSERT OR IGNORE INTO channels (wallet_id, channel_point, pubkey, state, "
                    "first_seen_at, last_seen_at) VALUES (?, ?, ?, 'opening', ?, ?)",
                    (wallet_id, channel_point, key, ts, ts),
                )
            conn.execute("DELETE FROM open_attempts WHERE ts < ?", (ts - _PRUNE_SECONDS,))

    def record_channel_closed(
        self,
        wallet_id: str,
        channel_point: str,
        pubkey: str,
        closed_by: str | None,
        now: datetime,
        reason: str | None = None,
    ) -> None:
        """Record that a channel closed. ``closed_by`` is ``"us"``, ``"remote"`` or None when
        unknown: Electrum cannot tell who closed, so pass ``"remote"`` only when you know."""
        if closed_by is not None and closed_by not in CLOSED_BY_VALUES:
            raise ValueError(f"closed_by must be 'us', 'remote' or None, not {closed_by!r}")
        key = normalize_pubkey(pubkey)
        if key is None:
            raise ValueError(f"not a node pubkey: {pubkey!r}")
        ts = to_ts(now)
        self._conn.execute(
            """
            INSERT INTO channels (wallet_id, channel_point, pubkey, state, first_seen_at,
                                  last_seen_at, closed_at, closed_by, close_reason)
            VALUES (?, ?, ?, 'closing', ?, ?, ?, ?, ?)
            ON CONFLICT(wallet_id, channel_point) DO UPDATE SET
                state = CASE WHEN channels.state = 'closed' THEN 'closed' ELSE 'closing' END,
                closed_at = COALESCE(channels.closed_at, excluded.closed_at),
                closed_by = COALESCE(excluded.closed_by, channels.closed_by),
                close_reason = COALESCE(excluded.close_reason, channels.close_reason)
            """,
            (wallet_id, channel_point, key, ts, ts, ts, closed_by, reason),
        )

    def record_close_attempt(
        self,
        wallet_id: str,
        channel_point: str,
        pubkey: str,
        *,
        ok: bool,
        reason: str,
        now: datetime,
        error_class: str | None = None,
        txid: str | None = None,
    ) -> None:
        self._conn.execute(
            "INSERT INTO close_attempts (wallet_id, channel_point, pubkey, ts, ok, reason, "
            "error_class, txid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (wallet_id, channel_point, pubkey, to_ts(now), int(ok), reason, error_class, txid),
        )

    def closes_by_us_since(self, wallet_id: str, since: int) -> int:
        """Successful closes we made for ``wallet_id`` at or after unix second ``since``."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM close_attempts WHERE wallet_id = ? AND ok = 1 AND ts >= ?",
            (wallet_id, since),
        ).fetchone()
        return int(row[0])

    def last_failed_close_at(self, wallet_id: str, channel_point: str) -> int | None:
        row = self._conn.execute(
            "SELECT MAX(ts) FROM close_attempts WHERE wallet_id = ? AND channel_point = ? "
            "AND ok = 0",
            (wallet_id, channel_point),
        ).fetchone()
        return _int(row[0])

    def close_attempts(self, wallet_id: str) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT * FROM close_attempts WHERE wallet_id = ? ORDER BY ts, id", (wallet_id,)
        ).fetchall()
        return [dict(r) for r in rows]

    def channel(self, wallet_id: str, channel_point: str) -> ChannelRecord | None:
        rows = self._load_channels(
            "WHERE wallet_id = ? AND channel_point = ?", (wallet_id, channel_point)
        )
        return rows[0] if rows else None

    def channels_of(self, pubkey: str) -> list[ChannelRecord]:
        return self._load_channels("WHERE pubkey = ?", (pubkey,))

    def _load_channels(self, where: str, args: tuple[Any, ...]) -> list[ChannelRecord]:
        out: list[ChannelRecord] = []
        for r in self._conn.execute(
            f"SELECT * FROM channels {where} ORDER BY first_seen_at, channel_point", args
        ):
            out.append(
                ChannelRecord(
                    wallet_id=str(r["wallet_id"]),
                    channel_point=str(r["channel_point"]),
                    pubkey=str(r["pubkey"]),
                    capacity_sat=_int(r["capacity_sat"]),
                    state=str(r["state"]),
                    first_seen_at=_int(r["first_seen_at"]) or 0,
                    opened_at=_int(r["opened_at"]),
                    last_seen_at=_int(r["last_seen_at"]) or 0,
                    last_online_at=_int(r["last_online_at"]),
                    offline_seen_at=_int(r["offline_seen_at"]),
                    closed_at=_int(r["closed_at"]),
                    closed_by=_str(r["closed_by"]),
                    close_reason=_str(r["close_reason"]),
                )
            )
        return out

    def open_attempts(self, pubkey: str, limit: int = 20) -> list[OpenAttempt]:
        """The newest attempts to open a channel to ``pubkey``, newest first."""
        rows = self._conn.execute(
            "SELECT * FROM open_attempts WHERE pubkey = ? ORDER BY ts DESC, id DESC LIMIT ?",
            (pubkey, limit),
        ).fetchall()
        return [
            OpenAttempt(
                wallet_id=str(r["wallet_id"]),
                pubkey=str(r["pubkey"]),
                ts=_int(r["ts"]) or 0,
                ok=bool(r["ok"]),
                error_class=_str(r["error_class"]),
                channel_point=_str(r["channel_point"]),
            )
            for r in rows
        ]

    def failure_stats(self, pubkey: str | None = None) -> dict[str, FailureStats]:
        """Per node: peer-side open failures since its last success, and totals."""
        where, args = ("WHERE pubkey = ?", (pubkey,)) if pubkey else ("", ())
        state: dict[str, list[Any]] = {}  # consecutive, last_failure, failures, successes
        for r in self._conn.execute(
            f"SELECT pubkey, ts, ok, error_class FROM open_attempts {where} "
            "ORDER BY pubkey, ts, id",
            args,
        ):
            item = state.setdefault(r[0], [0, None, 0, 0])
            if r[2]:
                item[0] = 0
                item[3] += 1
            elif r[3] not in NEUTRAL_OPEN_ERRORS:
                item[0] += 1
                item[1] = _int(r[1])
                item[2] += 1
        return {pk: FailureStats(v[0], v[1], v[2], v[3]) for pk, v in state.items()}

    def channel_stats(self, pubkey: str | None = None) -> dict[str, ChannelStats]:
        """Per node: what our channels with it did (accepted, lifetime, closed on us)."""
        where, args = ("WHERE pubkey = ?", (pubkey,)) if pubkey else ("", ())
        accepted = {
            str(r[0])
            for r in self._conn.execute(
                f"SELECT DISTINCT pubkey FROM open_attempts {where}"
                + (" AND" if where else " WHERE")
                + " ok = 1",
                args,
            )
        }
        out: dict[str, ChannelStats] = {}
        for r in self._conn.execute(
            f"""
            SELECT pubkey, COUNT(*),
                   SUM(opened_at IS NOT NULL),
                   MAX(CASE WHEN opened_at IS NOT NULL
                       THEN COALESCE(closed_at, last_seen_at) - opened_at END),
                   SUM(opened_at IS NOT NULL AND closed_at IS NULL),
                   MAX(CASE WHEN closed_by = 'remote' THEN closed_at END)
            FROM channels {where} GROUP BY pubkey
            """,
            args,
        ):
            pk = str(r[0])
            out[pk] = ChannelStats(
                channels=_int(r[1]) or 0,
                accepted=bool(_int(r[2])) or pk in accepted,
                longest_lifetime_s=max(0, _int(r[3]) or 0),
                open_now=_int(r[4]) or 0,
                last_closed_on_us_at=_int(r[5]),
            )
        for pk in accepted - out.keys():
            out[pk] = ChannelStats(0, True, 0, 0, None)
        return out

    def uptime_stats(
        self,
        pubkey: str,
        window: timedelta,
        now: datetime,
        wallet_id: str | None = None,
    ) -> UptimeStats:
        """Our samples of ``pubkey`` in the ``window`` before ``now`` (one wallet, or all)."""
        ts = to_ts(now)
        first = (ts - int(window.total_seconds())) // 3600
        sql = (
            "SELECT SUM(samples), SUM(online), COUNT(DISTINCT hour), MIN(hour) FROM peer_uptime "
            "WHERE pubkey = ? AND hour >= ? AND hour <= ?"
        )
        args: tuple[Any, ...] = (pubkey, first, ts // 3600)
        if wallet_id is not None:
            sql += " AND wallet_id = ?"
            args += (wallet_id,)
        r = self._conn.execute(sql, args).fetchone()
        return UptimeStats(_int(r[0]) or 0, _int(r[1]) or 0, _int(r[2]) or 0, _int(r[3]))

    def uptime(
        self, pubkey: str, window: timedelta, now: datetime, wallet_id: str | None = None
    ) -> float | None:
        """Share of our samples in ``window`` that saw ``pubkey`` online; None without any."""
        return self.uptime_stats(pubkey, window, now, wallet_id).ratio

    def uptime_by_pubkey(self, window: timedelta, now: datetime) -> dict[str, UptimeStats]:
        ts = to_ts(now)
        first = (ts - int(window.total_seconds())) // 3600
        return {
            str(r[0]): UptimeStats(_int(r[1]) or 0, _int(r[2]) or 0, _int(r[3]) or 0, _int(r[4]))
            for r in self._conn.execute(
                "SELECT pubkey, SUM(samples), SUM(online), COUNT(DISTINCT hour), MIN(hour) "
                "FROM peer_uptime WHERE hour >= ? AND hour <= ? GROUP BY pubkey",
                (first, ts // 3600),
            )
        }

    # --- blacklist -----------------------------------------------------------------------

    def blacklist(
        self,
        pubkey: str,
        reason: str,
        until: datetime | None,
        now: datetime | None = None,
        source: str = "manual",
    ) -> None:
        """Blacklist ``pubkey`` until ``until`` (None: until removed); replaces an entry."""
        key = normalize_pubkey(pubkey)
        if key is None:
            raise ValueError(f"not a node pubkey: {pubkey!r}")
        since = to_ts(now if now is not None else datetime.now().astimezone())
        self._conn.execute(
            "INSERT OR REPLACE INTO blacklist (pubkey, reason, since, until, source) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, reason, since, None if until is None else to_ts(until), source),
        )

    def unblacklist(self, pubkey: str) -> bool:
        cur = self._conn.execute("DELETE FROM blacklist WHERE pubkey = ?", (pubkey,))
        return cur.rowcount > 0

    def blacklist_entry(self, pubkey: str, now: datetime) -> BlacklistEntry | None:
        """The entry for ``pubkey`` when it is in force at ``now``."""
        return self.active_blacklist(now, pubkey).get(pubkey)

    def active_blacklist(
        self, now: datetime, pubkey: str | None = None
    ) -> dict[str, BlacklistEntry]:
        ts = to_ts(now)
        sql = "SELECT * FROM blacklist WHERE (until IS NULL OR until > ?)"
        args: tuple[Any, ...] = (ts,)
        if pubkey is not None:
            sql += " AND pubkey = ?"
            args += (pubkey,)
        return {
            str(r["pubkey"]): BlacklistEntry(
                pubkey=str(r["pubkey"]),
                reason=str(r["reason"]),
                since=_int(r["since"]) or 0,
                until=_int(r["until"]),
                source=str(r["source"]),
            )
            for r in self._conn.execute(sql, args)
        }

    # --- payees --------------------------------------------------------------------------

    def learn_payee(self, address: str, pubkey: str, now: datetime) -> None:
        """Remember that invoices from lightning address ``address`` are paid to ``pubkey``.

        The node is added as a stub when unknown, so a provider refresh fetches its details.
        """
        key = normalize_pubkey(pubkey)
        if key is None:
            raise ValueError(f"not a node pubkey: {pubkey!r}")
        ts = to_ts(now)
        with self._tx() as conn:
            conn.execute(
                """
                INSERT INTO payees (address, pubkey, first_seen, last_seen, times)
                VALUES (?, ?, ?, ?, 1)
                ON CONFLICT(address, pubkey) DO UPDATE SET
                    last_seen = excluded.last_seen, times = payees.times + 1
                """,
                (address.strip().lower(), key, ts, ts),
            )
            conn.execute(
                "INSERT OR IGNORE INTO nodes (pubkey, added_at, first_source, source, updated_at)"
                " VALUES (?, ?, 'payee', 'payee', ?)",
                (key, ts, ts),
            )

    def payee_pubkeys(self, address: str) -> list[str]:
        """Nodes seen behind ``address``, most recently seen first."""
        rows = self._conn.execute(
            "SELECT pubkey FROM payees WHERE address = ? ORDER BY last_seen DESC, pubkey",
            (address.strip().lower(),),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def payee_addresses(self, pubkey: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT address FROM payees WHERE pubkey = ? ORDER BY address", (pubkey,)
        ).fetchall()
        return [str(r[0]) for r in rows]
