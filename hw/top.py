"""Accelerator top: the command front end and the processing tile, on AXI4-Stream ports.

Ports (the generated Verilog's names, plus ``clk`` and ``rst``, synchronous and active high):

==================  =====  ====================================================================
``s_axis_tdata``    in     command words, ``stream_width`` bits (:mod:`.protocol`)
``s_axis_tvalid``   in
``s_axis_tready``   out
``s_axis_tlast``    in     ignored: commands frame themselves by their header's length
``m_axis_tdata``    out    response words, ``stream_width`` bits
``m_axis_tvalid``   out
``m_axis_tready``   in
``m_axis_tlast``    out    high on the last word of every response
==================  =====  ====================================================================

A word moves when ``tvalid`` and ``tready`` are both high at a rising edge (AXI4-Stream); once
``m_axis_tvalid`` rises it stays high, with its data, until taken. ``s_axis_tready`` and
``m_axis_tvalid`` depend on registers only, never combinationally on ``s_axis_tvalid`` or
``m_axis_tready``. cocotbext-axi's ``AxiStreamSource``/``AxiStreamSink``/``AxiStreamMonitor``
connect with ``AxiStreamBus.from_prefix(dut, "s_axis")`` and ``"m_axis"``, and so does a DMA.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig, check_config
from .frontend import CommandFrontend
from .tile import ProcessingTile

__all__ = ["Accelerator", "generate_verilog", "DEFAULT_TOP"]

DEFAULT_TOP = "reuse_accel"
"""Name of the generated top module unless another is asked for."""


class Accelerator(wiring.Component):
    """The reuse accelerator behind its host command protocol, on AXI4-Stream ports.

    Parameters
    ----------
    config : AccelConfig
        The hardware parameters; every size and width follows from them.
    """

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        width = config.stream_width
        super().__init__({
            "s_axis_tdata": In(width),
            "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(width),
            "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        m.submodules.frontend = frontend = CommandFrontend(self._config)
        m.submodules.tile = tile = ProcessingTile(self._config)
        wiring.connect(m, frontend.tile, tile)
        m.d.comb += [
            frontend.i.payload.eq(self.s_axis_tdata),
            frontend.i.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(frontend.i.ready),
            self.m_axis_tdata.eq(frontend.o.payload.data),
            self.m_axis_tlast.eq(frontend.o.payload.last),
            self.m_axis_tvalid.eq(frontend.o.valid),
            frontend.o.ready.eq(self.m_axis_tready),
        ]
        return m


def generate_verilog(config: AccelConfig, name: str = DEFAULT_TOP) -> str:
    """Verilog of the accelerator: a top module ``name`` with the AXI4-Stream ports above, and
    its submodules named ``name.<path>``, so that designs of two configurations generated under
    different names can be compiled together. No timescale."""
    from amaranth.back import verilog

    return verilog.convert(Accelerator(config), name=name, emit_src=False)
