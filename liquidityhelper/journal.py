"""The journal: ``liquidityhelper.sqlite``, what must survive a restart and nothing more.

Every money action (payment, channel open, channel close) is written *before* it is sent
(status ``pending``) and updated after. A ``pending`` entry blocks every new money action on its
wallet until it is reconciled with the wallet (payment by hash, open by channel list), so a
crash or a timeout at any point can never lead to paying twice.

The small ``state`` table keeps reminders and back-offs (top-up shown when and for how much,
cashout back-off). Nothing Bitcart already knows is kept here.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

JOURNAL_FILE = "liquidityhelper.sqlite"


class Kind(enum.StrEnum):
    CHANNEL_OPEN = "channel_open"
    CHANNEL_CLOSE = "channel_close"
    CASHOUT = "cashout"
    FEE_PAYMENT = "fee_payment"
    # Events, recorded once done (never pending, never blocking a wallet):
    TOPUP_INVOICE = "topup_invoice"  # a top-up invoice created in Bitcart (reference: its id)
    TOPUP_INVALIDATED = "topup_invalidated"  # one marked invalid, superseded or not needed


class Status(enum.StrEnum):
    PENDING = "pending"  # written before sending; the outcome is not known yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"


PAYMENT_KINDS = (Kind.CASHOUT, Kind.FEE_PAYMENT)
PAYMENT_LABEL_PREFIX = "liquidityhelper "
_PAYMENT_KINDS_SQL = ", ".join(f"'{k.value}'" for k in PAYMENT_KINDS)
# A payment's routing fee in whole sats, rounded up per entry: Python's ``-(-fee_msat // 1000)``
# (NULL as 0). SQLite's integer division truncates toward zero, which is the ceiling for a
# negative numerator, so only a positive one needs the +999.
_ROUTING_SAT_SQL = (
    "CASE WHEN fee_msat > 0 THEN (fee_msat + 999) / 1000 ELSE COALESCE(fee_msat, 0) / 1000 END"
)


def payment_label(kind: str) -> str:
    """The label our payments carry in the wallet itself (``liquidityhelper fee_payment``):
    the record of fees paid that survives a lost journal."""
    return PAYMENT_LABEL_PREFIX + kind


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    kind: Kind
    wallet_id: str
    amount_sat: int
    destination: str
    status: Status
    created_at: datetime
    updated_at: datetime
    invoice: str | None = None
    payment_hash: str | None = None
    expires_at: datetime | None = None
    fee_msat: int | None = None
    reference: str | None = None  # channel point or closing txid
    detail: str = ""


# Each migration takes the schema from version i to i+1. Never edit one that shipped.
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        wallet_id TEXT NOT NULL,
        amount_sat INTEGER NOT NULL CHECK (amount_sat >= 0),
        destination TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        invoice TEXT,
        payment_hash TEXT UNIQUE,
        expires_at TEXT,
        fee_msat INTEGER,
        reference TEXT,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX actions_wallet_status ON actions (wallet_id, status);
    CREATE TABLE state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 2: each wallet's inbound and its target over time, for the status page's chart
    # (bounded: see Journal.add_sample).
    """
    CREATE TABLE samples (
        wallet_id TEXT NOT NULL,
        ts TEXT NOT NULL,
        inbound_sat INTEGER NOT NULL,
        target_sat INTEGER NOT NULL,
        PRIMARY KEY (wallet_id, ts)
    ) WITHOUT ROWID;
    """,
]

# Samples kept per wallet: at most this many rows, none older than this many days.
SAMPLES_KEEP_ROWS = 2_000
SAMPLES_KEEP_DAYS = 90
# A sample is written when the figures change, else at most this often.
SAMPLE_EVERY = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class KindSummary:
    """One wallet's entries of one kind, in a few numbers: any new entry or change of status
    changes at least one of them (what is compared to know nothing changed)."""

    entries: int = 0
    last_id: int = 0
    pending: int = 0
    succeeded: int = 0
    succeeded_sat: int = 0  # principal of the succeeded ones (``paid_sat``)


@dataclass(slots=True)
class _PaymentTotals:
    """``Journal.payment_totals`` so far: every payment entry up to ``upto`` is summed, but
    those still ``pending`` then, looked at again on each call until they are final. A final
    entry never changes (``finish`` is for pending ones; were a summed one finished again, the
    cache is dropped). Valid while ``data_version`` says no other connection wrote."""

    data_version: int
    upto: int
    pending: set[int]
    sums: dict[tuple[str, Kind], tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Sample:
    wallet_id: str
    at: datetime
    inbound_sat: int
    target_sat: int


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


class Journal:
    def __init__(self, conn: sqlite3.Connection, *, read_only: bool = False) -> None:
        self.created_now = False  # this process created the file (a new or lost journal)
        self.read_only = read_only
        self._conn = conn
        self._conn.row_factory = sqlite3.Row
        self._totals: _PaymentTotals | None = None
        if not read_only:
            self._migrate()

    @classmethod
    def open(cls, data_dir: Path | str) -> Journal:
        if str(data_dir) == ":memory:":
            return cls(sqlite3.connect(":memory:"))
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        fresh = not (path / JOURNAL_FILE).exists()
        conn = sqlite3.connect(path / JOURNAL_FILE, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # an intent must be on disk before we pay
        journal = cls(conn)
        journal.created_now = fresh
        return journal

    @classmethod
    def open_read_only(cls, data_dir: Path | str) -> Journal:
        """The journal for reading only (``history``, ``report``): no migration, no write,
        no lock; a running daemon keeps writing beside it (WAL). FileNotFoundError when there
        is no journal in ``data_dir``."""
        path = Path(data_dir) / JOURNAL_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no journal at {path}")
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
        return cls(conn, read_only=True)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._conn:
            yield self._conn

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        if self._conn.in_transaction:
            self._conn.commit()
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.rollback()
            raise
        self._conn.commit()

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        for i, script in enumerate(_MIGRATIONS[version:], start=version):
            with self._conn:
                self._conn.executescript(script)
                self._conn.execute(f"PRAGMA user_version = {i + 1}")

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    # --- actions ----------------------------------------------------------------------------

    def record_intent(
        self,
        kind: Kind,
        wallet_id: str,
        amount_sat: int,
        destination: str,
        *,
        now: datetime,
        invoice: str | None = None,
        payment_hash: str | None = None,
        expires_at: datetime | None = None,
        detail: str = "",
    ) -> Entry:
        """Write a money action before it is sent. Refuses a second one in flight per wallet."""
        if not isinstance(amount_sat, int) or isinstance(amount_sat, bool):
            raise TypeError(f"amount_sat must be an int of sats, got {type(amount_sat).__name__}")
        # BEGIN IMMEDIATE takes the write lock before the check, so two processes cannot both
        # find the wallet idle and both record (and then send) a payment.
        with self._immediate() as c:
            busy = c.execute(
                "SELECT id, kind FROM actions WHERE wallet_id = ? AND status = 'pending'",
                (wallet_id,),
            ).fetchone()
            if busy is not None:
                raise JournalBusyError(wallet_id, int(busy["id"]), str(busy["kind"]))
            cur = c.execute(
                "INSERT INTO actions (kind, wallet_id, amount_sat, destination, status, created_at,"
                " updated_at, invoice, payment_hash, expires_at, detail)"
                " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
                (
                    kind.value,
                    wallet_id,
                    amount_sat,
                    destination,
                    _iso(now),
                    _iso(now),
                    invoice,
                    payment_hash,
                    _iso(expires_at) if expires_at else None,
                    detail,
                ),
            )
            entry_id = cur.lastrowid
        assert entry_id is not None
        return self.get(entry_id)

    def record_event(
        self,
        kind: Kind,
        wallet_id: str,
        amount_sat: int,
        destination: str,
        *,
        now: datetime,
        reference: str | None = None,
        detail: str = "",
    ) -> Entry:
        """Write something already done that moved no money (a top-up invoice, say)."""
        if kind in PAYMENT_KINDS or kind in (Kind.CHANNEL_OPEN, Kind.CHANNEL_CLOSE):
            raise ValueError(f"{kind.value} is a money action: use record_intent")
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO actions (kind, wallet_id, amount_sat, destination, status, created_at,"
                " updated_at, reference, detail) VALUES (?, ?, ?, ?, 'succeeded', ?, ?, ?, ?)",
                (
                    kind.value,
                    wallet_id,
                    amount_sat,
                    destination,
                    _iso(now),
                    _iso(now),
                    reference,
                    detail,
                ),
            )
            entry_id = cur.lastrowid
        assert entry_id is not None
        return self.get(entry_id)

    def finish(
        self,
        entry_id: int,
        status: Status,
        *,
        now: datetime,
        fee_msat: int | None = None,
        reference: str | None = None,
        detail: str | None = None,
    ) -> Entry:
        totals = self._totals
        if totals is not None and entry_id <= totals.upto and entry_id not in totals.pending:
            self._totals = None  # an entry already summed changes: sum again from scratch
        with self._tx() as c:
            c.execute(
                "UPDATE actions SET status = ?, updated_at = ?,"
                " fee_msat = COALESCE(?, fee_msat), reference = COALESCE(?, reference),"
                " detail = COALESCE(?, detail) WHERE id = ?",
                (status.value, _iso(now), fee_msat, reference, detail, entry_id),
            )
        return self.get(entry_id)

    def get(self, entry_id: int) -> Entry:
        row = self._conn.execute("SELECT * FROM actions WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise KeyError(entry_id)
        return _entry(row)

    def pending(self, wallet_id: str | None = None) -> list[Entry]:
        sql = "SELECT * FROM actions WHERE status = 'pending'"
        args: tuple[Any, ...] = ()
        if wallet_id is not None:
            sql += " AND wallet_id = ?"
            args = (wallet_id,)
        return [_entry(r) for r in self._conn.execute(sql + " ORDER BY id", args)]

    def entries(self, wallet_id: str | None = None, kind: Kind | None = None) -> list[Entry]:
        sql, args = "SELECT * FROM actions WHERE 1=1", []
        if wallet_id is not None:
            sql += " AND wallet_id = ?"
            args.append(wallet_id)
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind.value)
        return [_entry(r) for r in self._conn.execute(sql + " ORDER BY id", args)]

    def last(self, wallet_id: str, kind: Kind, status: Status | None = None) -> Entry | None:
        sql = "SELECT * FROM actions WHERE wallet_id = ? AND kind = ?"
        args: list[Any] = [wallet_id, kind.value]
        if status is not None:
            sql += " AND status = ?"
            args.append(status.value)
        row = self._conn.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return _entry(row) if row else None

    def paid_sat(self, wallet_id: str, kind: Kind, since: datetime | None = None) -> int:
        """Principal of succeeded payments of one kind from one wallet (fees kept apart)."""
        sql = (
            "SELECT COALESCE(SUM(amount_sat), 0) FROM actions"
            " WHERE wallet_id = ? AND kind = ? AND status = 'succeeded'"
        )
        args: list[Any] = [wallet_id, kind.value]
        if since is not None:
            sql += " AND created_at >= ?"
            args.append(_iso(since))
        return int(self._conn.execute(sql, args).fetchone()[0])

    def routing_fees_msat(self, wallet_id: str, since: datetime | None = None) -> int:
        sql = (
            "SELECT COALESCE(SUM(fee_msat), 0) FROM actions"
            " WHERE wallet_id = ? AND status = 'succeeded' AND fee_msat IS NOT NULL"
        )
        args: list[Any] = [wallet_id]
        if since is not None:
            sql += " AND created_at >= ?"
            args.append(_iso(since))
        return int(self._conn.execute(sql, args).fetchone()[0])

    def kind_summary(self, wallet_id: str, kind: Kind) -> KindSummary:
        """How many entries of ``kind`` the wallet has, the last one's id, how many are pending
        and succeeded, and the succeeded ones' principal (as ``paid_sat``), in one query."""
        row = self._conn.execute(
            "SELECT COUNT(*), COALESCE(MAX(id), 0),"
            " COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'succeeded'), 0),"
            " COALESCE(SUM(CASE WHEN status = 'succeeded' THEN amount_sat END), 0)"
            " FROM actions WHERE wallet_id = ? AND kind = ?",
            (wallet_id, kind.value),
        ).fetchone()
        return KindSummary(*(int(v) for v in row))

    def payment_totals(self) -> dict[tuple[str, Kind], tuple[int, int]]:
        """(wallet, kind) -> (principal, routing fees in sats) of every succeeded payment (a
        kind of ``PAYMENT_KINDS``), all time; each entry's routing fee is rounded up to a
        whole sat before summing. Only wallets and kinds with a succeeded payment appear.

        Summed in SQL, and incrementally: the sums are kept, so a call reads only the entries
        written since the last one (by id, the table's own order) and the payments that were
        still pending then; it costs the same whatever the journal's age. Another connection's
        write (``PRAGMA data_version``) or a summed entry finished again sums all afresh.
        """
        own_tx = not self._conn.in_transaction
        if own_tx:
            self._conn.execute("BEGIN")  # one snapshot for the reads below
        try:
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            cache = self._totals
            if cache is None or cache.data_version != version:
                cache = self._totals = _PaymentTotals(version, 0, set(), {})
            if cache.pending:  # the ones pending before: any final now?
                marks = ", ".join("?" * len(cache.pending))
                rows = self._conn.execute(
                    f"SELECT id, wallet_id, kind, status, amount_sat, {_ROUTING_SAT_SQL}"
                    f" FROM actions WHERE id IN ({marks})",
                    sorted(cache.pending),
                ).fetchall()
                for r in rows:
                    if r[3] == Status.PENDING.value:
                        continue
                    cache.pending.discard(int(r[0]))
                    if r[3] == Status.SUCCEEDED.value:
                        _add_totals(cache.sums, {(str(r[1]), Kind(r[2])): (int(r[4]), int(r[5]))})
            top = int(self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM actions").fetchone()[0])
            if top > cache.upto:
                window = (cache.upto, top)
                cache.pending.update(
                    int(r[0])
                    for r in self._conn.execute(
                        "SELECT id FROM actions WHERE id > ? AND id <= ? AND status = 'pending'"
                        f" AND kind IN ({_PAYMENT_KINDS_SQL})",
                        window,
                    )
                )
                _add_totals(cache.sums, self._payment_sums(*window))
                cache.upto = top
            return dict(cache.sums)
        except BaseException:
            self._totals = None  # perhaps half updated: sum afresh next time
            raise
        finally:
            if own_tx:
                self._conn.commit()

    def _payment_sums(self, after: int, upto: int) -> dict[tuple[str, Kind], tuple[int, int]]:
        rows = self._conn.execute(
            f"SELECT wallet_id, kind, SUM(amount_sat), SUM({_ROUTING_SAT_SQL}) FROM actions"
            " WHERE id > ? AND id <= ? AND status = 'succeeded'"
            f" AND kind IN ({_PAYMENT_KINDS_SQL}) GROUP BY wallet_id, kind",
            (after, upto),
        )
        return {(str(r[0]), Kind(r[1])): (int(r[2]), int(r[3])) for r in rows}

    def entries_since(self, since: datetime | None = None) -> list[Entry]:
        """Every entry created at or after ``since`` (all when None), oldest first."""
        if since is None:
            return self.entries()
        rows = self._conn.execute(
            "SELECT * FROM actions WHERE created_at >= ? ORDER BY id", (_iso(since),)
        )
        return [_entry(r) for r in rows]

    # --- samples (the status page's chart) ---------------------------------------------------

    def add_sample(
        self,
        wallet_id: str,
        now: datetime,
        inbound_sat: int,
        target_sat: int,
        *,
        every: timedelta = SAMPLE_EVERY,
        keep_rows: int = SAMPLES_KEEP_ROWS,
        keep_days: int = SAMPLES_KEEP_DAYS,
    ) -> bool:
        """Record a wallet's inbound and target when they changed since the last sample, or
        ``every`` after it; drop what is beyond ``keep_rows`` or ``keep_days``. True if
        written."""
        last = self._conn.execute(
            "SELECT ts, inbound_sat, target_sat FROM samples WHERE wallet_id = ?"
            " ORDER BY ts DESC LIMIT 1",
            (wallet_id,),
        ).fetchone()
        if last is not None:
            same = (int(last["inbound_sat"]), int(last["target_sat"])) == (inbound_sat, target_sat)
            last_at = datetime.fromisoformat(last["ts"])
            if now < last_at or (same and now - last_at < every):
                return False
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO samples (wallet_id, ts, inbound_sat, target_sat)"
                " VALUES (?, ?, ?, ?)",
                (wallet_id, _iso(now), int(inbound_sat), int(target_sat)),
            )
            c.execute(
                "DELETE FROM samples WHERE wallet_id = ? AND ts < ?",
                (wallet_id, _iso(now - timedelta(days=keep_days))),
            )
            c.execute(
                "DELETE FROM samples WHERE wallet_id = ? AND ts <= (SELECT ts FROM samples"
                " WHERE wallet_id = ? ORDER BY ts DESC LIMIT 1 OFFSET ?)",
                (wallet_id, wallet_id, keep_rows),
            )
        return True

    def samples(self, wallet_id: str, since: datetime | None = None) -> list[Sample]:
        """A wallet's samples, oldest first ([] from a journal older than the table)."""
        sql, args = "SELECT * FROM samples WHERE wallet_id = ?", [wallet_id]
        if since is not None:
            sql += " AND ts >= ?"
            args.append(_iso(since))
        try:
            rows = self._conn.execute(sql + " ORDER BY ts", args).fetchall()
        except sqlite3.OperationalError:  # no such table: a journal of an older version
            return []
        return [
            Sample(
                r["wallet_id"],
                datetime.fromisoformat(r["ts"]),
                int(r["inbound_sat"]),
                int(r["target_sat"]),
            )
            for r in rows
        ]

    # --- small state ------------------------------------------------------------------------

    def get_state(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else None

    def set_state(self, key: str, value: Any, *, now: datetime) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (key, json.dumps(value, sort_keys=True), _iso(now)),
            )

    def states_with_prefix(self, prefix: str) -> dict[str, Any]:
        rows = self._conn.execute(
            "SELECT key, value FROM state WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
        ).fetchall()
        return {str(r["key"]): json.loads(r["value"]) for r in rows}

    def state_totals(self, prefix: str, *, by: str, field: str) -> dict[str, int]:
        """Over the states under ``prefix`` whose value is a JSON object: the sum of its
        ``field`` (0 when missing) per value of its ``by`` ("" when missing), in SQL. Reads
        those states only (a range of the key's index), not the whole table."""
        sql = (
            "SELECT COALESCE(CAST(json_extract(value, ?) AS TEXT), '') AS grp,"
            " SUM(CAST(COALESCE(json_extract(value, ?), 0) AS INTEGER)) FROM state"
            " WHERE key >= ? AND substr(key, 1, ?) = ? AND json_type(value) = 'object'"
        )
        args: list[Any] = [f"$.{by}", f"$.{field}", prefix, len(prefix), prefix]
        if prefix and ord(prefix[-1]) < 0x10FFFF:  # keys sort as UTF-8 bytes: code points
            sql += " AND key < ?"
            args.append(prefix[:-1] + chr(ord(prefix[-1]) + 1))
        rows = self._conn.execute(sql + " GROUP BY grp", args)
        return {str(r[0]): int(r[1]) for r in rows}

    def delete_states_with_prefix(self, prefix: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM state WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))

    def delete_state(self, key: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM state WHERE key = ?", (key,))


class JournalBusyError(Exception):
    """A wallet already has a money action in flight; nothing new until it is reconciled."""

    def __init__(self, wallet_id: str, entry_id: int, kind: str) -> None:
        self.wallet_id, self.entry_id, self.kind = wallet_id, entry_id, kind
        super().__init__(f"wallet {wallet_id} has {kind} #{entry_id} in flight")


def _add_totals(
    into: dict[tuple[str, Kind], tuple[int, int]], more: dict[tuple[str, Kind], tuple[int, int]]
) -> None:
    for key, (sat, routing) in more.items():
        had_sat, had_routing = into.get(key, (0, 0))
        into[key] = (had_sat + sat, had_routing + routing)


def _entry(row: sqlite3.Row) -> Entry:
    created = _dt(row["created_at"])
    updated = _dt(row["updated_at"])
    assert created is not None and updated is not None
    return Entry(
        id=int(row["id"]),
        kind=Kind(row["kind"]),
        wallet_id=row["wallet_id"],
        amount_sat=int(row["amount_sat"]),
        destination=row["destination"],
        status=Status(row["status"]),
        created_at=created,
        updated_at=updated,
        invoice=row["invoice"],
        payment_hash=row["payment_hash"],
        expires_at=_dt(row["expires_at"]),
        fee_msat=row["fee_msat"],
        reference=row["reference"],
        detail=row["detail"],
    )
