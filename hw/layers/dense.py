"""Dense (fully connected) layers: the address generator and the weight layout it reads.

Weight layout
-------------
A dense layer of ``inputs`` inputs and ``outputs`` outputs has ``G = ceil(outputs / L)`` output
groups. Its weights take ``inputs * G`` rows of L weights from ``weight_base``, group-major:
row ``weight_base + g * inputs + i`` holds the weights from input ``i`` to outputs ``g*L ..
g*L + L - 1`` (zero beyond ``outputs``). :func:`weight_rows` builds it on the host.

Address generator
-----------------
For each changed input ``i`` it issues ``G`` MAC items, one per cycle: weight row
``weight_base + g * inputs + i``, bias row ``g`` and sum row ``sum_base + g`` (the layer's
rows start at ``sum_base`` in the sum memory), for ``g = 0 .. G-1`` (the first address is
an addition and each next one adds the stride ``inputs``: no multiplier). The first changed
input of a layer computed from scratch starts every sum row from the biases (in that mode every
input counts as changed, so input 0 comes first and touches every sum row).

- ``i``: changed inputs; ``o``: MAC items; the next input is accepted in the cycle the current
  one issues its last item, so the MAC array sees one item every cycle while inputs wait.
- ``start``: latches the layer's parameters from ``descriptor`` (held stable while the layer
  runs), ``sum_base`` and ``from_scratch``; it must come while no item is offered
  (``o.valid`` low), as between layers.
- ``idle``: no input is being applied.
- Latency :attr:`DenseAddressGenerator.latency` (1); cost :func:`items_per_input` items per
  changed input.
"""

import numpy as np
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.utils import exact_log2

from ..config import AccelConfig, check_config
from ..core.rows import row_count
from .descriptor import address_generator_members

__all__ = ["AddressGenerator", "DenseAddressGenerator", "items_per_input", "weight_extent",
           "weight_row_count", "weight_rows"]


def items_per_input(config: AccelConfig, outputs: int) -> int:
    """MAC items (cycles of the MAC array) per changed input of a dense layer."""
    return config.groups(outputs)


def weight_row_count(config: AccelConfig, inputs: int, outputs: int) -> int:
    """Weight-memory rows a dense layer takes: one per input and output group."""
    return inputs * config.groups(outputs)


def weight_extent(config: AccelConfig, inputs, outputs):
    """:func:`weight_row_count` as gateware, on fields already narrowed to their valid ranges
    (a field beyond its range fails the check anyway, and the product of two 32-bit fields
    would cost several DSP blocks and the longest path of the design)."""
    return inputs * row_count(outputs, config.lanes)


def weight_rows(config: AccelConfig, weights: np.ndarray) -> np.ndarray:
    """The ``(inputs * G, L)`` weight rows of a dense layer's ``(outputs, inputs)`` weights, in
    the order the address generator reads them."""
    weights = np.asarray(weights, dtype=np.int64)
    outputs, inputs = weights.shape
    groups = config.groups(outputs)
    padded = np.zeros((groups * config.lanes, inputs), np.int64)
    padded[:outputs] = weights
    return padded.reshape(groups, config.lanes, inputs).transpose(0, 2, 1).reshape(
        groups * inputs, config.lanes)


class DenseAddressGenerator(wiring.Component):
    """Changed inputs of a dense layer -> MAC items, one per output group."""

    latency = 1
    """Cycles from an input's handshake to its first item on ``o``."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        super().__init__(address_generator_members(config))

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes = config.lanes
        lane_bits = exact_log2(lanes)

        # The layer's parameters, latched at start.
        base = Signal(config.weight_row_bits)
        stride = Signal(config.neuron_count_bits)
        groups = Signal(config.group_count_bits)
        last_lanes = Signal(range(lanes + 1))
        sum_base = Signal(config.sum_row_bits)
        from_scratch = Signal()
        first = Signal()          # no input of the layer accepted yet

        # The input being applied, one item per cycle.
        valid = Signal()
        row = Signal(config.weight_row_bits)
        group = Signal(config.group_bits)
        sum_row = Signal(config.sum_row_bits)
        delta = Signal.like(self.i.payload.delta)
        init = Signal()
        last = Signal()           # group == groups - 1, registered: it drives i.ready

        m.d.comb += [
            self.o.valid.eq(valid),
            self.o.payload.weight_row.eq(row),
            self.o.payload.sum_row.eq(sum_row),
            self.o.payload.bias_row.eq(group),
            self.o.payload.delta.eq(delta),
            self.o.payload.init.eq(init),
            self.o.payload.real_lanes.eq(Mux(last, last_lanes, lanes)),
            self.i.ready.eq(~valid | (last & self.o.ready)),
            self.idle.eq(~valid),
        ]

        with m.If(self.start):
            outputs = self.descriptor.outputs
            remainder = outputs[:lane_bits] if lane_bits else 0
            m.d.sync += [
                base.eq(self.descriptor.weight_base),
                stride.eq(self.descriptor.inputs),
                groups.eq(row_count(outputs, lanes)),
                last_lanes.eq(Mux(remainder == 0, lanes, remainder)),
                sum_base.eq(self.sum_base),
                from_scratch.eq(self.from_scratch),
                first.eq(1),
                valid.eq(0),
            ]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += [
                valid.eq(1),
                row.eq(base + self.i.payload.input),
                group.eq(0),
                sum_row.eq(sum_base),
                last.eq(groups == 1),
                delta.eq(self.i.payload.delta),
                init.eq(from_scratch & first),
                first.eq(0),
            ]
        with m.Elif(valid & self.o.ready):
            with m.If(last):
                m.d.sync += valid.eq(0)
            with m.Else():
                m.d.sync += [row.eq(row + stride), group.eq(group + 1),
                             sum_row.eq(sum_row + 1), last.eq(group + 2 == groups)]
        return m


AddressGenerator = DenseAddressGenerator
"""The kind's address generator, under the name every kind module gives it."""
