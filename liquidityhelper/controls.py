"""Operator controls kept in the journal: pause a store or wallet, clear back-offs.

``liquidityhelper pause ID`` stops every section (opens, top-ups, cashouts, fee payments) for
that store's managed wallet, or for that wallet, until ``resume ID``; ``status`` shows it.
``retry`` ends every back-off now (a fixed address, a peer that is back). They write the
journal while the daemon runs (SQLite serialises the writes) and the next cycle honours them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from liquidityhelper.config import Settings
from liquidityhelper.journal import Journal

PAUSE_PREFIX = "paused:"


def paused(journal: Journal, ids: Iterable[str]) -> dict[str, str]:
    """Which of ``ids`` (a wallet id and its store ids) are paused, with since when."""
    out = {}
    for item in ids:
        state = journal.get_state(PAUSE_PREFIX + item)
        if isinstance(state, dict):
            out[item] = str(state.get("since", ""))
    return out


def run_control(
    settings: Settings, action: str, target: str | None, out: TextIO = sys.stdout
) -> int:
    journal = Journal.open(settings.data_dir)
    try:
        now = datetime.now(UTC)
        if action == "pause":
            assert target
            journal.set_state(PAUSE_PREFIX + target, {"since": now.isoformat()}, now=now)
            out.write(f"{target}: paused; the next cycle does nothing for it\n")
        elif action == "resume":
            assert target
            if journal.get_state(PAUSE_PREFIX + target) is None:
                sys.stderr.write(f"{target}: was not paused\n")
                return 1
            journal.delete_state(PAUSE_PREFIX + target)
            out.write(f"{target}: resumed\n")
        elif action == "retry":
            cleared = sorted(journal.states_with_prefix("backoff:"))
            journal.delete_states_with_prefix("backoff:")
            journal.delete_states_with_prefix("peer_min:")
            out.write(f"cleared {len(cleared)} back-off(s); the next cycle tries again\n")
        return 0
    finally:
        journal.close()
