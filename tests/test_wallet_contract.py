"""Contract tests of the Bitcart wallet adapter against recorded Bitcart/Electrum exchanges.

Fixtures in tests/fixtures/bitcart/ are copies of /work/shared/fixtures/bitcart_real/ (a real
Bitcart 0.10.3.0 and its Electrum 4.6 daemon). The real run had no chain, so shapes that need
one (channel rows, settled payments, transactions) are built here from Electrum's source
(commands.list_channels, util.LightningHistoryItem/OnchainHistoryItem.to_dict).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from liquidityhelper.wallet import parsing
from liquidityhelper.wallet.base import (
    APIError,
    AuthError,
    BadReplyError,
    ChannelState,
    ChannelsUnavailableError,
    DaemonError,
    FeeBudget,
    InsufficientFundsError,
    InvalidInvoiceError,
    InvalidNodeIdError,
    InvoiceNotFoundError,
    LightningMode,
    LightningUnsupportedError,
    NoPathError,
    NotFoundError,
    PaymentStatus,
    TransientError,
    WalletBackend,
)
from liquidityhelper.wallet.bitcart import BitcartWallet
from liquidityhelper.wallet.bitcart_api import BitcartAPI, RetryPolicy
from liquidityhelper.wallet.daemon_rpc import DaemonNotConfiguredError, DaemonRPC

FIXTURES = Path(__file__).parent / "fixtures" / "bitcart"
API = "http://bitcart.test"
DAEMON = "http://daemon.test:5000"
TOKEN = "tok-SECRET-abcdef123456"
DAEMON_PASSWORD = "daemon-SECRET-pw"
WALLET_ID = "01M85F18WX7NEB9ZSEN6SSKSG0"  # the "ln wallet" of GET_wallets_id.json
WALLET_KEY = "<WALLET_SEED>"  # its xpub field (a redacted seed)
STORE_ID = "01M86AEGYNPXF2JT9JKC7G35P6"  # "store 01" of the invoice fixtures
PEER = "02" + "11" * 32


def fx(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def body(name: str) -> Any:
    return fx(name)["response"]


def reply(name: str) -> httpx.Response:
    data = fx(name)
    return httpx.Response(data["status"], json=data["response"])


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def make_wallet(client: httpx.AsyncClient, *, daemon: bool = True, **kw: Any) -> BitcartWallet:
    defaults: dict[str, Any] = {
        "daemon_url": DAEMON if daemon else None,
        "daemon_user": "electrum",
        "daemon_password": DAEMON_PASSWORD,
        "http_client": client,
        "retry_wait_seconds": 0,
        "retry_wait_max_seconds": 0,
        "page_size": 5,
    }
    return BitcartWallet(API, TOKEN, **{**defaults, **kw})


@pytest.fixture
def wallet(client: httpx.AsyncClient) -> BitcartWallet:
    return make_wallet(client)


class Daemon:
    """A respx stand-in for the daemon: answers each method with a recorded JSON-RPC body."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.answers: dict[str, Any] = {}
        self.calls: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []
        self.route = router.post(DAEMON + "/").mock(side_effect=self._handle)

    def answer(
        self, method: str, fixture_or_body: str | dict[str, Any] | Callable[..., Any]
    ) -> None:
        self.answers[method] = fixture_or_body

    def result(self, method: str, value: Any) -> None:
        self.answers[method] = {"jsonrpc": "2.0", "result": value}

    def error(self, method: str, code: int, message: str) -> None:
        self.answers[method] = {"jsonrpc": "2.0", "error": {"code": code, "message": message}}

    def _handle(self, request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        self.calls.append(payload)
        self.headers.append(request.headers)
        answer = self.answers[payload["method"]]
        if callable(answer):
            return answer(payload)
        data = body(answer) if isinstance(answer, str) else answer
        return httpx.Response(200, json={**data, "id": payload["id"]})

    def methods(self) -> list[str]:
        return [c["method"] for c in self.calls]


@pytest.fixture
def daemon(mock: respx.MockRouter) -> Daemon:
    return Daemon(mock)


def route_wallet(mock: respx.MockRouter) -> respx.Route:
    return mock.get(f"{API}/wallets/{WALLET_ID}").mock(return_value=reply("GET_wallets_id"))


# =============================================================================================
# Parsers against the recorded bodies
# =============================================================================================


def test_parse_stores_of_a_page() -> None:
    rows, count, nxt = parsing.parse_page(body("GET_stores_page1"))
    stores = [parsing.parse_store(r) for r in rows]
    assert count == 12 and nxt is not None and len(stores) == 5
    assert stores[0].name == "Seed Store 12" and stores[0].default_currency == "BTC"
    two = next(s for s in stores if s.name == "Seed Store 11")
    assert two.wallet_ids == ("01M86AEFWY4J33XT9VE2FSFRWB", "01M86AEG1XSS0VQ0W7CRQGJ05K")
    assert two.default_currency == "USD"


def test_public_store_shape_without_wallets_is_refused() -> None:
    public = {k: v for k, v in body("GET_stores_id").items() if k != "wallets"}
    with pytest.raises(BadReplyError, match="no wallet list"):
        parsing.parse_store(public)


def test_parse_wallet_keeps_key_out_of_repr() -> None:
    info = parsing.parse_wallet(body("GET_wallets_id"))
    assert (info.id, info.name, info.currency, info.lightning_enabled) == (
        WALLET_ID,
        "ln wallet",
        "btc",
        True,
    )
    assert info.key == WALLET_KEY and WALLET_KEY not in repr(info)


def test_parse_unspent_as_electrum_lists_coins() -> None:
    """Electrum's ``listunspent``: ``txin.to_json()`` with ``value`` as ``str(Decimal/COIN)``
    (so "1E-5" can happen) and the height (0: mempool)."""
    reply = [
        {"prevout_hash": "aa" * 32, "prevout_n": 0, "value": "0.0015", "height": 120},
        {"prevout_hash": "bb" * 32, "prevout_n": 1, "value": "1E-5", "height": 0},
        {"prevout_hash": "cc" * 32, "prevout_n": 0, "value": "0.02", "height": 118},
    ]
    assert parsing.parse_unspent(reply) == [(2_000_000, 118), (150_000, 120), (1_000, 0)]
    for bad in ({"value": "0", "height": 1}, {"value": 0.001, "height": 1}, {"height": 1}):
        with pytest.raises(BadReplyError):
            parsing.parse_unspent([bad])
    with pytest.raises(BadReplyError):
        parsing.parse_unspent({"coins": []})


def test_parse_balance_rest_and_electrum_shapes() -> None:
    assert parsing.parse_balance(body("GET_wallets_id_balance")).confirmed_sat == 0
    # Electrum's getbalance omits zero keys.
    assert parsing.parse_balance(body("RPC_getbalance")["result"]).lightning_sat == 0
    b = parsing.parse_balance(
        {
            "confirmed": "0.29000000",
            "unconfirmed": "0.00000001",
            "unmatured": "0",
            "lightning": "1.",
        }
    )
    assert (b.confirmed_sat, b.unconfirmed_sat, b.unmatured_sat, b.lightning_sat) == (
        29_000_000,
        1,
        0,
        100_000_000,
    )
    with pytest.raises(BadReplyError):
        parsing.parse_balance({"confirmed": "0.000000001"})  # a fraction of a sat


def test_parse_node_id() -> None:
    node = body("GET_wallets_id_checkln")
    assert parsing.parse_node_id(node) == node
    assert parsing.parse_node_id(body("GET_wallets_watchonly_checkln")) is None  # false
    assert parsing.parse_node_id(f"{node}@10.0.0.1:9735") == node
    with pytest.raises(BadReplyError):
        parsing.parse_node_id("not-a-pubkey")


def channel_row(state: str = "OPEN", peer_state: str = "GOOD", **over: Any) -> dict[str, Any]:
    """An Electrum list_channels CHANNEL row (electrum/commands.py::list_channels)."""
    row = {
        "type": "CHANNEL",
        "short_channel_id": "101x1x0",
        "channel_id": "ab" * 32,
        "channel_point": "cd" * 32 + ":1",
        "closing_txid": None,
        "state": state,
        "peer_state": peer_state,
        "remote_pubkey": PEER,
        "local_balance": 700_000,
        "remote_balance": 290_000,
        "local_ctn": 3,
        "remote_ctn": 3,
        "local_reserve": 10_000,
        "remote_reserve": 10_000,
        "local_unsettled_sent": 6_000,
        "remote_unsettled_sent": 4_000,
    }
    return {**row, **over}


BACKUP_ROW = {
    "type": "BACKUP",
    "short_channel_id": None,
    "channel_id": "ef" * 32,
    "channel_point": "01" * 32 + ":0",
    "closing_txid": None,
    "state": "OPEN",
}


@pytest.mark.parametrize(
    ("raw", "group"),
    [
        ("PREOPENING", ChannelState.OPENING),
        ("OPENING", ChannelState.OPENING),
        ("FUNDED", ChannelState.OPENING),
        ("OPEN", ChannelState.OPEN),
        ("SHUTDOWN", ChannelState.CLOSING),
        ("CLOSING", ChannelState.CLOSING),
        ("FORCE_CLOSING", ChannelState.CLOSING),
        ("REQUESTED_FCLOSE", ChannelState.CLOSING),
        ("WE_ARE_TOXIC", ChannelState.CLOSING),
        ("CLOSED", ChannelState.CLOSED),
        ("REDEEMED", ChannelState.CLOSED),
        ("SOMETHING_NEW", ChannelState.UNKNOWN),
    ],
)
def test_channel_states_are_grouped(raw: str, group: ChannelState) -> None:
    ch = parsing.parse_channel(channel_row(state=raw))
    assert ch.state is group and ch.raw_state == raw


def test_channel_row_normalised() -> None:
    ch = parsing.parse_channel(channel_row())
    assert ch.capacity_sat == 700_000 + 290_000 + 6_000 + 4_000  # no capacity field in Electrum
    assert ch.peer_pubkey == PEER and ch.peer_online and ch.is_live
    assert ch.inbound_sat == 280_000 and ch.sendable_sat == 690_000
    assert ch.short_channel_id == "101x1x0"
    offline = parsing.parse_channel(channel_row(peer_state="REESTABLISHING"))
    assert not offline.peer_online and not offline.is_live


def test_backup_row_has_no_balances_and_no_peer() -> None:
    ch = parsing.parse_channel(BACKUP_ROW)
    assert ch.state is ChannelState.BACKUP and ch.raw_state == "OPEN"
    assert ch.peer_pubkey is None and not ch.peer_online and not ch.is_live
    assert (ch.capacity_sat, ch.local_sat, ch.remote_sat) == (0, 0, 0)


def test_recorded_channel_lists_are_empty_lists() -> None:
    assert parsing.parse_channels(body("GET_wallets_id_channels")) == []
    assert parsing.parse_channels(body("RPC_list_channels")["result"]) == []
    with pytest.raises(BadReplyError):
        parsing.parse_channels([{"state": "OPEN"}])  # no channel point


def test_parse_lnpay_failure_and_success() -> None:
    failed = parsing.parse_lnpay(body("POST_wallets_id_lnpay_cross_wallet"))
    assert failed.status is PaymentStatus.FAILED and failed.preimage is None
    assert failed.payment_hash == "0e8fc1eef91dc774d65eb633dc0ee1c8fbff8cae3204d8c0943de4dfe1cb16df"
    assert "empty log" in failed.detail
    logged = parsing.parse_lnpay(
        {
            **body("POST_wallets_id_lnpay_cross_wallet"),
            "log": [["2", "101x1x0", "TEMPORARY_CHANNEL_FAILURE"]],
        }
    )
    assert "TEMPORARY_CHANNEL_FAILURE" in logged.detail and "1 attempt" in logged.detail
    ok = parsing.parse_lnpay(
        {"payment_hash": "aa" * 32, "success": True, "preimage": "bb" * 32, "log": []}
    )
    assert ok.status is PaymentStatus.SUCCEEDED and ok.preimage == "bb" * 32


def test_parse_store_invoice_topup() -> None:
    inv = parsing.parse_store_invoice(body("POST_invoices_usd_store_btc_topup_metadata"))
    assert (inv.price, inv.currency, inv.store_id) == ("0.00123456", "BTC", STORE_ID)
    assert inv.metadata == {"liquidityhelper": "topup", "sats": 123456}
    assert [p.amount_sat for p in inv.payments] == [123456, 123456]
    assert [p.lightning for p in inv.payments] == [False, True]
    assert inv.received_sat_by_wallet == {}  # nothing paid yet
    assert inv.created == datetime(2026, 11, 24, 8, 27, 35, 725771, tzinfo=UTC)
    assert inv.paid_date is None


def test_parse_store_invoice_revenue_comes_from_used_payment() -> None:
    raw = body("POST_invoices_usd_store_btc_topup_metadata")
    raw = {**raw, "status": "complete", "paid_date": "2026-11-24T09:00:00Z"}
    raw["payments"] = [dict(p) for p in raw["payments"]]
    raw["payments"][1]["is_used"] = True
    raw["payments"][1]["amount"] = "0.00123400"
    inv = parsing.parse_store_invoice(raw)
    assert inv.received_sat_by_wallet == {"01M86AECCJHG98RTKWTTXQJHT5": 123_400}
    assert inv.paid_date is not None and inv.paid_date.tzinfo is not None


def test_parse_decoded_invoice() -> None:
    data = fx("RPC_decode_invoice_seeded")
    bolt11 = data["request"]["body"]["params"][0]
    dec = parsing.parse_decoded_invoice(data["response"]["result"], bolt11)
    assert dec.payment_hash == "883805b866b08fc7dff1cc6c71ad495f8cb58bd296acf1f0cede355a16429208"
    assert dec.amount_msat == 10_000_000 and dec.expiry_seconds == 900
    assert dec.payee_pubkey == "0291f93deaa5b789dc0c33c8f9c0871b5833efb88d0fc71f285a959763550bc649"
    assert dec.timestamp == 1795508618 and dec.network == "bcrt" and dec.description == ""


@pytest.mark.parametrize(
    ("bolt11", "net"),
    [("lnbcrt100u1p4s", "bcrt"), ("lnbc1p4s", "bc"), ("LNTB20m1x", "tb"), ("lntbs1x", "tbs")],
)
def test_invoice_network(bolt11: str, net: str) -> None:
    assert parsing.invoice_network(bolt11) == net


def test_parse_lightning_history() -> None:
    assert parsing.parse_lightning_history(body("RPC_lightning_history")["result"]) == []
    rows = [
        # sent: Electrum's amount is negative and includes the 10-sat fee
        {"type": "payment", "label": "cashout", "timestamp": 1795500000, "amount_msat": -1_010_000,
         "fee_msat": 10_000, "payment_hash": "AA" * 32, "preimage": "bb" * 32, "group_id": None,
         "direction": 0},
        {"type": "payment", "label": "", "timestamp": 1795500100, "amount_msat": 5_000_000,
         "fee_msat": None, "payment_hash": "cc" * 32, "preimage": "dd" * 32, "group_id": None,
         "direction": 1},
        {"type": "channel_opening", "label": "Open channel", "timestamp": 1795400000,
         "amount_msat": 500_000_000, "fee_msat": None, "payment_hash": None, "preimage": None,
         "group_id": "ee" * 32, "direction": None},
    ]  # fmt: skip
    sent, received = parsing.parse_lightning_history(rows)
    assert (sent.payment_hash, sent.amount_msat, sent.fee_msat) == ("aa" * 32, -1_000_000, 10_000)
    assert sent.timestamp == datetime.fromtimestamp(1795500000, UTC) and sent.label == "cashout"
    assert (received.amount_msat, received.fee_msat) == (5_000_000, 0)


def test_parse_onchain_history_both_shapes() -> None:
    assert parsing.parse_onchain_history(body("RPC_onchain_history")["result"]) == []
    electrum46 = [
        {"txid": "11" * 32, "amount_sat": 250_000, "fee_sat": None, "height": 101,
         "confirmations": 3, "timestamp": 1795400000, "incoming": True,
         "bc_value": "0.0025", "label": "", "group_id": None},
        {"txid": "22" * 32, "amount_sat": -101_000, "fee_sat": 1_000, "height": 0,
         "confirmations": 0, "timestamp": None, "incoming": False, "label": "open"},
    ]  # fmt: skip
    a, b = parsing.parse_onchain_history(electrum46)
    assert (a.amount_sat, a.fee_sat, a.confirmations) == (250_000, None, 3)
    assert (b.amount_sat, b.fee_sat, b.timestamp) == (-101_000, 1_000, None)
    older = {"summary": {}, "transactions": [{"txid": "33" * 32, "bc_value": "-0.00101000",
             "fee_sat": None, "confirmations": 1, "timestamp": 1795400000}]}  # fmt: skip
    (c,) = parsing.parse_onchain_history(older)
    assert c.amount_sat == -101_000 and c.fee_sat is None


def test_failed_lnpay_stays_in_list_invoices_as_failed() -> None:
    rows = body("RPC_list_invoices_after_lnpay")["result"]
    hit = parsing.payment_from_invoices(
        rows, "0E8FC1EEF91DC774D65EB633DC0EE1C8FBFF8CAE3204D8C0943DE4DFE1CB16DF"
    )
    assert hit is not None and hit.status is PaymentStatus.FAILED and hit.amount_msat == 250_000_000
    assert parsing.payment_from_invoices(rows, "ff" * 32) is None
    assert parsing.payment_from_invoices(body("RPC_list_invoices")["result"], "ff" * 32) is None


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (3, PaymentStatus.SUCCEEDED),
        (4, PaymentStatus.PENDING),
        (6, PaymentStatus.PENDING),
        (7, PaymentStatus.PENDING),
        (0, PaymentStatus.PENDING),  # saved, not expired: an attempt may be starting
        (5, PaymentStatus.FAILED),
        (1, PaymentStatus.FAILED),
        (2, PaymentStatus.UNKNOWN),
    ],
)
def test_invoice_status_ints(code: int, status: PaymentStatus) -> None:
    row = {**body("RPC_list_invoices_after_lnpay")["result"][0], "status": code}
    hit = parsing.payment_from_invoices([row], row["invoice_id"])
    assert hit is not None and hit.status is status


def test_fee_rates_round_up_to_sat_per_vbyte() -> None:
    assert parsing.parse_feerate_result(body("RPC_getfeerate")["result"]) == 150
    assert parsing.sat_per_kvb_to_sat_per_vb(body("RPC_recommended_fee")["result"]) == 150
    assert parsing.sat_per_kvb_to_sat_per_vb(1001) == 2
    assert parsing.sat_per_kvb_to_sat_per_vb(250) == 1
    for bad in (None, 0, -5, "x"):
        with pytest.raises(BadReplyError):
            parsing.sat_per_kvb_to_sat_per_vb(bad)


def test_lightning_mode_and_fee_budget() -> None:
    assert parsing.parse_lightning_mode(body("RPC_getconfig_use_gossip")["result"]) is (
        LightningMode.TRAMPOLINE
    )
    assert parsing.parse_lightning_mode(True) is LightningMode.GOSSIP
    assert parsing.parse_lightning_mode(None) is LightningMode.UNKNOWN
    budget = parsing.parse_fee_budget(
        body("RPC_getconfig_lightning_payment_fee_max_millionths")["result"],
        body("RPC_getconfig_lightning_payment_fee_cutoff_msat")["result"],
    )
    assert budget == FeeBudget(max_millionths=10_000, cutoff_msat=10_000)


def test_error_details() -> None:
    assert parsing.error_detail(body("POST_wallets_missing_fields_422")) == "xpub: Field required"
    assert parsing.error_detail(body("GET_wallets_bogus_id_404")) == (
        "No item found when one was expected"
    )


def test_timestamps_are_aware_utc() -> None:
    dt = parsing.parse_datetime("2026-11-24T08:23:38.451367Z")
    assert dt is not None and dt.utcoffset() is not None and dt.tzinfo == UTC
    naive = parsing.parse_datetime("2026-11-24T08:23:38")
    assert naive is not None and naive.tzinfo == UTC
    assert parsing.parse_datetime(None) is None


# =============================================================================================
# REST client behaviour
# =============================================================================================


def test_bitcart_wallet_is_a_wallet_backend(wallet: BitcartWallet) -> None:
    backend: WalletBackend = wallet  # mypy checks the signatures structurally
    assert isinstance(backend, WalletBackend)


async def test_stores_read_across_three_pages(
    wallet: BitcartWallet, mock: respx.MockRouter
) -> None:
    route = mock.get(f"{API}/stores").mock(
        side_effect=lambda req: reply(
            {"0": "GET_stores_page1", "5": "GET_stores_page2", "10": "GET_stores_page3"}[
                req.url.params["offset"]
            ]
        )
    )
    stores = await wallet.list_stores()
    assert len(stores) == 12 and len({s.id for s in stores}) == 12
    assert stores[-1].name == "Seed Store 01"
    offsets = [(c.request.url.params["limit"], c.request.url.params["offset"]) for c in route.calls]
    assert offsets == [("5", "0"), ("5", "5"), ("5", "10")]  # steps by page size, not count
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in route.calls)


async def test_page_size_is_bounded(client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError):
        BitcartAPI(API, TOKEN, client=client, page_size=1001)


@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        ("GET_users_me_wrong_token", "Could not validate credentials"),
        ("GET_users_me_no_token", "Not authenticated"),
        ("GET_wallets_insufficient_scope_403", "Not enough permissions"),
    ],
)
async def test_auth_errors_are_clear(
    wallet: BitcartWallet, mock: respx.MockRouter, fixture: str, words: str
) -> None:
    route = mock.get(f"{API}/stores").mock(return_value=reply(fixture))
    with pytest.raises(AuthError) as err:
        await wallet.list_stores()
    text = str(err.value)
    assert words in text and "/stores" in text and "missing, wrong or lacks a scope" in text
    assert TOKEN not in text
    assert route.call_count == 1  # an auth failure is not retried


async def test_not_found(wallet: BitcartWallet, mock: respx.MockRouter) -> None:
    mock.get(f"{API}/wallets/doesnotexist").mock(return_value=reply("GET_wallets_bogus_id_404"))
    with pytest.raises(NotFoundError, match="/wallets/doesnotexist"):
        await wallet.get_wallet("doesnotexist")


async def test_400_detail_reaches_api_error(wallet: BitcartWallet, mock: respx.MockRouter) -> None:
    mock.post(f"{API}/wallets/{WALLET_ID}/channels/open").mock(
        return_value=reply("POST_wallets_id_channels_open_bogus_node")
    )
    with pytest.raises(APIError) as err:
        await wallet.open_channel(WALLET_ID, f"{PEER}@127.0.0.1:9735", 100_000)
    assert err.value.status == 400 and err.value.detail == "Failed to open channel"
    assert err.value.path == f"/wallets/{WALLET_ID}/channels/open"


async def test_open_channel_sends_btc_string_and_returns_point(
    wallet: BitcartWallet, mock: respx.MockRouter
) -> None:
    point = "ab" * 32 + ":0"
    route = mock.post(f"{API}/wallets/{WALLET_ID}/channels/open").mock(
        return_value=httpx.Response(200, json=point)
    )
    assert await wallet.open_channel(WALLET_ID, f"{PEER}@127.0.0.1:9735", 100_000) == point
    sent = json.loads(route.calls.last.request.content)
    assert sent == {"node_id": f"{PEER}@127.0.0.1:9735", "amount": "0.00100000"}


async def test_open_channel_refuses_bad_connection_string_locally(
    wallet: BitcartWallet, mock: respx.MockRouter
) -> None:
    route = mock.post(f"{API}/wallets/{WALLET_ID}/channels/open")
    with pytest.raises(InvalidNodeIdError):
        await wallet.open_channel(WALLET_ID, "garbage", 100_000)
    assert route.call_count == 0


async def test_retry_on_503_then_success(wallet: BitcartWallet, mock: respx.MockRouter) -> None:
    funded = {**body("GET_wallets_id_balance"), "confirmed": "0.00020000"}
    route = mock.get(f"{API}/wallets/{WALLET_ID}/balance").mock(
        side_effect=[httpx.Response(503, json={"detail": "down"}), httpx.Response(200, json=funded)]
    )
    balance = await wallet.balance(WALLET_ID)
    assert balance.confirmed_sat == 20_000 and route.call_count == 2


async def test_zero_balance_is_confirmed_with_the_daemon(
    wallet: BitcartWallet, mock: respx.MockRouter, daemon: Daemon
) -> None:
    """Bitcart answers zeros when its own daemon call fails: a zero is not trusted alone."""
    mock.get(f"{API}/wallets/{WALLET_ID}/balance").mock(
        return_value=reply("GET_wallets_id_balance")
    )
    route_wallet(mock)
    daemon.answer("getbalance", "RPC_getbalance")
    assert (await wallet.balance(WALLET_ID)).confirmed_sat == 0
    daemon.result("getbalance", {"confirmed": "0.001", "lightning": "0.002"})
    assert (await wallet.balance(WALLET_ID)).lightning_sat == 200_000
    daemon.answer("getbalance", "RPC_invalid_xpub")
    with pytest.raises(TransientError, match="cannot confirm"):
        await wallet.balance(WALLET_ID)


async def test_retry_on_malformed_json_and_connect_error(
    wallet: BitcartWallet, mock: respx.MockRouter
) -> None:
    route = mock.get(f"{API}/wallets/{WALLET_ID}/checkln").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(200, content=b"<html>proxy</html>"),
            reply("GET_wallets_id_checkln"),
        ]
    )
    assert await wallet.node_id(WALLET_ID) == body("GET_wallets_id_checkln")
    assert route.call_count == 3


async def test_retries_are_bounded(client: httpx.AsyncClient, mock: respx.MockRouter) -> None:
    wallet = make_wallet(client, retry_attempts=3)
    route = mock.get(f"{API}/wallets/{WALLET_ID}/balance").mock(
        return_value=httpx.Response(502, text="bad gateway")
    )
    with pytest.raises(TransientError, match="HTTP 502"):
        await wallet.balance(WALLET_ID)
    assert route.call_count == 3


async def test_lnpay_is_not_retried_after_read_timeout(
    wallet: BitcartWallet, mock: respx.MockRouter
) -> None:
    route = mock.post(f"{API}/wallets/{WALLET_ID}/lnpay").mock(
        side_effect=httpx.ReadTimeout("slow")
    )
    bolt11 = fx("POST_wallets_id_lnpay_cross_wallet")["request"]["body"]["invoice"]
    with pytest.raises(TransientError, match="reconcile"):
        await wallet.pay_invoice(WALLET_ID, bolt11)
    assert route.call_count == 1


@pytest.mark.parametrize("failure", [httpx.Response(503), httpx.RemoteProtocolError("eof")])
async def test_money_calls_not_retried_once_sent(
    wallet: BitcartWallet, mock: respx.MockRouter, failure: Any
) -> None:
    route = mock.post(f"{API}/invoices").mock(side_effect=[failure, httpx.Response(200)])
    with pytest.raises(TransientError):
        await wallet.create_store_invoice(STORE_ID, 1000, metadata={})
    assert route.call_count == 1


async def test_lnpay_retried_when_connection_refused_before_sending(
    wallet: BitcartWallet, mock: respx.MockRouter
) -> None:
    route = mock.post(f"{API}/wallets/{WALLET_ID}/lnpay").mock(
        side_effect=[httpx.ConnectError("refused"), reply("POST_wallets_id_lnpay_cross_wallet")]
    )
    bolt11 = fx("POST_wallets_id_lnpay_cross_wallet")["request"]["body"]["invoice"]
    result = await wallet.pay_invoice(WALLET_ID, bolt11)
    assert result.status is PaymentStatus.FAILED and route.call_count == 2


async def test_lnpay_uses_the_long_timeout(
    client: httpx.AsyncClient, mock: respx.MockRouter
) -> None:
    wallet = make_wallet(client, timeout_seconds=7, pay_timeout_seconds=99)
    route = mock.post(f"{API}/wallets/{WALLET_ID}/lnpay").mock(
        return_value=reply("POST_wallets_id_lnpay_cross_wallet")
    )
    await wallet.pay_invoice(WALLET_ID, "lnbcrt1x")
    timeouts = route.calls.last.request.extensions["timeout"]
    assert timeouts["read"] == 99 and timeouts["connect"] == 7


async def test_pay_refuses_invoice_of_another_network(
    client: httpx.AsyncClient, mock: respx.MockRouter
) -> None:
    wallet = make_wallet(client, network="mainnet")
    route = mock.post(f"{API}/wallets/{WALLET_ID}/lnpay")
    bolt11 = fx("POST_wallets_id_lnpay_cross_wallet")["request"]["body"]["invoice"]
    with pytest.raises(InvalidInvoiceError, match="bcrt"):
        await wallet.pay_invoice(WALLET_ID, bolt11)
    assert route.call_count == 0


async def test_garbage_invoice_400_becomes_invalid_invoice(
    wallet: BitcartWallet, mock: respx.MockRouter, daemon: Daemon
) -> None:
    mock.post(f"{API}/wallets/{WALLET_ID}/lnpay").mock(
        return_value=reply("POST_wallets_id_lnpay_garbage")
    )
    daemon.answer("decode_invoice", "RPC_lnpay_garbage")  # -32009 Bad bech32 checksum
    with pytest.raises(InvalidInvoiceError, match="bech32"):
        await wallet.pay_invoice(WALLET_ID, "lnbcrt1bogusinvoice")


async def test_400_on_an_invoice_in_flight_is_pending_not_failed(
    wallet: BitcartWallet, mock: respx.MockRouter, daemon: Daemon
) -> None:
    """Bitcart's 400 also hides "a payment was already initiated": never report that as failed."""
    decoded = fx("RPC_decode_invoice_seeded")
    bolt11 = decoded["request"]["body"]["params"][0]
    payment_hash = decoded["response"]["result"]["lnaddr"]["rhash"]
    mock.post(f"{API}/wallets/{WALLET_ID}/lnpay").mock(
        return_value=httpx.Response(400, json={"detail": "Failed to pay the invoice"})
    )
    route_wallet(mock)
    daemon.answer("decode_invoice", "RPC_decode_invoice_seeded")
    row = {**body("RPC_list_invoices_after_lnpay")["result"][0], "invoice_id": payment_hash}
    daemon.result("list_invoices", [{**row, "status": 4, "status_str": "In progress"}])
    daemon.answer("lightning_history", "RPC_lightning_history")
    result = await wallet.pay_invoice(WALLET_ID, bolt11)
    assert result.status is PaymentStatus.PENDING and result.payment_hash == payment_hash


async def test_create_invoice_posts_btc_price_string(
    wallet: BitcartWallet, mock: respx.MockRouter
) -> None:
    route = mock.post(f"{API}/invoices").mock(
        return_value=reply("POST_invoices_usd_store_btc_topup_metadata")
    )
    inv = await wallet.create_store_invoice(
        STORE_ID,
        123_456,
        metadata={"liquidityhelper": "topup", "sats": 123456},
        notes="top-up",
        expiration_minutes=1440,
    )
    assert inv.price == "0.00123456" and inv.currency == "BTC"
    sent = json.loads(route.calls.last.request.content)
    assert sent == {
        "store_id": STORE_ID,
        "currency": "BTC",
        "price": "0.00123456",
        "expiration": 1440,
        "metadata": {"liquidityhelper": "topup", "sats": 123456},
        "notes": "top-up",
    }


async def test_usd_echo_mismatch_is_detected(wallet: BitcartWallet, mock: respx.MockRouter) -> None:
    # Bitcart priced this one in the store's USD at a fallback rate of 1: 10 BTC for "10".
    mock.post(f"{API}/invoices").mock(return_value=reply("POST_invoices_usd_store_no_currency"))
    with capture_logs() as logs, pytest.raises(BadReplyError) as err:
        await wallet.create_store_invoice(STORE_ID, 1_000, metadata={})
    assert "10.00 USD" in str(err.value) and "0.00001000 BTC" in str(err.value)
    assert any(e["event"] == "invoice_echo_mismatch" for e in logs)


async def test_invoice_listing_filters_with_query(
    wallet: BitcartWallet, mock: respx.MockRouter
) -> None:
    route = mock.get(f"{API}/invoices").mock(return_value=reply("GET_invoices_query_store_id"))
    invoices = await wallet.list_store_invoices(STORE_ID)
    assert len(invoices) == 3 and {i.store_id for i in invoices} == {STORE_ID}
    params = route.calls.last.request.url.params
    assert params["query"] == f"store_id:{STORE_ID}" and "store_id" not in params
    await wallet.list_store_invoices(
        STORE_ID, status="pending", metadata={"liquidityhelper": "topup"}
    )
    assert route.calls.last.request.url.params["query"] == (
        f"store_id:{STORE_ID} status:pending metadata.liquidityhelper:topup"
    )


async def test_invoices_of_other_stores_are_dropped(
    wallet: BitcartWallet, mock: respx.MockRouter
) -> None:
    # As when Bitcart ignores a filter: the plain store_id= reply holds every store's invoices.
    ignored = {**body("GET_invoices_plain_store_id_param"), "count": 5}
    mock.get(f"{API}/invoices").mock(return_value=httpx.Response(200, json=ignored))
    stores = {r["store_id"] for r in ignored["result"]}
    assert len(stores) > 1
    kept = await wallet.list_store_invoices(STORE_ID)
    assert all(i.store_id == STORE_ID for i in kept)
    assert len(kept) == sum(r["store_id"] == STORE_ID for r in ignored["result"])


async def test_invoice_query_values_cannot_hold_spaces(wallet: BitcartWallet) -> None:
    with pytest.raises(ValueError):
        await wallet.list_store_invoices(STORE_ID, metadata={"note": "two words"})


# =============================================================================================
# Channels: REST first, [] cross-checked with the daemon
# =============================================================================================


async def test_channels_from_rest(
    wallet: BitcartWallet, mock: respx.MockRouter, daemon: Daemon
) -> None:
    mock.get(f"{API}/wallets/{WALLET_ID}/channels").mock(
        return_value=httpx.Response(200, json=[channel_row(), BACKUP_ROW])
    )
    chans = await wallet.channels(WALLET_ID)
    assert [c.state for c in chans] == [ChannelState.OPEN, ChannelState.BACKUP]
    assert daemon.calls == []  # a non-empty list needs no cross-check


@pytest.mark.parametrize(
    "failure",
    [
        {"jsonrpc": "2.0", "error": {"code": -32603, "message": "AttributeError: 'NoneType'"}},
        httpx.ConnectError("refused"),
        httpx.Response(503),
    ],
)
async def test_empty_rest_channels_with_failing_daemon_is_unavailable(
    wallet: BitcartWallet, mock: respx.MockRouter, daemon: Daemon, failure: Any
) -> None:
    mock.get(f"{API}/wallets/{WALLET_ID}/channels").mock(
        return_value=reply("GET_wallets_id_channels")
    )
    route_wallet(mock)

    def fail(_payload: dict[str, Any]) -> httpx.Response:
        if isinstance(failure, Exception):
            raise failure
        if isinstance(failure, httpx.Response):
            return failure
        return httpx.Response(200, json=failure)

    daemon.answer("list_channels", fail)
    with pytest.raises(ChannelsUnavailableError):
        await wallet.channels(WALLET_ID)
    assert daemon.calls[0]["params"][-1] == {"xpub": WALLET_KEY}


async def test_empty_rest_channels_confirmed_by_daemon(
    wallet: BitcartWallet, mock: respx.MockRouter, daemon: Daemon
) -> None:
    mock.get(f"{API}/wallets/{WALLET_ID}/channels").mock(
        return_value=reply("GET_wallets_id_channels")
    )
    wallet_route = route_wallet(mock)
    daemon.answer("list_channels", "RPC_list_channels")
    assert await wallet.channels(WALLET_ID) == []
    assert await wallet.channels(WALLET_ID) == []
    assert wallet_route.call_count == 1  # the wallet key is cached


async def test_daemon_sees_channels_rest_hid(
    wallet: BitcartWallet, mock: respx.MockRouter, daemon: Daemon
) -> None:
    mock.get(f"{API}/wallets/{WALLET_ID}/channels").mock(return_value=httpx.Response(200, json=[]))
    route_wallet(mock)
    daemon.result("list_channels", [channel_row(state="OPENING")])
    (chan,) = await wallet.channels(WALLET_ID)
    assert chan.state is ChannelState.OPENING


async def test_empty_channels_of_a_wallet_without_lightning(
    wallet: BitcartWallet, mock: respx.MockRouter, daemon: Daemon
) -> None:
    mock.get(f"{API}/wallets/{WALLET_ID}/channels").mock(return_value=httpx.Response(200, json=[]))
    route_wallet(mock)
    daemon.answer("list_channels", "RPC_nodeid_watchonly")  # -32011
    assert await wallet.channels(WALLET_ID) == []


async def test_empty_channels_without_daemon_but_lightning_balance(
    client: httpx.AsyncClient, mock: respx.MockRouter
) -> None:
    wallet = make_wallet(client, daemon=False)
    mock.get(f"{API}/wallets/{WALLET_ID}/channels").mock(return_value=httpx.Response(200, json=[]))
    balance = mock.get(f"{API}/wallets/{WALLET_ID}/balance")
    balance.mock(
        return_value=httpx.Response(
            200, json={**body("GET_wallets_id_balance"), "lightning": "0.00500000"}
        )
    )
    with pytest.raises(ChannelsUnavailableError, match="500000 sat"):
        await wallet.channels(WALLET_ID)
    balance.mock(return_value=reply("GET_wallets_id_balance"))
    assert await wallet.channels(WALLET_ID) == []


# =============================================================================================
# Daemon JSON-RPC
# =============================================================================================


@pytest.mark.parametrize(
    ("fixture", "error", "words"),
    [
        ("RPC_open_channel_bogus_node", InsufficientFundsError, "Insufficient funds"),
        ("RPC_open_channel_garbage", InvalidNodeIdError, "33 bytes"),
        ("RPC_lnpay_garbage", InvalidInvoiceError, "Bad bech32 checksum"),
        ("RPC_lnpay_watchonly", LightningUnsupportedError, "not supported"),
        ("RPC_no_auth", AuthError, "daemon_password"),
        ("RPC_wrong_auth", AuthError, "-32600"),
        ("RPC_wallet_method_without_xpub", DaemonError, "no wallet key"),
        ("RPC_invalid_xpub", DaemonError, "could not load the wallet"),
        ("RPC_close_channel_bogus", DaemonError, "Unknown channel 0000"),
        ("RPC_unknown_method", DaemonError, "no method"),
        ("RPC_gossip_info", DaemonError, "channel_db"),
    ],
)
async def test_rpc_error_codes_become_typed_errors(
    client: httpx.AsyncClient, daemon: Daemon, fixture: str, error: type[Exception], words: str
) -> None:
    data = fx(fixture)
    method = data["request"]["body"]["method"]
    daemon.answer(method, fixture)
    rpc = DaemonRPC(
        DAEMON,
        "electrum",
        DAEMON_PASSWORD,
        client=client,
        retry=RetryPolicy(wait_base_seconds=0, wait_max_seconds=0),
    )
    with pytest.raises(error) as err:
        await rpc.call(method, "x", key="k" * 10)
    assert words in str(err.value)
    code = data["response"]["error"]["code"]
    if isinstance(err.value, DaemonError):
        assert err.value.code == code
    assert daemon.route.call_count == 1  # an answered error is not retried


@pytest.mark.parametrize(("code", "error"), [(-32010, NoPathError), (-32012, InvoiceNotFoundError)])
async def test_rpc_codes_without_recordings(
    client: httpx.AsyncClient, daemon: Daemon, code: int, error: type[DaemonError]
) -> None:
    daemon.error("lnpay", code, "No path found")
    rpc = DaemonRPC(DAEMON, "electrum", DAEMON_PASSWORD, client=client)
    with pytest.raises(error) as err:
        await rpc.call("lnpay", "lnbcrt1x", key="k" * 10)
    assert err.value.code == code and "No path found" in err.value.message


async def test_rpc_request_shape_auth_and_key_scrubbing(
    client: httpx.AsyncClient, daemon: Daemon
) -> None:
    key = "vprv-SECRET-wallet-key"
    daemon.error("get_tx_status", -32603, f"FileNotFoundError: /data/wallets/{key}")
    rpc = DaemonRPC(DAEMON, "electrum", DAEMON_PASSWORD, client=client)
    with pytest.raises(DaemonError) as err:
        await rpc.call("get_tx_status", "00" * 32, key=key)
    assert key not in str(err.value)
    sent = daemon.calls[0]
    assert sent["jsonrpc"] == "2.0" and sent["params"] == ["00" * 32, {"xpub": key}]
    assert daemon.headers[0]["Authorization"].startswith("Basic ")
    assert DAEMON_PASSWORD not in repr(rpc)


async def test_rpc_password_with_colon_is_refused(client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="':'"):
        DaemonRPC(DAEMON, "electrum", "pass:word", client=client)


async def test_fee_rate_lightning_mode_node_id(
    wallet: BitcartWallet, mock: respx.MockRouter, daemon: Daemon
) -> None:
    daemon.answer("recommended_fee", "RPC_recommended_fee")
    daemon.answer("getconfig", "RPC_getconfig_use_gossip")
    assert await wallet.fee_rate(WALLET_ID, target_blocks=1) == 150
    assert daemon.calls[-1]["params"] == [1]
    assert await wallet.lightning_mode(WALLET_ID) is LightningMode.TRAMPOLINE
    daemon.result("recommended_fee", None)  # no estimate for that target yet
    daemon.answer("getfeerate", "RPC_getfeerate")
    assert await wallet.fee_rate(WALLET_ID) == 150
    assert daemon.methods()[-2:] == ["recommended_fee", "getfeerate"]


async def test_node_id_false_is_cross_checked(
    wallet: BitcartWallet, mock: respx.MockRouter, daemon: Daemon
) -> None:
    mock.get(f"{API}/wallets/{WALLET_ID}/checkln").mock(
        return_value=reply("GET_wallets_watchonly_checkln")
    )
    route_wallet(mock)
    daemon.answer("nodeid", "RPC_nodeid_watchonly")  # -32011: really no Lightning
    assert await wallet.node_id(WALLET_ID) is None
    daemon.answer("nodeid", "RPC_nodeid")  # the daemon knows a node: checkln's false was an error
    assert await wallet.node_id(WALLET_ID) == body("RPC_nodeid")["result"]


async def test_lookup_payment(
    wallet: BitcartWallet, mock: respx.MockRouter, daemon: Daemon
) -> None:
    route_wallet(mock)
    failed_hash = body("RPC_list_invoices_after_lnpay")["result"][0]["invoice_id"]
    daemon.answer("list_invoices", "RPC_list_invoices_after_lnpay")
    daemon.answer("lightning_history", "RPC_lightning_history")
    assert (await wallet.lookup_payment(WALLET_ID, failed_hash)).status is PaymentStatus.FAILED
    unknown = await wallet.lookup_payment(WALLET_ID, "ff" * 32)
    assert unknown.status is PaymentStatus.UNKNOWN
    settled = {"type": "payment", "amount_msat": -250_010_000, "fee_msat": 10_000,
               "payment_hash": failed_hash, "preimage": "99" * 32, "timestamp": 1795508700,
               "direction": 0, "label": "", "group_id": None}  # fmt: skip
    daemon.result("lightning_history", [settled])
    paid = await wallet.lookup_payment(WALLET_ID, failed_hash)
    assert (paid.status, paid.fee_msat, paid.amount_msat, paid.preimage) == (
        PaymentStatus.SUCCEEDED,
        10_000,
        250_000_000,
        "99" * 32,
    )
    assert all(c["params"][-1] == {"xpub": WALLET_KEY} for c in daemon.calls)


async def test_decode_histories_and_address(
    wallet: BitcartWallet, mock: respx.MockRouter, daemon: Daemon
) -> None:
    route_wallet(mock)
    daemon.answer("decode_invoice", "RPC_decode_invoice_seeded")
    daemon.answer("lightning_history", "RPC_lightning_history")
    daemon.answer("onchain_history", "RPC_onchain_history")
    daemon.result("getunusedaddress", None)  # every address in the gap limit is used
    daemon.result("createnewaddress", "bcrt1qrpjvkzqyywywyp5x9tcxgdakej5z5n5w8tvxaf")
    bolt11 = fx("RPC_decode_invoice_seeded")["request"]["body"]["params"][0]
    assert (await wallet.decode_invoice(WALLET_ID, bolt11)).amount_msat == 10_000_000
    assert await wallet.lightning_history(WALLET_ID) == []
    assert await wallet.onchain_history(WALLET_ID) == []
    assert await wallet.deposit_address(WALLET_ID) == "bcrt1qrpjvkzqyywywyp5x9tcxgdakej5z5n5w8tvxaf"


async def test_fee_budget_roundtrip(wallet: BitcartWallet, daemon: Daemon) -> None:
    config = {
        key: body(f"RPC_getconfig_{key}")["result"]
        for key in ("lightning_payment_fee_max_millionths", "lightning_payment_fee_cutoff_msat")
    }

    def getconfig(payload: dict[str, Any]) -> httpx.Response:
        result = config[payload["params"][0]]
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": payload["id"], "result": result})

    def setconfig(payload: dict[str, Any]) -> httpx.Response:
        key, value = payload["params"]
        config[key] = value
        return httpx.Response(
            200,
            json={
                **body("RPC_setconfig_lightning_payment_fee_max_millionths"),
                "id": payload["id"],
            },
        )

    daemon.answer("getconfig", getconfig)
    daemon.answer("setconfig", setconfig)
    assert await wallet.get_fee_budget(WALLET_ID) == FeeBudget(10_000, 10_000)
    await wallet.set_fee_budget(WALLET_ID, FeeBudget(max_millionths=30_000, cutoff_msat=50_000))
    assert config == {
        "lightning_payment_fee_max_millionths": 30_000,
        "lightning_payment_fee_cutoff_msat": 50_000,
    }


async def test_daemon_only_calls_without_daemon(client: httpx.AsyncClient) -> None:
    wallet = make_wallet(client, daemon=False)
    with pytest.raises(DaemonNotConfiguredError, match="daemon_url"):
        await wallet.fee_rate(WALLET_ID)
    assert await wallet.lightning_mode(WALLET_ID) is LightningMode.UNKNOWN


# =============================================================================================
# Wallet creation and secrets
# =============================================================================================


async def test_create_lightning_wallet_attaches_it(
    wallet: BitcartWallet, mock: respx.MockRouter
) -> None:
    store = body("GET_stores_id")
    store_id = store["id"]
    seed = body("POST_wallets_create_seed")["seed"]
    created = {
        **body("POST_wallets_seed_lightning"),
        "id": "01NEWWALLET0000000000000000",
        "xpub": seed,
    }
    mock.get(f"{API}/stores/{store_id}").mock(return_value=reply("GET_stores_id"))
    create_seed = mock.post(f"{API}/wallets/create").mock(
        return_value=reply("POST_wallets_create_seed")
    )
    create = mock.post(f"{API}/wallets").mock(return_value=httpx.Response(200, json=created))
    patch = mock.patch(f"{API}/stores/{store_id}").mock(
        return_value=httpx.Response(
            200, json={**store, "wallets": [*store["wallets"], created["id"]]}
        )
    )
    with capture_logs() as logs:
        info = await wallet.create_lightning_wallet("liquidityhelper", store_id)
    assert info.id == created["id"] and info.lightning_enabled and info.key == seed
    assert json.loads(create_seed.calls.last.request.content) == {
        "currency": "btc",
        "hot_wallet": True,
    }
    assert json.loads(create.calls.last.request.content) == {
        "name": "liquidityhelper", "xpub": seed, "currency": "btc", "lightning_enabled": True
    }  # fmt: skip
    assert json.loads(patch.calls.last.request.content) == {
        "wallets": [*store["wallets"], created["id"]]
    }
    assert seed not in repr(info) and seed not in repr(logs)


async def test_create_wallet_missing_fields_422(
    wallet: BitcartWallet, mock: respx.MockRouter
) -> None:
    store_id = body("GET_stores_id")["id"]
    mock.get(f"{API}/stores/{store_id}").mock(return_value=reply("GET_stores_id"))
    mock.post(f"{API}/wallets/create").mock(return_value=reply("POST_wallets_create_seed"))
    mock.post(f"{API}/wallets").mock(return_value=reply("POST_wallets_missing_fields_422"))
    with pytest.raises(APIError, match="xpub: Field required") as err:
        await wallet.create_lightning_wallet("x", store_id)
    assert err.value.status == 422


async def test_secrets_stay_out_of_repr(client: httpx.AsyncClient) -> None:
    wallet = BitcartWallet(
        "http://user:hunter2@bitcart.test",
        TOKEN,
        daemon_url="http://electrum:electrumz@daemon.test:5000",
        daemon_user="electrum",
        daemon_password=DAEMON_PASSWORD,
        http_client=client,
    )
    text = repr(wallet) + str(wallet)
    for secret in (TOKEN, DAEMON_PASSWORD, "hunter2", "electrumz"):
        assert secret not in text
    assert "bitcart.test" in text


async def test_successful_payment_gets_its_fee_from_history(
    wallet: BitcartWallet, mock: respx.MockRouter, daemon: Daemon
) -> None:
    paid_hash = "0e8fc1eef91dc774d65eb633dc0ee1c8fbff8cae3204d8c0943de4dfe1cb16df"
    success = {"payment_hash": paid_hash, "success": True, "preimage": "99" * 32, "log": []}
    lnpay = mock.post(f"{API}/wallets/{WALLET_ID}/lnpay")
    lnpay.mock(return_value=httpx.Response(200, json=success))
    route_wallet(mock)
    settled = {"type": "payment", "amount_msat": -250_004_000, "fee_msat": 4_000,
               "payment_hash": paid_hash, "preimage": "99" * 32, "timestamp": 1795508700,
               "direction": 0, "label": "", "group_id": None}  # fmt: skip
    daemon.result("lightning_history", [settled])
    result = await wallet.pay_invoice(WALLET_ID, "lnbcrt2500u1x")
    assert (result.status, result.fee_msat, result.amount_msat) == (
        PaymentStatus.SUCCEEDED,
        4_000,
        250_000_000,
    )
    daemon.error("lightning_history", -32603, "boom")  # a paid invoice stays paid
    again = await wallet.pay_invoice(WALLET_ID, "lnbcrt2500u1x")
    assert again.status is PaymentStatus.SUCCEEDED and again.fee_msat is None
