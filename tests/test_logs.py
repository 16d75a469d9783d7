"""Logging: JSON lines off a terminal, and secrets never reach the output."""

from __future__ import annotations

import io
import json
from pathlib import Path

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


def test_event_and_reason_lead_and_none_is_left_out(stream: io.StringIO) -> None:
    structlog.get_logger("t").info(
        "nothing_to_do", section="cashouts", wallet="w1", store=None, reason="goal_met", n=3
    )
    text = stream.getvalue().strip()
    assert text.startswith('{"event": "nothing_to_do", "reason": "goal_met"')
    assert "store" not in json.loads(text) and "None" not in text and "null" not in text


def test_under_journald_each_line_has_its_priority_and_no_timestamp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`journalctl -p warning` showed nothing, and every line carried a second timestamp."""
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    out = io.StringIO()
    logs.configure_logging("DEBUG", "console", stream=out)
    log = structlog.get_logger("t")
    log.warning("topup_needed", amount_sat=5)
    log.info("cycle_done")
    log.error("channel_open_failed")
    lines = out.getvalue().splitlines()
    assert [x[:3] for x in lines] == ["<4>", "<6>", "<3>"]
    assert not any("20" + "26-" in x for x in lines)  # no ISO timestamp of our own


async def test_a_wrong_token_is_an_auth_failure_not_an_outage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.scenario import scenario

    logs.configure_logging("INFO", "json")
    async with scenario(tmp_path, api_token="not-a-token") as sc:
        await sc.cycle()
    err = capsys.readouterr().err
    assert "bitcart_auth_failed" in err and "bitcart_unreachable" not in err


async def test_the_start_line_names_the_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import liquidityhelper
    from liquidityhelper.main import run
    from tests.scenario import scenario

    logs.configure_logging("INFO", "json")
    async with scenario(tmp_path) as sc:
        await run(sc.settings.model_copy(update={"single_run": True}))
    started = [
        json.loads(x)
        for x in capsys.readouterr().err.splitlines()
        if x.startswith('{"event": "started"')
    ]
    assert started and started[0]["version"] == liquidityhelper.__version__
