"""Channels of the daemon's wallets: opening, closing, reconnecting and what blocks do.

Numbers as Electrum has them: ``local_balance`` is the settled balance (a fresh channel we
funded shows its whole capacity); what each side can send is Electrum's
``available_to_spend`` (:mod:`commitment`) at the channel's own feerate, which the
initiator keeps near the 1008-block estimate. Checks run in Electrum's order and fail with
its messages. Connections follow the model's clock: after a daemon restart or a peer's
outage, channels go DISCONNECTED -> REESTABLISHING -> GOOD as Electrum's reconnect loop and
backoff would take them.
"""

from __future__ import annotations

import math
from typing import Any

import structlog

from liquidityhelper.simulator import commitment as cm
from liquidityhelper.simulator.entities import Channel, ChanState, DaemonWallet, NetworkNode
from liquidityhelper.simulator.errors import (
    PeerTimeout,
    SimError,
    electrum,
    insufficient_funds,
)
from liquidityhelper.simulator.fees import FEERATE_FALLBACK_STATIC_FEE
from liquidityhelper.simulator.formats import btc8, to_sats
from liquidityhelper.simulator.ids import channel_id_for
from liquidityhelper.simulator.ports import ModelPort

log = structlog.get_logger(__name__)

LEGACY_MAX_FUNDING_SAT = 2**24 - 1
# Electrum's reconnect backoff for channel peers (lnworker: urgent retries).
PEER_RETRY_INIT_S = 4.0
PEER_RETRY_MAX_S = 300.0
PENDING_OPEN = (ChanState.PREOPENING, ChanState.OPENING, ChanState.FUNDED)
# States Electrum reestablishes after a reconnect (PREOPENING < state < CLOSING).
REESTABLISHED = (ChanState.OPENING, ChanState.FUNDED, ChanState.OPEN, ChanState.SHUTDOWN)
CLOSED_OR_CLOSING = (
    ChanState.SHUTDOWN,
    ChanState.CLOSING,
    ChanState.FORCE_CLOSING,
    ChanState.REQUESTED_FCLOSE,
    ChanState.WE_ARE_TOXIC,
    ChanState.CLOSED,
    ChanState.REDEEMED,
)
_FEATURES_STR = (
    "LnFeatures.OPTION_DATA_LOSS_PROTECT_REQ|VAR_ONION_REQ|OPTION_STATIC_REMOTEKEY_REQ"
    "|PAYMENT_SECRET_REQ|BASIC_MPP_OPT|OPTION_SUPPORT_LARGE_CHANNEL_OPT"
    "|OPTION_ANCHORS_ZERO_FEE_HTLC_OPT|OPTION_CHANNEL_TYPE_OPT|OPTION_SCID_ALIAS_OPT"
)


def _first_attempt_after(first: float, ready: float) -> float:
    """The first of Electrum's reconnect attempts (``first``, then backoff) at or after
    ``ready``."""
    attempt, delay = first, PEER_RETRY_INIT_S * 2
    while attempt < ready:
        if delay >= PEER_RETRY_MAX_S:
            # Every 300 s from here on: step there at once (a node away for weeks).
            return attempt + math.ceil((ready - attempt) / PEER_RETRY_MAX_S) * PEER_RETRY_MAX_S
        attempt += delay
        delay *= 2
    return attempt


class ChannelOps:
    def __init__(self, model: ModelPort) -> None:
        self.m = model

    # -- small facts ------------------------------------------------------------------------

    def node(self, pubkey: str) -> NetworkNode | None:
        return self.m.nodes.get(pubkey)

    def is_trampoline(self, pubkey: str) -> bool:
        node = self.node(pubkey)
        return bool(node and node.trampoline)

    # -- connections --------------------------------------------------------------------------

    def peer_state(self, chan: Channel) -> str:
        """Electrum's ``peer_state`` of ``chan`` now (DISCONNECTED, REESTABLISHING, GOOD)."""
        now = self.m.now()
        if self.m.daemon_state == "down":
            return "DISCONNECTED"  # our node is not running: no peer reaches it
        node = self.node(chan.peer_pubkey)
        if node is None and self.m.wallet_by_node(chan.peer_pubkey) is None:
            return "DISCONNECTED"
        if node is not None and not node.is_up(now):
            return "DISCONNECTED"
        connected = self._connected_at(node)
        if connected is None:
            return "GOOD"  # never lost the connection
        good_at = connected + self.m.config.reestablish_s
        if chan.state not in REESTABLISHED:
            # Electrum reestablishes only OPENING..SHUTDOWN channels: a closing one stays
            # DISCONNECTED unless its close began after the connection was GOOD again.
            closing_at = chan.closing_at if chan.closing_at is not None else chan.opened_at
            return "GOOD" if closing_at >= good_at and now >= good_at else "DISCONNECTED"
        if now < connected:
            return "DISCONNECTED"
        return "REESTABLISHING" if now < good_at else "GOOD"

    def peer_connected(self, pubkey: str) -> bool:
        """Whether Electrum holds a live connection to ``pubkey`` now (``list_peers``)."""
        node = self.node(pubkey)
        now = self.m.now()
        if node is None or not node.is_up(now) or self.m.daemon_state == "down":
            return False
        connected = self._connected_at(node)
        return connected is None or now >= connected

    def _connected_at(self, node: NetworkNode | None) -> float | None:
        """When the connection lost last (daemon restart or the node's outage) came back.

        None when it was never lost. A daemon restart reconnects ``daemon_reconnect_s`` in;
        a node that left is retried ``peer_retry_first_s`` after, then with Electrum's
        backoff (4 s doubling per attempt, 300 s at most), and reached at the first attempt
        it is back for.
        """
        cfg = self.m.config
        now = self.m.now()
        restart = self.m.daemon_restarted_at
        outage = None
        if node is not None and node.down_since is not None and node.down_since <= now:
            outage = node.down_since
        if outage is None:
            if restart is None:
                return None
            return restart + cfg.daemon_reconnect_s  # the first attempt finds the peer up
        if restart is not None and restart >= outage:
            first = restart + cfg.daemon_reconnect_s
        else:
            first = outage + cfg.peer_retry_first_s
        assert node is not None
        back = node.back_at if node.back_at is not None else now  # down: is_up() decides
        return _first_attempt_after(first, back)

    # -- what a channel can move ----------------------------------------------------------------

    def target_feerate(self) -> int | None:
        return cm.current_target_feerate_per_kw(self.m.fee_estimates)

    def reserve_sat(self, capacity_sat: int) -> int:
        return max(capacity_sat // 100, self.m.config.dust_limit_sat)

    def terms(self, chan: Channel, feerate: int | None = None) -> cm.Terms:
        dust = self.m.config.dust_limit_sat
        in_flight = chan.capacity_sat * 1000  # Electrum's default max_htlc_value_in_flight
        return cm.Terms(
            feerate=chan.feerate_per_kw if feerate is None else feerate,
            local=cm.Side(
                chan.local_msat, chan.local_reserve_sat, dust, chan.offered_msat("local"), in_flight
            ),
            remote=cm.Side(
                chan.remote_msat,
                chan.remote_reserve_sat,
                dust,
                chan.offered_msat("remote"),
                in_flight,
            ),
            initiator=chan.initiator,
        )

    def sendable_msat(self, chan: Channel) -> int:
        """``available_to_spend(LOCAL)``: the largest HTLC we can add now."""
        return cm.available_to_spend(self.terms(chan), cm.LOCAL)

    def receivable_msat(self, chan: Channel) -> int:
        """``available_to_spend(REMOTE)``: the largest HTLC the peer can send us now."""
        return cm.available_to_spend(self.terms(chan), cm.REMOTE)

    def commit_fee_sat(self, chan: Channel) -> int:
        """The commitment's fee now (no HTLCs), rounded down to the sat as BOLT 3 does."""
        return cm.commit_fee_msat(chan.feerate_per_kw, 0) // 1000

    # -- background work ------------------------------------------------------------------------

    def catch_up(self) -> None:
        """What Electrum's background tasks have done by now: reestablished channels go OPEN
        (channel_ready) and initiators adjust their feerate (``maybe_update_fee``)."""
        for dw in self.m.daemon_wallets.values():
            for chan in dw.channels.values():
                if chan.kind != "CHANNEL" or self.peer_state(chan) != "GOOD":
                    continue
                if chan.state is ChanState.FUNDED and self._deep_enough(dw, chan):
                    chan.state = ChanState.OPEN
                if chan.state is ChanState.OPEN:
                    self._maybe_update_fee(chan)

    def _deep_enough(self, dw: DaemonWallet, chan: Channel) -> bool:
        if chan.funding_height <= 0:
            return False
        return self.m.confirmations(chan.funding_height) >= self.m.config.channel_min_depth

    def _maybe_update_fee(self, chan: Channel) -> None:
        """``lnpeer.maybe_update_fee``. The initiator updates; when the peer is the initiator
        it is taken to run Electrum with the same estimates."""
        current = self.target_feerate()
        if current is None:
            return  # no estimate: Electrum leaves the feerate alone
        new = cm.proposed_feerate(chan.feerate_per_kw, current, chan.remote_ctn)
        if new is None:
            return
        if not cm.can_afford_feerate(self.terms(chan), new):
            return  # update_fee refuses: the initiator would dip below its reserve
        log.info("sim_channel_fee_update", old=chan.feerate_per_kw, new=new)
        chan.feerate_per_kw = new
        chan.local_ctn += 1
        chan.remote_ctn += 1

    def is_usable(self, chan: Channel) -> bool:
        return chan.state is ChanState.OPEN and self.peer_state(chan) == "GOOD"

    def lightning_balance_sat(self, dw: DaemonWallet) -> int:
        return sum(
            c.local_msat // 1000 for c in dw.channels.values() if c.state not in CLOSED_OR_CLOSING
        )

    def find_channel(self, channel_point: str) -> tuple[DaemonWallet, Channel]:
        for dw in self.m.daemon_wallets.values():
            chan = dw.channels.get(channel_point)
            if chan is not None:
                return dw, chan
        raise SimError(f"no channel {channel_point}")

    # -- opening ----------------------------------------------------------------------------

    def _parse_connection(self, connection_string: str) -> tuple[str, str | None]:
        text = str(connection_string).strip()
        pubkey, _, hostport = text.partition("@")
        try:
            ok = len(bytes.fromhex(pubkey)) == 33 and pubkey[:2] in ("02", "03")
        except ValueError:
            ok = False
        if not ok:
            raise electrum(
                "electrum.lntransport.ConnStringFormatError",
                "Invalid node ID, must be 33 bytes and hexadecimal",
            )
        if not hostport:
            node = self.node(pubkey)
            if node is None or not (node.trampoline or self.m.use_gossip):
                raise electrum(
                    "electrum.lntransport.ConnStringFormatError",
                    f"Address unknown for node: {pubkey}",
                )
            return pubkey, node.address
        return pubkey, hostport

    def open_channel(self, dw: DaemonWallet, connection_string: str, amount: Any) -> str:
        """Electrum's ``open_channel``: checks in Electrum's order, then funds the channel.

        A peer that drops the request without a word (stock Electrum below its 200k
        minimum, or nobody at the address) raises :class:`PeerTimeout`, which the servers
        answer after ``peer_timeout_s`` as Electrum does after its 20 s."""
        self.catch_up()
        pubkey, hostport = self._parse_connection(connection_string)
        if self.m.wallet_by_node(pubkey) is not None:
            raise electrum("electrum.lnworker.ErrorAddingPeer", "cannot connect to self")
        coins = self.m.config.coin_selection
        if not coins:
            fee = self.m.funding_fee_sat(self.m.config.funding_tx_vbytes)
            spendable = self.m.spendable(dw)
        send_max = str(amount).strip() == "!"
        if send_max:
            funding_sat = 0 if coins else spendable - fee
        else:
            try:
                funding_sat = to_sats(amount)
            except ValueError as exc:
                raise electrum("decimal.InvalidOperation", f"[<class '{exc}'>]") from exc
        selection = None
        if coins:
            selection = self.m.select_coins(dw, None if send_max else max(funding_sat, 0))
            funding_sat, fee = selection.funding_sat, selection.fee_sat
        elif spendable < funding_sat + fee:
            raise insufficient_funds()
        if funding_sat <= 0:
            raise insufficient_funds()
        max_funding = int(self.m.electrum.get("lightning_max_funding_sat", LEGACY_MAX_FUNDING_SAT))
        if funding_sat > max_funding:
            raise electrum(
                "Exception",
                "Requested channel capacity is over maximum."
                f"\n{funding_sat} sat > {max_funding} sat",
            )
        node = self.node(pubkey)
        if node is None or not node.is_up(self.m.now()) or node.address != hostport:
            raise PeerTimeout()  # nobody answers at that address: the handshake times out
        dw.peers[pubkey] = node.address
        if not self.m.use_gossip and self.m.config.strict_trampoline_open and not node.trampoline:
            raise electrum("Exception", f"Not a trampoline node: {_FEATURES_STR}")
        feerate = self.target_feerate()
        if feerate is None:
            raise electrum(
                "electrum.util.NoDynamicFeeEstimates", "Dynamic fee estimates not available"
            )
        if funding_sat < self.m.config.min_funding_sat:
            raise electrum(
                "Exception",
                f"funding_sat too low: {funding_sat} sat < {self.m.config.min_funding_sat}",
            )
        if funding_sat > LEGACY_MAX_FUNDING_SAT:
            raise electrum(
                "Exception",
                f"funding_sat too high: {funding_sat} sat > {LEGACY_MAX_FUNDING_SAT}"
                " (legacy limit)",
            )
        self._peer_accepts(node, funding_sat)
        chan = self._fund_channel(dw, pubkey, funding_sat, fee, feerate)
        if selection is not None:
            self.m.spend(dw, selection, next(t for t in dw.txs if t.txid == chan.funding_txid))
        return chan.channel_point

    def _peer_accepts(self, node: NetworkNode, funding_sat: int) -> None:
        if node.kind == "electrum" and not (
            node.min_channel_sat <= funding_sat <= (node.max_channel_sat or funding_sat)
        ):
            # Stock Electrum's validate_params raises on its side ("funding_sat too low:
            # ... < 200000") and only logs it: no error reaches us, accept_channel never
            # comes, and our open gives up with TimeoutError.
            log.info("sim_peer_ignores_open", alias=node.alias, funding_sat=funding_sat)
            raise PeerTimeout()
        refusal = None
        if not node.accepts_channels:
            refusal = node.refusal
        elif funding_sat < node.min_channel_sat:
            refusal = (
                f"chan size of {btc8(funding_sat)} BTC is below min chan size of "
                f"{btc8(node.min_channel_sat)} BTC"
            )
        elif node.max_channel_sat is not None and funding_sat > node.max_channel_sat:
            refusal = (
                f"chan size of {btc8(funding_sat)} BTC exceeds maximum chan size of "
                f"{btc8(node.max_channel_sat)} BTC"
            )
        if refusal:
            raise electrum(
                "electrum.interface.GracefulDisconnect",
                f"remote peer sent error [DO NOT TRUST THIS MESSAGE]: {refusal}",
            )

    def _fund_channel(
        self, dw: DaemonWallet, pubkey: str, funding_sat: int, fee: int, feerate: int
    ) -> Channel:
        tx = self.m.add_tx(
            dw, -(funding_sat + fee), fee_sat=fee, kind="funding", label="Open channel"
        )
        vout = self.m.rng.randint(0, 1)
        chan = Channel(
            channel_point=f"{tx.txid}:{vout}",
            funding_txid=tx.txid,
            vout=vout,
            channel_id=channel_id_for(tx.txid, vout),
            peer_pubkey=pubkey,
            capacity_sat=funding_sat,
            local_msat=funding_sat * 1000,
            remote_msat=0,
            local_reserve_sat=self.reserve_sat(funding_sat),
            remote_reserve_sat=self.reserve_sat(funding_sat),
            # current_target_feerate_per_kw at open; maybe_update_fee takes over once OPEN.
            feerate_per_kw=feerate,
            initiator="local",
            state=ChanState.OPENING,
            opened_at=self.m.now(),
        )
        dw.channels[chan.channel_point] = chan
        log.info("sim_channel_opening", capacity_sat=funding_sat, fee_sat=fee, feerate=feerate)
        return chan

    def inject_channel(
        self,
        dw: DaemonWallet,
        pubkey: str,
        capacity_sat: int,
        *,
        local_sat: int | None = None,
        state: ChanState = ChanState.OPEN,
        initiator: str = "local",
    ) -> Channel:
        """A channel that exists already (no funding tx, no checks): for test set-ups.

        It starts at the initiator's opening feerate (the regtest fallback's without an
        estimate) and, when OPEN with its peer there, updates it at once like a real one."""
        txid = self.m.ids.txid()
        local = capacity_sat if local_sat is None else local_sat
        feerate = self.target_feerate() or FEERATE_FALLBACK_STATIC_FEE // 4
        chan = Channel(
            channel_point=f"{txid}:0",
            funding_txid=txid,
            vout=0,
            channel_id=channel_id_for(txid, 0),
            peer_pubkey=pubkey,
            capacity_sat=capacity_sat,
            local_msat=local * 1000,
            remote_msat=(capacity_sat - local) * 1000,
            local_reserve_sat=self.reserve_sat(capacity_sat),
            remote_reserve_sat=self.reserve_sat(capacity_sat),
            feerate_per_kw=feerate,
            initiator=initiator,
            state=state,
            opened_at=self.m.now(),
            funding_height=self.m.height,
            short_channel_id=f"{self.m.height}x{self.m.rng.randint(1, 2000)}x0",
        )
        if state in CLOSED_OR_CLOSING:
            chan.closing_at = chan.opened_at
        dw.channels[chan.channel_point] = chan
        node = self.node(pubkey)
        if node is not None:
            dw.peers[pubkey] = node.address
        self.catch_up()
        return chan

    # -- closing ----------------------------------------------------------------------------

    def close_channel(self, dw: DaemonWallet, channel_point: str, force: bool = False) -> str:
        self.catch_up()
        chan = dw.channels.get(str(channel_point))
        if chan is None:
            raise electrum("electrum.util.UserFacingException", f"Unknown channel {channel_point}")
        if chan.state in CLOSED_OR_CLOSING:
            raise electrum("Exception", f"Channel already closing: {chan.state.value}")
        if force:
            return self._force_close_local(dw, chan)
        if chan.state is not ChanState.OPEN:
            raise electrum("Exception", f"Channel not open: {chan.state.value}")
        if self.peer_state(chan) != "GOOD":
            raise PeerTimeout()
        fee = self.m.fee_sat(self.m.config.closing_tx_vbytes) if chan.initiator == "local" else 0
        back = max(0, chan.local_msat // 1000 - fee)
        tx = self.m.add_tx(dw, back, fee_sat=None, kind="closing", label="Close channel")
        chan.state = ChanState.CLOSING
        chan.closing_at = self.m.now()
        chan.closing_txid = tx.txid
        chan.close_kind = "coop"
        log.info("sim_channel_closing", back_sat=back, fee_sat=fee)
        return tx.txid

    def _force_close_local(self, dw: DaemonWallet, chan: Channel) -> str:
        chan.state = ChanState.FORCE_CLOSING
        chan.closing_at = self.m.now()
        chan.closing_txid = self.m.ids.txid()
        chan.close_kind = "force_local"
        chan.close_height = 0
        return chan.closing_txid

    def remote_force_close(self, channel_point: str) -> None:
        """The peer broadcasts its commitment: the row stays OPEN until a block mines it."""
        _dw, chan = self.find_channel(channel_point)
        if chan.state in CLOSED_OR_CLOSING:
            raise SimError("channel already closing")
        chan.closing_txid = self.m.ids.txid()
        chan.close_kind = "force_remote"

    def _commitment_output_sat(self, chan: Channel) -> int:
        """Our output on the commitment that closed: the initiator pays its fee and anchors."""
        out = chan.local_msat // 1000
        if chan.initiator == "local":
            out -= self.commit_fee_sat(chan) + 2 * cm.FIXED_ANCHOR_SAT
        return max(0, out - self.m.fee_sat(self.m.config.sweep_tx_vbytes))

    # -- blocks -----------------------------------------------------------------------------

    def on_block(self) -> None:
        for dw in self.m.daemon_wallets.values():
            if dw.channels:
                for chan in dw.channels.values():
                    self._advance(dw, chan)

    def _advance(self, dw: DaemonWallet, chan: Channel) -> None:
        height = self.m.height
        if chan.state in PENDING_OPEN:
            tx = next((t for t in dw.txs if t.txid == chan.funding_txid), None)
            if tx is None or tx.height <= 0:
                return
            chan.funding_height = tx.height
            if self.m.confirmations(tx.height) >= self.m.config.channel_min_depth:
                if chan.short_channel_id is None:
                    chan.short_channel_id = f"{tx.height}x{self.m.rng.randint(1, 2000)}x{chan.vout}"
                # channel_ready needs the peer: without it the channel waits in FUNDED.
                chan.state = ChanState.OPEN if self.peer_state(chan) == "GOOD" else ChanState.FUNDED
            return
        if chan.state is ChanState.OPEN and chan.close_kind == "force_remote":
            chan.state = ChanState.CLOSED
            chan.closing_at = self.m.now()
            chan.close_height = height
            self._sweep(dw, chan)
            return
        if chan.state is ChanState.CLOSING:
            tx = next((t for t in dw.txs if t.txid == chan.closing_txid), None)
            if tx is not None and tx.height > 0:
                chan.state = ChanState.CLOSED
                chan.close_height = tx.height
            return
        if chan.state is ChanState.FORCE_CLOSING:
            if chan.close_height == 0:
                chan.close_height = height
            elif height - chan.close_height >= self.m.config.force_close_csv_blocks:
                chan.state = ChanState.CLOSED
                self._sweep(dw, chan)

    def _sweep(self, dw: DaemonWallet, chan: Channel) -> None:
        amount = self._commitment_output_sat(chan)
        if amount > 0:
            self.m.add_tx(dw, amount, fee_sat=None, kind="sweep", label="Close channel")
