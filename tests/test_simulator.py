"""The Bitcart simulator against the recorded contract, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import bolt11
import httpx
import pytest
from bitcart import BTC, errors
from bitcart.errors import UnknownError

from liquidityhelper.simulator import LnurlMode, SimConfig, Simulator

# Key sets of the recorded answers (shared/fixtures/bitcart_real), so a drift shows here.
STORE_KEYS = {
    "checkout_settings", "created", "currency_data", "default_currency", "email_settings", "id",
    "metadata", "name", "notifications", "plugin_settings", "templates", "theme_settings",
    "updated", "user_id", "wallets",
}  # fmt: skip
WALLET_KEYS = {
    "additional_xpub_data", "balance", "contract", "created", "currency", "error", "hint", "id",
    "label", "lightning_enabled", "metadata", "name", "transaction_speed", "updated", "user",
    "user_id", "xpub",
}  # fmt: skip
INVOICE_KEYS = {
    "buyer_email", "created", "currency", "discount", "exception_status", "expiration",
    "expiration_seconds", "id", "metadata", "notes", "notification_url", "order_id",
    "paid_currency", "paid_date", "payment_id", "payment_methods", "payments", "price",
    "product_names", "product_quantities", "products", "promocode", "redirect_url", "refund_id",
    "sent_amount", "shipping_address", "status", "store_id", "time_left", "tx_hashes", "updated",
    "user_id",
}  # fmt: skip
METHOD_KEYS = {
    "amount", "confirmations", "contract", "created", "currency", "discount", "divisibility",
    "hint", "id", "invoice_id", "is_used", "label", "lightning", "lookup_field", "metadata",
    "name", "node_id", "payment_address", "payment_url", "rate", "rate_str", "recommended_fee",
    "rhash", "symbol", "updated", "user_address", "wallet_id",
}  # fmt: skip
CHANNEL_KEYS = {
    "type", "short_channel_id", "channel_id", "channel_point", "closing_txid", "state",
    "peer_state", "remote_pubkey", "local_balance", "remote_balance", "local_ctn", "remote_ctn",
    "local_reserve", "remote_reserve", "local_unsettled_sent", "remote_unsettled_sent",
}  # fmt: skip
LIST_INVOICE_KEYS = {
    "amount_BTC", "amount_msat", "amount_sat", "expiry", "invoice_id", "is_lightning",
    "lightning_invoice", "message", "status", "status_str", "timestamp",
}  # fmt: skip


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=7) as s:
        yield s


def api(sim: Simulator, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=sim.api_url, headers=headers, timeout=10)


async def rpc(sim: Simulator, method: str, *params: Any, **named: Any) -> dict[str, Any]:
    """One JSON-RPC call as the SDK sends it; returns the whole envelope."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": [*params, named]}
    async with httpx.AsyncClient(auth=(sim.rpc_user, sim.rpc_password), timeout=10) as c:
        resp = await c.post(sim.rpc_url, json=body)
    assert resp.status_code == 200  # the daemon answers 200 even for errors
    return dict(resp.json())


def merchant(sim: Simulator, *, funded_sat: int = 0) -> tuple[str, str, str]:
    """(token, wallet id, store id) of a fresh merchant with one Lightning wallet."""
    token = sim.create_user()
    wallet_id = sim.create_wallet(token)
    store_id = sim.create_store(token, "Shop", "USD", [wallet_id])
    if funded_sat:
        sim.fund_wallet(wallet_id, funded_sat)
    return token, wallet_id, store_id


def trampoline_conn(sim: Simulator) -> str:
    node = sim.trampolines()[0]
    return f"{node.pubkey}@{node.address}"


# -- merchants API ------------------------------------------------------------------------------


async def test_stores_paginate_five_by_five_newest_first(sim: Simulator) -> None:
    token = sim.create_user()
    ids = [sim.create_store(token, f"Store {i:02d}") for i in range(12)]
    async with api(sim, token) as c:
        pages = [
            (await c.get("/stores", params={"limit": 5, "offset": o})).json() for o in (0, 5, 10)
        ]
        everything = (await c.get("/stores", params={"limit": -1})).json()
        default = (await c.get("/stores")).json()
    assert [len(p["result"]) for p in pages] == [5, 5, 2]
    assert {p["count"] for p in pages} == {12}
    listed = [s["id"] for p in pages for s in p["result"]]
    assert listed == list(reversed(ids))
    assert pages[0]["previous"] is None
    assert pages[0]["next"] == f"{sim.api_url}/stores?limit=5&offset=5"
    assert pages[1]["previous"] == f"{sim.api_url}/stores?limit=5"
    assert pages[1]["next"] == f"{sim.api_url}/stores?limit=5&offset=10"
    assert pages[2]["next"] is None
    assert len(default["result"]) == 5 and default["count"] == 12
    assert len(everything["result"]) == 12
    assert everything["next"] is None and everything["previous"] is None
    assert set(everything["result"][0]) == STORE_KEYS


async def test_auth_errors_and_scopes(sim: Simulator) -> None:
    token = sim.create_user()
    limited = sim.create_token(token, ["store_management"])
    async with api(sim) as anon, api(sim, "wrongtoken123") as bad, api(sim, limited) as lim:
        no_token = await anon.get("/wallets")
        wrong = await bad.get("/wallets")
        forbidden = await lim.get("/wallets")
        allowed = await lim.get("/stores")
        current = await lim.get("/token/current")
    assert (no_token.status_code, no_token.json()) == (401, {"detail": "Not authenticated"})
    assert (wrong.status_code, wrong.json()) == (401, {"detail": "Could not validate credentials"})
    assert (forbidden.status_code, forbidden.json()) == (403, {"detail": "Not enough permissions"})
    assert allowed.status_code == 200
    assert current.json()["permissions"] == ["store_management"]
    assert current.json()["id"] == limited


async def test_each_user_sees_only_its_own_objects(sim: Simulator) -> None:
    alice, alice_wallet, alice_store = merchant(sim)
    bob, _bob_wallet, _bob_store = merchant(sim)
    async with api(sim, bob) as c:
        stores = (await c.get("/stores", params={"limit": -1})).json()
        wallets = (await c.get("/wallets", params={"limit": -1})).json()
        other_wallet = await c.get(f"/wallets/{alice_wallet}")
        other_channels = await c.get(f"/wallets/{alice_wallet}/channels")
        other_store = await c.get(f"/stores/{alice_store}")
        bogus = await c.get("/stores/doesnotexist")
    assert alice_store not in [s["id"] for s in stores["result"]]
    assert alice_wallet not in [w["id"] for w in wallets["result"]]
    assert stores["count"] == 1 and wallets["count"] == 1
    not_found = {"error": "Not found", "detail": "No item found when one was expected"}
    assert (other_wallet.status_code, other_wallet.json()) == (404, not_found)
    assert other_channels.status_code == 404
    # Another user's store comes back in its public shape: no wallets.
    assert other_store.status_code == 200 and "wallets" not in other_store.json()
    assert (bogus.status_code, bogus.json()) == (404, not_found)
    async with api(sim, alice) as c:
        own = (await c.get(f"/stores/{alice_store}")).json()
        wallet = (await c.get(f"/wallets/{alice_wallet}")).json()
    assert own["wallets"] == [alice_wallet]
    assert set(wallet) == WALLET_KEYS
    assert wallet["xpub"] == sim.wallet_key(alice_wallet)


async def test_invoice_query_filters_and_ignored_plain_param(sim: Simulator) -> None:
    token, wallet_id, store_a = merchant(sim)
    store_b = sim.create_store(token, "Other", "BTC", [wallet_id])
    async with api(sim, token) as c:
        for store in (store_a, store_a, store_b):
            await c.post("/invoices", json={"store_id": store, "price": 1, "currency": "BTC"})
        topup = await c.post(
            "/invoices",
            json={
                "store_id": store_a,
                "price": 0.00123456,
                "currency": "BTC",
                "metadata": {"liquidityhelper": "topup", "sats": 123456},
            },
        )
        by_store = (
            await c.get("/invoices", params={"query": f"store_id:{store_a}", "limit": -1})
        ).json()
        plain = (await c.get("/invoices", params={"store_id": store_a, "limit": -1})).json()
        meta = (await c.get("/invoices", params={"query": "metadata.liquidityhelper:topup"})).json()
        meta_int = (await c.get("/invoices", params={"query": "metadata.sats:123456"})).json()
        anded = (
            await c.get("/invoices", params={"query": f"store_id:{store_a} status:expired"})
        ).json()
        pending = (
            await c.get("/invoices", params={"query": f"store_id:{store_b} status:pending"})
        ).json()
    assert by_store["count"] == 3
    assert {i["store_id"] for i in by_store["result"]} == {store_a}
    assert plain["count"] == 4  # the plain parameter filters nothing, like the real one
    assert [i["id"] for i in meta["result"]] == [topup.json()["id"]]
    assert [i["id"] for i in meta_int["result"]] == [topup.json()["id"]]
    assert anded["count"] == 0
    assert pending["count"] == 1


async def test_invoice_without_currency_takes_the_store_default_at_rate_one(sim: Simulator) -> None:
    _token, wallet_id, store_id = merchant(sim)
    async with api(sim) as c:  # anonymous creation is allowed by default
        trap = (await c.post("/invoices", json={"store_id": store_id, "price": 10})).json()
        btc = (
            await c.post(
                "/invoices",
                json={
                    "store_id": store_id,
                    "price": 0.00123456,
                    "currency": "BTC",
                    "expiration": 1440,
                    "notes": "top-up",
                },
            )
        ).json()
    assert (trap["currency"], trap["price"]) == ("USD", "10.00")
    assert [p["amount"] for p in trap["payments"]] == ["10.00000000", "10.00000000"]
    assert trap["payments"][0]["rate_str"] == "$1.00 (USD)"
    assert bolt11.decode(trap["payments"][1]["payment_address"]).amount_msat == 10 * 10**11
    assert (btc["currency"], btc["price"], btc["notes"]) == ("BTC", "0.00123456", "top-up")
    assert btc["expiration_seconds"] == 86_400
    assert set(btc) == INVOICE_KEYS
    onchain, lightning = btc["payments"]
    assert set(onchain) == METHOD_KEYS
    assert (onchain["name"], onchain["lightning"]) == ("BTC", False)
    assert onchain["payment_address"].startswith("bcrt1")
    assert (lightning["name"], lightning["lightning"]) == ("BTC (⚡)", True)
    assert lightning["payment_address"].startswith("lnbcrt")
    assert lightning["node_id"] == sim.node_id(wallet_id)


async def test_bad_bodies_get_422(sim: Simulator) -> None:
    token, _wallet_id, _store_id = merchant(sim)
    async with api(sim, token) as c:
        missing = await c.post("/wallets", json={"name": "x"})
        bad_key = await c.post("/wallets", json={"name": "bad", "xpub": "not-a-key"})
        bad_limit = await c.get("/stores", params={"limit": 5000})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "xpub"]
    assert (bad_key.status_code, bad_key.json()) == (422, {"detail": "Wallet key invalid"})
    assert bad_limit.status_code == 422


# -- channels -------------------------------------------------------------------------------------


async def test_channel_lifecycle_through_rest(sim: Simulator) -> None:
    token, wallet_id, _store_id = merchant(sim, funded_sat=2_000_000)
    async with api(sim, token) as c:
        too_small = await c.post(
            f"/wallets/{wallet_id}/channels/open",
            json={"node_id": trampoline_conn(sim), "amount": 0.0001},
        )
        opened = await c.post(
            f"/wallets/{wallet_id}/channels/open",
            json={"node_id": trampoline_conn(sim), "amount": 0.01},
        )
        point = opened.json()
        (row,) = (await c.get(f"/wallets/{wallet_id}/channels")).json()
        await sim.mine(2)
        still_opening = (await c.get(f"/wallets/{wallet_id}/channels")).json()[0]["state"]
        await sim.mine(1)
        (open_row,) = (await c.get(f"/wallets/{wallet_id}/channels")).json()
        balance = (await c.get(f"/wallets/{wallet_id}/balance")).json()
        closed = await c.post(
            f"/wallets/{wallet_id}/channels/close", json={"channel_point": point, "force": False}
        )
        closing = (await c.get(f"/wallets/{wallet_id}/channels")).json()[0]["state"]
        await sim.mine(1)
        final = (await c.get(f"/wallets/{wallet_id}/channels")).json()[0]
        after = (await c.get(f"/wallets/{wallet_id}/balance")).json()
        bogus = await c.post(
            f"/wallets/{wallet_id}/channels/close", json={"channel_point": "00" * 32 + ":0"}
        )
    assert (too_small.status_code, too_small.json()) == (400, {"detail": "Failed to open channel"})
    assert opened.status_code == 200 and point == row["channel_point"]
    assert set(row) == CHANNEL_KEYS
    assert (row["state"], row["local_balance"], row["remote_balance"]) == ("OPENING", 1_000_000, 0)
    assert row["local_reserve"] == row["remote_reserve"] == 10_000
    assert still_opening == "OPENING"
    assert (open_row["state"], open_row["peer_state"]) == ("OPEN", "GOOD")
    assert open_row["short_channel_id"] is not None
    funding_fee = 150 * 5
    assert balance["confirmed"] == f"{Decimal(2_000_000 - 1_000_000 - funding_fee) / 10**8:.8f}"
    assert balance["lightning"] == "0.01000000"
    assert closed.status_code == 200 and closing == "CLOSING"
    assert (final["state"], final["closing_txid"]) == ("CLOSED", closed.json())
    closing_fee = 170 * 5
    back = 2_000_000 - funding_fee - closing_fee
    assert after["confirmed"] == f"{Decimal(back) / 10**8:.8f}"
    assert (bogus.status_code, bogus.json()) == (400, {"detail": "Failed to close channel"})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's aiohttp BasicAuth
async def test_channel_lifecycle_through_the_bitcart_sdk(sim: Simulator) -> None:
    _token, wallet_id, _store_id = merchant(sim, funded_sat=1_000_000)
    btc = BTC(rpc_url=sim.rpc_url, xpub=sim.wallet_key(wallet_id))
    try:
        assert (await btc.spec)["capabilities"] == {"lightning": True}
        assert await btc.node_id == sim.node_id(wallet_id)
        with pytest.raises(errors.InvalidNodeIDError):
            await btc.open_channel("garbage", "0.001")
        with pytest.raises(errors.NotEnoughFundsError):
            await btc.open_channel(trampoline_conn(sim), "0.5")
        # ``errors.X`` makes classes from the spec; UnknownError is the module's own class.
        with pytest.raises(UnknownError, match="funding_sat too low: 10000 sat < 60000"):
            await btc.open_channel(trampoline_conn(sim), "0.0001")
        point = await btc.open_channel(trampoline_conn(sim), "0.005")
        await sim.mine(3)
        (row,) = await btc.list_channels()
        assert (row["channel_point"], row["state"]) == (point, "OPEN")
        assert (await btc.balance())["lightning"] == Decimal("0.005")
        with pytest.raises(errors.InvalidLightningInvoiceError):
            await btc.lnpay("lnbcrt1bogusinvoice")
        closing_txid = await btc.close_channel(point, force=True)
        assert (await btc.list_channels())[0]["state"] == "FORCE_CLOSING"
        assert closing_txid == (await btc.list_channels())[0]["closing_txid"]
    finally:
        await btc.server._close()


async def test_watch_only_wallet_has_no_lightning(sim: Simulator) -> None:
    token = sim.create_user()
    wallet_id = sim.create_wallet(token, "watch-only", watch_only=True, lightning=False)
    async with api(sim, token) as c:
        checkln = (await c.get(f"/wallets/{wallet_id}/checkln")).json()
        channels = (await c.get(f"/wallets/{wallet_id}/channels")).json()
    answer = await rpc(sim, "nodeid", xpub=sim.wallet_key(wallet_id))
    assert checkln is False and channels == []
    assert answer["error"] == {
        "code": -32011,
        "message": "Exception: Lightning not supported in this wallet type",
    }


# -- payments -------------------------------------------------------------------------------------


async def ready_channel(sim: Simulator, wallet_id: str, sats: int = 1_000_000) -> str:
    point = sim.model.ln.open_channel(
        sim.model.daemon_wallet(sim.wallet_key(wallet_id)), trampoline_conn(sim), str(sats / 1e8)
    )
    await sim.mine(3)
    return point


async def fetch_invoice(address: str, amount_msat: int) -> str:
    user, domain = address.split("@")
    async with httpx.AsyncClient(timeout=10) as c:
        pay_request = (await c.get(f"http://{domain}/.well-known/lnurlp/{user}")).json()
        answer = (await c.get(pay_request["callback"], params={"amount": amount_msat})).json()
    return str(answer["pr"])


async def test_payment_to_a_lightning_address_arrives_once(sim: Simulator) -> None:
    token, wallet_id, _store_id = merchant(sim, funded_sat=2_000_000)
    await ready_channel(sim, wallet_id)
    address = sim.add_lightning_address("operator")
    invoice = await fetch_invoice(address, 50_000_000)
    async with api(sim, token) as c:
        paid = await c.post(f"/wallets/{wallet_id}/lnpay", json={"invoice": invoice})
        again = await c.post(f"/wallets/{wallet_id}/lnpay", json={"invoice": invoice})
        garbage = await c.post(f"/wallets/{wallet_id}/lnpay", json={"invoice": "lnbcrt1bogus"})
    result = paid.json()
    assert result["success"] is True
    assert hashlib.sha256(bytes.fromhex(result["preimage"])).hexdigest() == result["payment_hash"]
    assert sim.received_by_address(address) == 50_000_000
    assert (again.status_code, again.json()) == (400, {"detail": "Failed to pay the invoice"})
    assert (garbage.status_code, garbage.json()) == (400, {"detail": "Failed to pay the invoice"})
    assert len(sim.payments_to(address)) == 1
    key = sim.wallet_key(wallet_id)
    (row,) = (await rpc(sim, "list_invoices", xpub=key))["result"]
    assert set(row) >= LIST_INVOICE_KEYS
    assert (row["status"], row["status_str"], row["preimage"]) == (3, "Paid", result["preimage"])
    sent = [
        h
        for h in (await rpc(sim, "lightning_history", xpub=key))["result"]
        if h["type"] == "payment"
    ]
    assert sent[0]["amount_msat"] == -(50_000_000 + sent[0]["fee_msat"])


async def test_unroutable_payment_is_success_false_and_stays_failed(sim: Simulator) -> None:
    token, wallet_id, _store_id = merchant(sim, funded_sat=2_000_000)
    address = sim.add_lightning_address("nobody")
    invoice = await fetch_invoice(address, 10_000_000)  # no channel yet: no route
    async with api(sim, token) as c:
        answer = await c.post(f"/wallets/{wallet_id}/lnpay", json={"invoice": invoice})
    assert answer.status_code == 200
    assert answer.json()["success"] is False and answer.json()["log"] == []
    (row,) = (await rpc(sim, "list_invoices", xpub=sim.wallet_key(wallet_id)))["result"]
    assert (row["status"], row["status_str"]) == (5, "Failed")
    assert sim.received_by_address(address) == 0


async def test_trampoline_mode_sends_only_through_trampolines(sim: Simulator) -> None:
    _token, wallet_id, _store_id = merchant(sim)
    plain = next(n for n in sim.network_nodes if not n.trampoline)
    sim.open_channel_direct(wallet_id, plain.pubkey, 1_000_000)
    key = sim.wallet_key(wallet_id)
    address = sim.add_lightning_address("shop")
    first = await rpc(sim, "lnpay", await fetch_invoice(address, 1_000_000), xpub=key)
    assert (await rpc(sim, "setconfig", "use_gossip", True))["result"] is None
    second = await rpc(sim, "lnpay", await fetch_invoice(address, 1_000_000), xpub=key)
    assert first["result"]["success"] is False
    assert second["result"]["success"] is True
    assert sim.received_by_address(address) == 1_000_000


async def test_fee_budget_and_restart_forgets_setconfig() -> None:
    now = [1_795_000_000.0]
    async with Simulator(seed=7, clock=lambda: now[0]) as sim:
        _token, wallet_id, _store_id = merchant(sim, funded_sat=2_000_000)
        await ready_channel(sim, wallet_id)
        key = sim.wallet_key(wallet_id)
        address = sim.add_lightning_address("tiny")
        max_millionths = await rpc(sim, "getconfig", "lightning_payment_fee_max_millionths")
        await rpc(sim, "setconfig", "lightning_payment_fee_max_millionths", 0)
        await rpc(sim, "setconfig", "lightning_payment_fee_cutoff_msat", 0)
        starved = await rpc(sim, "lnpay", await fetch_invoice(address, 5_000_000), xpub=key)
        await sim.restart_daemon()
        restored = await rpc(sim, "getconfig", "lightning_payment_fee_cutoff_msat")
        reconnecting = await rpc(sim, "lnpay", await fetch_invoice(address, 5_000_000), xpub=key)
        now[0] += 3  # past the reconnection (2.5 s DISCONNECTED, 0.5 s REESTABLISHING)
        paid = await rpc(sim, "lnpay", await fetch_invoice(address, 5_000_000), xpub=key)
    assert max_millionths["result"] == 10_000
    assert starved["result"]["success"] is False
    assert restored["result"] == 10_000
    assert reconnecting["result"]["success"] is False  # the channel is not back yet
    assert paid["result"]["success"] is True


async def test_held_payment_settles_after_the_client_gave_up(sim: Simulator) -> None:
    token, wallet_id, _store_id = merchant(sim, funded_sat=2_000_000)
    await ready_channel(sim, wallet_id)
    address = sim.add_lightning_address("slow")
    invoice = await fetch_invoice(address, 20_000_000)
    sim.payment_faults.hold_seconds = None  # settle when the test says so
    sim.payment_faults.push("hold")
    async with api(sim, token) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.post(f"/wallets/{wallet_id}/lnpay", json={"invoice": invoice}, timeout=0.3)
        key = sim.wallet_key(wallet_id)
        (pending,) = (await rpc(sim, "list_invoices", xpub=key))["result"]
        (chan,) = (await c.get(f"/wallets/{wallet_id}/channels")).json()
        retry = await c.post(f"/wallets/{wallet_id}/lnpay", json={"invoice": invoice})
        assert sim.settle_held_payments() == 1
        for _ in range(50):
            if sim.received_by_address(address):
                break
            await asyncio.sleep(0.01)
    assert pending["status"] == 4 and chan["local_unsettled_sent"] > 20_000
    assert retry.status_code == 400  # Electrum: a payment was already initiated
    assert sim.received_by_address(address) == 20_000_000
    (done,) = (await rpc(sim, "list_invoices", xpub=key))["result"]
    assert done["status"] == 3


async def test_customer_payments_over_lightning_and_on_chain(sim: Simulator) -> None:
    token, wallet_id, store_id = merchant(sim)
    peer = sim.trampolines()[1]
    sim.open_channel_direct(wallet_id, peer.pubkey, 2_000_000, local_sat=0, initiator="remote")
    ln_invoice = sim.create_invoice(store_id, "0.001", "BTC")
    chain_invoice = sim.create_invoice(store_id, "0.002", "BTC")
    sim.customer_pay(ln_invoice, lightning=True)
    txid = sim.customer_pay(chain_invoice, lightning=False)
    async with api(sim, token) as c:
        ln = (await c.get(f"/invoices/{ln_invoice}")).json()
        chain = (await c.get(f"/invoices/{chain_invoice}")).json()
        await sim.mine(1)
        chain_later = (await c.get(f"/invoices/{chain_invoice}")).json()
        (row,) = (await c.get(f"/wallets/{wallet_id}/channels")).json()
    assert ln["status"] == "complete" and ln["paid_date"].endswith("Z")
    used = [p for p in ln["payments"] if p["is_used"]]
    assert [(p["lightning"], p["amount"]) for p in used] == [(True, "0.00100000")]
    assert chain["status"] == "paid" and chain["tx_hashes"] == [txid]
    assert chain_later["status"] == "complete"
    assert (row["local_balance"], row["remote_balance"]) == (100_000, 1_900_000)
    assert sim.balance(wallet_id)["confirmed"] == 200_000


# -- daemon faults --------------------------------------------------------------------------------


async def test_daemon_down_hides_behind_empty_channels(sim: Simulator) -> None:
    token, wallet_id, _store_id = merchant(sim, funded_sat=2_000_000)
    await ready_channel(sim, wallet_id)
    await sim.set_daemon_down(True)
    async with api(sim, token) as c:
        channels = (await c.get(f"/wallets/{wallet_id}/channels")).json()
        balance = (await c.get(f"/wallets/{wallet_id}/balance")).json()
        checkln = (await c.get(f"/wallets/{wallet_id}/checkln")).json()
        wallet = (await c.get(f"/wallets/{wallet_id}")).json()
    with pytest.raises(httpx.ConnectError):
        await rpc(sim, "list_channels", xpub=sim.wallet_key(wallet_id))
    await sim.set_daemon_down(False)
    rows = (await rpc(sim, "list_channels", xpub=sim.wallet_key(wallet_id)))["result"]
    assert channels == [] and checkln is False
    assert set(balance.values()) == {"0.00000000"}
    assert wallet["error"] is True
    assert len(rows) == 1


async def test_rpc_error_envelopes(sim: Simulator) -> None:
    _token, wallet_id, _store_id = merchant(sim)
    key = sim.wallet_key(wallet_id)
    async with httpx.AsyncClient(timeout=10) as c:
        no_auth = await c.post(sim.rpc_url, json={"jsonrpc": "2.0", "id": 5, "method": "getinfo"})
        parse = await c.post(sim.rpc_url, content=b"{not json", auth=("electrum", "electrumz"))
    assert no_auth.status_code == 200
    assert no_auth.json()["error"] == {"code": -32600, "message": "Unauthorized"}
    assert no_auth.json()["id"] is None
    assert parse.json()["error"] == {"code": -32700, "message": "Parse error"}
    assert (await rpc(sim, "no_such_method", xpub=key))["error"]["code"] == -32601
    assert (await rpc(sim, "getbalance"))["error"] == {
        "code": -32000,
        "message": "Wallet not loaded",
    }
    assert (await rpc(sim, "getbalance", xpub="not-a-key"))["error"]["code"] == -32005
    assert (await rpc(sim, "getbalance", xpub=key))["result"] == {"confirmed": "0"}
    gossip = (await rpc(sim, "gossip_info", xpub=key))["error"]
    assert gossip["code"] == -32603 and "channel_db" in gossip["message"]
    assert (await rpc(sim, "getfeerate"))["result"]["sat/kvB"] == 5_000
    close = (await rpc(sim, "close_channel", "00" * 32 + ":0", xpub=key))["error"]
    assert close == {
        "code": -32603,
        "message": "electrum.util.UserFacingException: Unknown channel " + "00" * 32 + ":0",
    }


async def test_fault_injection_is_deterministic() -> None:
    async def run() -> list[tuple[int, bool]]:
        async with Simulator(seed=11) as s:
            token = s.create_user()
            s.faults.set_rate(0.5, kinds=["500", "503", "malformed"], paths=["^/stores"])
            seen = []
            async with api(s, token) as c:
                for _ in range(20):
                    r = await c.get("/stores")
                    seen.append((r.status_code, _parses(r.text)))
                healthy = await c.get("/token/current")  # not under the rule
            assert healthy.status_code == 200
            return seen

    first, second = await run(), await run()
    assert first == second
    assert {500, 503, 200} <= {code for code, _ in first}
    assert (200, False) in first and (200, True) in first  # malformed and healthy answers


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


async def test_scripted_rpc_faults_and_dropped_connections(sim: Simulator) -> None:
    sim.faults.script(["502", "drop", None, "malformed"], target="rpc")
    statuses: list[Any] = []
    async with httpx.AsyncClient(auth=("electrum", "electrumz"), timeout=5) as c:
        for _ in range(4):
            body = {"jsonrpc": "2.0", "id": 1, "method": "getfeerate", "params": []}
            try:
                resp = await c.post(sim.rpc_url, json=body)
            except httpx.RemoteProtocolError:
                statuses.append("dropped")
                continue
            try:
                statuses.append((resp.status_code, "result" in resp.json()))
            except json.JSONDecodeError:
                statuses.append((resp.status_code, "malformed"))
    assert statuses == [(502, "malformed"), "dropped", (200, True), (200, "malformed")]


# -- lightning addresses ---------------------------------------------------------------------------


async def test_lnurl_invoices_are_real_bolt11_for_the_metadata(sim: Simulator) -> None:
    address = sim.add_lightning_address("merchant")
    user, domain = address.split("@")
    async with httpx.AsyncClient(timeout=10) as c:
        pay_request = (await c.get(f"http://{domain}/.well-known/lnurlp/{user}")).json()
        answer = (await c.get(pay_request["callback"], params={"amount": 21_000})).json()
        again = (await c.get(pay_request["callback"], params={"amount": 21_000})).json()
        too_small = (await c.get(pay_request["callback"], params={"amount": 1})).json()
    assert pay_request["tag"] == "payRequest"
    assert ["text/identifier", address] in json.loads(pay_request["metadata"])
    invoice = bolt11.decode(answer["pr"])
    digest = hashlib.sha256(pay_request["metadata"].encode()).hexdigest()
    assert invoice.description_hash == digest
    assert invoice.currency == "bcrt" and invoice.amount_msat == 21_000
    assert invoice.expiry == 600
    assert bolt11.decode(again["pr"]).payee == invoice.payee == sim.lnurl.payee_pubkey
    assert answer["routes"] == []
    assert too_small["status"] == "ERROR"


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        (LnurlMode.WRONG_AMOUNT, lambda inv, meta: inv.amount_msat == 22_000),
        (
            LnurlMode.WRONG_DESCRIPTION_HASH,
            lambda inv, meta: inv.description_hash != hashlib.sha256(meta.encode()).hexdigest(),
        ),
        (LnurlMode.NO_DESCRIPTION_HASH, lambda inv, meta: inv.description_hash is None),
        (LnurlMode.OTHER_NETWORK, lambda inv, meta: inv.currency == "bc"),
        (LnurlMode.EXPIRED, lambda inv, meta: inv.has_expired()),
    ],
)
async def test_lnurl_hostile_invoice_modes(mode: LnurlMode, check: Any) -> None:
    async with Simulator(seed=3) as s:
        address = s.add_lightning_address("evil")
        s.set_lnurl_mode(mode, address)
        user, domain = address.split("@")
        async with httpx.AsyncClient(timeout=10) as c:
            pay_request = (await c.get(f"http://{domain}/.well-known/lnurlp/{user}")).json()
            answer = (await c.get(pay_request["callback"], params={"amount": 21_000})).json()
        assert check(bolt11.decode(answer["pr"]), pay_request["metadata"])


async def test_lnurl_http_level_modes(sim: Simulator) -> None:
    address = sim.add_lightning_address("bad")
    user, domain = address.split("@")
    url = f"http://{domain}/.well-known/lnurlp/{user}"
    async with httpx.AsyncClient(timeout=10) as c:
        sim.set_lnurl_mode(LnurlMode.STATUS_ERROR, address, stage="pay_request")
        status_error = (await c.get(url)).json()
        sim.set_lnurl_mode(LnurlMode.REDIRECT, address, stage="pay_request")
        redirect = await c.get(url)
        sim.set_lnurl_mode(LnurlMode.ABSURD_AMOUNTS, address)
        absurd = (await c.get(url)).json()
    assert status_error["status"] == "ERROR"
    assert redirect.status_code == 302 and "localhost" in redirect.headers["location"]
    assert absurd["minSendable"] > absurd["maxSendable"]


# -- the model -----------------------------------------------------------------------------------


async def test_reading_leaves_the_state_untouched(sim: Simulator) -> None:
    token, wallet_id, store_id = merchant(sim, funded_sat=500_000)
    sim.create_invoice(store_id, 5, "BTC")
    before = sim.snapshot()
    async with api(sim, token) as c:
        for path in (
            "/stores",
            "/wallets",
            "/invoices",
            f"/wallets/{wallet_id}/channels",
            f"/wallets/{wallet_id}/balance",
            f"/wallets/{wallet_id}/checkln",
        ):
            assert (await c.get(path)).status_code == 200
    for method in ("getbalance", "list_channels", "onchain_history", "list_invoices"):
        assert "result" in await rpc(sim, method, xpub=sim.wallet_key(wallet_id))
    assert sim.snapshot() == before
    json.dumps(before)  # JSON-able


async def test_same_seed_same_world() -> None:
    async def build(seed: int) -> dict[str, Any]:
        async with Simulator(seed=seed, config=SimConfig(n_nodes=6, n_trampolines=2)) as s:
            token = s.create_user("a@example.com")
            s.create_wallet(token)
            return {"nodes": s.network_nodes_json(), "wallets": s.snapshot()["wallets"]}

    first, second, other = await build(5), await build(5), await build(6)
    assert first["nodes"] == second["nodes"]
    assert [n["trampoline"] for n in first["nodes"]["nodes"]].count(True) == 2
    assert first["nodes"] != other["nodes"]
    assert [w["key"] for w in first["wallets"].values()] == [
        w["key"] for w in second["wallets"].values()
    ]


async def test_many_wallets_list_in_one_page(sim: Simulator) -> None:
    token = sim.create_user()
    stores = [sim.create_store(token, f"S{i}") for i in range(50)]
    for i in range(1000):
        sim.create_wallet(token, f"w{i}", store_ids=[stores[i % 50]])
    async with api(sim, token) as c:
        listed = (await c.get("/wallets", params={"limit": 1000})).json()
        all_stores = (await c.get("/stores", params={"limit": -1})).json()
    assert listed["count"] == 1000 and len(listed["result"]) == 1000
    assert sum(len(s["wallets"]) for s in all_stores["result"]) == 1000


async def test_patch_store_wallets_checks_ownership(sim: Simulator) -> None:
    alice, alice_wallet, store_id = merchant(sim)
    _bob, bob_wallet, _bob_store = merchant(sim)
    second = sim.create_wallet(alice, "second")
    async with api(sim, alice) as c:
        stolen = await c.patch(f"/stores/{store_id}", json={"wallets": [bob_wallet]})
        patched = await c.patch(f"/stores/{store_id}", json={"wallets": [alice_wallet, second]})
    assert stolen.status_code == 403
    assert patched.status_code == 200 and patched.json()["wallets"] == [alice_wallet, second]


async def test_onchain_history_shapes() -> None:
    for fmt in ("list", "summary"):
        async with Simulator(seed=4, config=SimConfig(onchain_history_format=fmt)) as s:
            _token, wallet_id, _store_id = merchant(s, funded_sat=1_000_000)
            await ready_channel(s, wallet_id, 200_000)
            answer = (await rpc(s, "onchain_history", xpub=s.wallet_key(wallet_id)))["result"]
        items = answer if fmt == "list" else answer["transactions"]
        deposit, funding = items
        assert (deposit["amount_sat"], deposit["fee_sat"], deposit["bc_value"]) == (
            1_000_000,
            None,
            "0.01",
        )
        assert (funding["amount_sat"], funding["fee_sat"]) == (-200_750, 750)
        assert funding["confirmations"] == 3 and funding["incoming"] is False
        if fmt == "summary":
            assert answer["summary"]["flow"] == {
                "BTC_incoming": "0.01",
                "BTC_outgoing": "0.0020075",
            }


async def test_invoice_for_another_network_is_refused(sim: Simulator) -> None:
    _token, wallet_id, _store_id = merchant(sim, funded_sat=2_000_000)
    await ready_channel(sim, wallet_id)
    address = sim.add_lightning_address("mainnet")
    sim.set_lnurl_mode(LnurlMode.OTHER_NETWORK, address)
    answer = await rpc(
        sim, "lnpay", await fetch_invoice(address, 1_000_000), xpub=sim.wallet_key(wallet_id)
    )
    assert answer["error"]["code"] == -32009
    assert "Wrong Lightning invoice HRP bc" in answer["error"]["message"]
    assert sim.received_by_address(address) == 0


async def test_offline_peer_and_remote_force_close(sim: Simulator) -> None:
    _token, wallet_id, _store_id = merchant(sim, funded_sat=2_000_000)
    point = await ready_channel(sim, wallet_id, 500_000)
    key = sim.wallet_key(wallet_id)
    peer = sim.trampolines()[0]
    address = sim.add_lightning_address("offline")
    sim.set_node_online(peer.pubkey, False)
    (row,) = (await rpc(sim, "list_channels", xpub=key))["result"]
    failed = await rpc(sim, "lnpay", await fetch_invoice(address, 1_000_000), xpub=key)
    sim.set_node_online(peer.pubkey, True)
    sim.remote_force_close(point)
    (still_open,) = (await rpc(sim, "list_channels", xpub=key))["result"]
    before = sim.balance(wallet_id)["confirmed"]
    await sim.mine(2)
    (closed,) = (await rpc(sim, "list_channels", xpub=key))["result"]
    assert (row["state"], row["peer_state"]) == ("OPEN", "DISCONNECTED")
    assert failed["result"]["success"] is False
    assert (still_open["state"], still_open["closing_txid"]) == ("OPEN", None)
    assert closed["state"] == "CLOSED" and closed["closing_txid"]
    swept = sim.balance(wallet_id)["confirmed"] - before
    assert 0 < swept < 500_000  # our side, minus the commitment fee, anchors and sweep


async def test_cli_prints_urls_and_a_working_token() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "liquidityhelper.simulator", "--seed", "1", "--demo",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines = []
        while not lines or lines[-1] != "}":
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line, "the simulator exited early"
            lines.append(line.decode().rstrip("\n"))
        info = json.loads("\n".join(lines))
        async with api_at(info["api_url"], info["token"]) as c:
            stores = (await c.get("/stores")).json()
        assert [s["id"] for s in stores["result"]] == info["store_ids"]
        assert info["lightning_address"].startswith("cashout@127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 20) == 0


def api_at(url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"})


async def test_lnurl_payee_and_body_modes(sim: Simulator) -> None:
    address = sim.add_lightning_address("odd")
    user, domain = address.split("@")
    url = f"http://{domain}/.well-known/lnurlp/{user}"
    async with httpx.AsyncClient(timeout=10) as c:
        callback = (await c.get(url)).json()["callback"]
        sim.set_lnurl_mode(LnurlMode.OTHER_PAYEE, address)
        payees = {
            bolt11.decode((await c.get(callback, params={"amount": 5_000})).json()["pr"]).payee
            for _ in range(2)
        }
        sim.set_lnurl_mode(LnurlMode.NON_JSON, address)
        html = await c.get(callback, params={"amount": 5_000})
        sim.set_lnurl_mode(LnurlMode.ENDLESS_BODY, address)
        received = 0
        async with c.stream("GET", callback, params={"amount": 5_000}) as stream:
            async for chunk in stream.aiter_bytes():
                received += len(chunk)
                if received > 1_000_000:
                    break
    assert len(payees) == 2 and sim.lnurl.payee_pubkey not in payees
    assert html.headers["content-type"].startswith("text/html")
    assert received > 1_000_000
