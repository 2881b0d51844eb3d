"""The synthesis targets and the FPGAs behind them.

``generic`` is Yosys's internal gate library (no device); ``ice40`` is the iCE40UP5K in the SG48
package (the iCEBreaker); ``ecp5`` the LFE5U-85F, CABGA381, speed grade 6 (the ULX3S 85F).
:data:`DEVICES` holds each FPGA's resource totals (from the vendor data sheets) and its
nextpnr device arguments; :data:`BRAM_CELLS`, :data:`SPRAM_CELLS` and :data:`DSP_CELLS` name
the primitives the counts of a report come from; :func:`pin_constraints` places ``clk`` on the
board's clock pin and leaves every other pin unconstrained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TARGETS", "DEFAULT_CLOCK_MHZ", "SynthInputError", "check_target", "Device", "DEVICES",
    "BRAM_CELLS", "SPRAM_CELLS", "DSP_CELLS", "board_clock_pin", "pin_constraints",
]

TARGETS = ("generic", "ice40", "ecp5")

DEFAULT_CLOCK_MHZ = {"generic": 100.0, "ice40": 24.0, "ecp5": 100.0}
"""Clock target per target, in MHz, when none is given."""


class SynthInputError(ValueError):
    """A bad argument to the flow (unknown target, bad clock, missing config field)."""


def check_target(target: str) -> str:
    """``target`` if it is one of :data:`TARGETS`; :class:`SynthInputError` naming them if not."""
    if target not in TARGETS:
        raise SynthInputError(
            f"unknown synthesis target {target!r}; choose one of {', '.join(TARGETS)}")
    return target


@dataclass(frozen=True)
class Device:
    """An FPGA and its resource totals (from the vendor data sheets)."""

    name: str
    package: str
    luts: int
    ffs: int
    bram_blocks: int
    bram_block_bits: int
    spram_blocks: int
    spram_block_bits: int
    dsps: int
    io_pins: int
    nextpnr_args: tuple[str, ...]


DEVICES = {
    "ice40": Device(name="iCE40UP5K", package="SG48", luts=5280, ffs=5280, bram_blocks=30,
                    bram_block_bits=4096, spram_blocks=4, spram_block_bits=256 * 1024, dsps=8,
                    io_pins=39, nextpnr_args=("--up5k", "--package", "sg48")),
    "ecp5": Device(name="LFE5U-85F", package="CABGA381", luts=83640, ffs=83640,
                   bram_blocks=208, bram_block_bits=18 * 1024, spram_blocks=0,
                   spram_block_bits=0, dsps=156, io_pins=197,
                   nextpnr_args=("--85k", "--package", "CABGA381", "--speed", "6")),
}


def board_clock_pin(target: str) -> str:
    """The board's clock input pin (iCEBreaker ``clk12``, ULX3S ``clk25``) from amaranth-boards.

    nextpnr places unconstrained pins anywhere, and a clock on a pad that cannot reach the
    global network does not route ("Failed to route arc 0.0 of net 'clk$TRELLIS_IO_IN'"), so
    ``clk`` is always placed on the board's clock pin; other pins stay unconstrained.
    """
    if target == "ice40":
        from amaranth_boards.icebreaker import ICEBreakerPlatform as Platform
    else:
        from amaranth_boards.ulx3s import ULX3S_85F_Platform as Platform
    platform = Platform()
    return platform.lookup(platform.default_clk).ios[0].names[0]



def pin_constraints(target: str, workdir: Path) -> list[str]:
    """nextpnr arguments placing ``clk`` on the board clock pin (the constraint file is written
    into ``workdir``)."""
    pin = board_clock_pin(target)
    if target == "ice40":
        (workdir / "pins.pcf").write_text(f"set_io clk {pin}\n")
        return ["--pcf", "pins.pcf", "--pcf-allow-unconstrained"]
    (workdir / "pins.lpf").write_text(f'LOCATE COMP "clk" SITE "{pin}";\n'
                                      f'IOBUF PORT "clk" IO_TYPE=LVCMOS33;\n')
    return ["--lpf", "pins.lpf", "--lpf-allow-unconstrained"]



# Primitives counted in a report, per FPGA target.
BRAM_CELLS = {"ice40": ("SB_RAM40_4K",), "ecp5": ("DP16KD", "PDPW16KD")}
SPRAM_CELLS = {"ice40": ("SB_SPRAM256KA",), "ecp5": ()}
DSP_CELLS = {"ice40": ("SB_MAC16",), "ecp5": ("MULT18X18D", "ALU54B")}
