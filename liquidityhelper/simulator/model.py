"""The simulated world: Bitcart's records, the daemon's wallets and a small chain.

Lightning lives in :mod:`channels` and :mod:`lightning`, store invoices in :mod:`shop`;
both hang off :class:`SimModel` as ``model.ln`` and ``model.shop`` and see it only as a
:class:`~liquidityhelper.simulator.ports.ModelPort` (they never import this module).
Everything random comes from one ``random.Random(seed)``; nothing here does I/O, so the
servers and the tests drive the same object.
"""

from __future__ import annotations

import dataclasses
import random
import re
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import structlog

from liquidityhelper.simulator import ids as idgen
from liquidityhelper.simulator.config import SimConfig
from liquidityhelper.simulator.entities import (
    Coin,
    CoinSelection,
    DaemonWallet,
    IssuedInvoice,
    NetworkNode,
    OnchainTx,
    OutgoingPayment,
    Store,
    StoreInvoice,
    Token,
    User,
    Wallet,
)
from liquidityhelper.simulator.errors import SimError, electrum, insufficient_funds
from liquidityhelper.simulator.fees import FEERATE_FALLBACK_STATIC_FEE, FeeEstimates, fee_for_vbytes
from liquidityhelper.simulator.lightning import LightningOps
from liquidityhelper.simulator.network import generate_nodes
from liquidityhelper.simulator.shop import Shop

log = structlog.get_logger(__name__)

# Weights of a funding tx (BOLT 3 / Electrum): version, counts, locktime and the segwit marker;
# a p2wpkh input with its witness; the p2wsh channel output; a p2wpkh change output.
_TX_OVERHEAD_WU = 42
_P2WPKH_INPUT_WU = 272
_P2WSH_OUTPUT_WU = 172
_P2WPKH_OUTPUT_WU = 124


def funding_vbytes(inputs: int, *, change: bool) -> int:
    """Size of a funding tx spending ``inputs`` p2wpkh coins: 153 vB for one with change."""
    weight = _TX_OVERHEAD_WU + inputs * _P2WPKH_INPUT_WU + _P2WSH_OUTPUT_WU
    return -(-(weight + (_P2WPKH_OUTPUT_WU if change else 0)) // 4)


def _badness(selection: CoinSelection, funding_sat: int) -> float:
    """``CoinChooserPrivacy.penalty_func``: inputs beyond one, change far from the amount."""
    badness = float(len(selection.coins) - 1)
    change, low, high = selection.change_sat, funding_sat * 0.75, funding_sat * 1.33
    if change and change < low:
        badness += (low - change) / (low + 10_000)
        if change < 100_000:  # under 1 mBTC: as bad as one more input
            badness += 1
    elif change > high:
        badness += (change - high) / (high + 10_000) + change / 500_000_000
    return badness


ALL_SCOPES = (
    "server_management",
    "token_management",
    "wallet_management",
    "store_management",
    "discount_management",
    "product_management",
    "invoice_management",
    "payout_management",
    "notification_management",
    "template_management",
    "file_management",
    "metrics_management",
    "full_control",
)
_XKEY_RE = re.compile(r"^(x|y|z|t|u|v)(pub|prv)[1-9A-HJ-NP-Za-km-z]{100,}$")
_SEED_RE = re.compile(r"^[a-z]+( [a-z]+){11,23}$")


def key_kind(key: object) -> str | None:
    """``"seed"``, ``"xprv"`` (can sign), ``"xpub"`` (watch-only), or None when not a key."""
    if not isinstance(key, str):
        return None
    text = key.strip()
    if _SEED_RE.match(text):
        return "seed"
    match = _XKEY_RE.match(text)
    if match:
        return "xprv" if match.group(2) == "prv" else "xpub"
    return None


def default_checkout_settings() -> dict[str, Any]:
    return {
        "expiration": 15,
        "transaction_speed": 0,
        "underpaid_percentage": 0.0,
        "custom_logo_link": "",
        "recommended_fee_target_blocks": 1,
        "show_recommended_fee": True,
        "use_dark_mode": False,
        "use_html_templates": False,
        "email_required": True,
        "ask_address": False,
        "randomize_wallet_selection": False,
        "allow_anonymous_invoice_creation": True,
        "include_network_fee": False,
        "rate_rules": "",
        "pos_screen_enabled": True,
    }


class SimModel:
    """All state of one simulated Bitcart + BTC daemon + Lightning network."""

    def __init__(
        self,
        seed: int = 1,
        config: SimConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.seed = seed
        self.config = config or SimConfig()
        self.rng = random.Random(seed)
        self.ids = idgen.IdFactory(self.rng)
        self.clock = clock
        self.height = self.config.start_height
        self.block_times: dict[int, float] = {self.height: clock()}
        self.fee_estimates = FeeEstimates(regtest=self.config.network == "regtest")
        self.fee_estimates.set_all(self.config.fee_rate_sat_vb)
        # Daemon-wide Electrum config (setconfig); a daemon restart resets it.
        self.electrum: dict[str, Any] = self.config.electrum.as_dict()
        # "up", "down" (unreachable) or "erroring" (answers -32603 to every wallet call).
        self.daemon_state = "up"
        self.daemon_restarted_at: float | None = None  # its channels reconnect after it
        self.daemon_error = "electrum.network.UntrustedServerReturnedError: server error"
        self.users: dict[str, User] = {}
        self.tokens: dict[str, Token] = {}
        self.stores: dict[str, Store] = {}
        self.wallets: dict[str, Wallet] = {}
        self.invoices: dict[str, StoreInvoice] = {}
        self.daemon_wallets: dict[str, DaemonWallet] = {}
        self._node_owner: dict[str, str] = {}  # node id -> wallet key
        self.nodes: dict[str, NetworkNode] = {
            n.pubkey: n
            for n in generate_nodes(self.rng, self.config.n_nodes, self.config.n_trampolines)
        }
        self.issued: dict[str, IssuedInvoice] = {}
        self.issued_by_bolt11: dict[str, str] = {}
        self.lnaddr_received_msat: dict[str, int] = {}
        self.ledger: list[OutgoingPayment] = []
        self._mempool: list[tuple[str, OnchainTx]] = []
        self._last_stamp = 0.0
        self.ln = LightningOps(self)
        self.shop = Shop(self)

    # -- time -------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def stamp(self) -> float:
        """A creation time strictly after the previous one (Bitcart sorts lists by it)."""
        ts = max(self.clock(), self._last_stamp + 1e-6)
        self._last_stamp = ts
        return ts

    # -- users and tokens -------------------------------------------------------------------

    def create_user(
        self,
        email: str | None = None,
        password: str = "sim-password",
        *,
        superuser: bool | None = None,
    ) -> User:
        uid = self.ids.ulid()
        email = email or f"merchant{len(self.users) + 1}@example.com"
        if any(u.email == email for u in self.users.values()):
            raise SimError(f"user {email} exists")
        user = User(
            id=uid,
            email=email,
            password=password,
            is_superuser=not self.users if superuser is None else superuser,
            created=self.stamp(),
            totp_key=self.ids.totp_key(),
        )
        self.users[uid] = user
        return user

    def create_token(self, user_id: str, permissions: list[str] | tuple[str, ...]) -> Token:
        if user_id not in self.users:
            raise SimError(f"no user {user_id}")
        token = Token(
            id=self.ids.token(),
            user_id=user_id,
            permissions=list(permissions),
            created=self.stamp(),
        )
        self.tokens[token.id] = token
        return token

    def resolve_user(self, ref: str) -> User:
        """A user from its id, its email or one of its tokens."""
        if ref in self.users:
            return self.users[ref]
        if ref in self.tokens:
            return self.users[self.tokens[ref].user_id]
        for user in self.users.values():
            if user.email == ref:
                return user
        raise SimError("unknown user or token")

    # -- stores and wallet records ----------------------------------------------------------

    def create_store(
        self,
        user_id: str,
        name: str,
        default_currency: str = "USD",
        wallet_ids: list[str] | tuple[str, ...] = (),
        metadata: dict[str, Any] | None = None,
    ) -> Store:
        for wid in wallet_ids:
            self.wallet_of(user_id, wid)
        store = Store(
            id=self.ids.ulid(),
            user_id=user_id,
            name=name,
            default_currency=default_currency.upper(),
            wallets=list(wallet_ids),
            created=self.stamp(),
            metadata=dict(metadata or {}),
            checkout_settings=default_checkout_settings(),
        )
        self.stores[store.id] = store
        return store

    def wallet_of(self, user_id: str, wallet_id: str) -> Wallet:
        wallet = self.wallets.get(wallet_id)
        if wallet is None or wallet.user_id != user_id:
            raise SimError(f"no wallet {wallet_id} for this user")
        return wallet

    def create_wallet(
        self,
        user_id: str,
        name: str = "liquidityhelper",
        *,
        key: str | None = None,
        lightning_enabled: bool = True,
        store_ids: list[str] | tuple[str, ...] = (),
        watch_only: bool = False,
        label: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> Wallet:
        if key is None:
            key = self.ids.master_pubkey("vpub") if watch_only else self.ids.seed_words()
        if key_kind(key) is None:
            raise SimError("wallet key invalid")
        wallet = Wallet(
            id=self.ids.ulid(),
            user_id=user_id,
            name=name,
            key=key,
            currency="btc",
            lightning_enabled=lightning_enabled,
            created=self.stamp(),
            label=label,
            metadata=dict(metadata or {}),
        )
        self.wallets[wallet.id] = wallet
        self.daemon_wallet(key)
        for sid in store_ids:
            store = self.stores.get(sid)
            if store is None or store.user_id != user_id:
                raise SimError(f"no store {sid} for this user")
            store.wallets.append(wallet.id)
        return wallet

    # -- the daemon's wallets ---------------------------------------------------------------

    def daemon_wallet(self, key: str) -> DaemonWallet:
        """The daemon's wallet for ``key``, restored (empty) on first use like Bitcart's."""
        dw = self.daemon_wallets.get(key)
        if dw is not None:
            return dw
        kind = key_kind(key)
        if kind is None:
            raise electrum(
                "electrum.util.UserFacingException", "Seed or key not recognized", -32005
            )
        secret = idgen.privkey_for("node:" + key)
        dw = DaemonWallet(
            key=key,
            kind=kind,
            can_lightning=kind == "seed" or (kind == "xprv" and key.startswith(("zprv", "vprv"))),
            node_id=idgen.pubkey_hex(secret),
            node_secret_hex=secret.hex(),
            created=self.now(),
        )
        self.daemon_wallets[key] = dw
        self._node_owner[dw.node_id] = key
        return dw

    def wallet_by_node(self, node_id: str) -> DaemonWallet | None:
        key = self._node_owner.get(node_id)
        return self.daemon_wallets.get(key) if key else None

    def address(self, dw: DaemonWallet, index: int) -> str:
        return idgen.address_for(dw.key, index, self.config.hrp)

    def unused_address(self, dw: DaemonWallet) -> str:
        return self.address(dw, dw.next_address_index)

    def take_address(self, dw: DaemonWallet) -> str:
        addr = self.address(dw, dw.next_address_index)
        dw.next_address_index += 1
        return addr

    # -- chain ------------------------------------------------------------------------------

    def add_tx(
        self,
        dw: DaemonWallet,
        amount_sat: int,
        *,
        fee_sat: int | None = None,
        confirmed: bool = False,
        kind: str = "deposit",
        label: str = "",
        txid: str | None = None,
    ) -> OnchainTx:
        tx = OnchainTx(
            txid=txid or self.ids.txid(),
            amount_sat=amount_sat,
            fee_sat=fee_sat,
            height=self.height if confirmed else 0,
            timestamp=self.now(),
            label=label,
            kind=kind,
        )
        dw.txs.append(tx)
        if not confirmed:
            self._mempool.append((dw.key, tx))
        if self.config.coin_selection and amount_sat > 0:
            dw.coins.append(Coin(tx, amount_sat))
        return tx

    def fund(self, key: str, sats: int, *, confirmed: bool = True) -> OnchainTx:
        """Coins from outside arrive at the wallet (unconfirmed unless ``confirmed``)."""
        if sats <= 0:
            raise SimError("fund with a positive amount")
        dw = self.daemon_wallet(key)
        self.take_address(dw)
        return self.add_tx(dw, sats, confirmed=confirmed, kind="deposit")

    def confirmations(self, height: int) -> int:
        return self.height - height + 1 if height > 0 else 0

    def mine(self, n: int = 1) -> int:
        """Mine ``n`` blocks: the mempool confirms, channels and invoices move on."""
        for _ in range(max(0, n)):
            self.height += 1
            self.block_times[self.height] = self.now()
            mempool, self._mempool = self._mempool, []
            for _key, tx in mempool:
                tx.height = self.height
            self.ln.on_block()
            self.shop.on_block()
        self.ln.catch_up()
        log.debug("sim_mined", blocks=n, height=self.height)
        return self.height

    def balances(self, dw: DaemonWallet) -> tuple[int, int, int, int]:
        """(confirmed, unconfirmed, unmatured, lightning) in sats, as Electrum counts them."""
        confirmed = sum(t.amount_sat for t in dw.txs if t.height > 0)
        unconfirmed = sum(t.amount_sat for t in dw.txs if t.height <= 0)
        return confirmed, unconfirmed, 0, self.ln.lightning_balance_sat(dw)

    def spendable(self, dw: DaemonWallet) -> int:
        """Confirmed coins minus what pending spends already took (unconfirmed income waits)."""
        confirmed = sum(t.amount_sat for t in dw.txs if t.height > 0)
        pending_spends = sum(t.amount_sat for t in dw.txs if t.height <= 0 and t.amount_sat < 0)
        return max(0, confirmed + pending_spends)

    # -- fee estimates ----------------------------------------------------------------------

    def set_fee_rate(self, sat_per_vb: int | None) -> None:
        """The server now estimates ``sat_per_vb`` for every target (None: nothing at all)."""
        self.fee_estimates.set_all(sat_per_vb)
        self.ln.catch_up()  # Electrum's "fee" event: channels may update their feerate

    def set_fee_estimates(self, sat_per_vb: dict[int, int | None]) -> None:
        """Change single targets (1008, 144, 25, 10, 5, 2); None drops one."""
        self.fee_estimates.set_targets(
            {t: None if r is None else r * 1000 for t, r in sat_per_vb.items()}
        )
        self.ln.catch_up()

    @property
    def fee_rate_sat_vb(self) -> int | None:
        """The funding estimate (Electrum's policy eta:2) in sat/vB; None when there is none."""
        rate = self.fee_estimates.funding_rate()
        return None if rate is None else rate // 1000

    @fee_rate_sat_vb.setter
    def fee_rate_sat_vb(self, sat_per_vb: int | None) -> None:
        self.set_fee_rate(sat_per_vb)

    def funding_fee_sat(self, vbytes: int) -> int:
        """Fee of a wallet transaction: Electrum refuses without an estimate (not on regtest)."""
        rate = self.fee_estimates.funding_rate()
        if rate is None:
            raise electrum(
                "electrum.util.NoDynamicFeeEstimates", "Dynamic fee estimates not available"
            )
        return fee_for_vbytes(rate, vbytes)

    def select_coins(self, dw: DaemonWallet, funding_sat: int | None) -> CoinSelection:
        """Coins for a funding tx of ``funding_sat`` (None: everything, no change), as
        Electrum's ``CoinChooserPrivacy`` picks them: every coin that covers it alone, and
        up to 100 random orders cut where they cover it and the fee of a tx with that many
        inputs; the least bad wins (one point per input beyond the first, plus change far
        from the amount sent). Raises Electrum's NotEnoughFunds when nothing covers it.
        Nothing is spent until :meth:`spend`.

        Every unspent coin may go in (``confirmed_only`` is off by default), but confirmed
        ones first: ``bucket_candidates_prefer_confirmed`` tries the confirmed coins alone,
        and only when they cannot cover it takes all of them plus unconfirmed ones."""
        coins = [c for c in dw.coins if c.spendable]
        if funding_sat is None:
            fee = self.funding_fee_sat(funding_vbytes(len(coins), change=False))
            return CoinSelection(coins, sum(c.amount_sat for c in coins) - fee, fee, 0)
        fees = [self.funding_fee_sat(funding_vbytes(n, change=True)) for n in range(len(coins) + 1)]
        # No order covers it when the largest coins first do not (the fee grows with inputs).
        total = 0
        for n, amount in enumerate(sorted((c.amount_sat for c in coins), reverse=True), 1):
            total += amount
            if total >= funding_sat + fees[n]:
                break
        else:
            raise insufficient_funds()
        confirmed = [c for c in coins if c.tx.height > 0]
        unconfirmed = [c for c in coins if c.tx.height <= 0]
        for already, pool in (([], confirmed), (confirmed, unconfirmed)):
            candidates = self._candidates(already, pool, funding_sat, fees)
            if candidates:
                return min(candidates, key=lambda c: _badness(c, funding_sat))
        raise insufficient_funds()

    def _candidates(
        self, already: list[Coin], pool: list[Coin], funding_sat: int, fees: list[int]
    ) -> list[CoinSelection]:
        """``bucket_candidates_any`` over ``pool``, every coin of ``already`` included."""
        base = sum(c.amount_sat for c in already)
        first = len(already) + 1
        candidates = [
            self._cover([*already, c], base + c.amount_sat, funding_sat, fees[first])
            for c in pool
            if base + c.amount_sat >= funding_sat + fees[first]
        ]
        order = list(pool)
        for _ in range(min(100, (len(pool) - 1) * 10 + 1)):
            self.rng.shuffle(order)
            total = base
            for n, coin in enumerate(order, first):
                total += coin.amount_sat
                if total >= funding_sat + fees[n]:
                    picked = [*already, *order[: n - len(already)]]
                    candidates.append(self._cover(picked, total, funding_sat, fees[n]))
                    break
        return candidates

    def _cover(self, coins: list[Coin], total: int, funding_sat: int, fee: int) -> CoinSelection:
        """``coins`` (worth ``total``) as the funding tx's inputs; dust change goes to the fee.

        Electrum's ``strip_unneeded`` first: the candidate's coins largest first, cut where
        they cover the amount and the fee of a tx with that many inputs."""
        kept, total = sorted(coins, key=lambda c: c.amount_sat, reverse=True), 0
        for n, coin in enumerate(kept, 1):
            total += coin.amount_sat
            fee = self.funding_fee_sat(funding_vbytes(n, change=True))
            if total >= funding_sat + fee:
                coins = kept[:n]
                break
        change = total - funding_sat - fee
        if change < self.config.dust_limit_sat:
            return CoinSelection(list(coins), funding_sat, total - funding_sat, 0)
        return CoinSelection(list(coins), funding_sat, fee, change)

    def spend(self, dw: DaemonWallet, selection: CoinSelection, tx: OnchainTx) -> None:
        """The funding ``tx`` spends the selected coins; its change is a new coin."""
        spent = {id(c) for c in selection.coins}
        dw.coins = [c for c in dw.coins if id(c) not in spent]
        if selection.change_sat > 0:
            dw.coins.append(Coin(tx, selection.change_sat))

    def fee_sat(self, vbytes: int) -> int:
        """Fee of a close or sweep: Electrum falls back to 150 sat/vB without an estimate."""
        rate = self.fee_estimates.funding_rate()
        return fee_for_vbytes(FEERATE_FALLBACK_STATIC_FEE if rate is None else rate, vbytes)

    # -- the daemon process -----------------------------------------------------------------

    def restart_daemon(self) -> None:
        """What an Electrum restart forgets: every ``setconfig`` (Bitcart runs forget_config).

        Its channels come back from disk with no connection: DISCONNECTED for
        ``daemon_reconnect_s``, then REESTABLISHING, then GOOD (by the model's clock).
        """
        self.electrum = self.config.electrum.as_dict()
        self.daemon_restarted_at = self.now()
        self.ln.catch_up()

    def restart_peer(self, pubkey: str, offline_seconds: float) -> None:
        """A network node goes away now and is back ``offline_seconds`` later."""
        node = self._node(pubkey)
        now = self.now()
        node.down_since, node.back_at = now, now + offline_seconds
        self.ln.catch_up()

    def set_node_online(self, pubkey: str, online: bool) -> None:
        """A network node goes away (until told) or comes back now."""
        node = self._node(pubkey)
        now = self.now()
        if not online:
            if node.is_up(now):
                node.down_since, node.back_at = now, None
        elif not node.is_up(now):
            node.back_at = now
        self.ln.catch_up()

    def _node(self, pubkey: str) -> NetworkNode:
        node = self.nodes.get(pubkey)
        if node is None:
            raise SimError(f"no network node {pubkey}")
        return node

    @property
    def use_gossip(self) -> bool:
        return bool(self.electrum.get("use_gossip"))

    # -- issued invoices --------------------------------------------------------------------

    def register_issued(self, inv: IssuedInvoice) -> None:
        self.issued[inv.payment_hash] = inv
        self.issued_by_bolt11[inv.bolt11] = inv.payment_hash

    # -- inspection -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON-able data (for "nothing changed" assertions)."""

        def plain(obj: Any) -> Any:
            if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
                return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
            if isinstance(obj, dict):
                return {str(k): plain(v) for k, v in obj.items()}
            if isinstance(obj, list | tuple):
                return [plain(v) for v in obj]
            if isinstance(obj, Decimal):
                return str(obj)
            return obj

        return {
            "height": self.height,
            "fee_estimates": self.fee_estimates.get_data(),
            "daemon_restarted_at": self.daemon_restarted_at,
            "electrum_config": dict(self.electrum),
            "daemon_state": self.daemon_state,
            "users": plain(self.users),
            "tokens": plain(self.tokens),
            "stores": plain(self.stores),
            "wallets": plain(self.wallets),
            "invoices": plain(self.invoices),
            "daemon_wallets": plain(self.daemon_wallets),
            "nodes": plain(self.nodes),
            "issued": plain(self.issued),
            "lnaddr_received_msat": dict(self.lnaddr_received_msat),
            "ledger": plain(self.ledger),
        }
