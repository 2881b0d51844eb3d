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

Gateware only: the bitstream build (toolchain, synthesis options, the configuration each board
is built with) is :mod:`reuse_accel.synth.bitstream`.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io

from .config import AccelConfig, ConfigError, check_config
from .link import UartAccelerator
from .uart import MIN_CLOCKS_PER_BIT

__all__ = ["BOARDS", "Board", "BoardTop", "clocks_per_bit"]

BAUD_TOLERANCE = 0.02
"""Largest relative error of the UART bit rate that the board top accepts."""
HEARTBEAT_HZ = 1.4


@dataclass(frozen=True)
class Board:
    """A supported board: its amaranth-boards platform, FPGA family and status LEDs."""

    name: str
    platform: str            # class name in amaranth_boards.<module>
    module: str
    family: str              # "ice40" or "ecp5"
    busy_led: tuple[str, int]
    error_led: tuple[str, int]

    def make_platform(self):
        import importlib

        return getattr(importlib.import_module(f"amaranth_boards.{self.module}"), self.platform)()


BOARDS = {
    "icebreaker": Board("icebreaker", "ICEBreakerPlatform", "icebreaker", "ice40",
                        busy_led=("led_g", 0), error_led=("led_r", 0)),
    "ulx3s": Board("ulx3s", "ULX3S_85F_Platform", "ulx3s", "ecp5",
                   busy_led=("led", 0), error_led=("led", 1)),
}


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
