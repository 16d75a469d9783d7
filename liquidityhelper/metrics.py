"""In-process figures for /metrics (Prometheus text format) and /healthz."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class WalletGauges:
    inbound_sat: int
    target_sat: int
    topup_sat: int


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
        out = [
            "# HELP liquidityhelper_cycles_total Cycles finished.",
            "# TYPE liquidityhelper_cycles_total counter",
            f"liquidityhelper_cycles_total {self.cycles}",
            "# HELP liquidityhelper_cycle_duration_seconds Duration of the last cycle.",
            "# TYPE liquidityhelper_cycle_duration_seconds gauge",
            f"liquidityhelper_cycle_duration_seconds {self.last_cycle_seconds:.3f}",
            "# HELP liquidityhelper_api_errors_total Errors talking to Bitcart, by kind.",
            "# TYPE liquidityhelper_api_errors_total counter",
        ]
        out += [
            f'liquidityhelper_api_errors_total{{kind="{k}"}} {v}'
            for k, v in sorted(self.errors.items())
        ]
        out += [
            "# HELP liquidityhelper_payments_total Lightning payments, by outcome.",
            "# TYPE liquidityhelper_payments_total counter",
        ]
        out += [
            f'liquidityhelper_payments_total{{outcome="{k}"}} {v}'
            for k, v in sorted(self.payments.items())
        ]
        for name, attr, help_text in (
            ("inbound_sats", "inbound_sat", "Inbound liquidity of a managed wallet."),
            ("inbound_target_sats", "target_sat", "Inbound liquidity wanted per wallet."),
            ("topup_needed_sats", "topup_sat", "Sats the merchant must send; 0 if none."),
        ):
            out += [
                f"# HELP liquidityhelper_{name} {help_text}",
                f"# TYPE liquidityhelper_{name} gauge",
            ]
            out += [
                f'liquidityhelper_{name}{{wallet="{w}"}} {getattr(g, attr)}'
                for w, g in sorted(self.wallets.items())
            ]
        return "\n".join(out) + "\n"
