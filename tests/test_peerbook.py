"""The loop's use of the node database: background provider refresh, peer choice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from liquidityhelper.config import load_settings
from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.nodes.providers import build_providers
from liquidityhelper.peerbook import NodePeerBook
from tests.nodes_support import FakeProviderServer, pk, ranking_row, serve

NOW = datetime(2026, 11, 24, tzinfo=UTC)


async def test_refresh_runs_in_the_background_and_enriches_the_database() -> None:
    server = FakeProviderServer()
    server.rankings["connectivity"] = [ranking_row(pk(i)) for i in range(3)]
    async with serve(server), httpx.AsyncClient() as http:
        settings = load_settings(nodes={"mempool_api_url": f"{server.url}/api"})
        db = NodeDB.open(":memory:")
        book = NodePeerBook(db, settings, build_providers(settings.nodes, http))
        book.refresh_in_background(NOW)  # returns at once
        first = book._refreshing
        book.refresh_in_background(NOW)  # still running: not started twice
        assert book._refreshing is first and first is not None
        await asyncio.wait_for(first, 10)
        assert db.node_count() == 3
        assert server.requests == ["/api/v1/lightning/nodes/rankings/connectivity"]
        await book.aclose()


async def test_no_provider_means_no_traffic_and_no_task() -> None:
    db = NodeDB.open(":memory:")
    book = NodePeerBook(db, load_settings(), [])
    book.refresh_in_background(NOW)
    assert book._refreshing is None


def test_package_seed_only_on_mainnet() -> None:
    db = NodeDB.open(":memory:")
    NodePeerBook(db, load_settings(network="regtest")).seed(NOW)
    assert db.node_count() == 0
    NodePeerBook(db, load_settings()).seed(NOW)
    book = NodePeerBook(db, load_settings())
    assert db.node_count() > 0
    assert "03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f" in (
        book.trampolines()
    )
