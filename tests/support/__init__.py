"""Helpers shared by the tests: random networks, the accelerator's command exchanges, stream
drivers for Amaranth testbenches and the cocotbext-axi bench.

``tests/`` is on ``sys.path`` (``tests/conftest.py`` puts it there), so every test imports these
as ``support.<module>``, whatever folder it lives in; the simulator's Python inherits that path
and loads ``support.axi_bench`` the same way.
"""

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
"""The ``tests`` folder."""

DATA = TESTS / "data"
"""Fixture files (ONNX models) the tests read."""

ROOT = TESTS.parent
"""The checkout."""
