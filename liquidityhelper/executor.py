"""Performs intended actions through the wallet backend, journaled, or only logs them in dry-run.

Every money action follows one path: check → journal the intent → send → record the outcome.
An outcome we cannot know (timeout, dropped connection) stays ``pending`` in the journal and
is reconciled with the wallet before anything new moves on that wallet.

:class:`Executor` holds the state and is what the daemon calls; the work is done in
:mod:`~liquidityhelper.channel_actions` (opens, closes), :mod:`~liquidityhelper.paying`
(lightning-address payments) and :mod:`~liquidityhelper.reconcile` (pending entries), each
handed the executor itself so they read its current settings and journal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
import structlog

from liquidityhelper import channel_actions, paying, reconcile
from liquidityhelper.actions import CloseChannel, OpenChannel, PayLightningAddress, Skip
from liquidityhelper.config import Settings
from liquidityhelper.executor_context import PeerBook
from liquidityhelper.journal import Entry, Journal
from liquidityhelper.snapshot import WalletSnapshot
from liquidityhelper.wallet.base import WalletBackend

__all__ = ["Executor", "PeerBook"]

log = structlog.get_logger(__name__)


@dataclass
class Executor:
    settings: Settings
    journal: Journal
    http: httpx.AsyncClient
    peers: PeerBook
    clock: Callable[[], datetime]

    @property
    def dry_run(self) -> bool:
        return self.settings.dry_run

    def log_skip(self, skip: Skip, *, loud: bool) -> None:
        """A "nothing to do" with its reason; INFO when it changed since last cycle."""
        level = log.info if loud else log.debug
        level(
            "nothing_to_do",
            section=skip.section,
            wallet=skip.wallet_id,
            store=skip.store_id,
            reason=skip.reason,
            **skip.numbers,
        )

    async def reconcile(
        self, backend: WalletBackend, wallet_id: str, snap: WalletSnapshot | None
    ) -> list[Entry]:
        """Settle what the journal left pending for a wallet; returns what is still pending."""
        return await reconcile.reconcile_pending(self, backend, wallet_id, snap)

    async def open_channel(self, backend: WalletBackend, action: OpenChannel) -> bool:
        """Returns True when funds may have moved (refresh the wallet's snapshot)."""
        return await channel_actions.open_channel(self, backend, action)

    async def close_channel(self, backend: WalletBackend, action: CloseChannel) -> bool:
        """Returns True when funds may have moved (refresh the wallet's snapshot)."""
        return await channel_actions.close_channel(self, backend, action)

    def peer_minimum(self, pubkey: str) -> int:
        """The least channel size this peer takes, learned from its refusal (0: unknown)."""
        return channel_actions.peer_minimum(self.journal, pubkey)

    async def pay(self, backend: WalletBackend, action: PayLightningAddress) -> str:
        """Pay, stepping down (½, ¼ …) to the minimum on failure; then back off.

        Returns the final outcome: succeeded, failed, refused, pending or dry_run.
        """
        return await paying.pay_lightning_address(self, backend, action)
