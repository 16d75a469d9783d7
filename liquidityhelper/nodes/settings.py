"""Settings of the node database: sources, provider throttles, peer rules and closing rules.

The main config nests this model as ``nodes`` (TOML table ``[nodes]``, environment
``LIQUIDITYHELPER_NODES__KEY``). Every default is safe: no provider is on, so nothing leaves
the machine until the operator names one.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from liquidityhelper.nodes.model import parse_connection_string


def _check_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value.rstrip("/")


class NodeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # --- sources and providers -----------------------------------------------------------
    node_seed_urls: list[str] = Field(
        default=[],
        description="URLs of extra seed lists in our JSON seed format, fetched at most every "
        "seed_refresh_hours. Empty: only the seed list shipped in the package.",
    )
    mempool_api_url: str | None = Field(
        default=None,
        description='Base URL of a mempool.space-compatible API, e.g. "https://mempool.space/api" '
        "or the merchant's own instance. None: provider off.",
    )
    amboss_api_url: str | None = Field(
        default=None,
        description='Amboss GraphQL endpoint, e.g. "https://api.amboss.space/graphql". None: off.',
    )
    amboss_api_key: SecretStr | None = Field(
        default=None, description="Amboss API key (sent as a Bearer token); optional."
    )
    provider_min_interval_seconds: float = Field(
        default=60.0, ge=0, description="Seconds: minimum gap between two requests to a provider."
    )
    provider_max_requests_per_hour: int = Field(
        default=30, ge=0, description="Requests: most a provider gets in any 3,600 s; 0 = none."
    )
    provider_timeout_seconds: float = Field(
        default=20.0, gt=0, description="Seconds: timeout of one provider request."
    )
    provider_default_backoff_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds: pause after a 429 that carries no usable Retry-After.",
    )
    node_refresh_days: float = Field(
        default=30.0, gt=0, description="Days: a node's details are fetched at most this often."
    )
    top_nodes_refresh_hours: float = Field(
        default=24.0, gt=0, description="Hours: a provider's top-node lists are fetched this often."
    )
    top_nodes_limit: int = Field(
        default=100, ge=1, description="Nodes: how many of a provider's top lists to keep."
    )
    seed_refresh_hours: float = Field(
        default=24.0, gt=0, description="Hours: each node_seed_urls list is fetched this often."
    )

    # --- minimums for nodes that come from providers (seeded and static nodes are exempt) ---
    min_capacity_sat: int = Field(
        default=1_000_000, ge=0, description="Sats: a provider node's total channel capacity."
    )
    min_channel_count: int = Field(
        default=10, ge=0, description="Channels: a provider node's public channel count."
    )
    min_age_days: float = Field(
        default=365.0, ge=0, description="Days: since the network first saw a provider node."
    )

    # --- failures, blacklist, friendliness ----------------------------------------------
    open_failure_cooldown_base_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds: cooldown after one failed open; doubles with each further "
        "consecutive failure.",
    )
    open_failure_cooldown_max_seconds: float = Field(
        default=7 * 86400.0, ge=0, description="Seconds: the cooldown never grows beyond this."
    )
    max_failures_before_blacklist: int = Field(
        default=5,
        ge=1,
        description="Failed opens in a row (peer-side errors) after which the node is "
        "blacklisted for blacklist_days.",
    )
    blacklist_days: float = Field(
        default=30.0, ge=0, description="Days: how long an automatic blacklist entry lasts."
    )
    friendly_min_days: float = Field(
        default=30.0,
        gt=0,
        description="Days: a channel kept up this long earns the full 'kept it up' score.",
    )
    ranking_uptime_window_days: float = Field(
        default=30.0, gt=0, description="Days: window of our uptime samples used in the score."
    )

    # --- closing unreliable channels ------------------------------------------------------
    close_offline_after_days: float = Field(
        default=14.0, gt=0, description="Days: a peer offline this long gets its channel closed."
    )
    min_uptime_ratio: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Ratio 0..1: below this uptime over uptime_window_days the channel is closed.",
    )
    uptime_window_days: float = Field(
        default=7.0, gt=0, description="Days: window for the min_uptime_ratio rule."
    )
    min_observation_coverage: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Ratio 0..1: share of the hours in a closing rule's window in which we "
        "sampled the peer; below it we do not know enough to close (e.g. after downtime).",
    )
    min_uptime_samples: int = Field(
        default=10, ge=1, description="Samples: fewest in the window for the uptime rule."
    )
    close_retry_hours: float = Field(
        default=24.0, ge=0, description="Hours: wait after a failed close before trying again."
    )
    max_closes_per_wallet_per_day: int = Field(
        default=1, ge=0, description="Closes: most per wallet in any 24 h; 0 = never close."
    )

    # --- choice -----------------------------------------------------------------------------
    allow_same_peer_channels: bool = Field(
        default=False,
        description="Allow a second channel from one wallet to a peer it already has one with.",
    )
    allow_tor_peers: bool = Field(
        default=False,
        description="Allow .onion addresses (needs a Tor proxy in Electrum). Clearnet is "
        "preferred even when allowed.",
    )
    static_peers: list[str] = Field(
        default=[],
        description="pubkey@host:port strings always considered (exempt from the minimums).",
    )
    static_trampoline_peers: list[str] = Field(
        default=[],
        description="pubkey@host:port strings of trampoline nodes (e.g. your own trampoline or "
        "a test network's): like static_peers, and usable when a trampoline is required.",
    )

    @field_validator("node_seed_urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return [_check_url(v) for v in value]

    @field_validator("mempool_api_url", "amboss_api_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else _check_url(value)

    @field_validator("static_peers", "static_trampoline_peers")
    @classmethod
    def _peers(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_connection_string(item)
        return [v.strip() for v in value]
