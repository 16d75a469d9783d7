"""Throttles hold (per hour, min interval, Retry-After), persist, and never block the loop."""

from __future__ import annotations

import math
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
from structlog.testing import capture_logs

from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.nodes.model import NodeInfo
from liquidityhelper.nodes.providers import MempoolProvider
from liquidityhelper.nodes.throttle import Throttle, parse_retry_after, refresh_nodes
from tests.nodes_support import (
    T0,
    FakeProviderServer,
    memory_db,
    mempool_node,
    pk,
    serve,
    settings,
)


def _db_with_stale_nodes(n: int, db: NodeDB | None = None) -> NodeDB:
    db = db or memory_db()
    for i in range(n):
        db.upsert_node(pk(i), source="x", now=T0)
    return db


def _server(n: int) -> FakeProviderServer:
    return FakeProviderServer(mempool_nodes={pk(i): mempool_node(pk(i)) for i in range(n)})


async def test_at_most_n_requests_per_hour_however_often_refresh_runs() -> None:
    db = _db_with_stale_nodes(10)
    server = _server(10)
    s = settings(provider_min_interval_seconds=0, provider_max_requests_per_hour=3)
    async with serve(server), httpx.AsyncClient() as client:
        provider = MempoolProvider(client, f"{server.url}/api")
        reports = [
            await refresh_nodes(db, [provider], s, T0 + timedelta(minutes=m))
            for m in range(0, 60, 5)
        ]
        assert len(server.requests) == 3
        assert reports[0].requests == 3 and reports[0].throttled == [provider.name]
        assert all(r.requests == 0 for r in reports[1:])
        # The window slides: an hour after the first requests, three more.
        await refresh_nodes(db, [provider], s, T0 + timedelta(hours=1))
        assert len(server.requests) == 6


async def test_min_interval_between_requests() -> None:
    db = _db_with_stale_nodes(5)
    server = _server(5)
    s = settings(provider_min_interval_seconds=60, provider_max_requests_per_hour=100)
    async with serve(server), httpx.AsyncClient() as client:
        provider = MempoolProvider(client, f"{server.url}/api")
        counts = []
        for seconds in (0, 30, 59, 60, 61, 120):
            report = await refresh_nodes(db, [provider], s, T0 + timedelta(seconds=seconds))
            counts.append(report.requests)
    assert counts == [1, 0, 0, 1, 0, 1]


async def test_429_with_retry_after_is_honoured_and_the_job_is_retried() -> None:
    db = memory_db()
    server = FakeProviderServer(
        rankings={"connectivity": [], "liquidity": []},
        replies=[(429, {"Retry-After": "120"})],
    )
    s = settings(provider_min_interval_seconds=0, provider_max_requests_per_hour=100)
    async with serve(server), httpx.AsyncClient() as client:
        provider = MempoolProvider(client, f"{server.url}/api")
        with capture_logs() as logs:
            first = await refresh_nodes(db, [provider], s, T0)
        assert first.rate_limited == [provider.name] and first.requests == 1
        assert any(
            e["event"] == "provider_rate_limited" and e["log_level"] == "warning" for e in logs
        )
        blocked = await refresh_nodes(db, [provider], s, T0 + timedelta(seconds=119))
        assert blocked.requests == 0
        after = await refresh_nodes(db, [provider], s, T0 + timedelta(seconds=121))
    # The ranking that was refused was not marked done: it is asked again first.
    assert server.requests == [
        "/api/v1/lightning/nodes/rankings/connectivity",
        "/api/v1/lightning/nodes/rankings/connectivity",
        "/api/v1/lightning/nodes/rankings/liquidity",
    ]
    assert after.requests == 2 and after.rate_limited == []


async def test_429_without_retry_after_backs_off_by_the_default() -> None:
    db = _db_with_stale_nodes(1)
    server = FakeProviderServer(replies=[(429, {})], mempool_nodes={pk(0): mempool_node(pk(0))})
    s = settings(
        provider_min_interval_seconds=0,
        provider_max_requests_per_hour=100,
        provider_default_backoff_seconds=600,
    )
    async with serve(server), httpx.AsyncClient() as client:
        provider = MempoolProvider(client, f"{server.url}/api")
        provider.top_lists = ()
        await refresh_nodes(db, [provider], s, T0)
        assert (await refresh_nodes(db, [provider], s, T0 + timedelta(seconds=599))).requests == 0
        assert (await refresh_nodes(db, [provider], s, T0 + timedelta(seconds=600))).requests == 1
    node = db.get_node(pk(0))
    assert node is not None and node.capacity_sat is not None


async def test_failures_never_raise_and_never_mark_a_job_done() -> None:
    db = _db_with_stale_nodes(1)
    server = FakeProviderServer(replies=[(500, {})], mempool_nodes={pk(0): mempool_node(pk(0))})
    s = settings(provider_min_interval_seconds=0, provider_max_requests_per_hour=100)
    async with serve(server), httpx.AsyncClient() as client:
        provider = MempoolProvider(client, f"{server.url}/api")
        with capture_logs() as logs:
            report = await refresh_nodes(db, [provider], s, T0)
        assert report.failures and report.failures[0].startswith(provider.name)
        assert [e["log_level"] for e in logs if e["event"] == "provider_failed"] == ["warning"]
        assert db.job_last_success(provider.name, "top:connectivity") is None
        retry = await refresh_nodes(db, [provider], s, T0 + timedelta(seconds=1))
        assert retry.failures == []
        assert db.job_last_success(provider.name, "top:connectivity") is not None
    # A provider nobody answers for: the refresh still returns.
    async with httpx.AsyncClient() as client:
        gone = MempoolProvider(client, f"{server.url}/api")
        report = await refresh_nodes(db, [gone], s, T0 + timedelta(days=60))
    assert report.failures and report.requests == 1


async def test_a_broken_provider_does_not_stop_the_others() -> None:
    class Broken:
        name = "broken"
        top_lists: tuple[str, ...] = ("x",)
        node_details = True
        trusted = False

        async def fetch_node(self, pubkey: str) -> NodeInfo | None:
            raise RuntimeError("bug")

        async def fetch_top_nodes(self, limit: int, kind: str | None = None) -> list[NodeInfo]:
            raise KeyError("bug")

    db = _db_with_stale_nodes(1)
    server = _server(1)
    s = settings(provider_min_interval_seconds=0, provider_max_requests_per_hour=100)
    async with serve(server), httpx.AsyncClient() as client:
        good = MempoolProvider(client, f"{server.url}/api")
        report = await refresh_nodes(db, [Broken(), good], s, T0)
    assert report.failures == ["broken: KeyError"]
    node = db.get_node(pk(0))
    assert node is not None and node.capacity_sat is not None


def test_throttle_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "known_ln_nodes.db"
    db = NodeDB.open(path)
    throttle = Throttle(db, "p", min_interval_seconds=60, max_per_hour=2)
    assert throttle.try_acquire(T0)
    assert not throttle.try_acquire(T0 + timedelta(seconds=59))
    throttle.honour_retry_after(T0, "3600", default_seconds=0)
    db.close()
    again = Throttle(NodeDB.open(path), "p", min_interval_seconds=60, max_per_hour=2)
    assert again.wait_seconds(T0 + timedelta(seconds=60)) == 3540
    assert again.try_acquire(T0 + timedelta(seconds=3600))
    # One request in the last hour: another may go; then the third waits an hour.
    assert again.wait_seconds(T0 + timedelta(seconds=3700)) == 0
    assert again.try_acquire(T0 + timedelta(seconds=3700))
    assert again.wait_seconds(T0 + timedelta(seconds=3800)) == 3400


def test_zero_requests_per_hour_means_never() -> None:
    throttle = Throttle(memory_db(), "p", min_interval_seconds=0, max_per_hour=0)
    assert throttle.wait_seconds(T0) == math.inf
    assert not throttle.try_acquire(T0)


def test_retry_after_parsing() -> None:
    assert parse_retry_after("120", T0) == 120
    assert parse_retry_after(format_datetime(T0 + timedelta(minutes=5), usegmt=True), T0) == 300
    assert parse_retry_after(format_datetime(T0 - timedelta(minutes=5), usegmt=True), T0) == 0
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after(None, T0) is None
