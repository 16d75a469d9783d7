"""The ``nodes`` commands: list, show, update, import."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx

from liquidityhelper.nodes.cli import cmd_import, cmd_list, cmd_show, cmd_update_async
from liquidityhelper.nodes.model import ELECTRUM_HARDCODED_TRAMPOLINES
from liquidityhelper.nodes.sources import ensure_package_seed
from tests.nodes_support import (
    T0,
    FakeProviderServer,
    add_provider_node,
    memory_db,
    mempool_node,
    pk,
    serve,
    settings,
)

ACINQ = "03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f"


def test_list_shows_seeded_nodes_and_why_others_are_excluded() -> None:
    db = memory_db()
    ensure_package_seed(db, T0)
    add_provider_node(db, pk(1), capacity=10)
    out = io.StringIO()
    assert cmd_list(db, settings(), out, now=T0) == 0
    text = out.getvalue()
    for pubkey in ELECTRUM_HARDCODED_TRAMPOLINES:
        assert pubkey in text
    line = next(ln for ln in text.splitlines() if pk(1) in ln)
    assert "below_minimum: capacity 10 < 1000000 sat" in line
    assert text.splitlines()[-1].startswith(f"{db.node_count()} nodes")


def test_show_gives_data_observations_score_and_why() -> None:
    db = memory_db()
    ensure_package_seed(db, T0)
    db.record_open_attempt("w1", ACINQ, False, "DaemonError", T0)
    out = io.StringIO()
    assert cmd_show(db, settings(), out, ACINQ, now=T0) == 0
    text = out.getvalue()
    assert "alias         ACINQ" in text
    assert "node.acinq.co:9735" in text
    assert "trampoline    yes" in text
    assert "open attempt" in text and "failed (DaemonError)" in text
    assert "excluded: cooldown" in text
    assert "score" in text and "+ seeded" in text


def test_show_refuses_bad_or_unknown_keys() -> None:
    db = memory_db()
    out = io.StringIO()
    assert cmd_show(db, settings(), out, "xyz", now=T0) == 2
    assert cmd_show(db, settings(), out, pk(77), now=T0) == 1
    assert "unknown node" in out.getvalue()


def test_import_file(tmp_path: Path) -> None:
    db = memory_db()
    good = tmp_path / "nodes.json"
    good.write_text(json.dumps({"nodes": [{"pubkey": pk(1)}, {"pubkey": "bad"}]}))
    out = io.StringIO()
    assert cmd_import(db, settings(), out, good, now=T0) == 0
    assert "1 nodes imported, 1 entries skipped" in out.getvalue()
    node = db.get_node(pk(1))
    assert node is not None and node.seeded and node.source == "import:nodes.json"
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert cmd_import(db, settings(), io.StringIO(), broken, now=T0) == 2
    wrong = tmp_path / "wrong.json"
    wrong.write_text("[]")
    assert cmd_import(db, settings(), io.StringIO(), wrong, now=T0) == 2
    assert cmd_import(db, settings(), io.StringIO(), tmp_path / "missing.json", now=T0) == 2


async def test_update_runs_one_throttled_refresh() -> None:
    db = memory_db()
    server = FakeProviderServer(mempool_nodes={ACINQ: mempool_node(ACINQ, channels=3000)})
    async with serve(server), httpx.AsyncClient() as client:
        s = settings(mempool_api_url=f"{server.url}/api")
        out = io.StringIO()
        assert await cmd_update_async(db, s, out, now=T0, client=client) == 0
    # Default throttle (60 s apart): exactly one request this time.
    assert len(server.requests) == 1
    assert out.getvalue().startswith("1 requests")
    assert "throttled:" in out.getvalue()


async def test_update_without_providers_sends_nothing() -> None:
    out = io.StringIO()
    assert await cmd_update_async(memory_db(), settings(), out, now=T0) == 0
    assert "no provider configured" in out.getvalue()


def test_run_nodes_command_opens_the_database_in_the_data_dir(tmp_path: Path) -> None:
    from types import SimpleNamespace
    from typing import Any, cast

    from liquidityhelper.nodes.commands import run_nodes_command
    from liquidityhelper.nodes.db import DB_FILENAME

    config = cast(
        Any, SimpleNamespace(data_dir=tmp_path / "data", nodes=settings(), network="mainnet")
    )
    out = io.StringIO()
    args = SimpleNamespace(nodes_command="show", pubkey=ACINQ)
    assert run_nodes_command(config, cast(Any, args), out) == 0
    assert (tmp_path / "data" / DB_FILENAME).exists()
    assert "ACINQ" in out.getvalue()
    assert run_nodes_command(config, cast(Any, SimpleNamespace(nodes_command=None)), out) == 2


def test_mainnet_seed_is_not_imported_on_other_networks(tmp_path: Path) -> None:
    from types import SimpleNamespace
    from typing import Any, cast

    from liquidityhelper.nodes.commands import run_nodes_command
    from liquidityhelper.nodes.db import NodeDB

    config = cast(Any, SimpleNamespace(data_dir=tmp_path, nodes=settings(), network="regtest"))
    out = io.StringIO()
    assert run_nodes_command(config, cast(Any, SimpleNamespace(nodes_command="list")), out) == 0
    with NodeDB.open_in_dir(tmp_path) as db:
        assert db.node_count() == 0
