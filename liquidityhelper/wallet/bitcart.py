"""The Bitcart implementation of :class:`WalletBackend`: REST first, daemon JSON-RPC where REST
cannot (channel cross-check, fee rates, Lightning mode, payment lookup, decoding, histories,
deposit addresses, the Lightning fee budget).

Both speak through one shared ``httpx.AsyncClient``. Wallets are known to the daemon by their
key (the ``xpub`` field of ``GET /wallets/{id}``, a seed for hot wallets): keys are cached per
wallet id, registered with the log scrubber and never logged.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx
import structlog

from liquidityhelper.logs import register_secrets
from liquidityhelper.wallet import parsing
from liquidityhelper.wallet.base import (
    APIError,
    AuthError,
    BadReplyError,
    Balance,
    Channel,
    ChannelsUnavailableError,
    DaemonError,
    DecodedInvoice,
    FeeBudget,
    InvalidInvoiceError,
    InvalidNodeIdError,
    LightningHistoryItem,
    LightningMode,
    LightningUnsupportedError,
    OnchainHistoryItem,
    PaymentResult,
    PaymentStatus,
    Store,
    StoreInvoice,
    TransientError,
    WalletError,
    WalletInfo,
)
from liquidityhelper.wallet.bitcart_api import BitcartAPI, RetryPolicy, redact_url
from liquidityhelper.wallet.daemon_rpc import DaemonNotConfiguredError, DaemonRPC

log = structlog.get_logger(__name__)

_CONNECTION = re.compile(r"^(0[23][0-9a-fA-F]{64})(@\S+:\d{1,5})?$")
_CHANNEL_POINT = re.compile(r"^[0-9a-fA-F]{64}:\d+$")
_HASH = re.compile(r"^[0-9a-fA-F]{64}$")
# Bitcart's search syntax splits terms on spaces and key from value on the first colon.
_QUERY_VALUE = re.compile(r"^[^\s]+$")
_FEE_MAX_KEY = "lightning_payment_fee_max_millionths"
_FEE_CUTOFF_KEY = "lightning_payment_fee_cutoff_msat"


def _register_secrets(*values: str) -> None:
    """Mask these values in every log line, whoever logs them."""
    register_secrets(v for v in values if v)


class BitcartWallet:
    """A :class:`~liquidityhelper.wallet.base.WalletBackend` over one Bitcart user's token."""

    def __init__(
        self,
        api_url: str,
        api_token: str,
        *,
        daemon_url: str | None,
        daemon_user: str,
        daemon_password: str,
        http_client: httpx.AsyncClient | None = None,
        timeout_seconds: float = 30,
        pay_timeout_seconds: float = 180,
        retry_attempts: int = 4,
        network: str | None = None,
        retry_wait_seconds: float = 0.25,
        retry_wait_max_seconds: float = 8.0,
        page_size: int = 100,
    ) -> None:
        if not api_token:
            raise AuthError("no Bitcart API token given: create one with full_control scope")
        _register_secrets(api_token, daemon_password)
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds), follow_redirects=False
        )
        retry = RetryPolicy(
            attempts=retry_attempts,
            wait_base_seconds=retry_wait_seconds,
            wait_max_seconds=retry_wait_max_seconds,
        )
        self._api = BitcartAPI(
            api_url,
            api_token,
            client=self._client,
            timeout_seconds=timeout_seconds,
            pay_timeout_seconds=pay_timeout_seconds,
            retry=retry,
            page_size=page_size,
        )
        self._rpc: DaemonRPC | None = (
            DaemonRPC(
                daemon_url,
                daemon_user,
                daemon_password,
                client=self._client,
                timeout_seconds=timeout_seconds,
                retry=retry,
            )
            if daemon_url
            else None
        )
        self._api_url = api_url
        self._daemon_url = daemon_url
        self._network_prefix = parsing.network_prefix(network) if network else None
        self._keys: dict[str, str] = {}  # wallet id -> daemon key (secret)

    def __repr__(self) -> str:
        daemon = redact_url(self._daemon_url) if self._daemon_url else None
        return f"BitcartWallet(api_url={redact_url(self._api_url)!r}, daemon_url={daemon!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # -- helpers ----------------------------------------------------------------------------

    def _daemon(self, purpose: str) -> DaemonRPC:
        if self._rpc is None:
            raise DaemonNotConfiguredError(
                f"{purpose} needs Bitcart's daemon JSON-RPC and no daemon_url is configured"
            )
        return self._rpc

    def _remember(self, info: WalletInfo) -> WalletInfo:
        if info.key:
            _register_secrets(info.key)
            self._keys[info.id] = info.key
        return info

    async def _key(self, wallet_id: str) -> str:
        key = self._keys.get(wallet_id)
        if key is None:
            info = await self.get_wallet(wallet_id)
            if not info.key:
                raise BadReplyError(f"Bitcart gave no key for wallet {wallet_id}")
            key = info.key
        return key

    async def _wallet_call(self, wallet_id: str, purpose: str, method: str, *args: Any) -> Any:
        rpc = self._daemon(purpose)
        return await rpc.call(method, *args, key=await self._key(wallet_id))

    # -- stores and wallets -----------------------------------------------------------------

    async def list_stores(self) -> list[Store]:
        return [parsing.parse_store(row) for row in await self._api.list_stores()]

    async def list_wallets(self) -> list[WalletInfo]:
        return [self._remember(parsing.parse_wallet(row)) for row in await self._api.list_wallets()]

    async def get_wallet(self, wallet_id: str) -> WalletInfo:
        return self._remember(parsing.parse_wallet(await self._api.get_wallet(wallet_id)))

    async def balance(self, wallet_id: str) -> Balance:
        balance = parsing.parse_balance(await self._api.wallet_balance(wallet_id))
        if balance != Balance(0) or self._rpc is None:
            return balance
        # Bitcart answers all zeros when its daemon call fails: confirm a zero with the daemon.
        try:
            rpc_balance = await self._rpc.call("getbalance", key=await self._key(wallet_id))
        except (DaemonError, BadReplyError) as e:
            raise TransientError(
                f"Bitcart gave wallet {wallet_id} a zero balance and the daemon cannot confirm "
                f"it: {e}"
            ) from e
        return parsing.parse_balance(rpc_balance)

    # -- Lightning state --------------------------------------------------------------------

    async def channels(self, wallet_id: str) -> list[Channel]:
        rows = await self._api.channels(wallet_id)
        if rows != []:
            return parsing.parse_channels(rows)
        # Bitcart answers [] on any daemon error too: only trust it once confirmed.
        if self._rpc is None:
            balance = await self.balance(wallet_id)
            if balance.lightning_sat > 0:
                raise ChannelsUnavailableError(
                    f"Bitcart listed no channels for wallet {wallet_id} but its lightning "
                    f"balance is {balance.lightning_sat} sat, and no daemon_url is configured "
                    "to check"
                )
            return []
        key = await self._key(wallet_id)
        try:
            rows = await self._rpc.call("list_channels", key=key)
        except LightningUnsupportedError:
            return []  # a wallet without Lightning has no channels: [] is the truth
        except (TransientError, DaemonError, AuthError, BadReplyError) as e:
            log.warning("channels_unavailable", wallet=wallet_id, reason=type(e).__name__)
            raise ChannelsUnavailableError(
                f"Bitcart listed no channels for wallet {wallet_id} and the daemon cannot "
                f"confirm it: {e}"
            ) from e
        channels = parsing.parse_channels(rows)
        if channels:
            log.warning(
                "channels_rest_empty_daemon_has_rows", wallet=wallet_id, count=len(channels)
            )
        return channels

    async def node_id(self, wallet_id: str) -> str | None:
        node = parsing.parse_node_id(await self._api.checkln(wallet_id))
        if node is not None or self._rpc is None:
            return node
        # checkln says false for "no Lightning" and for "daemon down" alike: ask the daemon.
        try:
            answer = await self._rpc.call("nodeid", key=await self._key(wallet_id))
        except DaemonError:
            return None  # Lightning unsupported or not enabled in this wallet
        return parsing.parse_node_id(answer)

    async def lightning_mode(self, wallet_id: str) -> LightningMode:
        if self._rpc is None:
            return LightningMode.UNKNOWN
        return parsing.parse_lightning_mode(await self._rpc.call("getconfig", "use_gossip"))

    async def fee_rate(self, wallet_id: str, target_blocks: int = 2) -> int:
        rpc = self._daemon("fee_rate")
        try:
            return parsing.sat_per_kvb_to_sat_per_vb(
                await rpc.call("recommended_fee", target_blocks)
            )
        except (BadReplyError, DaemonError) as e:
            # No estimate for that target (e.g. right after start): the policy's rate.
            log.info("fee_rate_fallback", target_blocks=target_blocks, reason=type(e).__name__)
        return parsing.parse_feerate_result(await rpc.call("getfeerate"))

    # -- channels ---------------------------------------------------------------------------

    async def open_channel(self, wallet_id: str, connection_string: str, amount_sat: int) -> str:
        conn = connection_string.strip()
        if not _CONNECTION.match(conn):
            raise InvalidNodeIdError(
                f"not a node connection string (pubkey@host:port): {conn[:100]!r}"
            )
        if isinstance(amount_sat, bool) or not isinstance(amount_sat, int) or amount_sat <= 0:
            raise ValueError(f"amount_sat must be a positive int, got {amount_sat!r}")
        amount_btc = parsing.sats_to_btc_str(amount_sat)  # btc wallets take BTC here
        log.info("channel_open_sent", wallet=wallet_id, amount_sat=amount_sat)
        point = parsing.parse_channel_point(
            await self._api.open_channel(wallet_id, conn, amount_btc)
        )
        log.info("channel_open_accepted", wallet=wallet_id, amount_sat=amount_sat, point=point)
        return point

    async def close_channel(self, wallet_id: str, channel_point: str, force: bool = False) -> str:
        if not _CHANNEL_POINT.match(channel_point.strip()):
            raise ValueError(f"not a channel point (txid:vout): {channel_point[:100]!r}")
        log.info("channel_close_sent", wallet=wallet_id, point=channel_point, force=force)
        return parsing.parse_txid(
            await self._api.close_channel(wallet_id, channel_point.strip(), force)
        )

    # -- payments ---------------------------------------------------------------------------

    async def pay_invoice(self, wallet_id: str, bolt11: str) -> PaymentResult:
        bolt11 = bolt11.strip()
        if self._network_prefix is not None:
            got = parsing.invoice_network(bolt11)
            if got != self._network_prefix:
                raise InvalidInvoiceError(
                    f"invoice is for network {got or 'unknown'!r}, this wallet is on "
                    f"{self._network_prefix!r}"
                )
        try:
            body = await self._api.lnpay(wallet_id, bolt11)
        except APIError as e:
            if e.status != 400:
                raise
            return await self._explain_refused_payment(wallet_id, bolt11, e)
        result = parsing.parse_lnpay(body)
        if result.status is PaymentStatus.SUCCEEDED:
            result = await self._with_fee(wallet_id, result)
        log.info(
            "lnpay_result",
            wallet=wallet_id,
            payment_hash=result.payment_hash,
            status=str(result.status),
            fee_msat=result.fee_msat,
            detail=result.detail,
        )
        return result

    async def coins(self, wallet_id: str) -> list[tuple[int, int]]:
        # REST has no coin list: the daemon's listunspent (values as BTC strings).
        rpc = self._daemon("coins")
        return parsing.parse_unspent(await rpc.call("listunspent", key=await self._key(wallet_id)))

    async def label_payment(self, wallet_id: str, payment_hash: str, label: str) -> None:
        rpc = self._daemon("label_payment")
        await rpc.call("setlabel", payment_hash, label, key=await self._key(wallet_id))

    async def _with_fee(self, wallet_id: str, paid: PaymentResult) -> PaymentResult:
        """lnpay does not say what routing cost: read it from the history (best effort)."""
        if self._rpc is None:
            return paid
        try:
            history = parsing.parse_lightning_history(
                await self._rpc.call("lightning_history", key=await self._key(wallet_id))
            )
        except WalletError as e:  # the payment succeeded: never turn that into an error
            log.info("payment_fee_unknown", payment_hash=paid.payment_hash, reason=type(e).__name__)
            return paid
        settled = parsing.payment_from_history(history, paid.payment_hash)
        if settled is None:
            return paid
        return PaymentResult(
            payment_hash=paid.payment_hash,
            status=PaymentStatus.SUCCEEDED,
            preimage=paid.preimage or settled.preimage,
            fee_msat=settled.fee_msat,
            amount_msat=settled.amount_msat,
            detail=paid.detail,
        )

    async def _explain_refused_payment(
        self, wallet_id: str, bolt11: str, error: APIError
    ) -> PaymentResult:
        """Bitcart's 400 "Failed to pay the invoice" hides why: ask the daemon when we can.

        The 400 covers a bad invoice, an expired one, one already paid, one **still in flight**
        and a daemon that was down; only the wallet's own record tells them apart.
        """
        refused = f"Bitcart refused to pay (400: {error.detail})"
        if self._rpc is None:
            raise InvalidInvoiceError(
                f"{refused}; the reason is hidden (bad, expired, already paid or in-flight "
                "invoice, or the daemon was down): configure daemon_url to learn it"
            )
        decoded = await self.decode_invoice(wallet_id, bolt11)  # a bad invoice raises here
        known = await self.lookup_payment(wallet_id, decoded.payment_hash)
        if known.status in (PaymentStatus.SUCCEEDED, PaymentStatus.PENDING):
            log.warning(
                "lnpay_refused_but_known",
                wallet=wallet_id,
                payment_hash=known.payment_hash,
                status=str(known.status),
            )
            return PaymentResult(
                payment_hash=known.payment_hash,
                status=known.status,
                preimage=known.preimage,
                fee_msat=known.fee_msat,
                amount_msat=known.amount_msat,
                detail=f"{refused}; the wallet says: {known.detail}",
            )
        raise InvalidInvoiceError(
            f"{refused}; payment {decoded.payment_hash}: {known.detail or 'no attempt known'}"
        )

    async def lookup_payment(self, wallet_id: str, payment_hash: str) -> PaymentResult:
        wanted = payment_hash.strip().lower()
        if not _HASH.match(wanted):
            raise ValueError(f"not a payment hash (64 hex digits): {payment_hash[:80]!r}")
        rpc = self._daemon("lookup_payment")
        key = await self._key(wallet_id)
        invoices, history = await asyncio.gather(
            rpc.call("list_invoices", key=key), rpc.call("lightning_history", key=key)
        )
        # The history lists settled payments with their fee: the strongest evidence.
        settled = parsing.payment_from_history(parsing.parse_lightning_history(history), wanted)
        if settled is not None:
            return settled
        found = parsing.payment_from_invoices(invoices, wanted)
        if found is not None:
            return found
        return PaymentResult(
            payment_hash=wanted, status=PaymentStatus.UNKNOWN, detail="not in this wallet"
        )

    async def decode_invoice(self, wallet_id: str, bolt11: str) -> DecodedInvoice:
        rpc = self._daemon("decode_invoice")
        bolt11 = bolt11.strip()
        return parsing.parse_decoded_invoice(await rpc.call("decode_invoice", bolt11), bolt11)

    # -- histories and addresses ------------------------------------------------------------

    async def lightning_history(self, wallet_id: str) -> list[LightningHistoryItem]:
        rows = await self._wallet_call(wallet_id, "lightning_history", "lightning_history")
        return parsing.parse_lightning_history(rows)

    async def onchain_history(self, wallet_id: str) -> list[OnchainHistoryItem]:
        rows = await self._wallet_call(wallet_id, "onchain_history", "onchain_history")
        return parsing.parse_onchain_history(rows)

    async def deposit_address(self, wallet_id: str) -> str:
        address = await self._wallet_call(wallet_id, "deposit_address", "getunusedaddress")
        if address is None:  # every address within the gap limit is used
            address = await self._wallet_call(wallet_id, "deposit_address", "createnewaddress")
        if not isinstance(address, str) or not address:
            raise BadReplyError(f"daemon gave no address: {address!r}")
        return address

    # -- store invoices ---------------------------------------------------------------------

    async def create_store_invoice(
        self,
        store_id: str,
        amount_sat: int,
        *,
        metadata: dict[str, Any],
        notes: str = "",
        expiration_minutes: int = 60 * 24,
        payment_methods: list[str] | None = None,
    ) -> StoreInvoice:
        if isinstance(amount_sat, bool) or not isinstance(amount_sat, int) or amount_sat <= 0:
            raise ValueError(f"amount_sat must be a positive int, got {amount_sat!r}")
        price = parsing.sats_to_btc_str(amount_sat)
        body = {
            "store_id": store_id,
            # Without currency Bitcart prices in the store's default (USD…) and may convert at
            # a rate of 1: "10" would ask 10 BTC.
            "currency": "BTC",
            "price": price,
            "expiration": expiration_minutes,  # minutes, not seconds
            "metadata": metadata,
            "notes": notes,
        }
        if payment_methods is not None:
            # Without it Bitcart offers every wallet of the store, and another wallet's
            # address may be the default one.
            body["payment_methods"] = list(payment_methods)
        invoice = parsing.parse_store_invoice(await self._api.create_invoice(body))
        if (
            payment_methods is not None
            and invoice.payment_methods
            and set(invoice.payment_methods) != set(payment_methods)
        ):
            await self.invalidate_invoices([invoice.id])
            raise BadReplyError(
                f"Bitcart created invoice {invoice.id} payable into wallets "
                f"{list(invoice.payment_methods)} when only {payment_methods} was asked; "
                "it was marked invalid"
            )
        if invoice.currency != "BTC" or not parsing.price_equals(invoice.price, price):
            log.error(
                "invoice_echo_mismatch",
                store=store_id,
                invoice=invoice.id,
                asked_sat=amount_sat,
                got_price=invoice.price,
                got_currency=invoice.currency,
            )
            raise BadReplyError(
                f"Bitcart created invoice {invoice.id} for {invoice.price} {invoice.currency} "
                f"when {price} BTC was asked: do not show it"
            )
        log.info("invoice_created", store=store_id, invoice=invoice.id, amount_sat=amount_sat)
        return invoice

    async def invalidate_invoices(self, invoice_ids: list[str]) -> None:
        if not invoice_ids:
            return
        answer = await self._api.batch_invoices(invoice_ids, "mark_invalid")
        if answer is not True:
            raise BadReplyError(f"Bitcart answered {answer!r} to mark_invalid, not true")
        log.info("invoices_invalidated", invoices=invoice_ids)

    async def list_store_invoices(
        self,
        store_id: str,
        *,
        status: str | None = None,
        metadata: dict[str, str] | None = None,
        created_since: datetime | None = None,
    ) -> list[StoreInvoice]:
        terms = {"store_id": store_id}
        if status:
            terms["status"] = status
        if created_since is not None:
            # Bitcart filters on `created >= start_date` (SearchQuery.get_created_filter).
            terms["start_date"] = created_since.astimezone(UTC).isoformat()
        for k, v in (metadata or {}).items():
            terms[f"metadata.{k}"] = str(v)
        for k, v in terms.items():
            if not _QUERY_VALUE.match(k) or not _QUERY_VALUE.match(v):
                raise ValueError(f"search term {k}:{v!r} cannot hold spaces")
        query = " ".join(f"{k}:{v}" for k, v in terms.items())
        invoices = [parsing.parse_store_invoice(r) for r in await self._api.list_invoices(query)]
        # Bitcart silently ignores filters it does not know: never trust the filter alone.
        kept = [
            inv
            for inv in invoices
            if _matches(inv, store_id, status, metadata)
            and (created_since is None or inv.created is None or inv.created >= created_since)
        ]
        if len(kept) != len(invoices):
            log.warning("invoice_filter_ignored", store=store_id, got=len(invoices), kept=len(kept))
        return kept

    # -- wallet creation --------------------------------------------------------------------

    async def create_lightning_wallet(self, name: str, store_id: str) -> WalletInfo:
        store = parsing.parse_store(await self._api.get_store(store_id))  # fail before creating
        reply = await self._api.create_seed()
        seed = reply.get("seed") if isinstance(reply, dict) else None
        if not isinstance(seed, str) or not seed:
            raise BadReplyError("POST /wallets/create gave no seed")
        _register_secrets(seed)
        created = await self._api.create_wallet(
            {"name": name, "xpub": seed, "currency": "btc", "lightning_enabled": True}
        )
        info = self._remember(parsing.parse_wallet(created))
        if info.key != seed:
            self._keys[info.id] = seed
            info = WalletInfo(info.id, info.name, info.currency, info.lightning_enabled, key=seed)
        log.info("wallet_created", wallet=info.id, store=store_id)
        try:
            updated = parsing.parse_store(
                await self._api.update_store(store_id, {"wallets": [*store.wallet_ids, info.id]})
            )
        except WalletError as e:
            # The wallet exists (Bitcart keeps its key); attaching can be retried by hand.
            log.error("wallet_attach_failed", wallet=info.id, store=store_id, error=str(e))
            raise
        if info.id not in updated.wallet_ids:
            raise BadReplyError(
                f"wallet {info.id} was created but store {store_id} does not list it"
            )
        return info

    # -- fee budget -------------------------------------------------------------------------

    async def get_fee_budget(self, wallet_id: str) -> FeeBudget:
        rpc = self._daemon("get_fee_budget")
        max_millionths, cutoff = await asyncio.gather(
            rpc.call("getconfig", _FEE_MAX_KEY), rpc.call("getconfig", _FEE_CUTOFF_KEY)
        )
        return parsing.parse_fee_budget(max_millionths, cutoff)

    async def set_fee_budget(self, wallet_id: str, budget: FeeBudget) -> None:
        if budget.max_millionths < 0 or budget.cutoff_msat < 0:
            raise ValueError(f"fee budget cannot be negative: {budget}")
        rpc = self._daemon("set_fee_budget")
        # Daemon-wide and lost on a daemon restart: callers re-apply it each cycle.
        await rpc.call("setconfig", _FEE_MAX_KEY, budget.max_millionths)
        await rpc.call("setconfig", _FEE_CUTOFF_KEY, budget.cutoff_msat)
        now = await self.get_fee_budget(wallet_id)
        if now != budget:
            raise BadReplyError(f"daemon kept fee budget {now} after we set {budget}")
        log.info(
            "fee_budget_set",
            max_millionths=budget.max_millionths,
            cutoff_msat=budget.cutoff_msat,
        )


def _matches(
    inv: StoreInvoice, store_id: str, status: str | None, metadata: dict[str, str] | None
) -> bool:
    if inv.store_id != store_id or (status and inv.status != status):
        return False
    return all(str(inv.metadata.get(k)) == str(v) for k, v in (metadata or {}).items())
