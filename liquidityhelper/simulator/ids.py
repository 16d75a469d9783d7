"""Deterministic identifiers, keys and addresses, all drawn from one seeded RNG.

Things derived from a wallet key (its node id, its addresses) are hashed from the key
instead, so they do not depend on the order in which a test creates things.
"""

from __future__ import annotations

import hashlib
import random
import string

import bech32
from coincurve import PrivateKey

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# ~Nov 2026, so ids look like the recorded ones ("01M8...").
_ULID_EPOCH_MS = 1_795_000_000_000
_SYLLABLES = [c + v for c in "bdfghklmnprstvz" for v in "aeiou"]
_TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"


def _crockford(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def privkey_for(label: str) -> bytes:
    """A valid secp256k1 secret derived from ``label``."""
    secret = sha256(b"liquidityhelper-sim:" + label.encode())
    while True:
        try:
            PrivateKey(secret)
            return secret
        except ValueError:  # astronomically unlikely: out of range
            secret = sha256(secret)


def pubkey_hex(secret: bytes) -> str:
    return str(PrivateKey(secret).public_key.format(compressed=True).hex())


class IdFactory:
    """Every random-looking value of the simulator comes from here."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._ulid_counter = 0

    def ulid(self) -> str:
        """A 26-char ULID like Bitcart's ids; later ids sort after earlier ones."""
        self._ulid_counter += 1
        ts = _ULID_EPOCH_MS + self._ulid_counter * 7
        return _crockford(ts, 10) + _crockford(self.rng.getrandbits(80), 16)

    def hex(self, nbytes: int) -> str:
        return self.rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()

    def token(self) -> str:
        return "".join(self.rng.choice(_TOKEN_ALPHABET) for _ in range(43))

    def seed_words(self, n: int = 12) -> str:
        """A hot wallet's "seed": lowercase pseudo-words (our validatekey accepts them)."""
        words = []
        for _ in range(n):
            k = self.rng.randint(2, 3)
            words.append("".join(self.rng.choice(_SYLLABLES) for _ in range(k)))
        return " ".join(words)

    def master_pubkey(self, prefix: str = "vpub") -> str:
        alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
        return prefix + "".join(self.rng.choice(alphabet) for _ in range(107))

    def totp_key(self) -> str:
        return "".join(self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(32))

    def txid(self) -> str:
        return self.hex(32)


def address_for(key: str, index: int, hrp: str) -> str:
    """The wallet's ``index``-th receive address (P2WPKH, bech32 with the chain's hrp)."""
    program = sha256(f"addr:{key}:{index}".encode())[:20]
    return str(bech32.encode(hrp, 0, list(program)))


def external_address(label: str, hrp: str) -> str:
    program = sha256(f"ext:{label}".encode())[:20]
    return str(bech32.encode(hrp, 0, list(program)))


def channel_id_for(txid: str, vout: int) -> str:
    """Electrum's channel id: the funding txid with the output index xored into its tail."""
    raw = bytearray(bytes.fromhex(txid))
    raw[-2] ^= (vout >> 8) & 0xFF
    raw[-1] ^= vout & 0xFF
    return raw.hex()
