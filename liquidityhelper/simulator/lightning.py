"""Lightning payments of the daemon's wallets (Electrum's ``lnpay``) and incoming ones.

A payment needs an OPEN channel whose peer is connected (GOOD) and, in trampoline mode
(Electrum's default), is a trampoline. In trampoline mode the fee follows Electrum's fee
levels (:mod:`trampoline`): the first share of the fee budget the trampoline accepts, each
refused level a TRAMPOLINE_FEE_INSUFFICIENT row in the log. Amount plus fee must fit in
the channel's ``available_to_spend``; when it does not, Electrum attempts nothing
(NoPathFound / FeeBudgetExceeded) and lnpay answers success false with the log so far.
Only invoices the simulator issued can be paid (it knows their preimage and where the
money lands); anything else finds no route.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from liquidityhelper.simulator import bolt11util
from liquidityhelper.simulator import trampoline as tr
from liquidityhelper.simulator.channels import ChannelOps
from liquidityhelper.simulator.entities import (
    PR_FAILED,
    PR_INFLIGHT,
    PR_PAID,
    Channel,
    DaemonWallet,
    Htlc,
    IssuedInvoice,
    OutgoingPayment,
    ReceivedPayment,
)
from liquidityhelper.simulator.errors import PeerTimeout, SimError, electrum
from liquidityhelper.simulator.ports import ModelPort

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class PaymentFaults:
    """Injected payment outcomes: ``"ok"``, ``"fail"`` or ``"hold"`` (pending, settles later).

    ``script`` outcomes are used first, in order; then ``fail_rate`` draws from the model's
    RNG. A held payment stays in flight for ``hold_seconds`` (longer than a client's timeout,
    say) and then settles with ``hold_outcome``; with ``hold_seconds=None`` it waits for
    :meth:`LightningOps.settle_held`.
    """

    fail_rate: float = 0.0
    script: deque[str] = field(default_factory=deque)
    hold_seconds: float | None = 1.0
    hold_outcome: str = "ok"

    def set_rate(self, rate: float) -> None:
        self.fail_rate = rate

    def push(self, *outcomes: str) -> None:
        for outcome in outcomes:
            if outcome not in ("ok", "fail", "hold"):
                raise ValueError(f"unknown payment outcome {outcome!r}")
            self.script.append(outcome)

    def clear(self) -> None:
        self.fail_rate = 0.0
        self.script.clear()


@dataclass(slots=True)
class _Route:
    channel: Channel
    fee_msat: int
    hops: int = 1  # edges of the route lnpay's log reports (1 to a trampoline)


# One row of lnpay's log: HtlcLog.formatted_tuple() -> (route length, channel, message).
LogRow = list[str]


class LightningOps(ChannelOps):
    """Channel operations plus payments; the model's ``ln``."""

    def __init__(self, model: ModelPort) -> None:
        super().__init__(model)
        self.faults = PaymentFaults()
        self._held: dict[str, asyncio.Event] = {}
        self._hold_tasks: set[asyncio.Future[dict[str, Any]]] = set()

    async def waiting_out_timeouts(self, call: Callable[[], str]) -> str:
        """Run a channel call; a peer that never answers fails after ``peer_timeout_s``."""
        try:
            return call()
        except PeerTimeout:
            if self.m.config.peer_timeout_s > 0:
                await asyncio.sleep(self.m.config.peer_timeout_s)
            raise

    # -- paying -----------------------------------------------------------------------------

    def fee_budget_msat(self, amount_msat: int) -> int:
        """Electrum's ``PaymentFeeBudget.default`` from the daemon's config."""
        millionths = min(
            max(0, int(self.m.electrum["lightning_payment_fee_max_millionths"])), 250_000
        )
        cutoff = min(max(0, int(self.m.electrum["lightning_payment_fee_cutoff_msat"])), 10_000_000)
        return max(amount_msat * millionths // 1_000_000, cutoff)

    def _gossip_route(self, dw: DaemonWallet, amount_msat: int, budget: int) -> _Route | None:
        """With gossip: any usable channel, paying the peer's fee, within the budget."""
        best: _Route | None = None
        for chan in sorted(dw.channels.values(), key=lambda c: c.channel_point):
            if not self.is_usable(chan):
                continue
            node = self.node(chan.peer_pubkey)
            base = node.fee_base_msat if node else self.m.config.default_fee_base_msat
            ppm = node.fee_ppm if node else self.m.config.default_fee_ppm
            fee = base + amount_msat * ppm // 1_000_000
            if fee > budget or self.sendable_msat(chan) < amount_msat + fee:
                continue
            if best is None or self.sendable_msat(chan) > self.sendable_msat(best.channel):
                best = _Route(chan, fee, hops=2)
        return best

    def _trampoline_channel(self, dw: DaemonWallet, amount_msat: int) -> Channel | None:
        """The channel to a trampoline that can carry ``amount_msat`` with the most room."""
        fits = [
            c
            for c in dw.channels.values()
            if self.is_usable(c)
            and self.is_trampoline(c.peer_pubkey)
            and self.sendable_msat(c) >= amount_msat
        ]
        return max(fits, key=lambda c: (self.sendable_msat(c), c.channel_point), default=None)

    def _trampoline_route(
        self, dw: DaemonWallet, amount_msat: int, budget: int, rows: list[LogRow]
    ) -> _Route | None:
        """Electrum's fee levels until the trampoline accepts; None when Electrum gives up.

        Each refused level adds the row Electrum logs for it (the trampoline is hop 0 of a
        one-edge route, so the failing channel reads "Destination node")."""
        for _level, fee in tr.offers(budget):
            chan = self._trampoline_channel(dw, amount_msat)
            if chan is None:
                return None  # NoPathFound: no channel can carry the amount
            if self.sendable_msat(chan) - amount_msat < fee:
                return None  # FeeBudgetExceeded: "not enough margin to pay trampoline fee"
            node = self.node(chan.peer_pubkey)
            if node is not None and fee < tr.required_fee_msat(node, amount_msat):
                rows.append(["1", "Destination node", tr.FEE_INSUFFICIENT])
                continue
            return _Route(chan, fee)
        return None  # FeeBudgetExceeded: highest trampoline fee level reached

    def _inbound_channel(self, dw: DaemonWallet, amount_msat: int) -> Channel | None:
        usable = [c for c in dw.channels.values() if self.is_usable(c)]
        usable = [c for c in usable if self.receivable_msat(c) >= amount_msat]
        return max(usable, key=lambda c: (self.receivable_msat(c), c.channel_point), default=None)

    def _decode_for_payment(self, bolt11: str) -> bolt11util.Decoded:
        known = self.m.issued_by_bolt11.get(bolt11.strip())
        if known is not None:
            inv = self.m.issued[known]
            prefix = inv.bolt11[: inv.bolt11.rfind("1")]
            if not prefix[2:].startswith(self.m.config.hrp):
                raise electrum(
                    "electrum.lnaddr.LnDecodeException",
                    f"Wrong Lightning invoice HRP {prefix[2:]}, should be {self.m.config.hrp}",
                )
            return bolt11util.Decoded(
                bolt11=inv.bolt11,
                currency=self.m.config.hrp,
                payment_hash=inv.payment_hash,
                payment_secret=None,
                amount_msat=inv.amount_msat,
                timestamp=inv.timestamp,
                expiry=inv.expiry,
                payee=inv.payee_pubkey,
                description=inv.description,
                description_hash=None,
                min_final_cltv=bolt11util.MIN_FINAL_CLTV,
            )
        return bolt11util.decode(bolt11, self.m.config.hrp)

    async def pay(
        self, dw: DaemonWallet, bolt11: str, max_fee_msat: int | None = None
    ) -> dict[str, Any]:
        """Electrum's ``lnpay``: raises RpcError for a bad invoice, else reports success."""
        d = self._decode_for_payment(str(bolt11))
        if d.expiry and self.m.now() > d.timestamp + d.expiry:
            raise electrum("electrum.util.InvoiceError", "This invoice has expired")
        if d.amount_msat is None:
            raise electrum("electrum.util.InvoiceError", "Missing amount")
        existing = dw.outgoing.get(d.payment_hash)
        if existing is not None and existing.status == PR_PAID:
            raise electrum("electrum.lnutil.PaymentFailure", "This invoice has been paid already")
        if existing is not None and existing.status == PR_INFLIGHT:
            raise electrum(
                "electrum.lnutil.PaymentFailure", "A payment was already initiated for this invoice"
            )
        payment = existing or OutgoingPayment(
            wallet_key=dw.key,
            payment_hash=d.payment_hash,
            bolt11=d.bolt11,
            amount_msat=d.amount_msat,
            message=d.description,
            timestamp=d.timestamp,
            expiry=d.expiry,
        )
        if existing is None:
            dw.outgoing[d.payment_hash] = payment
            self.m.ledger.append(payment)
        payment.status = PR_INFLIGHT
        payment.attempts += 1
        payment.attempted_at = self.m.now()
        return await self._attempt(dw, payment, max_fee_msat)

    def _next_outcome(self) -> str:
        if self.faults.script:
            return self.faults.script.popleft()
        if self.faults.fail_rate and self.m.rng.random() < self.faults.fail_rate:
            return "fail"
        return "ok"

    async def _attempt(
        self, dw: DaemonWallet, payment: OutgoingPayment, max_fee_msat: int | None
    ) -> dict[str, Any]:
        self.catch_up()
        issued = self.m.issued.get(payment.payment_hash)
        amount = payment.amount_msat
        target = self._target_channel(dw, issued, amount)
        if issued is None or issued.settled or target is False:
            return self._fail(payment, [])
        budget = max_fee_msat if max_fee_msat else self.fee_budget_msat(amount)
        rows: list[LogRow] = []
        if self.m.use_gossip:
            route = self._gossip_route(dw, amount, budget)
        else:
            route = self._trampoline_route(dw, amount, budget, rows)
        if route is None:
            return self._fail(payment, rows)
        outcome = self._next_outcome()
        if outcome == "fail":
            rows.append([str(route.hops), "Destination node", "TEMPORARY_CHANNEL_FAILURE"])
            return self._fail(payment, rows)
        if outcome == "hold":
            return await self._hold(dw, payment, issued, route, rows)
        return self._settle(dw, payment, issued, route, rows)

    def _target_channel(
        self, dw: DaemonWallet, issued: IssuedInvoice | None, amount_msat: int
    ) -> Channel | bool | None:
        """The payee's channel for a simulated wallet's invoice; False when it cannot receive."""
        if issued is None or issued.kind != "request":
            return None
        payee = self.m.daemon_wallets.get(issued.owner)
        if payee is None or payee.key == dw.key:
            return False
        chan = self._inbound_channel(payee, amount_msat)
        return chan if chan is not None else False

    def _fail(self, payment: OutgoingPayment, log_rows: list[LogRow]) -> dict[str, Any]:
        payment.status = PR_FAILED
        log.info("sim_payment_failed", amount_msat=payment.amount_msat)
        return {
            "payment_hash": payment.payment_hash,
            "success": False,
            "preimage": None,
            "log": log_rows,
        }

    async def _hold(
        self,
        dw: DaemonWallet,
        payment: OutgoingPayment,
        issued: IssuedInvoice,
        route: _Route,
        rows: list[LogRow],
    ) -> dict[str, Any]:
        """Keep the HTLC in flight, then settle in a task a client disconnect cannot cancel."""
        chan = route.channel
        htlc = Htlc(payment.amount_msat + route.fee_msat, "local")
        chan.htlcs.append(htlc)
        event = asyncio.Event()
        self._held[payment.payment_hash] = event

        async def finish() -> dict[str, Any]:
            try:
                if self.faults.hold_seconds is None:
                    await event.wait()
                else:
                    await asyncio.wait_for(event.wait(), self.faults.hold_seconds)
            except TimeoutError:
                pass
            chan.htlcs.remove(htlc)
            self._held.pop(payment.payment_hash, None)
            if self.faults.hold_outcome == "fail" or issued.settled:
                rows.append([str(route.hops), "Destination node", "TEMPORARY_CHANNEL_FAILURE"])
                return self._fail(payment, rows)
            return self._settle(dw, payment, issued, route, rows)

        task = asyncio.ensure_future(finish())
        self._hold_tasks.add(task)
        task.add_done_callback(self._hold_tasks.discard)
        return await asyncio.shield(task)

    async def cancel_held(self) -> None:
        """Drop payments still in flight (the simulator is shutting down)."""
        for task in list(self._hold_tasks):
            task.cancel()
        for task in list(self._hold_tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def settle_held(self) -> int:
        """Release every held payment now; returns how many there were."""
        events = list(self._held.values())
        for event in events:
            event.set()
        return len(events)

    def _settle(
        self,
        dw: DaemonWallet,
        payment: OutgoingPayment,
        issued: IssuedInvoice,
        route: _Route,
        rows: list[LogRow],
    ) -> dict[str, Any]:
        total = payment.amount_msat + route.fee_msat
        chan = route.channel
        chan.local_msat -= total
        chan.remote_msat += total
        chan.local_ctn += 1
        chan.remote_ctn += 1
        payment.status = PR_PAID
        payment.fee_msat = route.fee_msat
        payment.preimage = issued.preimage
        payment.settled_at = self.m.now()
        payment.channel_point = chan.channel_point
        payment.destination = issued.owner if issued.kind == "lnaddr" else issued.kind
        self._deliver(issued, payment.amount_msat)
        self.catch_up()
        log.info("sim_payment_settled", amount_msat=payment.amount_msat, fee_msat=route.fee_msat)
        # Electrum logs the successful HTLC too, with the channel it left by.
        rows.append([str(route.hops), chan.short_channel_id or "Unknown", "Success"])
        return {
            "payment_hash": payment.payment_hash,
            "success": True,
            "preimage": issued.preimage,
            "log": rows,
        }

    def _deliver(self, issued: IssuedInvoice, amount_msat: int) -> None:
        issued.settled = True
        if issued.kind == "lnaddr":
            received = self.m.lnaddr_received_msat
            received[issued.owner] = received.get(issued.owner, 0) + amount_msat
            return
        payee = self.m.daemon_wallets.get(issued.owner)
        if payee is None:
            return
        self.receive(payee, amount_msat, issued.payment_hash, issued.preimage, issued.description)
        self.m.shop.on_lightning_paid(issued.payment_hash, amount_msat)

    # -- receiving --------------------------------------------------------------------------

    def receive(
        self, dw: DaemonWallet, amount_msat: int, payment_hash: str, preimage: str, label: str = ""
    ) -> Channel:
        """A payment comes in through the channel with the most inbound room."""
        chan = self._inbound_channel(dw, amount_msat)
        if chan is None:
            raise SimError("no channel with enough inbound liquidity")
        chan.remote_msat -= amount_msat
        chan.local_msat += amount_msat
        chan.local_ctn += 1
        chan.remote_ctn += 1
        dw.received.append(
            ReceivedPayment(
                payment_hash, preimage, amount_msat, self.m.now(), chan.channel_point, label
            )
        )
        request = dw.requests.get(payment_hash)
        if request is not None:
            request.status = PR_PAID
        self.catch_up()
        return chan


def new_preimage(model: ModelPort) -> tuple[str, str]:
    """(preimage, payment_hash) as hex."""
    preimage = model.ids.hex(32)
    return preimage, hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
