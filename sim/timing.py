"""Exact cycle counts of the processing tile, from which inputs of each layer changed.

The per-layer formula
---------------------
A layer with ``R = ceil(inputs / L)`` input rows and ``G = ceil(outputs / L)`` output groups
runs in three phases:

1. **setup**, 1 cycle: read the layer's centroid table.
2. **scan and MAC**, overlapped. Rows flow from the I/O buffer through the quantizer and the
   change detector into the serializer, which holds row ``w`` for ``s_w = max(c_w, 1)`` cycles
   (``c_w`` changed inputs in the row; an unchanged row still takes one cycle). Changed input
   ``k`` therefore leaves the serializer ``u_k`` cycles after the first row arrives, with
   ``u_k = sum(s_v for v < w_k) + (its rank among row w_k's changed inputs)``. The layer
   kind's address generator turns each changed input into ``G`` MAC items, one per cycle
   (:func:`reuse_accel.hw.layers.dense.items_per_input`), and accepts the next input as soon as
   both are ready, so the ``k``-th handshake happens ``sum(max(u_{j+1} - u_j, G) for j < k)``
   cycles after the first.
3. **readout**: ``G + READOUT`` cycles for the frame's last layer: one per output row, the row
   register, the sum read and the activation's three stages, into the other bank. Any other
   layer's readout overlaps the next layer, which starts ``LEAD(G) = max(READOUT, G - 11)``
   cycles after the readout does (``G - 6`` without reuse;
   :meth:`~reuse_accel.hw.tile.ProcessingTile.readout_lead`): its first input row must be
   written before it is read, and its first MAC item's sum read must come after the
   readout's last. The layer's count ends there; the rest of its readout counts for the next
   layer.

With ``n`` changed inputs, ``S = sum(s_w)``, ``RO = G + READOUT`` for the last layer and
``LEAD(G)`` for the others, and the pipeline constants below::

    n = 0:  cycles = SETUP + FILL + S + RO
    n > 0:  cycles = SETUP + FILL + u_0 + sum_{k<n-1} max(u_{k+1} - u_k, G)
                     + max(S - u_{n-1}, G + MAC_DRAIN) + RO

When every input of the last layer changes (baseline mode, or the first frame), ``u_k = k``
and this is ``inputs * G + G + 19`` cycles: the L lanes are busy for all but ``G + 19`` cycles
(``G + 14`` for hardware generated without reuse, which has no quantizer stages); an earlier
layer takes ``inputs * G + 14 + LEAD(G)`` (``inputs * G + 9 + LEAD(G)``).
A frame takes the sum over its layers plus :data:`FRAME_OVERHEAD`.

The constants below are composed from the latencies the gateware components state
(:mod:`reuse_accel.hw.core`, :mod:`reuse_accel.hw.tile`); the RTL tests check the formula against
the hardware's own cycle counters and against cycles counted by the testbench.
"""

from __future__ import annotations

import numpy as np

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.core.mac import DeltaMacArray
from reuse_accel.hw.layers import dense
from reuse_accel.hw.tile import ProcessingTile

__all__ = ["layer_cycles", "frame_cycles", "dense_layer_cycles", "FRAME_OVERHEAD"]

SETUP = ProcessingTile.setup_latency
"""Setup cycles per layer: the centroid table read, the layer's parameters latched."""
FILL = ProcessingTile.fill_latency(AccelConfig())
"""Cycles from the end of setup to the first row in the serializer: the row reader's buffer
read, the row's skid buffer, the quantizer, the skid buffer that cuts the ready chain, and the
change detector's previous-index read, compared-row register and serializer."""
FILL_WITHOUT_REUSE = ProcessingTile.fill_latency(AccelConfig(reuse=False))
"""The same without the quantizer and change detector (hardware generated without reuse): the
buffer read, the row's skid buffer and the serializer."""
GENERATOR = dense.AddressGenerator.latency
"""Cycles from a changed input's handshake with the address generator to its first MAC item."""
MAC_DRAIN = DeltaMacArray.latency
"""Cycles from the last MAC item's handshake to the array's idle flag."""
READOUT = DeltaMacArray.readout_latency
"""Readout cycles on top of one per output row: the readout's row register, the sum read, the
activation."""
FRAME_OVERHEAD = ProcessingTile.done_latency
"""The tile's done cycle."""


def layer_cycles(config: AccelConfig, changed: np.ndarray, outputs: int, *,
                 last: bool = True) -> int:
    """Cycles of one layer, given the mask of its changed inputs; a layer other than the
    frame's ``last`` ends when the next one starts, during its readout."""
    lanes = config.lanes
    groups = dense.items_per_input(config, outputs)
    changed = np.asarray(changed, dtype=bool)
    rows = config.groups(len(changed))
    padded = np.zeros(rows * lanes, bool)
    padded[:len(changed)] = changed
    per_row = padded.reshape(rows, lanes).sum(axis=1)
    row_cost = np.maximum(per_row, 1)
    serializer_total = int(row_cost.sum())
    count = int(per_row.sum())
    fill = ProcessingTile.fill_latency(config)
    readout = groups + READOUT if last else ProcessingTile.readout_lead(config, groups)
    if count == 0:
        return SETUP + fill + serializer_total + readout
    row_start = np.concatenate(([0], np.cumsum(row_cost)[:-1]))
    changed_before_row = np.concatenate(([0], np.cumsum(per_row)[:-1]))
    item_row = np.flatnonzero(padded) // lanes
    order = np.arange(count)
    leave = row_start[item_row] + order - changed_before_row[item_row]
    handshakes = int(np.maximum(np.diff(leave), groups).sum())
    # The last input's items: the generator's latency, then one per cycle, then the MAC drain.
    tail = max(serializer_total - int(leave[-1]), GENERATOR + groups - 1 + MAC_DRAIN)
    return SETUP + fill + int(leave[0]) + handshakes + tail + readout


def dense_layer_cycles(config: AccelConfig, inputs: int, outputs: int, *,
                       last: bool = True) -> int:
    """Cycles of a layer in which every input changed."""
    return layer_cycles(config, np.ones(inputs, bool), outputs, last=last)


def frame_cycles(layer_counts) -> int:
    """Cycles of a frame, from the per-layer counts."""
    return int(np.sum(layer_counts)) + FRAME_OVERHEAD
