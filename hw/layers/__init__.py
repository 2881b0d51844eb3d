"""Layer kinds: what each kind adds to the shared datapath.

A layer kind is a descriptor (the fields SET_LAYER configures, :mod:`.descriptor`) and an
*address generator* that sits between the change detector (or, without reuse, the serializer)
and the delta MAC array. It turns every changed input ``(input, delta)`` into the MAC items
``(weight_row, sum_row, delta)`` that input must update, and states its cost: the items per
changed input. The MAC array and the change detector know nothing of layer shapes.

Every kind is a module with the same names, registered in :data:`KINDS`:

- ``AddressGenerator``: the gateware component (ports ``i``, ``o``, ``descriptor``,
  ``sum_base``, ``from_scratch``, ``start``, ``idle``; a ``latency`` attribute);
- ``items_per_input(config, outputs)``: its cost, for the cycle formula;
- ``weight_row_count(config, inputs, outputs)`` and ``weight_rows(config, weights)``: its
  weight layout, for the host;
- ``weight_extent(config, inputs, outputs)``: the same row count as gateware, for the command
  checker's bounds check.

Kinds: :mod:`.dense` (fully connected) and :mod:`.conv` (convolutional; in hardware generated
with ``max_kernel`` above 0).
"""

from ..config import AccelConfig
from ..protocol import LayerKind
from . import conv, dense, recurrent
from .descriptor import KIND_BITS, conv_field, layer_descriptor_layout

__all__ = ["KINDS", "KIND_BITS", "conv_field", "gateware_kinds", "input_layout",
           "layer_descriptor_layout"]

KINDS = {LayerKind.DENSE: dense, LayerKind.CONV: conv}
"""The module of every layer kind the gateware implements."""


def gateware_kinds(config: AccelConfig) -> dict:
    """The kinds hardware of ``config`` implements: dense always, conv with ``max_kernel``."""
    return {kind: module for kind, module in KINDS.items()
            if kind != LayerKind.CONV or config.conv}


def input_layout(layer) -> conv.MapLayout | recurrent.SegmentLayout:
    """How a layer's inputs sit in rows (a layer as the host or the golden model holds it:
    ``geometry``, ``recurrent``, ``input_map`` and ``inputs``): a conv layer's input map, a
    recurrent layer's ``x_t`` and ``h_{t-1}`` segments, the map a dense layer flattens, or a
    vector (one position)."""
    if layer.geometry is not None:
        return layer.geometry.input_layout
    if layer.recurrent is not None:
        return layer.recurrent.layout
    return layer.input_map if layer.input_map is not None else conv.MapLayout(1, layer.inputs)
