"""Lightning address → verified invoice, against a real (and often hostile) LNURL server."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import bech32
import httpx
import pytest
import respx

from liquidityhelper.lnurl import (
    REASONS,
    LightningAddress,
    LnurlError,
    PayRequest,
    fetch_invoice,
    fetch_pay_request,
    network_prefix,
    parse_lightning_address,
)
from tests.lnurl_servers import (
    DROP,
    METADATA,
    OTHER_KEY,
    PAYEE_KEY,
    InvoiceSpec,
    LnurlServer,
    declared_length,
    gzip_json,
    mint_invoice,
    pubkey_of,
    redirect_to,
    reply_json,
    reply_text,
    reply_with_invoice,
    stream_body,
)

PAYEE = pubkey_of(PAYEE_KEY)
AMOUNT = 50_000  # msat


@pytest.fixture
async def server() -> AsyncIterator[LnurlServer]:
    srv = LnurlServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


# ---------------------------------------------------------------------------------------------
# Happy paths
# ---------------------------------------------------------------------------------------------


async def test_regtest_invoice_is_fetched_and_verified(
    server: LnurlServer, client: httpx.AsyncClient
) -> None:
    pay = await fetch_pay_request(client, server.address())
    assert pay.min_sendable_msat == 1_000
    assert pay.max_sendable_msat == 1_000_000_000
    assert pay.metadata == METADATA
    assert pay.address == LightningAddress(
        "alice", "127.0.0.1", f"{server.base_url}/.well-known/lnurlp/alice"
    )

    invoice = await fetch_invoice(client, pay, AMOUNT, network="regtest", expected_payee=PAYEE)

    assert invoice.bolt11 == server.minted[-1]
    assert invoice.bolt11.startswith("lnbcrt")
    assert invoice.amount_msat == AMOUNT
    assert invoice.payee_pubkey == PAYEE
    assert invoice.description_hash == hashlib.sha256(METADATA.encode()).hexdigest()
    assert len(invoice.payment_hash) == 64
    assert 3500 < invoice.expires_at - time.time() <= 3600
    # The callback's own query is kept next to amount=.
    assert server.callback_hits == [f"/cb/alice?k=v&amount={AMOUNT}"]
    assert invoice.bolt11 not in repr(invoice)


@pytest.mark.parametrize(
    ("network", "currency"),
    [("mainnet", "bc"), ("testnet", "tb"), ("signet", "tbs"), ("regtest", "bcrt"), ("tbs", "tbs")],
)
async def test_each_network_accepts_its_own_invoices(
    server: LnurlServer, client: httpx.AsyncClient, network: str, currency: str
) -> None:
    server.invoice = InvoiceSpec(currency=currency)
    pay = await fetch_pay_request(client, server.address())
    invoice = await fetch_invoice(client, pay, AMOUNT, network=network)
    assert invoice.bolt11.startswith(f"ln{currency}")


async def test_bech32_lnurl_resolves_to_the_same_server(
    server: LnurlServer, client: httpx.AsyncClient
) -> None:
    url = f"{server.base_url}/.well-known/lnurlp/bob"
    words = bech32.convertbits(url.encode(), 8, 5)
    assert words is not None
    lnurl = bech32.bech32_encode("lnurl", words).upper()
    pay = await fetch_pay_request(client, f"lightning:{lnurl}")
    assert pay.address.url == url
    assert pay.callback.startswith(f"{server.base_url}/cb/bob")


async def test_shared_client_credentials_never_reach_the_server(
    server: LnurlServer,
) -> None:
    # One process-wide client may carry a Bitcart token; the LNURL server must not see it.
    async with httpx.AsyncClient(
        headers={"Authorization": "Bearer s3cret", "X-Api-Key": "s3cret"},
        auth=("user", "s3cret"),
        follow_redirects=True,
    ) as shared:
        pay = await fetch_pay_request(shared, server.address())
        await fetch_invoice(shared, pay, AMOUNT, network="regtest")
    assert len(server.headers) == 2
    for headers in server.headers:
        assert "authorization" not in {name.lower() for name in headers}
        assert "s3cret" not in repr(headers)


# ---------------------------------------------------------------------------------------------
# The hostile corpus
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    id: str
    reason: str
    setup: Callable[[LnurlServer], None]
    stage: str = "invoice"  # or "pay_request": refused before any invoice is asked for
    amount_msat: int = AMOUNT
    expected_payee: str | None = None
    timeout: float = 5.0


def pay(handler: object) -> Callable[[LnurlServer], None]:
    return lambda s: setattr(s, "pay_handler", handler)


def callback(handler: object) -> Callable[[LnurlServer], None]:
    return lambda s: setattr(s, "callback_handler", handler)


def overrides(**fields: object) -> Callable[[LnurlServer], None]:
    return lambda s: s.pay_overrides.update(fields)


def invoice(**fields: Any) -> Callable[[LnurlServer], None]:
    return lambda s: setattr(s, "invoice", InvoiceSpec(**fields))


def flip_last_char(pr: str) -> str:
    return pr[:-1] + ("q" if pr[-1] != "q" else "p")


HOSTILE = [
    # --- the pay request ---
    Hostile("pay_html", "not_json", pay(reply_text("<html>hi</html>")), "pay_request"),
    Hostile("pay_json_list", "not_json", pay(reply_json(["payRequest"])), "pay_request"),
    Hostile("pay_deep_nesting", "not_json", pay(reply_text("[" * 50_000, 200)), "pay_request"),
    Hostile("pay_http_500", "http_error", pay(reply_text("oops", 500)), "pay_request"),
    Hostile(
        "pay_http_404_with_reason",
        "http_error",
        pay(reply_json({"status": "ERROR", "reason": "no user"}, 404)),
        "pay_request",
    ),
    Hostile("pay_redirect_302", "redirect_refused", pay(redirect_to("/cb/x")), "pay_request"),
    Hostile("pay_redirect_307", "redirect_refused", pay(redirect_to("/x", 307)), "pay_request"),
    Hostile(
        "pay_status_error",
        "status_error",
        pay(reply_json({"status": "ERROR", "reason": "user disabled"})),
        "pay_request",
    ),
    Hostile("pay_tag_withdraw", "bad_pay_request", overrides(tag="withdrawRequest"), "pay_request"),
    Hostile("pay_no_tag", "bad_pay_request", overrides(tag=DROP), "pay_request"),
    Hostile(
        "callback_other_host",
        "callback_host_mismatch",
        overrides(callback="https://evil.example/cb/alice"),
        "pay_request",
    ),
    Hostile(
        "callback_localhost_alias",
        "callback_host_mismatch",
        lambda s: s.pay_overrides.update(callback=f"http://localhost:{s.port}/cb/alice"),
        "pay_request",
    ),
    Hostile(
        "callback_plain_http_remote",
        "bad_pay_request",
        overrides(callback="http://evil.example/cb/alice"),
        "pay_request",
    ),
    Hostile(
        "callback_with_userinfo",
        "bad_pay_request",
        lambda s: s.pay_overrides.update(callback=f"http://u:p@127.0.0.1:{s.port}/cb/alice"),
        "pay_request",
    ),
    Hostile("callback_missing", "bad_pay_request", overrides(callback=DROP), "pay_request"),
    Hostile("callback_not_string", "bad_pay_request", overrides(callback=42), "pay_request"),
    Hostile(
        "min_above_max",
        "bad_pay_request",
        overrides(minSendable=2_000_000, maxSendable=1_000_000),
        "pay_request",
    ),
    Hostile("min_negative", "bad_pay_request", overrides(minSendable=-1000), "pay_request"),
    Hostile("min_zero", "bad_pay_request", overrides(minSendable=0), "pay_request"),
    Hostile("max_huge", "bad_pay_request", overrides(maxSendable=10**30), "pay_request"),
    Hostile("amount_as_string", "bad_pay_request", overrides(minSendable="1000"), "pay_request"),
    Hostile("amount_as_float", "bad_pay_request", overrides(maxSendable=1e9), "pay_request"),
    Hostile("amount_as_bool", "bad_pay_request", overrides(minSendable=True), "pay_request"),
    Hostile("metadata_missing", "bad_pay_request", overrides(metadata=DROP), "pay_request"),
    Hostile(
        "metadata_not_json", "bad_pay_request", overrides(metadata="text/plain"), "pay_request"
    ),
    Hostile(
        "metadata_no_text_plain",
        "bad_pay_request",
        overrides(metadata='[["image/png;base64", "AAAA"]]'),
        "pay_request",
    ),
    Hostile(
        "body_declared_too_large",
        "body_too_large",
        pay(declared_length(100_000)),
        "pay_request",
    ),
    Hostile(
        "body_chunked_too_large",
        "body_too_large",
        pay(stream_body(total=200_000)),
        "pay_request",
    ),
    Hostile("body_endless", "body_too_large", pay(stream_body()), "pay_request"),
    Hostile(
        "body_slow_drip",
        "timeout",
        pay(stream_body(chunk=b" ", total=250, delay=0.02)),  # 5 s of drip, 0.3 s allowed
        "pay_request",
        timeout=0.3,
    ),
    Hostile(
        "body_gzip_unasked",
        "http_error",
        pay(gzip_json({"tag": "payRequest"})),
        "pay_request",
    ),
    # --- the amount we ask for ---
    Hostile("amount_below_min", "amount_out_of_range", overrides(minSendable=100_000)),
    Hostile("amount_above_max", "amount_out_of_range", overrides(maxSendable=10_000)),
    # --- the callback reply ---
    Hostile("cb_http_500", "http_error", callback(reply_text("oops", 500))),
    Hostile("cb_redirect", "redirect_refused", callback(redirect_to("/cb/elsewhere"))),
    Hostile("cb_html", "not_json", callback(reply_text("<html/>"))),
    Hostile(
        "cb_status_error",
        "status_error",
        callback(reply_json({"status": "ERROR", "reason": "amount too low"})),
    ),
    Hostile("cb_endless_body", "body_too_large", callback(stream_body())),
    Hostile("cb_no_pr", "bad_invoice", callback(reply_json({"routes": []}))),
    Hostile("cb_pr_not_string", "bad_invoice", callback(reply_json({"pr": 12345}))),
    Hostile("cb_pr_garbage", "bad_invoice", callback(reply_json({"pr": "lnbcrt1garbage"}))),
    Hostile(
        "cb_pr_bad_checksum",
        "bad_invoice",
        callback(reply_with_invoice(lambda pr: {"pr": flip_last_char(pr)})),
    ),
    Hostile(
        "cb_pr_mixed_case",
        "bad_invoice",
        callback(reply_with_invoice(lambda pr: {"pr": pr[:10].upper() + pr[10:]})),
    ),
    # --- the invoice itself ---
    Hostile("inv_amount_plus_1msat", "invoice_amount_mismatch", invoice(amount_delta_msat=1)),
    Hostile(
        "inv_amount_times_1000", "invoice_amount_mismatch", invoice(amount_delta_msat=AMOUNT * 999)
    ),
    Hostile("inv_no_amount", "invoice_amount_mismatch", invoice(omit_amount=True)),
    Hostile(
        "inv_fractional_msat",
        "bad_invoice",
        invoice(raw_amount="500005p"),  # 50000.5 msat: the decoder rounds it to 50000
    ),
    Hostile("inv_plain_description", "description_hash_mismatch", invoice(description_hash=None)),
    Hostile(
        "inv_wrong_description_hash",
        "description_hash_mismatch",
        invoice(description_hash=hashlib.sha256(b"other metadata").hexdigest()),
    ),
    Hostile("inv_mainnet", "wrong_network", invoice(currency="bc")),
    Hostile("inv_testnet", "wrong_network", invoice(currency="tb")),
    Hostile("inv_signet", "wrong_network", invoice(currency="tbs")),
    Hostile("inv_expired", "invoice_expired", invoice(age_seconds=7200, expiry=3600)),
    Hostile("inv_zero_expiry", "invoice_expired", invoice(expiry=0)),
    Hostile("inv_empty_expiry_field", "bad_invoice", invoice(empty_expiry_field=True)),
    Hostile("inv_expires_in_30s", "invoice_expires_too_soon", invoice(expiry=30)),
    Hostile("inv_duplicate_payment_hash", "bad_invoice", invoice(duplicate_payment_hash=True)),
    Hostile("inv_no_payment_secret", "bad_invoice", invoice(omit_payment_secret=True)),
    Hostile(
        "inv_other_payee",
        "payee_changed",
        invoice(private_key=OTHER_KEY),
        expected_payee=PAYEE,
    ),
    Hostile(
        "inv_payee_field_forged",
        "bad_invoice",
        invoice(private_key=OTHER_KEY, payee_field=PAYEE),
        expected_payee=PAYEE,
    ),
]


def test_the_corpus_covers_every_reason() -> None:
    covered = {case.reason for case in HOSTILE} | {"bad_address"}
    assert covered == REASONS


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.id)
async def test_hostile_server_is_refused(
    case: Hostile, server: LnurlServer, client: httpx.AsyncClient
) -> None:
    case.setup(server)
    if case.stage == "pay_request":
        with pytest.raises(LnurlError) as caught:
            await fetch_pay_request(client, server.address(), timeout=case.timeout)
        assert server.callback_hits == []  # not even through a followed redirect
    else:
        pay_request = await fetch_pay_request(client, server.address())
        with pytest.raises(LnurlError) as caught:
            await fetch_invoice(
                client,
                pay_request,
                case.amount_msat,
                network="regtest",
                expected_payee=case.expected_payee,
                timeout=case.timeout,
            )
    error = caught.value
    assert error.reason == case.reason, str(error)
    assert str(error).startswith(f"{case.reason}: ")
    # Redirect targets are never followed; at most one request per stage reached the server.
    assert len(server.hits) == (1 if case.stage == "pay_request" else 2) - (
        case.reason == "amount_out_of_range"
    )
    for pr in server.minted:
        assert pr not in str(error)
        assert pr[:40] not in str(error)


async def test_amount_out_of_range_names_the_numbers(
    server: LnurlServer, client: httpx.AsyncClient
) -> None:
    server.pay_overrides.update(minSendable=100_000, maxSendable=200_000)
    pay_request = await fetch_pay_request(client, server.address())
    with pytest.raises(LnurlError) as caught:
        await fetch_invoice(client, pay_request, 99_999, network="regtest")
    assert "99999" in caught.value.message
    assert "100000..200000" in caught.value.message
    assert server.callback_hits == []


async def test_amount_mismatch_names_asked_and_got(
    server: LnurlServer, client: httpx.AsyncClient
) -> None:
    server.invoice = InvoiceSpec(amount_delta_msat=7)
    pay_request = await fetch_pay_request(client, server.address())
    with pytest.raises(LnurlError) as caught:
        await fetch_invoice(client, pay_request, AMOUNT, network="regtest")
    assert f"asked {AMOUNT} msat" in caught.value.message
    assert f"{AMOUNT + 7} msat" in caught.value.message
    assert caught.value.details["got_msat"] == AMOUNT + 7


async def test_server_reason_is_sanitised_and_truncated(
    server: LnurlServer, client: httpx.AsyncClient
) -> None:
    nasty = "line one\nline two\x1b[31m " + "x" * 5000
    server.pay_handler = reply_json({"status": "ERROR", "reason": nasty})
    with pytest.raises(LnurlError) as caught:
        await fetch_pay_request(client, server.address())
    message = caught.value.message
    assert caught.value.reason == "status_error"
    assert "line one line two" in message
    assert "\n" not in message and "\x1b" not in message
    assert len(message) < 200


async def test_expiry_is_judged_at_the_given_now(
    server: LnurlServer, client: httpx.AsyncClient
) -> None:
    pay_request = await fetch_pay_request(client, server.address())
    later = time.time() + 3600 - 30  # 30 s before the default 1 h expiry
    with pytest.raises(LnurlError) as caught:
        await fetch_invoice(client, pay_request, AMOUNT, network="regtest", now=later)
    assert caught.value.reason == "invoice_expires_too_soon"
    ok = await fetch_invoice(
        client, pay_request, AMOUNT, network="regtest", now=later, min_expiry_seconds=10
    )
    assert 0 < ok.expires_at - later < 60


async def test_zero_expiry_is_refused_even_before_its_timestamp(
    server: LnurlServer, client: httpx.AsyncClient
) -> None:
    # Judged from a clock 10 minutes behind the server's, date + 0 still lies ahead.
    server.invoice = InvoiceSpec(expiry=0)
    pay_request = await fetch_pay_request(client, server.address())
    with pytest.raises(LnurlError) as caught:
        await fetch_invoice(client, pay_request, AMOUNT, network="regtest", now=time.time() - 600)
    assert caught.value.reason == "invoice_expired"
    assert "zero expiry" in caught.value.message


async def test_callback_is_rechecked_for_a_hand_made_pay_request(
    server: LnurlServer, client: httpx.AsyncClient
) -> None:
    good = await fetch_pay_request(client, server.address())
    forged = PayRequest(
        callback="https://evil.example/cb",
        min_sendable_msat=1,
        max_sendable_msat=10**9,
        metadata=METADATA,
        comment_allowed=0,
        address=good.address,
    )
    with pytest.raises(LnurlError) as caught:
        await fetch_invoice(client, forged, AMOUNT, network="regtest")
    assert caught.value.reason == "callback_host_mismatch"


async def test_connection_refused_is_a_transient_http_error(client: httpx.AsyncClient) -> None:
    srv = LnurlServer()
    await srv.start()
    address = srv.address()
    await srv.close()  # nothing listens on that port now
    with pytest.raises(LnurlError) as caught:
        await fetch_pay_request(client, address)
    assert caught.value.reason == "http_error"
    assert caught.value.transient


@respx.mock
async def test_https_address_refuses_a_plain_http_callback() -> None:
    body = {
        "tag": "payRequest",
        "callback": "http://example.com/cb",
        "minSendable": 1000,
        "maxSendable": 10**9,
        "metadata": METADATA,
    }
    route = respx.get("https://example.com/.well-known/lnurlp/alice").mock(
        return_value=httpx.Response(200, json=body)
    )
    async with httpx.AsyncClient() as client:
        with pytest.raises(LnurlError) as caught:
            await fetch_pay_request(client, "alice@example.com")
    assert route.called
    assert caught.value.reason == "bad_pay_request"


@respx.mock
async def test_https_address_accepts_callback_on_its_host() -> None:
    body = {
        "tag": "payRequest",
        "callback": "https://Example.com/lnurlp/alice/callback",
        "minSendable": 1000,
        "maxSendable": 10**9,
        "metadata": METADATA,
    }
    respx.get("https://example.com/.well-known/lnurlp/alice").mock(
        return_value=httpx.Response(200, json=body)
    )
    pr = mint_invoice(InvoiceSpec(currency="bc"), 21_000, METADATA)
    cb = respx.get("https://example.com/lnurlp/alice/callback", params={"amount": "21000"}).mock(
        return_value=httpx.Response(200, json={"pr": pr, "routes": []})
    )
    async with httpx.AsyncClient() as client:
        pay_request = await fetch_pay_request(client, "Alice@Example.COM")
        invoice = await fetch_invoice(client, pay_request, 21_000, network="mainnet")
    assert cb.called
    assert invoice.bolt11 == pr
    assert invoice.address.host == "example.com"


# ---------------------------------------------------------------------------------------------
# Address parsing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "user", "host", "url"),
    [
        (
            "alice@example.com",
            "alice",
            "example.com",
            "https://example.com/.well-known/lnurlp/alice",
        ),
        (
            " Bob.Smith+tips_1@Pay.Example.org ",
            "bob.smith+tips_1",
            "pay.example.org",
            "https://pay.example.org/.well-known/lnurlp/bob.smith+tips_1",
        ),
        ("a@example.com:8443", "a", "example.com", "https://example.com:8443/.well-known/lnurlp/a"),
        ("a@127.0.0.1:9000", "a", "127.0.0.1", "http://127.0.0.1:9000/.well-known/lnurlp/a"),
        ("a@127.5.6.7", "a", "127.5.6.7", "http://127.5.6.7/.well-known/lnurlp/a"),
        ("a@localhost:1", "a", "localhost", "http://localhost:1/.well-known/lnurlp/a"),
        ("a@[::1]:8080", "a", "::1", "http://[::1]:8080/.well-known/lnurlp/a"),
        ("a@abcdef.onion", "a", "abcdef.onion", "http://abcdef.onion/.well-known/lnurlp/a"),
        ("lightning:a@example.com", "a", "example.com", "https://example.com/.well-known/lnurlp/a"),
        ("a@bücher.de", "a", "xn--bcher-kva.de", "https://xn--bcher-kva.de/.well-known/lnurlp/a"),
        ("https://example.com/lnurlp/x?y=1", "", "example.com", "https://example.com/lnurlp/x?y=1"),
        ("http://127.0.0.1:5/p", "", "127.0.0.1", "http://127.0.0.1:5/p"),
        ("http://xyz.onion/p", "", "xyz.onion", "http://xyz.onion/p"),
    ],
)
def test_parse_valid_addresses(text: str, user: str, host: str, url: str) -> None:
    assert parse_lightning_address(text) == LightningAddress(user, host, url)


def _lnurl(url: str, hrp: str = "lnurl") -> str:
    words = bech32.convertbits(url.encode(), 8, 5)
    assert words is not None
    return bech32.bech32_encode(hrp, words)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "alice",
        "alice@",
        "@example.com",
        "a@b@example.com",
        "al ice@example.com",
        "alice#1@example.com",
        "alice/../x@example.com",
        "..@example.com",
        "ålice@example.com",
        "alice@exa mple.com",
        "alice@example..com",
        "alice@-example.com",
        "alice@example.com:0",
        "alice@example.com:70000",
        "alice@example.com/path",
        "alice@example.com?x=1",
        "alice@999.1.1.1",
        "alice@[::1",
        "alice@[fe80::1%eth0]",
        "a" * 129 + "@example.com",
        "alice@" + "a" * 300 + ".com",
        "http://example.com/.well-known/lnurlp/alice",  # plain http off loopback
        "http://10.0.0.1/p",  # private, not loopback
        "https://user:pw@example.com/p",
        "ftp://example.com/p",
        "lnurl1qqqqqqqq",
        _lnurl("http://example.com/p"),  # a valid LNURL to plain http off loopback
        _lnurl("https://example.com/p", hrp="lnurx"),
        "x" * 5000,
    ],
)
def test_parse_refuses_bad_addresses(text: str) -> None:
    with pytest.raises(LnurlError) as caught:
        parse_lightning_address(text)
    assert caught.value.reason == "bad_address"


async def test_bad_address_is_refused_before_any_request(client: httpx.AsyncClient) -> None:
    with pytest.raises(LnurlError) as caught:
        await fetch_pay_request(client, "alice@exa mple.com")
    assert caught.value.reason == "bad_address"


def test_network_names_map_to_bolt11_prefixes() -> None:
    assert [network_prefix(n) for n in ("mainnet", "testnet", "signet", "regtest")] == [
        "bc",
        "tb",
        "tbs",
        "bcrt",
    ]
    assert network_prefix(" Regtest ") == "bcrt"
    with pytest.raises(ValueError):
        network_prefix("litecoin")


async def test_unknown_network_is_a_config_error_before_any_request(
    server: LnurlServer, client: httpx.AsyncClient
) -> None:
    pay_request = await fetch_pay_request(client, server.address())
    with pytest.raises(ValueError):
        await fetch_invoice(client, pay_request, AMOUNT, network="liquid")
    assert server.callback_hits == []
