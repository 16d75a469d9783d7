"""The simulator's controls the merchant's year needs: funding txs that pay for the coins they
spend (``SimConfig.coin_selection``), when a restarted peer reads GOOD again, and our own node
down meaning no peer reaches it."""

from __future__ import annotations

import pytest

from liquidityhelper.simulator import SimConfig, SimError, Simulator
from liquidityhelper.simulator.model import funding_vbytes


async def wallet_with_coins(sim: Simulator, coins: list[int]) -> str:
    token = sim.create_user()
    wallet_id = sim.create_wallet(token)
    for sats in coins:
        sim.fund_wallet(wallet_id, sats)
    return wallet_id


def funding_tx(sim: Simulator, wallet_id: str) -> tuple[int, int]:
    """(amount, fee) of the wallet's funding transaction."""
    dw = sim.model.daemon_wallet(sim.wallet_key(wallet_id))
    [tx] = [t for t in dw.txs if t.kind == "funding"]
    assert tx.fee_sat is not None
    return -tx.amount_sat, tx.fee_sat


def test_funding_sizes_follow_electrum() -> None:
    # BOLT 3 weights: one p2wpkh input with change is 153 vB, each more input 68 more.
    assert funding_vbytes(1, change=True) == 153
    assert funding_vbytes(2, change=True) == 221
    assert funding_vbytes(40, change=False) - funding_vbytes(39, change=False) == 68


async def test_one_big_coin_pays_a_one_input_funding_tx() -> None:
    async with Simulator(seed=3, config=SimConfig(coin_selection=True)) as sim:
        wallet_id = await wallet_with_coins(sim, [5_000, 1_000_000, 7_000])
        peer = sim.trampolines()[0]
        sim.model.ln.open_channel(
            sim.model.daemon_wallet(sim.wallet_key(wallet_id)), peer.pubkey, "0.002"
        )
        spent, fee = funding_tx(sim, wallet_id)
        assert fee == 153 * 5  # the single big coin: no small one added
        assert spent == 200_000 + fee
        coins = sorted(
            c.amount_sat for c in sim.model.daemon_wallet(sim.wallet_key(wallet_id)).coins
        )
        assert coins == [5_000, 7_000, 1_000_000 - 200_000 - fee]  # change is a new coin


async def test_many_small_coins_make_a_big_funding_tx_or_none() -> None:
    async with Simulator(seed=3, config=SimConfig(coin_selection=True)) as sim:
        wallet_id = await wallet_with_coins(sim, [5_000] * 50)  # 250,000 sats
        dw = sim.model.daemon_wallet(sim.wallet_key(wallet_id))
        peer = sim.trampolines()[0]
        sim.set_fee_rate(10)
        # 220,000 sats would need 52 coins (5,000 n >= 220,000 + 10 sat/vB x the size).
        with pytest.raises(Exception, match="Insufficient funds"):
            sim.model.ln.open_channel(dw, peer.pubkey, "0.0022")
        # 200,000 sats take 47 coins: a 3,281-vB funding tx, 32,810 sats at 10 sat/vB, 15
        # times the 2,210 sats of the two-input tx a plan assumes.
        sim.model.ln.open_channel(dw, peer.pubkey, "0.002")
        spent, fee = funding_tx(sim, wallet_id)
        assert fee == funding_vbytes(47, change=True) * 10 == 32_810
        assert spent == 200_000 + fee
        assert sorted(c.amount_sat for c in dw.coins) == [5_000 * 47 - spent] + [5_000] * 3


async def test_a_restarted_peer_reads_good_after_electrums_backoff() -> None:
    now = 1_800_000_000.0
    async with Simulator(seed=3, clock=lambda: now) as sim:
        wallet_id = await wallet_with_coins(sim, [1_000_000])
        peer = sim.trampolines()[0]
        point = sim.open_channel_direct(wallet_id, peer.pubkey, 400_000)
        assert sim.peer_good_at(peer.pubkey) is None  # never lost
        sim.restart_peer(peer.pubkey, 250)
        good_at = sim.peer_good_at(peer.pubkey)
        # Retries 1 s after it left, then after 8, 16, 32, 64, 128, 256 s: the first one it is
        # back for is 505 s in; reestablishing takes 0.5 s more.
        assert good_at == now + 505 + 0.5
        assert sim.peer_state(point) == "DISCONNECTED"
        other = sim.trampolines()[1].pubkey
        sim.set_node_online(other, False)
        assert sim.peer_good_at(other) is None  # away until told
        with pytest.raises(SimError):
            sim.peer_good_at("02" + "00" * 32)


async def test_our_node_down_reaches_no_peer() -> None:
    async with Simulator(seed=3) as sim:
        wallet_id = await wallet_with_coins(sim, [1_000_000])
        peer = sim.trampolines()[0]
        point = sim.open_channel_direct(wallet_id, peer.pubkey, 400_000, local_sat=200_000)
        assert sim.peer_state(point) == "GOOD"
        await sim.set_daemon_down(True)
        assert sim.peer_state(point) == "DISCONNECTED"  # a customer's payment cannot land
        await sim.restart_daemon()
        assert sim.peer_state(point) == "DISCONNECTED"  # reconnecting


async def test_confirmed_coins_first_then_unconfirmed_ones_too() -> None:
    """Electrum's ``get_spendable_coins`` takes unconfirmed coins (``confirmed_only`` is off by
    default) and its chooser tries the confirmed ones alone first."""
    async with Simulator(seed=3, config=SimConfig(coin_selection=True)) as sim:
        wallet_id = await wallet_with_coins(sim, [150_000, 150_000])
        sim.fund_wallet(wallet_id, 900_000, confirmed=False)
        dw = sim.model.daemon_wallet(sim.wallet_key(wallet_id))
        peer = sim.trampolines()[0]
        sim.model.ln.open_channel(dw, peer.pubkey, "0.002")  # the two confirmed coins cover it
        spent, fee = funding_tx(sim, wallet_id)
        assert fee == 221 * 5 and spent == 200_000 + fee
        assert 900_000 in [c.amount_sat for c in dw.coins]
    async with Simulator(seed=3, config=SimConfig(coin_selection=True)) as sim:
        wallet_id = await wallet_with_coins(sim, [50_000])
        sim.fund_wallet(wallet_id, 900_000, confirmed=False)
        dw = sim.model.daemon_wallet(sim.wallet_key(wallet_id))
        peer = sim.trampolines()[0]
        # Too little confirmed: all of it plus unconfirmed ones, then strip_unneeded keeps
        # the largest that cover it (the unconfirmed coin alone).
        sim.model.ln.open_channel(dw, peer.pubkey, "0.002")
        spent, fee = funding_tx(sim, wallet_id)
        assert fee == 153 * 5 and spent == 200_000 + fee
        assert sorted(c.amount_sat for c in dw.coins) == [50_000, 900_000 - 200_000 - fee]
