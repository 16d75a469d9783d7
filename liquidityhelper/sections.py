"""The four sections of a cycle: channel opening, top-ups, cashouts and fee payments.

Each one runs its pure decision over every wallet of the snapshot (each wallet in its own
try/except), hands what it decided to the executor (journaled actions) or the top-up desk, and
says why it skipped a wallet. Also here: a wallet's plan, sized for the peers on offer.

The sections hold no settings or journal of their own: they read them from the daemon each
time (a running daemon may be given new ones).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from liquidityhelper.actions import (
    Decision,
    OpenChannel,
    PayLightningAddress,
    ShowTopup,
    Skip,
)
from liquidityhelper.controls import paused
from liquidityhelper.cycle_report import CycleReport
from liquidityhelper.decisions.liquidity import LiquidityPlan, plan_liquidity
from liquidityhelper.decisions.opening import Candidate, assign_peers, wanted_channels
from liquidityhelper.decisions.payments import decide_cashout, decide_fee_payment
from liquidityhelper.decisions.topup import decide_topup
from liquidityhelper.executor import Executor
from liquidityhelper.reading import BitcartReader, ReaderHost
from liquidityhelper.revenue import FeeLedger
from liquidityhelper.snapshot import CycleSnapshot, StoreWallets, WalletSnapshot
from liquidityhelper.topups import TopupDesk
from liquidityhelper.wallet.base import ChannelState, LightningMode, WalletBackend, WalletError

log = structlog.get_logger(__name__)

# How many of the best-ranked peers a plan looks at for the channel sizes they take.
PEERS_CONSIDERED = 5


class SectionsHost(ReaderHost, Protocol):
    """What the sections read from the daemon that runs them, besides what the reader does."""

    executor: Executor
    topup_desk: TopupDesk
    fees: FeeLedger
    stopping: bool  # set by SIGTERM/SIGINT: no new action starts


class Sections:
    def __init__(self, daemon: SectionsHost, reading: BitcartReader) -> None:
        self.daemon = daemon
        self.reading = reading
        self._last_skip: dict[tuple[str, str | None, str | None], str] = {}
        # Why each section did nothing for each wallet: this cycle's so far, and the last
        # finished cycle's (the status page shows those without asking Bitcart anything).
        self._skips: dict[tuple[str, str | None], Skip] = {}
        self.last_skips: dict[tuple[str, str | None], Skip] = {}
        self._warned_no_cashout = False  # one WARNING per process, then a reason per wallet

    # --- channel opening ------------------------------------------------------------------

    async def channel_opening(self, snapshot: CycleSnapshot, report: CycleReport) -> None:
        d = self.daemon
        await self._stores_without_wallet(snapshot)

        async def one(snap: WalletSnapshot, backend: WalletBackend) -> int:
            acted = 0
            if not await self._settled(snap, backend, "channel_opening"):
                return 0
            for close in d.peers.channels_to_close(snap, d.clock()):
                if await d.executor.close_channel(backend, close):
                    acted += 1
                    await self.reading.refresh(snapshot, snap.wallet_id)
                    return acted  # one close per wallet per cycle; reopen next cycle
            snap = await self.with_coins(snapshot, snap)
            plan = self.plan(snap)
            wanted = wanted_channels(snap, plan, d.settings, open_in_flight=False)
            short = self._funds_short(snap)
            if not isinstance(wanted, Skip) and short is not None:
                wanted = Skip("channel_opening", snap.wallet_id, "open_funds_short", short)
            if isinstance(wanted, Skip):
                decisions: list[Decision] = [wanted]
            else:
                # Ranking reads the node database: only for wallets that want channels. A peer
                # that refused channels this small before is passed over.
                count, smallest = len(wanted.capacities), min(wanted.capacities)
                candidates = [
                    c
                    for c in self.candidates(snap, count + PEERS_CONSIDERED)
                    if d.executor.peer_minimum(c.pubkey) <= smallest
                ]
                decisions = assign_peers(snap.wallet_id, wanted, candidates[:count])
            for decision in decisions:
                if isinstance(decision, Skip):
                    self._skip(decision)
                elif (
                    isinstance(decision, OpenChannel)
                    and not d.stopping
                    and await d.executor.open_channel(backend, decision)
                ):
                    acted += 1
            if acted:
                await self.reading.refresh(snapshot, snap.wallet_id)
            return acted

        await self._each_wallet("channel_opening", snapshot, one, report)

    async def _stores_without_wallet(self, snapshot: CycleSnapshot) -> None:
        for row in snapshot.stores:
            if row.managed_wallet_id is not None:
                continue
            try:
                await self._store_without_wallet(row)
            except Exception as exc:
                log.error("store_failed", store=row.store.id, error=repr(exc))

    async def _store_without_wallet(self, row: StoreWallets) -> None:
        d = self.daemon
        name = d.settings.wallet_name
        if d.settings.create_missing_wallets and row.problem == "no_managed_wallet":
            if d.settings.dry_run:
                log.info("dry_run_create_wallet", store=row.store.id, name=name)
                return
            wallet = await d.backends[row.backend_index].create_lightning_wallet(name, row.store.id)
            log.warning(
                "wallet_created",
                store=row.store.id,
                wallet=wallet.id,
                name=name,
                note="back up this wallet's seed from Bitcart's admin; it is not logged",
            )
            return
        key = f"nowallet:{row.store.id}"
        now = d.clock()
        last = d.journal.get_state(key)
        interval = timedelta(seconds=d.settings.topup_reminder_interval_seconds)
        if last is not None and now - datetime.fromisoformat(last) < interval:
            self._skip(
                Skip(
                    "channel_opening",
                    None,
                    row.problem or "no_managed_wallet",
                    {},
                    store_id=row.store.id,
                )
            )
            return
        how = (
            f"in Bitcart's admin, create a hot wallet named '{name}' with Lightning enabled "
            f"and add it to store '{row.store.name}' (or set create_missing_wallets = true)"
        )
        if row.problem == "lightning_disabled":
            how = f"enable Lightning on wallet '{name}' of store '{row.store.name}'"
        log.warning("store_without_managed_wallet", store=row.store.id, reason=row.problem, how=how)
        if not d.settings.dry_run:
            d.journal.set_state(key, now.isoformat(), now=now)

    def _funds_short(self, snap: WalletSnapshot) -> dict[str, Any] | None:
        """An open our coins could not pay failed, and the wallet's balance has not changed
        since: trying again would fail the same way (and stall the cycle). The numbers of the
        failed open, or None once the balance moved (a payment in, a channel closed)."""
        journal = self.daemon.journal
        key = f"open_funds_short:{snap.wallet_id}"
        state = journal.get_state(key)
        if not isinstance(state, dict):
            return None
        balance = [snap.balance.confirmed_sat, snap.balance.unconfirmed_sat]
        if "balance" not in state:
            state = {**state, "balance": balance}
            journal.set_state(key, state, now=self.daemon.clock())
        if state["balance"] != balance:
            journal.delete_state(key)
            return None
        return {k: v for k, v in state.items() if k != "balance"} | {
            "spendable_sat": snap.balance.confirmed_sat
        }

    # --- a wallet's plan and its peers ------------------------------------------------------

    def plan(self, snap: WalletSnapshot) -> LiquidityPlan:
        """The wallet's plan, its channels sized for the peers on offer: when every one of
        them refused smaller channels before, no smaller one is planned or paid for."""
        settings = self.daemon.settings
        plan = plan_liquidity(snap, settings)
        if not (plan.needs_liquidity or plan.spare_sat >= settings.min_channel_size):
            return plan  # ranking reads the node database: only for wallets that want channels
        floor = self.peer_floor(snap)
        if floor <= settings.min_channel_size:
            return plan
        return plan_liquidity(snap, settings, peer_min_sat=floor)

    def peer_floor(self, snap: WalletSnapshot) -> int:
        """The least channel size some peer on offer takes: 0 while any of them never refused
        one (it may take the smallest), else the smallest minimum they taught us."""
        offered = self.candidates(snap, PEERS_CONSIDERED)
        if not offered:
            return 0
        return min(self.daemon.executor.peer_minimum(c.pubkey) for c in offered)

    def candidates(self, snap: WalletSnapshot, count: int) -> list[Candidate]:
        """Peers a new channel of this wallet could go to, best first."""
        d = self.daemon
        return d.peers.candidates(
            snap.wallet_id,
            count,
            # A peer whose channels with us are all closed is a peer again (its blacklist
            # entry, if it earned one, still applies); BACKUP and UNKNOWN rows keep the peer.
            existing={
                c.peer_pubkey
                for c in snap.channels
                if c.peer_pubkey and c.state is not ChannelState.CLOSED
            },
            require_trampoline=snap.mode is not LightningMode.GOSSIP,
            now=d.clock(),
            prefer_address=d.settings.cashout_lightning_address,
        )

    # --- top-ups ----------------------------------------------------------------------------

    async def topups(self, snapshot: CycleSnapshot, report: CycleReport) -> None:
        d = self.daemon

        async def one(snap: WalletSnapshot, backend: WalletBackend) -> int:
            snap = await self.with_coins(snapshot, snap)
            plan = self.plan(snap)
            acted = 0
            # Only when a top-up is due: ranking reads the node database.
            peers_available = not plan.topup_due or bool(self.candidates(snap, 1))
            for decision in decide_topup(snap, plan, d.settings, peers_available=peers_available):
                if isinstance(decision, Skip):
                    self._skip(decision)
                    for store_id in snap.store_ids:  # an invoice shown before is void now
                        acted += await d.topup_desk.retire(backend, snap.wallet_id, store_id)
                elif isinstance(decision, ShowTopup):
                    try:
                        acted += await d.topup_desk.show(backend, decision)
                    except Exception as exc:
                        log.error(
                            "topup_failed",
                            store=decision.store_id,
                            wallet=snap.wallet_id,
                            error=repr(exc),
                        )
            return acted

        await self._each_wallet("topups", snapshot, one, report)

    # --- cashouts and fee payments ----------------------------------------------------------

    async def cashouts(self, snapshot: CycleSnapshot, report: CycleReport) -> None:
        d = self.daemon

        async def one(snap: WalletSnapshot, backend: WalletBackend) -> int:
            if d.settings.cashout_lightning_address is None:  # before any I/O for it
                self._skip(Skip("cashouts", snap.wallet_id, "no_cashout_address", {}))
                return 0
            if not await self._settled(snap, backend, "cashouts"):
                return 0
            fee_due = 0
            if d.settings.fees_enabled:
                fee_due = (await d.fees.fee_due(backend, snap)).due_sat
            decisions = decide_cashout(
                snap,
                d.settings,
                fee_due=fee_due,
                backoff_until=self.backoff_until("cashout", snap.wallet_id),
                now=d.clock(),
            )
            return await self._pay(snapshot, snap, backend, decisions)

        if d.settings.cashout_lightning_address is None and not self._warned_no_cashout:
            log.warning(
                "cashouts_off",
                reason="no_cashout_address",
                how="set cashout_lightning_address (user@domain)",
            )
            self._warned_no_cashout = True
        await self._each_wallet("cashouts", snapshot, one, report)

    async def fee_payments(self, snapshot: CycleSnapshot, report: CycleReport) -> None:
        d = self.daemon

        async def one(snap: WalletSnapshot, backend: WalletBackend) -> int:
            if not d.settings.fees_enabled:
                reason = "fees_off" if d.settings.fee_rate == 0 else "no_fee_address"
                self._skip(Skip("fee_payments", snap.wallet_id, reason, {}))
                return 0
            if not await self._settled(snap, backend, "fee_payments"):
                return 0
            ledger = await d.fees.fee_due(backend, snap)
            if ledger.blocked:
                self._skip(Skip("fee_payments", snap.wallet_id, ledger.blocked, ledger.numbers))
                return 0
            decisions = decide_fee_payment(
                snap,
                d.settings,
                fee_due=ledger.due_sat,
                numbers=ledger.numbers,
                backoff_until=self.backoff_until("fee_payment", snap.wallet_id),
                now=d.clock(),
            )
            acted = await self._pay(snapshot, snap, backend, decisions)
            if acted:
                d.fees.forget(snap.wallet_id)
            return acted

        await self._each_wallet("fee_payments", snapshot, one, report)

    async def _pay(
        self,
        snapshot: CycleSnapshot,
        snap: WalletSnapshot,
        backend: WalletBackend,
        decisions: list[Decision],
    ) -> int:
        d = self.daemon
        acted = 0
        for decision in decisions:
            if isinstance(decision, Skip):
                self._skip(decision)
            elif isinstance(decision, PayLightningAddress) and not d.stopping:
                outcome = await asyncio.shield(d.executor.pay(backend, decision))
                d.metrics.payments[outcome] += 1
                if outcome != "dry_run":
                    acted += 1
        if acted:
            await self.reading.refresh(snapshot, snap.wallet_id)
        return acted

    def backoff_until(self, kind: str, wallet_id: str) -> datetime | None:
        """Until when payments of ``kind`` wait; none once the address they failed to pay is
        not the configured one any more."""
        raw = self.daemon.journal.get_state(f"backoff:{kind}:{wallet_id}")
        if isinstance(raw, dict):
            settings = self.daemon.settings
            address = (
                settings.cashout_lightning_address
                if kind == "cashout"
                else settings.fee_lightning_address
            )
            if raw.get("address") != address:
                return None
            raw = raw.get("until")
        return datetime.fromisoformat(raw) if isinstance(raw, str) and raw else None

    # --- every wallet, one at a time --------------------------------------------------------

    async def with_coins(self, snapshot: CycleSnapshot, snap: WalletSnapshot) -> WalletSnapshot:
        """The wallet with its coins read when an open or a top-up may be priced now."""
        return await self.reading.with_coins(
            snapshot, snap, has_peer=lambda: bool(self.candidates(snap, 1))
        )

    def _skip(self, skip: Skip) -> None:
        key = (skip.section, skip.wallet_id, skip.store_id)
        loud = self._last_skip.get(key) != skip.reason
        self._last_skip[key] = skip.reason
        self._skips.setdefault((skip.section, skip.wallet_id), skip)
        self.daemon.executor.log_skip(skip, loud=loud)

    def end_cycle(self) -> None:
        """The cycle's reasons become the last cycle's."""
        self.last_skips, self._skips = self._skips, {}

    def reasons(self, wallet_id: str) -> dict[str, str]:
        """The last cycle's reason per section for a wallet, in words (as ``status``)."""
        return {
            section: " ".join([skip.reason, *(f"{k}={v}" for k, v in skip.numbers.items())])
            for (section, wid), skip in self.last_skips.items()
            if wid == wallet_id
        }

    async def _each_wallet(
        self,
        section: str,
        snapshot: CycleSnapshot,
        fn: Callable[[WalletSnapshot, WalletBackend], Awaitable[int]],
        report: CycleReport,
    ) -> None:
        d = self.daemon
        for wallet_id in sorted(snapshot.wallets):
            if d.stopping:
                return
            snap = snapshot.wallets[wallet_id]
            held = paused(d.journal, (wallet_id, *snap.store_ids))
            if held:
                self._skip(Skip(section, wallet_id, "paused", {"paused": ",".join(sorted(held))}))
                continue
            try:
                report.actions += await fn(snap, d.backends[snap.backend_index])
            except Exception as exc:  # one wallet never stops the others
                report.wallet_errors += 1
                d.metrics.error(exc)
                log.error(
                    "wallet_failed",
                    section=section,
                    wallet=wallet_id,
                    error=repr(exc),
                    exc_info=not isinstance(exc, WalletError),
                )
        for wallet_id, why in snapshot.failures.items():
            self._skip(Skip(section, wallet_id, "wallet_unreadable", {"error": why[:200]}))

    async def _settled(self, snap: WalletSnapshot, backend: WalletBackend, section: str) -> bool:
        """Reconcile the journal for a wallet; False (with a reason) while something is pending."""
        pending = await self.daemon.executor.reconcile(backend, snap.wallet_id, snap)
        if pending:
            self._skip(
                Skip(
                    section,
                    snap.wallet_id,
                    "action_in_flight",
                    {
                        "entry": pending[0].id,
                        "kind": pending[0].kind.value,
                        "amount_sat": pending[0].amount_sat,
                    },
                )
            )
            return False
        return True
