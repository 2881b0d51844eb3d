"""Shared pytest fixtures, and the import path of the shared helpers.

The tests mirror the package's folders and are imported with ``--import-mode=importlib``
(``pyproject.toml``), so test files in different folders may share a basename and no test
folder is put on ``sys.path``. The helpers in ``tests/support/`` are imported as
``support.<module>`` from every folder: this file puts ``tests/`` on ``sys.path`` before any test
module is collected. The simulators' Python processes inherit that path, which is how cocotb
finds ``support.axi_bench``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)


@pytest.fixture(scope="session")
def rtl_build_root() -> Path:
    """Root of the simulator builds, as every transport finds it: ``$REUSE_ACCEL_BUILD`` or
    ``rtl`` in the per-user cache directory, kept between sessions (a build is reused while the
    config and the gateware are unchanged)."""
    from reuse_accel.sim.cocotb.transport import build_root

    return build_root()
