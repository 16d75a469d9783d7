"""The journal: intents before sends, one action in flight per wallet, survives reopening."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from liquidityhelper.journal import Journal, JournalBusyError, Kind, Status

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_intent_then_outcome_survives_a_reopen(tmp_path: Path) -> None:
    j = Journal.open(tmp_path)
    e = j.record_intent(
        Kind.CASHOUT,
        "w1",
        12_345,
        "m@host",
        now=NOW,
        invoice="lnbc1...",
        payment_hash="ab" * 32,
        expires_at=NOW + timedelta(minutes=10),
    )
    j.close()
    j = Journal.open(tmp_path)
    [pending] = j.pending("w1")
    assert (pending.id, pending.status, pending.amount_sat) == (e.id, Status.PENDING, 12_345)
    assert pending.expires_at == NOW + timedelta(minutes=10)
    j.finish(e.id, Status.SUCCEEDED, now=NOW, fee_msat=3_000)
    assert j.pending() == []
    assert j.paid_sat("w1", Kind.CASHOUT) == 12_345
    assert j.paid_sat("w1", Kind.FEE_PAYMENT) == 0  # cashouts are never fees
    assert j.routing_fees_msat("w1") == 3_000
    assert j.schema_version == 2


def test_a_wallet_never_has_two_actions_in_flight() -> None:
    j = Journal.open(":memory:")
    first = j.record_intent(Kind.CASHOUT, "w1", 1_000, "m@host", now=NOW, payment_hash="01")
    with pytest.raises(JournalBusyError):
        j.record_intent(Kind.FEE_PAYMENT, "w1", 1_000, "op@host", now=NOW, payment_hash="02")
    j.record_intent(Kind.CASHOUT, "w2", 1_000, "m@host", now=NOW, payment_hash="03")
    j.finish(first.id, Status.FAILED, now=NOW)
    j.record_intent(Kind.FEE_PAYMENT, "w1", 1_000, "op@host", now=NOW, payment_hash="04")


def test_the_same_invoice_is_never_journaled_twice() -> None:
    j = Journal.open(":memory:")
    e = j.record_intent(Kind.CASHOUT, "w1", 1_000, "m@host", now=NOW, payment_hash="aa")
    j.finish(e.id, Status.FAILED, now=NOW)
    with pytest.raises(Exception, match="UNIQUE"):
        j.record_intent(Kind.CASHOUT, "w1", 1_000, "m@host", now=NOW, payment_hash="aa")


def test_amounts_must_be_int_sats() -> None:
    j = Journal.open(":memory:")
    with pytest.raises(TypeError):
        j.record_intent(Kind.CASHOUT, "w1", 1.5, "m@host", now=NOW)  # type: ignore[arg-type]


def test_fee_paid_counts_only_succeeded_fee_payments_since() -> None:
    j = Journal.open(":memory:")
    for i, (kind, status) in enumerate(
        [
            (Kind.FEE_PAYMENT, Status.SUCCEEDED),
            (Kind.FEE_PAYMENT, Status.FAILED),
            (Kind.CASHOUT, Status.SUCCEEDED),
        ]
    ):
        e = j.record_intent(kind, "w1", 1_000 * (i + 1), "x@h", now=NOW, payment_hash=str(i))
        j.finish(e.id, status, now=NOW)
    assert j.paid_sat("w1", Kind.FEE_PAYMENT) == 1_000
    assert j.paid_sat("w1", Kind.FEE_PAYMENT, since=NOW + timedelta(seconds=1)) == 0


def test_state_round_trip() -> None:
    j = Journal.open(":memory:")
    assert j.get_state("k") is None
    j.set_state("k", {"amount_sat": 5}, now=NOW)
    j.set_state("k", {"amount_sat": 6}, now=NOW)
    assert j.get_state("k") == {"amount_sat": 6}
    j.delete_state("k")
    assert j.get_state("k") is None
