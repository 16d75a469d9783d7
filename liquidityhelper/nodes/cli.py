"""``liquidityhelper nodes list|show|update|import``: each takes (db, settings, out) and
returns an exit code (0 ok, 1 failure, 2 bad input). The lead wires them into argparse."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import httpx

from liquidityhelper.nodes.db import NodeDB
from liquidityhelper.nodes.model import from_ts, normalize_pubkey
from liquidityhelper.nodes.providers import build_providers
from liquidityhelper.nodes.ranking import evaluate_nodes, explain
from liquidityhelper.nodes.seedfile import SeedFormatError, parse_seed_data
from liquidityhelper.nodes.settings import NodeSettings
from liquidityhelper.nodes.throttle import refresh_nodes


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _date(ts: int | None) -> str:
    moment = from_ts(ts)
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def cmd_list(
    db: NodeDB, settings: NodeSettings, out: TextIO, *, now: datetime | None = None
) -> int:
    """Every known node: eligible ones first by score, then the rest with why not."""
    moment = _now(now)
    evaluations = evaluate_nodes(db, settings, moment)
    out.write(f"{'score':>7}  {'T':1} {'S':1}  {'pubkey':66}  {'alias':24}  status\n")
    for e in evaluations:
        status = "eligible" if e.eligible else e.exclusions[0]
        out.write(
            f"{e.score:7.2f}  {'T' if e.trampoline else '-'} {'S' if e.trusted else '-'}  "
            f"{e.pubkey:66}  {(e.alias or '')[:24]:24}  {status}\n"
        )
    eligible = sum(1 for e in evaluations if e.eligible)
    out.write(f"{len(evaluations)} nodes, {eligible} eligible (T: trampoline, S: seeded/static)\n")
    return 0


def cmd_show(
    db: NodeDB,
    settings: NodeSettings,
    out: TextIO,
    pubkey: str,
    *,
    now: datetime | None = None,
) -> int:
    """One node: its data, our observations, its score and why."""
    key = normalize_pubkey(pubkey)
    if key is None:
        out.write(f"not a node pubkey: {pubkey!r}\n")
        return 2
    moment = _now(now)
    evaluation = explain(db, key, settings, moment)
    node = db.get_node(key)
    if evaluation is None:
        out.write(f"unknown node {key}\n")
        return 1
    out.write(f"pubkey        {key}\n")
    out.write(f"alias         {evaluation.alias or '-'}\n")
    if node is not None:
        out.write(f"capacity      {_fmt(node.capacity_sat)} sat\n")
        out.write(f"channels      {_fmt(node.channel_count)}\n")
        out.write(f"first seen    {_date(node.first_seen)} (network)\n")
        out.write(f"added         {_date(node.added_at)} from {node.first_source}\n")
        out.write(f"updated       {_date(node.updated_at)} from {node.source}\n")
        out.write(f"refreshed     {_date(db.node_refreshed_at(key))} (provider details)\n")
        out.write(f"clearnet      {', '.join(map(str, node.clearnet)) or '-'}\n")
        out.write(f"tor           {', '.join(map(str, node.tor)) or '-'}\n")
    out.write(f"trampoline    {'yes' if evaluation.trampoline else 'no'}\n")
    out.write(f"trusted       {'yes' if evaluation.trusted else 'no'} (seeded or static)\n")
    out.write(f"friendly      {'yes' if evaluation.friendly else 'no'}\n")
    window = timedelta(days=settings.ranking_uptime_window_days)
    stats = db.uptime_stats(key, window, moment)
    ratio = "-" if stats.ratio is None else f"{stats.ratio:.1%}"
    out.write(
        f"uptime        {ratio} ({stats.samples} samples, "
        f"{settings.ranking_uptime_window_days:g} days)\n"
    )
    payees = db.payee_addresses(key)
    if payees:
        out.write(f"payee of      {', '.join(payees)}\n")
    entry = db.blacklist_entry(key, moment)
    if entry is not None:
        out.write(f"blacklisted   {entry.reason} until {_date(entry.until)}\n")
    for ch in db.channels_of(key):
        closed = (
            f", closed {_date(ch.closed_at)} by {ch.closed_by or 'unknown'}" if ch.closed_at else ""
        )
        out.write(
            f"channel       {ch.wallet_id} {ch.channel_point} {ch.state}, "
            f"lived {ch.lifetime_seconds / 86400:.1f} days{closed}\n"
        )
    for attempt in db.open_attempts(key, limit=10):
        outcome = "ok" if attempt.ok else f"failed ({attempt.error_class or 'unknown'})"
        out.write(f"open attempt  {_date(attempt.ts)} {attempt.wallet_id} {outcome}\n")
    out.write(f"connect       {evaluation.connection_string or '-'}\n")
    out.write(f"score         {evaluation.score:.2f}\n")
    for reason in evaluation.reasons:
        out.write(f"  + {reason}\n")
    if evaluation.eligible:
        out.write("status        eligible\n")
    for exclusion in evaluation.exclusions:
        out.write(f"  excluded: {exclusion}\n")
    return 0


def _fmt(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


async def cmd_update_async(
    db: NodeDB,
    settings: NodeSettings,
    out: TextIO,
    *,
    now: datetime | None = None,
    client: httpx.AsyncClient | None = None,
) -> int:
    """One throttled refresh from the configured providers."""
    moment = _now(now)
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=settings.provider_timeout_seconds)
    try:
        providers = build_providers(settings, http)
        if not providers:
            out.write("no provider configured (mempool_api_url, amboss_api_url, node_seed_urls)\n")
            return 0
        report = await refresh_nodes(db, providers, settings, moment)
    finally:
        if own_client:
            await http.aclose()
    out.write(
        f"{report.requests} requests, {report.nodes_added} nodes added, "
        f"{report.nodes_updated} updated\n"
    )
    for name in sorted(set(report.throttled)):
        out.write(f"throttled: {name} (more next time)\n")
    for name in report.rate_limited:
        out.write(f"rate limited: {name}\n")
    for failure in report.failures:
        out.write(f"failed: {failure}\n")
    return 1 if report.failures and not report.requests else 0


def cmd_update(
    db: NodeDB, settings: NodeSettings, out: TextIO, *, now: datetime | None = None
) -> int:
    """Synchronous wrapper of :func:`cmd_update_async` (not for use inside an event loop)."""
    return asyncio.run(cmd_update_async(db, settings, out, now=now))


def cmd_import(
    db: NodeDB,
    settings: NodeSettings,
    out: TextIO,
    path: str | Path,
    *,
    now: datetime | None = None,
) -> int:
    """Import a seed file in our JSON format (see ``nodes.sources``)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        out.write(f"cannot read {path}: {exc}\n")
        return 2
    source = f"import:{Path(path).name}"
    try:
        parsed = parse_seed_data(data, source)
    except SeedFormatError as exc:
        out.write(f"{path} is not a seed list: {exc}\n")
        return 2
    db.upsert_nodes(parsed.nodes, source=source, now=_now(now), seeded=True)
    out.write(
        f"{len(parsed.nodes)} nodes imported, {parsed.skipped} entries skipped (see warnings)\n"
    )
    return 0
