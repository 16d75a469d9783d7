"""Heavy, persisted provider throttles and the one-step throttled refresh.

A :class:`Throttle` keeps its state in the node database, so a restart does not reset it:

- at least ``provider_min_interval_seconds`` between two requests to one provider;
- at most ``provider_max_requests_per_hour`` requests in any 3,600 s;
- after a 429 (or 503 with Retry-After) nothing until Retry-After has passed (seconds or an
  HTTP date; ``provider_default_backoff_seconds`` when absent or unreadable; capped at 7 days).

A request counts when it is sent, whatever its outcome. A *job* (a top list, one node's
details) is marked done only after it succeeded, so a failure is retried on a later refresh.

:func:`refresh_nodes` performs one refresh: for each provider, the top lists that are due,
then the details of stale nodes, as many as its throttle allows at ``now`` (with the default
60 s interval: one request per provider per call). It never raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import structlog

from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.nodes.model import to_ts
from liquidityhelper.nodes.providers import NodeProvider, ProviderError, RateLimitedError
from liquidityhelper.nodes.settings import NodeSettings

log = structlog.get_logger(__name__)

MAX_RETRY_AFTER_SECONDS = 7 * 86400
FAILED_NODE_RETRY_SECONDS = 86400  # a node whose fetch failed is not asked again for a day


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, float(to_ts(when) - to_ts(now)))


class Throttle:
    """Request gate for one provider ``key``, persisted in ``db``; time comes from callers."""

    def __init__(
        self, db: NodeDB, key: str, *, min_interval_seconds: float, max_per_hour: int
    ) -> None:
        self._db = db
        self.key = key
        self.min_interval = float(min_interval_seconds)
        self.max_per_hour = int(max_per_hour)

    @classmethod
    def for_provider(cls, db: NodeDB, key: str, settings: NodeSettings) -> Throttle:
        return cls(
            db,
            key,
            min_interval_seconds=settings.provider_min_interval_seconds,
            max_per_hour=settings.provider_max_requests_per_hour,
        )

    def wait_seconds(self, now: datetime) -> float:
        """Seconds until a request is allowed (0: now; inf: never, max_per_hour is 0)."""
        if self.max_per_hour <= 0:
            return math.inf
        ts = to_ts(now)
        waits = [0.0]
        blocked = self._db.throttle_blocked_until(self.key)
        if blocked is not None and blocked > ts:
            waits.append(float(min(blocked - ts, MAX_RETRY_AFTER_SECONDS)))
        last = self._db.throttle_last(self.key)
        if last is not None:
            # Capped, so a clock that jumped back cannot block for longer than one interval.
            waits.append(min(self.min_interval, last + self.min_interval - ts))
        recent = self._db.throttle_times(self.key, ts - 3599)
        if len(recent) >= self.max_per_hour:
            oldest_counted = recent[len(recent) - self.max_per_hour]
            waits.append(float(min(3600, oldest_counted + 3600 - ts)))
        return max(waits)

    def try_acquire(self, now: datetime) -> bool:
        """Count a request at ``now`` and return True when one is allowed; else False."""
        if self.wait_seconds(now) > 0:
            return False
        self._db.throttle_add(self.key, to_ts(now))
        return True

    def honour_retry_after(
        self, now: datetime, retry_after: str | None, default_seconds: float
    ) -> float:
        """Block until Retry-After has passed; returns the seconds blocked."""
        seconds = parse_retry_after(retry_after, now)
        if seconds is None:
            seconds = default_seconds
        seconds = min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
        self._db.throttle_block(self.key, to_ts(now) + math.ceil(seconds))
        return seconds


@dataclass
class RefreshReport:
    requests: int = 0
    nodes_added: int = 0
    nodes_updated: int = 0
    failures: list[str] = field(default_factory=list)  # "provider: reason"
    rate_limited: list[str] = field(default_factory=list)  # providers that answered 429
    throttled: list[str] = field(default_factory=list)  # providers with work left, no budget


async def refresh_nodes(
    db: NodeDB, providers: list[NodeProvider], settings: NodeSettings, now: datetime
) -> RefreshReport:
    """One throttled refresh over every provider; logs a WARNING on failure, never raises."""
    report = RefreshReport()
    for provider in providers:
        name = getattr(provider, "name", "?")
        try:
            await _refresh_provider(db, provider, settings, now, report)
        except Exception as exc:  # a provider (or its data) must never stop the loop
            log.warning("node_refresh_failed", provider=name, error=type(exc).__name__)
            report.failures.append(f"{name}: {type(exc).__name__}")
    if report.requests:
        log.info(
            "nodes_refreshed",
            requests=report.requests,
            added=report.nodes_added,
            updated=report.nodes_updated,
            failures=len(report.failures),
        )
    return report


async def _refresh_provider(
    db: NodeDB,
    provider: NodeProvider,
    settings: NodeSettings,
    now: datetime,
    report: RefreshReport,
) -> None:
    throttle = Throttle.for_provider(db, provider.name, settings)
    ts = to_ts(now)
    # Defaults keep a minimal provider (name + the two fetch methods) usable.
    trusted = bool(getattr(provider, "trusted", False))
    top_lists: tuple[str, ...] = tuple(getattr(provider, "top_lists", ()))
    every_hours = settings.seed_refresh_hours if trusted else settings.top_nodes_refresh_hours
    for kind in top_lists:
        job = f"top:{kind}"
        last = db.job_last_success(provider.name, job)
        if last is not None and ts - last < every_hours * 3600:
            continue
        if not throttle.try_acquire(now):
            report.throttled.append(provider.name)
            return
        report.requests += 1
        try:
            infos = await provider.fetch_top_nodes(settings.top_nodes_limit, kind)
        except Exception as exc:
            db.mark_job(provider.name, job, now, ok=False)
            _on_failure(throttle, provider.name, exc, settings, now, report)
            return
        added, updated = db.upsert_nodes(infos, source=provider.name, now=now, seeded=trusted)
        report.nodes_added += added
        report.nodes_updated += updated
        db.mark_job(provider.name, job, now, ok=True)

    if not getattr(provider, "node_details", True):
        return
    stale_before = ts - int(timedelta(days=settings.node_refresh_days).total_seconds())
    while True:
        due = db.nodes_due_for_refresh(
            provider.name,
            stale_before=stale_before,
            retry_before=ts - FAILED_NODE_RETRY_SECONDS,
            limit=1,
        )
        if not due:
            return
        if not throttle.try_acquire(now):
            report.throttled.append(provider.name)
            return
        report.requests += 1
        pubkey = due[0]
        try:
            info = await provider.fetch_node(pubkey)
        except Exception as exc:
            if not isinstance(exc, RateLimitedError):  # a 429 says nothing about this node
                db.mark_node_refresh(pubkey, provider.name, now, ok=False)
            _on_failure(throttle, provider.name, exc, settings, now, report)
            return
        if info is not None:
            added, updated = db.upsert_nodes([info], source=provider.name, now=now)
            report.nodes_added += added
            report.nodes_updated += updated
        # A "not found" is an answer too: ask again only when the node is stale again.
        db.mark_node_refresh(pubkey, provider.name, now, ok=True)


def _on_failure(
    throttle: Throttle,
    name: str,
    exc: Exception,
    settings: NodeSettings,
    now: datetime,
    report: RefreshReport,
) -> None:
    if isinstance(exc, RateLimitedError):
        seconds = throttle.honour_retry_after(
            now, exc.retry_after, settings.provider_default_backoff_seconds
        )
        log.warning("provider_rate_limited", provider=name, retry_after_s=round(seconds))
        report.rate_limited.append(name)
        return
    reason = str(exc) if isinstance(exc, ProviderError) else type(exc).__name__
    log.warning("provider_failed", provider=name, reason=reason)
    report.failures.append(f"{name}: {reason}")
