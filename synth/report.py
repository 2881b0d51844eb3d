"""What a configuration became on a target: :class:`SynthReport`, and the cost of reuse.

Counting rules
--------------
- ``luts``: LUT4s. iCE40: ``SB_LUT4`` cells (an ``SB_CARRY`` shares its logic cell). ECP5:
  ``LUT4`` cells plus two per ``CCU2C`` (a carry cell occupies the two LUT4s of a slice, as
  nextpnr counts it in ``TRELLIS_COMB``) and :data:`LUT4_PER_LUT_RAM` per distributed-RAM cell
  (``TRELLIS_DPR16X4``, 16 x 4 bits, which takes the LUT4s of two slices), so that moving logic
  into distributed RAM cannot hide it; ``lut_ram`` also reports those cells. ECP5 LUTs are
  mapped with abc9; when Yosys 0.70's abc9 fails an assertion on a netlist (seen on the
  default configuration), the flow maps with the classic ``abc -lut 4:7`` instead and says so
  in ``lut_mapper``.
- ``ffs``: flip-flop cells (``SB_DFF*``, ``TRELLIS_FF``; generic: every ``$_*DFF*`` cell).
- ``bram_blocks``/``bram_bits``: ``SB_RAM40_4K`` (4 Kbit) or ``DP16KD`` (18 Kbit) cells and
  their capacity; ``spram_blocks``/``spram_bits``: ``SB_SPRAM256KA`` (256 Kbit).
- ``dsps``: ``SB_MAC16`` or ``MULT18X18D`` (plus ``ALU54B``) cells.

``fits`` is false, with ``fit_reason`` saying why, when the synthesized resources exceed the
device or nextpnr cannot place the design: that is a result, not an error.
:func:`reuse_overhead` compares a report with the reuse logic against one without it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .devices import DEVICES, SynthInputError

__all__ = ["SRAM_TRANSISTORS_PER_BIT", "LUT4_PER_LUT_RAM", "MemoryMapping", "Multiplier",
           "CriticalPath", "SynthReport", "reuse_overhead"]

SRAM_TRANSISTORS_PER_BIT = 6
"""Generic target: transistors per SRAM macro bit (6T bit cell; periphery not counted)."""

LUT4_PER_LUT_RAM = 4
"""ECP5: LUT4s counted for one ``TRELLIS_DPR16X4`` distributed-RAM cell (its two slices)."""


@dataclass
class MemoryMapping:
    """One memory of the design and what synthesis made of it.

    ``mapped_to`` is ``bram``, ``spram``, ``lutram`` (distributed RAM), ``ff`` (flip-flops and
    multiplexers) or ``sram_macro`` (generic target, kept as a memory).
    """

    name: str
    depth: int
    width: int
    bits: int
    read_ports: int
    write_ports: int
    mapped_to: str
    cell: str | None = None


@dataclass
class Multiplier:
    """A multiplication in the design before technology mapping (operands of 2 bits or more;
    a 1-bit operand is an AND gate): the cell, its operand widths and signedness."""

    cell: str
    a_width: int
    b_width: int
    signed: bool


@dataclass
class CriticalPath:
    """nextpnr's worst register-to-register path of the clock."""

    from_cell: str
    to_cell: str
    delay_ns: float
    logic_ns: float
    routing_ns: float
    logic_levels: int
    cells: list[str]


@dataclass
class SynthReport:
    """What one configuration became on one target.

    Resource fields are ``None`` where they do not apply (no LUTs on ``generic``, no Fmax
    without place-and-route, no place-and-route when the design cannot fit); see the module
    docstring for the counting rules. ``timing_met`` is ``fmax_mhz >= clock_mhz``.
    """

    target: str
    device: str | None
    package: str | None
    config: dict
    reuse: bool
    top: str
    clock_mhz: float
    fits: bool | None
    fit_reason: str | None
    luts: int | None
    ffs: int
    lut_ram: int | None
    bram_blocks: int | None
    bram_bits: int | None
    spram_blocks: int | None
    spram_bits: int | None
    dsps: int | None
    memory_bits: int
    utilization: dict
    pnr_utilization: dict
    fmax_mhz: float | None
    timing_met: bool | None
    critical_path: CriticalPath | None
    memories: list[MemoryMapping]
    multipliers: list[Multiplier]
    dsp_by_signal: dict | None
    lut_mapper: str | None
    cells: dict
    transistors: int | None
    transistors_partial: bool | None
    sram_macro_bits: int | None
    logs: dict
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The report as JSON-serialisable data."""
        return dataclasses.asdict(self)

    @property
    def memories_in_logic(self) -> list[MemoryMapping]:
        """Memories that became flip-flops (on an FPGA, the ones that missed block RAM)."""
        return [memory for memory in self.memories if memory.mapped_to == "ff"]

    def summary(self) -> str:
        """A few human-readable lines."""
        where = self.device and f"{self.device} ({self.package})" or "generic gates"
        lines = [f"target {self.target}: {where}, reuse {'on' if self.reuse else 'off'}, "
                 f"clock target {self.clock_mhz:g} MHz"]
        if self.target == "generic":
            lines.append(f"  cells {sum(self.cells.values())}, flip-flops {self.ffs}, "
                         f"transistors {self.transistors}{'+' if self.transistors_partial else ''}"
                         f" (logic) + SRAM macros {self.sram_macro_bits} bits")
        else:
            def used(name, value, total):
                return f"{name} {value}/{total} ({100 * value / total:.1f}%)" if total else \
                    f"{name} {value}"
            device = DEVICES[self.target]
            parts = [used("LUT4", self.luts, device.luts), used("FF", self.ffs, device.ffs),
                     used("BRAM", self.bram_blocks, device.bram_blocks)]
            if device.spram_blocks:
                parts.append(used("SPRAM", self.spram_blocks, device.spram_blocks))
            parts.append(used("DSP", self.dsps, device.dsps))
            if self.lut_ram:
                parts.append(f"LUT RAM {self.lut_ram}")
            lines.append("  " + ", ".join(parts))
            if self.lut_mapper and self.lut_mapper != "abc9":
                lines.append(f"  LUT mapping: {self.lut_mapper}")
            if self.fits is False:
                lines.append(f"  does NOT fit: {self.fit_reason}")
            elif self.fmax_mhz is not None:
                verdict = "met" if self.timing_met else "MISSED"
                lines.append(f"  Fmax {self.fmax_mhz:.1f} MHz, timing {verdict}")
            if self.critical_path is not None and self.fits:
                path = self.critical_path
                lines.append(f"  critical path {path.delay_ns:.2f} ns ({path.logic_levels} "
                             f"logic levels, {path.routing_ns:.2f} ns routing): "
                             f"{path.from_cell} -> {path.to_cell}")
        for memory in self.memories:
            lines.append(f"  memory {memory.name}: {memory.depth}x{memory.width} -> "
                         f"{memory.mapped_to}")
        widths = ", ".join(f"{mul.a_width}x{mul.b_width}" for mul in self.multipliers)
        lines.append(f"  multiplications: {len(self.multipliers)} ({widths})")
        for signal, count in (self.dsp_by_signal or {}).items():
            lines.append(f"  DSP blocks driving {signal}: {count}")
        return "\n".join(lines)


# -- reuse overhead -----------------------------------------------------------------------------

_OVERHEAD_FIELDS = ("luts", "ffs", "lut_ram", "bram_blocks", "bram_bits", "spram_blocks",
                    "memory_bits", "dsps", "transistors", "sram_macro_bits")


def reuse_overhead(with_reuse: SynthReport, without_reuse: SynthReport) -> dict:
    """Extra resources of the reuse logic, in percent of the no-reuse design.

    ``100 * (with - without) / without`` for each resource both reports count (``None`` when
    the no-reuse design uses none of it, or the target does not count it). On ``generic``,
    ``total_transistors`` adds :data:`SRAM_TRANSISTORS_PER_BIT` per SRAM macro bit to the logic
    estimate.

    Raises
    ------
    SynthInputError
        The reports are not a reuse / no-reuse pair of the same target and clock.
    """
    if not with_reuse.reuse or without_reuse.reuse:
        raise SynthInputError("reuse_overhead needs a report with reuse and one without, in "
                              "that order")
    if with_reuse.target != without_reuse.target:
        raise SynthInputError(f"reports are for different targets ({with_reuse.target} and "
                              f"{without_reuse.target})")

    def percent(new, old):
        if new is None or old is None or old == 0:
            return None
        return round(100.0 * (new - old) / old, 2)

    overhead = {name: percent(getattr(with_reuse, name), getattr(without_reuse, name))
                for name in _OVERHEAD_FIELDS}
    if with_reuse.target == "generic":
        def total(report):
            return (report.transistors or 0) + SRAM_TRANSISTORS_PER_BIT * \
                (report.sram_macro_bits or 0)
        overhead["total_transistors"] = percent(total(with_reuse), total(without_reuse))
    return overhead
