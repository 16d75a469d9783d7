"""Drivers for the end-to-end tier: the realstack kit, Bitcart's REST API, the daemon's CLI.

Everything runs on 127.0.0.1. The kit (``../shared/realstack/realstack`` beside the repository,
or ``LIQUIDITYHELPER_REALSTACK``) is only read; its state lives in ``$REALSTACK_HOME``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
KIT_ENV = "LIQUIDITYHELPER_REALSTACK"
# Read once at import: the suite's autouse fixture strips LIQUIDITYHELPER_* from each test's env.
KIT = Path(os.environ.get(KIT_ENV) or REPO_ROOT.parent / "shared" / "realstack" / "realstack")
# Fixed, so the kit's venvs (about two minutes to build) are reused from one run to the next.
DEFAULT_HOME = Path(tempfile.gettempdir()) / "liquidityhelper-realstack"

SAT = Decimal("0.00000001")


class StackError(AssertionError):
    """A realstack command failed; the message carries the tail of its output."""


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def btc_to_sat(value: str | Decimal | float) -> int:
    return int((Decimal(str(value)) / SAT).to_integral_value())


def sat_to_btc(sats: int) -> str:
    return format(Decimal(sats) * SAT, ".8f")


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` and the last value."""
    end = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (httpx.HTTPError, StackError, json.JSONDecodeError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if last:
                return last
        if time.monotonic() > end:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}"
            )
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# the kit
# ---------------------------------------------------------------------------------------------


@dataclass
class RealStack:
    kit: Path
    home: Path
    env: dict[str, str] = field(default_factory=dict)  # parsed `realstack env`

    def _proc_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIQUIDITYHELPER_")}
        env["REALSTACK_HOME"] = str(self.home)
        return env

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        """Run ``realstack ARGS``; return stdout. Fail with the tail of its output."""
        try:
            proc = subprocess.run(
                [str(self.kit), *args],
                env=self._proc_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout
            err = (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else exc.stderr
            raise StackError(
                f"realstack {' '.join(args)} timed out after {timeout}s\n"
                f"{tail(out or '')}\n{tail(err or '')}"
            ) from None
        if check and proc.returncode != 0:
            raise StackError(
                f"realstack {' '.join(args)} exited {proc.returncode}\n"
                f"--- stdout ---\n{tail(proc.stdout)}\n--- stderr ---\n{tail(proc.stderr)}"
            )
        return proc.stdout

    def load_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for line in self.run("env").splitlines():
            line = line.strip()
            if line.startswith("export ") and "=" in line:
                key, _, value = line.removeprefix("export ").partition("=")
                env[key.strip()] = value.strip().strip("'\"")
        self.env = env
        return env

    # --- chain --------------------------------------------------------------------------------

    def height(self) -> int:
        return int(self.run("btc-cli", "getblockcount").strip())

    def mine(self, n: int = 1) -> int:
        return int(self.run("mine", str(n)).strip().splitlines()[-1])

    def fund(self, address: str, btc: str | Decimal) -> str:
        """Pay ADDRESS from the faucet and mine one block; returns the txid."""
        return self.run("fund", address, str(btc), timeout=120).strip().splitlines()[-1]

    # --- Lightning ----------------------------------------------------------------------------

    def invoice(self, btc: str | Decimal) -> dict[str, Any]:
        """A Bitcart invoice in the merchant store: {id, status, price, bolt11, address}."""
        out: dict[str, Any] = json.loads(self.run("invoice", str(btc), timeout=150))
        return out

    def pay_invoice(self, bolt11: str, payer: str = "lsp1") -> dict[str, Any]:
        """A customer pays over Lightning; returns {success, preimage, ...} (never raises on a
        failed payment: the caller asserts with the details)."""
        out = self.run("pay-invoice", bolt11, "--from", payer, timeout=200, check=False)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if not lines:
            return {"success": False, "output": out}
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def ecli(self, who: str, *args: str, timeout: float = 120) -> Any:
        out = self.run("ecli", who, *args, timeout=timeout)
        try:
            return json.loads(out)
        except json.JSONDecodeError:
            return out.strip()

    def lightning_history(self, who: str) -> list[dict[str, Any]]:
        """Electrum 4.6's `lightning_history` of a receiver (there is no `list_payments`)."""
        hist = self.ecli(who, "lightning_history")
        assert isinstance(hist, list), f"lightning_history of {who}: {hist!r}"
        return hist

    def received_payments(self, who: str) -> list[dict[str, Any]]:
        """Incoming Lightning payments of ``who``: settled, type payment, direction RECEIVED
        (Electrum's ``PaymentDirection.RECEIVED`` is 1 in the JSON)."""
        return [
            h
            for h in self.lightning_history(who)
            if h.get("type") == "payment" and h.get("direction") in (1, "received")
        ]

    def lnurl_served(self) -> list[dict[str, Any]]:
        """Every invoice the lightning-address server issued: {user, msat, payment_hash, ...}."""
        path = self.home / "data" / "lnurl-served.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # --- processes ----------------------------------------------------------------------------

    def pids(self) -> dict[str, tuple[int, str]]:
        """``run/pids``: NAME PID START_TIME, one line per service that `up` started."""
        path = self.home / "run" / "pids"
        out: dict[str, tuple[int, str]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 3:
                    out[parts[0]] = (int(parts[1]), parts[2])
        return out

    def kill_service_group(self, name: str, timeout: float = 60) -> int:
        """SIGTERM the process group `up` recorded for NAME (pid and start time checked, as
        realstack's own `down` does); SIGKILL if it lingers. Returns the pid."""
        pid, start = self.pids()[name]
        assert _proc_start(pid) == start, f"{name}: pid {pid} is no longer the process up started"
        os.killpg(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return pid
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
        return pid

    def alive(self, name: str) -> bool:
        entry = self.pids().get(name)
        return entry is not None and _proc_start(entry[0]) == entry[1]

    # --- Bitcart's BTC daemon (JSON-RPC, no wallet) -------------------------------------------

    def daemon_rpc(self, method: str, params: list[Any] | None = None) -> Any:
        r = httpx.post(
            self.env["BITCART_DAEMON_URL"],
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []},
            auth=(self.env["BITCART_DAEMON_USER"], self.env["BITCART_DAEMON_PASSWORD"]),
            timeout=60,
        )
        body = r.json()
        if body.get("error"):
            raise StackError(f"daemon {method}: {body['error']}")
        return body["result"]

    def wait_daemon_synced(self, timeout: float = 120) -> int:
        """Until Bitcart's daemon is connected at the chain tip; returns the height."""

        def synced() -> int | None:
            h = self.height()
            info = self.daemon_rpc("getinfo")
            return h if info.get("connected") and info.get("blockchain_height") == h else None

        result: int = wait_for("Bitcart's daemon at the chain tip", synced, timeout)
        return result


def _proc_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(") ")[2].split()[19]


# ---------------------------------------------------------------------------------------------
# Bitcart REST, as the merchant
# ---------------------------------------------------------------------------------------------


class Bitcart:
    def __init__(self, env: dict[str, str]) -> None:
        self.store_id = env["BITCART_STORE_ID"]
        self.wallet_id = env["BITCART_WALLET_ID"]
        self.http = httpx.Client(
            base_url=env["BITCART_API_URL"],
            headers={"Authorization": f"Bearer {env['BITCART_TOKEN']}"},
            timeout=60,
        )

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params or None)
        assert r.status_code == 200, f"GET {path} {params}: {r.status_code} {r.text[:500]}"
        return r.json()

    def invoices(self) -> list[dict[str, Any]]:
        """Every invoice of the merchant store (all statuses), oldest first."""
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.get(
                "/invoices", query=f"store_id:{self.store_id}", limit=100, offset=offset
            )
            out.extend(page["result"])
            offset += len(page["result"])
            if not page["result"] or offset >= page["count"]:
                break
        return sorted(out, key=lambda i: str(i["created"]))

    def topup_invoices(self) -> list[dict[str, Any]]:
        return [
            i
            for i in self.invoices()
            if (i.get("metadata") or {}).get("liquidityhelper") == "topup"
        ]

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/invoices/{invoice_id}")
        return result

    def channels(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get(f"/wallets/{self.wallet_id}/channels")
        return result

    def balance(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/wallets/{self.wallet_id}/balance")
        return result


def channel_inbound_sat(channel: dict[str, Any]) -> int:
    """What the peer can send us: its balance above its channel reserve."""
    return int(channel["remote_balance"]) - int(channel["remote_reserve"])


def summarize_channels(channels: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = (
        "state",
        "peer_state",
        "remote_pubkey",
        "local_balance",
        "remote_balance",
        "local_reserve",
        "remote_reserve",
        "channel_point",
    )
    return [{k: c.get(k) for k in keys if k in c} for c in channels]


# ---------------------------------------------------------------------------------------------
# the daemon under test
# ---------------------------------------------------------------------------------------------


@dataclass
class CliRun:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]]
    seconds: float

    def named(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
        ]

    def at_least(self, level: str) -> list[dict[str, Any]]:
        order = ["debug", "info", "warning", "error", "critical"]
        return [e for e in self.events if order.index(e.get("level", "info")) >= order.index(level)]

    def brief(self, limit: int = 60) -> str:
        """The log as short lines, for assertion messages."""
        lines = []
        for e in self.events[-limit:]:
            rest = {k: v for k, v in e.items() if k not in ("event", "level", "timestamp")}
            lines.append(f"{e.get('level', '?'):8} {e.get('event')} {json.dumps(rest)[:400]}")
        other = [ln for ln in self.stderr.splitlines() if not ln.startswith("{")]
        return "\n".join(lines + other[-20:])


class LiquidityHelper:
    """``python -m liquidityhelper`` with a clean environment: the connection settings, the
    cashout and fee addresses, the operator fee, a data dir and JSON logs. Nothing else: the
    daemon runs on its defaults."""

    FEE_RATE = "0.02"

    def __init__(self, env: dict[str, str], data_dir: Path) -> None:
        self.data_dir = data_dir
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LIQUIDITYHELPER_API_URL": env["BITCART_API_URL"],
            "LIQUIDITYHELPER_API_TOKEN": env["BITCART_TOKEN"],
            "LIQUIDITYHELPER_DAEMON_URL": env["BITCART_DAEMON_URL"],
            "LIQUIDITYHELPER_DAEMON_USER": env["BITCART_DAEMON_USER"],
            "LIQUIDITYHELPER_DAEMON_PASSWORD": env["BITCART_DAEMON_PASSWORD"],
            "LIQUIDITYHELPER_NETWORK": "regtest",
            "LIQUIDITYHELPER_CASHOUT_LIGHTNING_ADDRESS": env["REALSTACK_CAROL_LNADDR"],
            "LIQUIDITYHELPER_FEE_LIGHTNING_ADDRESS": env["REALSTACK_DAVE_LNADDR"],
            "LIQUIDITYHELPER_FEE_RATE": self.FEE_RATE,
            "LIQUIDITYHELPER_FEE_START_DATE": yesterday,
            "LIQUIDITYHELPER_DATA_DIR": str(data_dir),
            "LIQUIDITYHELPER_LOG_FORMAT": "json",
        }
        self.runs: list[CliRun] = []

    def run(self, *args: str, timeout: float = 900) -> CliRun:
        cmd = [sys.executable, "-m", "liquidityhelper", *args]
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                env=self.env,
                cwd=self.data_dir,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            raise AssertionError(
                f"liquidityhelper {' '.join(args)} did not finish in {timeout}s\n{tail(err)}"
            ) from None
        events = []
        for line in proc.stderr.splitlines() + proc.stdout.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    events.append(json.loads(line))
        # Every run's log is kept beside the journal, for the post-mortem of a failed step.
        name = "-".join(a.lstrip("-") for a in args if "/" not in a)
        log_file = self.data_dir / f"run-{len(self.runs) + 1:02d}-{name}.log"
        log_file.write_text(proc.stderr + proc.stdout)
        run = CliRun(
            list(args), proc.returncode, proc.stdout, proc.stderr, events, time.monotonic() - t0
        )
        self.runs.append(run)
        return run

    def once(self, *, dry_run: bool = False) -> CliRun:
        run = self.run(*(["--dry-run"] if dry_run else []), "once")
        assert run.returncode == 0, f"liquidityhelper once exited {run.returncode}\n{run.brief()}"
        return run

    def import_nodes(self, nodes_json: str) -> CliRun:
        run = self.run("nodes", "import", nodes_json, timeout=120)
        assert run.returncode == 0, f"nodes import exited {run.returncode}\n{run.stderr[-2000:]}"
        return run

    def journal(self) -> list[dict[str, Any]]:
        path = self.data_dir / "liquidityhelper.sqlite"
        if not path.exists():
            return []
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT * FROM actions ORDER BY id")]
        finally:
            conn.close()

    def all_events(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [e for run in self.runs for e in run.named(event, **fields)]
