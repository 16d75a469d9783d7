"""The loop: snapshot, then the four sections one after another, forever.

Each section is wrapped in its own try/except, and inside it each wallet (or store) in its own,
so nothing crashes the daemon and one store's failure never stops another's. SIGTERM/SIGINT
let the money action under way finish and be recorded, then the daemon exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from liquidityhelper import __version__
from liquidityhelper import common_functions as cf
from liquidityhelper.actions import (
    Decision,
    OpenChannel,
    PayLightningAddress,
    ShowTopup,
    Skip,
)
from liquidityhelper.config import Settings
from liquidityhelper.controls import paused
from liquidityhelper.datadir import DataDirBusyError, DataDirLock
from liquidityhelper.decisions.liquidity import LiquidityPlan, plan_liquidity
from liquidityhelper.decisions.opening import Candidate, assign_peers, wanted_channels
from liquidityhelper.decisions.payments import decide_cashout, decide_fee_payment
from liquidityhelper.decisions.topup import decide_topup
from liquidityhelper.executor import Executor
from liquidityhelper.journal import Journal, Kind
from liquidityhelper.metrics import Metrics, WalletGauges
from liquidityhelper.peerbook import NodePeerBook as PeerBook
from liquidityhelper.revenue import FeeLedger
from liquidityhelper.snapshot import (
    CycleSnapshot,
    StoreWallets,
    WalletSnapshot,
    bounded_gather,
    fetch_wallet,
    managed_wallets_of,
)
from liquidityhelper.topups import TOPUP_PAID_PREFIX, TopupDesk
from liquidityhelper.wallet.base import (
    AuthError,
    ChannelState,
    LightningMode,
    WalletBackend,
    WalletError,
    WalletInfo,
)

log = structlog.get_logger(__name__)

CRITICAL_AFTER_FAILED_CYCLES = 3
# How many of the best-ranked peers a plan looks at for the channel sizes they take.
PEERS_CONSIDERED = 5


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class CycleReport:
    started: datetime
    finished: datetime | None = None
    wallets: int = 0  # read
    stores: int = 0
    actions: int = 0  # money moved, channels opened or closed, invoices made or withdrawn
    section_errors: list[str] = field(default_factory=list)
    wallet_errors: int = 0  # a wallet's section failed
    backend_failures: int = 0
    unreadable_wallets: int = 0

    @property
    def blind(self) -> str:
        """Why this cycle managed nothing ("" when it could read something)."""
        if self.backend_failures and not self.wallets and not self.stores:
            return "bitcart_unreadable"
        if self.unreadable_wallets and not self.wallets:
            return "every_wallet_unreadable"
        return ""


class Daemon:
    def __init__(
        self,
        settings: Settings,
        backends: Sequence[WalletBackend],
        journal: Journal,
        peers: PeerBook,
        http: httpx.AsyncClient,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.backends = list(backends)
        self.journal = journal
        self.peers = peers
        self.clock = clock
        self.executor = Executor(settings, journal, http, peers, clock)
        self.topup_desk = TopupDesk(settings, journal, clock)
        self.fees = FeeLedger(settings, journal)
        self.stopping = False
        self.record_observations = True  # status reads without writing
        self.metrics = Metrics()
        self.started_at = clock()
        self.failed_cycles = 0
        self.blind_cycles = 0  # cycles in a row that could read no wallet (for /healthz)
        self.blind_reason = ""
        self.last_report: CycleReport | None = None
        self._last_skip: dict[tuple[str, str | None, str | None], str] = {}
        self._last_failure: dict[str, str] = {}
        self._warned_no_cashout = False  # one WARNING per process, then a reason per wallet
        self.on_cycle: list[Callable[[CycleReport, CycleSnapshot], None]] = []

    # --- the loop ---------------------------------------------------------------------------

    async def run_forever(self) -> None:
        while not self.stopping:
            await self.cycle()
            if self.settings.single_run or self.stopping:
                break
            await self._sleep(self.settings.poll_interval_seconds)

    async def _sleep(self, seconds: float) -> None:
        end = asyncio.get_running_loop().time() + seconds
        while not self.stopping:
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.5))

    async def cycle(self) -> CycleReport:
        report = CycleReport(started=self.clock())
        self.fees.new_cycle()
        self.peers.new_cycle()
        snapshot = await self.fetch_snapshot()
        report.wallets, report.stores = len(snapshot.wallets), len(snapshot.stores)
        report.backend_failures = len(snapshot.backend_failures)
        report.unreadable_wallets = len(snapshot.failures)
        self._watch_reachability(snapshot)
        self._warn_if_journal_is_new(snapshot)
        sections: list[tuple[str, Callable[[CycleSnapshot, CycleReport], Awaitable[None]]]] = [
            ("channel_opening", self.channel_opening),
            ("topups", self.topups),
            ("cashouts", self.cashouts),
            ("fee_payments", self.fee_payments),
        ]
        for name, section in sections:
            if self.stopping:
                break
            try:
                await section(snapshot, report)
            except Exception as exc:
                report.section_errors.append(name)
                log.error("section_failed", section=name, error=repr(exc), exc_info=True)
        if self.record_observations:
            self.peers.refresh_in_background(self.clock())
        report.finished = self.clock()
        self.last_report = report
        if report.blind:
            self.blind_cycles += 1
            self.blind_reason = report.blind
        else:
            self.blind_cycles, self.blind_reason = 0, ""
        self._update_metrics(report, snapshot)
        for hook in self.on_cycle:
            hook(report, snapshot)
        log.info(
            "cycle_done",
            wallets=report.wallets,
            stores=report.stores,
            actions=report.actions,
            errors=len(report.section_errors) + report.wallet_errors,
            failed_sections=len(report.section_errors),
            unreadable_wallets=report.unreadable_wallets,
            unreachable_backends=report.backend_failures,
            seconds=round((report.finished - report.started).total_seconds(), 3),
        )
        return report

    def _update_metrics(self, report: CycleReport, snapshot: CycleSnapshot) -> None:
        assert report.finished is not None
        self.metrics.cycles += 1
        self.metrics.last_cycle_finished = report.finished
        self.metrics.last_cycle_seconds = (report.finished - report.started).total_seconds()
        gauges = {}
        channels: dict[str, dict[str, int]] = {}
        for wallet_id, snap in snapshot.wallets.items():
            plan = plan_liquidity(snap, self.settings)
            gauges[wallet_id] = WalletGauges(
                plan.inbound_sat, plan.target_sat, plan.topup_sat, snap.inbound_now_sat
            )
            by_state = channels[wallet_id] = {}
            for channel in snap.channels:
                by_state[channel.state.value] = by_state.get(channel.state.value, 0) + 1
        if snapshot.backend_failures:
            # Keep the last known figures of wallets we could not read this time.
            self.metrics.wallets.update(gauges)
            self.metrics.channels.update(channels)
        else:
            self.metrics.wallets = gauges
            self.metrics.channels = channels
        self.metrics.money = self._money_counters()
        self.metrics.backends_reachable = {
            index: index not in snapshot.backend_failures for index in range(len(self.backends))
        }

    def _funds_short(self, snap: WalletSnapshot) -> dict[str, Any] | None:
        """An open our coins could not pay failed, and the wallet's balance has not changed
        since: trying again would fail the same way (and stall the cycle). The numbers of the
        failed open, or None once the balance moved (a payment in, a channel closed)."""
        key = f"open_funds_short:{snap.wallet_id}"
        state = self.journal.get_state(key)
        if not isinstance(state, dict):
            return None
        balance = [snap.balance.confirmed_sat, snap.balance.unconfirmed_sat]
        if "balance" not in state:
            state = {**state, "balance": balance}
            self.journal.set_state(key, state, now=self.clock())
        if state["balance"] != balance:
            self.journal.delete_state(key)
            return None
        return {k: v for k, v in state.items() if k != "balance"} | {
            "spendable_sat": snap.balance.confirmed_sat
        }

    def _money_counters(self) -> dict[str, dict[tuple[str, ...], int]]:
        """All-time counters from the journal (exact, whatever Bitcart says this cycle).

        Summed by the journal in SQL (incrementally for payments), not by reading every entry
        each cycle: an idle cycle's cost does not grow with the journal's age."""
        fees: dict[tuple[str, ...], int] = {}
        inbound: dict[tuple[str, ...], int] = {}
        cashed: dict[tuple[str, ...], int] = {}
        for (wallet_id, kind), (amount_sat, routing_sat) in self.journal.payment_totals().items():
            key = (wallet_id,)
            inbound[key] = inbound.get(key, 0) + amount_sat
            if kind is Kind.CASHOUT:
                cashed[key] = cashed.get(key, 0) + amount_sat
            else:
                op = (wallet_id, "operator")
                fees[op] = fees.get(op, 0) + amount_sat
            routing = (wallet_id, "routing")
            fees[routing] = fees.get(routing, 0) + routing_sat
        # As topups.topups_paid_sat sums them, in SQL over those states only.
        paid = self.journal.state_totals(TOPUP_PAID_PREFIX, by="wallet", field="amount_sat")
        topups: dict[tuple[str, ...], int] = {(w,): sat for w, sat in paid.items()}
        return {
            "fees_paid_sats": fees,
            "inbound_created_sats": inbound,
            "cashed_out_sats": cashed,
            "topups_paid_sats": topups,
        }

    def _warn_if_journal_is_new(self, snapshot: CycleSnapshot) -> None:
        """A journal created now beside wallets that already have channels: the data
        directory was lost or is not the one the daemon used before. Said once."""
        if not self.journal.created_now or not self.record_observations or not snapshot.wallets:
            return
        self.journal.created_now = False  # judged on the first cycle that read wallets only
        with_history = sorted(w for w, snap in snapshot.wallets.items() if snap.channels)
        if not with_history:
            return
        log.warning(
            "journal_new_but_wallets_have_history",
            data_dir=str(self.settings.data_dir),
            wallets=len(with_history),
            note="if this daemon ran before, stop it and restore its data directory; fees "
            "already paid are read back from the wallets' payment history",
        )

    def _watch_reachability(self, snapshot: CycleSnapshot) -> None:
        auth = [i for i, why in snapshot.backend_failures.items() if why.startswith("auth:")]
        if self.backends and len(snapshot.backend_failures) == len(self.backends) and not auth:
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

    # --- snapshot ---------------------------------------------------------------------------

    async def fetch_snapshot(self) -> CycleSnapshot:
        snap = CycleSnapshot(stores=[], wallets={}, failures={}, backend_failures={})
        for index, backend in enumerate(self.backends):
            try:
                await self._fetch_backend(index, backend, snap)
            except AuthError as exc:
                self.metrics.error(exc)
                snap.backend_failures[index] = f"auth: {exc}"
                # Not an outage: the token is wrong or lacks its scope. Retrying cannot help.
                log.error(
                    "bitcart_auth_failed",
                    backend=index,
                    error=str(exc),
                    how="check the API token (a full_control token of the merchant user)",
                )
            except WalletError as exc:
                self.metrics.error(exc)
                snap.backend_failures[index] = str(exc)
                # bitcart_unreachable escalates when every backend fails, cycle after cycle.
                log.warning("backend_unreadable", backend=index, error=str(exc))
        return snap

    async def _fetch_backend(self, index: int, backend: WalletBackend, snap: CycleSnapshot) -> None:
        stores, wallets = await asyncio.gather(backend.list_stores(), backend.list_wallets())
        rows, managed = managed_wallets_of(index, stores, wallets, self.settings.wallet_name)
        snap.stores.extend(rows)
        if not managed:
            return
        mode, fee_rate, anchor_fee_rate = await self._daemon_facts(backend, next(iter(managed)))
        trampolines = self.peers.trampolines()
        # Our channels stay able to receive while Electrum's slow estimate is below the open
        # ceiling: cashouts leave the commitment fee of an incoming HTLC at that rate.
        hold = cf.anchor_channel_feerate_per_kw(self.settings.max_onchain_fee_rate)
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

        results = await bounded_gather(items, one, self.settings.max_concurrency)
        for (wallet, _), result in zip(items, results, strict=True):
            if isinstance(result, WalletSnapshot):
                now = self.clock()
                if self.record_observations:
                    self.peers.observe(wallet.id, result.channels, now)
                recently_live = self.peers.recently_live(
                    wallet.id, result.channels, now, self.settings.peer_offline_grace_seconds
                )
                snap.wallets[wallet.id] = result.with_updates(recently_live=recently_live)
            else:
                if isinstance(result, BaseException):
                    self.metrics.error(result)
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
            fee_rate = await backend.fee_rate(wallet_id, self.settings.fee_rate_target_blocks)
        except WalletError as exc:
            log.warning("fee_rate_unknown", error=str(exc))
        if fee_rate is not None:
            try:
                anchor_fee_rate = await backend.fee_rate(wallet_id, cf.ANCHOR_FEE_TARGET_BLOCKS)
            except WalletError as exc:
                log.debug("anchor_fee_rate_unknown", error=str(exc))
        return mode, fee_rate, anchor_fee_rate

    async def refresh(self, snapshot: CycleSnapshot, wallet_id: str) -> None:
        """Re-read one wallet after an action on it, so the next section sees the truth."""
        old = snapshot.wallets[wallet_id]
        backend = self.backends[old.backend_index]
        balance, channels = await asyncio.gather(
            backend.balance(wallet_id), backend.channels(wallet_id)
        )
        snapshot.wallets[wallet_id] = old.with_updates(
            balance=balance, channels=tuple(channels), coins=None
        )

    def plan(self, snap: WalletSnapshot) -> LiquidityPlan:
        """The wallet's plan, its channels sized for the peers on offer: when every one of
        them refused smaller channels before, no smaller one is planned or paid for."""
        plan = plan_liquidity(snap, self.settings)
        if not (plan.needs_liquidity or plan.spare_sat >= self.settings.min_channel_size):
            return plan  # ranking reads the node database: only for wallets that want channels
        floor = self.peer_floor(snap)
        if floor <= self.settings.min_channel_size:
            return plan
        return plan_liquidity(snap, self.settings, peer_min_sat=floor)

    def peer_floor(self, snap: WalletSnapshot) -> int:
        """The least channel size some peer on offer takes: 0 while any of them never refused
        one (it may take the smallest), else the smallest minimum they taught us."""
        offered = self.candidates(snap, PEERS_CONSIDERED)
        if not offered:
            return 0
        return min(self.executor.peer_minimum(c.pubkey) for c in offered)

    async def with_coins(self, snapshot: CycleSnapshot, snap: WalletSnapshot) -> WalletSnapshot:
        """The wallet with its coins read when this cycle may price a funding tx (the plan
        needs liquidity, or spare funds could open a channel): many small coins make a big
        funding tx. Wallets that want nothing make no call."""
        s = self.settings
        if snap.coins is not None or s.cashout_lightning_address is None:
            return snap
        plan = plan_liquidity(snap, s)
        spare = s.open_spare_funds and plan.spare_sat >= s.min_channel_size
        if not (plan.needs_liquidity or spare):
            return snap
        try:
            coins = await self.backends[snap.backend_index].coins(snap.wallet_id)
        except WalletError as exc:
            # Priced at two inputs, as without a coin list; an open that falls short waits.
            log.info("coins_unknown", wallet=snap.wallet_id, error=str(exc))
            return snap
        snap = snap.with_updates(coins=tuple(coins))
        snapshot.wallets[snap.wallet_id] = snap
        return snap

    # --- helpers ----------------------------------------------------------------------------

    def candidates(self, snap: WalletSnapshot, count: int) -> list[Candidate]:
        """Peers a new channel of this wallet could go to, best first."""
        return self.peers.candidates(
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
            now=self.clock(),
            prefer_address=self.settings.cashout_lightning_address,
        )

    def _skip(self, skip: Skip) -> None:
        key = (skip.section, skip.wallet_id, skip.store_id)
        loud = self._last_skip.get(key) != skip.reason
        self._last_skip[key] = skip.reason
        self.executor.log_skip(skip, loud=loud)

    async def _each_wallet(
        self,
        section: str,
        snapshot: CycleSnapshot,
        fn: Callable[[WalletSnapshot, WalletBackend], Awaitable[int]],
        report: CycleReport,
    ) -> None:
        for wallet_id in sorted(snapshot.wallets):
            if self.stopping:
                return
            snap = snapshot.wallets[wallet_id]
            held = paused(self.journal, (wallet_id, *snap.store_ids))
            if held:
                self._skip(Skip(section, wallet_id, "paused", {"paused": ",".join(sorted(held))}))
                continue
            try:
                report.actions += await fn(snap, self.backends[snap.backend_index])
            except Exception as exc:  # one wallet never stops the others
                report.wallet_errors += 1
                self.metrics.error(exc)
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
        pending = await self.executor.reconcile(backend, snap.wallet_id, snap)
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

    # --- sections ---------------------------------------------------------------------------

    async def channel_opening(self, snapshot: CycleSnapshot, report: CycleReport) -> None:
        await self._stores_without_wallet(snapshot)

        async def one(snap: WalletSnapshot, backend: WalletBackend) -> int:
            acted = 0
            if not await self._settled(snap, backend, "channel_opening"):
                return 0
            for close in self.peers.channels_to_close(snap, self.clock()):
                if await self.executor.close_channel(backend, close):
                    acted += 1
                    await self.refresh(snapshot, snap.wallet_id)
                    return acted  # one close per wallet per cycle; reopen next cycle
            snap = await self.with_coins(snapshot, snap)
            plan = self.plan(snap)
            wanted = wanted_channels(snap, plan, self.settings, open_in_flight=False)
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
                    if self.executor.peer_minimum(c.pubkey) <= smallest
                ]
                decisions = assign_peers(snap.wallet_id, wanted, candidates[:count])
            for decision in decisions:
                if isinstance(decision, Skip):
                    self._skip(decision)
                elif (
                    isinstance(decision, OpenChannel)
                    and not self.stopping
                    and await self.executor.open_channel(backend, decision)
                ):
                    acted += 1
            if acted:
                await self.refresh(snapshot, snap.wallet_id)
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
        name = self.settings.wallet_name
        if self.settings.create_missing_wallets and row.problem == "no_managed_wallet":
            if self.settings.dry_run:
                log.info("dry_run_create_wallet", store=row.store.id, name=name)
                return
            wallet = await self.backends[row.backend_index].create_lightning_wallet(
                name, row.store.id
            )
            log.warning(
                "wallet_created",
                store=row.store.id,
                wallet=wallet.id,
                name=name,
                note="back up this wallet's seed from Bitcart's admin; it is not logged",
            )
            return
        key = f"nowallet:{row.store.id}"
        now = self.clock()
        last = self.journal.get_state(key)
        interval = timedelta(seconds=self.settings.topup_reminder_interval_seconds)
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
        if not self.settings.dry_run:
            self.journal.set_state(key, now.isoformat(), now=now)

    async def topups(self, snapshot: CycleSnapshot, report: CycleReport) -> None:
        async def one(snap: WalletSnapshot, backend: WalletBackend) -> int:
            snap = await self.with_coins(snapshot, snap)
            plan = self.plan(snap)
            acted = 0
            # Only when a top-up is due: ranking reads the node database.
            peers_available = not plan.topup_due or bool(self.candidates(snap, 1))
            for decision in decide_topup(
                snap, plan, self.settings, peers_available=peers_available
            ):
                if isinstance(decision, Skip):
                    self._skip(decision)
                    for store_id in snap.store_ids:  # an invoice shown before is void now
                        acted += await self.topup_desk.retire(backend, snap.wallet_id, store_id)
                elif isinstance(decision, ShowTopup):
                    try:
                        acted += await self.topup_desk.show(backend, decision)
                    except Exception as exc:
                        log.error(
                            "topup_failed",
                            store=decision.store_id,
                            wallet=snap.wallet_id,
                            error=repr(exc),
                        )
            return acted

        await self._each_wallet("topups", snapshot, one, report)

    async def cashouts(self, snapshot: CycleSnapshot, report: CycleReport) -> None:
        async def one(snap: WalletSnapshot, backend: WalletBackend) -> int:
            if self.settings.cashout_lightning_address is None:  # before any I/O for it
                self._skip(Skip("cashouts", snap.wallet_id, "no_cashout_address", {}))
                return 0
            if not await self._settled(snap, backend, "cashouts"):
                return 0
            fee_due = 0
            if self.settings.fees_enabled:
                fee_due = (await self.fees.fee_due(backend, snap)).due_sat
            decisions = decide_cashout(
                snap,
                self.settings,
                fee_due=fee_due,
                backoff_until=self.backoff_until("cashout", snap.wallet_id),
                now=self.clock(),
            )
            return await self._pay(snapshot, snap, backend, decisions)

        if self.settings.cashout_lightning_address is None and not self._warned_no_cashout:
            log.warning(
                "cashouts_off",
                reason="no_cashout_address",
                how="set cashout_lightning_address (user@domain)",
            )
            self._warned_no_cashout = True
        await self._each_wallet("cashouts", snapshot, one, report)

    async def fee_payments(self, snapshot: CycleSnapshot, report: CycleReport) -> None:
        async def one(snap: WalletSnapshot, backend: WalletBackend) -> int:
            if not self.settings.fees_enabled:
                reason = "fees_off" if self.settings.fee_rate == 0 else "no_fee_address"
                self._skip(Skip("fee_payments", snap.wallet_id, reason, {}))
                return 0
            if not await self._settled(snap, backend, "fee_payments"):
                return 0
            ledger = await self.fees.fee_due(backend, snap)
            if ledger.blocked:
                self._skip(Skip("fee_payments", snap.wallet_id, ledger.blocked, ledger.numbers))
                return 0
            decisions = decide_fee_payment(
                snap,
                self.settings,
                fee_due=ledger.due_sat,
                numbers=ledger.numbers,
                backoff_until=self.backoff_until("fee_payment", snap.wallet_id),
                now=self.clock(),
            )
            acted = await self._pay(snapshot, snap, backend, decisions)
            if acted:
                self.fees.forget(snap.wallet_id)
            return acted

        await self._each_wallet("fee_payments", snapshot, one, report)

    async def _pay(
        self,
        snapshot: CycleSnapshot,
        snap: WalletSnapshot,
        backend: WalletBackend,
        decisions: list[Decision],
    ) -> int:
        acted = 0
        for decision in decisions:
            if isinstance(decision, Skip):
                self._skip(decision)
            elif isinstance(decision, PayLightningAddress) and not self.stopping:
                outcome = await asyncio.shield(self.executor.pay(backend, decision))
                self.metrics.payments[outcome] += 1
                if outcome != "dry_run":
                    acted += 1
        if acted:
            await self.refresh(snapshot, snap.wallet_id)
        return acted

    def backoff_until(self, kind: str, wallet_id: str) -> datetime | None:
        """Until when payments of ``kind`` wait; none once the address they failed to pay is
        not the configured one any more."""
        raw = self.journal.get_state(f"backoff:{kind}:{wallet_id}")
        if isinstance(raw, dict):
            address = (
                self.settings.cashout_lightning_address
                if kind == "cashout"
                else self.settings.fee_lightning_address
            )
            if raw.get("address") != address:
                return None
            raw = raw.get("until")
        return datetime.fromisoformat(raw) if isinstance(raw, str) and raw else None


def _install_signal_handlers(daemon: Daemon) -> None:
    loop = asyncio.get_running_loop()

    def stop(signame: str) -> None:
        if not daemon.stopping:
            log.info(
                "stopping", signal=signame, note="finishing the action under way, then exiting"
            )
        daemon.stopping = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # non-POSIX loops
            loop.add_signal_handler(sig, stop, sig.name)


async def run(settings: Settings) -> int:
    from liquidityhelper.wiring import build_runtime

    async with build_runtime(settings) as runtime:
        daemon = Daemon(settings, runtime.backends, runtime.journal, runtime.peers, runtime.http)
        _install_signal_handlers(daemon)
        await runtime.start_health(daemon)
        log.info(
            "started",
            version=__version__,
            data_dir=str(settings.data_dir),
            wallets_name=settings.wallet_name,
            dry_run=settings.dry_run,
            single_run=settings.single_run,
            backends=len(runtime.backends),
            network=settings.network,
        )
        await daemon.run_forever()
        log.info("stopped")
    report = daemon.last_report
    if settings.single_run and report is not None and (report.backend_failures or report.blind):
        return 1  # `once` in a script: Bitcart, or every wallet, could not be read
    return 0


def run_daemon(settings: Settings) -> int:
    if not settings.api_tokens:
        log.critical("no_api_token", how="set LIQUIDITYHELPER_API_TOKEN or api_token")
        return 2
    try:
        with DataDirLock(settings.data_dir):
            return asyncio.run(run(settings))
    except DataDirBusyError as exc:
        log.critical(
            "data_dir_in_use", data_dir=str(exc.data_dir), holder_pid=exc.pid, how=str(exc)
        )
        return 1
