"""Hand-built snapshots for the pure decision tests."""

from __future__ import annotations

from itertools import count

from liquidityhelper import common_functions as cf
from liquidityhelper.config import Settings, load_settings
from liquidityhelper.snapshot import WalletSnapshot
from liquidityhelper.wallet.base import Balance, Channel, ChannelState, LightningMode, WalletInfo

TRAMPOLINE = "02" + "aa" * 32
OTHER = "03" + "bb" * 32
_points = count()


def settings(**overrides: object) -> Settings:
    """Defaults, with a cashout address unless a test says ``cashout_lightning_address=None``."""
    overrides.setdefault("cashout_lightning_address", "merchant@127.0.0.1")
    return load_settings(**overrides)


def channel(
    capacity: int = 1_000_000,
    *,
    local: int | None = None,
    remote: int = 0,
    state: ChannelState = ChannelState.OPEN,
    peer: str = TRAMPOLINE,
    online: bool = True,
) -> Channel:
    reserve = cf.channel_reserve_sat(capacity)
    if local is None:
        local = capacity - remote - cf.funder_unspendable_sat()
    return Channel(
        channel_point=f"{next(_points):064x}:0",
        state=state,
        raw_state=state.value.upper(),
        peer_pubkey=peer,
        peer_online=online,
        capacity_sat=capacity,
        local_sat=local,
        remote_sat=remote,
        local_reserve_sat=reserve,
        remote_reserve_sat=reserve,
    )


def wallet_snapshot(
    *,
    confirmed: int = 0,
    unconfirmed: int = 0,
    channels: tuple[Channel, ...] = (),
    fee_rate: int | None = 2,
    mode: LightningMode = LightningMode.TRAMPOLINE,
    stores: tuple[str, ...] = ("store1",),
    wallet_id: str = "w1",
) -> WalletSnapshot:
    return WalletSnapshot(
        backend_index=0,
        wallet=WalletInfo(wallet_id, "liquidityhelper", "btc", True),
        store_ids=stores,
        balance=Balance(confirmed, unconfirmed),
        channels=channels,
        fee_rate=fee_rate,
        mode=mode,
        trampolines=frozenset({TRAMPOLINE}),
    )
