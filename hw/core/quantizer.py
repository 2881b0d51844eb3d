"""Centroid-lookup quantizer: one fixed-point value per cycle to its centroid and its interval.

Contract
--------
- ``i``: stream of single values (signed ``act_width``) plus an opaque ``tag`` that travels with
  the value. ``o``: stream of the value's ``centroid``, the ``interval`` of doubled values
  (:func:`interval_layout`) that quantizes exactly as this one does, ``outside`` (value below
  ``centroid[0]`` or above ``centroid[K-1]``, outside the calibrated range), and the tag.
- ``centroids``: the current layer's K centroids. They must be stable from one cycle before the
  first value enters until the last one leaves (the thresholds are registered).
- ``bypass``: the value already is a cluster index (layer 0, quantized by the host); its
  centroid is looked up, its interval holds that index alone, and it is never outside.
- Latency :meth:`CentroidQuantizer.latency` (``log2(K) + 1`` cycles), throughput one value per
  cycle. The pipeline never stalls: both streams are ``always_ready``, so a value accepted in
  one cycle is on ``o`` exactly that many cycles later, and whatever takes ``o`` must take it
  then (the :class:`~reuse_accel.hw.core.change_detector.ChangeDetector` queues it, and admits
  values only while its queue has room). No ready signal runs through the stages.
- ``idle``: no value in the pipeline.

Rule
----
The index is the number of thresholds ``centroid[k-1] + centroid[k]`` (k = 1..K-1) below
``2 * value``. For an ascending table that is the nearest centroid, ties going to the lower
one; it needs no division and works for non-uniform tables. The interval of index ``k`` is
``(low, high]`` with ``low`` the threshold below it and ``high`` the one above it, narrowed at
the ends of the table to ``2 * centroid[0] - 1`` and ``2 * centroid[K-1]`` so that whether a
value is outside the range is also a property of its interval; values outside get the open
interval beyond. For an ascending table every value whose double lies in the interval has the
same index, centroid and ``outside`` flag, which is what the
:class:`~reuse_accel.hw.core.change_detector.ChangeDetector` relies on to skip it. The golden
model (:func:`reuse_accel.sim.model.quantize`, :func:`reuse_accel.sim.model.intervals`)
applies the same rule to any table.

Cost: one lane of K-1 comparators (the change detector tests every lane against its stored
interval and sends only the lanes that left it here), then the index as a one-hot code selecting
the centroid and the interval's ends.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import AccelConfig, check_config
from .compare import less_than
from .onehot import select

__all__ = ["CentroidQuantizer", "interval_layout"]


def interval_layout(config: AccelConfig) -> data.StructLayout:
    """The interval ``(low, high]`` of doubled values that quantize alike, each end
    :attr:`~reuse_accel.hw.config.AccelConfig.interval_width` bits."""
    shape = signed(config.interval_width)
    return data.StructLayout({"low": shape, "high": shape})


class CentroidQuantizer(wiring.Component):
    """Pipelined nearest-centroid quantizer, one value per cycle.

    Parameters
    ----------
    config : AccelConfig
    tag_shape : shape-like
        Shape of the tag carried alongside each value.
    """

    @staticmethod
    def latency(config: AccelConfig) -> int:
        """Cycles from a value's acceptance to its centroid on ``o``: one per index bit, one
        for the centroid."""
        return config.index_width + 1

    def __init__(self, config: AccelConfig, *, tag_shape):
        self._config = check_config(config)
        self._tag_shape = tag_shape
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "value": signed(config.act_width),
                "tag": tag_shape,
            }), always_ready=True)),
            "o": Out(stream.Signature(data.StructLayout({
                "centroid": signed(config.centroid_width),
                "interval": interval_layout(config),
                "outside": unsigned(1),
                "tag": tag_shape,
            }), always_ready=True)),
            "centroids": In(data.ArrayLayout(signed(config.centroid_width), config.clusters)),
            "bypass": In(1),
            "idle": Out(1),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        clusters = config.clusters
        bound = interval_layout(config)["low"].shape
        lowest, highest = -(1 << (bound.width - 1)), (1 << (bound.width - 1)) - 1
        centroids = self.centroids

        # The table's thresholds, and the narrowed ends of the table's range, registered.
        thresholds = [None] + [Signal(bound, name=f"threshold{k}") for k in range(1, clusters)]
        for k in range(1, clusters):
            m.d.sync += thresholds[k].eq(centroids[k - 1] + centroids[k])
        bottom = Signal(bound)   # 2 * centroid[0] - 1: below it a value is outside
        top = Signal(bound)      # 2 * centroid[K-1]: above it a value is outside
        m.d.sync += [bottom.eq((centroids[0] << 1) - 1), top.eq(centroids[clusters - 1] << 1)]

        # One register stage per index bit, then the centroid's, advancing every cycle.
        bits = config.index_width
        stages = bits + 1
        valid = [Signal(name=f"s{stage}_valid") for stage in range(stages - 1)] + [self.o.valid]
        m.d.comb += self.idle.eq(~Cat(*valid).any())

        def stage_signals(stage):
            return {
                "tag": Signal(self._tag_shape, name=f"s{stage}_tag"),
                "doubled": Signal(signed(config.act_width + 1), name=f"s{stage}_doubled"),
                "index": Signal(bits, name=f"s{stage}_index"),
                "low": Signal(bound, name=f"s{stage}_low"),
                "high": Signal(bound, name=f"s{stage}_high"),
                "below": Signal(name=f"s{stage}_below"),
                "beyond": Signal(name=f"s{stage}_beyond"),
                "bypass": Signal(name=f"s{stage}_bypass"),
            }

        # Stage 0 takes the value, compares it with the table's ends and with the middle
        # threshold; stage s then compares 2x with the threshold half-way into the interval the
        # index bits found so far leave (a binary search, one comparator a stage), and narrows
        # the interval to the side the value is on.
        value = self.i.payload.value
        previous = {"tag": self.i.payload.tag, "doubled": value << 1, "index": Const(0, bits),
                    "low": bottom, "high": top, "bypass": self.bypass}
        m.d.sync += valid[0].eq(self.i.valid)
        for stage in range(bits):
            now = stage_signals(stage)
            step = 1 << (bits - 1 - stage)                 # the bit this stage decides
            decided = previous["index"] >> (bits - stage)  # the bits decided before it
            candidates = [thresholds[(prefix << (bits - stage)) | step]
                          for prefix in range(1 << stage)]
            threshold = Signal(bound, name=f"s{stage}_threshold")
            if len(candidates) == 1:
                m.d.comb += threshold.eq(candidates[0])
            else:
                m.d.comb += threshold.eq(select(Const(1, len(candidates)) << decided,
                                                candidates))
            above = less_than(threshold, previous["doubled"])
            if stage:
                m.d.sync += valid[stage].eq(valid[stage - 1])
            m.d.sync += [
                now["tag"].eq(previous["tag"]),
                now["doubled"].eq(previous["doubled"]),
                now["index"].eq(previous["index"] | Mux(above, step, 0)),
                now["low"].eq(Mux(above, threshold, previous["low"])),
                now["high"].eq(Mux(above, previous["high"], threshold)),
                now["bypass"].eq(previous["bypass"]),
            ]
            if stage == 0:
                m.d.sync += [
                    now["below"].eq(~self.bypass & less_than(value, centroids[0])),
                    now["beyond"].eq(~self.bypass & less_than(centroids[clusters - 1], value)),
                ]
            else:
                m.d.sync += [now["below"].eq(previous["below"]),
                             now["beyond"].eq(previous["beyond"])]
            previous = now

        # The last stage: the centroid of the index, and the interval of a value outside the
        # range or of an index (with bypass).
        last = previous
        # With bypass the value is the index: the low bits of its double, shifted back.
        index = Mux(last["bypass"], last["doubled"][1:bits + 1], last["index"])
        payload = self.o.payload
        m.d.sync += [
            self.o.valid.eq(valid[-2]),
            payload.tag.eq(last["tag"]),
            payload.centroid.eq(select(Const(1, clusters) << index, list(centroids))),
            payload.outside.eq(last["below"] | last["beyond"]),
        ]
        with m.If(last["bypass"]):
            m.d.sync += [payload.interval.low.eq(last["doubled"] - 1),
                         payload.interval.high.eq(last["doubled"])]
        with m.Elif(last["below"]):
            m.d.sync += [payload.interval.low.eq(lowest), payload.interval.high.eq(bottom)]
        with m.Elif(last["beyond"]):
            m.d.sync += [payload.interval.low.eq(top), payload.interval.high.eq(highest)]
        with m.Else():
            m.d.sync += [payload.interval.low.eq(last["low"]),
                         payload.interval.high.eq(last["high"])]
        return m

