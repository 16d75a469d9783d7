"""What one cycle did: the loop fills it in, the sections count their actions in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
