"""The simulator against Electrum 4.6's own arithmetic, with numbers worked out by hand.

Each test states the Electrum formula it checks and derives the expected numbers in a
comment; none of them asks the simulator's helpers for the answer. The simulator runs on a
hand-moved clock, so reconnection steps are deterministic.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from liquidityhelper.simulator import SimConfig, Simulator

# A 200,000-sat channel we fund at 20 sat/vB for every target, worked through once here:
#   opening feerate = current_target_feerate_per_kw(anchors)
#                   = max(253, max(eta(1008)=20_000, 5_000) // 4) = 5_000 sat/kw
#   once OPEN, maybe_update_fee: 5_000 + 2_500/2 = 6_250 > 5_000 -> update to
#                   int(5_000 * 1.5) = 7_500 sat/kw
#   reserve either way = max(200_000 // 100, 546) = 2_000 sat
#   sendable = available_to_spend(LOCAL), initiator LOCAL, no HTLCs, non-dust branch:
#       200_000_000 - 2_000_000                       balance - reserve
#     - 2*7_500 * (1_124 + (0 + 1 + 1) * 172)         fee spike buffer = 22_020_000
#     - 2 * 330_000                                   anchors
#     - 7_500 * 172                                   the HTLC's output = 1_290_000
#     = 174_030_000 msat (the dust branch caps at 546_000 - 1, smaller)
#   at the opening feerate instead: 198_000_000 - 10_000*1_468 - 660_000 - 5_000*172
#     = 181_800_000 msat
CAP = 200_000
FEERATE_OPENING = 5_000
FEERATE_OPEN = 7_500
SENDABLE_OPEN_MSAT = 174_030_000
SENDABLE_OPENING_MSAT = 181_800_000


class Clock:
    """The model's clock, moved by hand (starts now so invoices are fresh)."""

    def __init__(self) -> None:
        self.t = float(int(time.time()))

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[Simulator]:
    async with Simulator(seed=7, config=SimConfig(fee_rate_sat_vb=20), clock=clock) as s:
        yield s


async def rpc(sim: Simulator, method: str, *params: Any, **named: Any) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": [*params, named]}
    async with httpx.AsyncClient(auth=(sim.rpc_user, sim.rpc_password), timeout=10) as c:
        resp = await c.post(sim.rpc_url, json=body)
    return dict(resp.json())


async def result(sim: Simulator, method: str, *params: Any, **named: Any) -> Any:
    answer = await rpc(sim, method, *params, **named)
    assert "error" not in answer, answer
    return answer["result"]


def wallet(sim: Simulator, funded_sat: int = 1_000_000) -> tuple[str, str, str]:
    """(token, wallet id, wallet key) of a merchant with on-chain coins."""
    token = sim.create_user()
    wallet_id = sim.create_wallet(token)
    sim.fund_wallet(wallet_id, funded_sat)
    return token, wallet_id, sim.wallet_key(wallet_id)


def conn(sim: Simulator, index: int = 0) -> str:
    node = sim.trampolines()[index]
    return f"{node.pubkey}@{node.address}"


async def open_channel(sim: Simulator, key: str, sats: int, blocks: int = 3) -> str:
    point = await result(sim, "open_channel", conn(sim), f"{sats / 100_000_000:.8f}", xpub=key)
    await sim.mine(blocks)
    return str(point)


async def invoice(address: str, amount_msat: int) -> str:
    user, domain = address.split("@")
    async with httpx.AsyncClient(timeout=10) as c:
        pay_request = (await c.get(f"http://{domain}/.well-known/lnurlp/{user}")).json()
        answer = (await c.get(pay_request["callback"], params={"amount": amount_msat})).json()
    return str(answer["pr"])


async def pay(sim: Simulator, key: str, address: str, amount_msat: int) -> dict[str, Any]:
    return dict(await result(sim, "lnpay", await invoice(address, amount_msat), xpub=key))


async def channel_row(sim: Simulator, key: str) -> dict[str, Any]:
    (row,) = await result(sim, "list_channels", xpub=key)
    return dict(row)


# -- 1. fee estimates by target -----------------------------------------------------------------


async def test_recommended_fee_per_target_as_electrum_reads_its_estimates(sim: Simulator) -> None:
    # Estimates of 20 sat/vB for the requested targets 1008..2 (20_000 sat/kvB each).
    # eta_target_to_fee(1) = data[2] * 1.5 = 30_000; a target Electrum never requests (3)
    # misses and reads as the regtest fallback 150_000.
    fees = {t: await result(sim, "recommended_fee", t) for t in (1, 2, 3, 5, 144, 1008)}
    info = await result(sim, "getinfo")
    assert fees == {1: 30_000, 2: 20_000, 3: 150_000, 5: 20_000, 144: 20_000, 1008: 20_000}
    assert info["fee_estimates"] == {
        "1008": 20_000, "144": 20_000, "25": 20_000, "10": 20_000, "5": 20_000, "2": 20_000,
    }  # fmt: skip
    # One target changes: 2 -> 31 sat/vB, 1008 dropped (the server answered -1).
    sim.set_fee_estimates({2: 31, 1008: None})
    assert await result(sim, "recommended_fee", 1) == 46_500  # 31_000 + 31_000 // 2
    assert await result(sim, "recommended_fee", 1008) == 150_000  # missing: regtest fallback
    feerate = await result(sim, "getfeerate")
    assert (feerate["sat/kvB"], feerate["tooltip"]) == (31_000, "31. sat/vbyte")
    # Electrum's hard limits: at least 1_000, at most 1_500_000 sat/kvB.
    sim.set_fee_rate(0)
    assert await result(sim, "recommended_fee", 2) == 1_000
    sim.set_fee_rate(2_000)
    assert await result(sim, "recommended_fee", 2) == 1_500_000


async def test_mainnet_without_estimates_has_none() -> None:
    async with Simulator(seed=7, config=SimConfig(network="mainnet", fee_rate_sat_vb=20)) as s:
        assert await result(s, "recommended_fee", 2) == 20_000
        assert await result(s, "recommended_fee", 3) is None  # not requested: no estimate
        s.set_fee_rate(None)  # the server can estimate nothing
        _token, _wid, key = wallet(s)
        assert await result(s, "recommended_fee", 2) is None
        assert (await result(s, "getinfo"))["fee_estimates"] == {}
        feerate = await result(s, "getfeerate")
        assert (feerate["sat/kvB"], feerate["tooltip"]) == (None, "")
        answer = await rpc(s, "open_channel", conn(s), "0.002", xpub=key)
    assert answer["error"] == {
        "code": -32603,
        "message": "electrum.util.NoDynamicFeeEstimates: Dynamic fee estimates not available",
    }


async def test_regtest_without_estimates_uses_150_sat_per_vbyte(clock: Clock) -> None:
    config = SimConfig(fee_rate_sat_vb=None)
    async with Simulator(seed=7, config=config, clock=clock) as s:
        _token, wallet_id, key = wallet(s)
        assert [await result(s, "recommended_fee", t) for t in (1, 2, 1008)] == [150_000] * 3
        assert (await result(s, "getinfo"))["fee_estimates"] == {}
        point = await open_channel(s, key, CAP)
        (chan,) = s.channels(wallet_id)
    # Funding: 150 vB at the fallback 150 sat/vB = 22_500 sat.
    assert s.balance(wallet_id)["confirmed"] == 1_000_000 - CAP - 22_500
    # Channel: 150_000 // 4 = 37_500 sat/kw at open, 37_500 * 1.5 = 56_250 once OPEN.
    assert (chan.channel_point, chan.feerate_per_kw) == (point, 56_250)


# -- 2. the peer's minimum channel size -----------------------------------------------------------


async def test_electrum_peer_ignores_a_channel_under_200k(clock: Clock) -> None:
    config = SimConfig(fee_rate_sat_vb=20, peer_timeout_s=0.05)
    async with Simulator(seed=7, config=config, clock=clock) as s:
        token, wallet_id, key = wallet(s)
        before = s.balance(wallet_id)
        started = time.monotonic()
        small = await rpc(s, "open_channel", conn(s), "0.00199999", xpub=key)
        waited = time.monotonic() - started
        async with httpx.AsyncClient(
            base_url=s.api_url, headers={"Authorization": f"Bearer {token}"}
        ) as c:
            rest = await c.post(
                f"/wallets/{wallet_id}/channels/open",
                json={"node_id": conn(s), "amount": "0.0015"},
            )
        assert s.balance(wallet_id) == before and s.channels(wallet_id) == []
        ok = await rpc(s, "open_channel", conn(s), "0.002", xpub=key)
    # Our daemon's own minimum is Bitcart's 60k, so it sends open_channel; the peer's stock
    # Electrum raises "funding_sat too low: 199999 sat < 200000" to itself and says nothing.
    assert small["error"] == {"code": -32603, "message": "TimeoutError"}
    assert waited >= 0.05  # after the (here shortened) LN_P2P_NETWORK_TIMEOUT
    assert (rest.status_code, rest.json()) == (400, {"detail": "Failed to open channel"})
    assert "result" in ok  # 200_000 is enough


async def test_lnd_like_peer_answers_a_small_channel_with_an_error(sim: Simulator) -> None:
    _token, _wallet_id, key = wallet(sim, 3_000_000)
    lnd = next(n for n in sim.network_nodes if n.kind == "lnd" and n.accepts_channels)
    lnd.min_channel_sat = 1_000_000
    await result(sim, "setconfig", "use_gossip", True)  # may open to non-trampolines
    answer = await rpc(sim, "open_channel", f"{lnd.pubkey}@{lnd.address}", "0.005", xpub=key)
    assert answer["error"]["code"] == -32603
    assert answer["error"]["message"] == (
        "electrum.interface.GracefulDisconnect: remote peer sent error [DO NOT TRUST THIS "
        "MESSAGE]: chan size of 0.00500000 BTC is below min chan size of 0.01000000 BTC"
    )


def test_generated_trampolines_are_stock_electrum(clock: Clock) -> None:
    s = Simulator(seed=11, clock=clock)
    for node in s.trampolines():
        assert (node.kind, node.min_channel_sat) == ("electrum", 200_000)


# -- 3. channel feerate, sendable and receivable ------------------------------------------------


async def test_feerate_and_sendable_of_a_channel_we_fund(sim: Simulator) -> None:
    _token, wallet_id, key = wallet(sim)
    point = await open_channel(sim, key, CAP, blocks=0)
    (chan,) = sim.channels(wallet_id)
    assert (chan.state, chan.feerate_per_kw) == ("OPENING", FEERATE_OPENING)
    assert sim.sendable_msat(point) == SENDABLE_OPENING_MSAT
    await sim.mine(3)
    row = await channel_row(sim, key)
    # list_channels keeps Electrum's raw numbers; the update_fee bumped both ctns once.
    assert (row["state"], row["local_balance"], row["remote_balance"]) == ("OPEN", CAP, 0)
    assert (row["local_ctn"], row["remote_ctn"]) == (1, 1)
    assert chan.feerate_per_kw == FEERATE_OPEN
    assert sim.sendable_msat(point) == SENDABLE_OPEN_MSAT == 174_030_000
    assert sim.receivable_msat(point) == 0


async def test_payment_must_fit_available_to_spend_with_its_fee(sim: Simulator) -> None:
    _token, _wallet_id, key = wallet(sim)
    point = await open_channel(sim, key, CAP)
    address = sim.add_lightning_address("shop")
    # 174_030_001 msat is more than the channel can send: NoPathFound, nothing attempted.
    too_much = await pay(sim, key, address, SENDABLE_OPEN_MSAT + 1)
    # 174_000_000 fits, but not with its trampoline fee: budget 174_000_000 // 100 =
    # 1_740_000, level 1 offers 1_740_000 // 32 = 54_375, margin is only 30_000 ->
    # FeeBudgetExceeded ("not enough margin"), again nothing attempted.
    no_margin = await pay(sim, key, address, 174_000_000)
    # Exactly everything: A + (A // 100) // 32 = 174_030_000 -> A = 173_975_633, fee 54_367
    # (the trampoline asks 1_000 + A * 100 // 10**6 = 18_397, so level 1 is taken).
    everything = await pay(sim, key, address, 173_975_633)
    for failed in (too_much, no_margin):
        assert (failed["success"], failed["log"]) == (False, [])
    assert everything["success"] is True
    # What is left is only an HTLC too small for an output (Electrum's dust branch, whose
    # spike buffer counts one HTLC less): 25_970_000 - 2_000_000 - 2*7_500*(1_124 + 172)
    #   - 660_000 = 3_870_000, capped at the 546-sat dust limit: 545_999 msat.
    assert sim.sendable_msat(point) == 545_999
    # Now the peer holds 174_030_000 and sends back, as non-initiator, at most
    #   174_030_000 - 2_000_000 (its reserve) = 172_030_000 msat,
    # which we can take: our 25_970_000 - 2_000_000 reserve - 7_500*1_124 commitment fee
    #   - 7_500*172 HTLC output - 660_000 anchors = 13_590_000 >= 0.
    assert sim.receivable_msat(point) == 172_030_000
    row = await channel_row(sim, key)
    assert (row["local_balance"], row["remote_balance"]) == (25_970, 174_030)


async def test_injected_channels_get_electrums_feerate(sim: Simulator) -> None:
    _token, wallet_id, _key = wallet(sim)
    peer = sim.trampolines()[1]
    ours = sim.open_channel_direct(wallet_id, peer.pubkey, 1_000_000)
    theirs = sim.open_channel_direct(
        wallet_id, peer.pubkey, 2_000_000, local_sat=0, initiator="remote"
    )
    assert {c.feerate_per_kw for c in sim.channels(wallet_id)} == {FEERATE_OPEN}
    # Ours, 1_000_000 sat: 1_000_000_000 - 10_000_000 - 22_020_000 - 660_000 - 1_290_000.
    assert sim.sendable_msat(ours) == 966_030_000
    # Theirs, the peer funds 2_000_000 sat and pays the fees (no spike buffer for it):
    # 2_000_000_000 - 20_000_000 - 7_500*1_124 - 660_000 - 7_500*172 = 1_969_620_000.
    assert sim.receivable_msat(theirs) == 1_969_620_000
    assert sim.sendable_msat(theirs) == 0


async def test_feerate_follows_the_estimate(sim: Simulator) -> None:
    _token, wallet_id, key = wallet(sim)
    point = await open_channel(sim, key, CAP)
    (chan,) = sim.channels(wallet_id)
    # 22 sat/vB: current 5_500; 5_500 * 1.25 = 6_875 < 7_500 and 7_500 is within 20% of
    # 8_250 -> no update.
    sim.set_fee_rate(22)
    assert chan.feerate_per_kw == FEERATE_OPEN
    # 40 sat/vB: current 10_000, 12_500 > 7_500 -> 15_000.
    sim.set_fee_rate(40)
    assert chan.feerate_per_kw == 15_000
    # Back to 2 sat/vB: the 5 sat/vB floor makes it 1_250, update 1_875; 15_000 is far
    # more than 20% off -> 1_875.
    sim.set_fee_rate(2)
    assert chan.feerate_per_kw == 1_875
    # 1_875 sat/kw: 198_000_000 - 3_750*1_468 - 660_000 - 1_875*172 = 191_512_500 msat.
    assert sim.sendable_msat(point) == 191_512_500


# -- 4. reconnections ---------------------------------------------------------------------------


async def test_peer_restart_goes_disconnected_reestablishing_good(
    sim: Simulator, clock: Clock
) -> None:
    _token, _wallet_id, key = wallet(sim)
    await open_channel(sim, key, CAP)
    address = sim.add_lightning_address("shop")
    sim.restart_peer(sim.trampolines()[0].pubkey, offline_seconds=5)
    # Electrum retries 1 s after losing the peer (still away), then after 4 * 2**1 = 8 s
    # more: the attempt at +9 s finds it, reestablish takes 0.5 s.
    start, seen = clock.t, {}
    for at in (0.0, 5.0, 8.9, 9.0, 9.4, 9.5):
        clock.t = start + at
        seen[at] = (await channel_row(sim, key))["peer_state"]
    assert seen == {
        0.0: "DISCONNECTED", 5.0: "DISCONNECTED", 8.9: "DISCONNECTED",
        9.0: "REESTABLISHING", 9.4: "REESTABLISHING", 9.5: "GOOD",
    }  # fmt: skip
    assert (await pay(sim, key, address, 1_000_000))["success"] is True


async def test_a_long_outage_waits_for_the_backoff(sim: Simulator, clock: Clock) -> None:
    _token, _wallet_id, key = wallet(sim)
    await open_channel(sim, key, CAP)
    peer = sim.trampolines()[0].pubkey
    address = sim.add_lightning_address("shop")
    sim.set_node_online(peer, False)
    start = clock.t
    unpaid = await pay(sim, key, address, 1_000_000)
    clock.t = start + 100
    sim.set_node_online(peer, True)
    # Attempts at +1, +9, +25, +57, +121 s (delays 8, 16, 32, 64): connected at +121.
    states = []
    for at in (120.9, 121.0, 121.5):
        clock.t = start + at
        states.append((await channel_row(sim, key))["peer_state"])
    assert states == ["DISCONNECTED", "REESTABLISHING", "GOOD"]
    assert (unpaid["success"], unpaid["log"]) == (False, [])


async def test_daemon_restart_reads_open_and_disconnected_first(
    sim: Simulator, clock: Clock
) -> None:
    _token, wallet_id, key = wallet(sim, 2_000_000)
    await open_channel(sim, key, CAP)
    second = await open_channel(sim, key, CAP)
    await result(sim, "close_channel", second, xpub=key)
    await sim.mine(1)
    await sim.restart_daemon()
    start, rows = clock.t, []
    for at in (0.0, 2.4, 2.5, 3.0):
        clock.t = start + at
        listed = await result(sim, "list_channels", xpub=key)
        rows.append({r["state"]: r["peer_state"] for r in listed})
    assert rows == [
        {"OPEN": "DISCONNECTED", "CLOSED": "DISCONNECTED"},
        {"OPEN": "DISCONNECTED", "CLOSED": "DISCONNECTED"},
        {"OPEN": "REESTABLISHING", "CLOSED": "DISCONNECTED"},
        # Electrum does not reestablish a closed channel: it stays DISCONNECTED.
        {"OPEN": "GOOD", "CLOSED": "DISCONNECTED"},
    ]
    assert len(sim.channels(wallet_id)) == 2


async def test_fee_update_waits_for_the_peer(sim: Simulator, clock: Clock) -> None:
    _token, wallet_id, key = wallet(sim)
    await open_channel(sim, key, CAP)
    (chan,) = sim.channels(wallet_id)
    sim.restart_peer(sim.trampolines()[0].pubkey, offline_seconds=5)
    sim.set_fee_rate(40)  # current 10_000 -> 15_000, but update_fee needs the peer
    assert chan.feerate_per_kw == FEERATE_OPEN
    clock.advance(9.5)  # reestablished (see above): maybe_update_fee runs
    assert (await channel_row(sim, key))["peer_state"] == "GOOD"
    assert chan.feerate_per_kw == 15_000


# -- 5. trampoline fees -------------------------------------------------------------------------


async def test_trampoline_fee_levels(sim: Simulator) -> None:
    _token, _wallet_id, key = wallet(sim, 2_000_000)
    await open_channel(sim, key, 1_000_000)
    scid = (await channel_row(sim, key))["short_channel_id"]
    address = sim.add_lightning_address("shop")
    # 10_000 sat: budget max(10_000_000 * 10_000 // 10**6, 10_000) = 100_000 msat; level 1
    # offers 100_000 // 2**5 = 3_125, the trampoline asks 1_000 + 10_000_000*100//10**6 =
    # 2_000: taken at once.
    big = await pay(sim, key, address, 10_000_000)
    # 1_000 sat: budget is the 10_000 msat cutoff; levels offer 312, 625, 1_250; the
    # trampoline asks 1_000 + 100 = 1_100: two refusals, then 1_250.
    small = await pay(sim, key, address, 1_000_000)
    fees = [p.fee_msat for p in sim.payments]
    assert fees == [3_125, 1_250]
    assert big["log"] == [["1", scid, "Success"]]
    assert small["log"] == [
        ["1", "Destination node", "TRAMPOLINE_FEE_INSUFFICIENT"],
        ["1", "Destination node", "TRAMPOLINE_FEE_INSUFFICIENT"],
        ["1", scid, "Success"],
    ]
    history = [
        h for h in await result(sim, "lightning_history", xpub=key) if h["type"] == "payment"
    ]
    assert sorted(h["fee_msat"] for h in history) == [1_250, 3_125]


async def test_trampoline_fee_above_the_budget_fails(sim: Simulator) -> None:
    _token, _wallet_id, key = wallet(sim, 2_000_000)
    await open_channel(sim, key, 1_000_000)
    address = sim.add_lightning_address("shop")
    sim.trampolines()[0].fee_base_msat = 5_000  # this trampoline now asks more
    # 10_000 sat: level 1 offers 3_125 < 5_000 + 1_000 = 6_000; level 2 offers 6_250.
    assert (await pay(sim, key, address, 10_000_000))["success"] is True
    await result(sim, "setconfig", "lightning_payment_fee_max_millionths", 500)
    await result(sim, "setconfig", "lightning_payment_fee_cutoff_msat", 0)
    # Budget 10_000_000 * 500 // 10**6 = 5_000: even level 6 (all of it) is under 6_000.
    starved = await pay(sim, key, address, 10_000_000)
    assert [p.fee_msat for p in sim.payments] == [6_250, 0]
    assert starved["success"] is False
    assert starved["log"] == [["1", "Destination node", "TRAMPOLINE_FEE_INSUFFICIENT"]] * 6
