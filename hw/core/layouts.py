"""The payloads of the streams at the layer-kind seam.

``changed input``: what the change detector (or, without reuse, the serializer) hands to a
layer kind's address generator. ``MAC item``: what an address generator hands to the delta MAC
array, one per weight row to apply.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from ..config import AccelConfig

__all__ = ["changed_input_layout", "mac_item_layout", "pool_cell_layout", "position_layout"]


def position_layout(config: AccelConfig) -> data.StructLayout:
    """Where a row of a conv layer's input map is: ``(y, x)`` and its channel group."""
    return data.StructLayout({
        "y": unsigned(max(1, (config.max_height - 1).bit_length())),
        "x": unsigned(max(1, (config.max_width - 1).bit_length())),
        "group": unsigned(config.group_bits),
    })


def changed_input_layout(config: AccelConfig) -> data.StructLayout:
    """One changed input of a layer: its number and the value to multiply the weights by
    (``centroid[new] - centroid[old]`` with reuse, the activation itself without), and in
    hardware with conv layers the ``position`` of its row in a conv layer's map."""
    fields = {
        "input": unsigned(config.input_bits),
        "delta": signed(config.delta_width),
    }
    if config.conv:
        fields["position"] = position_layout(config)
    return data.StructLayout(fields)


def mac_item_layout(config: AccelConfig) -> data.StructLayout:
    """One row of MAC work: ``sums[sum_row] += weights[weight_row] * delta`` on L lanes.

    ``sum_row`` is an address in the sum memory (the layer's rows included); ``bias_row`` the
    row of the layer's biases that applies to it (its output group). ``init``: the sum row
    starts from that bias row (its first update in a frame computed from scratch).
    ``real_lanes``: how many of the L lanes are real outputs (the rest is padding), for the
    multiply-accumulate counter.
    """
    return data.StructLayout({
        "weight_row": unsigned(config.weight_row_bits),
        "sum_row": unsigned(config.sum_row_bits),
        "bias_row": unsigned(config.group_bits),
        "delta": signed(config.delta_width),
        "init": unsigned(1),
        "real_lanes": range(config.lanes + 1),
    })


def pool_cell_layout(config: AccelConfig) -> data.StructLayout:
    """One cell of a pooled readout (:class:`~reuse_accel.hw.layers.conv.PoolWalker`): the sum
    row to read, whether it is its window's first and last cell, the output row the window's
    result goes to, whether it is an average and what the average divides by, and ``done`` on
    the readout's last cell."""
    return data.StructLayout({
        "valid": unsigned(1),
        "address": unsigned(config.sum_row_bits),
        "first": unsigned(1),
        "last": unsigned(1),
        "row": unsigned(config.row_bits),
        "average": unsigned(1),
        "divisor": range(config.max_pool_cells + 1),
        "done": unsigned(1),
    })
