"""Settings: sources and their order, strict validation, exit 2 naming the key, masking."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from liquidityhelper import cli
from liquidityhelper.config import ConfigError, Settings, load_settings
from liquidityhelper.nodes.settings import NodeSettings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("LIQUIDITYHELPER_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_seed() -> None:
    s = load_settings()
    assert (s.min_inbound_liquidity, s.min_inbound_liquidity_per_channel, s.min_channel_count) == (
        100_000,
        50_000,
        2,
    )
    assert s.cashout_lightning_address is None  # no default sends money anywhere
    assert s.fee_lightning_address is None and s.fee_rate == 0 and not s.fees_enabled
    assert s.wallet_name == "liquidityhelper"


def test_env_beats_file_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "min_channel_count = 3\nmin_inbound_liquidity = 200000\n")
    monkeypatch.setenv("LIQUIDITYHELPER_MIN_CHANNEL_COUNT", "5")
    s = load_settings(path)
    assert s.min_channel_count == 5
    assert s.min_inbound_liquidity == 200_000
    assert s.min_inbound_liquidity_per_channel == 50_000


def test_env_alone_is_enough_including_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIQUIDITYHELPER_API_TOKEN", "tok-123456")
    monkeypatch.setenv("LIQUIDITYHELPER_NODES__MIN_CAPACITY_SAT", "2000000")
    s = load_settings()
    assert s.api_token is not None and s.api_token.get_secret_value() == "tok-123456"
    assert s.nodes.min_capacity_sat == 2_000_000


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"min_chanel_count: unknown key"):
        load_settings(write(tmp_path, "min_chanel_count = 3\n"))


def test_fee_rate_from_toml_float_is_exact(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "fee_rate = 0.01\nfee_start_date = 2026-01-01\n"))
    assert str(s.fee_rate) == "0.01"
    assert s.fee_start_date is not None and s.fee_start_date.tzinfo is not None


def test_fee_needs_a_start_date(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fee_start_date is required"):
        load_settings(write(tmp_path, "fee_rate = 0.01\n"))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("min_channel_count = -1\n", "min_channel_count"),
        ("max_onchain_fee_rate = 0\n", "max_onchain_fee_rate"),
        ('network = "moonnet"\n', "network"),
        ("min_channel_size = 1000\n", "min_channel_size"),
        ('log_format = "xml"\n', "log_format"),
        ("[nodes]\nmin_capacity_sat = -5\n", "nodes.min_capacity_sat"),
        ('health_listen = "localhost"\n', "health_listen"),
    ],
)
def test_bad_value_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    path = write(tmp_path, text)
    assert cli.main(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"config error: {key}: ")


def test_bad_env_value_exits_2_and_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIQUIDITYHELPER_POLL_INTERVAL_SECONDS", "soon")
    assert cli.main(["config", "check"]) == 2
    err = capsys.readouterr().err
    assert "poll_interval_seconds" in err and "LIQUIDITYHELPER_POLL_INTERVAL_SECONDS" in err


def test_min_above_max_channel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="min_channel_size"):
        load_settings(write(tmp_path, "min_channel_size = 900000\nmax_channel_size = 800000\n"))


def test_config_check_masks_secrets_and_names_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIQUIDITYHELPER_API_TOKEN", "sekrit-token-value")
    path = write(tmp_path, 'daemon_password = "hunter2-pass"\nmin_channel_count = 4\n')
    assert cli.main(["config", "check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sekrit-token-value" not in out and "hunter2-pass" not in out
    assert re.search(r"^api_token\s+\*+\s+\[env LIQUIDITYHELPER_API_TOKEN\]$", out, re.M)
    assert re.search(r"^min_channel_count\s+4\s+\[file .*c\.toml\]$", out, re.M)
    assert re.search(r"^min_inbound_liquidity\s+100000\s+\[default\]$", out, re.M)


def test_example_file_loads_and_lists_every_key() -> None:
    load_settings(EXAMPLE)
    text = EXAMPLE.read_text()
    keys = set(re.findall(r"^#?\s?([a-z_]+) =", text, re.M))
    missing = [k for k in Settings.model_fields if k != "nodes" and k not in keys]
    missing += [f"nodes.{k}" for k in NodeSettings.model_fields if k not in keys]
    assert not missing, f"config.example.toml lacks {missing}"
    assert cli.main(["config", "check", "--config", str(EXAMPLE)]) == 0


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "min_channel_count = 7\n")
    monkeypatch.setenv("LIQUIDITYHELPER_CONFIG", str(path))
    from liquidityhelper.config import config_path_from

    assert load_settings(config_path_from(None)).min_channel_count == 7


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
