"""Import N synthetic Lightning nodes into the node database, then choose peers from it.

    python -m benchmarks.node_db --nodes 20000

The import goes through ``liquidityhelper nodes import``'s own code (read, validate, upsert in
one transaction) into a fresh ``known_ln_nodes.db`` on disk; a second import of the same file
measures the update path. Choosing peers is ``ranking.choose_peers`` as the loop calls it, for
a trampoline-mode wallet (trampolines only) and a gossip-mode one (every node). Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from liquidityhelper.logs import configure_logging
from liquidityhelper.nodes.cli import cmd_import
from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.nodes.ranking import choose_peers, rank_candidates
from liquidityhelper.nodes.settings import NodeSettings

IMPORT_TARGET_S = 2.0
CHOICE_TARGET_MS = 5  # per wallet that wants a channel, once the cycle has ranked


def synthetic_seed(count: int, seed: int = 1) -> dict[str, Any]:
    """``count`` nodes in the seed format: 1 % trampolines, sizes and ages spread like mainnet."""
    rng = random.Random(seed)
    nodes = []
    for i in range(count):
        digest = hashlib.sha256(f"node {seed} {i}".encode()).hexdigest()
        entry: dict[str, Any] = {
            "pubkey": rng.choice("23").rjust(2, "0") + digest,
            "alias": f"synthetic-{i:05d}",
            "address": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255 or 1}:9735",
            "capacity_sat": int(rng.lognormvariate(16, 2)),
            "channel_count": int(rng.lognormvariate(2, 1.5)),
            "first_seen": 1_514_764_800 + rng.randrange(0, 250_000_000),
        }
        if i % 100 == 0:
            entry["trampoline"] = True
        if i % 7 == 0:  # a Tor v3 address as well
            onion = base64.b32encode(bytes.fromhex(digest) + b"v3!").decode().lower()
            entry["addresses"] = [f"{onion}.onion:9735"]
        nodes.append(entry)
    return {"about": "synthetic benchmark nodes", "version": 1, "nodes": nodes}


def timed_import(db: NodeDB, path: Path) -> float:
    out = io.StringIO()
    start = time.perf_counter()
    status = cmd_import(db, NodeSettings(), out, path)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"import failed: {out.getvalue()}")
    return seconds


def timed_choice(db: NodeDB, *, trampoline: bool, rounds: int) -> tuple[float, int]:
    """Mean seconds per choose_peers call, and how many peers the last call chose."""
    now = datetime.now(UTC)
    settings = NodeSettings()
    chosen: list[Any] = []
    start = time.perf_counter()
    for i in range(rounds):
        chosen = choose_peers(
            db,
            f"wallet-{i}",
            2,
            settings=settings,
            now=now,
            existing_peers=set(),
            require_trampoline=trampoline,
        )
    return (time.perf_counter() - start) / rounds, len(chosen)


def timed_cycle_choice(
    db: NodeDB, *, trampoline: bool, wallets: int
) -> tuple[float, float, int]:
    """As the loop does it: rank once per cycle, then choose for each wallet that wants a
    channel. Seconds to rank, mean seconds per wallet, peers chosen for the last wallet."""
    now = datetime.now(UTC)
    settings = NodeSettings()
    start = time.perf_counter()
    ranked = rank_candidates(db, settings=settings, now=now, require_trampoline=trampoline)
    ranked_s = time.perf_counter() - start
    chosen: list[Any] = []
    start = time.perf_counter()
    for i in range(wallets):
        chosen = ranked.choose(2, {f"02{i:064x}"[:66]})
    return ranked_s, (time.perf_counter() - start) / wallets, len(chosen)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=20, help="choose_peers calls to average")
    args = parser.parse_args(argv)
    configure_logging("WARNING", "json", stream=io.StringIO())

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nodes.json"
        path.write_text(json.dumps(synthetic_seed(args.nodes)), encoding="utf-8")
        with NodeDB.open_in_dir(tmp) as db:
            first = timed_import(db, path)
            again = timed_import(db, path)
            count = db.node_count()
            trampoline_s, trampoline_n = timed_choice(db, trampoline=True, rounds=args.rounds)
            gossip_s, gossip_n = timed_choice(db, trampoline=False, rounds=args.rounds)
            per_cycle = {
                mode: timed_cycle_choice(db, trampoline=mode == "trampoline", wallets=1_000)
                for mode in ("trampoline", "gossip")
            }
        size_mb = sum(f.stat().st_size for f in Path(tmp).glob("known_ln_nodes.db*")) / 1e6

    verdict = "ok" if first <= IMPORT_TARGET_S else "MISSED"
    row("nodes in database", f"{count} (from {args.nodes} seed entries)")
    row("import into an empty database", f"{first:.3f} s   (target <= 2 s: {verdict})")
    row("import again (all updates)", f"{again:.3f} s")
    row("database on disk", f"{size_mb:.1f} MB")
    row("choose 2 peers, trampoline mode", f"{trampoline_s * 1000:.1f} ms/call ({trampoline_n})")
    row("choose 2 peers, gossip mode", f"{gossip_s * 1000:.1f} ms/call ({gossip_n})")
    for mode, (ranked_s, per_wallet_s, n) in per_cycle.items():
        verdict = "ok" if per_wallet_s * 1000 <= CHOICE_TARGET_MS else "MISSED"
        row(f"rank once per cycle, {mode}", f"{ranked_s * 1000:.1f} ms")
        row(
            f"  then per wallet, {mode}",
            f"{per_wallet_s * 1000:.3f} ms ({n}) (target <= {CHOICE_TARGET_MS} ms: {verdict})",
        )


def row(label: str, value: str) -> None:
    print(f"{label:<34}{value}")


if __name__ == "__main__":
    main()
