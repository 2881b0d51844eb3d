"""Pin-limited wrapper: the accelerator with its stream payloads on one pin each way.

The accelerator's ports take ``2 * stream_width + 8`` pins (72 at the default width), more than
a small package offers (the iCE40UP5K in SG48 has 39 user I/Os). To place and route it there
anyway, and to measure the accelerator rather than its pads, :class:`SerialPayloadPins` shifts
the input payload in through one pin and the output payload out through another:

- ``i_data``: each cycle a bit enters the input shift register at its MSB and the register
  shifts right, so the first of the last ``stream_width`` bits sent is the payload's LSB; the
  register is the accelerator's ``s_axis_tdata``. ``i_valid``/``i_ready`` are its
  ``s_axis_tvalid``/``s_axis_tready``.
- ``o_data``: the output register loads ``m_axis_tdata`` on each output transfer and shifts right
  otherwise; its LSB is the pin. ``o_valid``/``o_ready`` are its ``m_axis_tvalid``/
  ``m_axis_tready`` (``m_axis_tlast`` is left unconnected: responses frame themselves).

The wrapper adds ``2 * stream_width`` flip-flops and about ``stream_width`` LUTs (the load/shift
multiplexer); synthesis reports include them. It registers every payload bit at the pins, so
the measured Fmax is the accelerator's internal register-to-register speed. It is a measuring
harness, not an interface: a board design puts a real bridge (e.g. a UART) in its place.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from reuse_accel.hw.config import AccelConfig, check_config
from reuse_accel.hw.top import Accelerator

__all__ = ["SerialPayloadPins", "pin_count"]


def pin_count(config: AccelConfig, *, serial: bool) -> int:
    """User I/O pins of the accelerator (``serial=False``) or of the wrapper, clock included."""
    if serial:
        return 2 + 4 + 2    # i_data, o_data; the valids and readies; clk, rst
    return 2 * config.stream_width + 4 + 2 + 2   # tdata; tvalid, tready; tlast; clk, rst


class SerialPayloadPins(wiring.Component):
    """The :class:`Accelerator` with bit-serial payload pins.

    Parameters
    ----------
    config : AccelConfig
        Parameters of the wrapped accelerator.
    """

    i_valid: In(1)
    i_ready: Out(1)
    i_data: In(1)
    o_valid: Out(1)
    o_ready: In(1)
    o_data: Out(1)

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        super().__init__()

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        width = self._config.stream_width
        m.submodules.accel = accel = Accelerator(self._config)

        shift_in = Signal(width)
        m.d.sync += shift_in.eq(Cat(shift_in[1:], self.i_data))
        m.d.comb += [
            accel.s_axis_tdata.eq(shift_in),
            accel.s_axis_tvalid.eq(self.i_valid),
            self.i_ready.eq(accel.s_axis_tready),
        ]

        shift_out = Signal(width)
        with m.If(accel.m_axis_tvalid & accel.m_axis_tready):
            m.d.sync += shift_out.eq(accel.m_axis_tdata)
        with m.Else():
            m.d.sync += shift_out.eq(shift_out >> 1)
        m.d.comb += [
            self.o_data.eq(shift_out[0]),
            self.o_valid.eq(accel.m_axis_tvalid),
            accel.m_axis_tready.eq(self.o_ready),
        ]
        return m
