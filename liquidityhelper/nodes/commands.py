"""Dispatch of ``liquidityhelper nodes ACTION`` (called by ``liquidityhelper.cli``)."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from liquidityhelper.nodes.cli import cmd_import, cmd_list, cmd_show, cmd_update
from liquidityhelper.nodes.db import NodeDB, NodeDBError
from liquidityhelper.nodes.sources import ensure_package_seed

if TYPE_CHECKING:
    from liquidityhelper.config import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def run_nodes_command(
    settings: Settings, args: argparse.Namespace, out: TextIO | None = None
) -> int:
    """Open ``known_ln_nodes.db`` in ``settings.data_dir`` and run ``args.nodes_command``."""
    stream = out if out is not None else sys.stdout
    action = getattr(args, "nodes_command", None)
    if action not in ("list", "show", "update", "import"):
        stream.write("usage: liquidityhelper nodes {list,show PUBKEY,update,import FILE}\n")
        return EXIT_USAGE
    try:
        db = NodeDB.open_in_dir(settings.data_dir)
    except (OSError, sqlite3.Error, NodeDBError) as exc:
        stream.write(f"cannot open the node database in {settings.data_dir}: {exc}\n")
        return EXIT_FAILED
    try:
        if settings.network == "mainnet":  # the shipped list holds mainnet nodes only
            ensure_package_seed(db, datetime.now(UTC))
        node_settings = settings.nodes
        if action == "list":
            return cmd_list(db, node_settings, stream)
        if action == "show":
            return cmd_show(db, node_settings, stream, args.pubkey)
        if action == "update":
            return cmd_update(db, node_settings, stream)
        return cmd_import(db, node_settings, stream, args.file)
    finally:
        db.close()
