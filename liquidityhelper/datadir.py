"""Where the journal lives, and the lock that keeps it to one running instance.

Two instances on one journal could each decide to pay the same fee, so ``run`` and ``once``
take an exclusive ``flock`` on ``<data_dir>/liquidityhelper.lock`` (released by the kernel when
the process dies, so a crash never leaves it stale). Read-only commands (``status``,
``config check``, ``payees list``) do not take it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

LOCK_FILE = "liquidityhelper.lock"


def default_data_dir(environ: dict[str, str] | None = None) -> Path:
    """A default that cannot drift with the working directory.

    systemd's ``STATE_DIRECTORY`` (set by ``StateDirectory=``) when present, else the image's
    ``/data`` (the Dockerfile sets ``LIQUIDITYHELPER_DATA_DIR=/data`` as well), else the
    user's state directory (``$XDG_STATE_HOME/liquidityhelper``, ``~/.local/state/...``).
    """
    env = dict(os.environ) if environ is None else environ
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state)
    if Path("/.dockerenv").exists() and Path("/data").is_dir():
        return Path("/data")
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).absolute() / "liquidityhelper"


class DataDirBusyError(Exception):
    """Another process holds the data directory."""

    def __init__(self, data_dir: Path, pid: str) -> None:
        self.data_dir = data_dir
        self.pid = pid
        super().__init__(
            f"data directory {data_dir} is in use by another liquidityhelper (pid {pid or '?'}); "
            "stop it first, or give this one another data_dir"
        )


class DataDirLock:
    """An exclusive, non-blocking lock on a data directory (``with DataDirLock(dir):``)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._fd: int | None = None

    def acquire(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise DataDirBusyError(self.data_dir, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def is_locked(data_dir: Path) -> str | None:
    """The holder's pid when another process holds the lock, else None."""
    try:
        with DataDirLock(data_dir):
            return None
    except DataDirBusyError as exc:
        return exc.pid or "?"
