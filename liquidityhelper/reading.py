"""Reading Bitcart: the cycle's snapshot of every backend, one wallet re-read after an action,
a wallet's coins when a funding tx may be priced, and what the loop says about reachability.

The reader holds no settings or journal of its own: it reads them from the daemon each time
(a running daemon may be given new ones).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import structlog

from liquidityhelper import common_functions as cf
from liquidityhelper.config import Settings
from liquidityhelper.decisions.liquidity import plan_liquidity
from liquidityhelper.journal import Journal
from liquidityhelper.metrics import Metrics
from liquidityhelper.peerbook import NodePeerBook as PeerBook
from liquidityhelper.snapshot import (
    CycleSnapshot,
    WalletSnapshot,
    bounded_gather,
    fetch_wallet,
    managed_wallets_of,
)
from liquidityhelper.wallet.base import (
    AuthError,
    LightningMode,
    WalletBackend,
    WalletError,
    WalletInfo,
)

log = structlog.get_logger(__name__)

CRITICAL_AFTER_FAILED_CYCLES = 3


class ReaderHost(Protocol):
    """What the reader reads from the daemon that holds it."""

    settings: Settings
    journal: Journal
    backends: list[WalletBackend]
    peers: PeerBook
    metrics: Metrics
    record_observations: bool  # False: status reads without writing
    clock: Callable[[], datetime]


class BitcartReader:
    def __init__(self, daemon: ReaderHost) -> None:
        self.daemon = daemon
        self.failed_cycles = 0  # cycles in a row that reached no backend
        self._last_failure: dict[str, str] = {}

    # --- the cycle's snapshot -------------------------------------------------------------

    async def fetch_snapshot(self) -> CycleSnapshot:
        snap = CycleSnapshot(stores=[], wallets={}, failures={}, backend_failures={})
        for index, backend in enumerate(self.daemon.backends):
            try:
                await self._fetch_backend(index, backend, snap)
            except AuthError as exc:
                self.daemon.metrics.error(exc)
                snap.backend_failures[index] = f"auth: {exc}"
                # Not an outage: the token is wrong or lacks its scope. Retrying cannot help.
                log.error(
                    "bitcart_auth_failed",
                    backend=index,
                    error=str(exc),
                    how="check the API token (a full_control token of the merchant user)",
                )
            except WalletError as exc:
                self.daemon.metrics.error(exc)
                snap.backend_failures[index] = str(exc)
                # bitcart_unreachable escalates when every backend fails, cycle after cycle.
                log.warning("backend_unreadable", backend=index, error=str(exc))
        return snap

    async def _fetch_backend(self, index: int, backend: WalletBackend, snap: CycleSnapshot) -> None:
        d = self.daemon
        stores, wallets = await asyncio.gather(backend.list_stores(), backend.list_wallets())
        rows, managed = managed_wallets_of(index, stores, wallets, d.settings.wallet_name)
        snap.stores.extend(rows)
        if not managed:
            return
        mode, fee_rate, anchor_fee_rate = await self._daemon_facts(backend, next(iter(managed)))
        trampolines = d.peers.trampolines()
        # Our channels stay able to receive while Electrum's slow estimate is below the open
        # ceiling: cashouts leave the commitment fee of an incoming HTLC at that rate.
        hold = cf.anchor_channel_feerate_per_kw(d.settings.max_onchain_fee_rate)
        items = list(managed.values())

        async def one(item: tuple[WalletInfo, tuple[str, ...]]) -> WalletSnapshot:
            wallet, store_ids = item
            return await fetch_wallet(
                backend,
                index,
                wallet,
                store_ids,
                fee_rate=fee_rate,
                mode=mode,
                trampolines=trampolines,
                anchor_fee_rate=anchor_fee_rate,
                receive_hold_feerate_per_kw=hold,
            )

        results = await bounded_gather(items, one, d.settings.max_concurrency)
        for (wallet, _), result in zip(items, results, strict=True):
            if isinstance(result, WalletSnapshot):
                now = d.clock()
                if d.record_observations:
                    d.peers.observe(wallet.id, result.channels, now)
                recently_live = d.peers.recently_live(
                    wallet.id, result.channels, now, d.settings.peer_offline_grace_seconds
                )
                snap.wallets[wallet.id] = result.with_updates(recently_live=recently_live)
            else:
                if isinstance(result, BaseException):
                    d.metrics.error(result)
                why = f"{type(result).__name__}: {result}"
                snap.failures[wallet.id] = why
                # ERROR when it starts or changes, not every cycle it lasts.
                repeat = self._last_failure.get(wallet.id) == why
                (log.debug if repeat else log.error)(
                    "wallet_unreadable", wallet=wallet.id, error=why
                )
        for wallet_id in managed:
            if wallet_id in snap.failures:
                self._last_failure[wallet_id] = snap.failures[wallet_id]
            else:
                self._last_failure.pop(wallet_id, None)

    async def _daemon_facts(
        self, backend: WalletBackend, wallet_id: str
    ) -> tuple[LightningMode, int | None, int | None]:
        """Lightning mode and fee rates are daemon-wide: asked once per backend per cycle.

        Two estimates: the open's (``fee_rate_target_blocks``) and the 1008-block one that
        Electrum sets our channels' commitment feerate from (what a channel can send).
        """
        mode, fee_rate, anchor_fee_rate = LightningMode.UNKNOWN, None, None
        try:
            mode = await backend.lightning_mode(wallet_id)
        except WalletError as exc:
            log.warning("lightning_mode_unknown", error=str(exc))
        try:
            fee_rate = await backend.fee_rate(
                wallet_id, self.daemon.settings.fee_rate_target_blocks
            )
        except WalletError as exc:
            log.warning("fee_rate_unknown", error=str(exc))
        if fee_rate is not None:
            try:
                anchor_fee_rate = await backend.fee_rate(wallet_id, cf.ANCHOR_FEE_TARGET_BLOCKS)
            except WalletError as exc:
                log.debug("anchor_fee_rate_unknown", error=str(exc))
        return mode, fee_rate, anchor_fee_rate

    # --- one wallet again -----------------------------------------------------------------

    async def refresh(self, snapshot: CycleSnapshot, wallet_id: str) -> None:
        """Re-read one wallet after an action on it, so the next section sees the truth."""
        old = snapshot.wallets[wallet_id]
        backend = self.daemon.backends[old.backend_index]
        balance, channels = await asyncio.gather(
            backend.balance(wallet_id), backend.channels(wallet_id)
        )
        snapshot.wallets[wallet_id] = old.with_updates(
            balance=balance, channels=tuple(channels), coins=None
        )

    async def with_coins(
        self,
        snapshot: CycleSnapshot,
        snap: WalletSnapshot,
        has_peer: Callable[[], bool] = lambda: True,
    ) -> WalletSnapshot:
        """The wallet with its coins read when this cycle may price a funding tx (the plan
        needs liquidity, or spare funds could open a channel now: a fee rate under the
        ceiling and a peer, ``has_peer``): many small coins make a big funding tx. Wallets
        that want nothing, or spare funds that could not move now, make no call."""
        s = self.daemon.settings
        if snap.coins is not None or s.cashout_lightning_address is None:
            return snap
        plan = plan_liquidity(snap, s)
        if not plan.needs_liquidity:
            opens = snap.fee_rate is not None and snap.fee_rate <= s.max_onchain_fee_rate
            spare = s.open_spare_funds and plan.spare_sat >= s.min_channel_size
            if not (spare and opens and has_peer()):
                return snap
        try:
            coins = await self.daemon.backends[snap.backend_index].coins(snap.wallet_id)
        except WalletError as exc:
            # Priced at two inputs, as without a coin list; an open that falls short waits.
            log.info("coins_unknown", wallet=snap.wallet_id, error=str(exc))
            return snap
        # Confirmed coins only: Electrum spends them first (unconfirmed ones only when they
        # cannot cover it), and the budget counts only confirmed sats.
        snap = snap.with_updates(coins=tuple(sats for sats, height in coins if height > 0))
        snapshot.wallets[snap.wallet_id] = snap
        return snap

    # --- what the loop says about what it read ----------------------------------------------

    def watch_reachability(self, snapshot: CycleSnapshot) -> None:
        backends = self.daemon.backends
        auth = [i for i, why in snapshot.backend_failures.items() if why.startswith("auth:")]
        if backends and len(snapshot.backend_failures) == len(backends) and not auth:
            self.failed_cycles += 1
            level = (
                log.critical if self.failed_cycles >= CRITICAL_AFTER_FAILED_CYCLES else log.error
            )
            level(
                "bitcart_unreachable",
                cycles=self.failed_cycles,
                errors=list(snapshot.backend_failures.values())[:3],
            )
        else:
            if self.failed_cycles >= CRITICAL_AFTER_FAILED_CYCLES:
                log.info("bitcart_reachable_again", after_cycles=self.failed_cycles)
            self.failed_cycles = 0

    def warn_if_journal_is_new(self, snapshot: CycleSnapshot) -> None:
        """A journal created now beside wallets that already have channels: the data
        directory was lost or is not the one the daemon used before. Said once."""
        d = self.daemon
        if not d.journal.created_now or not d.record_observations or not snapshot.wallets:
            return
        d.journal.created_now = False  # judged on the first cycle that read wallets only
        with_history = sorted(w for w, snap in snapshot.wallets.items() if snap.channels)
        if not with_history:
            return
        log.warning(
            "journal_new_but_wallets_have_history",
            data_dir=str(d.settings.data_dir),
            wallets=len(with_history),
            note="if this daemon ran before, stop it and restore its data directory; fees "
            "already paid are read back from the wallets' payment history",
        )
