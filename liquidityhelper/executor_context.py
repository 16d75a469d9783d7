"""What the executor's parts (channel actions, paying, reconciling) see of the executor.

The parts take the :class:`~liquidityhelper.executor.Executor` itself as an
:class:`ExecutorContext` and read its attributes at call time, so a setting or journal
swapped on the executor is the one the next action uses. Defined here, not in ``executor``,
so the parts never import the module that imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import httpx

from liquidityhelper.config import Settings
from liquidityhelper.journal import Journal


class PeerBook(Protocol):
    """What the executor tells the node database (implemented over nodes/)."""

    def record_open_attempt(
        self,
        wallet_id: str,
        pubkey: str,
        ok: bool,
        error_class: str | None,
        channel_point: str | None,
        now: datetime,
    ) -> None: ...

    def record_close(
        self, wallet_id: str, channel_point: str, ok: bool, error_class: str | None, now: datetime
    ) -> None: ...

    def learn_payee(self, address: str, pubkey: str, now: datetime) -> None: ...


class ExecutorContext(Protocol):
    """The executor's state, read afresh on every use (the parts never assign it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def journal(self) -> Journal: ...

    @property
    def http(self) -> httpx.AsyncClient: ...

    @property
    def peers(self) -> PeerBook: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    @property
    def dry_run(self) -> bool: ...
