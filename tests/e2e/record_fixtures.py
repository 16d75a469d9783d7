"""Record real Bitcart JSON shapes from a running realstack into ``tests/fixtures/realstack/``.

    REALSTACK_HOME=/tmp/realstack .venv/bin/python -m tests.e2e.record_fixtures

Run it on a stack that no story is using (right after `realstack up`, or on a wiped one): it
creates throwaway invoices in the merchant store and invalidates them all before it exits.
Tokens are replaced by ``<TOKEN>`` in what is written.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.stack import DEFAULT_HOME, KIT, REPO_ROOT, RealStack

OUT = REPO_ROOT / "tests" / "fixtures" / "realstack"
# A well-formed wallet id that is no wallet of this Bitcart (ULID alphabet, 26 characters).
FOREIGN_WALLET_ID = "01M8ZZZZZZZZZZZZZZZZZZZZZZ"


def _save(name: str, method: str, path: str, body: Any, r: httpx.Response, t: float) -> Any:
    try:
        response: Any = r.json()
    except ValueError:
        response = r.text
    doc = {
        "request": {
            "method": method,
            "path": path,
            **({"body": body} if body is not None else {}),
            "headers": {"Authorization": "Bearer <TOKEN>"},
        },
        "status": r.status_code,
        "response": response,
        "response_headers": {"content-type": r.headers.get("content-type", "")},
        "elapsed_s": round(t, 3),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{name}: {r.status_code}")
    return response


def main() -> None:
    stack = RealStack(KIT, Path(os.environ.get("REALSTACK_HOME") or DEFAULT_HOME))
    env = stack.load_env()
    store, wallet = env["BITCART_STORE_ID"], env["BITCART_WALLET_ID"]
    http = httpx.Client(
        base_url=env["BITCART_API_URL"],
        headers={"Authorization": f"Bearer {env['BITCART_TOKEN']}"},
        timeout=120,
    )

    def call(name: str, method: str, path: str, body: Any = None) -> Any:
        t0 = time.monotonic()
        r = http.request(method, path, json=body)
        return _save(name, method, path, body, r, time.monotonic() - t0)

    created: list[str] = []
    try:
        body = {
            "store_id": store,
            "currency": "BTC",
            "price": "0.00123456",
            "payment_methods": [wallet],
            "metadata": {"liquidityhelper": "topup", "wallet_id": wallet, "amount_sat": "123456"},
            "expiration": 1440,
            "notes": "liquidityhelper top-up: 123456 sats for Lightning channels",
        }
        inv = call("POST_invoices_payment_methods_managed_wallet", "POST", "/invoices", body)
        created.append(inv["id"])

        foreign = {**body, "payment_methods": [FOREIGN_WALLET_ID]}
        call("POST_invoices_payment_methods_foreign_wallet_422", "POST", "/invoices", foreign)

        # A real wallet of the same merchant that is not in the store.
        seed = http.post("/wallets/create", json={"currency": "btc", "hot_wallet": True}).json()
        other = http.post(
            "/wallets",
            json={"name": "not-in-store", "xpub": seed["seed"], "currency": "btc"},
        ).json()
        other_body = {**body, "payment_methods": [other["id"]]}
        call(
            "POST_invoices_payment_methods_wallet_not_in_store_422", "POST", "/invoices", other_body
        )
        http.delete(f"/wallets/{other['id']}")

        batch = {"ids": [inv["id"]], "command": "mark_invalid"}
        call("POST_invoices_batch_mark_invalid", "POST", "/invoices/batch", batch)
        call("GET_invoices_id_after_mark_invalid", "GET", f"/invoices/{inv['id']}")
    finally:
        # Whatever happened above: leave no pending throwaway invoice in the store.
        pending = http.get(
            "/invoices", params={"query": f"store_id:{store} status:pending", "limit": 100}
        ).json()
        ids = sorted(set(created) | {i["id"] for i in pending.get("result", [])})
        if ids:
            http.post("/invoices/batch", json={"ids": ids, "command": "mark_invalid"})
        http.close()


if __name__ == "__main__":
    main()
