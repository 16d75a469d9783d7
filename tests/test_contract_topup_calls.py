"""Contract tests of the two Bitcart calls top-ups need, against shapes recorded from the real
stack (tests/fixtures/realstack/, Bitcart 0.10.3 with a real merchant token; see
tests/e2e/record_fixtures.py): ``payment_methods`` on ``POST /invoices`` and the batch
``mark_invalid`` action."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from liquidityhelper.wallet.base import APIError, BadReplyError
from liquidityhelper.wallet.bitcart import BitcartWallet

FIXTURES = Path(__file__).parent / "fixtures" / "realstack"
API = "http://bitcart.test"


def fx(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def wallet() -> AsyncIterator[BitcartWallet]:
    async with httpx.AsyncClient() as client:
        yield BitcartWallet(
            API,
            "tok",
            daemon_url=None,
            daemon_user="electrum",
            daemon_password="pw",
            http_client=client,
            retry_wait_seconds=0,
        )


async def test_create_sends_payment_methods_and_reads_them_back(
    mock: respx.MockRouter, wallet: BitcartWallet
) -> None:
    rec = fx("POST_invoices_payment_methods_managed_wallet")
    sent = rec["request"]["body"]
    route = mock.post(f"{API}/invoices").mock(
        return_value=httpx.Response(rec["status"], json=rec["response"])
    )
    invoice = await wallet.create_store_invoice(
        sent["store_id"],
        int(sent["metadata"]["amount_sat"]),
        metadata=sent["metadata"],
        notes=sent["notes"],
        expiration_minutes=sent["expiration"],
        payment_methods=sent["payment_methods"],
    )
    body = json.loads(route.calls.last.request.content)
    assert body["payment_methods"] == sent["payment_methods"]
    assert body["currency"] == "BTC" and body["price"] == sent["price"]
    managed = sent["payment_methods"][0]
    assert invoice.payment_methods == (managed,)
    assert {p.wallet_id for p in invoice.payments} == {managed}
    # One on-chain and one ⚡ method of that wallet; the address is the on-chain one.
    assert sorted(p.lightning for p in invoice.payments) == [False, True]
    assert invoice.onchain_address(managed).startswith("bcrt1")


@pytest.mark.parametrize(
    "name",
    [
        "POST_invoices_payment_methods_wallet_not_in_store_422",
        "POST_invoices_payment_methods_foreign_wallet_422",
    ],
)
async def test_a_wallet_outside_the_store_is_a_clear_error(
    mock: respx.MockRouter, wallet: BitcartWallet, name: str
) -> None:
    rec = fx(name)
    sent = rec["request"]["body"]
    mock.post(f"{API}/invoices").mock(
        return_value=httpx.Response(rec["status"], json=rec["response"])
    )
    with pytest.raises(APIError) as err:
        await wallet.create_store_invoice(
            sent["store_id"], 123_456, metadata={}, payment_methods=sent["payment_methods"]
        )
    assert err.value.status == 422 and "is not connected to store" in err.value.detail


async def test_an_echo_offering_other_wallets_is_refused_and_invalidated(
    mock: respx.MockRouter, wallet: BitcartWallet
) -> None:
    """A Bitcart that ignored the field would offer every wallet of the store."""
    rec = fx("POST_invoices_payment_methods_managed_wallet")
    sent, answer = rec["request"]["body"], dict(rec["response"])
    answer["payment_methods"] = [*answer["payment_methods"], "01OTHERWALLET0000000000000"]
    mock.post(f"{API}/invoices").mock(return_value=httpx.Response(200, json=answer))
    batch = mock.post(f"{API}/invoices/batch").mock(return_value=httpx.Response(200, json=True))
    with pytest.raises(BadReplyError):
        await wallet.create_store_invoice(
            sent["store_id"], 123_456, metadata={}, payment_methods=sent["payment_methods"]
        )
    assert json.loads(batch.calls.last.request.content) == {
        "ids": [answer["id"]],
        "command": "mark_invalid",
    }


async def test_mark_invalid_request_and_answer(
    mock: respx.MockRouter, wallet: BitcartWallet
) -> None:
    rec = fx("POST_invoices_batch_mark_invalid")
    route = mock.post(f"{API}/invoices/batch").mock(
        return_value=httpx.Response(rec["status"], json=rec["response"])
    )
    await wallet.invalidate_invoices(rec["request"]["body"]["ids"])
    assert json.loads(route.calls.last.request.content) == rec["request"]["body"]
    after = fx("GET_invoices_id_after_mark_invalid")["response"]
    assert after["status"] == "invalid"


async def test_mark_invalid_answered_otherwise_is_an_error(
    mock: respx.MockRouter, wallet: BitcartWallet
) -> None:
    mock.post(f"{API}/invoices/batch").mock(return_value=httpx.Response(200, json=False))
    with pytest.raises(BadReplyError):
        await wallet.invalidate_invoices(["01M8GHQ9VPSYQJ4XFC0K88BAGN"])
