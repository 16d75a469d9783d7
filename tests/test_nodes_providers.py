"""Providers served on 127.0.0.1 enrich the node database through one throttled refresh."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from liquidityhelper.nodes.model import to_ts
from liquidityhelper.nodes.providers import (
    AmbossProvider,
    MempoolProvider,
    ProviderError,
    RateLimitedError,
    SeedUrlProvider,
    build_providers,
)
from liquidityhelper.nodes.ranking import choose_peers
from liquidityhelper.nodes.throttle import refresh_nodes
from tests.nodes_support import (
    T0,
    FakeProviderServer,
    memory_db,
    mempool_node,
    pk,
    ranking_row,
    serve,
    settings,
)

FAST = {"provider_min_interval_seconds": 0, "provider_max_requests_per_hour": 100}


async def test_mempool_details_enrich_a_seeded_node() -> None:
    db = memory_db()
    db.import_seed_data({"nodes": [{"pubkey": pk(1), "alias": "seed alias"}]}, "seed", now=T0)
    onion = "c" * 56 + ".onion"
    server = FakeProviderServer(
        mempool_nodes={
            pk(1): mempool_node(
                pk(1),
                alias="Real Alias",
                sockets=f"198.51.100.7:9735,[2001:db8::7]:9735,{onion}:9735,garbage",
                capacity="123456789",
                channels=321,
            )
        }
    )
    async with serve(server), httpx.AsyncClient() as client:
        provider = MempoolProvider(client, f"{server.url}/api")
        report = await refresh_nodes(db, [provider], settings(**FAST), T0)
        first_requests = list(server.requests)
        # Fresh now: a refresh the next hour asks nothing more.
        later = await refresh_nodes(db, [provider], settings(**FAST), T0 + timedelta(hours=1))
    assert later.requests == 0 and server.requests == first_requests
    assert report.failures == [] and report.nodes_updated == 1
    node = db.get_node(pk(1))
    assert node is not None
    assert node.alias == "Real Alias"
    assert node.capacity_sat == 123_456_789 and node.channel_count == 321
    assert node.first_seen == 1_600_000_000
    assert node.source == provider.name and node.updated_at == to_ts(T0)
    assert node.seeded  # a provider's data does not undo the seed's trust
    assert [str(a) for a in node.clearnet] == ["198.51.100.7:9735", "[2001:db8::7]:9735"]
    assert [str(a) for a in node.tor] == [f"{onion}:9735"]
    assert f"/api/v1/lightning/nodes/{pk(1)}" in server.requests


async def test_rankings_bring_new_nodes_then_their_details_make_them_choosable() -> None:
    db = memory_db()
    server = FakeProviderServer(
        rankings={
            "connectivity": [ranking_row(pk(10)), ranking_row(pk(11)), {"publicKey": "junk"}],
            "liquidity": [ranking_row(pk(11)), ranking_row(pk(12), channels=3)],
        },
        mempool_nodes={n: mempool_node(n) for n in (pk(10), pk(11), pk(12))},
    )
    s = settings(**FAST)
    async with serve(server), httpx.AsyncClient() as client:
        provider = MempoolProvider(client, f"{server.url}/api/")
        report = await refresh_nodes(db, [provider], s, T0)
    assert report.nodes_added == 3 and report.failures == []
    assert server.requests[:2] == [
        "/api/v1/lightning/nodes/rankings/connectivity",
        "/api/v1/lightning/nodes/rankings/liquidity",
    ]
    assert sorted(server.requests[2:]) == sorted(
        f"/api/v1/lightning/nodes/{n}" for n in (pk(10), pk(11), pk(12))
    )
    node = db.get_node(pk(12))
    assert node is not None and not node.seeded and node.clearnet
    chosen = choose_peers(
        db, "w1", 5, settings=s, now=T0, existing_peers=set(), require_trampoline=False
    )
    assert {c.pubkey for c in chosen} == {pk(10), pk(11), pk(12)}
    # Provider data never marks a trampoline.
    assert (
        choose_peers(db, "w1", 5, settings=s, now=T0, existing_peers=set(), require_trampoline=True)
        == []
    )


async def test_unknown_node_is_an_answer_not_a_failure() -> None:
    db = memory_db()
    db.upsert_node(pk(1), source="x", now=T0)
    server = FakeProviderServer()
    async with serve(server), httpx.AsyncClient() as client:
        provider = MempoolProvider(client, f"{server.url}/api")
        assert await provider.fetch_node(pk(1)) is None
        report = await refresh_nodes(db, [provider], settings(**FAST), T0)
    assert report.failures == []
    assert db.node_refreshed_at(pk(1)) == to_ts(T0)


async def test_amboss_sends_the_key_as_bearer_and_is_parsed() -> None:
    db = memory_db()
    db.upsert_node(pk(1), source="x", now=T0)
    server = FakeProviderServer(
        amboss_nodes={
            pk(1): {
                "graph_info": {
                    "node": {
                        "alias": "amb",
                        "pub_key": pk(1),
                        "addresses": [{"addr": "198.51.100.9:9735", "network": "tcp"}],
                    },
                    "channels": {"num_channels": 42, "total_capacity": "900000000"},
                }
            }
        }
    )
    async with serve(server), httpx.AsyncClient() as client:
        s = settings(
            amboss_api_url=f"{server.url}/graphql", amboss_api_key=SecretStr("k3y"), **FAST
        )
        providers = build_providers(s, client)
        assert [type(p) for p in providers] == [AmbossProvider]
        assert "k3y" not in repr(providers[0])
        report = await refresh_nodes(db, providers, s, T0)
        unknown = await AmbossProvider(client, f"{server.url}/graphql").fetch_node(pk(2))
    assert report.failures == []
    assert server.auth_headers == ["Bearer k3y", None]
    assert unknown is None
    node = db.get_node(pk(1))
    assert node is not None
    assert (node.alias, node.channel_count, node.capacity_sat) == ("amb", 42, 900_000_000)
    assert [str(a) for a in node.addresses] == ["198.51.100.9:9735"]


async def test_remote_seed_list_is_imported_as_trusted_with_bad_entries_skipped() -> None:
    db = memory_db()
    server = FakeProviderServer(
        seed={
            "nodes": [
                {"pubkey": pk(1), "address": "seed.example.com:9735", "trampoline": True},
                {"pubkey": "nope"},
            ]
        }
    )
    async with serve(server), httpx.AsyncClient() as client:
        s = settings(node_seed_urls=[f"{server.url}/seed.json"], **FAST)
        providers = build_providers(s, client)
        assert [type(p) for p in providers] == [SeedUrlProvider]
        report = await refresh_nodes(db, providers, s, T0)
        # A seed list is fetched again only after seed_refresh_hours.
        again = await refresh_nodes(db, providers, s, T0 + timedelta(hours=1))
    assert report.nodes_added == 1 and again.requests == 0
    node = db.get_node(pk(1))
    assert node is not None and node.seeded and node.trampoline


async def test_provider_errors_are_typed() -> None:
    server = FakeProviderServer(replies=[(429, {"Retry-After": "30"}), (500, {})])
    async with serve(server), httpx.AsyncClient() as client:
        provider = MempoolProvider(client, f"{server.url}/api")
        with pytest.raises(RateLimitedError) as limited:
            await provider.fetch_node(pk(1))
        assert limited.value.retry_after == "30"
        with pytest.raises(ProviderError):
            await provider.fetch_node(pk(1))
    async with httpx.AsyncClient() as client:
        # Nothing listens there any more: a network error is a ProviderError too.
        with pytest.raises(ProviderError):
            await MempoolProvider(client, f"{server.url}/api").fetch_node(pk(1))


async def test_no_provider_is_on_by_default() -> None:
    async with httpx.AsyncClient() as client:
        assert build_providers(settings(), client) == []
