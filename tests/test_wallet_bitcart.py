"""End-to-end: the Bitcart adapter against the simulated Bitcart (``liquidityhelper.simulator``).

Everything below goes through :class:`BitcartWallet` only (REST plus daemon JSON-RPC over
127.0.0.1); the simulator's control API only plays the outside world: the chain (funding,
mining) and a lightning-address server that issues the invoice we pay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from liquidityhelper.simulator import Simulator
from liquidityhelper.wallet.base import (
    ChannelState,
    ChannelsUnavailableError,
    LightningMode,
    PaymentStatus,
)
from liquidityhelper.wallet.bitcart import BitcartWallet


@dataclass
class World:
    sim: Simulator
    wallet: BitcartWallet
    client: httpx.AsyncClient
    token: str


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with Simulator(seed=7) as sim, httpx.AsyncClient() as client:
        token = sim.create_user()
        wallet = BitcartWallet(
            sim.api_url,
            token,
            daemon_url=sim.rpc_url,
            daemon_user=sim.rpc_user,
            daemon_password=sim.rpc_password,
            http_client=client,
            network="regtest",
            timeout_seconds=10,
            pay_timeout_seconds=20,
            retry_attempts=2,
            retry_wait_seconds=0,
            retry_wait_max_seconds=0,
        )
        yield World(sim, wallet, client, token)


async def invoice_from_lightning_address(world: World, amount_msat: int) -> str:
    """A BOLT11 from the simulated lightning-address server (LNURL-pay, two GETs)."""
    user, domain = world.sim.add_lightning_address("operator").split("@")
    first = await world.client.get(f"http://{domain}/.well-known/lnurlp/{user}")
    callback = first.json()["callback"]
    second = await world.client.get(callback, params={"amount": amount_msat})
    bolt11: str = second.json()["pr"]
    return bolt11


async def test_channel_open_and_payment_end_to_end(world: World) -> None:
    sim, wallet = world.sim, world.wallet
    store_id = sim.create_store(world.token, "Shop", default_currency="BTC")

    # A store with a liquidityhelper wallet, created and attached through the adapter.
    info = await wallet.create_lightning_wallet("liquidityhelper", store_id)
    assert info.lightning_enabled and info.key
    (store,) = [s for s in await wallet.list_stores() if s.id == store_id]
    assert info.id in store.wallet_ids
    assert await wallet.node_id(info.id) == sim.node_id(info.id)
    assert await wallet.lightning_mode(info.id) is LightningMode.TRAMPOLINE

    # Fund it on chain.
    assert (await wallet.deposit_address(info.id)).startswith("bcrt1")
    sim.fund_wallet(info.id, 1_000_000)
    await sim.mine(1)
    assert (await wallet.balance(info.id)).confirmed_sat == 1_000_000
    assert await wallet.fee_rate(info.id) >= 1

    # Open a channel to a trampoline (trampoline mode can only send through those).
    peer = sim.trampolines()[0]
    point = await wallet.open_channel(info.id, f"{peer.pubkey}@{peer.address}", 300_000)
    (opening,) = await wallet.channels(info.id)
    assert opening.channel_point == point and opening.state is ChannelState.OPENING
    assert opening.peer_pubkey == peer.pubkey

    await sim.mine(sim.model.config.channel_min_depth)
    (channel,) = await wallet.channels(info.id)
    assert channel.state is ChannelState.OPEN and channel.is_live
    assert channel.capacity_sat == 300_000

    # Pay an invoice, then find the payment by its hash as a restarted daemon would.
    bolt11 = await invoice_from_lightning_address(world, 50_000_000)
    decoded = await wallet.decode_invoice(info.id, bolt11)
    assert decoded.amount_msat == 50_000_000 and decoded.network == "bcrt"
    paid = await wallet.pay_invoice(info.id, bolt11)
    assert paid.status is PaymentStatus.SUCCEEDED, paid.detail
    assert paid.payment_hash == decoded.payment_hash and paid.preimage

    found = await wallet.lookup_payment(info.id, paid.payment_hash)
    assert found.status is PaymentStatus.SUCCEEDED and found.preimage == paid.preimage
    history = await wallet.lightning_history(info.id)
    (sent,) = [h for h in history if h.payment_hash == paid.payment_hash]
    assert sent.amount_msat == -50_000_000 and sent.fee_msat >= 0
    (after,) = await wallet.channels(info.id)
    assert after.local_sat < channel.local_sat


async def test_channels_unavailable_when_the_daemon_is_down(world: World) -> None:
    sim, wallet = world.sim, world.wallet
    store_id = sim.create_store(world.token, "Shop", default_currency="BTC")
    wallet_id = sim.create_wallet(world.token, store_ids=[store_id])
    peer = sim.trampolines()[0]
    sim.open_channel_direct(wallet_id, peer.pubkey, 400_000)
    assert len(await wallet.channels(wallet_id)) == 1

    await sim.set_daemon_down()  # REST now answers [] for the channels
    with pytest.raises(ChannelsUnavailableError):
        await wallet.channels(wallet_id)
    await sim.set_daemon_down(False)
    assert len(await wallet.channels(wallet_id)) == 1
