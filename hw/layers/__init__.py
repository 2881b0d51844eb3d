"""Layer kinds: what each kind adds to the shared datapath.

A layer kind is a descriptor (the fields SET_LAYER configures) and an *address generator* that
sits between the change detector (or, without reuse, the serializer) and the delta MAC array.
It turns every changed input ``(input, delta)`` into the MAC items ``(weight_row, sum_row,
delta)`` that input must update, and states its cost: the items per changed input. The MAC
array and the change detector know nothing of layer shapes.

Kinds: :mod:`.dense` (fully connected).
"""

from amaranth.hdl import unsigned
from amaranth.lib import data
from amaranth.utils import bits_for

from ..config import AccelConfig
from ..protocol import LayerKind
from . import dense
from .dense import DenseAddressGenerator

__all__ = ["GENERATORS", "KINDS", "KIND_BITS", "layer_descriptor_layout"]

GENERATORS = {LayerKind.DENSE: DenseAddressGenerator}
"""The address generator of every layer kind."""

KINDS = {LayerKind.DENSE: dense}
"""The module of every layer kind: its weight layout (``weight_row_count``, ``weight_rows``)
and cost (``items_per_input``), for the host and the model."""

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
