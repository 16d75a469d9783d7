"""The loop: snapshot, then the four sections one after another, forever.

Each section is wrapped in its own try/except, and inside it each wallet (or store) in its own,
so nothing crashes the daemon and one store's failure never stops another's. SIGTERM/SIGINT
let the money action under way finish and be recorded, then the daemon exits 0.

Data flows one way: Bitcart is read (``reading``), the sections decide and act (``sections``,
pure decisions in ``decisions``, journaled actions by the ``executor``), and the cycle's
figures go to the metrics (``cycle_metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import httpx
import structlog

from liquidityhelper import __version__
from liquidityhelper.config import Settings
from liquidityhelper.cycle_metrics import update_metrics
from liquidityhelper.cycle_report import CycleReport
from liquidityhelper.datadir import DataDirBusyError, DataDirLock
from liquidityhelper.decisions.liquidity import LiquidityPlan
from liquidityhelper.decisions.opening import Candidate
from liquidityhelper.executor import Executor
from liquidityhelper.journal import Journal
from liquidityhelper.metrics import Metrics
from liquidityhelper.peerbook import NodePeerBook as PeerBook
from liquidityhelper.reading import BitcartReader
from liquidityhelper.revenue import FeeLedger
from liquidityhelper.sections import Sections
from liquidityhelper.snapshot import CycleSnapshot, WalletSnapshot
from liquidityhelper.topups import TopupDesk
from liquidityhelper.wallet.base import WalletBackend

__all__ = ["CycleReport", "Daemon", "run", "run_daemon", "utcnow"]

log = structlog.get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


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
        self.backends = list(backends)
        self.journal = journal
        self.peers = peers
        self.clock = clock
        self.executor = Executor(settings, journal, http, peers, clock)
        self.topup_desk = TopupDesk(settings, journal, clock)
        self.fees = FeeLedger(settings, journal)
        self.settings = settings
        self.stopping = False
        self.record_observations = True  # status reads without writing
        self.metrics = Metrics()
        self.started_at = clock()
        self.blind_cycles = 0  # cycles in a row that could read no wallet (for /healthz)
        self.blind_reason = ""
        self.last_report: CycleReport | None = None
        self.on_cycle: list[Callable[[CycleReport, CycleSnapshot], None]] = []
        # Both read settings, the journal and the rest from this daemon each time.
        self.reading = BitcartReader(self)
        self.sections = Sections(self, self.reading)

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        """One place to change them: the parts that keep settings get the same ones."""
        self._settings = settings
        self.executor.settings = self.topup_desk.settings = self.fees.settings = settings

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
        self.reading.watch_reachability(snapshot)
        self.reading.warn_if_journal_is_new(snapshot)
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
        self.sections.end_cycle()
        if report.blind:
            self.blind_cycles += 1
            self.blind_reason = report.blind
        else:
            self.blind_cycles, self.blind_reason = 0, ""
        update_metrics(
            self.metrics,
            report,
            snapshot,
            settings=self.settings,
            journal=self.journal,
            backends=len(self.backends),
        )
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

    # --- reading Bitcart (reading.py) -------------------------------------------------------

    @property
    def failed_cycles(self) -> int:
        """Cycles in a row that reached no backend."""
        return self.reading.failed_cycles

    async def fetch_snapshot(self) -> CycleSnapshot:
        return await self.reading.fetch_snapshot()

    async def refresh(self, snapshot: CycleSnapshot, wallet_id: str) -> None:
        await self.reading.refresh(snapshot, wallet_id)

    async def with_coins(self, snapshot: CycleSnapshot, snap: WalletSnapshot) -> WalletSnapshot:
        return await self.sections.with_coins(snapshot, snap)

    # --- the sections (sections.py) ---------------------------------------------------------

    async def channel_opening(self, snapshot: CycleSnapshot, report: CycleReport) -> None:
        await self.sections.channel_opening(snapshot, report)

    async def topups(self, snapshot: CycleSnapshot, report: CycleReport) -> None:
        await self.sections.topups(snapshot, report)

    async def cashouts(self, snapshot: CycleSnapshot, report: CycleReport) -> None:
        await self.sections.cashouts(snapshot, report)

    async def fee_payments(self, snapshot: CycleSnapshot, report: CycleReport) -> None:
        await self.sections.fee_payments(snapshot, report)

    def plan(self, snap: WalletSnapshot) -> LiquidityPlan:
        return self.sections.plan(snap)

    def peer_floor(self, snap: WalletSnapshot) -> int:
        return self.sections.peer_floor(snap)

    def candidates(self, snap: WalletSnapshot, count: int) -> list[Candidate]:
        return self.sections.candidates(snap, count)

    def backoff_until(self, kind: str, wallet_id: str) -> datetime | None:
        return self.sections.backoff_until(kind, wallet_id)


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
        if settings.health_listen:
            from liquidityhelper.health import start_health_server

            runtime.close_with(await start_health_server(settings, daemon))
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
