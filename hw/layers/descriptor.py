"""The layer descriptor: what SET_LAYER (and, for a conv layer, SET_CONV) configures, as the
gateware holds it, and the ports every kind's address generator has."""

from amaranth.hdl import unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from ..config import AccelConfig
from ..core.layouts import changed_input_layout, mac_item_layout
from ..protocol import CONV_AXIS_FIELDS, CONV_FIELDS, POOL_AXIS_FIELDS, LayerKind, PoolCode

__all__ = ["KIND_BITS", "address_generator_members", "axis_entry_layout", "axis_layout",
           "conv_descriptor_layout", "conv_field", "layer_descriptor_layout", "pool_axis_layout"]

KIND_BITS = bits_for(max(kind.value for kind in LayerKind))
"""Bits of a layer kind inside the gateware: enough for every :class:`LayerKind` value (the
protocol carries 8)."""


def layer_descriptor_layout(config: AccelConfig) -> data.StructLayout:
    """A layer as configured by SET_LAYER: the fields every kind has, and a conv layer's in
    ``conv`` when the hardware has conv layers."""
    neurons = unsigned(config.neuron_count_bits)
    fields = {
        "inputs": neurons,
        "outputs": neurons,
        "weight_base": unsigned(config.weight_row_bits),
        "shift": range(config.max_shift + 1),
        "relu": unsigned(1),
        "kind": unsigned(KIND_BITS),   # a LayerKind value
    }
    if config.conv:
        fields["conv"] = conv_descriptor_layout(config)
    return data.StructLayout(fields)


def axis_layout(config: AccelConfig, size: int) -> data.StructLayout:
    """One axis of a conv layer in its descriptor (``size`` the largest map side along it);
    :func:`conv_descriptor` computes the fields."""
    coordinate = unsigned(config.coordinate_bits(size))
    weights, sums = unsigned(config.weight_row_bits), unsigned(config.sum_row_bits)
    shapes = {
        "size": coordinate,            # positions of the input map along the axis
        "kernel": unsigned(config.kernel_bits),
        "stride": unsigned(config.kernel_bits),
        "last_out": coordinate,        # the convolution's outputs along the axis, less one
        "first_out": coordinate,       # coordinate 0's last window
        "first_tap": unsigned(config.tap_bits),   # coordinate 0's tap in that window
        "weight_step": weights,        # weight rows from one tap to the next
        "first_weights": weights,      # first_tap * weight_step
        "walk_weights": weights,       # stride * weight_step: from one window to the one before
        "sum_step": sums,              # sum rows from one output to the next
        "first_sums": sums,            # first_out * sum_step
    }
    return data.StructLayout({name: shapes[name] for name in CONV_AXIS_FIELDS})


def axis_entry_layout(config: AccelConfig, size: int) -> data.StructLayout:
    """What the tables hold for one coordinate along an axis: its last window ``out`` and its
    ``tap`` in it, ``tap * weight_step``, ``out * sum_step``, and whether it is coordinate 0."""
    return data.StructLayout({
        "out": unsigned(config.coordinate_bits(size)),
        "tap": unsigned(config.tap_bits),
        "weights": unsigned(config.weight_row_bits),
        "sums": unsigned(config.sum_row_bits),
        "first": unsigned(1),
    })


def conv_descriptor_layout(config: AccelConfig) -> data.StructLayout:
    """The fields a conv layer adds to the layer descriptor, in the order of
    :data:`~reuse_accel.hw.protocol.CONV_FIELDS` (SET_CONV sets them one at a time)."""
    shapes = {
        "y": axis_layout(config, config.max_height),
        "x": axis_layout(config, config.max_width),
        "channel_rows": unsigned(config.group_count_bits),   # Gc = ceil(C / L)
        "channel_lanes": unsigned(config.lanes),              # real lanes of a position's last row
        "groups": unsigned(config.group_count_bits),          # G' = ceil(C' / L)
        "group_lanes": range(config.lanes + 1),               # real lanes of the last group
        "group_weights": unsigned(config.weight_row_bits),    # kh * kw * C
        "sum_rows": unsigned(config.sum_row_bits),            # OH * OW * G'
        "pool": PoolCode,                                     # what follows the activation
        "pool_y": pool_axis_layout(config, config.max_height),
        "pool_x": pool_axis_layout(config, config.max_width),
    }
    names = dict.fromkeys(name.split(".")[0] for name in CONV_FIELDS)
    return data.StructLayout({name: shapes[name] for name in names})



def conv_field(conv, name: str):
    """The field of a conv descriptor (a view of :func:`conv_descriptor_layout`) that
    :data:`~reuse_accel.hw.protocol.CONV_FIELDS` names ``name`` (``"y.stride"``)."""
    for part in name.split("."):
        conv = getattr(conv, part)
    return conv


def pool_axis_layout(config: AccelConfig, size: int) -> data.StructLayout:
    """One axis of a conv layer's pool (a window of one cell, stride one, without a pool):
    computed by :func:`~reuse_accel.hw.layers.conv.conv_descriptor`."""
    shapes = {
        "kernel": unsigned(config.kernel_bits),
        "stride": unsigned(config.kernel_bits),
        "low": unsigned(config.kernel_bits),                 # padding before the map
        "count": unsigned(config.coordinate_bits(size)),     # pooled outputs along the axis
        "low_sums": unsigned(config.sum_row_bits),           # low * (sum rows per step)
        "step": unsigned(config.sum_row_bits),               # stride * (sum rows per step)
    }
    return data.StructLayout({name: shapes[name] for name in POOL_AXIS_FIELDS})


def address_generator_members(config: AccelConfig) -> dict:
    """The ports every layer kind's address generator has (:mod:`reuse_accel.hw.layers`):
    changed inputs in, MAC items out, the layer's descriptor and sum base, ``from_scratch``,
    ``start`` and ``idle``."""
    return {
        "i": In(stream.Signature(changed_input_layout(config))),
        "o": Out(stream.Signature(mac_item_layout(config))),
        "descriptor": In(layer_descriptor_layout(config)),
        "sum_base": In(config.sum_row_bits),
        "from_scratch": In(1),
        "start": In(1),
        "idle": Out(1),
    }
