"""Optional HTTP listener: ``/healthz``, ``/metrics`` and the status page ``/``. Off unless
``health_listen`` is set.

``/healthz`` answers 200 while the last full cycle finished within a few poll intervals (or,
shortly after start, while the first cycle is under way) and the last three cycles could read
at least one wallet; 503 with the reason otherwise. ``/metrics`` is the
Prometheus text format. ``/`` is a read-only HTML page (:mod:`liquidityhelper.page`): each
store's status, the last 30 days of its report and a chart of its inbound. Bind to 127.0.0.1
(the default host) unless something outside the machine or container must scrape it: the
figures name wallets, stores and amounts.

``python -m liquidityhelper.health`` probes the listener the settings describe and exits 0
when healthy, for Docker's HEALTHCHECK (the slim image has no curl).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from aiohttp import web

from liquidityhelper.config import ConfigError, Settings, config_path_from, load_settings
from liquidityhelper.metrics import Metrics

if TYPE_CHECKING:
    from liquidityhelper.page import StatusPage

log = structlog.get_logger(__name__)

STALE_AFTER_INTERVALS = 3
MIN_STALE = timedelta(minutes=2)
START_GRACE = timedelta(minutes=10)
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


# Cycles in a row that read no wallet (Bitcart down, its daemon down, every wallet failing)
# before /healthz says so: one is a blip, three is a daemon that manages nothing.
BLIND_CYCLES_UNHEALTHY = 3


class _Watched(Protocol):
    """What the listener reads from the daemon (``main.Daemon``)."""

    metrics: Metrics
    started_at: datetime
    settings: Settings
    blind_cycles: int
    blind_reason: str

    def clock(self) -> datetime: ...


def stale_after(settings: Settings) -> timedelta:
    """How old the last finished cycle may be: a few poll intervals, plus one payment's wait
    (a cycle blocked on a slow payment is still a live daemon)."""
    interval = timedelta(seconds=settings.poll_interval_seconds)
    slack = timedelta(seconds=settings.payment_timeout_seconds)
    return max(interval * STALE_AFTER_INTERVALS, MIN_STALE) + slack


def is_healthy(daemon: _Watched) -> tuple[bool, str]:
    if daemon.blind_cycles >= BLIND_CYCLES_UNHEALTHY:
        return False, f"{daemon.blind_reason} for {daemon.blind_cycles} cycles"
    now = daemon.clock()
    limit = stale_after(daemon.settings)
    last = daemon.metrics.last_cycle_finished
    if last is None:
        ok = now - daemon.started_at < max(limit, START_GRACE)
        return ok, "first cycle under way" if ok else "no cycle has finished"
    age = int((now - last).total_seconds())
    if now - last <= limit:
        return True, f"last cycle {age} s ago"
    return False, f"last cycle {age} s ago (limit {int(limit.total_seconds())} s)"


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, ``:port`` or ``port``; the host defaults to 127.0.0.1."""
    host, _, port = value.strip().rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ValueError(f"health_listen: expected HOST:PORT, got {value!r}")
    return (host.strip("[]") or "127.0.0.1"), number


class HealthServer:
    def __init__(
        self, runner: web.AppRunner, site: web.TCPSite, page: StatusPage | None = None
    ) -> None:
        self._runner = runner
        self.site = site
        self.page = page

    @property
    def port(self) -> int:
        server: Any = self.site._server
        return int(server.sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        if self.page is not None:
            await self.page.aclose()
        await self._runner.cleanup()


async def start_health_server(settings: Settings, daemon: _Watched) -> HealthServer:
    async def healthz(_: web.Request) -> web.Response:
        ok, why = is_healthy(daemon)
        word = "ok" if ok else ("unhealthy" if daemon.blind_cycles else "stale")
        return web.Response(status=200 if ok else 503, text=f"{word}: {why}\n")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=daemon.metrics.render().encode(), headers={"Content-Type": PROMETHEUS_TEXT}
        )

    # The page module imports the daemon's; the HEALTHCHECK probe below does not need it.
    from liquidityhelper.page import CSP, StatusPage

    page: StatusPage | None = None
    hooks = getattr(daemon, "on_cycle", None)
    if isinstance(hooks, list):  # a running main.Daemon: the page follows its cycles
        page = StatusPage(daemon, lambda: is_healthy(daemon))
        hooks.append(page.on_cycle)

    async def status_page(_: web.Request) -> web.Response:
        if page is None:
            raise web.HTTPNotFound()
        try:
            text = await page.render()
        except Exception as exc:
            log.error("status_page_failed", error=repr(exc), exc_info=True)
            return web.Response(status=500, text="the status page failed; see the log\n")
        return web.Response(
            text=text,
            content_type="text/html",
            charset="utf-8",
            headers={
                "Content-Security-Policy": CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            },
        )

    host, port = parse_listen(settings.health_listen or "127.0.0.1:0")
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", status_page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        if page is not None:
            await page.aclose()
        await runner.cleanup()
        log.critical("health_listen_failed", host=host, port=port, error=str(exc))
        raise
    server = HealthServer(runner, site, page)
    log.info("health_listening", host=host, port=server.port, paths="/ /healthz /metrics")
    return server


# --- the probe (HEALTHCHECK) ------------------------------------------------------------------


def probe_url(health_listen: str) -> str:
    """Where to ask: a wildcard bind is reached over loopback."""
    host, port = parse_listen(health_listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"


def probe(settings: Settings, timeout: float = 5.0) -> tuple[bool, str]:
    if not settings.health_listen:
        return False, "health_listen is not set: no listener to probe"
    url = probe_url(settings.health_listen)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=timeout) as reply:
            return reply.status == 200, reply.read().decode(errors="replace").strip()
    except urllib.error.HTTPError as exc:
        return False, f"{exc.code}: {exc.read().decode(errors='replace').strip()}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def main() -> int:
    try:
        settings = load_settings(config_path_from(None))
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    ok, why = probe(settings)
    (sys.stdout if ok else sys.stderr).write(f"{why}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
