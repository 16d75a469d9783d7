"""The real daemon cashing out to lightning addresses that misbehave: nothing paid, one line.

Each case funds a wallet, opens its channels and lets the daemon's cashout meet one hostile
LNURL-pay server: the simulator's own (whose honest invoices the wallet could really pay) in
each of its misbehaving modes and stages, and the test server of ``tests/lnurl_servers.py`` for
what the simulator does not do. Every case must end with no payment attempted, nothing
journaled, exactly one WARNING-or-worse line (``lnurl_refused`` naming the reason), and a
back-off: the next cycle neither asks the server again nor says anything loud.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from liquidityhelper.logs import configure_logging
from liquidityhelper.simulator.lnurl import LnurlMode
from tests.lnurl_servers import (
    DROP,
    InvoiceSpec,
    LnurlServer,
    gzip_json,
    reply_json,
)
from tests.scenario import Scenario, scenario
from tests.test_scenarios import fund_and_open

LOUD = {"warning", "error", "critical"}


@dataclass(frozen=True)
class Case:
    id: str
    reason: str  # the lnurl_refused reason the one loud line must carry
    mode: LnurlMode | None = None  # the simulator's server misbehaving in this mode ...
    stage: str | None = None  # ... at this stage (None: the mode's own)
    server: Callable[[LnurlServer], None] | None = None  # or the test server, set up so
    requests: int = 2  # what reaches the server: the pay request, and the callback or not


def overrides(**fields: Any) -> Callable[[LnurlServer], None]:
    return lambda s: s.pay_overrides.update(fields)


def invoice(**fields: Any) -> Callable[[LnurlServer], None]:
    return lambda s: setattr(s, "invoice", InvoiceSpec(**fields))


def pay(handler: Any) -> Callable[[LnurlServer], None]:
    return lambda s: setattr(s, "pay_handler", handler)


def callback(handler: Any) -> Callable[[LnurlServer], None]:
    return lambda s: setattr(s, "callback_handler", handler)


M = LnurlMode
CASES = [
    # The invoice: wrong in every way a payee can get it wrong.
    Case("wrong_amount", "invoice_amount_mismatch", M.WRONG_AMOUNT),
    Case("no_amount", "invoice_amount_mismatch", M.NO_AMOUNT),
    Case("wrong_description_hash", "description_hash_mismatch", M.WRONG_DESCRIPTION_HASH),
    Case("no_description_hash", "description_hash_mismatch", M.NO_DESCRIPTION_HASH),
    Case("other_network", "wrong_network", M.OTHER_NETWORK),
    Case("expired", "invoice_expired", M.EXPIRED),
    Case("zero_expiry", "bad_invoice", M.ZERO_EXPIRY),
    Case("expires_in_30s", "invoice_expires_too_soon", server=invoice(expiry=30)),
    Case("duplicate_payment_hash", "bad_invoice", server=invoice(duplicate_payment_hash=True)),
    Case("fractional_msat", "bad_invoice", server=invoice(raw_amount="500005p")),
    Case("other_payee_than_before", "payee_changed", M.OTHER_PAYEE),
    # The callback's answer.
    Case("missing_pr", "bad_invoice", M.MISSING_PR),
    Case("callback_status_error", "status_error", M.STATUS_ERROR),
    Case("callback_non_json", "not_json", M.NON_JSON),
    Case("callback_http_500", "http_error", M.HTTP_ERROR),
    Case("callback_redirect", "redirect_refused", M.REDIRECT),
    Case("callback_oversized_body", "body_too_large", M.OVERSIZED_BODY),
    Case("callback_endless_body", "body_too_large", M.ENDLESS_BODY),
    Case("callback_gzip_unasked", "http_error", server=callback(gzip_json({"pr": "lnbcrt1"}))),
    # The pay request.
    Case("absurd_amounts", "bad_pay_request", M.ABSURD_AMOUNTS, requests=1),
    Case(
        "max_sendable_past_21m_btc",
        "bad_pay_request",
        server=overrides(maxSendable=10**30),
        requests=1,
    ),
    Case("withdraw_tag", "bad_pay_request", M.WRONG_TAG, requests=1),
    Case("callback_on_another_host", "callback_host_mismatch", M.CALLBACK_OTHER_HOST, requests=1),
    Case("metadata_missing", "bad_pay_request", server=overrides(metadata=DROP), requests=1),
    Case("pay_request_status_error", "status_error", M.STATUS_ERROR, "pay_request", requests=1),
    Case("pay_request_non_json", "not_json", M.NON_JSON, "pay_request", requests=1),
    Case("pay_request_json_list", "not_json", server=pay(reply_json(["payRequest"])), requests=1),
    Case("pay_request_http_500", "http_error", M.HTTP_ERROR, "pay_request", requests=1),
    Case("pay_request_redirect", "redirect_refused", M.REDIRECT, "pay_request", requests=1),
    Case(
        "pay_request_oversized_body", "body_too_large", M.OVERSIZED_BODY, "pay_request", requests=1
    ),
    Case("pay_request_endless_body", "body_too_large", M.ENDLESS_BODY, "pay_request", requests=1),
]


def loud_events(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = capsys.readouterr().err.splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in events if e["level"] in LOUD]


async def first_cashout_then_more_revenue(sc: Scenario) -> None:
    """The payee gets pinned by a good payment; then customers give the wallet more to send."""
    await sc.cycle()
    assert len(sc.sim.payments_to(sc.address)) == 1
    for _ in range(2):
        sale = sc.sim.create_invoice(sc.store_id, Decimal("0.0002"), currency="BTC")
        sc.sim.customer_pay(sale, lightning=True)


def requests_seen(sc: Scenario, server: LnurlServer | None) -> int:
    return len(server.hits) if server is not None else len(sc.sim.lnurl.log)


async def run_case(
    case: Case, sc: Scenario, server: LnurlServer | None, capsys: pytest.CaptureFixture[str]
) -> None:
    address = server.address() if server is not None else sc.address
    await fund_and_open(sc)
    if case.mode is M.OTHER_PAYEE:
        await first_cashout_then_more_revenue(sc)
    if case.mode is not None:
        sc.sim.set_lnurl_mode(case.mode, sc.address, case.stage)
    attempts, entries = len(sc.sim.payments), len(sc.daemon.journal.entries())
    asked = requests_seen(sc, server)
    capsys.readouterr()

    await sc.cycle()
    loud = loud_events(capsys)
    assert [(e["event"], e.get("reason")) for e in loud] == [("lnurl_refused", case.reason)]
    line = loud[0]
    assert line["address"] == address and line["wallet"] == sc.wallet_id
    assert (
        line["amount_sat"] > 0 and line["retry_in_seconds"] == sc.settings.cashout_backoff_seconds
    )
    assert len(sc.sim.payments) == attempts  # the wallet was never asked to pay
    assert len(sc.daemon.journal.entries()) == entries
    assert sc.daemon.journal.pending() == []
    assert requests_seen(sc, server) - asked == case.requests  # no redirect was followed

    # Backing off: the server is not asked again and the daemon does not repeat itself.
    asked = requests_seen(sc, server)
    await sc.cycle()
    assert loud_events(capsys) == []
    assert requests_seen(sc, server) == asked
    assert len(sc.sim.payments) == attempts


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_hostile_lightning_address_gets_nothing_and_one_line(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "json")
    if case.server is None:
        async with scenario(tmp_path) as sc:
            await run_case(case, sc, None, capsys)
        return
    server = LnurlServer()
    await server.start()
    try:
        case.server(server)
        async with scenario(tmp_path, cashout_lightning_address=server.address()) as sc:
            await run_case(case, sc, server, capsys)
    finally:
        await server.close()


def test_the_corpus_is_large_and_covers_the_issue() -> None:
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)
    modes = {c.mode for c in CASES if c.mode is not None}
    assert modes == set(LnurlMode) - {LnurlMode.NORMAL}  # every hostile simulator mode
