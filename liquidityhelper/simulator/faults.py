"""Fault injection for the simulator's HTTP servers, by rate or by script, seeded.

A :class:`FaultPlan` is shared by the servers; each request asks it for a fault with its
target (``"rest"``, ``"rpc"`` or ``"lnurl"``) and a key (the URL path, or the JSON-RPC
method name for ``"rpc"``). Scripted faults come first, in order; then the rate rules draw
from the plan's own RNG, so a run with the same seed fails the same requests.
"""

from __future__ import annotations

import asyncio
import enum
import random
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

from liquidityhelper.simulator.httputil import Handler, Middleware


class FaultKind(enum.StrEnum):
    HTTP_500 = "500"
    HTTP_502 = "502"
    HTTP_503 = "503"
    HTTP_504 = "504"
    TIMEOUT = "timeout"  # hold the request for ``timeout_s``, then 504
    DROP = "drop"  # close the connection without an answer
    MALFORMED = "malformed"  # 200 with a truncated JSON body
    SLOW = "slow"  # the real answer, ``slow_ms`` late


ALL_KINDS = tuple(FaultKind)
_NGINX = "<html>\r\n<head><title>{code} {text}</title></head>\r\n<body>\r\n<center><h1>{code} {text}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"  # noqa: E501
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
}
_MALFORMED = {
    "rest": '{"result": [{"created": "2026-11-24T08:23:38.451367Z", "name": "Sto',
    "rpc": '{"jsonrpc": "2.0", "result": {"confirmed": "0.00',
    "lnurl": '{"tag": "payRequest", "callback": "http://',
}


@dataclass(slots=True)
class _Rule:
    rate: float
    kinds: tuple[FaultKind, ...]
    target: str
    paths: tuple[re.Pattern[str], ...] | None

    def applies(self, target: str, key: str) -> bool:
        if self.target not in ("any", target):
            return False
        return self.paths is None or any(p.search(key) for p in self.paths)


@dataclass(slots=True)
class _Scripted:
    kind: FaultKind | None
    target: str
    paths: tuple[re.Pattern[str], ...] | None


def _patterns(paths: Iterable[str] | str | None) -> tuple[re.Pattern[str], ...] | None:
    if paths is None:
        return None
    if isinstance(paths, str):
        paths = [paths]
    return tuple(re.compile(p) for p in paths)


@dataclass
class FaultPlan:
    seed: int = 0
    latency_ms: int = 0  # added to every answer
    timeout_s: float = 30.0  # how long a TIMEOUT fault holds the request
    slow_ms: int = 2_000  # how late a SLOW answer comes
    rules: list[_Rule] = field(default_factory=list)
    scripted: deque[_Scripted] = field(default_factory=deque)
    history: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"faults:{self.seed}")

    def set_rate(
        self,
        rate: float,
        kinds: Iterable[FaultKind | str] | None = None,
        paths: Iterable[str] | str | None = None,
        target: str = "any",
    ) -> None:
        """Fail ``rate`` of the matching requests with one of ``kinds`` (all 5xx by default)."""
        chosen = (
            tuple(FaultKind(k) for k in kinds)
            if kinds
            else (FaultKind.HTTP_500, FaultKind.HTTP_502, FaultKind.HTTP_503, FaultKind.HTTP_504)
        )
        self.rules.append(_Rule(rate, chosen, target, _patterns(paths)))

    def script(
        self,
        faults: Iterable[FaultKind | str | None],
        target: str = "any",
        paths: Iterable[str] | str | None = None,
    ) -> None:
        """The next matching answers, in order: a kind, or None for a normal answer."""
        pats = _patterns(paths)
        for f in faults:
            self.scripted.append(_Scripted(FaultKind(f) if f is not None else None, target, pats))

    def clear(self) -> None:
        self.rules.clear()
        self.scripted.clear()
        self.latency_ms = 0

    def pick(self, target: str, key: str) -> FaultKind | None:
        for i, item in enumerate(self.scripted):
            if item.target in ("any", target) and (
                item.paths is None or any(p.search(key) for p in item.paths)
            ):
                del self.scripted[i]
                return self._record(target, key, item.kind)
        for rule in self.rules:
            if rule.applies(target, key) and self.rng.random() < rule.rate:
                return self._record(target, key, self.rng.choice(rule.kinds))
        return None

    def _record(self, target: str, key: str, kind: FaultKind | None) -> FaultKind | None:
        if kind is not None:
            self.history.append((target, key, kind.value))
        return kind


async def apply_fault(
    kind: FaultKind, plan: FaultPlan, target: str, request: web.Request, handler: Handler
) -> web.StreamResponse:
    if kind is FaultKind.SLOW:
        await asyncio.sleep(plan.slow_ms / 1000)
        return await handler(request)
    if kind is FaultKind.TIMEOUT:
        await asyncio.sleep(plan.timeout_s)
        return _status(504)
    if kind is FaultKind.DROP:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never reaches the client
    if kind is FaultKind.MALFORMED:
        return web.Response(status=200, text=_MALFORMED[target], content_type="application/json")
    return _status(int(kind.value))


def _status(code: int) -> web.Response:
    if code == 500:
        return web.Response(status=500, text="Internal Server Error", content_type="text/plain")
    return web.Response(
        status=code, text=_NGINX.format(code=code, text=_REASONS[code]), content_type="text/html"
    )


def middleware(
    plan: FaultPlan, target: str, key_of: Callable[[web.Request], Awaitable[str]] | None = None
) -> Middleware:
    """An aiohttp middleware applying ``plan`` to one server."""

    @web.middleware
    async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if plan.latency_ms:
            await asyncio.sleep(plan.latency_ms / 1000)
        key = await key_of(request) if key_of else request.path
        kind = plan.pick(target, key)
        if kind is None:
            return await handler(request)
        return await apply_fault(kind, plan, target, request, handler)

    return fault_middleware
