"""Exact cycle counts of the processing tile, from which inputs of each layer changed.

The per-layer formula
---------------------
A layer with ``R = ceil(inputs / L)`` input rows and ``G = ceil(outputs / L)`` output groups
runs in three phases:

1. **setup**, 1 cycle: read the layer's centroid table.
2. **scan and MAC**, overlapped. Rows flow from the I/O buffer into the change detector, which
   tests every lane against the interval its input was in last frame and hands the lanes that
   left it (all real lanes without reuse, or on a frame computed from scratch) to the
   serializer. The serializer holds row ``w`` for ``s_w = max(c_w, 1)`` cycles (``c_w`` lanes
   to send; a row without one still takes a cycle), so undisturbed it would send lane ``k``
   ``u_k`` cycles after the first row arrives, ``u_k = sum(s_v for v < w_k) + (its rank in
   row w_k)``, and after a stall it sends lane ``k`` ``u_k - u_{k-1}`` cycles after lane
   ``k-1``. Without reuse the lanes go straight to the layer kind's address generator, which
   turns each into ``G`` MAC items, one per cycle
   (:func:`reuse_accel.hw.layers.dense.items_per_input`), and takes the next input as soon as
   both are ready. With reuse each lane first passes the quantizer, which never stalls, into
   a queue: it reaches the queue's head ``Q`` cycles after it left the serializer
   (:meth:`~reuse_accel.hw.core.change_detector.ChangeDetector.quantize_latency`, ``log2(K) +
   2``). The head hands a lane whose centroid changed to the generator and drops any other in
   one cycle, and the serializer hands a lane on only while fewer than ``C = Q + 1`` lanes are
   between it and the generator (:meth:`~reuse_accel.hw.core.change_detector.ChangeDetector.
   queue_depth`, a count registered a cycle late). With ``x_k`` the cycle lane ``k`` leaves the
   serializer and ``y_k`` the cycle it leaves the queue::

       x_0 = SETUP + FILL + u_0
       x_k = max(x_{k-1} + u_k - u_{k-1}, y_{k-C} + 1)
       y_k = max(x_k + Q, y_{k-1} + 1, y_j + G for the last changed lane j < k, if k changed)

3. **readout**: ``G + READOUT`` cycles for the frame's last layer: one per output row, the row
   register, the sum read and the activation's three stages, into the other bank. Any other
   layer's readout overlaps the next layer, which starts ``LEAD(G) = max(READOUT, G - M)``
   cycles after the readout does (:meth:`~reuse_accel.hw.tile.ProcessingTile.readout_lead`,
   ``M = 9 + Q`` with reuse, 6 without): its first input row must be written before it is
   read, and its first MAC item's sum read must come after the readout's last. The layer's
   count ends there; the rest of its readout counts for the next layer.

With ``U`` lanes sent, ``S = sum(s_w)``, ``RO = G + READOUT`` for the last layer and
``LEAD(G)`` for the others, the scan ends (with reuse, ``DONE`` = 1 cycle after the
serializer's last row and after the last lane left the queue) at::

    U = 0:  E = SETUP + FILL + S + DONE
    U > 0:  E = max(x_{U-1} + S - u_{U-1} + DONE,  y_{U-1} + 1 + DONE,
                    y_c + GENERATOR + G - 1 + MAC_DRAIN)      (y_c: the last changed lane)

and the layer takes ``E + RO`` cycles. Without reuse ``Q = 0``, ``DONE = 0`` and every lane
changed, so ``y_k = x_k`` and this is the closed form ``x_{k+1} - x_k = max(u_{k+1} - u_k, G)``.

When every input of the last layer changes (baseline mode, or the first frame), ``u_k = k``
and this is ``inputs * G + G + 17 + Q`` cycles (``Q = 6`` at K = 16): the L lanes are busy
for all but ``G + 17 + Q`` cycles (``G + 14`` without reuse); an earlier layer takes
``inputs * G + 12 + Q + LEAD(G)`` (``inputs * G + 9 + LEAD(G)``). A frame takes the sum over
its layers plus :data:`FRAME_OVERHEAD`.

The constants below are composed from the latencies the gateware components state
(:mod:`reuse_accel.hw.core`, :mod:`reuse_accel.hw.tile`); the RTL tests check the formula against
the hardware's own cycle counters and against cycles counted by the testbench.
"""

from __future__ import annotations

import numba
import numpy as np

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.core.change_detector import ChangeDetector
from reuse_accel.hw.core.mac import DeltaMacArray
from reuse_accel.hw.layers import dense
from reuse_accel.hw.layers.conv import MapLayout
from reuse_accel.hw.tile import ProcessingTile

__all__ = ["layer_cycles", "frame_cycles", "dense_layer_cycles", "FRAME_OVERHEAD"]

SETUP = ProcessingTile.setup_latency
"""Setup cycles per layer: the centroid table read, the layer's parameters latched."""
FILL = ProcessingTile.fill_latency(AccelConfig())
"""Cycles from the end of setup to the first lane leaving the serializer: the row reader's
buffer read, the row's skid buffer, and the change detector's state read, state register,
compared-row register and serializer."""
FILL_WITHOUT_REUSE = ProcessingTile.fill_latency(AccelConfig(reuse=False))
"""The same without the change detector (hardware generated without reuse): the buffer read,
the row's skid buffer and the serializer."""
GENERATOR = dense.AddressGenerator.latency
"""Cycles from a changed input's handshake with the address generator to its first MAC item."""
MAC_DRAIN = DeltaMacArray.latency
"""Cycles from the last MAC item's handshake to the array's idle flag."""
DONE = ChangeDetector.done_latency
"""Cycles from the last row leaving the serializer, or the last input leaving the change
detector, to its done signal (with reuse)."""
READOUT = DeltaMacArray.readout_latency
"""Readout cycles on top of one per output row: the readout's row register, the sum read, the
activation."""
FRAME_OVERHEAD = ProcessingTile.done_latency
"""The tile's done cycle."""


def layer_cycles(config: AccelConfig, changed: np.ndarray, outputs: int, *,
                 unstable: np.ndarray | None = None, last: bool = True,
                 layout: MapLayout | None = None) -> int:
    """Cycles of one dense layer, given the mask of its changed inputs and (with reuse) the
    mask of the inputs that left their interval (``changed`` by default; a superset of it); a
    layer other than the frame's ``last`` ends when the next one starts, during its readout.
    ``layout``: how its inputs sit in rows (default: a vector)."""
    groups = dense.items_per_input(config, outputs)
    readout = groups + READOUT if last else ProcessingTile.readout_lead(config, groups)
    layout = MapLayout(1, len(changed)) if layout is None else layout
    return scan_cycles(config, changed, groups, layout, unstable=unstable) + readout


def scan_cycles(config: AccelConfig, changed: np.ndarray, items, layout: MapLayout, *,
                unstable: np.ndarray | None = None, pipelined: bool = False) -> int:
    """Cycles of a layer up to its readout (phases 1 and 2 of the module docstring).

    ``changed`` and ``unstable`` are masks over the layer's inputs in channels-last order,
    ``layout`` says how they sit in the I/O buffer's rows, and ``items`` is the MAC items of
    each changed input (one number for all, or one per input). An input with no items still
    holds the address generator for a cycle. ``pipelined``: the layer kind's address generator
    takes inputs into a two-entry pipeline ahead of its item walker
    (:class:`~reuse_accel.hw.layers.conv.ConvAddressGenerator`): an input is taken while the
    first entry is free or moving on, moves on while the second is, and reaches the walker
    two cycles after it was taken at the earliest, when the walker issues the previous input's
    last item."""
    lanes = config.lanes
    changed = np.asarray(changed, dtype=bool)
    unstable = changed if unstable is None else np.asarray(unstable, dtype=bool) | changed
    rows = layout.rows(lanes)
    slots = layout.stored_index(lanes)
    per_row = np.bincount(slots[unstable] // lanes, minlength=rows)
    row_cost = np.maximum(per_row, 1)
    serializer_total = int(row_cost.sum())
    count = int(per_row.sum())
    start = SETUP + ProcessingTile.fill_latency(config)
    done = DONE if config.reuse else 0
    if count == 0:
        return start + serializer_total + done
    sent = np.flatnonzero(unstable)
    row_start = np.concatenate(([0], np.cumsum(row_cost)[:-1]))
    before_row = np.concatenate(([0], np.cumsum(per_row)[:-1]))
    item_row = slots[sent] // lanes
    leave = row_start[item_row] + np.arange(count) - before_row[item_row]
    items = np.broadcast_to(np.asarray(items, dtype=np.int64), changed.shape)[sent]
    costs = np.maximum(items, 1)
    working = np.flatnonzero(changed[sent] & (items > 0))
    if not config.reuse and not pipelined:
        # Every input changed and the serializer hands it straight to the address generator.
        handshakes = start + int(leave[0]) + np.concatenate(
            ([0], np.cumsum(np.maximum(np.diff(leave), costs[:-1]))))
        end = int(handshakes[-1]) + max(serializer_total - int(leave[-1]), int(costs[-1]))
        if len(working):
            j = working[-1]
            end = max(end, int(handshakes[j] + GENERATOR + items[j] - 1 + MAC_DRAIN))
        return end
    if not config.reuse:
        # The serializer hands every input straight to the pipelined generator.
        handshakes = np.empty(count, np.int64)
        takes = np.empty(count, np.int64)
        _direct(start + leave, costs, handshakes, takes)
        end = int(handshakes[-1]) + serializer_total - int(leave[-1])
        return _walker_end(end, takes, costs, items, count - 1, working)
    left, last_served, last_item, takes = _quantized_handshakes(
        start + leave, changed[sent], costs, ProcessingTile.quantize_latency(config),
        ChangeDetector.queue_depth(config), pipelined)
    end = max(last_served + serializer_total - int(leave[-1]) + done, last_item + 1 + done)
    if pipelined:
        served = np.flatnonzero(changed[sent])
        end = _walker_end(end, takes, costs, items, served[-1] if len(served) else None,
                          working)
    elif len(working):
        j = working[-1]
        handshake = (last_item - (count - 1 - j) * int(costs[0]) if left is None
                     else left[j])
        end = max(end, handshake + GENERATOR + int(items[j]) - 1 + MAC_DRAIN)
    return end


def _walker_end(end: int, takes, costs, items, last, working) -> int:
    """The later of ``end`` and when a pipelined generator and the MAC array are done: the
    generator idles the cycle after its walker is free of the ``last`` changed input (None:
    none), the array ``MAC_DRAIN`` cycles after the last item of the last ``working`` one."""
    if last is not None:
        end = max(end, int(takes[last] + costs[last] + 1))
    if len(working):
        j = working[-1]
        end = max(end, int(takes[j] + items[j] + MAC_DRAIN))
    return end


def _quantized_handshakes(offers, changed, costs, depth, capacity, pipelined=False):
    """Handshake cycles of the inputs that left their interval (with reuse): the serializer
    offers input ``k`` ``offers[k] - offers[k-1]`` cycles after handing over input ``k-1``, no
    earlier than the cycle after input ``k - capacity`` left the queue; an input reaches the
    queue's head ``depth`` cycles after it left the serializer, and the head hands a changed
    input to the address generator and drops an unchanged one in one cycle. The generator
    holds a changed input ``costs[k]`` cycles, or (``pipelined``) takes it as
    :func:`scan_cycles` says. Returns every input's handshake with the queue (None when each
    changed and they came one per cycle at one cost, and the generator is not pipelined), the
    last input's handshake with the serializer, the last input's with the queue, and the
    cycle each changed input reached the pipelined generator's walker (None otherwise)."""
    count = len(offers)
    first = int(offers[0])
    groups = int(costs[0])
    if (not pipelined and changed.all() and offers[-1] - first == count - 1
            and (costs == groups).all()):
        # Every input changed, one per cycle (a frame computed from scratch): the generator
        # sets the pace (capacity > depth, so the serializer's waits never delay it), and the
        # serializer waits for room in the queue.
        last = first + depth + (count - 1) * groups
        entered = first + count - 1
        if count > capacity:
            entered = max(entered, first + depth + (count - 1 - capacity) * groups + 1)
        return None, entered, last, None
    left = np.empty(count, np.int64)
    takes = np.empty(count, np.int64)
    entered = _queue(offers, changed, costs, depth, capacity, pipelined, left, takes)
    return left, int(entered), int(left[-1]), takes if pipelined else None


@numba.njit(cache=True, nogil=True)
def _take(handshake, second, walker, cost):
    """A pipelined generator takes an input at ``handshake`` (its second entry frees at
    ``second``, its walker at ``walker``): returns when its first entry frees (the input moves
    on), when the walker takes the input, and when the walker is free again."""
    moved = max(handshake + 1, second)
    take = max(moved + 1, walker)
    return moved, take, take + cost


@numba.njit(cache=True, nogil=True)
def _queue(offers, changed, costs, depth, capacity, pipelined, left, takes):
    """The recurrence of :func:`_quantized_handshakes`, compiled: fills ``left`` (each
    input's handshake with the queue) and, for a pipelined generator, ``takes`` (when each
    changed input reached its walker); returns the last input's handshake with the
    serializer."""
    free = -1             # when the generator can take the next changed input (-1: at once)
    second = -1           # pipelined: when its second entry moves on to the walker
    walker = -1           # pipelined: when the walker can take the next input
    enter = offers[0]
    leave = enter + depth
    for k in range(len(offers)):
        if k:
            enter += offers[k] - offers[k - 1]
            if k >= capacity and left[k - capacity] + 1 > enter:
                enter = left[k - capacity] + 1
            leave = max(enter + depth, leave + 1)
        if changed[k]:
            if free > leave:
                leave = free
            if pipelined:
                free, second, walker = _take(leave, second, walker, costs[k])
                takes[k] = second
            else:
                free = leave + costs[k]
        left[k] = leave
    return enter


@numba.njit(cache=True, nogil=True)
def _direct(offers, costs, handshakes, takes):
    """Without reuse, for a pipelined generator: the serializer offers input ``k``
    ``offers[k] - offers[k-1]`` cycles after handing over input ``k-1``; fills each input's
    handshake and when it reached the walker."""
    free = -1
    second = -1
    walker = -1
    handshake = offers[0]
    for k in range(len(offers)):
        if k:
            handshake += offers[k] - offers[k - 1]
        if free > handshake:
            handshake = free
        free, second, walker = _take(handshake, second, walker, costs[k])
        handshakes[k] = handshake
        takes[k] = second


def dense_layer_cycles(config: AccelConfig, inputs: int, outputs: int, *,
                       last: bool = True) -> int:
    """Cycles of a layer in which every input changed."""
    return layer_cycles(config, np.ones(inputs, bool), outputs, last=last)


def frame_cycles(layer_counts) -> int:
    """Cycles of a frame, from the per-layer counts."""
    return int(np.sum(layer_counts)) + FRAME_OVERHEAD
