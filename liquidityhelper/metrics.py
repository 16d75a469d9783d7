"""In-process figures for /metrics (Prometheus text format 0.0.4) and /healthz."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class WalletGauges:
    inbound_sat: int  # after the next cashouts
    target_sat: int
    topup_sat: int
    inbound_now_sat: int = 0  # what live peers can send now


# (metric suffix, WalletGauges attribute, help text) of the per-wallet gauges.
WALLET_GAUGES = (
    (
        "inbound_sats",
        "inbound_sat",
        "Inbound liquidity of a managed wallet once the next cashouts have gone out.",
    ),
    ("inbound_now_sats", "inbound_now_sat", "What the live peers of a wallet can send it now."),
    ("inbound_target_sats", "target_sat", "Inbound liquidity wanted per wallet."),
    ("topup_needed_sats", "topup_sat", "Sats the merchant must send; 0 if none."),
)


def _label(value: str) -> str:
    """A label value escaped as the text format wants it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP liquidityhelper_{name} {help_text}", f"# TYPE liquidityhelper_{name} {kind}"]


@dataclass
class Metrics:
    last_cycle_finished: datetime | None = None
    last_cycle_seconds: float = 0.0
    cycles: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # by kind (exception class)
    payments: Counter[str] = field(default_factory=Counter)  # by outcome
    wallets: dict[str, WalletGauges] = field(default_factory=dict)

    def error(self, exc: BaseException) -> None:
        self.errors[type(exc).__name__] += 1

    def render(self) -> str:
        last = self.last_cycle_finished.timestamp() if self.last_cycle_finished else 0
        out = [
            *_header("cycles_total", "counter", "Cycles finished."),
            f"liquidityhelper_cycles_total {self.cycles}",
            *_header("cycle_duration_seconds", "gauge", "Duration of the last cycle."),
            f"liquidityhelper_cycle_duration_seconds {self.last_cycle_seconds:.3f}",
            *_header(
                "last_cycle_timestamp_seconds",
                "gauge",
                "Unix time the last cycle finished; 0 before the first.",
            ),
            f"liquidityhelper_last_cycle_timestamp_seconds {last:.0f}",
            *_header("api_errors_total", "counter", "Errors talking to Bitcart, by kind."),
        ]
        out += [
            f'liquidityhelper_api_errors_total{{kind="{_label(k)}"}} {v}'
            for k, v in sorted(self.errors.items())
        ]
        out += _header("payments_total", "counter", "Lightning payments, by outcome.")
        out += [
            f'liquidityhelper_payments_total{{outcome="{_label(k)}"}} {v}'
            for k, v in sorted(self.payments.items())
        ]
        for name, attr, help_text in WALLET_GAUGES:
            out += _header(name, "gauge", help_text)
            out += [
                f'liquidityhelper_{name}{{wallet="{_label(w)}"}} {getattr(g, attr)}'
                for w, g in sorted(self.wallets.items())
            ]
        return "\n".join(out) + "\n"
