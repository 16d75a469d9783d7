"""Builds what a running daemon needs from settings: one HTTP client, backends, storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from liquidityhelper.config import Settings
from liquidityhelper.journal import Journal
from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.nodes.providers import build_providers
from liquidityhelper.peerbook import NodePeerBook
from liquidityhelper.wallet.base import WalletBackend
from liquidityhelper.wallet.bitcart import BitcartWallet

# LNURL servers and providers: short timeouts, no redirects (a redirect is refused in lnurl).
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
HTTP_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=32)


def direct_to_loopback() -> dict[str, httpx.AsyncBaseTransport]:
    """HTTP(S)_PROXY applies to the world, never to this machine's own services."""
    return {
        f"all://{host}": httpx.AsyncHTTPTransport(limits=HTTP_LIMITS)
        for host in ("127.0.0.1", "localhost", "[::1]")
    }


def http_client() -> httpx.AsyncClient:
    """The one HTTP client shape: short timeouts, no redirects, loopback never proxied."""
    return httpx.AsyncClient(
        timeout=HTTP_TIMEOUT,
        limits=HTTP_LIMITS,
        follow_redirects=False,
        mounts=direct_to_loopback(),
    )


@dataclass
class Runtime:
    settings: Settings
    http: httpx.AsyncClient
    backends: list[WalletBackend]
    journal: Journal
    nodes: NodeDB
    peers: NodePeerBook
    _closers: list[Any] = field(default_factory=list)

    def close_with(self, closer: Any) -> None:
        """Close ``closer`` (``await closer.aclose()``) when the runtime closes, first."""
        self._closers.append(closer)


def build_backends(
    settings: Settings, http: httpx.AsyncClient, **adapter_options: Any
) -> list[WalletBackend]:
    """One backend per API token: a token sees only its own user's stores."""
    return [
        BitcartWallet(
            settings.api_url,
            token.get_secret_value(),
            daemon_url=settings.daemon_url,
            daemon_user=settings.daemon_user,
            daemon_password=settings.daemon_password.get_secret_value(),
            http_client=http,
            pay_timeout_seconds=settings.payment_timeout_seconds,
            network=settings.network,
            **adapter_options,
        )
        for token in settings.api_tokens
    ]


@asynccontextmanager
async def build_runtime(settings: Settings, **adapter_options: Any) -> AsyncIterator[Runtime]:
    async with http_client() as http:
        journal = Journal.open(settings.data_dir)
        nodes = NodeDB.open_in_dir(settings.data_dir)
        peers = NodePeerBook(nodes, settings, build_providers(settings.nodes, http))
        peers.seed()
        runtime = Runtime(
            settings,
            http,
            build_backends(settings, http, **adapter_options),
            journal,
            nodes,
            peers,
        )
        try:
            yield runtime
        finally:
            for closer in runtime._closers:
                await closer.aclose()
            await peers.aclose()
            for backend in runtime.backends:
                await backend.aclose()
            journal.close()
            nodes.close()
