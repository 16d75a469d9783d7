"""The status page on the health listener: GET /, read-only, escaped, with a chart per wallet;
and once in headless Chromium."""

from __future__ import annotations

import asyncio
import html.parser
import os
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from liquidityhelper.journal import Journal, Sample
from liquidityhelper.page import PageData, PageWallet, chart_svg, render_page
from liquidityhelper.report import WalletReport
from liquidityhelper.status import WalletStatus
from tests.scenario import Scenario, scenario, use_operator
from tests.test_health import get, started
from tests.test_report import FEES
from tests.test_scenarios import fund_and_open

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
VOID = {"meta", "br", "hr", "img", "input", "link", "rect", "line", "path"}


class Tags(html.parser.HTMLParser):
    """Counts elements and checks that every opened one is closed, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.count: dict[str, int] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.count[tag] = self.count.get(tag, 0) + 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.count[tag] = self.count.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID and (not self.stack or self.stack[-1] != tag):
            return
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-3:])
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    assert tags.stack == []
    return tags


def wallet(i: int, name: str) -> PageWallet:
    st = WalletStatus(
        wallet_id=f"W{i:025d}",
        wallet_name="liquidityhelper",
        stores=[{"id": f"S{i:025d}", "name": name}],
        onchain_confirmed_sat=6_530 + i,
        onchain_unconfirmed_sat=0,
        lightning_local_sat=17_126,
        lightning_remote_sat=382_873,
        live_channels=2,
        opening_channels=0,
        target_channels=2,
        inbound_sat=378_873 + i,
        target_inbound_sat=100_000,
        topup_sat=0 if i % 7 else 408_030,
        topup_invoice=None,
        inbound_now_sat=378_873,
        mode="trampoline",
        fee_rate=5,
        last_cashout={
            "id": 3,
            "kind": "cashout",
            "amount_sat": 126_693,
            "status": "succeeded",
            "to": "merchant@example.com",
            "at": NOW.isoformat(),
        },
        last_fee_payment=None,
        in_flight=[],
    )
    report = WalletReport(
        st.wallet_id, st.stores, topups_paid_sat=408_030, topups_paid=1, cashed_out_sat=509_517
    )
    report.routing_fees_msat = 76_600
    samples = [
        Sample(st.wallet_id, NOW - timedelta(hours=40 - h), min(h * 40_000, 378_873), 100_000)
        for h in range(40)
    ]
    return PageWallet(st, report, samples, {} if i % 5 else {"S": NOW.isoformat()})


def page_for(n: int) -> str:
    wallets = [wallet(i, f'Shop {i} <b>&amp; "co"</b>') for i in range(n)]
    return render_page(
        PageData(NOW, True, "last cycle 3 s ago", NOW, wallets, report_since=NOW - timedelta(30))
    )


@pytest.mark.parametrize("stores", [0, 1, 50])
def test_the_page_renders_for_0_1_and_50_stores(stores: int) -> None:
    began = time.perf_counter()
    page = page_for(stores)
    assert time.perf_counter() - began < 1.0
    tags = parsed(page)
    assert tags.count.get("svg", 0) == stores
    assert tags.count.get("section", 0) == stores
    assert "script" not in tags.count and "<script" not in page  # no JavaScript at all
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert tags.count.get("link", 0) == 0 and tags.count.get("img", 0) == 0  # nothing external
    text = "".join(tags.text)
    if stores == 0:
        assert "No stores visible" in text
    for i in range(stores):
        assert f'Shop {i} <b>&amp; "co"</b>' in text  # shown as written, never as markup
        assert f"{378_873 + i:,} sat after the next cashouts" in text
    assert "<b>" not in page  # every value escaped


def test_before_the_first_cycle_and_an_empty_chart() -> None:
    page = render_page(PageData(NOW, True, "first cycle under way", None, [], cycled=False))
    assert "No cycle has finished yet" in page
    assert "no samples yet" in chart_svg([])
    one = chart_svg([Sample("w", NOW, 5, 10)])
    assert one.count("<path") == 2 and "1 sample<" in one


def test_samples_stay_bounded() -> None:
    journal = Journal.open(":memory:")
    for i in range(60):  # changing figures: one row per cycle
        journal.add_sample("w", NOW + timedelta(minutes=5 * i), i, 100, keep_rows=50)
    rows = journal.samples("w")
    assert len(rows) == 50 and rows[-1].inbound_sat == 59
    # The same figures are written at most every SAMPLE_EVERY.
    later = NOW + timedelta(minutes=5 * 60)
    assert not journal.add_sample("w", later, 59, 100)
    assert journal.add_sample("w", later + timedelta(minutes=15), 59, 100)
    # Nothing older than keep_days.
    journal.add_sample("w", later + timedelta(days=91), 1, 100)
    assert [s.inbound_sat for s in journal.samples("w")] == [1]


async def day_with_page(sc: Scenario, cycles: int = 3) -> None:
    use_operator(sc)
    await fund_and_open(sc)
    for _ in range(cycles):
        sc.clock.advance(minutes=20)
        await sc.cycle()


async def test_the_page_on_the_listener_is_read_only(tmp_path: Path) -> None:
    async with scenario(tmp_path, stores=2, health_listen="127.0.0.1:0", **FEES) as sc:
        server = await started(sc)
        reply = await get(server, "/")
        assert reply.status_code == 200 and "No cycle has finished yet" in reply.text
        await day_with_page(sc)
        reply = await get(server, "/")
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in reply.headers["content-security-policy"]
        page = reply.text
        tags = parsed(page)
        assert tags.count["svg"] == 1
        assert "Shop 0, Shop 1" in page
        [snap] = (await sc.daemon.fetch_snapshot()).wallets.values()
        assert f"{snap.inbound_now_sat:,} sat now" in page
        assert "Last 30 days" in page and "top-ups paid" in page and "408,030 sat" in page
        # Why nothing was done, with its numbers, as the last cycle found it (no Bitcart read).
        assert "next open" in page and "last cycle: goal_met inbound_sat=" in page, page
        assert "next cashout" in page and "last cycle: below_min_cashout" in page
        # No secret on it: not the token, the daemon's password, nor the wallet's seed.
        key = sc.sim.wallet_key(sc.wallet_id)
        for secret in (sc.token, sc.settings.daemon_password.get_secret_value(), key):
            assert secret not in page
        # The live daemon was only watched: it still records, its fee ledger still persists.
        assert sc.daemon.record_observations and sc.daemon.fees.persist
        assert len(sc.daemon.journal.samples(sc.wallet_id)) >= 3
        # /healthz and /metrics as they were.
        assert (await get(server, "/healthz")).text.startswith("ok: ")
        assert "liquidityhelper_inbound_sats" in (await get(server, "/metrics")).text
        await server.aclose()
        assert sc.daemon.on_cycle == []  # the page's hook goes with the listener


async def test_a_failing_page_hook_never_breaks_a_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with scenario(tmp_path, health_listen="127.0.0.1:0") as sc:
        server = await started(sc)

        def broken(*_: object, **__: object) -> bool:
            raise RuntimeError("disk full")

        monkeypatch.setattr(sc.daemon.journal, "add_sample", broken)
        report = await sc.cycle_report()
        assert report.finished is not None and not report.section_errors
        assert (await get(server, "/")).status_code == 200


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


async def run(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": os.environ.get("HOME", "/tmp")},
    )
    out, _err = await asyncio.wait_for(proc.communicate(), timeout=90)
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.skipif(
    chromium() is None, reason="no chromium binary (apt-get install chromium) on PATH"
)
async def test_the_page_in_headless_chromium(tmp_path: Path) -> None:
    browser = chromium()
    assert browser is not None
    async with scenario(tmp_path, stores=2, health_listen="127.0.0.1:0", **FEES) as sc:
        server = await started(sc)
        await day_with_page(sc, cycles=4)
        url = f"http://127.0.0.1:{server.port}/"
        flags = ["--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path}/c"]
        code, dom = await run(browser, *flags, "--dump-dom", url)
        assert code == 0, dom[-2000:]
        shot = tmp_path / "page.png"
        code, _ = await run(browser, *flags, f"--screenshot={shot}", "--window-size=1200,1600", url)
        assert code == 0
    assert "Shop 0, Shop 1" in dom
    assert "<svg" in dom and "<path" in dom
    assert "sat now" in dom and "inbound" in dom
    [figure] = [line for line in dom.split("<tr>") if "after the next cashouts" in line]
    # The wallet's inbound as the simulator left it: two channels' worth, the goal met.
    assert re.search(r"\b3\d\d,\d{3} sat now", figure) and "goal met" in figure, figure
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
