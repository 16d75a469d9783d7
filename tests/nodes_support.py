"""Helpers for the node database tests: keys, channels, a fake provider server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from aiohttp import web

from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.nodes.settings import NodeSettings
from liquidityhelper.wallet.base import Channel, ChannelState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=365)
_points = count(1)


def pk(n: int, prefix: str = "02") -> str:
    """A syntactically valid node pubkey, distinct per ``n``."""
    return f"{prefix}{n:064x}"


def settings(**overrides: Any) -> NodeSettings:
    return NodeSettings(**overrides)


def memory_db() -> NodeDB:
    return NodeDB.open(":memory:")


def add_provider_node(
    db: NodeDB,
    pubkey: str,
    *,
    now: datetime = T0,
    address: str | None = "203.0.113.1:9735",
    capacity: int | None = 50_000_000,
    channels: int | None = 100,
    age: timedelta | None = 3 * YEAR,
    alias: str | None = None,
) -> None:
    """A node as a provider would describe it (not seeded, so the minimums apply)."""
    from liquidityhelper.nodes.model import parse_address, to_ts

    addresses = None
    if address is not None:
        parsed = parse_address(address)
        assert parsed is not None
        addresses = [parsed]
    db.upsert_node(
        pubkey,
        source="test-provider",
        now=now,
        alias=alias,
        addresses=addresses,
        capacity_sat=capacity,
        channel_count=channels,
        first_seen=None if age is None else to_ts(now - age),
    )


def channel(
    peer: str,
    *,
    online: bool = True,
    state: ChannelState = ChannelState.OPEN,
    point: str | None = None,
    capacity: int = 1_000_000,
) -> Channel:
    return Channel(
        channel_point=point or f"{next(_points):064x}:0",
        state=state,
        raw_state=state.value.upper(),
        peer_pubkey=peer,
        peer_online=online,
        capacity_sat=capacity,
        local_sat=capacity // 2,
        remote_sat=capacity // 2,
        local_reserve_sat=capacity // 100,
        remote_reserve_sat=capacity // 100,
    )


def sample_hourly(
    db: NodeDB,
    wallet_id: str,
    channels_at: Any,
    start: datetime,
    hours: int,
) -> datetime:
    """Record one sample per hour for ``hours`` hours; ``channels_at(i)`` gives the list."""
    moment = start
    for i in range(hours):
        moment = start + timedelta(hours=i)
        db.record_peer_samples(wallet_id, channels_at(i), moment)
    return moment


# ---------------------------------------------------------------------------------------------
# A mempool.space / Amboss / seed-list look-alike
# ---------------------------------------------------------------------------------------------


@dataclass
class FakeProviderServer:
    """Serves ``/api/v1/lightning/...`` (mempool), ``/graphql`` (Amboss) and ``/seed.json``.

    ``replies`` queues (status, headers) answers that override the next requests.
    """

    mempool_nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    rankings: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"connectivity": [], "liquidity": []}
    )
    amboss_nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: Any = field(default_factory=lambda: {"nodes": []})
    replies: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    auth_headers: list[str | None] = field(default_factory=list)
    url: str = ""

    def _override(self) -> web.Response | None:
        if not self.replies:
            return None
        status, headers = self.replies.pop(0)
        return web.Response(status=status, headers=headers, text="slow down")

    async def _node(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        override = self._override()
        if override is not None:
            return override
        node = self.mempool_nodes.get(request.match_info["pubkey"])
        if node is None:
            return web.Response(status=404, text="not found")
        return web.json_response(node)

    async def _ranking(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        override = self._override()
        if override is not None:
            return override
        return web.json_response(self.rankings.get(request.match_info["kind"], []))

    async def _graphql(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        self.auth_headers.append(request.headers.get("Authorization"))
        override = self._override()
        if override is not None:
            return override
        body = await request.json()
        node = self.amboss_nodes.get(body["variables"]["pubkey"])
        return web.json_response({"data": {"getNode": node}})

    async def _seed(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        override = self._override()
        if override is not None:
            return override
        return web.Response(text=json.dumps(self.seed), content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/lightning/nodes/rankings/{kind}", self._ranking)
        app.router.add_get("/api/v1/lightning/nodes/{pubkey}", self._node)
        app.router.add_post("/graphql", self._graphql)
        app.router.add_get("/seed.json", self._seed)
        return app


@asynccontextmanager
async def serve(server: FakeProviderServer) -> AsyncIterator[FakeProviderServer]:
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.url = f"http://{host}:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


def mempool_node(
    pubkey: str,
    *,
    alias: str = "node",
    sockets: str = "198.51.100.7:9735",
    capacity: int | str = 250_000_000,
    channels: int = 400,
    first_seen: int = 1_600_000_000,
) -> dict[str, Any]:
    """A node-details reply shaped like mempool.space's ``/v1/lightning/nodes/{pubkey}``."""
    return {
        "public_key": pubkey,
        "alias": alias,
        "first_seen": first_seen,
        "updated_at": 1_700_000_000,
        "color": "#ffffff",
        "sockets": sockets,
        "as_number": 0,
        "active_channel_count": channels,
        "capacity": capacity,
        "opened_channel_count": channels,
        "closed_channel_count": 3,
    }


def ranking_row(pubkey: str, *, channels: int = 500, capacity: int = 10**10) -> dict[str, Any]:
    return {
        "publicKey": pubkey,
        "alias": f"top {pubkey[-4:]}",
        "channels": channels,
        "capacity": capacity,
        "firstSeen": 1_550_000_000,
        "updatedAt": 1_700_000_000,
        "city": None,
        "country": None,
    }
