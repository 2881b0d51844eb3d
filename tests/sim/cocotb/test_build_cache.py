"""Where simulator builds are cached: the per-user cache directory, or ``$REUSE_ACCEL_BUILD``,
whatever the working directory; one build directory per simulator, top module and
configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from reuse_accel.hw.config import AccelConfig
from reuse_accel.sim.cocotb.transport import (
    BUILD_ENV,
    CocotbTransport,
    build_key,
    build_root,
    sources_digest,
)

SMALL = AccelConfig(lanes=2, clusters=4, max_neurons=16, weight_depth=64, max_layers=2)


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory of its own and a cache home in ``tmp_path``, no override."""
    monkeypatch.delenv(BUILD_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def test_default_is_the_user_cache_directory(elsewhere):
    assert build_root() == elsewhere / "cache" / "reuse-accel" / "rtl"
    transport = CocotbTransport(SMALL, "verilator")
    assert transport.directory == \
        elsewhere / "cache" / "reuse-accel" / "rtl" / f"verilator-reuse_accel-{build_key(SMALL)}"
    assert not (elsewhere / "work" / "build").exists()


def test_environment_variable_moves_the_cache(elsewhere, monkeypatch):
    monkeypatch.setenv(BUILD_ENV, str(elsewhere / "builds"))
    assert build_root() == elsewhere / "builds"
    assert CocotbTransport(SMALL, "verilator").directory.parent == elsewhere / "builds"
    # An explicit build_dir wins over both.
    explicit = CocotbTransport(SMALL, "verilator", build_dir=elsewhere / "mine")
    assert explicit.directory.parent == elsewhere / "mine"


def test_working_directory_does_not_change_the_build(elsewhere, monkeypatch):
    first = CocotbTransport(SMALL, "verilator").directory
    monkeypatch.chdir(elsewhere)
    assert CocotbTransport(SMALL, "verilator").directory == first


def test_key_follows_configuration_and_top():
    assert build_key(SMALL) == build_key(AccelConfig(lanes=2, clusters=4, max_neurons=16,
                                                     weight_depth=64, max_layers=2))
    assert build_key(SMALL) == build_key(SMALL, top="reuse_accel")
    assert len({build_key(SMALL), build_key(SMALL, top="other"), build_key(AccelConfig()),
                build_key(SMALL, extra="chunk=8")}) == 4


def test_session_fixture_uses_the_same_root(rtl_build_root):
    assert rtl_build_root == build_root()
    assert isinstance(rtl_build_root, Path)


def test_sources_digest_covers_subpackages(tmp_path):
    """A build is redone when any gateware source changes, in a subpackage too."""
    (tmp_path / "core").mkdir()
    (tmp_path / "top.py").write_text("A = 1\n")
    (tmp_path / "core" / "mac.py").write_text("B = 1\n")
    (tmp_path / "notes.txt").write_text("not a source\n")
    before = sources_digest(tmp_path)
    (tmp_path / "notes.txt").write_text("still not a source\n")
    assert sources_digest(tmp_path) == before
    (tmp_path / "core" / "mac.py").write_text("B = 2\n")
    changed = sources_digest(tmp_path)
    assert changed != before
    (tmp_path / "core" / "mac.py").rename(tmp_path / "core" / "adder.py")
    assert sources_digest(tmp_path) not in (before, changed)
