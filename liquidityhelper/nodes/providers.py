"""Node data providers behind one interface; each is optional and off by default.

A provider method makes exactly one HTTP request per call (``fetch_top_nodes`` with a
``kind``), so the throttle in :mod:`liquidityhelper.nodes.throttle` can count every request.
Errors surface as :class:`ProviderError` (network, 5xx, unreadable reply) or
:class:`RateLimitedError` (429, or 503 with Retry-After); "no such node" is ``None``.

- :class:`MempoolProvider`: a mempool.space-compatible REST API (``base_url`` like
  ``https://mempool.space/api``): ``GET {base}/v1/lightning/nodes/{pubkey}`` (``public_key``,
  ``alias``, ``first_seen`` unix s, ``sockets`` "host:port,host:port", ``capacity`` sats as int
  or decimal string, ``active_channel_count``) and ``GET {base}/v1/lightning/nodes/rankings/
  {connectivity|liquidity}`` (lists of ``publicKey``, ``alias``, ``channels``, ``capacity``,
  ``firstSeen``; no addresses).
- :class:`AmbossProvider`: Amboss GraphQL (``POST {url}``, ``Authorization: Bearer KEY`` when
  a key is set). Assumed shape: ``getNode(pubkey) { graph_info { node { alias pub_key
  addresses { addr network } } channels { num_channels total_capacity } } }``; it gives no
  network first-seen date and no top lists here. A reply of another shape is a ProviderError.
- :class:`SeedUrlProvider`: a remote seed list in our JSON format (one "top list", trusted).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx
import structlog

from liquidityhelper.nodes.model import (
    NodeAddress,
    NodeInfo,
    as_count,
    clean_alias,
    normalize_pubkey,
    parse_address,
)
from liquidityhelper.nodes.seedfile import SeedFormatError, parse_seed_data
from liquidityhelper.nodes.settings import NodeSettings

log = structlog.get_logger(__name__)


class ProviderError(Exception):
    """A provider could not answer: network error, HTTP error, a reply we cannot read."""


class RateLimitedError(ProviderError):
    """The provider asked us to slow down (429, or 503 with Retry-After)."""

    def __init__(self, retry_after: str | None) -> None:
        self.retry_after = retry_after  # the raw header: seconds or an HTTP date
        super().__init__(f"rate limited (Retry-After: {retry_after})")


@runtime_checkable
class NodeProvider(Protocol):
    name: str  # also the throttle key and the ``source`` recorded with its data
    top_lists: tuple[str, ...]  # kinds of top list it serves; each fetch is one request
    node_details: bool  # whether fetch_node can answer at all
    trusted: bool  # its nodes count as seeded (curated lists)

    async def fetch_node(self, pubkey: str) -> NodeInfo | None:
        """Details of one node; None when the provider does not know it."""

    async def fetch_top_nodes(self, limit: int, kind: str | None = None) -> list[NodeInfo]:
        """Top nodes of list ``kind`` (all of ``top_lists`` when None: several requests)."""


async def _request_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """One request; decoded JSON, None on 404, typed errors otherwise."""
    try:
        response = await client.request(method, url, json=json, headers=headers)
    except httpx.HTTPError as exc:
        raise ProviderError(f"{type(exc).__name__} on {_where(url)}") from exc
    retry_after = response.headers.get("Retry-After")
    if response.status_code == 429 or (response.status_code == 503 and retry_after):
        raise RateLimitedError(retry_after)
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise ProviderError(f"HTTP {response.status_code} on {_where(url)}")
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderError(f"unreadable JSON from {_where(url)}") from exc


def _where(url: str) -> str:
    """Host and path only: query strings may carry keys."""
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def _addresses(texts: list[Any]) -> tuple[NodeAddress, ...]:
    out: list[NodeAddress] = []
    for text in texts:
        address = parse_address(text)
        if address is not None and address not in out:
            out.append(address)
    return tuple(out)


def _first_seen(value: Any) -> int | None:
    ts = as_count(value)
    return ts if ts and ts > 1_230_768_000 else None  # 0 or pre-2009 means "unknown"


# ---------------------------------------------------------------------------------------------
# mempool.space
# ---------------------------------------------------------------------------------------------


class MempoolProvider:
    top_lists: tuple[str, ...] = ("connectivity", "liquidity")
    node_details = True
    trusted = False

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self.name = f"mempool:{urlsplit(self._base).netloc}"

    async def fetch_node(self, pubkey: str) -> NodeInfo | None:
        data = await _request_json(self._client, "GET", f"{self._base}/v1/lightning/nodes/{pubkey}")
        if data is None:
            return None
        return parse_mempool_node(data, pubkey)

    async def fetch_top_nodes(self, limit: int, kind: str | None = None) -> list[NodeInfo]:
        out: dict[str, NodeInfo] = {}
        for k in (kind,) if kind else self.top_lists:
            if k not in self.top_lists:
                raise ValueError(f"unknown ranking {k!r}")
            data = await _request_json(
                self._client, "GET", f"{self._base}/v1/lightning/nodes/rankings/{k}"
            )
            if not isinstance(data, list):
                raise ProviderError(f"ranking {k} is not a list")
            for row in data[:limit]:
                info = parse_mempool_ranking_row(row)
                if info is not None and info.pubkey not in out:
                    out[info.pubkey] = info
        return list(out.values())


def parse_mempool_node(data: Any, pubkey: str) -> NodeInfo:
    if not isinstance(data, dict):
        raise ProviderError("node reply is not an object")
    key = normalize_pubkey(data.get("public_key"))
    if key is None or key != normalize_pubkey(pubkey):
        raise ProviderError("node reply is about another pubkey")
    sockets = data.get("sockets")
    texts = sockets.split(",") if isinstance(sockets, str) else []
    channels = as_count(data.get("active_channel_count"))
    return NodeInfo(
        pubkey=key,
        alias=clean_alias(data.get("alias")),
        addresses=_addresses([t for t in texts if t.strip()]),
        capacity_sat=as_count(data.get("capacity")),
        channel_count=channels if channels is not None else as_count(data.get("channels")),
        first_seen=_first_seen(data.get("first_seen")),
    )


def parse_mempool_ranking_row(row: Any) -> NodeInfo | None:
    if not isinstance(row, dict):
        return None
    key = normalize_pubkey(row.get("publicKey"))
    if key is None:
        return None
    return NodeInfo(
        pubkey=key,
        alias=clean_alias(row.get("alias")),
        addresses=None,  # rankings carry no sockets; a details fetch fills them in
        capacity_sat=as_count(row.get("capacity")),
        channel_count=as_count(row.get("channels")),
        first_seen=_first_seen(row.get("firstSeen")),
    )


# ---------------------------------------------------------------------------------------------
# Amboss
# ---------------------------------------------------------------------------------------------

AMBOSS_NODE_QUERY = """
query NodeInfo($pubkey: String!) {
  getNode(pubkey: $pubkey) {
    graph_info {
      node { alias pub_key addresses { addr network } }
      channels { num_channels total_capacity }
    }
  }
}
"""


class AmbossProvider:
    top_lists: tuple[str, ...] = ()
    node_details = True
    trusted = False

    def __init__(self, client: httpx.AsyncClient, url: str, api_key: str | None = None) -> None:
        self._client = client
        self._url = url
        self._api_key = api_key
        self.name = f"amboss:{urlsplit(url).netloc}"

    def __repr__(self) -> str:  # never show the key
        return f"AmbossProvider({self.name!r})"

    async def fetch_node(self, pubkey: str) -> NodeInfo | None:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else None
        data = await _request_json(
            self._client,
            "POST",
            self._url,
            json={"query": AMBOSS_NODE_QUERY, "variables": {"pubkey": pubkey}},
            headers=headers,
        )
        if data is None:
            return None
        return parse_amboss_node(data, pubkey)

    async def fetch_top_nodes(self, limit: int, kind: str | None = None) -> list[NodeInfo]:
        return []


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_amboss_node(data: Any, pubkey: str) -> NodeInfo | None:
    if not isinstance(data, dict):
        raise ProviderError("GraphQL reply is not an object")
    body = data.get("data")
    node_part = body.get("getNode") if isinstance(body, dict) else None
    if node_part is None:
        if data.get("errors") and body is None:
            raise ProviderError("GraphQL errors")
        return None  # the API does not know the node
    graph = node_part.get("graph_info") if isinstance(node_part, dict) else None
    if not isinstance(graph, dict):
        raise ProviderError("GraphQL reply without graph_info")
    node = _as_dict(graph.get("node"))
    channels = _as_dict(graph.get("channels"))
    key = normalize_pubkey(node.get("pub_key")) or normalize_pubkey(pubkey)
    if key != normalize_pubkey(pubkey) or key is None:
        raise ProviderError("GraphQL reply is about another pubkey")
    raw_addresses = node.get("addresses")
    texts = (
        [a.get("addr") for a in raw_addresses if isinstance(a, dict)]
        if isinstance(raw_addresses, list)
        else []
    )
    return NodeInfo(
        pubkey=key,
        alias=clean_alias(node.get("alias")),
        addresses=_addresses(texts) if isinstance(raw_addresses, list) else None,
        capacity_sat=as_count(channels.get("total_capacity")),
        channel_count=as_count(channels.get("num_channels")),
    )


# ---------------------------------------------------------------------------------------------
# Remote seed lists
# ---------------------------------------------------------------------------------------------


class SeedUrlProvider:
    top_lists: tuple[str, ...] = ("seed",)
    node_details = False
    trusted = True

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._url = url
        self.name = f"seed:{_where(url)}"

    async def fetch_node(self, pubkey: str) -> NodeInfo | None:
        return None

    async def fetch_top_nodes(self, limit: int, kind: str | None = None) -> list[NodeInfo]:
        """The whole list (``limit`` does not apply: a curated list is imported entire)."""
        data = await _request_json(self._client, "GET", self._url)
        if data is None:
            raise ProviderError(f"seed list not found at {_where(self._url)}")
        try:
            return parse_seed_data(data, self.name).nodes
        except SeedFormatError as exc:
            raise ProviderError(str(exc)) from exc


def build_providers(settings: NodeSettings, client: httpx.AsyncClient) -> list[NodeProvider]:
    """The providers ``settings`` turns on (none by default), seed lists first."""
    providers: list[NodeProvider] = [
        SeedUrlProvider(client, url) for url in settings.node_seed_urls
    ]
    if settings.mempool_api_url:
        providers.append(MempoolProvider(client, settings.mempool_api_url))
    if settings.amboss_api_url:
        key = settings.amboss_api_key.get_secret_value() if settings.amboss_api_key else None
        providers.append(AmbossProvider(client, settings.amboss_api_url, key))
    return providers
