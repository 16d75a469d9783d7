"""Settings: environment ``LIQUIDITYHELPER_<KEY>`` over a TOML file over defaults.

The file is optional (env alone is enough in Docker); its path comes from ``--config`` or
``LIQUIDITYHELPER_CONFIG``. Unknown keys in the file are an error, since a typo there would
otherwise silently fall back to a default. Nested tables use ``__`` in env names
(``LIQUIDITYHELPER_NODES__MIN_CAPACITY_SAT``).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from contextvars import ContextVar
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from liquidityhelper import common_functions as cf
from liquidityhelper import lnurl
from liquidityhelper.datadir import default_data_dir
from liquidityhelper.nodes.settings import NodeSettings

ENV_PREFIX = "LIQUIDITYHELPER_"
CONFIG_ENV = "LIQUIDITYHELPER_CONFIG"
MIN_CHANNEL_SAT = 60_000  # Bitcart's daemon refuses smaller fundings
# Stock Electrum peers (the trampolines) refuse incoming channels below 200,000 sats.
DEFAULT_MIN_CHANNEL_SAT = cf.ELECTRUM_PEER_MIN_FUNDING_SAT
MAX_CHANNEL_SAT = 16_777_215  # 2**24 - 1: Electrum without large-channel support

_config_file: ContextVar[Path | None] = ContextVar("liquidityhelper_config_file", default=None)


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line per problem, naming the key."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    # --- Bitcart --------------------------------------------------------------------------
    api_url: str = Field(
        "http://backend:8000",
        description="Bitcart merchants API; http://backend:8000 inside bitcart-docker's "
        "network, https://HOST/api behind its nginx.",
    )
    api_token: SecretStr | None = Field(
        None, description="Bitcart API token (full_control scope) of one merchant user."
    )
    extra_api_tokens: list[SecretStr] = Field(
        default_factory=list,
        description="Tokens of further merchant users: a token only sees its own user's stores.",
    )
    daemon_url: str | None = Field(
        "http://bitcoin:5000",
        description="Bitcart's BTC daemon JSON-RPC (channels cross-check, fee rates, payment "
        "lookups); empty to use the REST API only.",
    )
    daemon_user: str = Field("electrum", description="Daemon JSON-RPC user.")
    daemon_password: SecretStr = Field(
        SecretStr("electrumz"), description="Daemon JSON-RPC password."
    )
    network: Literal["mainnet", "testnet", "signet", "regtest"] = Field(
        "mainnet", description="Bitcoin network of the daemon; invoices on another are refused."
    )
    wallet_name: str = Field(
        "liquidityhelper", min_length=1, description="Name of each store's managed wallet."
    )
    bitcart_admin_url: str | None = Field(
        None,
        description="Bitcart's admin/checkout base URL (https://HOST); when set, top-up "
        "messages carry the invoice's checkout link (URL/i/INVOICE_ID).",
    )
    create_missing_wallets: bool = Field(
        False, description="Create the managed hot wallet for stores that lack one."
    )

    # --- Liquidity goals (the seed's variables) -------------------------------------------
    min_inbound_liquidity: int = Field(
        100_000, ge=0, description="sats: inbound liquidity wanted per wallet at all times."
    )
    min_inbound_liquidity_per_channel: int = Field(
        50_000, ge=0, description="sats: no channel is opened for less inbound than this."
    )
    min_channel_count: int = Field(2, ge=0, le=50, description="live channels wanted per wallet.")
    min_channel_size: int = Field(
        DEFAULT_MIN_CHANNEL_SAT,
        ge=MIN_CHANNEL_SAT,
        le=MAX_CHANNEL_SAT,
        description="sats: smallest channel capacity to open. Electrum peers (trampolines) "
        "refuse channels below 200000; Bitcart's own floor is 60000.",
    )
    max_channel_size: int = Field(
        5_000_000,
        ge=MIN_CHANNEL_SAT,
        le=MAX_CHANNEL_SAT,
        description="sats: largest channel capacity to open (Electrum's limit is 16777215).",
    )
    max_onchain_fee_rate: int = Field(
        30, ge=1, description="sat/vB: no channel is opened while the fee estimate is above this."
    )
    fee_rate_target_blocks: int = Field(
        2,
        description="blocks: confirmation target for on-chain fee estimates; one Electrum "
        "estimates: 1, 2, 5, 10, 25, 144 or 1008.",
    )
    onchain_extra_reserve: int = Field(
        0,
        ge=0,
        description="sats: on-chain floor kept aside on top of the close reserves; neither "
        "opens nor spare-funds channels spend it.",
    )
    open_spare_funds: bool = Field(
        True,
        description="Once the goal is met, put spare on-chain funds (above the reserves and "
        "onchain_extra_reserve) into one more channel, as large as they allow.",
    )

    # --- Top-ups ---------------------------------------------------------------------------
    topup_reminder_interval_seconds: int = Field(
        21_600, ge=60, description="seconds: repeat an unchanged top-up request at most this often."
    )
    create_topup_invoices: bool = Field(
        True, description="Create a Bitcart invoice for each top-up so the merchant can pay it."
    )
    topup_invoice_expiration_minutes: int = Field(
        1440, ge=15, le=43_200, description="minutes: lifetime of a top-up invoice."
    )

    # --- Cashouts --------------------------------------------------------------------------
    cashout_lightning_address: str | None = Field(
        None, description="Lightning address (user@domain) that receives cashouts. No default."
    )
    min_cashout_sat: int = Field(10_000, ge=1, description="sats: smallest cashout worth sending.")
    cashout_backoff_seconds: int = Field(
        3_600, ge=0, description="seconds: wait after a cashout failed down to its minimum."
    )

    # --- Operator fee ----------------------------------------------------------------------
    fee_rate: Decimal = Field(
        Decimal(0),
        ge=0,
        le=Decimal("0.5"),
        description="fraction of eligible revenue owed to the operator (0.01 = 1 %); 0 = off.",
    )
    fee_lightning_address: str | None = Field(
        None, description="Lightning address that receives the operator's fee."
    )
    fee_start_date: datetime | None = Field(
        None, description="Revenue before this date (UTC) owes no fee; required when fee_rate > 0."
    )
    allow_loopback_http_lnurl: bool | None = Field(
        None,
        description="Allow plain-http lightning addresses on loopback hosts (tests, a local "
        "regtest stack); empty = only when network is regtest. .onion may always use http.",
    )
    fees_include_network_fees: bool = Field(
        False, description="Deduct network fees paid (on-chain and routing) from the fee due."
    )
    min_fee_payment_sat: int = Field(
        1_000, ge=1, description="sats: smallest fee payment worth sending."
    )

    # --- Lightning payments ----------------------------------------------------------------
    max_routing_fee_sat: int = Field(
        100, ge=0, description="sats: routing fee cap of one payment (absolute)."
    )
    max_routing_fee_ppm: int = Field(
        5_000, ge=0, le=1_000_000, description="ppm: routing fee cap relative to the amount."
    )
    routing_fee_floor_msat: int = Field(
        5_000,
        ge=0,
        description="msat: least routing fee a payment must be allowed (real trampoline routes "
        "cost 1000-3125 msat); a smaller payment waits until it is big enough.",
    )
    payment_timeout_seconds: int = Field(
        180, ge=10, description="seconds: wait for one Lightning payment before reconciling."
    )

    # --- Running ---------------------------------------------------------------------------
    poll_interval_seconds: int = Field(300, ge=1, description="seconds: sleep between cycles.")
    peer_offline_grace_seconds: int = Field(
        900,
        ge=0,
        description="seconds: an open channel whose peer is offline still counts toward the goal "
        "this long (a peer or daemon restart is not a reason to open or ask for a top-up).",
    )
    max_concurrency: int = Field(
        16,
        ge=1,
        le=64,
        description="wallets fetched from Bitcart at once; more than about 16 costs more in "
        "connection handling than it saves (BENCHMARKS.md).",
    )
    dry_run: bool = Field(
        False, description="Log every action with its numbers; move no funds, create nothing."
    )
    single_run: bool = Field(False, description="Run one cycle and exit.")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Directory of liquidityhelper.sqlite and known_ln_nodes.db (back it up). "
        "Default: systemd's state directory, /data in the image, else "
        "~/.local/state/liquidityhelper; a relative path is made absolute at start.",
    )
    log_format: Literal["auto", "console", "json"] = Field(
        "auto", description="auto: console on a terminal, JSON lines otherwise."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Lowest level logged."
    )
    health_listen: str | None = Field(
        None, description="host:port of the /healthz and /metrics listener; empty = off."
    )

    nodes: NodeSettings = Field(
        default_factory=NodeSettings, description="The Lightning node database ([nodes] table)."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator(
        "cashout_lightning_address",
        "fee_lightning_address",
        "daemon_url",
        "health_listen",
        "bitcart_admin_url",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("health_listen")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        if v is None:
            return v
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("expected host:port, e.g. 127.0.0.1:9100 (port 0: any free port)")
        return v

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        # Resolved once, at start: `status` run from another folder must find the same journal.
        return v if str(v) == ":memory:" else v.expanduser().absolute()

    @field_validator("api_url", "daemon_url")
    @classmethod
    def _service_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        scheme, sep, rest = v.partition("://")
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        if not sep or scheme not in ("http", "https") or not host or host.startswith(":"):
            raise ValueError("expected http://HOST[:PORT][/PATH], e.g. http://backend:8000")
        return v

    @field_validator("bitcart_admin_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not (v.startswith("http://") or v.startswith("https://")):
            raise ValueError("expected an http(s) URL, e.g. https://bitcart.example.com")
        return v

    @field_validator("fee_rate_target_blocks")
    @classmethod
    def _electrum_target(cls, v: int) -> int:
        if v not in cf.ELECTRUM_FEE_TARGETS:
            targets = ", ".join(str(t) for t in cf.ELECTRUM_FEE_TARGETS)
            raise ValueError(
                f"Electrum estimates only {targets} blocks (any other target gets its "
                "150 sat/vB fallback or no estimate)"
            )
        return v

    @field_validator("fee_rate", mode="before")
    @classmethod
    def _no_float_fee(cls, v: Any) -> Any:
        # TOML gives floats; go through str so 0.01 stays exactly 0.01.
        return Decimal(str(v)) if isinstance(v, float) else v

    @field_validator("fee_start_date", mode="before")
    @classmethod
    def _date_to_utc(cls, v: Any) -> Any:
        if isinstance(v, date) and not isinstance(v, datetime):
            return datetime(v.year, v.month, v.day, tzinfo=UTC)
        return v

    @field_validator("fee_start_date")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        # Comparing naive and aware datetimes raises; the original swallowed that and lost revenue.
        if v is not None and v.tzinfo is None:
            return v.replace(tzinfo=UTC)
        return v

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.min_channel_size > self.max_channel_size:
            raise ValueError(
                f"min_channel_size ({self.min_channel_size}) must not exceed "
                f"max_channel_size ({self.max_channel_size})"
            )
        best = cf.usable_inbound_for_capacity(
            self.max_channel_size,
            held_back=self.max_routing_fee_sat,
            hold_feerate_per_kw=cf.anchor_channel_feerate_per_kw(self.max_onchain_fee_rate),
        )
        if self.min_inbound_liquidity_per_channel > best:
            raise ValueError(
                f"min_inbound_liquidity_per_channel ({self.min_inbound_liquidity_per_channel}) "
                f"cannot be reached: a channel of max_channel_size ({self.max_channel_size}) "
                f"yields at most {best} sats of inbound"
            )
        for key in ("cashout_lightning_address", "fee_lightning_address"):
            address = getattr(self, key)
            if address is None:
                continue
            try:
                lnurl.parse_lightning_address(address, loopback_http=self.loopback_http_ok)
            except lnurl.LnurlError as exc:
                hint = ""
                if "http" in exc.message and not self.loopback_http_ok:
                    hint = " (plain http on loopback needs allow_loopback_http_lnurl = true)"
                raise ValueError(f"{key}: {exc.message}{hint} (got {address!r})") from None
        if self.fee_rate > 0 and self.fee_start_date is None:
            raise ValueError("fee_start_date is required when fee_rate > 0 (e.g. 2026-01-01)")
        return self

    @property
    def loopback_http_ok(self) -> bool:
        """Plain http to a loopback lightning-address server: tests and regtest only."""
        if self.allow_loopback_http_lnurl is not None:
            return self.allow_loopback_http_lnurl
        return self.network == "regtest"

    @property
    def fees_enabled(self) -> bool:
        return self.fee_rate > 0 and self.fee_lightning_address is not None

    @property
    def api_tokens(self) -> list[SecretStr]:
        return ([self.api_token] if self.api_token else []) + list(self.extra_api_tokens)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def config_path_from(cli_path: str | None, environ: dict[str, str] | None = None) -> Path | None:
    environ = dict(os.environ) if environ is None else environ
    raw = cli_path or environ.get(CONFIG_ENV) or None
    return Path(raw) if raw else None


def load_settings(config_path: Path | None = None, **overrides: Any) -> Settings:
    """Resolve settings; raise ConfigError with one line per problem, naming each key."""
    if config_path is not None:
        _read_toml(config_path)  # surfaces a missing file or bad TOML as a ConfigError
    _refuse_unknown_env(dict(os.environ))
    token = _config_file.set(config_path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_path)) from None
    except SettingsError as exc:  # e.g. a list setting whose env value is not JSON
        cause = exc.__cause__ or exc
        raise ConfigError(
            f"config error: {_first_line(str(exc))} ({_first_line(str(cause))})"
        ) from None
    finally:
        _config_file.reset(token)


# LIQUIDITYHELPER_* names that are not settings but are ours: the config file's path and the
# end-to-end tier's switches.
_NOT_SETTINGS = frozenset({CONFIG_ENV, "LIQUIDITYHELPER_REALSTACK", "LIQUIDITYHELPER_E2E_KEEP_UP"})


def setting_env_names() -> list[str]:
    names = [f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields if name != "nodes"]
    names += [f"{ENV_PREFIX}NODES__{sub.upper()}" for sub in NodeSettings.model_fields]
    return names


def _refuse_unknown_env(environ: dict[str, str]) -> None:
    """A typo in a variable name must stop the program, not silently keep a default
    (``LIQUIDITYHELPER_DRYRUN=true`` would leave dry-run off and move real money)."""
    known = set(setting_env_names())
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper in _NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        hint = (
            f"; did you mean {close[0]} ({close[0][len(ENV_PREFIX) :].lower()})?" if close else ""
        )
        raise ConfigError(f"config error: {name}: not a setting{hint}")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path}: is a directory, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None


def _describe(exc: ValidationError, path: Path | None) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if not key:  # a rule across keys: its message names them
            lines.append(f"config error: {msg}")
            continue
        if err["type"] == "extra_forbidden":
            lines.append(f"config error: {key}: unknown key (a typo?) in {path or 'settings'}")
            continue
        value = err.get("input")
        shown = "" if _is_secret_key(key) or isinstance(value, dict) else f" (got {value!r})"
        env = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
        origin = f" from env {env}" if env in os.environ else ""
        lines.append(f"config error: {key}: {msg}{shown}{origin}")
    return "\n".join(lines)


def _is_secret_key(key: str) -> bool:
    return any(w in key for w in ("token", "password", "secret", "api_key"))


# ---------------------------------------------------------------------------------------------
# config check: resolved values, masked secrets, and where each came from
# ---------------------------------------------------------------------------------------------


def describe_sources(
    settings: Settings, config_path: Path | None, environ: dict[str, str] | None = None
) -> list[tuple[str, str, str]]:
    """(key, shown value, source) for every setting, nested tables flattened with dots."""
    environ = dict(os.environ) if environ is None else environ
    file_data = _read_toml(config_path) if config_path else {}
    rows: list[tuple[str, str, str]] = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name == "nodes":
            for sub in NodeSettings.model_fields:
                env = f"{ENV_PREFIX}NODES__{sub.upper()}"
                in_file = sub in file_data.get("nodes", {})
                rows.append(
                    (
                        f"nodes.{sub}",
                        _show(getattr(value, sub)),
                        _source(env, in_file, environ, config_path),
                    )
                )
            continue
        env = f"{ENV_PREFIX}{name.upper()}"
        rows.append((name, _show(value), _source(env, name in file_data, environ, config_path)))
    return rows


def _source(env: str, in_file: bool, environ: dict[str, str], path: Path | None) -> str:
    if env in environ:
        return f"env {env}"
    if in_file:
        return f"file {path}"
    return "default"


def _show(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else "(empty)"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if value is None:
        return "(not set)"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def secret_values(settings: Settings) -> list[str]:
    """Every secret string in the settings, for the log scrubber."""
    out = [t.get_secret_value() for t in settings.api_tokens]
    out.append(settings.daemon_password.get_secret_value())
    key = getattr(settings.nodes, "amboss_api_key", None)
    if isinstance(key, SecretStr):
        out.append(key.get_secret_value())
    return [s for s in out if s]
