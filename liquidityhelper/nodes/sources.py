"""Seed lists into the node database: the one shipped in the package, imported once per change.

The format and parsing live in :mod:`liquidityhelper.nodes.seedfile` (re-exported here), which
the database imports; this module imports the database, never the other way round.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import structlog

from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.nodes.seedfile import (
    PACKAGE_SEED_SOURCE,
    ParsedSeed,
    SeedEntryError,
    SeedFormatError,
    package_seed_text,
    parse_seed_data,
    parse_seed_entry,
    read_seed_file,
)

__all__ = [
    "PACKAGE_SEED_SOURCE",
    "ParsedSeed",
    "SeedEntryError",
    "SeedFormatError",
    "ensure_package_seed",
    "package_seed_text",
    "parse_seed_data",
    "parse_seed_entry",
    "read_seed_file",
]

log = structlog.get_logger(__name__)


def ensure_package_seed(db: NodeDB, now: datetime) -> tuple[int, int]:
    """Import the shipped seed list when it changed since the last import; never raises.

    Returns ``(imported, skipped)``; ``(0, 0)`` when it was already imported.
    """
    try:
        text = package_seed_text()
        digest = hashlib.sha256(text.encode()).hexdigest()
        if db.get_meta("package_seed_sha256") == digest:
            return (0, 0)
        result = db.import_seed_data(json.loads(text), PACKAGE_SEED_SOURCE, now=now)
        db.set_meta("package_seed_sha256", digest)
        log.info("package_seed_imported", imported=result[0], skipped=result[1])
        return result
    except (OSError, ValueError) as exc:
        log.warning("package_seed_failed", error=type(exc).__name__)
        return (0, 0)
