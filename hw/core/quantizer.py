"""Centroid-lookup quantizer: fixed-point values to nearest-centroid cluster indices.

Contract
--------
- ``i``: stream of rows of L signed ``act_width`` values plus an opaque ``tag`` that travels
  with the row. ``o``: stream of rows of L cluster indices, the ``outside`` mask (value below
  ``centroid[0]`` or above ``centroid[K-1]``, so outside the calibrated range) and the tag.
- ``centroids``: the current layer's K centroids. They must be stable from one cycle before the
  first row enters until the last row leaves (the thresholds are registered).
- ``bypass``: the values already are cluster indices (layer 0, quantized by the host); they pass
  through unchanged and nothing counts as outside.
- Latency :attr:`CentroidQuantizer.latency` (2 cycles), throughput one row (L values) per
  cycle; a two-stage pipeline in the ``lib.stream`` style, stalling without loss when
  ``o.ready`` is low.

Rule
----
The index is the number of thresholds ``centroid[k-1] + centroid[k]`` (k = 1..K-1) below
``2 * value``. For an ascending table that is the nearest centroid, ties going to the lower
one; it needs no division, works for non-uniform tables, and the golden model
(:func:`reuse_accel.sim.model.quantize`) applies the same rule to any table.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import AccelConfig, check_config
from .compare import less_than
from .popcount import popcount

__all__ = ["CentroidQuantizer"]


class CentroidQuantizer(wiring.Component):
    """Pipelined nearest-centroid quantizer, L lanes.

    Parameters
    ----------
    config : AccelConfig
    tag_shape : shape-like
        Shape of the tag carried alongside each row.
    """

    latency = 2
    """Cycles from a row's acceptance to its indices on ``o``."""

    def __init__(self, config: AccelConfig, *, tag_shape):
        self._config = check_config(config)
        self._tag_shape = tag_shape
        lanes = config.lanes
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "values": data.ArrayLayout(signed(config.act_width), lanes),
                "tag": tag_shape,
            }))),
            "o": Out(stream.Signature(data.StructLayout({
                "indices": data.ArrayLayout(unsigned(config.index_width), lanes),
                "outside": unsigned(lanes),
                "tag": tag_shape,
            }))),
            "centroids": In(data.ArrayLayout(signed(config.centroid_width), config.clusters)),
            "bypass": In(1),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes, clusters = config.lanes, config.clusters
        sum_shape = signed(config.centroid_width + 1)

        thresholds = [Signal(sum_shape, name=f"threshold{k}") for k in range(1, clusters)]
        for k, threshold in enumerate(thresholds, start=1):
            m.d.sync += threshold.eq(self.centroids[k - 1] + self.centroids[k])

        # Stage 1: every lane compares 2x with every threshold (a thermometer code for an
        # ascending table) and with the table's ends.
        s1_valid = Signal()
        s1_above = [Signal(clusters - 1, name=f"s1_above{lane}") for lane in range(lanes)]
        s1_outside = Signal(lanes)
        s1_bypass_index = Signal(data.ArrayLayout(unsigned(config.index_width), lanes))
        s1_bypass = Signal()
        s1_tag = Signal(self._tag_shape)

        o_advance = ~self.o.valid | self.o.ready
        s1_advance = ~s1_valid | o_advance
        m.d.comb += self.i.ready.eq(s1_advance)

        with m.If(s1_advance):
            m.d.sync += [
                s1_valid.eq(self.i.valid),
                s1_tag.eq(self.i.payload.tag),
                s1_bypass.eq(self.bypass),
            ]
            for lane in range(lanes):
                value = self.i.payload.values[lane]
                doubled = Signal(signed(config.act_width + 1), name=f"doubled{lane}")
                m.d.comb += doubled.eq(value << 1)
                m.d.sync += s1_above[lane].eq(
                    Cat(*(less_than(threshold, doubled) for threshold in thresholds)))
                m.d.sync += s1_outside[lane].eq(
                    ~self.bypass & (less_than(value, self.centroids[0]) |
                                    less_than(self.centroids[clusters - 1], value)))
                m.d.sync += s1_bypass_index[lane].eq(value[:config.index_width])

        # Stage 2: count the thresholds passed.
        with m.If(o_advance):
            m.d.sync += [
                self.o.valid.eq(s1_valid),
                self.o.payload.tag.eq(s1_tag),
                self.o.payload.outside.eq(s1_outside),
            ]
            for lane in range(lanes):
                count = popcount(s1_above[lane])
                m.d.sync += self.o.payload.indices[lane].eq(
                    Mux(s1_bypass, s1_bypass_index[lane], count))
        return m
