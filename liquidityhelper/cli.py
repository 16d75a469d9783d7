"""Command line: ``liquidityhelper [options] COMMAND``.

Exit codes: 0 fine, 1 the command failed, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from liquidityhelper import __version__
from liquidityhelper.config import (
    ConfigError,
    Settings,
    config_path_from,
    describe_sources,
    load_settings,
    secret_values,
)
from liquidityhelper.logs import configure_logging, register_secrets

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: a subcommand's parser must not reset an option given before the command
    # (`liquidityhelper --dry-run once`); main() fills in what was not given.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--config", metavar="PATH", help="TOML settings file (optional)")
    common.add_argument(
        "--dry-run",
        action="store_true",
        help="log every action with its numbers; move nothing, create nothing",
    )
    common.add_argument("--log-format", choices=["auto", "console", "json"])
    common.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])

    parser = argparse.ArgumentParser(
        prog="liquidityhelper",
        description="Keeps Bitcart stores payable over Lightning: opens channels, shows "
        "top-ups, cashes out to the merchant's lightning address and pays the operator's fee.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"liquidityhelper {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("run", parents=[common], help="run cycles forever (the daemon)")
    sub.add_parser("once", parents=[common], help="run one cycle and exit")
    status = sub.add_parser("status", parents=[common], help="per store and wallet, at a glance")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    history = sub.add_parser(
        "history", parents=[common], help="every journaled action, newest first (read-only)"
    )
    history.add_argument("--since", type=_since, metavar="DATE", help="2026-11-01, or 30d")
    which = history.add_mutually_exclusive_group()
    which.add_argument("--wallet", metavar="ID", help="only this wallet")
    which.add_argument("--store", metavar="ID", help="only the wallet(s) of this store")
    history.add_argument("--json", action="store_true", help="a JSON list of objects")
    report = sub.add_parser(
        "report", parents=[common], help="what liquidity cost and bought, per wallet and total"
    )
    report.add_argument(
        "--since", type=_since, metavar="DATE", help="2026-11-01, or 30d (default: everything)"
    )
    report.add_argument("--json", action="store_true", help="machine-readable output")

    config = sub.add_parser("config", parents=[common], help="settings")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION")
    config_sub.add_parser(
        "check", parents=[common], help="print resolved settings, secrets masked, and their sources"
    )

    nodes = sub.add_parser("nodes", parents=[common], help="the Lightning node database")
    nodes_sub = nodes.add_subparsers(dest="nodes_command", metavar="ACTION")
    nodes_sub.add_parser("list", parents=[common], help="known nodes, best first")
    show = nodes_sub.add_parser("show", parents=[common], help="one node: data, score and why")
    show.add_argument("pubkey")
    nodes_sub.add_parser("update", parents=[common], help="one throttled provider refresh")
    imp = nodes_sub.add_parser("import", parents=[common], help="import a node list (JSON)")
    imp.add_argument("file", type=Path)

    payees = sub.add_parser(
        "payees", parents=[common], help="payee nodes pinned per lightning address"
    )
    payees_sub = payees.add_subparsers(dest="payees_command", metavar="ACTION")
    payees_sub.add_parser("list", parents=[common], help="each address and its pinned node")
    forget = payees_sub.add_parser(
        "forget", parents=[common], help="drop an address's pin: the next payment verifies afresh"
    )
    forget.add_argument("address")

    pause = sub.add_parser(
        "pause", parents=[common], help="stop every action for a store or wallet (by id)"
    )
    pause.add_argument("target", metavar="STORE_OR_WALLET_ID")
    resume = sub.add_parser("resume", parents=[common], help="undo pause")
    resume.add_argument("target", metavar="STORE_OR_WALLET_ID")
    sub.add_parser("retry", parents=[common], help="end every back-off: the next cycle tries now")

    demo = sub.add_parser(
        "demo", parents=[common], help="run the daemon against a simulated Bitcart, sped up"
    )
    demo.add_argument("--json", action="store_true", help="print a machine summary at the end")
    return parser


def _since(text: str) -> Any:
    from liquidityhelper.history import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.dry_run:
        overrides["dry_run"] = True
    if args.log_format:
        overrides["log_format"] = args.log_format
    if args.log_level:
        overrides["log_level"] = args.log_level
    if args.command == "once":
        overrides["single_run"] = True
    return load_settings(config_path_from(args.config), **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("config", "dry_run", "log_format", "log_level"):
        setattr(args, name, getattr(args, name, None))
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    if args.command == "demo":
        from liquidityhelper.demo import run_demo

        return run_demo(json_output=args.json, log_level=args.log_level, log_format=args.log_format)
    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    register_secrets(secret_values(settings))
    configure_logging(settings.log_level, settings.log_format)

    if args.command == "config":
        if args.config_command != "check":
            parser.parse_args(["config", "--help"])
        return config_check(settings, config_path_from(args.config))
    if args.command in ("run", "once"):
        from liquidityhelper.main import run_daemon

        return run_daemon(settings)
    if args.command == "status":
        from liquidityhelper.status_command import run_status

        return run_status(settings, as_json=args.json)
    if args.command == "history":
        from liquidityhelper.history import run_history

        return run_history(
            settings, since=args.since, wallet=args.wallet, store=args.store, as_json=args.json
        )
    if args.command == "report":
        from liquidityhelper.report import run_report

        return run_report(settings, since=args.since, as_json=args.json)
    if args.command in ("pause", "resume", "retry"):
        from liquidityhelper.controls import run_control

        return run_control(settings, args.command, getattr(args, "target", None))
    if args.command == "payees":
        from liquidityhelper.payees import run_payees

        if args.payees_command not in ("list", "forget"):
            parser.parse_args(["payees", "--help"])
        return run_payees(settings, args.payees_command, getattr(args, "address", None))
    if args.command == "nodes":
        from liquidityhelper.nodes.commands import run_nodes_command

        return run_nodes_command(settings, args)
    parser.print_help()
    return EXIT_CONFIG


def config_check(settings: Settings, config_path: Path | None) -> int:
    rows = describe_sources(settings, config_path)
    width = max(len(k) for k, _, _ in rows)
    for key, value, source in rows:
        print(f"{key:<{width}}  {value}  [{source}]")
    problems = readiness_problems(settings)
    for p in problems:
        print(f"note: {p}")
    return EXIT_OK


def readiness_problems(settings: Settings) -> list[str]:
    """What `run` will need that is not set; `config check` still succeeds."""
    out = []
    if not settings.api_tokens:
        out.append("api_token is not set: the daemon cannot reach Bitcart")
    if settings.cashout_lightning_address is None:
        out.append("cashout_lightning_address is not set: cashouts are off")
    if settings.fee_rate > 0 and settings.fee_lightning_address is None:
        out.append("fee_rate is set but fee_lightning_address is not: fee payments are off")
    if settings.daemon_url is None:
        out.append(
            "daemon_url is not set: an empty channel list cannot be cross-checked, "
            "so no channel will be opened"
        )
    return out
