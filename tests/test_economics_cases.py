"""Issue 12's cases through the real daemon against the simulator: the loop plans only
liquidity it can create, and blames only who is at fault."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from liquidityhelper.config import ConfigError, load_settings
from liquidityhelper.journal import Kind
from tests.scenario import scenario
from tests.test_scenarios import fund_and_open


async def test_no_cashout_address_opens_nothing_and_asks_nothing(tmp_path: Path) -> None:
    """Case 1: nothing would push a new channel's balance out, so it would give no inbound;
    the old loop opened 8 channels in 8 cycles (gossip) or asked three top-ups."""
    async with scenario(tmp_path, cashout=False) as sc:
        sc.sim.fund_wallet(sc.wallet_id, 2_000_000)
        await sc.sim.mine(1)
        for _ in range(4):
            sc.clock.advance(minutes=5)
            await sc.cycle()
            await sc.sim.mine(3)
        assert sc.daemon.journal.entries(sc.wallet_id, Kind.CHANNEL_OPEN) == []
        assert await sc.runtime.backends[0].list_store_invoices(sc.store_id) == []


def test_an_unreachable_per_channel_goal_is_refused_naming_both_keys() -> None:
    """Case 4: 5,000,000 per channel with 5,000,000-sat channels kept opening 5M channels."""
    with pytest.raises(ConfigError) as err:
        load_settings(min_inbound_liquidity_per_channel=5_000_000, max_channel_size=5_000_000)
    text = str(err.value)
    assert "min_inbound_liquidity_per_channel" in text and "max_channel_size" in text
    assert len(text.splitlines()) == 1


async def test_every_peer_offline_at_once_is_our_outage(tmp_path: Path) -> None:
    """Case 5: 12 days of 'our node offline 3 h in every 5' closed and blacklisted both good
    trampolines; an hour in which every peer is offline must not cost them uptime."""
    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)
        await sc.cycle()
        peers = {c.peer_pubkey for c in sc.sim.channels(sc.wallet_id)}
        await sc.sim.set_daemon_down(True)  # our own node: the channels read DISCONNECTED
        await sc.sim.restart_daemon()  # back, but every peer still reconnecting
        for _ in range(3):
            sc.clock.advance(seconds=1)
            await sc.cycle()
        window, now = timedelta(days=7), sc.clock.now
        for peer in peers:
            stats = sc.runtime.nodes.uptime_stats(peer, window, now)
            assert stats.samples == stats.online, (peer, stats)


async def test_no_top_up_while_no_peer_can_take_a_channel(tmp_path: Path) -> None:
    """Case 7: on regtest or a fresh install with an empty node database a top-up could never
    become a channel."""
    async with scenario(tmp_path) as sc:
        sc.runtime.nodes.conn.execute("DELETE FROM nodes")
        sc.runtime.nodes.conn.commit()
        await sc.cycle()
        assert await sc.runtime.backends[0].list_store_invoices(sc.store_id) == []


async def test_top_ups_are_priced_at_the_ceiling_when_the_estimate_is_above_it(
    tmp_path: Path,
) -> None:
    """Case 7: at 60 sat/vB with a 30 ceiling it asked 29 % more than the ceiling needs."""
    async with scenario(tmp_path, max_onchain_fee_rate=30) as sc:
        sc.sim.set_fee_rate(60)
        await sc.cycle()
        at_60 = sc.daemon.journal.entries(sc.wallet_id, Kind.TOPUP_INVOICE)[0].amount_sat
    async with scenario(tmp_path / "b", max_onchain_fee_rate=30) as sc:
        sc.sim.set_fee_rate(30)
        await sc.cycle()
        at_30 = sc.daemon.journal.entries(sc.wallet_id, Kind.TOPUP_INVOICE)[0].amount_sat
    assert at_60 == at_30


async def test_an_open_our_coins_cannot_pay_waits_until_the_balance_moves(
    tmp_path: Path,
) -> None:
    """The year tried the same unpayable open 648 times; each one stalls a cycle."""
    from liquidityhelper.wallet.base import InsufficientFundsError

    async with scenario(tmp_path) as sc:
        await sc.cycle()
        sc.sim.fund_wallet(sc.wallet_id, 2_000_000)
        await sc.sim.mine(1)
        backend = sc.runtime.backends[0]
        real_open = backend.open_channel
        tries: list[int] = []

        async def short_open(wallet_id: str, conn: str, amount_sat: int) -> str:
            tries.append(amount_sat)
            raise InsufficientFundsError("Insufficient funds")

        backend.open_channel = short_open  # type: ignore[method-assign]
        for _ in range(3):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        assert len(tries) == 2  # the two opens of the first attempt, then nothing
        backend.open_channel = real_open  # type: ignore[method-assign]
        sc.sim.fund_wallet(sc.wallet_id, 10_000)  # the balance moves: try again
        await sc.sim.mine(1)
        sc.clock.advance(minutes=5)
        await sc.cycle()
        opened = [
            e
            for e in sc.daemon.journal.entries(sc.wallet_id, Kind.CHANNEL_OPEN)
            if e.status.value == "succeeded"
        ]
        assert len(opened) == 2


async def test_a_peer_whose_channels_are_all_closed_is_a_peer_again(tmp_path: Path) -> None:
    """The year: a peer whose only channel with us was closed still counted as one the wallet
    'already has', so 1.4M spare sats found no peer while two trampolines were free."""
    from liquidityhelper.simulator import ChanState

    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)
        await sc.cycle()
        first = sc.sim.channels(sc.wallet_id)[0]
        model = sc.sim.model
        model.ln.close_channel(
            model.daemon_wallet(sc.sim.wallet_key(sc.wallet_id)), first.channel_point
        )
        await sc.sim.mine(6)
        assert sc.sim.channels(sc.wallet_id)[0].state is ChanState.CLOSED
        snapshot = await sc.daemon.fetch_snapshot()
        offered = {c.pubkey for c in sc.daemon.candidates(snapshot.wallets[sc.wallet_id], 3)}
        assert first.peer_pubkey in offered
        still_open = {c.peer_pubkey for c in sc.sim.channels(sc.wallet_id)[1:]}
        assert not offered & still_open


async def test_hours_our_node_was_down_do_not_age_the_peers_grace(tmp_path: Path) -> None:
    """The year, day 5: our node was down for hours and the first cycle after it came back
    landed while Electrum was still reconnecting. The grace period had been counted from the
    peers' last online sample, before our outage, so no channel counted: a 379,180-sat top-up
    was invoiced with two channels there."""
    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)
        for _ in range(3):  # cashouts under way, the goal met
            sc.clock.advance(minutes=5)
            await sc.cycle()
        invoices = len(await sc.runtime.backends[0].list_store_invoices(sc.store_id))
        opens = len(sc.daemon.journal.entries(sc.wallet_id, Kind.CHANNEL_OPEN))
        await sc.sim.set_daemon_down(True)
        for _ in range(4):  # hours without a reading
            sc.clock.advance(hours=1)
            await sc.cycle()
        await sc.sim.restart_daemon()
        sc.clock.advance(seconds=1)  # every peer still reconnecting
        await sc.cycle()
        assert len(await sc.runtime.backends[0].list_store_invoices(sc.store_id)) == invoices
        assert len(sc.daemon.journal.entries(sc.wallet_id, Kind.CHANNEL_OPEN)) == opens


@pytest.mark.parametrize("risen", [14, 18])
async def test_channels_cashed_out_on_a_quiet_day_still_receive_when_fees_rise(
    tmp_path: Path, risen: int
) -> None:
    """The year, days 85-88: cashouts at 1-5 sat/vB left our side of each channel at
    Electrum's fee-spike buffer; the estimate rose (to 28 sat/vB there, 14 or 18 here), we
    (the funder) could no longer pay an incoming HTLC's commitment fee, the peers could send
    only sub-dust amounts while the daemon counted 366,329 sats of inbound now, and customers'
    payments failed. At 14 the old cashouts fail; at 18 so do cashouts that only count what
    a channel sends at its drifted feerate, without the receiving floor."""
    from liquidityhelper.simulator import ChanState

    async with scenario(tmp_path, max_onchain_fee_rate=30) as sc:
        sc.sim.set_fee_rate(2)
        await fund_and_open(sc)
        for _ in range(4):  # the cashouts push out all they may
            sc.clock.advance(minutes=5)
            await sc.cycle()
        assert sc.daemon.journal.entries(sc.wallet_id, Kind.CASHOUT)
        sc.sim.set_fee_rate(risen)
        await sc.sim.mine(1)  # Electrum raises the channels' feerate
        sc.clock.advance(minutes=5)
        await sc.cycle()
        chans = [c for c in sc.sim.channels(sc.wallet_id) if c.state is ChanState.OPEN]
        can = [sc.sim.receivable_msat(c.channel_point) // 1000 for c in chans]
        assert len(can) == 2 and min(can) > 150_000, can
        gauge = sc.daemon.metrics.wallets[sc.wallet_id].inbound_now_sat
        assert gauge <= sum(can), (gauge, can)


async def test_many_small_coins_price_the_funding_tx_and_the_top_up(tmp_path: Path) -> None:
    """Case 5 and the year: funding was priced for two inputs while the wallet held dozens of
    customers' small coins (39 coins made a 2,737-vB funding tx): opens the coins could not
    pay were tried, failed and blamed on our funds, and the top-up asked too little."""
    from liquidityhelper import common_functions as cf
    from liquidityhelper.simulator import SimConfig

    async with scenario(tmp_path, sim_config=SimConfig(coin_selection=True)) as sc:
        sc.sim.set_fee_rate(20)
        await sc.cycle()  # the plan: two 200,000-sat channels
        [asked] = sc.daemon.journal.entries(sc.wallet_id, Kind.TOPUP_INVOICE)
        plan = [200_000, 200_000]
        enough_for_two_inputs = cf.plan_cost(plan, 20)
        coins = 60
        for _ in range(coins):  # customers paid on-chain, in small coins
            sc.sim.fund_wallet(sc.wallet_id, enough_for_two_inputs // coins + 1)
        await sc.sim.mine(1)
        for _ in range(2):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        opens = sc.daemon.journal.entries(sc.wallet_id, Kind.CHANNEL_OPEN)
        assert [e for e in opens if e.status.value != "succeeded"] == [], "an unpayable open"
        assert opens == []
        # The top-up now shown is priced from the coins: with it, both funding txs are payable.
        state = sc.daemon.journal.get_state(f"topup:{sc.store_id}")
        assert isinstance(state, dict) and state.get("invoice_id") != asked.reference
        [inv] = [
            i
            for i in await sc.runtime.backends[0].list_store_invoices(sc.store_id)
            if i.status == "pending"
        ]
        topup = int(inv.metadata["amount_sat"])
        sc.sim.customer_pay(inv.id, lightning=False)
        await sc.sim.mine(1)
        for _ in range(2):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        opens = sc.daemon.journal.entries(sc.wallet_id, Kind.CHANNEL_OPEN)
        assert [e.status.value for e in opens] == ["succeeded", "succeeded"], topup


async def test_no_top_up_for_channel_sizes_every_peer_refused(tmp_path: Path) -> None:
    """benchmarks/economics.py: with 100,000-sat channels in trampoline mode (stock Electrum
    trampolines take 200,000 at least) top-ups were asked for channels the peers ignore. Once
    every peer on offer refused the sizes allowed, nothing is planned, opened or invoiced, and
    no peer is asked twice below what it taught us."""
    small = {
        "min_channel_size": 100_000,
        "max_channel_size": 100_000,
        "min_inbound_liquidity": 100_000,
        "min_inbound_liquidity_per_channel": 0,
    }
    async with scenario(tmp_path, **small) as sc:
        sc.sim.fund_wallet(sc.wallet_id, 1_000_000)
        await sc.sim.mine(1)
        for _ in range(4):  # two peers refuse in a cycle, the third in the next
            sc.clock.advance(minutes=5)
            await sc.cycle()
        opens = sc.daemon.journal.entries(sc.wallet_id, Kind.CHANNEL_OPEN)
        assert opens and all(e.status.value == "failed" for e in opens)
        assert len({e.destination for e in opens}) == len(opens), "a peer asked twice"
        plan = sc.daemon.plan((await sc.daemon.fetch_snapshot()).wallets[sc.wallet_id])
        assert plan.peers_refuse_sizes, plan
    # A second wallet of the same operator, unfunded, after those refusals: no top-up.
    async with scenario(tmp_path / "b", **small) as sc:
        for peer in sc.sim.trampolines():
            sc.daemon.journal.set_state(f"peer_min:{peer.pubkey}", 200_000, now=sc.clock.now)
        await sc.cycle()
        assert await sc.runtime.backends[0].list_store_invoices(sc.store_id) == []
        assert sc.daemon.journal.entries(sc.wallet_id, Kind.CHANNEL_OPEN) == []


async def test_the_coins_are_read_only_when_an_open_could_happen(tmp_path: Path) -> None:
    """Pricing from coins costs a daemon call: a wallet whose spare funds cannot move now (fee
    rate above the ceiling) makes none, and one that can makes one per cycle."""
    async with scenario(tmp_path) as sc:
        await fund_and_open(sc)
        for _ in range(3):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        backend = sc.runtime.backends[0]
        real, calls = backend.coins, []

        async def coins(wallet_id: str) -> list[tuple[int, int]]:
            calls.append(wallet_id)
            return await real(wallet_id)

        backend.coins = coins  # type: ignore[method-assign]
        sc.sim.fund_wallet(sc.wallet_id, 1_000_000)  # spare funds
        sc.sim.set_fee_rate(60)  # above the 50 sat/vB ceiling: nothing can open
        await sc.sim.mine(1)
        for _ in range(2):
            sc.clock.advance(minutes=5)
            await sc.cycle()
        assert calls == []
        sc.sim.set_fee_rate(5)
        sc.clock.advance(minutes=5)
        await sc.cycle()
        assert calls == [sc.wallet_id]
        opens = sc.daemon.journal.entries(sc.wallet_id, Kind.CHANNEL_OPEN)
        assert opens[-1].status.value == "succeeded" and len(opens) == 3


async def test_funding_is_priced_from_confirmed_coins(tmp_path: Path) -> None:
    """Electrum spends confirmed coins first and the budget counts only confirmed sats: a big
    coin still in the mempool must not make many small confirmed ones look like one input."""
    from liquidityhelper.simulator import SimConfig

    async with scenario(tmp_path, sim_config=SimConfig(coin_selection=True)) as sc:
        for _ in range(5):
            sc.sim.fund_wallet(sc.wallet_id, 10_000)
        await sc.sim.mine(1)
        sc.sim.fund_wallet(sc.wallet_id, 900_000, confirmed=False)
        snapshot = await sc.daemon.fetch_snapshot()
        snap = await sc.daemon.with_coins(snapshot, snapshot.wallets[sc.wallet_id])
        assert snap.coins == (10_000,) * 5
