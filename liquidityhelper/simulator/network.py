"""The Lightning network around the simulated wallets: a few public nodes, some trampolines."""

from __future__ import annotations

import random
from typing import Any

from liquidityhelper.simulator.entities import NetworkNode
from liquidityhelper.simulator.ids import pubkey_hex, sha256

# Stock Electrum as a peer (lnutil.MIN_FUNDING_SAT, config lightning_max_funding_sat).
ELECTRUM_MIN_FUNDING_SAT = 200_000
MAX_FUNDING_SAT = 16_777_215  # Electrum's default and LND's maxchansize without wumbo
LND_MIN_CHANNEL_SAT = 20_000  # LND's default minchansize
# What a trampoline asks for forwarding: with Electrum's fee levels a typical payment then
# pays about 1,000-3,000 msat, as observed against real trampolines.
TRAMPOLINE_FEE_BASE_MSAT = 1_000
TRAMPOLINE_FEE_PPM = 100

_ALIASES = [
    "ACINQ-sim",
    "Electrum-trampoline-sim",
    "hodlister-sim",
    "Boltz-sim",
    "OpenNode-sim",
    "Bitfinex-sim",
    "Strike-sim",
    "Kraken-sim",
    "River-sim",
    "WalletOfSatoshi-sim",
    "LNBig-sim",
    "Voltage-sim",
    "Breez-sim",
    "Zeus-sim",
    "Blocktank-sim",
    "Amboss-sim",
]


def generate_nodes(rng: random.Random, n_nodes: int, n_trampolines: int) -> list[NetworkNode]:
    """``n_nodes`` nodes, the first ``n_trampolines`` of them trampolines, all from ``rng``.

    Trampolines run stock Electrum: they ignore channels under 200k sat (the opener times
    out) and take a small forwarding fee. The others answer like LND and differ the way
    real peers do: a few ask for bigger channels, one refuses new channels, fees vary.
    """
    nodes: list[NetworkNode] = []
    for i in range(n_nodes):
        secret = sha256(b"netnode" + rng.getrandbits(256).to_bytes(32, "big"))
        alias = _ALIASES[i] if i < len(_ALIASES) else f"node-{i:02d}-sim"
        node = NetworkNode(
            pubkey=pubkey_hex(secret),
            alias=alias,
            host=f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            port=9735 if rng.random() < 0.8 else rng.choice([9740, 9736, 26658]),
            trampoline=i < n_trampolines,
            fee_base_msat=rng.choice([0, 1_000, 1_000, 2_000]),
            fee_ppm=rng.choice([100, 500, 1_000, 1_000, 2_500]),
        )
        if i < n_trampolines:
            # Set after the draws above, so a seed still yields the same keys and hosts.
            node.kind = "electrum"
            node.min_channel_sat = ELECTRUM_MIN_FUNDING_SAT
            node.max_channel_sat = MAX_FUNDING_SAT
            node.fee_base_msat = TRAMPOLINE_FEE_BASE_MSAT
            node.fee_ppm = TRAMPOLINE_FEE_PPM
        else:
            node.min_channel_sat = LND_MIN_CHANNEL_SAT
            node.max_channel_sat = MAX_FUNDING_SAT
            roll = rng.random()
            if roll < 0.2:
                node.min_channel_sat = 1_000_000
            elif roll < 0.3:
                node.accepts_channels = False
                node.refusal = "Channel opening is disabled"
        nodes.append(node)
    return nodes


def nodes_json(nodes: list[NetworkNode]) -> dict[str, Any]:
    """The shape of ``shared/data/seed_nodes.json``, to seed a node database."""
    return {
        "about": "Nodes of the liquidityhelper simulator's Lightning network (generated).",
        "nodes": [
            {
                "pubkey": n.pubkey,
                "address": n.address,
                "alias": n.alias,
                "trampoline": n.trampoline,
            }
            for n in nodes
        ],
    }
