"""The end-to-end tier: marked ``e2e``, skipped when the realstack kit is absent.

The ``realstack`` fixture (package scope: the whole tier shares one stack, stopped as soon as
the tier is done rather than idling through the rest of the suite) installs the kit
(idempotent), wipes its state and brings the stack up (a fresh chain, fresh Lightning peers, a
fresh Bitcart with a fresh merchant wallet), and stops it at the end. ``REALSTACK_HOME`` is
respected (and wiped!); otherwise a fixed folder under /tmp is used so the built venvs are
reused between runs. When the kit is present, a failing install or up is a test error, not a
skip: in CI the kit is there and must work.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.e2e.stack import DEFAULT_HOME, KIT, KIT_ENV, Bitcart, RealStack, StackError

E2E_DIR = Path(__file__).resolve().parent
# Read at import, before the suite's autouse fixture strips LIQUIDITYHELPER_* from the env.
LOCK_WAIT_SECONDS = 1800
KEEP_UP = os.environ.get("LIQUIDITYHELPER_E2E_KEEP_UP") == "1"  # debugging: no `down` at the end


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(
        reason=f"realstack kit not found at {KIT} (set {KIT_ENV} to its `realstack` script)"
    )
    for item in items:
        if E2E_DIR not in Path(str(item.path)).resolve().parents:
            continue
        item.add_marker(pytest.mark.e2e)
        if not (KIT.is_file() and os.access(KIT, os.X_OK)):
            item.add_marker(skip)


# --- one test per story step: a later step is skipped once an earlier one failed -----------


def _is_step(item: pytest.Item) -> bool:
    """Tests named ``test_step_*`` in a module with ``STEPWISE = True`` form one sequence."""
    module = getattr(item, "module", None)
    return item.name.startswith("test_step") and bool(getattr(module, "STEPWISE", False))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    excinfo = call.excinfo
    skipped = excinfo is not None and excinfo.errisinstance(pytest.skip.Exception)
    if _is_step(item) and call.when == "call" and excinfo is not None and not skipped:
        module: Any = getattr(item, "module", None)
        module.FAILED_STEP = item.name
    return report


def pytest_runtest_setup(item: pytest.Item) -> None:
    failed = getattr(getattr(item, "module", None), "FAILED_STEP", None)
    if _is_step(item) and failed:
        pytest.skip(f"an earlier step failed: {failed}")


# --- the stack ---------------------------------------------------------------------------------


def _lock_stack(home: Path) -> IO[str]:
    """One test session at a time per port base: a second session would wipe the first one's
    stack (same default REALSTACK_HOME) or find its ports taken. Waits, then fails clearly."""
    base = os.environ.get("REALSTACK_PORT_BASE", "24000")
    path = Path(tempfile.gettempdir()) / f"liquidityhelper-e2e-ports-{base}.lock"
    fh = path.open("a+")
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                fh.seek(0)
                holder = fh.read().strip()
                fh.close()
                pytest.fail(
                    f"another e2e session ({holder}) holds {path} for port base {base}; set "
                    f"REALSTACK_PORT_BASE and REALSTACK_HOME to run beside it",
                    pytrace=False,
                )
            time.sleep(5)
    fh.truncate(0)
    fh.write(f"pid {os.getpid()}, REALSTACK_HOME={home}\n")
    fh.flush()
    return fh


@pytest.fixture(scope="package")
def realstack() -> Iterator[RealStack]:
    home = Path(os.environ.get("REALSTACK_HOME") or DEFAULT_HOME)
    lock = _lock_stack(home)
    stack = RealStack(kit=KIT, home=home)
    problem = ""
    try:
        stack.run("install", timeout=1800)
        # A clean story: fresh chain, peers and merchant wallet (cold up about 45 s).
        stack.run("down", "--wipe", timeout=300)
        stack.run("up", timeout=900)
        stack.load_env()
    except StackError as exc:
        problem = str(exc)
    if problem:
        stack.run("down", timeout=300, check=False)  # whatever up had started
        lock.close()
        pytest.fail(
            f"realstack could not be brought up (REALSTACK_HOME={home}, logs in {home}/logs):\n"
            f"{problem}",
            pytrace=False,
        )
    try:
        yield stack
    finally:
        if not KEEP_UP:
            try:
                stack.run("down", timeout=300)
            except StackError as exc:  # never hide the tests' own outcome
                print(f"realstack down failed: {exc}")
        lock.close()  # releases the flock


@pytest.fixture(scope="package")
def bitcart(realstack: RealStack) -> Iterator[Bitcart]:
    client = Bitcart(realstack.env)
    yield client
    client.close()
