"""Channels of the daemon's wallets: opening, closing and what blocks do to them.

Numbers as Electrum has them: ``local_balance`` is the settled balance (a fresh channel we
funded shows its whole capacity); what can be sent is that minus the reserve the peer asks
(1% of capacity, at least the dust limit), minus the commitment fee and the two 330-sat
anchors the funder carries, minus HTLCs in flight. Checks run in Electrum's order and fail
with its messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from liquidityhelper.simulator.entities import Channel, ChanState, DaemonWallet, NetworkNode
from liquidityhelper.simulator.errors import RpcError, SimError, electrum, insufficient_funds
from liquidityhelper.simulator.formats import btc8, to_sats
from liquidityhelper.simulator.ids import channel_id_for

if TYPE_CHECKING:
    from liquidityhelper.simulator.model import SimModel

log = structlog.get_logger(__name__)

COMMITMENT_TX_WEIGHT_ANCHORS = 1124
LEGACY_MAX_FUNDING_SAT = 2**24 - 1
PENDING_OPEN = (ChanState.PREOPENING, ChanState.OPENING, ChanState.FUNDED)
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


class ChannelOps:
    def __init__(self, model: SimModel) -> None:
        self.m = model

    # -- small facts ------------------------------------------------------------------------

    def node(self, pubkey: str) -> NetworkNode | None:
        return self.m.nodes.get(pubkey)

    def is_trampoline(self, pubkey: str) -> bool:
        node = self.node(pubkey)
        return bool(node and node.trampoline)

    def peer_state(self, chan: Channel) -> str:
        node = self.node(chan.peer_pubkey)
        if node is None:
            # A simulated wallet on the other side (inject_channel) is always reachable.
            return "GOOD" if self.m.wallet_by_node(chan.peer_pubkey) else "DISCONNECTED"
        return "GOOD" if node.online else "DISCONNECTED"

    def commit_fee_sat(self) -> int:
        feerate_per_kw = self.m.fee_rate_sat_vb * 250
        return feerate_per_kw * COMMITMENT_TX_WEIGHT_ANCHORS // 1000

    def reserve_sat(self, capacity_sat: int) -> int:
        return max(capacity_sat // 100, self.m.config.dust_limit_sat)

    def sendable_msat(self, chan: Channel) -> int:
        out = chan.local_msat - chan.local_reserve_sat * 1000 - chan.local_unsettled_msat
        if chan.initiator == "local":
            out -= (chan.commit_fee_sat + 2 * self.m.config.anchor_sat) * 1000
        return max(0, out)

    def receivable_msat(self, chan: Channel) -> int:
        out = chan.remote_msat - chan.remote_reserve_sat * 1000 - chan.remote_unsettled_msat
        if chan.initiator == "remote":
            out -= (chan.commit_fee_sat + 2 * self.m.config.anchor_sat) * 1000
        return max(0, out)

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
        """Electrum's ``open_channel``: checks in Electrum's order, then funds the channel."""
        pubkey, hostport = self._parse_connection(connection_string)
        if self.m.wallet_by_node(pubkey) is not None:
            raise electrum("electrum.lnworker.ErrorAddingPeer", "cannot connect to self")
        fee = self.m.fee_sat(self.m.config.funding_tx_vbytes)
        spendable = self.m.spendable(dw)
        if str(amount).strip() == "!":
            funding_sat = spendable - fee
        else:
            try:
                funding_sat = to_sats(amount)
            except ValueError as exc:
                raise electrum("decimal.InvalidOperation", f"[<class '{exc}'>]") from exc
        if funding_sat <= 0 or spendable < funding_sat + fee:
            raise insufficient_funds()
        max_funding = int(self.m.electrum.get("lightning_max_funding_sat", LEGACY_MAX_FUNDING_SAT))
        if funding_sat > max_funding:
            raise electrum(
                "Exception",
                "Requested channel capacity is over maximum."
                f"\n{funding_sat} sat > {max_funding} sat",
            )
        node = self.node(pubkey)
        if node is None or not node.online or node.address != hostport:
            # Nobody answers at that address: Electrum's handshake times out.
            raise RpcError("TimeoutError")
        dw.peers[pubkey] = node.address
        if not self.m.use_gossip and self.m.config.strict_trampoline_open and not node.trampoline:
            raise electrum("Exception", f"Not a trampoline node: {_FEATURES_STR}")
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
        return self._fund_channel(dw, pubkey, funding_sat, fee).channel_point

    def _peer_accepts(self, node: NetworkNode, funding_sat: int) -> None:
        refusal = None
        if not node.accepts_channels:
            refusal = node.refusal
        elif funding_sat < node.min_channel_sat:
            refusal = (
                f"chan size of {btc8(funding_sat)} BTC is below min chan size of "
                f"{btc8(node.min_channel_sat)} BTC"
            )
        if refusal:
            raise electrum(
                "electrum.interface.GracefulDisconnect",
                f"remote peer sent error [DO NOT TRUST THIS MESSAGE]: {refusal}",
            )

    def _fund_channel(self, dw: DaemonWallet, pubkey: str, funding_sat: int, fee: int) -> Channel:
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
            commit_fee_sat=self.commit_fee_sat(),
            initiator="local",
            state=ChanState.OPENING,
            opened_at=self.m.now(),
        )
        dw.channels[chan.channel_point] = chan
        log.info("sim_channel_opening", capacity_sat=funding_sat, fee_sat=fee)
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
        """A channel that exists already (no funding tx, no checks): for test set-ups."""
        txid = self.m.ids.txid()
        local = capacity_sat if local_sat is None else local_sat
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
            commit_fee_sat=self.commit_fee_sat(),
            initiator=initiator,
            state=state,
            opened_at=self.m.now(),
            funding_height=self.m.height,
            short_channel_id=f"{self.m.height}x{self.m.rng.randint(1, 2000)}x0",
        )
        dw.channels[chan.channel_point] = chan
        node = self.node(pubkey)
        if node is not None:
            dw.peers[pubkey] = node.address
        return chan

    # -- closing ----------------------------------------------------------------------------

    def close_channel(self, dw: DaemonWallet, channel_point: str, force: bool = False) -> str:
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
            raise RpcError("TimeoutError")
        fee = self.m.fee_sat(self.m.config.closing_tx_vbytes) if chan.initiator == "local" else 0
        back = max(0, chan.local_msat // 1000 - fee)
        tx = self.m.add_tx(dw, back, fee_sat=None, kind="closing", label="Close channel")
        chan.state = ChanState.CLOSING
        chan.closing_txid = tx.txid
        chan.close_kind = "coop"
        log.info("sim_channel_closing", back_sat=back, fee_sat=fee)
        return tx.txid

    def _force_close_local(self, dw: DaemonWallet, chan: Channel) -> str:
        chan.state = ChanState.FORCE_CLOSING
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
        out = chan.local_msat // 1000
        if chan.initiator == "local":
            out -= chan.commit_fee_sat + 2 * self.m.config.anchor_sat
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
                chan.state = ChanState.OPEN if self.peer_state(chan) == "GOOD" else ChanState.FUNDED
            return
        if chan.state is ChanState.OPEN and chan.close_kind == "force_remote":
            chan.state = ChanState.CLOSED
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

    def peer_came_online(self, pubkey: str) -> None:
        for dw in self.m.daemon_wallets.values():
            for chan in dw.channels.values():
                if chan.peer_pubkey == pubkey and chan.state is ChanState.FUNDED:
                    chan.state = ChanState.OPEN
