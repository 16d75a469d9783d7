"""The image's entrypoint: a configuration error holds still instead of a restart loop."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ENTRYPOINT = Path(__file__).resolve().parents[1] / "deploy" / "docker-entrypoint.sh"


def fake_daemon(tmp_path: Path, status: int) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "liquidityhelper"
    fake.write_text(f"#!/bin/sh\necho 'config error: api_url: bad' >&2\nexit {status}\n")
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_exit_2_holds_still_instead_of_restarting(tmp_path: Path) -> None:
    with pytest.raises(subprocess.TimeoutExpired) as held:
        subprocess.run(
            ["sh", str(ENTRYPOINT), "run"],
            env=fake_daemon(tmp_path, 2),
            capture_output=True,
            timeout=1.5,
            check=False,
        )
    assert b"config error: api_url" in (held.value.stderr or b"")


@pytest.mark.parametrize("status", [0, 1, 3])
def test_other_exits_pass_through(tmp_path: Path, status: int) -> None:
    proc = subprocess.run(
        ["sh", str(ENTRYPOINT), "run"], env=fake_daemon(tmp_path, status), timeout=10, check=False
    )
    assert proc.returncode == status


def test_a_one_shot_command_with_a_bad_setting_still_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["sh", str(ENTRYPOINT), "config", "check"],
        env=fake_daemon(tmp_path, 2),
        timeout=10,
        check=False,
    )
    assert proc.returncode == 2
