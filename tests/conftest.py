"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def rtl_build_root() -> Path:
    """Root of the simulator builds, as every transport finds it: ``$REUSE_ACCEL_BUILD`` or
    ``rtl`` in the per-user cache directory, kept between sessions (a build is reused while the
    config and the gateware are unchanged)."""
    from reuse_accel.sim.cocotb.transport import build_root

    return build_root()
