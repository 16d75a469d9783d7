"""Performs intended actions through the wallet backend, journaled, or only logs them in dry-run.

Every money action follows one path: check → journal the intent → send → record the outcome.
An outcome we cannot know (timeout, dropped connection) stays ``pending`` in the journal and
is reconciled with the wallet before anything new moves on that wallet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import httpx
import structlog

from liquidityhelper import common_functions as cf
from liquidityhelper import lnurl
from liquidityhelper.actions import CloseChannel, OpenChannel, PayLightningAddress, Skip
from liquidityhelper.config import Settings
from liquidityhelper.decisions.payments import routing_fee_cap_msat
from liquidityhelper.journal import PAYMENT_KINDS, Entry, Journal, Kind, Status, payment_label
from liquidityhelper.snapshot import WalletSnapshot
from liquidityhelper.wallet.base import (
    ChannelState,
    FeeBudget,
    InsufficientFundsError,
    PaymentStatus,
    TransientError,
    WalletBackend,
    WalletError,
)

log = structlog.get_logger(__name__)

OPEN_RECONCILE_AFTER = timedelta(minutes=30)  # an open that left no channel by then failed
EXPIRY_GRACE = timedelta(minutes=2)


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

    # --- skips -----------------------------------------------------------------------------

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

    # --- reconciliation ----------------------------------------------------------------------

    async def reconcile(
        self, backend: WalletBackend, wallet_id: str, snap: WalletSnapshot | None
    ) -> list[Entry]:
        """Settle what the journal left pending for a wallet; returns what is still pending."""
        now = self.clock()
        for entry in self.journal.pending(wallet_id):
            try:
                if entry.kind in PAYMENT_KINDS:
                    await self._reconcile_payment(backend, entry, now)
                elif snap is not None:
                    self._reconcile_channel(entry, snap, now)
            except WalletError as exc:
                log.warning(
                    "reconcile_failed",
                    wallet=wallet_id,
                    entry=entry.id,
                    kind=entry.kind.value,
                    error=str(exc),
                )
        return self.journal.pending(wallet_id)

    async def _reconcile_payment(self, backend: WalletBackend, entry: Entry, now: datetime) -> None:
        assert entry.payment_hash is not None
        result = await backend.lookup_payment(entry.wallet_id, entry.payment_hash)
        fields = {
            "wallet": entry.wallet_id,
            "entry": entry.id,
            "kind": entry.kind.value,
            "amount_sat": entry.amount_sat,
            "payment_hash": entry.payment_hash,
        }
        if result.status is PaymentStatus.SUCCEEDED:
            self.journal.finish(
                entry.id,
                Status.SUCCEEDED,
                now=now,
                fee_msat=result.fee_msat,
                detail="reconciled: paid",
            )
            log.info("payment_reconciled", outcome="succeeded", fee_msat=result.fee_msat, **fields)
        elif result.status is PaymentStatus.FAILED:
            self.journal.finish(entry.id, Status.FAILED, now=now, detail="reconciled: failed")
            log.info("payment_reconciled", outcome="failed", **fields)
        elif (
            result.status is PaymentStatus.UNKNOWN
            and entry.expires_at is not None
            and now > entry.expires_at + EXPIRY_GRACE
        ):
            # The wallet never saw it and the invoice can no longer be paid: it is safe to
            # call it failed (a crash between journaling and sending ends here).
            self.journal.finish(entry.id, Status.FAILED, now=now, detail="expired unpaid")
            log.info("payment_reconciled", outcome="expired_unpaid", **fields)
        else:
            log.info("payment_still_pending", status=result.status.value, **fields)

    def _reconcile_channel(self, entry: Entry, snap: WalletSnapshot, now: datetime) -> None:
        age = now - entry.created_at
        if entry.kind is Kind.CHANNEL_OPEN:
            pubkey = entry.destination.split("@", 1)[0]
            known = {e.reference for e in self.journal.entries(entry.wallet_id, Kind.CHANNEL_OPEN)}
            found = [
                c
                for c in snap.channels
                if c.peer_pubkey == pubkey
                and c.channel_point not in known
                and c.state in (ChannelState.OPENING, ChannelState.OPEN)
            ]
            if found:
                self.journal.finish(
                    entry.id,
                    Status.SUCCEEDED,
                    now=now,
                    reference=found[0].channel_point,
                    detail="reconciled",
                )
            elif age > OPEN_RECONCILE_AFTER:
                self.journal.finish(entry.id, Status.FAILED, now=now, detail="no channel appeared")
            else:
                return
        elif entry.kind is Kind.CHANNEL_CLOSE:
            row = next((c for c in snap.channels if c.channel_point == entry.destination), None)
            if row is None or row.state in (ChannelState.CLOSING, ChannelState.CLOSED):
                self.journal.finish(entry.id, Status.SUCCEEDED, now=now, detail="reconciled")
            elif age > OPEN_RECONCILE_AFTER:
                self.journal.finish(entry.id, Status.FAILED, now=now, detail="channel not closing")
            else:
                return
        log.info(
            "channel_action_reconciled",
            wallet=entry.wallet_id,
            entry=entry.id,
            kind=entry.kind.value,
            outcome=self.journal.get(entry.id).status.value,
        )

    # --- channels ---------------------------------------------------------------------------

    async def open_channel(self, backend: WalletBackend, action: OpenChannel) -> bool:
        """Returns True when funds may have moved (refresh the wallet's snapshot)."""
        fields = {
            "wallet": action.wallet_id,
            "peer": action.pubkey,
            "amount_sat": action.capacity_sat,
            "fee_rate": action.fee_rate,
            "reason": action.reason,
        }
        peer_min = self.peer_minimum(action.pubkey)
        if action.capacity_sat < peer_min:
            # This peer refused a channel this small before: it would refuse again, silently,
            # after stalling the cycle ~20 s.
            log.info(
                "nothing_to_do",
                **{k: v for k, v in fields.items() if k != "reason"},
                section="channel_opening",
                reason="channel_below_peer_minimum",
                open_reason=action.reason,
                peer_min_sat=peer_min,
            )
            return False
        if self.dry_run:
            log.info("dry_run_open_channel", **fields)
            return False
        now = self.clock()
        entry = self.journal.record_intent(
            Kind.CHANNEL_OPEN,
            action.wallet_id,
            action.capacity_sat,
            action.connection_string,
            now=now,
        )
        try:
            point = await backend.open_channel(
                action.wallet_id, action.connection_string, action.capacity_sat
            )
        except TransientError as exc:
            log.warning("channel_open_outcome_unknown", error=str(exc), entry=entry.id, **fields)
            return True
        except WalletError as exc:
            self.journal.finish(entry.id, Status.FAILED, now=self.clock(), detail=str(exc)[:500])
            cause = self._open_failure_cause(action, exc)
            if cause == "BelowPeerMinimum":
                self.journal.set_state(
                    f"peer_min:{action.pubkey}", cf.ELECTRUM_PEER_MIN_FUNDING_SAT, now=self.clock()
                )
            if cause in ("InsufficientFundsError", "OurFundsLikely"):
                # Our coins could not pay for it: the same open would fail again every cycle
                # until the wallet's coins change. Remember what it held.
                self.journal.set_state(
                    f"open_funds_short:{action.wallet_id}",
                    {"capacity_sat": action.capacity_sat, "fee_rate": action.fee_rate},
                    now=self.clock(),
                )
            self.peers.record_open_attempt(
                action.wallet_id, action.pubkey, False, cause, None, self.clock()
            )
            log.error("channel_open_failed", error=str(exc), cause=cause, **fields)
            return True
        self.journal.finish(entry.id, Status.SUCCEEDED, now=self.clock(), reference=point)
        self.peers.record_open_attempt(
            action.wallet_id, action.pubkey, True, None, point, self.clock()
        )
        log.info("channel_opened", channel_point=point, **fields)
        return True

    def peer_minimum(self, pubkey: str) -> int:
        """The least channel size this peer takes, learned from its refusal (0: unknown)."""
        raw = self.journal.get_state(f"peer_min:{pubkey}")
        return int(raw) if isinstance(raw, int | str) and str(raw).isdigit() else 0

    @staticmethod
    def _open_failure_cause(action: OpenChannel, exc: WalletError) -> str:
        """Whose fault a refused open is: the peer's (its error class) or ours.

        Bitcart turns every open error into 400 "Failed to open channel", so the cause is
        inferred: an Electrum peer refuses channels under 200,000 sats without a word, and a
        thin funds margin means our wallet likely needed more inputs than planned.
        """
        if isinstance(exc, InsufficientFundsError):
            return "InsufficientFundsError"
        if action.capacity_sat < cf.ELECTRUM_PEER_MIN_FUNDING_SAT:
            return "BelowPeerMinimum"
        if action.margin_sat is not None and action.margin_sat < (
            cf.FUNDING_TX_VBYTES * max(action.fee_rate, 1)
        ):
            return "OurFundsLikely"
        return type(exc).__name__

    async def close_channel(self, backend: WalletBackend, action: CloseChannel) -> bool:
        fields = {
            "wallet": action.wallet_id,
            "channel_point": action.channel_point,
            "peer": action.pubkey,
            "reason": action.reason,
        }
        if self.dry_run:
            log.info("dry_run_close_channel", **fields)
            return False
        entry = self.journal.record_intent(
            Kind.CHANNEL_CLOSE,
            action.wallet_id,
            0,
            action.channel_point,
            now=self.clock(),
            detail=action.reason,
        )
        try:
            txid = await backend.close_channel(action.wallet_id, action.channel_point, force=False)
        except TransientError as exc:
            log.warning("channel_close_outcome_unknown", error=str(exc), **fields)
            return True
        except WalletError as exc:
            self.journal.finish(entry.id, Status.FAILED, now=self.clock(), detail=str(exc)[:500])
            self.peers.record_close(
                action.wallet_id, action.channel_point, False, type(exc).__name__, self.clock()
            )
            log.error("channel_close_failed", error=str(exc), **fields)
            return True
        self.journal.finish(entry.id, Status.SUCCEEDED, now=self.clock(), reference=txid)
        self.peers.record_close(action.wallet_id, action.channel_point, True, None, self.clock())
        log.info("channel_closed", closing_txid=txid, **fields)
        return True

    # --- payments to lightning addresses ------------------------------------------------------

    async def pay(self, backend: WalletBackend, action: PayLightningAddress) -> str:
        """Pay, stepping down (½, ¼ …) to the minimum on failure; then back off.

        Returns the final outcome: succeeded, failed, refused, pending or dry_run.
        """
        fields = {"kind": action.kind, "wallet": action.wallet_id, "address": action.address}
        if self.dry_run:
            log.info("dry_run_payment", amount_sat=action.amount_sat, **fields, **action.numbers)
            return "dry_run"
        amount = action.amount_sat
        backoff_key = f"backoff:{action.kind}:{action.wallet_id}"
        while True:
            outcome = await self._pay_once(backend, action, amount)
            if outcome == "succeeded":
                self.journal.delete_state(backoff_key)
                return outcome
            if outcome == "pending":
                return outcome
            # A refused invoice is not retried at a smaller amount: the server is at fault.
            if outcome == "refused" or amount // 2 < action.min_amount_sat:
                until = self.clock() + timedelta(seconds=self.settings.cashout_backoff_seconds)
                # Tied to the address: fixing a wrong address must not wait out the back-off.
                self.journal.set_state(
                    backoff_key,
                    {"until": until.isoformat(), "address": action.address},
                    now=self.clock(),
                )
                if outcome == "refused":  # its one log line already said why and for how long
                    return outcome
                log.warning(
                    "payment_backing_off",
                    until=until.isoformat(),
                    outcome=outcome,
                    last_amount_sat=amount,
                    min_amount_sat=action.min_amount_sat,
                    **fields,
                )
                return outcome
            amount //= 2
            log.info("payment_stepping_down", amount_sat=amount, **fields)

    async def _pay_once(
        self, backend: WalletBackend, action: PayLightningAddress, amount: int
    ) -> str:
        fields = {"kind": action.kind, "wallet": action.wallet_id, "address": action.address}
        now = self.clock()
        pin_key = f"payee:{action.address}"
        pinned = self.journal.get_state(pin_key)
        try:
            address = lnurl.parse_lightning_address(
                action.address, loopback_http=self.settings.loopback_http_ok
            )
            pay_request = await lnurl.fetch_pay_request(self.http, address)
            amount_msat = min(amount * 1000, pay_request.max_sendable_msat) // 1000 * 1000
            if amount_msat < pay_request.min_sendable_msat:
                log.warning(
                    "payment_below_lnurl_minimum",
                    amount_sat=amount_msat // 1000,
                    min_msat=pay_request.min_sendable_msat,
                    **fields,
                )
                return "failed"
            invoice = await lnurl.fetch_invoice(
                self.http,
                pay_request,
                amount_msat,
                network=self.settings.network,
                now=now.timestamp(),
                expected_payee=pinned,
            )
        except lnurl.LnurlError as exc:
            log.error(
                "lnurl_refused",
                reason=exc.reason,
                error=exc.message,
                amount_sat=amount,
                retry_in_seconds=self.settings.cashout_backoff_seconds,
                **{**exc.details, **fields},
            )
            return "refused"
        amount = amount_msat // 1000

        cap_msat = routing_fee_cap_msat(
            amount, self.settings.max_routing_fee_sat, self.settings.max_routing_fee_ppm
        )
        if not await self._enforce_fee_cap(backend, action.wallet_id, amount_msat, cap_msat):
            log.error(
                "payment_refused",
                reason="fee_cap_unenforceable",
                amount_sat=amount,
                cap_msat=cap_msat,
                retry_in_seconds=self.settings.cashout_backoff_seconds,
                **fields,
            )
            return "refused"

        entry = self.journal.record_intent(
            Kind(action.kind),
            action.wallet_id,
            amount,
            action.address,
            now=now,
            invoice=invoice.bolt11,
            payment_hash=invoice.payment_hash,
            expires_at=datetime.fromtimestamp(invoice.expires_at, now.tzinfo),
        )
        # The wallet's own record of what this payment was: a lost journal can be rebuilt
        # from it, so a fee is never paid twice. Without it a fee payment is not sent.
        try:
            await backend.label_payment(
                action.wallet_id, invoice.payment_hash, payment_label(action.kind)
            )
        except WalletError as exc:
            if action.kind == Kind.FEE_PAYMENT.value:
                self.journal.finish(
                    entry.id, Status.FAILED, now=self.clock(), detail=f"label failed: {exc}"
                )
                log.error(
                    "payment_refused",
                    reason="payment_label_failed",
                    error=str(exc),
                    amount_sat=amount,
                    **fields,
                )
                return "refused"
            log.warning("payment_label_failed", error=str(exc), **fields)
        log.info(
            "payment_sending",
            amount_sat=amount,
            fee_cap_msat=cap_msat,
            entry=entry.id,
            payment_hash=invoice.payment_hash,
            **fields,
        )
        try:
            result = await asyncio.wait_for(
                backend.pay_invoice(action.wallet_id, invoice.bolt11),
                timeout=self.settings.payment_timeout_seconds,
            )
        except (TransientError, TimeoutError) as exc:
            log.warning(
                "payment_outcome_unknown",
                entry=entry.id,
                error=str(exc) or "timeout",
                amount_sat=amount,
                **fields,
            )
            return "pending"
        except WalletError as exc:
            # The daemon refused the invoice outright; nothing left the wallet.
            self.journal.finish(entry.id, Status.FAILED, now=self.clock(), detail=str(exc)[:500])
            log.warning(
                "payment_failed", entry=entry.id, amount_sat=amount, error=str(exc), **fields
            )
            return "failed"
        if result.status is PaymentStatus.SUCCEEDED:
            self.journal.finish(
                entry.id, Status.SUCCEEDED, now=self.clock(), fee_msat=result.fee_msat
            )
            # Trust on first use, pinned only once a payment to that node went through: a
            # failed first payment must not lock the address to a node that never got paid.
            if pinned is None:
                self.journal.set_state(pin_key, invoice.payee_pubkey, now=self.clock())
                log.info("payee_pinned", address=action.address, payee=invoice.payee_pubkey)
            self.peers.learn_payee(action.address, invoice.payee_pubkey, self.clock())
            log.info(
                "payment_succeeded",
                entry=entry.id,
                amount_sat=amount,
                fee_msat=result.fee_msat,
                **fields,
            )
            return "succeeded"
        if result.status is PaymentStatus.FAILED:
            self.journal.finish(
                entry.id, Status.FAILED, now=self.clock(), detail=result.detail[:500]
            )
            log.warning(
                "payment_failed", entry=entry.id, amount_sat=amount, error=result.detail, **fields
            )
            return "failed"
        log.warning(
            "payment_outcome_unknown",
            entry=entry.id,
            amount_sat=amount,
            status=result.status.value,
            **fields,
        )
        return "pending"

    async def _enforce_fee_cap(
        self, backend: WalletBackend, wallet_id: str, amount_msat: int, cap_msat: int
    ) -> bool:
        """Set Electrum's payment fee budget so no route may cost more than the cap.

        Electrum allows ``max(cutoff_msat, amount × millionths / 1e6)``; both terms are set at
        or below the cap. The budget is daemon-wide and lost on a daemon restart, so it is set
        and read back before every payment (payments run one at a time).
        """
        budget = FeeBudget(max_millionths=cap_msat * 1_000_000 // amount_msat, cutoff_msat=cap_msat)
        try:
            await backend.set_fee_budget(wallet_id, budget)
            return await backend.get_fee_budget(wallet_id) == budget
        except WalletError as exc:
            log.warning("fee_budget_unavailable", wallet=wallet_id, error=str(exc))
            return False
