"""In-process figures for /metrics (Prometheus text format 0.0.4) and /healthz.

The daemon keeps plain numbers on :class:`Metrics`; ``prometheus_client`` renders them. Each
``Metrics`` has its own ``CollectorRegistry`` (never the library's global one: tests build many
daemons in one process) holding a collector that reads the figures at scrape time, and the
process collector (``process_*``: CPU, memory, open files).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from liquidityhelper import __version__
from liquidityhelper.wallet.base import ChannelState


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

PREFIX = "liquidityhelper_"

# Counters of what was spent and bought, all time: name -> (help, labels).
MONEY_COUNTERS = {
    "fees_paid_sats": (
        "Fees paid, by kind: operator (the operator's fee) or routing (rounded up).",
        ("wallet", "kind"),
    ),
    "inbound_created_sats": (
        "Sats pushed out through channels (cashouts and fee payments): inbound created.",
        ("wallet",),
    ),
    "cashed_out_sats": ("Sats cashed out to the merchant's lightning address.", ("wallet",)),
    "topups_paid_sats": ("Sats received on top-up invoices seen paid.", ("wallet",)),
}


@dataclass
class Metrics:
    last_cycle_finished: datetime | None = None
    last_cycle_seconds: float = 0.0
    cycles: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # by kind (exception class)
    payments: Counter[str] = field(default_factory=Counter)  # by outcome
    wallets: dict[str, WalletGauges] = field(default_factory=dict)
    # wallet id -> channel state (ChannelState value) -> how many channels are in it
    channels: dict[str, dict[str, int]] = field(default_factory=dict)
    # backend index -> whether the last cycle could read it
    backends_reachable: dict[int, bool] = field(default_factory=dict)
    # What the money bought and cost, all time, per wallet (journal and top-ups seen paid):
    # counter name (without _total) -> {label tuple: value}.
    money: dict[str, dict[tuple[str, ...], int]] = field(default_factory=dict)
    registry: CollectorRegistry = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Figures(self))
        ProcessCollector(registry=self.registry)

    def error(self, exc: BaseException) -> None:
        self.errors[type(exc).__name__] += 1

    def render(self) -> str:
        return generate_latest(self.registry).decode()


class _Figures(Collector):
    """The figures of one :class:`Metrics`, as they are when Prometheus scrapes."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        build = GaugeMetricFamily(
            PREFIX + "build_info", "The running version; always 1.", labels=["version"]
        )
        build.add_metric([__version__], 1)
        yield build
        yield CounterMetricFamily(PREFIX + "cycles", "Cycles finished.", value=m.cycles)
        yield GaugeMetricFamily(
            PREFIX + "cycle_duration_seconds",
            "Duration of the last cycle.",
            value=round(m.last_cycle_seconds, 3),
        )
        last = m.last_cycle_finished.timestamp() if m.last_cycle_finished else 0
        yield GaugeMetricFamily(
            PREFIX + "last_cycle_timestamp_seconds",
            "Unix time the last cycle finished; 0 before the first.",
            value=round(last),
        )
        errors = CounterMetricFamily(
            PREFIX + "api_errors", "Errors talking to Bitcart, by kind.", labels=["kind"]
        )
        for kind, n in sorted(m.errors.items()):
            errors.add_metric([kind], n)
        yield errors
        payments = CounterMetricFamily(
            PREFIX + "payments", "Lightning payments, by outcome.", labels=["outcome"]
        )
        for outcome, n in sorted(m.payments.items()):
            payments.add_metric([outcome], n)
        yield payments
        for name, attr, help_text in WALLET_GAUGES:
            gauge = GaugeMetricFamily(PREFIX + name, help_text, labels=["wallet"])
            for wallet, g in sorted(m.wallets.items()):
                gauge.add_metric([wallet], getattr(g, attr))
            yield gauge
        channels = GaugeMetricFamily(
            PREFIX + "channels",
            "Lightning channels of a managed wallet, by state.",
            labels=["wallet", "state"],
        )
        for wallet, by_state in sorted(m.channels.items()):
            # Every known state, 0 included, so that a rule can compare without absent().
            states = [s.value for s in ChannelState]
            states += sorted(set(by_state) - set(states))
            for state in states:
                channels.add_metric([wallet, state], by_state.get(state, 0))
        yield channels
        reachable = GaugeMetricFamily(
            PREFIX + "bitcart_reachable",
            "1 if the last cycle could read this Bitcart backend (index in api_tokens), else 0.",
            labels=["backend"],
        )
        for backend, ok in sorted(m.backends_reachable.items()):
            reachable.add_metric([str(backend)], 1 if ok else 0)
        yield reachable
        for name, (help_text, labels) in MONEY_COUNTERS.items():
            counter = CounterMetricFamily(PREFIX + name, help_text, labels=list(labels))
            for key, value in sorted(m.money.get(name, {}).items()):
                counter.add_metric(list(key), value)
            yield counter
