"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def rtl_build_root() -> Path:
    """Root of the simulator builds (``$REUSE_ACCEL_BUILD`` or ``build/rtl`` in the repository),
    kept between sessions: a build is reused while the config and the gateware are unchanged."""
    root = os.environ.get("REUSE_ACCEL_BUILD")
    return Path(root) if root else Path(__file__).resolve().parents[1] / "build" / "rtl"
