"""`liquidityhelper status`: read Bitcart once with a daemon that does not run, and print
what each managed wallet would do (``status.py`` holds the explaining; this module only wires
it to the command line, so ``status`` itself never imports the loop)."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from liquidityhelper.config import Settings
from liquidityhelper.main import Daemon, utcnow
from liquidityhelper.status import collect, render_json, render_text
from liquidityhelper.wiring import build_runtime


async def status_async(settings: Settings, *, as_json: bool, out: TextIO) -> int:
    async with build_runtime(settings) as rt:
        daemon = Daemon(settings, rt.backends, rt.journal, rt.peers, rt.http, clock=utcnow)
        statuses, snapshot = await collect(daemon)
    (render_json if as_json else render_text)(statuses, snapshot, out)
    every_wallet_unreadable = bool(snapshot.failures) and not snapshot.wallets
    return 1 if snapshot.backend_failures or every_wallet_unreadable else 0


def run_status(settings: Settings, *, as_json: bool, out: TextIO | None = None) -> int:
    if not settings.api_tokens:
        sys.stderr.write("status: api_token is not set\n")
        return 2
    return asyncio.run(status_async(settings, as_json=as_json, out=out or sys.stdout))
