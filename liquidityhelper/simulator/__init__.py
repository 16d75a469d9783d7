"""A Bitcart look-alike for tests, the demo and benchmarks.

It serves, on 127.0.0.1, the merchants REST API, the BTC daemon's JSON-RPC and
lightning-address (LNURL-pay) servers, over a seeded model of a chain and a Lightning
network. See :class:`Simulator` for the control API and ``python -m liquidityhelper.simulator``
for a standalone instance.
"""

from liquidityhelper.simulator.config import ElectrumDefaults, SimConfig
from liquidityhelper.simulator.entities import ChanState
from liquidityhelper.simulator.errors import RpcError, SimError
from liquidityhelper.simulator.faults import FaultKind, FaultPlan
from liquidityhelper.simulator.lightning import PaymentFaults
from liquidityhelper.simulator.lnurl import MODES, LnurlMode, LnurlServer
from liquidityhelper.simulator.model import SimModel
from liquidityhelper.simulator.server import Simulator

__all__ = [
    "MODES",
    "ChanState",
    "ElectrumDefaults",
    "FaultKind",
    "FaultPlan",
    "LnurlMode",
    "LnurlServer",
    "PaymentFaults",
    "RpcError",
    "SimConfig",
    "SimError",
    "SimModel",
    "Simulator",
]
