"""Errors raised inside the model, shaped like the daemon's JSON-RPC errors."""

from __future__ import annotations

from liquidityhelper.simulator.spec import error_code


class RpcError(Exception):
    """What the daemon would answer: ``{"error": {"code", "message"}}`` with HTTP 200.

    ``message`` is the last traceback line as Bitcart formats it (``"module.Class: text"``);
    the code comes from the spec's text map unless given.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        self.message = message
        self.code = code if code is not None else error_code(message)
        super().__init__(f"{self.code}: {message}")


class PeerTimeout(RpcError):
    """Electrum gave up waiting for the peer: ``-32603 TimeoutError``, about 20 s in."""

    def __init__(self) -> None:
        super().__init__("TimeoutError")


def electrum(exc_path: str, text: str, code: int | None = None) -> RpcError:
    """An Electrum exception as the daemon reports it, e.g. ``electrum.util.NotEnoughFunds``."""
    return RpcError(f"{exc_path}: {text}" if text else exc_path, code)


def insufficient_funds() -> RpcError:
    return electrum("electrum.util.NotEnoughFunds", "Insufficient funds")


def no_lightning() -> RpcError:
    return electrum("Exception", "Lightning not supported in this wallet type")


class SimError(Exception):
    """A control-API call that cannot be done (unknown id, no inbound liquidity, ...)."""
