"""UART physical layer: 8N1 byte streams (one start bit, 8 data bits LSB first, one stop bit).

Both components count time in clock cycles: one bit lasts ``clocks_per_bit`` cycles
(``clk_frequency / baudrate``, at least 4 so that mid-bit sampling has room).

:class:`UartTx`
    ``i`` (``lib.stream`` of bytes) -> ``tx`` (idle high). A byte is accepted in a cycle where
    ``i.ready`` is high (the line is idle); ``tx`` drops to the start bit at that clock edge and
    each bit then lasts exactly ``clocks_per_bit`` cycles, so ``i.ready`` rises again exactly
    ``10 * clocks_per_bit`` cycles after the edge that accepted the byte: back-to-back bytes
    leave without a gap. ``i.ready`` depends on registers only.

:class:`UartRx`
    ``rx`` -> ``o`` (bytes). ``rx`` goes through a 2-flop synchronizer (it comes straight from
    a pin). A falling edge starts a byte; the start bit is sampled ``clocks_per_bit // 2``
    cycles later and, if the line is high again, the edge was a glitch and is ignored. Data bits
    and the stop bit are then sampled every ``clocks_per_bit`` cycles (mid-bit). Exactly: with
    c = ``clocks_per_bit`` and ``rx`` low from clock edge 1, the receiver leaves IDLE at edge 3
    (2 synchronizer edges), samples the start bit at edge 3 + c//2 (in its (c//2 + 1)-th
    cycle) and the stop bit at edge 3 + c//2 + 9c; a byte with a high stop bit is on ``o``
    from that edge on and stays valid until taken or replaced by the next byte (the receiver
    never stalls the line). A low stop bit is a framing error:
    the byte is discarded, ``framing_error`` pulses for one cycle, ``framing_errors`` counts it
    (wrapping), and the receiver waits for the line to go high before the next start bit (a
    break condition counts once).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "check_clocks_per_bit"]

MIN_CLOCKS_PER_BIT = 4


def check_clocks_per_bit(clocks_per_bit) -> int:
    """Validate a bit time in clock cycles; returns it."""
    if isinstance(clocks_per_bit, bool) or not isinstance(clocks_per_bit, int):
        raise TypeError(f"clocks_per_bit must be an integer (clock frequency / baud rate), "
                        f"not {clocks_per_bit!r}")
    if clocks_per_bit < MIN_CLOCKS_PER_BIT:
        raise ValueError(
            f"clocks_per_bit must be at least {MIN_CLOCKS_PER_BIT} for mid-bit sampling, not "
            f"{clocks_per_bit}: lower the baud rate or raise the clock frequency")
    return clocks_per_bit


class UartTx(wiring.Component):
    """8N1 transmitter.

    Parameters
    ----------
    clocks_per_bit : int
        Bit time in clock cycles, at least 4.

    Attributes
    ----------
    i : In(stream.Signature(8))
        Bytes to send; ``ready`` while the line is idle.
    tx : Out(1)
        The line, high when idle (registered).
    """

    def __init__(self, *, clocks_per_bit: int):
        self._clocks_per_bit = check_clocks_per_bit(clocks_per_bit)
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    @property
    def clocks_per_bit(self) -> int:
        return self._clocks_per_bit

    def elaborate(self, platform):
        m = Module()
        cpb = self._clocks_per_bit
        pending = Signal(9)                 # data bits then the stop bit, LSB next
        bits_left = Signal(range(11))       # bits still on or for the line
        timer = Signal(range(cpb))

        m.d.comb += self.i.ready.eq(bits_left == 0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                self.tx.eq(0),
                pending.eq(Cat(self.i.payload, 1)),
                bits_left.eq(10),
                timer.eq(cpb - 1),
            ]
        with m.Elif(bits_left != 0):
            with m.If(timer == 0):
                # The stop bit's shift brings in a 1: the line stays high when idle.
                m.d.sync += [
                    self.tx.eq(pending[0]),
                    pending.eq(Cat(pending[1:], 1)),
                    bits_left.eq(bits_left - 1),
                    timer.eq(cpb - 1),
                ]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UartRx(wiring.Component):
    """8N1 receiver with a 2-flop synchronizer, glitch rejection and framing-error detection.

    Parameters
    ----------
    clocks_per_bit : int
        Bit time in clock cycles, at least 4.

    Attributes
    ----------
    rx : In(1)
        The line (asynchronous, idle high).
    o : Out(stream.Signature(8))
        Received bytes.
    framing_error : Out(1)
        One-cycle pulse for a byte whose stop bit was low.
    framing_errors : Out(16)
        Count of framing errors (wraps).
    """

    def __init__(self, *, clocks_per_bit: int):
        self._clocks_per_bit = check_clocks_per_bit(clocks_per_bit)
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "framing_error": Out(1),
            "framing_errors": Out(16),
        })

    @property
    def clocks_per_bit(self) -> int:
        return self._clocks_per_bit

    def elaborate(self, platform):
        m = Module()
        cpb = self._clocks_per_bit
        line = Signal(init=1)
        m.submodules.synchronizer = FFSynchronizer(self.rx, line, init=1, stages=2)

        timer = Signal(range(cpb))
        bit = Signal(range(8))
        shift = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(cpb // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"             # high in the middle of the start bit: a glitch
                with m.Else():
                    m.d.sync += [timer.eq(cpb - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), bit.eq(bit + 1),
                                 timer.eq(cpb - 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.framing_error.eq(1)
                    m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m
