"""Shared test set-up."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Each test starts with structlog's defaults; a test that configures it cannot leak."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _no_liquidityhelper_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from what each test sets, never from the machine's environment."""
    for key in list(os.environ):
        if key.startswith("LIQUIDITYHELPER_"):
            monkeypatch.delenv(key)
