"""Settings of the simulated Bitcart, its daemon and the Lightning network behind them.

Defaults follow the real system (Bitcart 0.10.3, Electrum 4.6 as Bitcart runs it); the few
that exist only to keep a simulation short (confirmations, CSV delay) say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Electrum's hrp ("bc" mainnet, "tb" testnet, "tbs" signet, "bcrt" regtest) per network name.
NETWORK_HRP: dict[str, str] = {
    "mainnet": "bc",
    "testnet": "tb",
    "signet": "tbs",
    "regtest": "bcrt",
}


@dataclass(slots=True)
class ElectrumDefaults:
    """Daemon-wide ``setconfig`` values as Electrum starts with them (lost on restart)."""

    lightning_payment_fee_max_millionths: int = 10_000
    lightning_payment_fee_cutoff_msat: int = 10_000
    use_gossip: bool = False
    lightning_listen: str = ""
    lightning_max_funding_sat: int = 16_777_215

    def as_dict(self) -> dict[str, object]:
        return {
            "lightning_payment_fee_max_millionths": self.lightning_payment_fee_max_millionths,
            "lightning_payment_fee_cutoff_msat": self.lightning_payment_fee_cutoff_msat,
            "use_gossip": self.use_gossip,
            "lightning_listen": self.lightning_listen,
            "lightning_max_funding_sat": self.lightning_max_funding_sat,
        }


@dataclass(slots=True)
class SimConfig:
    network: str = "regtest"
    lightning: bool = True  # BTC_LIGHTNING on daemon and backend
    # The server's estimate for every confirmation target Electrum asks for (getfeerate and
    # recommended_fee report 1000x, in sat/kvB). None: no estimate at all, like a fresh
    # regtest Bitcoin Core; Electrum then reads 150 sat/vB on regtest and None elsewhere.
    fee_rate_sat_vb: int | None = 5
    start_height: int = 200
    # Electrum asks 3 confirmations as acceptor; peers ask 1..6. Shorter keeps demos quick.
    channel_min_depth: int = 3
    min_funding_sat: int = 60_000  # Bitcart patches its own Electrum's 200k down to this
    funding_tx_vbytes: int = 150
    # Coins: off, every funding tx is ``funding_tx_vbytes`` whatever the wallet holds. On,
    # each payment received is one p2wpkh coin and a funding tx spends coins picked at random
    # (as Electrum's privacy coin chooser does) until they cover the channel and the fee of a
    # tx with that many inputs (68 vB each); change below the dust limit goes to the fee.
    coin_selection: bool = False
    closing_tx_vbytes: int = 170
    sweep_tx_vbytes: int = 110
    anchor_sat: int = 330  # two anchors per commitment
    dust_limit_sat: int = 546
    # Blocks our own force-close output waits (to_self_delay); real peers ask ~144.
    force_close_csv_blocks: int = 144
    # Routing fee of a network node when it does not say otherwise.
    default_fee_base_msat: int = 1_000
    default_fee_ppm: int = 1_000
    # Lightning network generated from the seed.
    n_nodes: int = 12
    n_trampolines: int = 3
    # Fiat -> BTC rates for invoices; Bitcart falls back to 1 when it cannot fetch one.
    fiat_rates: dict[str, str] = field(default_factory=dict)
    electrum: ElectrumDefaults = field(default_factory=ElectrumDefaults)
    # Electrum refuses to open a channel to a non-trampoline in trampoline mode.
    strict_trampoline_open: bool = True
    # Real seconds an open waits on a peer that never answers before it fails with
    # TimeoutError (Electrum's LN_P2P_NETWORK_TIMEOUT is 20 s; 0 keeps tests fast).
    peer_timeout_s: float = 0.0
    # Model-clock seconds of a reconnection: after a daemon restart channels read
    # DISCONNECTED this long (about 2.5 s on the real stack), then REESTABLISHING for
    # ``reestablish_s``. A peer that went away is retried 1 s after it left, then with
    # Electrum's backoff (8 s, 16 s, ... up to 300 s between attempts).
    daemon_reconnect_s: float = 2.5
    peer_retry_first_s: float = 1.0
    reestablish_s: float = 0.5
    lnurl_invoice_expiry_s: int = 600
    # Electrum 4.6 (as recorded) answers onchain_history with a list; older ones with
    # {"summary", "transactions"}. "summary" serves the older shape.
    onchain_history_format: str = "list"

    @property
    def hrp(self) -> str:
        return NETWORK_HRP.get(self.network, "bcrt")
