"""Which peer gets our next channel.

Candidates are the nodes of the database plus ``static_peers`` and ``static_trampoline_peers``.

Exclusions (a node with any of them is never chosen):

- ``blacklisted``: an explicit entry in force (manual, or "unreliable" after we closed it).
- ``repeated_failures``: ``max_failures_before_blacklist`` peer-side failed opens in a row, for
  ``blacklist_days`` after the last one.
- ``cooldown``: after n peer-side failed opens in a row, wait
  ``min(open_failure_cooldown_base_seconds * 2**(n-1), open_failure_cooldown_max_seconds)``
  from the last failure. Failures whose class says nothing about the peer (our funds, Bitcart
  down: ``db.NEUTRAL_OPEN_ERRORS``) do not count; a success resets the count.
- ``closed_on_us``: the peer closed one of our channels (only when known: Electrum cannot tell
  who closed, so an unknown closer never counts), for ``blacklist_days``.
- ``below_minimum``: capacity < ``min_capacity_sat``, channels < ``min_channel_count``, or
  network age < ``min_age_days``; an unknown value fails too. **Seeded nodes** (package seed,
  seed URLs, imports) and **static peers** are exempt: they are curated, and Electrum's
  hardcoded trampolines must stay choosable when provider data is missing.
- ``existing_peer``: the wallet already has a channel with it (unless
  ``allow_same_peer_channels``).
- ``not_trampoline``: ``require_trampoline`` and the node is not marked trampoline (by a seed
  list or ``static_trampoline_peers``; provider data never marks one).
- ``tor_only``: only .onion addresses and ``allow_tor_peers`` is off.
- ``no_address``: no address to connect to. Electrum's hardcoded trampolines are the exception:
  Electrum connects to them by bare pubkey.

Score (higher is better; ties broken by pubkey, so the same database and ``now`` always give
the same choice)::

    score = 100 * preferred          cashout node: a direct channel makes cashouts one hop
          +  10 * accepted           it accepted a channel from us (open succeeded)
          +  20 * kept               min(1, longest channel lifetime / friendly_min_days)
          +  40 * uptime             our samples over ranking_uptime_window_days; 0.5 if none
          +  10 * connectivity       min(1, log10(1 + channels) / 3)        (1,000 channels)
          +  10 * capacity           min(1, log10(1 + capacity_sat / 1e6) / 4)   (~100 BTC)
          +  10 * age                min(1, network age days / 1,095)
          +   5 * trusted            seeded or static
          -   5 * min(n, 4)          n = peer-side failed opens in a row (past their cooldown)

rounded to 3 decimals. Observed uptime outweighs "accepted": a peer that took our channel but
is mostly offline ranks below an unknown one. Unknown capacity, channels or age score 0 on
that line. Addresses: clearnet first (freshest source first; a DNS name before IPs), Tor only
when ``allow_tor_peers``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from liquidityhelper.nodes.db import (
    BlacklistEntry,
    ChannelStats,
    FailureStats,
    NodeDB,
    NodeRecord,
    UptimeStats,
)
from liquidityhelper.nodes.model import (
    ELECTRUM_HARDCODED_TRAMPOLINES,
    NodeAddress,
    from_ts,
    normalize_pubkey,
    parse_connection_string,
    to_ts,
)
from liquidityhelper.nodes.settings import NodeSettings

log = structlog.get_logger(__name__)

W_PREFERRED = 100.0
W_ACCEPTED = 10.0
W_KEPT = 20.0
W_UPTIME = 40.0
W_CONNECTIVITY = 10.0
W_CAPACITY = 10.0
W_AGE = 10.0
W_TRUSTED = 5.0
W_FAILURE = 5.0
UNKNOWN_UPTIME = 0.5


@dataclass(frozen=True, slots=True)
class PeerChoice:
    pubkey: str
    connection_string: str  # pubkey@host:port (a bare pubkey only for Electrum's trampolines)
    alias: str | None
    score: float
    reasons: list[str]
    trampoline: bool = False
    alternatives: tuple[str, ...] = ()  # other connection strings to try, best first


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A node as ranking sees it: its score, why, and why it cannot be chosen (if so)."""

    pubkey: str
    alias: str | None
    score: float
    reasons: list[str]
    exclusions: list[str]
    connection_string: str | None
    alternatives: tuple[str, ...] = ()
    trampoline: bool = False
    trusted: bool = False
    friendly: bool = False

    @property
    def eligible(self) -> bool:
        return not self.exclusions

    def to_choice(self) -> PeerChoice:
        assert self.connection_string is not None
        return PeerChoice(
            self.pubkey,
            self.connection_string,
            self.alias,
            self.score,
            list(self.reasons),
            self.trampoline,
            self.alternatives,
        )


@dataclass(frozen=True, slots=True)
class _Static:
    address: NodeAddress
    trampoline: bool


@dataclass
class _Context:
    settings: NodeSettings
    now: int
    blacklist: dict[str, BlacklistEntry]
    failures: dict[str, FailureStats]
    channels: dict[str, ChannelStats]
    uptime: dict[str, UptimeStats]
    static: dict[str, _Static]
    existing: frozenset[str] = frozenset()
    require_trampoline: bool = False
    preferred: frozenset[str] = frozenset()
    notes: list[str] = field(default_factory=list)


def _static_peers(settings: NodeSettings) -> dict[str, _Static]:
    out: dict[str, _Static] = {}
    for text, trampoline in [(s, False) for s in settings.static_peers] + [
        (s, True) for s in settings.static_trampoline_peers
    ]:
        try:
            pubkey, address = parse_connection_string(text)
        except ValueError:
            continue  # settings validate these; stay safe if built without validation
        previous = out.get(pubkey)
        out[pubkey] = _Static(address, trampoline or (previous is not None and previous.trampoline))
    return out


def _context(
    db: NodeDB,
    settings: NodeSettings,
    now: datetime,
    *,
    pubkey: str | None = None,
    existing_peers: Collection[str] = (),
    require_trampoline: bool = False,
    prefer_pubkeys: Iterable[str] = (),
) -> _Context:
    window = timedelta(days=settings.ranking_uptime_window_days)
    uptime = (
        {pubkey: db.uptime_stats(pubkey, window, now)}
        if pubkey
        else db.uptime_by_pubkey(window, now)
    )
    return _Context(
        settings=settings,
        now=to_ts(now),
        blacklist=db.active_blacklist(now, pubkey),
        failures=db.failure_stats(pubkey),
        channels=db.channel_stats(pubkey),
        uptime=uptime,
        static=_static_peers(settings),
        existing=frozenset(p for p in (normalize_pubkey(x) for x in existing_peers) if p),
        require_trampoline=require_trampoline,
        preferred=frozenset(p for p in (normalize_pubkey(x) for x in prefer_pubkeys) if p),
    )


def _candidates(db: NodeDB, ctx: _Context, pubkey: str | None = None) -> list[NodeRecord]:
    if pubkey is not None:
        node = db.get_node(pubkey)
        nodes = [node] if node else []
    else:
        # In trampoline mode only trampolines can carry our payments: filter in SQL.
        nodes = db.list_nodes(trampoline_only=ctx.require_trampoline)
    known = {n.pubkey for n in nodes}
    for key, static in sorted(ctx.static.items()):
        if key not in known and (pubkey is None or key == pubkey):
            nodes.append(
                NodeRecord(
                    pubkey=key,
                    alias=None,
                    capacity_sat=None,
                    channel_count=None,
                    first_seen=None,
                    added_at=ctx.now,
                    first_source="static",
                    source="static",
                    updated_at=ctx.now,
                    trampoline=static.trampoline,
                    seeded=False,
                    addresses=(static.address,),
                )
            )
    return nodes


def evaluate(node: NodeRecord, ctx: _Context) -> Evaluation:
    """Score one node and list its exclusions. Pure: everything comes from ``ctx``."""
    s = ctx.settings
    pk = node.pubkey
    static = ctx.static.get(pk)
    trampoline = node.trampoline or (static is not None and static.trampoline)
    trusted = node.seeded or static is not None
    reasons: list[str] = []
    exclusions: list[str] = []

    # Where to connect: the static address first, then clearnet, Tor only when allowed.
    addresses = list(node.addresses)
    if static is not None:
        addresses = [static.address] + [a for a in addresses if a != static.address]
    usable = [a for a in addresses if not a.is_tor]
    if s.allow_tor_peers:
        usable += [a for a in addresses if a.is_tor]
    strings = [f"{pk}@{a}" for a in usable]
    connection: str | None = strings[0] if strings else None
    if connection is None and pk in ELECTRUM_HARDCODED_TRAMPOLINES:
        connection = pk
        reasons.append("hardcoded Electrum trampoline: connects by bare pubkey")
    elif connection is None:
        tor_only = any(a.is_tor for a in addresses)
        exclusions.append(
            "tor_only: only .onion addresses and allow_tor_peers is off"
            if tor_only
            else "no_address: no address known"
        )

    if ctx.require_trampoline and not trampoline:
        exclusions.append("not_trampoline: trampoline mode can only send through trampolines")
    if pk in ctx.existing and not s.allow_same_peer_channels:
        exclusions.append("existing_peer: the wallet already has a channel with it")
    entry = ctx.blacklist.get(pk)
    if entry is not None:
        until = "until removed" if entry.until is None else f"until {_iso(entry.until)}"
        exclusions.append(f"blacklisted: {entry.reason} ({until})")

    failures = ctx.failures.get(pk)
    streak = failures.consecutive if failures else 0
    if failures and streak and failures.last_failure_at is not None:
        last = failures.last_failure_at
        if streak >= s.max_failures_before_blacklist and ctx.now < last + _days(s.blacklist_days):
            exclusions.append(
                f"repeated_failures: {streak} failed opens in a row "
                f"(until {_iso(last + _days(s.blacklist_days))})"
            )
        else:
            cooldown = cooldown_seconds(streak, s)
            if ctx.now < last + cooldown:
                exclusions.append(
                    f"cooldown: {streak} failed open(s) in a row (until {_iso(last + cooldown)})"
                )

    stats = ctx.channels.get(pk)
    closed_on_us = stats.last_closed_on_us_at if stats else None
    if closed_on_us is not None and ctx.now < closed_on_us + _days(s.blacklist_days):
        exclusions.append(f"closed_on_us: the peer closed our channel at {_iso(closed_on_us)}")

    age_days = None if node.first_seen is None else (ctx.now - node.first_seen) / 86400
    if not trusted:
        exclusions.extend(_below_minimums(node, age_days, s))

    # Score.
    score = 0.0
    if pk in ctx.preferred:
        score += W_PREFERRED
        reasons.append(f"cashout node: a direct channel makes cashouts one hop (+{W_PREFERRED:g})")
    accepted = bool(stats and stats.accepted)
    lifetime_days = (stats.longest_lifetime_s / 86400) if stats else 0.0
    if accepted:
        score += W_ACCEPTED
        reasons.append(f"accepted a channel from us (+{W_ACCEPTED:g})")
    if lifetime_days > 0:
        part = W_KEPT * min(1.0, lifetime_days / s.friendly_min_days)
        score += part
        reasons.append(f"kept a channel up {lifetime_days:.1f} days (+{part:.1f})")
    uptime = ctx.uptime.get(pk)
    ratio = uptime.ratio if uptime else None
    if ratio is None:
        score += W_UPTIME * UNKNOWN_UPTIME
        reasons.append(
            f"uptime unknown, counted as {UNKNOWN_UPTIME:.0%} (+{W_UPTIME * UNKNOWN_UPTIME:g})"
        )
    else:
        score += W_UPTIME * ratio
        reasons.append(
            f"uptime {ratio:.0%} over {uptime.samples if uptime else 0} samples "
            f"(+{W_UPTIME * ratio:.1f})"
        )
    if node.channel_count:
        part = W_CONNECTIVITY * min(1.0, math.log10(1 + node.channel_count) / 3)
        score += part
        reasons.append(f"{node.channel_count} channels (+{part:.1f})")
    if node.capacity_sat:
        part = W_CAPACITY * min(1.0, math.log10(1 + node.capacity_sat / 1e6) / 4)
        score += part
        reasons.append(f"capacity {node.capacity_sat:,} sat (+{part:.1f})")
    if age_days is not None and age_days > 0:
        part = W_AGE * min(1.0, age_days / 1095)
        score += part
        reasons.append(f"on the network {age_days:.0f} days (+{part:.1f})")
    if trusted:
        score += W_TRUSTED
        reasons.append(f"{'static peer' if static else 'seeded'} (+{W_TRUSTED:g})")
    if streak and not any(e.startswith(("cooldown", "repeated")) for e in exclusions):
        part = W_FAILURE * min(streak, 4)
        score -= part
        reasons.append(f"{streak} failed open(s) in a row (-{part:g})")
    if trampoline:
        reasons.append("trampoline")

    friendly = accepted and lifetime_days >= s.friendly_min_days
    return Evaluation(
        pubkey=pk,
        alias=node.alias,
        score=round(score, 3),
        reasons=reasons,
        exclusions=exclusions,
        connection_string=connection,
        alternatives=tuple(strings[1:]),
        trampoline=trampoline,
        trusted=trusted,
        friendly=friendly,
    )


def _below_minimums(node: NodeRecord, age_days: float | None, s: NodeSettings) -> list[str]:
    out: list[str] = []
    if node.capacity_sat is None:
        out.append("below_minimum: capacity unknown")
    elif node.capacity_sat < s.min_capacity_sat:
        out.append(f"below_minimum: capacity {node.capacity_sat} < {s.min_capacity_sat} sat")
    if node.channel_count is None:
        out.append("below_minimum: channel count unknown")
    elif node.channel_count < s.min_channel_count:
        out.append(f"below_minimum: {node.channel_count} < {s.min_channel_count} channels")
    if age_days is None:
        out.append("below_minimum: network age unknown")
    elif age_days < s.min_age_days:
        out.append(f"below_minimum: {age_days:.0f} < {s.min_age_days:g} days on the network")
    return out


def cooldown_seconds(failures_in_a_row: int, settings: NodeSettings) -> int:
    """The cooldown after ``failures_in_a_row`` peer-side failed opens (0 for none)."""
    if failures_in_a_row <= 0:
        return 0
    grown = settings.open_failure_cooldown_base_seconds * 2 ** min(failures_in_a_row - 1, 60)
    return int(min(grown, settings.open_failure_cooldown_max_seconds))


def _days(days: float) -> int:
    return int(days * 86400)


def _iso(ts: int) -> str:
    moment = from_ts(ts)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "?"


def _safe_evaluate(node: NodeRecord, ctx: _Context) -> Evaluation:
    try:
        return evaluate(node, ctx)
    except Exception as exc:  # one odd record must not stop the choice for everyone
        log.warning("node_evaluation_failed", pubkey=node.pubkey, error=type(exc).__name__)
        return Evaluation(node.pubkey, node.alias, 0.0, [], ["bad_record: see log"], None)


def evaluate_nodes(
    db: NodeDB,
    settings: NodeSettings,
    now: datetime,
    *,
    existing_peers: Collection[str] = (),
    require_trampoline: bool = False,
    prefer_pubkeys: Iterable[str] = (),
) -> list[Evaluation]:
    """Every candidate, eligible first, then by score (desc) and pubkey."""
    ctx = _context(
        db,
        settings,
        now,
        existing_peers=existing_peers,
        require_trampoline=require_trampoline,
        prefer_pubkeys=prefer_pubkeys,
    )
    out = [_safe_evaluate(node, ctx) for node in _candidates(db, ctx)]
    out.sort(key=lambda e: (not e.eligible, -e.score, e.pubkey))
    return out


@dataclass(frozen=True, slots=True)
class Ranking:
    """One cycle's eligible candidates, best first, before any wallet's own peers are removed.

    Building it reads and scores the node database once; each wallet that wants channels
    then costs a scan of this short list (``choose``), not of every node.
    """

    ordered: tuple[Evaluation, ...]
    allow_same_peer: bool

    def choose(self, count: int, existing_peers: Collection[str]) -> list[PeerChoice]:
        existing = {p for p in (normalize_pubkey(x) for x in existing_peers) if p}
        out: list[PeerChoice] = []
        for evaluation in self.ordered:
            if len(out) >= count:
                break
            if evaluation.pubkey in existing and not self.allow_same_peer:
                continue
            out.append(evaluation.to_choice())
        return out


def rank_candidates(
    db: NodeDB,
    *,
    settings: NodeSettings,
    now: datetime,
    require_trampoline: bool,
    prefer_pubkeys: list[str] | None = None,
) -> Ranking:
    """Score every candidate once (trampolines only, filtered in SQL, when required)."""
    ctx = _context(
        db,
        settings,
        now,
        require_trampoline=require_trampoline,
        prefer_pubkeys=prefer_pubkeys or (),
    )
    chosen: list[Evaluation] = []
    for node in _candidates(db, ctx):
        if require_trampoline and not (node.trampoline or _static_trampoline(ctx, node.pubkey)):
            continue  # cheap early skip; evaluate() would exclude it anyway
        evaluation = _safe_evaluate(node, ctx)
        if evaluation.eligible and evaluation.connection_string:
            chosen.append(evaluation)
    chosen.sort(key=lambda e: (-e.score, e.pubkey))
    return Ranking(tuple(chosen), settings.allow_same_peer_channels)


def choose_peers(
    db: NodeDB,
    wallet_id: str,
    count: int,
    *,
    settings: NodeSettings,
    now: datetime,
    existing_peers: set[str],
    require_trampoline: bool,
    prefer_pubkeys: list[str] | None = None,
) -> list[PeerChoice]:
    """Up to ``count`` distinct peers for a new channel of ``wallet_id``, best first.

    ``existing_peers``: pubkeys the wallet already has a channel with (opening ones too).
    ``require_trampoline``: the wallet runs Electrum's trampoline mode (the default): only
    trampolines can carry its cashouts. ``prefer_pubkeys``: e.g. the cashout address's node
    (``db.payee_pubkeys(address)``).
    """
    if count <= 0:
        return []
    ranking = rank_candidates(
        db,
        settings=settings,
        now=now,
        require_trampoline=require_trampoline,
        prefer_pubkeys=prefer_pubkeys,
    )
    result = ranking.choose(count, existing_peers)
    log.debug(
        "peers_chosen",
        wallet_id=wallet_id,
        asked=count,
        chosen=len(result),
        candidates=len(ranking.ordered),
    )
    return result


def _static_trampoline(ctx: _Context, pubkey: str) -> bool:
    static = ctx.static.get(pubkey)
    return static is not None and static.trampoline


def explain(
    db: NodeDB,
    pubkey: str,
    settings: NodeSettings,
    now: datetime,
    *,
    existing_peers: Collection[str] = (),
    require_trampoline: bool = False,
    prefer_pubkeys: Iterable[str] = (),
) -> Evaluation | None:
    """How ranking sees one node (score, reasons, exclusions); None when it is unknown."""
    key = normalize_pubkey(pubkey)
    if key is None:
        return None
    ctx = _context(
        db,
        settings,
        now,
        pubkey=key,
        existing_peers=existing_peers,
        require_trampoline=require_trampoline,
        prefer_pubkeys=prefer_pubkeys,
    )
    nodes = _candidates(db, ctx, key)
    return _safe_evaluate(nodes[0], ctx) if nodes else None
