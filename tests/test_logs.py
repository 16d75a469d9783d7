"""Logging: JSON lines off a terminal, and secrets never reach the output."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from liquidityhelper import logs
from liquidityhelper.config import load_settings, secret_values

TOKEN = "tok_9f8e7d6c5b4a"
PASSWORD = "daemon-pass-123"
SEED = "abandon ability able about above absent absorb abstract absurd abuse access accident"


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    monkeypatch.setenv("LIQUIDITYHELPER_API_TOKEN", TOKEN)
    monkeypatch.setenv("LIQUIDITYHELPER_DAEMON_PASSWORD", PASSWORD)
    settings = load_settings()
    logs.register_secrets([*secret_values(settings), SEED])
    out = io.StringIO()
    logs.configure_logging("DEBUG", "json", stream=out)
    return out


def test_json_lines_with_numbers(stream: io.StringIO) -> None:
    structlog.get_logger("t").info(
        "cashout_sent", wallet="w1", store="s1", sats=12_345, reason="balance_above_min"
    )
    line = json.loads(stream.getvalue().strip())
    assert line["event"] == "cashout_sent" and line["sats"] == 12_345 and line["level"] == "info"
    assert line["wallet"] == "w1" and "timestamp" in line


def test_secrets_never_reach_the_output(stream: io.StringIO) -> None:
    log = structlog.get_logger("t")
    log.info("login", token=TOKEN, password=PASSWORD, xpub=SEED)
    log.warning("wallet_created", detail=f"seed is {SEED}", headers={"Authorization": TOKEN})
    log.error("request_failed", url=f"http://electrum:{PASSWORD}@bitcoin:5000")
    try:
        raise RuntimeError(f"bad token {TOKEN}")
    except RuntimeError:
        log.exception("boom")
    text = stream.getvalue()
    assert TOKEN not in text and PASSWORD not in text and SEED not in text
    assert "abandon ability" not in text
    assert text.count("***") >= 6


def test_level_filter(stream: io.StringIO) -> None:
    logs.configure_logging("WARNING", "json", stream=stream)
    log = structlog.get_logger("t")
    log.info("quiet")
    log.warning("loud")
    assert "quiet" not in stream.getvalue() and "loud" in stream.getvalue()
