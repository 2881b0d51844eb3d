"""Pin-limited wrapper: the accelerator with its stream payloads on one pin each way.

The accelerator's ports take ``2 * stream_width + 6`` pins (70 at the default width), more than
a small package offers (the iCE40UP5K in SG48 has 39 user I/Os). To place and route it there
anyway, and to measure the accelerator rather than its pads, :class:`SerialPayloadPins` shifts
the input payload in through one pin and the output payload out through another:

- ``i_data``: each cycle a bit enters the input shift register at its MSB and the register
  shifts right, so the first of the last ``stream_width`` bits sent is the payload's LSB; the
  register is the accelerator's ``i.payload``. ``i_valid``/``i_ready`` are the accelerator's.
- ``o_data``: the output register loads ``o.payload`` on each output transfer and shifts right
  otherwise; its LSB is the pin. ``o_valid``/``o_ready`` are the accelerator's.

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
    streams = 4 + (2 if serial else 2 * config.stream_width)  # valid, ready and the payloads
    return streams + 2  # clk, rst


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
            accel.i.payload.eq(shift_in),
            accel.i.valid.eq(self.i_valid),
            self.i_ready.eq(accel.i.ready),
        ]

        shift_out = Signal(width)
        with m.If(accel.o.valid & accel.o.ready):
            m.d.sync += shift_out.eq(accel.o.payload)
        with m.Else():
            m.d.sync += shift_out.eq(shift_out >> 1)
        m.d.comb += [
            self.o_data.eq(shift_out[0]),
            self.o_valid.eq(accel.o.valid),
            accel.o.ready.eq(self.o_ready),
        ]
        return m
