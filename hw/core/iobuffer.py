"""Double-banked I/O buffer: a layer reads one bank; its readout fills the other, which the next
layer reads as the rows arrive.

Contract
--------
- Two banks of ``max_groups`` rows of L signed ``act_width`` values, in one simple dual-port
  memory (the bank is the top address bit).
- ``read``: reads the *input* bank (registered read, one cycle latency). Used by the scanner
  while a layer runs and by the result sender after the frame.
- ``fill``: writes the *input* bank (the host's layer-0 cluster indices, before a frame).
- ``write``: writes the *input* bank too: the activation readout of a layer, which starts with
  ``swap``.
- ``swap``: the other bank becomes the input bank, as a layer's readout starts: the layer has
  read its inputs, and the next layer reads its own from the new input bank while the readout
  writes them (a row only after it was written). Which bank is which needs no reset: a frame
  fills the current input bank and its results end up in it. ``fill`` and ``write`` are never
  active together.
"""

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..config import AccelConfig, check_config

__all__ = ["IOBuffer"]


class IOBuffer(wiring.Component):
    """Ping-pong activation buffer with a bank-select toggle."""

    read_latency = 1
    """Cycles from a read's address to its data."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        row_width = config.row_bits
        row_shape = data.ArrayLayout(signed(config.act_width), config.lanes)
        super().__init__({
            "read": Out(memory.ReadPort.Signature(addr_width=row_width, shape=row_shape)),
            "fill": Out(memory.WritePort.Signature(addr_width=row_width, shape=row_shape)),
            "write": Out(memory.WritePort.Signature(addr_width=row_width, shape=row_shape)),
            "swap": In(1),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        row_width = config.row_bits
        m.submodules.banks = banks = memory.Memory(
            shape=data.ArrayLayout(signed(config.act_width), config.lanes),
            depth=2 << row_width, init=[])
        read = banks.read_port()
        write = banks.write_port()

        input_bank = Signal()
        with m.If(self.swap):
            m.d.sync += input_bank.eq(~input_bank)

        m.d.comb += [
            read.addr.eq(Cat(self.read.addr, input_bank)),
            read.en.eq(self.read.en),
            self.read.data.eq(read.data),
        ]
        # Both writers fill the input bank (the host before a frame, a readout after its swap).
        with m.If(self.fill.en):
            m.d.comb += [write.addr.eq(self.fill.addr), write.data.eq(self.fill.data)]
        with m.Else():
            m.d.comb += [write.addr.eq(self.write.addr), write.data.eq(self.write.data)]
        m.d.comb += [
            write.addr[-1].eq(input_bank),
            write.en.eq(self.fill.en | self.write.en),
        ]
        return m
