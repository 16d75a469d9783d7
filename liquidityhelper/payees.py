"""``liquidityhelper payees``: the payee node pinned for each lightning address.

Trust on first use: the first payment to a lightning address that succeeds pins the node
that signed its invoice, and later invoices from another node are refused (``payee_changed``),
so a hijacked LNURL server cannot redirect cashouts. A provider that really moved to a new node
needs ``payees forget ADDRESS``: the next payment then verifies afresh and pins again.
"""

from __future__ import annotations

import sys
from typing import TextIO

from liquidityhelper.config import Settings
from liquidityhelper.datadir import DataDirBusyError, DataDirLock
from liquidityhelper.journal import Journal

PIN_PREFIX = "payee:"


def pins(journal: Journal) -> dict[str, str]:
    """Lightning address -> pinned payee node id."""
    return {
        key.removeprefix(PIN_PREFIX): str(value)
        for key, value in journal.states_with_prefix(PIN_PREFIX).items()
    }


def run_payees(
    settings: Settings, action: str, address: str | None, out: TextIO = sys.stdout
) -> int:
    if action == "list":
        journal = Journal.open(settings.data_dir)
        try:
            rows = pins(journal)
        finally:
            journal.close()
        if not rows:
            out.write("no payee pinned yet (one is pinned by the first successful payment)\n")
        for addr, node in sorted(rows.items()):
            out.write(f"{addr}  {node}\n")
        return 0
    assert action == "forget" and address
    try:
        with DataDirLock(settings.data_dir):
            journal = Journal.open(settings.data_dir)
            try:
                known = journal.get_state(PIN_PREFIX + address)
                if known is None:
                    sys.stderr.write(f"{address}: no payee pinned\n")
                    return 1
                journal.delete_state(PIN_PREFIX + address)
                # A back-off that a refused invoice started ends with the pin it came from.
                journal.delete_states_with_prefix("backoff:")
            finally:
                journal.close()
    except DataDirBusyError as exc:
        sys.stderr.write(f"refused: {exc}\n")
        return 1
    out.write(f"{address}: forgot payee {known}; the next payment verifies afresh\n")
    return 0
