"""The layer descriptor: what SET_LAYER configures, as the gateware holds it."""

from amaranth.hdl import unsigned
from amaranth.lib import data
from amaranth.utils import bits_for

from ..config import AccelConfig
from ..protocol import LayerKind

__all__ = ["KIND_BITS", "layer_descriptor_layout"]

KIND_BITS = bits_for(max(kind.value for kind in LayerKind))
"""Bits of a layer kind inside the gateware: enough for every :class:`LayerKind` value (the
protocol carries 8)."""


def layer_descriptor_layout(config: AccelConfig) -> data.StructLayout:
    """A layer as configured by SET_LAYER: the fields every kind has."""
    neurons = unsigned(config.neuron_count_bits)
    return data.StructLayout({
        "inputs": neurons,
        "outputs": neurons,
        "weight_base": unsigned(config.weight_row_bits),
        "shift": range(config.max_shift + 1),
        "relu": unsigned(1),
        "kind": unsigned(KIND_BITS),   # a LayerKind value
    })
