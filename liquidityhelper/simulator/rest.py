"""The merchants REST API (Bitcart 0.10.3 without the ``/api`` prefix), over the model.

What matters to a client is reproduced as recorded: Bearer auth with per-user scoping and
scopes, the list envelope and its pagination, 404/422 bodies, BTC strings with 8 decimals,
ISO times with ``Z``, and how the Lightning endpoints hide daemon errors (``checkln`` ->
``false``, ``channels`` -> ``[]``, ``balance`` -> zeros, open/close/lnpay -> a generic 400).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from liquidityhelper.simulator import views
from liquidityhelper.simulator.entities import Store, StoreInvoice, Token, User, Wallet
from liquidityhelper.simulator.errors import RpcError, SimError
from liquidityhelper.simulator.faults import FaultPlan, middleware
from liquidityhelper.simulator.httputil import (
    ApiError,
    error_middleware,
    json_body,
    json_ok,
    missing,
    not_found,
    wrong_type,
)
from liquidityhelper.simulator.listing import (
    QueryParamError,
    as_text,
    count_matching,
    paginate,
    parse_search,
)
from liquidityhelper.simulator.model import (
    ALL_SCOPES,
    SimModel,
    default_checkout_settings,
    key_kind,
)

STORE, WALLET, INVOICE, TOKEN_MGMT = (
    "store_management",
    "wallet_management",
    "invoice_management",
    "token_management",
)


class RestApi:
    def __init__(self, model: SimModel, faults: FaultPlan) -> None:
        self.m = model
        self.faults = faults

    def app(self) -> web.Application:
        app = web.Application(middlewares=[middleware(self.faults, "rest"), error_middleware()])
        r = app.router
        r.add_get("/health/live", self.health)
        r.add_get("/token/current", self.token_current)
        r.add_post("/token", self.token_create)
        r.add_get("/users/me", self.users_me)
        r.add_get("/stores", self.stores_list)
        r.add_get("/stores/count", self.stores_count)
        r.add_post("/stores", self.store_create)
        r.add_get("/stores/{id}", self.store_get)
        r.add_patch("/stores/{id}", self.store_patch)
        r.add_delete("/stores/{id}", self.store_delete)
        r.add_get("/wallets", self.wallets_list)
        r.add_get("/wallets/count", self.wallets_count)
        r.add_post("/wallets", self.wallet_create)
        r.add_post("/wallets/create", self.wallet_seed)
        r.add_get("/wallets/{id}", self.wallet_get)
        r.add_get("/wallets/{id}/balance", self.wallet_balance)
        r.add_get("/wallets/{id}/symbol", self.wallet_symbol)
        r.add_get("/wallets/{id}/checkln", self.wallet_checkln)
        r.add_get("/wallets/{id}/channels", self.wallet_channels)
        r.add_post("/wallets/{id}/channels/open", self.channel_open)
        r.add_post("/wallets/{id}/channels/close", self.channel_close)
        r.add_post("/wallets/{id}/lnpay", self.lnpay)
        r.add_get("/invoices", self.invoices_list)
        r.add_get("/invoices/count", self.invoices_count)
        r.add_post("/invoices", self.invoice_create)
        r.add_post("/invoices/batch", self.invoices_batch)
        r.add_get("/invoices/{id}", self.invoice_get)
        return app

    # -- auth -------------------------------------------------------------------------------

    def _token(self, request: web.Request) -> Token | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not value.strip():
            return None
        return self.m.tokens.get(value.strip())

    def _auth(self, request: web.Request, scope: str | None) -> tuple[Token, User]:
        header = request.headers.get("Authorization", "")
        if not header.strip():
            raise ApiError(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
        token = self._token(request)
        if token is None or token.user_id not in self.m.users:
            raise ApiError(
                401, "Could not validate credentials", headers={"WWW-Authenticate": "Bearer"}
            )
        if scope and not self._allowed(token, scope):
            raise ApiError(403, "Not enough permissions")
        return token, self.m.users[token.user_id]

    def _allowed(self, token: Token, scope: str) -> bool:
        user = self.m.users[token.user_id]
        if scope == "server_management" and not user.is_superuser:
            return False
        return scope in token.permissions or "full_control" in token.permissions

    # -- helpers ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.m.now(), UTC)

    def _page(self, request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
        try:
            return json_ok(paginate(rows, dict(request.query), request.url, self._now()))
        except QueryParamError as exc:
            raise ApiError(422, exc.detail) from None

    def _count(self, request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
        return json_ok(count_matching(rows, dict(request.query), self._now()))

    def _own_store(self, user: User, store_id: str) -> Store:
        store = self.m.stores.get(store_id)
        if store is None or store.user_id != user.id:
            raise not_found()
        return store

    def _own_wallet(self, user: User, wallet_id: str) -> Wallet:
        wallet = self.m.wallets.get(wallet_id)
        if wallet is None or wallet.user_id != user.id:
            raise not_found()
        return wallet

    def _check_owned_wallets(self, user: User, wallet_ids: list[str]) -> None:
        for wid in wallet_ids:
            wallet = self.m.wallets.get(wid)
            if wallet is None or wallet.user_id != user.id:
                raise ApiError(
                    403, "Access denied: attempt to use objects not owned by current user"
                )

    def _daemon_up(self) -> bool:
        return self.m.daemon_state == "up"

    def _wallet_json(self, wallet: Wallet) -> dict[str, Any]:
        user = self.m.users[wallet.user_id]
        if not self._daemon_up():
            return views.wallet_json(wallet, user, 0, True)
        dw = self.m.daemon_wallet(wallet.key)
        return views.wallet_json(wallet, user, self.m.balances(dw)[0], False)

    def _invoice_json(self, inv: StoreInvoice) -> dict[str, Any]:
        return views.invoice_json(inv, self.m.shop.status_of(inv), self.m.shop.time_left(inv))

    # -- identity ---------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return json_ok({"status": "ok"})

    async def token_current(self, request: web.Request) -> web.Response:
        token, _user = self._auth(request, None)
        return json_ok(views.token_json(token))

    async def token_create(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        permissions = body.get("permissions", [])
        if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
            raise ApiError(422, [wrong_type("permissions", permissions, "list_type")])
        for perm in permissions:
            if perm.split(":")[0] not in ALL_SCOPES:
                raise ApiError(422, f"Invalid permission: {perm}")
        caller = self._token(request)
        if caller is not None:
            if "full_control" not in caller.permissions and not set(permissions) <= set(
                caller.permissions
            ):
                raise ApiError(403, "Not enough permissions")
            user = self.m.users[caller.user_id]
        else:
            found = next((u for u in self.m.users.values() if u.email == body.get("email")), None)
            if found is None:
                raise ApiError(401, {"message": "Unauthorized", "status": 404})
            user = found
            if user.password != body.get("password"):
                raise ApiError(401, {"message": "Unauthorized", "status": 401})
        token = self.m.create_token(user.id, permissions)
        out = views.token_json(token)
        out.pop("created")
        out.pop("updated")
        out.update(
            access_token=token.id,
            token_type="bearer",
            tfa_required=False,
            tfa_code=None,
            tfa_types=[],
        )
        return json_ok(out)

    async def users_me(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, TOKEN_MGMT)
        return json_ok(views.user_json(user))

    # -- stores -----------------------------------------------------------------------------

    def _store_rows(self, user: User) -> list[dict[str, Any]]:
        return [views.store_json(s) for s in self.m.stores.values() if s.user_id == user.id]

    async def stores_list(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, STORE)
        return self._page(request, self._store_rows(user))

    async def stores_count(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, STORE)
        return self._count(request, self._store_rows(user))

    async def store_get(self, request: web.Request) -> web.Response:
        store = self.m.stores.get(request.match_info["id"])
        if store is None:
            raise not_found()
        token = self._token(request)
        owner = token is not None and token.user_id == store.user_id and self._allowed(token, STORE)
        return json_ok(views.store_json(store, public=not owner))

    def _store_fields(self, body: dict[str, Any], *, create: bool) -> dict[str, Any]:
        errors = []
        if create:
            for name in ("name", "wallets"):
                if name not in body:
                    errors.append(missing(body, name))
        if "name" in body and not isinstance(body["name"], str):
            errors.append(wrong_type("name", body["name"], "string_type"))
        if "wallets" in body and not (
            isinstance(body["wallets"], list) and all(isinstance(w, str) for w in body["wallets"])
        ):
            errors.append(wrong_type("wallets", body["wallets"], "list_type"))
        if "default_currency" in body and not isinstance(body["default_currency"], str):
            errors.append(wrong_type("default_currency", body["default_currency"], "string_type"))
        for name in ("metadata", "checkout_settings"):
            if name in body and not isinstance(body[name], dict):
                errors.append(wrong_type(name, body[name], "dict_type"))
        if errors:
            raise ApiError(422, errors)
        return body

    async def store_create(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, STORE)
        body = self._store_fields(await json_body(request), create=True)
        self._check_owned_wallets(user, body["wallets"])
        store = self.m.create_store(
            user.id,
            body["name"],
            body.get("default_currency", "USD"),
            body["wallets"],
            body.get("metadata"),
        )
        store.checkout_settings.update(body.get("checkout_settings") or {})
        return json_ok(views.store_json(store))

    async def store_patch(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, STORE)
        store = self._own_store(user, request.match_info["id"])
        body = self._store_fields(await json_body(request), create=False)
        if "wallets" in body:
            self._check_owned_wallets(user, body["wallets"])
            store.wallets = list(body["wallets"])
        if "name" in body:
            store.name = body["name"]
        if "default_currency" in body:
            store.default_currency = body["default_currency"].upper()
        if "metadata" in body:
            store.metadata = dict(body["metadata"])
        if "checkout_settings" in body:
            store.checkout_settings = default_checkout_settings() | body["checkout_settings"]
        store.updated = self.m.now()
        return json_ok(views.store_json(store))

    async def store_delete(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, STORE)
        store = self._own_store(user, request.match_info["id"])
        del self.m.stores[store.id]
        return json_ok(views.store_json(store))

    # -- wallets ----------------------------------------------------------------------------

    def _wallet_rows(self, user: User) -> list[dict[str, Any]]:
        return [self._wallet_json(w) for w in self.m.wallets.values() if w.user_id == user.id]

    async def wallets_list(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, WALLET)
        return self._page(request, self._wallet_rows(user))

    async def wallets_count(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, WALLET)
        rows = [
            views.wallet_json(w, user, 0, False)
            for w in self.m.wallets.values()
            if w.user_id == user.id
        ]
        return self._count(request, rows)

    async def wallet_get(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, WALLET)
        return json_ok(self._wallet_json(self._own_wallet(user, request.match_info["id"])))

    async def wallet_create(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, WALLET)
        body = await json_body(request)
        errors = [missing(body, n) for n in ("name", "xpub") if n not in body]
        for name in ("name", "xpub", "label"):
            if name in body and not isinstance(body[name], str):
                errors.append(wrong_type(name, body[name], "string_type"))
        if "lightning_enabled" in body and not isinstance(body["lightning_enabled"], bool):
            errors.append(wrong_type("lightning_enabled", body["lightning_enabled"], "bool_type"))
        if errors:
            raise ApiError(422, errors)
        if not self._daemon_up() or key_kind(body["xpub"]) is None:
            raise ApiError(422, "Wallet key invalid")
        wallet = self.m.create_wallet(
            user.id,
            body["name"],
            key=body["xpub"].strip(),
            lightning_enabled=bool(body.get("lightning_enabled", False)),
            label=body.get("label", ""),
            metadata=body.get("metadata") if isinstance(body.get("metadata"), dict) else None,
        )
        return json_ok(self._wallet_json(wallet))

    async def wallet_seed(self, request: web.Request) -> web.Response:
        self._auth(request, WALLET)
        body = await json_body(request)
        if "currency" not in body:
            raise ApiError(422, [missing(body, "currency")])
        seed = self.m.ids.seed_words()
        key = seed if body.get("hot_wallet", False) else self.m.ids.master_pubkey("vpub")
        return json_ok({"seed": seed, "key": key, "additional_data": {}})

    async def wallet_balance(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, WALLET)
        wallet = self._own_wallet(user, request.match_info["id"])
        values = (0, 0, 0, 0)
        if self._daemon_up():
            values = self.m.balances(self.m.daemon_wallet(wallet.key))
        keys = ("confirmed", "unconfirmed", "unmatured", "lightning")
        return json_ok(
            {k: f"{Decimal(v) / 100_000_000:.8f}" for k, v in zip(keys, values, strict=True)}
        )

    async def wallet_symbol(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, WALLET)
        self._own_wallet(user, request.match_info["id"])
        return json_ok("btc")

    def _lightning_wallet(self, request: web.Request) -> Any:
        """The daemon wallet behind a Lightning call, or None where the SDK would raise."""
        _token, user = self._auth(request, WALLET)
        wallet = self._own_wallet(user, request.match_info["id"])
        if not self._daemon_up() or not self.m.config.lightning:
            return None
        dw = self.m.daemon_wallet(wallet.key)
        return dw if dw.can_lightning else None

    async def wallet_checkln(self, request: web.Request) -> web.Response:
        dw = self._lightning_wallet(request)
        if dw is None:
            return json_ok(False)
        listen = self.m.electrum.get("lightning_listen") or ""
        return json_ok(dw.node_id + (f"@{listen}" if listen else ""))

    async def wallet_channels(self, request: web.Request) -> web.Response:
        dw = self._lightning_wallet(request)
        if dw is None:
            return json_ok([])
        ln = self.m.ln
        ln.catch_up()
        return json_ok([views.channel_row(c, ln.peer_state(c)) for c in dw.channels.values()])

    async def channel_open(self, request: web.Request) -> web.Response:
        dw = self._lightning_wallet(request)
        body = await json_body(request)
        errors = [missing(body, n) for n in ("node_id", "amount") if n not in body]
        if "node_id" in body and not isinstance(body["node_id"], str):
            errors.append(wrong_type("node_id", body["node_id"], "string_type"))
        if "amount" in body and not _is_decimal(body["amount"]):
            errors.append(wrong_type("amount", body["amount"], "decimal_parsing"))
        if errors:
            raise ApiError(422, errors)
        try:
            if dw is None:
                raise SimError("daemon unavailable")
            # pydantic makes it a Decimal and the SDK sends Decimals as strings.
            amount = str(Decimal(str(body["amount"])))
            point = await self.m.ln.waiting_out_timeouts(
                lambda: self.m.ln.open_channel(dw, body["node_id"], amount)
            )
            return json_ok(point)
        except (RpcError, SimError):
            raise ApiError(400, "Failed to open channel") from None

    async def channel_close(self, request: web.Request) -> web.Response:
        dw = self._lightning_wallet(request)
        body = await json_body(request)
        if "channel_point" not in body:
            raise ApiError(422, [missing(body, "channel_point")])
        try:
            if dw is None:
                raise SimError("daemon unavailable")
            txid = await self.m.ln.waiting_out_timeouts(
                lambda: self.m.ln.close_channel(
                    dw, str(body["channel_point"]), bool(body.get("force"))
                )
            )
            return json_ok(txid)
        except (RpcError, SimError):
            raise ApiError(400, "Failed to close channel") from None

    async def lnpay(self, request: web.Request) -> web.Response:
        dw = self._lightning_wallet(request)
        body = await json_body(request)
        if "invoice" not in body:
            raise ApiError(422, [missing(body, "invoice")])
        if not isinstance(body["invoice"], str):
            raise ApiError(422, [wrong_type("invoice", body["invoice"], "string_type")])
        try:
            if dw is None:
                raise SimError("daemon unavailable")
            return json_ok(await self.m.ln.pay(dw, body["invoice"]))
        except (RpcError, SimError):
            raise ApiError(400, "Failed to pay the invoice") from None

    # -- invoices ---------------------------------------------------------------------------

    def _invoice_rows(self, user: User, request: web.Request) -> list[dict[str, Any]]:
        # Serialise only the invoices the query's store_id:, metadata. and start_date: terms
        # can select (the full filter still runs on the rows): rendering every invoice of the
        # user for each query made listings O(all), and a year of them slow.
        query = request.query.get("query", "")
        search = parse_search(query, self._now()) if query else None
        stores = search.filters.get("store_id") if search else None
        meta = search.metadata if search else {}
        # A second of slack: the rows' ISO times are rounded, the model's are floats.
        start = search.start.timestamp() - 1 if search and search.start else None
        return [
            self._invoice_json(i)
            for i in self.m.invoices.values()
            if i.user_id == user.id
            and (not stores or i.store_id in stores)
            and (start is None or i.created >= start)
            and all(as_text(i.metadata.get(k)) in v for k, v in meta.items())
        ]

    async def invoices_list(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, INVOICE)
        return self._page(request, self._invoice_rows(user, request))

    async def invoices_count(self, request: web.Request) -> web.Response:
        _token, user = self._auth(request, INVOICE)
        return self._count(request, self._invoice_rows(user, request))

    async def invoice_get(self, request: web.Request) -> web.Response:
        inv = self.m.invoices.get(request.match_info["id"])
        if inv is None:
            raise not_found()
        return json_ok(self._invoice_json(inv))

    async def invoices_batch(self, request: web.Request) -> web.Response:
        """``POST /invoices/batch``: ``mark_invalid`` sets any status to invalid (Bitcart does
        not check it), ``mark_complete`` completes, ``delete`` deletes; ids of another user are
        skipped silently; the answer is ``true``."""
        _token, user = self._auth(request, INVOICE)
        body = await json_body(request)
        errors = [missing(body, n) for n in ("ids", "command") if n not in body]
        if "ids" in body and not (
            isinstance(body["ids"], list) and all(isinstance(i, str) for i in body["ids"])
        ):
            errors.append(wrong_type("ids", body["ids"], "list_type"))
        if "command" in body and not isinstance(body["command"], str):
            errors.append(wrong_type("command", body["command"], "string_type"))
        if errors:
            raise ApiError(422, errors)
        command = body["command"]
        if command not in ("delete", "mark_complete", "mark_invalid"):
            raise ApiError(404, "Batch command not found")
        for invoice_id in body["ids"]:
            inv = self.m.invoices.get(invoice_id)
            if inv is None or inv.user_id != user.id:
                continue
            if command == "delete":
                del self.m.invoices[invoice_id]
            else:
                inv.status = "invalid" if command == "mark_invalid" else "complete"
                inv.updated = self.m.now()
        return json_ok(True)

    async def invoice_create(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        errors = [missing(body, n) for n in ("price", "store_id") if n not in body]
        if "price" in body and not _is_decimal(body["price"]):
            errors.append(wrong_type("price", body["price"], "decimal_parsing"))
        for name in ("store_id", "currency", "notes", "order_id", "buyer_email"):
            if name in body and not isinstance(body[name], str):
                errors.append(wrong_type(name, body[name], "string_type"))
        if "metadata" in body and not isinstance(body["metadata"], dict):
            errors.append(wrong_type("metadata", body["metadata"], "dict_type"))
        if body.get("expiration") is not None and not isinstance(body["expiration"], int):
            errors.append(wrong_type("expiration", body["expiration"], "int_type"))
        methods = body.get("payment_methods")
        if methods is not None and (
            not isinstance(methods, list) or not all(isinstance(w, str) for w in methods)
        ):
            errors.append(wrong_type("payment_methods", methods, "list_type"))
        if errors:
            raise ApiError(422, errors)
        store = self.m.stores.get(body["store_id"])
        if store is None:
            raise not_found()
        if methods is not None:
            # Bitcart's InvoiceService.validate: a list of the store's own wallet ids.
            if not methods:
                raise ApiError(422, "Payment methods cannot be empty")
            for wallet_id in methods:
                if wallet_id not in store.wallets:
                    raise ApiError(422, f"Wallet {wallet_id} is not connected to store {store.id}")
        token = self._token(request)
        if (token is None or token.user_id != store.user_id) and not store.checkout_settings.get(
            "allow_anonymous_invoice_creation", True
        ):
            raise ApiError(403, "Anonymous invoice creation is disabled")
        inv = self.m.shop.create_invoice(
            store.id,
            Decimal(str(body["price"])),
            currency=body.get("currency", ""),
            notes=body.get("notes", ""),
            expiration=body.get("expiration"),
            metadata=body.get("metadata"),
            order_id=body.get("order_id", ""),
            buyer_email=body.get("buyer_email", ""),
            payment_methods=body.get("payment_methods"),
        )
        return json_ok(self._invoice_json(inv))


def _is_decimal(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            return Decimal(value).is_finite()
        except InvalidOperation:
            return False
    return False
