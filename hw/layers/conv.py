"""Convolutional layers: their geometry, the weight layout and the work each changed input costs.

Geometry
--------
A conv layer takes a map of ``C`` channels over ``H x W`` positions (a 1-D conv is the
``H = 1`` case) and computes ``C'`` output channels over ``OH x OW`` positions with a
``kh x kw`` kernel, a stride ``(sh, sw)`` and zero padding ``(top, left, bottom, right)``::

    sum[o, oy, ox] = bias[o] + sum over c, ky, kx of
                     weight[o, c, ky, kx] * input[c, oy*sh + ky - top, ox*sw + kx - left]

with ``OH = (H + top + bottom - kh) // sh + 1`` (likewise ``OW``). An optional :class:`Pool`
(max or average, with its own kernel, stride and padding) follows the activation, in the
readout. Dilation is 1 and there is one group.

Storage: channels last
----------------------
The I/O buffer holds a map position by position, each position's channels in
``Gc = ceil(C / L)`` rows of L lanes (lanes beyond ``C`` in the last row are padding, never
sent). So a position's channels arrive together and the quantizer sees one channel per lane,
and a dense layer's input vector is the ``P = 1`` case. :class:`MapLayout` gives the rows.

Reuse
-----
A changed input ``(c, y, x)`` with delta ``d`` adds ``weight[:, c, ky, kx] * d`` to the sums of
every output position ``(oy, ox)`` whose receptive field holds it, ``ky = y + top - oy*sh``:
``items(y, x) = rows(y) * cols(x) * G'`` MAC items (weight rows), ``G' = ceil(C' / L)``, where
``rows(y)`` counts the ``oy`` in ``[ceil((y + top - kh + 1) / sh), floor((y + top) / sh)]``
inside ``[0, OH)`` (:meth:`ConvGeometry.items_per_input`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from math import prod

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..config import AccelConfig, check_config
from ..core.layouts import pool_cell_layout, position_layout
from ..core.mac import DeltaMacArray
from ..protocol import CONV_FIELDS, PoolCode
from .descriptor import (
    address_generator_members,
    axis_entry_layout,
    axis_layout,
    conv_descriptor_layout,
)

__all__ = ["AxisTracker", "ConvAddressGenerator", "ConvGeometry", "ConvScanner", "MapLayout",
           "POOL_LATENCY", "POOL_MODES", "Pool", "PoolWalker", "conv_descriptor",
           "conv_fields", "map_fields", "pool_code"]

POOL_MODES = ("max", "avg")

POOL_LATENCY = DeltaMacArray.pool_latency
"""Readout cycles a pooled conv layer's window adds to a plain row's
(:attr:`~reuse_accel.hw.core.mac.DeltaMacArray.pool_latency`)."""

def pool_code(pool: Pool | None) -> PoolCode:
    """The descriptor's ``pool`` field for ``pool``."""
    if pool is None:
        return PoolCode.NONE
    if pool.mode == "max":
        return PoolCode.MAX
    return PoolCode.AVG_COUNTING_PADDING if pool.count_include_pad else PoolCode.AVG


def _pair(values, name: str, count: int = 2) -> tuple[int, ...]:
    values = tuple(int(value) for value in values)
    if len(values) != count:
        raise ValueError(f"{name} must have {count} entries, not {values}")
    return values


def _out_size(size: int, low: int, high: int, kernel: int, stride: int) -> int:
    return (size + low + high - kernel) // stride + 1


@dataclass(frozen=True)
class Pool:
    """A pooling window after a conv layer's activation.

    ``mode`` is ``"max"`` or ``"avg"``; ``kernel`` and ``stride`` are ``(rows, columns)``;
    ``padding`` is ``(top, left, bottom, right)``, each smaller than the kernel. Padding never
    wins a max; an average divides by the window's cells inside the map, or by the whole
    window with ``count_include_pad``.
    """

    mode: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    count_include_pad: bool = False

    def __post_init__(self):
        object.__setattr__(self, "kernel", _pair(self.kernel, "the pool kernel"))
        object.__setattr__(self, "stride", _pair(self.stride, "the pool stride"))
        object.__setattr__(self, "padding", _pair(self.padding, "the pool padding", 4))
        if self.mode not in POOL_MODES:
            raise ValueError(f"the pool mode must be one of {', '.join(POOL_MODES)}, not "
                             f"{self.mode!r}")
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"a pool needs a positive kernel and stride and no negative "
                             f"padding, not kernel {self.kernel}, stride {self.stride}, "
                             f"padding {self.padding}")
        top, left, bottom, right = self.padding
        if max(top, bottom) >= self.kernel[0] or max(left, right) >= self.kernel[1]:
            raise ValueError(f"a pool's padding {self.padding} must be smaller than its "
                             f"kernel {self.kernel}")

    def out_size(self, height: int, width: int) -> tuple[int, int]:
        top, left, bottom, right = self.padding
        return (_out_size(height, top, bottom, self.kernel[0], self.stride[0]),
                _out_size(width, left, right, self.kernel[1], self.stride[1]))

    def windows(self, height: int, width: int):
        """Per pooled position, the ``(row_start, row_stop, col_start, col_stop)`` of its
        window clipped to the ``height x width`` map, and the divisor of an average: arrays
        of shape (PH, PW) each."""
        ph, pw = self.out_size(height, width)
        top, left = self.padding[0], self.padding[1]
        row_start = np.arange(ph) * self.stride[0] - top
        col_start = np.arange(pw) * self.stride[1] - left
        rows = (np.maximum(row_start, 0), np.minimum(row_start + self.kernel[0], height))
        cols = (np.maximum(col_start, 0), np.minimum(col_start + self.kernel[1], width))
        if self.count_include_pad:
            # The padded window, clipped to the padded map (ONNX and PyTorch).
            row_end = np.minimum(row_start + self.kernel[0], height + self.padding[2])
            col_end = np.minimum(col_start + self.kernel[1], width + self.padding[3])
            divisor = np.outer(row_end - row_start, col_end - col_start)
        else:
            divisor = np.outer(rows[1] - rows[0], cols[1] - cols[0])
        return rows, cols, divisor

    def apply(self, maps: np.ndarray, *, exact: bool) -> np.ndarray:
        """Pool channels-last ``maps`` (T, H, W, C). ``exact``: integers, an average rounded
        half up by exact division (as the readout computes it); floats otherwise."""
        maps = np.asarray(maps)
        height, width = maps.shape[1:3]
        ph, pw = self.out_size(height, width)
        top, left, bottom, right = self.padding
        if self.mode == "max":
            fill = np.iinfo(np.int64).min if exact else -np.inf
        else:
            fill = 0
        padded = np.pad(maps, ((0, 0), (top, bottom), (left, right), (0, 0)),
                        constant_values=fill)
        windows = np.lib.stride_tricks.sliding_window_view(padded, self.kernel, axis=(1, 2))
        windows = windows[:, ::self.stride[0], ::self.stride[1]][:, :ph, :pw]
        if self.mode == "max":
            return windows.max(axis=(-2, -1))
        total = windows.sum(axis=(-2, -1))
        divisor = self.windows(height, width)[2][None, :, :, None]
        if exact:
            return (2 * total + divisor) // (2 * divisor)
        return total / divisor

    def window_sums(self, maps: np.ndarray) -> np.ndarray:
        """The sum of each window's cells inside the map, channels-last ``maps`` (T, H, W, C)
        to (T, PH, PW, C)."""
        maps = np.asarray(maps)
        ph, pw = self.out_size(*maps.shape[1:3])
        top, left, bottom, right = self.padding
        padded = np.pad(maps, ((0, 0), (top, bottom), (left, right), (0, 0)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, self.kernel, axis=(1, 2))
        return windows[:, ::self.stride[0], ::self.stride[1]][:, :ph, :pw].sum(axis=(-2, -1))

    def cells(self, height: int, width: int) -> np.ndarray:
        """(PH, PW): cells of each window inside the map (what the readout reads)."""
        rows, cols, _ = self.windows(height, width)
        return np.outer(rows[1] - rows[0], cols[1] - cols[0])


@dataclass(frozen=True)
class MapLayout:
    """How a layer's input map sits in the I/O buffer: ``positions`` positions of
    ``channels`` channels, channels last, each position in ``ceil(channels / L)`` rows."""

    positions: int
    channels: int

    @property
    def size(self) -> int:
        return self.positions * self.channels

    def rows(self, lanes: int) -> int:
        return self.positions * -(-self.channels // lanes)

    def span(self, lanes: int) -> int:
        """Buffer slots (``row * L + lane``) up to the last real value: what SET_LAYER counts
        as the layer's inputs or outputs, so that ``ceil(span / L)`` is the rows and the last
        row's real lanes follow from it."""
        return (self.positions - 1) * -(-self.channels // lanes) * lanes + self.channels

    def scatter(self, values: np.ndarray, lanes: int) -> np.ndarray:
        """``values`` (channels-last order, trailing axis) in their buffer slots, zero between
        them: ``(..., rows * L)``."""
        values = np.asarray(values)
        slots = np.zeros((*values.shape[:-1], self.rows(lanes) * lanes), values.dtype)
        slots[..., self.stored_index(lanes)] = values
        return slots

    def gather(self, slots: np.ndarray, lanes: int) -> np.ndarray:
        """The values in channels-last order out of their buffer slots (the inverse of
        :meth:`scatter`)."""
        return np.asarray(slots)[..., self.stored_index(lanes)]

    def stored_index(self, lanes: int) -> np.ndarray:
        """The buffer slot (row * L + lane) of every input, inputs in channels-last order
        (a read-only array)."""
        return _stored_index(self.positions, self.channels, lanes)


@cache
def _stored_index(positions: int, channels: int, lanes: int) -> np.ndarray:
    groups = -(-channels // lanes)
    position, channel = np.divmod(np.arange(positions * channels), channels)
    slots = position * groups * lanes + channel
    slots.flags.writeable = False
    return slots


@dataclass(frozen=True)
class ConvGeometry:
    """The shape of one conv layer (see the module docstring); ``dims`` is 1 for a 1-D conv
    (``height`` 1, kernel and stride ``(1, k)``, no top or bottom padding)."""

    channels: int
    height: int
    width: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    pool: Pool | None = None
    dims: int = 2

    def __post_init__(self):
        object.__setattr__(self, "kernel", _pair(self.kernel, "the kernel"))
        object.__setattr__(self, "stride", _pair(self.stride, "the stride"))
        object.__setattr__(self, "padding", _pair(self.padding, "the padding", 4))
        if min(self.channels, self.height, self.width, self.out_channels) < 1:
            raise ValueError(f"a conv layer needs positive sizes, not {self.channels} "
                             f"channels of {self.height} x {self.width} to "
                             f"{self.out_channels} channels")
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"a conv layer needs a positive kernel and stride and no "
                             f"negative padding, not kernel {self.kernel}, stride "
                             f"{self.stride}, padding {self.padding}")
        if self.dims not in (1, 2):
            raise ValueError(f"a conv layer has 1 or 2 spatial dimensions, not {self.dims}")
        if self.dims == 1 and (self.height != 1 or self.kernel[0] != 1 or self.stride[0] != 1
                               or self.padding[0] or self.padding[2]):
            raise ValueError("a 1-D conv layer has height 1, a (1, k) kernel, a (1, s) stride "
                             "and no top or bottom padding")
        if min(self.conv_size) < 1:
            raise ValueError(
                f"a {self.kernel[0]} x {self.kernel[1]} kernel does not fit the "
                f"{self.height} x {self.width} map padded by {self.padding}")
        if self.pool is not None and min(self.out_size) < 1:
            raise ValueError(f"the pool's {self.pool.kernel} window does not fit the "
                             f"{self.conv_size} map the convolution gives")

    # -- shapes -------------------------------------------------------------------------------

    @property
    def conv_size(self) -> tuple[int, int]:
        """``(OH, OW)``: the convolution's output positions (before any pool)."""
        top, left, bottom, right = self.padding
        return (_out_size(self.height, top, bottom, self.kernel[0], self.stride[0]),
                _out_size(self.width, left, right, self.kernel[1], self.stride[1]))

    @property
    def out_size(self) -> tuple[int, int]:
        """The layer's output positions, after the pool."""
        if self.pool is None:
            return self.conv_size
        return self.pool.out_size(*self.conv_size)

    def _shape(self, channels: int, size: tuple[int, int]) -> tuple[int, ...]:
        return (channels, size[1]) if self.dims == 1 else (channels, *size)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C, H, W)``, or ``(C, W)`` for a 1-D conv: as ONNX and PyTorch see it."""
        return self._shape(self.channels, (self.height, self.width))

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self._shape(self.out_channels, self.out_size)

    @property
    def inputs(self) -> int:
        return self.channels * self.height * self.width

    @property
    def outputs(self) -> int:
        return self.out_channels * prod(self.out_size)

    @property
    def sums(self) -> int:
        """Pre-activation sums the layer keeps: every conv output, before the pool."""
        return self.out_channels * prod(self.conv_size)

    @property
    def input_layout(self) -> MapLayout:
        return MapLayout(self.height * self.width, self.channels)

    @property
    def output_layout(self) -> MapLayout:
        return MapLayout(prod(self.out_size), self.out_channels)

    # -- work -------------------------------------------------------------------------------

    def _outputs_along(self, size: int, low: int, kernel: int, stride: int,
                       out: int) -> np.ndarray:
        """For each input coordinate, how many output coordinates its kernel taps reach."""
        position = np.arange(size) + low
        first = np.maximum(-((kernel - 1 - position) // stride), 0)    # ceil((p-k+1)/s)
        last = np.minimum(position // stride, out - 1)
        return np.maximum(last - first + 1, 0)

    def outputs_per_input(self) -> np.ndarray:
        """(H, W): output positions each input position contributes to."""
        oh, ow = self.conv_size
        rows = self._outputs_along(self.height, self.padding[0], self.kernel[0],
                                   self.stride[0], oh)
        cols = self._outputs_along(self.width, self.padding[1], self.kernel[1],
                                   self.stride[1], ow)
        return np.outer(rows, cols)

    def items_per_input(self, lanes: int) -> np.ndarray:
        """MAC items (weight rows) of each changed input, channels-last order (H*W*C,)."""
        groups = -(-self.out_channels // lanes)
        return np.repeat(self.outputs_per_input().reshape(-1) * groups, self.channels)

    def correlate(self, maps: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The convolution without bias: channels-last ``maps`` (T, H, W, C) and ``(C', C,
        kh, kw)`` weights to (T, OH, OW, C'), in float64 (exact for integers below 2**53)."""
        maps = np.asarray(maps, dtype=np.float64)
        top, left, bottom, right = self.padding
        oh, ow = self.conv_size
        padded = np.pad(maps, ((0, 0), (top, bottom), (left, right), (0, 0)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, self.kernel, axis=(1, 2))
        windows = windows[:, ::self.stride[0], ::self.stride[1]][:, :oh, :ow]
        # (T, OH, OW, C, kh, kw) . (C', C, kh, kw) over (C, kh, kw)
        return np.tensordot(windows, np.asarray(weights, dtype=np.float64),
                            axes=([3, 4, 5], [1, 2, 3]))

    def readout_cells(self) -> np.ndarray:
        """Sums the readout reads for each output position (PH*PW,): the window's cells
        inside the map with a pool, one without."""
        if self.pool is None:
            return np.ones(prod(self.conv_size), np.int64)
        return self.pool.cells(*self.conv_size).reshape(-1)

    def weight_row_count(self, lanes: int) -> int:
        """Weight-memory rows: one per input channel, kernel tap and output group."""
        return self.channels * self.kernel[0] * self.kernel[1] * -(-self.out_channels // lanes)

    def weight_rows(self, lanes: int, weights: np.ndarray) -> np.ndarray:
        """The ``(G' * kh * kw * C, L)`` weight rows of ``(C', C, kh, kw)`` weights: row
        ``((g * kh + ky) * kw + kx) * C + c`` holds ``weight[g*L .. g*L+L-1, c, ky, kx]``
        (zero beyond ``C'``)."""
        weights = np.asarray(weights, dtype=np.int64)
        groups = -(-self.out_channels // lanes)
        padded = np.zeros((groups * lanes, *weights.shape[1:]), np.int64)
        padded[:self.out_channels] = weights
        # (g, lane, c, ky, kx) -> (g, ky, kx, c, lane)
        return padded.reshape(groups, lanes, *weights.shape[1:]).transpose(
            0, 3, 4, 2, 1).reshape(-1, lanes)


# -- gateware -------------------------------------------------------------------------------
#
# The address generator needs, for a changed input (c, y, x), the last output row whose window
# holds row y (``out``) and the kernel row of y in it (``tap``), likewise along x; the windows
# that hold the input are then ``out - j`` at taps ``tap + j * stride`` while the tap stays
# inside the kernel and the output stays at or above 0. Finding them takes a division by the
# stride, but along the map in order they change by one step at a time: the ConvScanner
# follows the row reader position by position with one AxisTracker per axis and writes each
# coordinate's values into a small table (H + W entries), which the generator reads for the
# changed inputs that come through the change detector later. No multiplier or divider.


def _axis_fields(size, kernel, stride, low, out, weight_step, sum_step) -> dict:
    first_out = min(out - 1, low // stride)
    first_tap = low - first_out * stride
    return {"size": size, "kernel": kernel, "stride": stride, "last_out": out - 1,
            "first_out": first_out, "first_tap": first_tap, "weight_step": weight_step,
            "first_weights": first_tap * weight_step, "walk_weights": stride * weight_step,
            "sum_step": sum_step, "first_sums": first_out * sum_step}


def _pool_axis(pool: Pool | None, axis: int, size: int, step: int) -> dict:
    """One axis of the pool fields (a one-cell window without a pool); ``step``: sum rows from
    one conv output to the next along the axis."""
    if pool is None:
        return {"kernel": 1, "stride": 1, "low": 0, "count": size, "low_sums": 0, "step": step}
    low = pool.padding[axis]
    count = _out_size(size, low, pool.padding[axis + 2], pool.kernel[axis], pool.stride[axis])
    return {"kernel": pool.kernel[axis], "stride": pool.stride[axis], "low": low,
            "count": count, "low_sums": low * step, "step": pool.stride[axis] * step}


def map_fields(config: AccelConfig, layout: MapLayout) -> dict:
    """The descriptor fields that say how a map's positions sit in the I/O buffer's rows:
    ``channel_rows`` per position and ``channel_lanes``, the real lanes of a position's last
    row. A conv layer's input map has them, and so does a dense layer over a map of several
    positions whose channels leave padding lanes (SET_CONV sets only these two fields for it)."""
    lanes = config.lanes
    rows = -(-layout.channels // lanes)
    return {"channel_rows": rows,
            "channel_lanes": (1 << (layout.channels - (rows - 1) * lanes)) - 1}


def conv_descriptor(config: AccelConfig, geometry: ConvGeometry) -> dict:
    """The conv descriptor fields of a layer. Raises
    ``ValueError`` naming the capacity a layer exceeds, or a padding the gateware cannot run."""
    lanes = config.lanes
    channels, out_channels = geometry.channels, geometry.out_channels
    (kh, kw), (sh, sw) = geometry.kernel, geometry.stride
    top, left, bottom, right = geometry.padding
    oh, ow = geometry.conv_size
    if max(kh, kw, sh, sw) > config.max_kernel:
        raise ValueError(f"kernel {geometry.kernel} with stride {geometry.stride} exceeds "
                         f"max_kernel={config.max_kernel}")
    if geometry.height > config.max_height or geometry.width > config.max_width:
        raise ValueError(f"a {geometry.height} x {geometry.width} map exceeds max_height="
                         f"{config.max_height}, max_width={config.max_width}")
    if geometry.pool is not None and max(*geometry.pool.kernel,
                                         *geometry.pool.stride) > config.max_kernel:
        raise ValueError(f"the pool's {geometry.pool.kernel} window with stride "
                         f"{geometry.pool.stride} exceeds max_kernel={config.max_kernel}")
    if max(top, bottom) >= kh or max(left, right) >= kw:
        raise ValueError(f"padding {geometry.padding} must be smaller than the kernel "
                         f"{geometry.kernel} (an output whose window is all padding would "
                         "never start from its bias)")
    groups = -(-out_channels // lanes)
    fields = {
        "y": _axis_fields(geometry.height, kh, sh, top, oh, kw * channels, ow * groups),
        "x": _axis_fields(geometry.width, kw, sw, left, ow, channels, groups),
        **map_fields(config, geometry.input_layout),
        "groups": groups,
        "group_lanes": out_channels - (groups - 1) * lanes,
        "group_weights": kh * kw * channels,
        "sum_rows": oh * ow * groups,
        "pool": pool_code(geometry.pool).value,
        "pool_y": _pool_axis(geometry.pool, 0, oh, ow * groups),
        "pool_x": _pool_axis(geometry.pool, 1, ow, groups),
    }
    for axis in ("y", "x"):
        fields[axis]["first_weights"] %= 1 << config.weight_row_bits
    return fields


def conv_fields(config: AccelConfig, geometry: ConvGeometry) -> list[int]:
    """:func:`conv_descriptor` as the values SET_CONV sends, in the order of
    :data:`~reuse_accel.hw.protocol.CONV_FIELDS`."""
    fields = conv_descriptor(config, geometry)
    values = []
    for name in CONV_FIELDS:
        value = fields
        for part in name.split("."):
            value = value[part]
        values.append(int(value))
    return values


def _table_signature(config: AccelConfig, axis: str) -> memory.WritePort.Signature:
    """A write port of the conv generator's table for ``axis`` (``"y"`` or ``"x"``): one
    :func:`axis_entry_layout` entry per coordinate."""
    size = config.max_height if axis == "y" else config.max_width
    return memory.WritePort.Signature(addr_width=position_layout(config).members[axis].width,
                                      shape=axis_entry_layout(config, size))


def _require_conv(config: AccelConfig, what: str) -> None:
    if not config.conv:
        raise ValueError(f"{what} is part of hardware with conv layers; set max_kernel to the "
                         "largest kernel side")


class AxisTracker(wiring.Component):
    """One axis's ``(out, tap)`` of the coordinate a scan has reached, one step at a time.

    - ``start``: coordinate 0 (latched from ``axis``, which holds while the layer runs);
      ``step``: the next coordinate. ``entry`` (:func:`axis_entry_layout`) is the current
      coordinate's, from registers.
    - A step moves to the next output when the tap reaches the stride and an output is left;
      otherwise the tap grows (past the kernel's end, for a coordinate no window of the last
      output reaches).
    """

    def __init__(self, config: AccelConfig, size: int):
        self._config = check_config(config)
        super().__init__({
            "axis": In(axis_layout(config, size)),
            "start": In(1),
            "step": In(1),
            "entry": Out(axis_entry_layout(config, size)),
        })

    def elaborate(self, platform):
        m = Module()
        axis, entry = self.axis, self.entry
        next_output = (entry.tap + 1 == axis.stride) & (entry.out != axis.last_out)
        with m.If(self.start):
            m.d.sync += [
                entry.out.eq(axis.first_out),
                entry.tap.eq(axis.first_tap),
                entry.weights.eq(axis.first_weights),
                entry.sums.eq(axis.first_sums),
                entry.first.eq(1),
            ]
        with m.Elif(self.step):
            m.d.sync += entry.first.eq(0)
            with m.If(next_output):
                m.d.sync += [
                    entry.out.eq(entry.out + 1),
                    entry.tap.eq(0),
                    entry.weights.eq(0),
                    entry.sums.eq(entry.sums + axis.sum_step),
                ]
            with m.Else():
                m.d.sync += [
                    entry.tap.eq(entry.tap + 1),
                    entry.weights.eq(entry.weights + axis.weight_step),
                ]
        return m


class ConvScanner(wiring.Component):
    """Follows a conv layer's input rows in the order the row reader reads them.

    - ``start``: the layer begins (``conv``, its descriptor fields, is latched); the current
      row is row 0, position ``(0, 0)``, channel group 0.
    - ``advance``: the current row has been read; the next row becomes current.
    - ``position`` (:func:`position_layout`) and ``lanes`` (the real lanes: all but in a
      position's last row) describe the current row, from registers.
    - ``y_write``, ``x_write``: as the first row of each position is read, its y and x
      coordinates' :func:`axis_entry_layout` values are written to the generator's tables at
      addresses ``y`` and ``x``.
    """

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        _require_conv(config, "the conv scanner")
        super().__init__({
            "conv": In(conv_descriptor_layout(config)),
            "start": In(1),
            "advance": In(1),
            "position": Out(position_layout(config)),
            "lanes": Out(config.lanes),
            "y_write": In(_table_signature(config, "y")),
            "x_write": In(_table_signature(config, "x")),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        position = self.position
        # The descriptor, latched at start (and used directly in the start cycle).
        held = Signal.like(self.conv)
        with m.If(self.start):
            m.d.sync += held.eq(self.conv)
        conv = conv_descriptor_layout(config)(Mux(self.start, self.conv.as_value(),
                                                  held.as_value()))
        m.submodules.y = y = AxisTracker(config, config.max_height)
        m.submodules.x = x = AxisTracker(config, config.max_width)
        last_group = position.group == conv.channel_rows - 1
        last_column = position.x == conv.x.size - 1
        m.d.comb += [
            y.axis.eq(conv.y),
            x.axis.eq(conv.x),
            y.start.eq(self.start),
            x.start.eq(self.start | (self.advance & last_group & last_column)),
            y.step.eq(self.advance & last_group & last_column),
            x.step.eq(self.advance & last_group & ~last_column),
            self.lanes.eq(Mux(last_group, conv.channel_lanes, Const(-1, config.lanes))),
            self.y_write.addr.eq(position.y),
            self.y_write.data.eq(y.entry),
            self.y_write.en.eq(self.advance & (position.group == 0)),
            self.x_write.addr.eq(position.x),
            self.x_write.data.eq(x.entry),
            self.x_write.en.eq(self.advance & (position.group == 0)),
        ]
        with m.If(self.start):
            m.d.sync += position.eq(0)
        with m.Elif(self.advance):
            with m.If(~last_group):
                m.d.sync += position.group.eq(position.group + 1)
            with m.Else():
                m.d.sync += position.group.eq(0)
                with m.If(~last_column):
                    m.d.sync += position.x.eq(position.x + 1)
                with m.Else():
                    m.d.sync += [position.x.eq(0), position.y.eq(position.y + 1)]
        return m


class ConvAddressGenerator(wiring.Component):
    """Changed inputs of a conv layer -> MAC items, one per output position whose window holds
    the input and output-channel group.

    Contract
    --------
    - ``i``: changed inputs with their ``position`` (the row's, from the :class:`ConvScanner`)
      and lane, the channel ``c = group * L + lane``. ``o``: for every window holding the
      input, last output first (``oy`` and then ``ox`` descending), ``G'`` items: weight row
      ``weight_base + ((g * kh + ky) * kw + kx) * C + c`` (:meth:`ConvGeometry.weight_rows`),
      sum row ``sum_base + (oy * OW + ox) * G' + g``, bias row ``g``. ``init`` is set on the
      items of the first input of a layer computed from scratch that reaches each output: its
      channel 0, its row 0 or kernel row 0 and its column 0 or kernel column 0.
    - ``y_table``, ``x_table``: the scanner's writes; an input's entries must be written
      before it arrives (its row is read long before).
    - ``start``: latches the layer's parameters from ``descriptor``, ``sum_base`` (where its
      sums start in the sum memory) and ``from_scratch``, while no item is offered.
    - ``idle``: no input is held (none accepted and not finished).
    - Timing: an input is accepted into a two-entry pipeline (the table read, then the first
      addresses), and reaches the item walker :attr:`latency` cycles after its handshake at the
      earliest; the walker issues its items one per cycle and takes the next input in the
      cycle of its last item, so inputs that wait cost no bubbles. An input no window holds
      spends one cycle in the walker without an item. The next input is accepted while the
      pipeline's first entry is free or moving on.
    """

    latency = 3
    """Cycles from an input's handshake to its first item on ``o``."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        _require_conv(config, "the conv address generator")
        super().__init__({
            **address_generator_members(config),
            "y_table": Out(_table_signature(config, "y")),
            "x_table": Out(_table_signature(config, "x")),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes = config.lanes
        lane_bits = exact_log2(lanes)
        tables = {axis: _table_signature(config, axis) for axis in ("y", "x")}
        m.submodules.y_entries = y_entries = memory.Memory(
            shape=tables["y"].shape, depth=1 << tables["y"].addr_width, init=[])
        m.submodules.x_entries = x_entries = memory.Memory(
            shape=tables["x"].shape, depth=1 << tables["x"].addr_width, init=[])
        wiring.connect(m, wiring.flipped(self.y_table), y_entries.write_port())
        wiring.connect(m, wiring.flipped(self.x_table), x_entries.write_port())
        y_read, x_read = y_entries.read_port(), x_entries.read_port()

        # The layer's parameters, latched at start.
        conv = Signal(conv_descriptor_layout(config))
        weight_base = Signal(config.weight_row_bits)
        sum_base = Signal(config.sum_row_bits)
        from_scratch = Signal()
        with m.If(self.start):
            m.d.sync += [conv.eq(self.descriptor.conv),
                         weight_base.eq(self.descriptor.weight_base),
                         sum_base.eq(self.sum_base),
                         from_scratch.eq(self.from_scratch)]

        # Stage 1: the input, its table entries on the read ports' outputs.
        p1_valid = Signal()
        p1_channel = Signal(config.input_bits)       # c = group * L + lane
        p1_delta = Signal.like(self.i.payload.delta)
        # Stage 2: the input's first item and its walk.
        p2_valid = Signal()
        p2 = Signal(data.StructLayout({
            "delta": self.i.payload.delta.shape(),
            "weights": unsigned(config.weight_row_bits),
            "sums": unsigned(config.sum_row_bits),
            "y": axis_entry_layout(config, config.max_height),
            "x": axis_entry_layout(config, config.max_width),
            "channel_first": unsigned(1),
            "empty": unsigned(1),
        }))

        # The walker: the input whose items are being issued.
        busy = Signal()
        empty = Signal()
        delta = Signal.like(p1_delta)
        channel_first = Signal()
        y_first, x_first = Signal(), Signal()
        out_y, tap_y = Signal.like(p2.y.out), Signal.like(p2.y.tap)
        out_x, tap_x = Signal.like(p2.x.out), Signal.like(p2.x.tap)
        start_out_x, start_tap_x = Signal.like(out_x), Signal.like(tap_x)
        line_weights, line_sums = Signal(config.weight_row_bits), Signal(config.sum_row_bits)
        cell_weights, cell_sums = Signal.like(line_weights), Signal.like(line_sums)
        weight_row, sum_row = Signal.like(line_weights), Signal.like(line_sums)
        group = Signal(config.group_bits)
        group_last = Signal()

        more_x = (tap_x + conv.x.stride < conv.x.kernel) & (out_x != 0)
        more_y = (tap_y + conv.y.stride < conv.y.kernel) & (out_y != 0)
        last = empty | (group_last & ~more_x & ~more_y)
        emit = busy & ~empty
        take = ~busy | (last & (empty | self.o.ready))
        p2_advance = ~p2_valid | take
        p1_advance = ~p1_valid | p2_advance
        accept = self.i.valid & self.i.ready

        m.d.comb += [
            self.i.ready.eq(p1_advance),
            y_read.addr.eq(self.i.payload.position.y),
            x_read.addr.eq(self.i.payload.position.x),
            y_read.en.eq(accept),
            x_read.en.eq(accept),
            self.o.valid.eq(emit),
            self.idle.eq(~p1_valid & ~p2_valid & ~busy),
            self.o.payload.weight_row.eq(weight_row),
            self.o.payload.sum_row.eq(sum_row),
            self.o.payload.bias_row.eq(group),
            self.o.payload.delta.eq(delta),
            self.o.payload.init.eq(from_scratch & channel_first & (y_first | (tap_y == 0)) &
                                   (x_first | (tap_x == 0))),
            self.o.payload.real_lanes.eq(Mux(group_last, conv.group_lanes, lanes)),
        ]

        with m.If(self.start):
            m.d.sync += [p1_valid.eq(0), p2_valid.eq(0), busy.eq(0)]
        with m.Else():
            with m.If(p1_advance):
                m.d.sync += [
                    p1_valid.eq(self.i.valid),
                    p1_channel.eq(Cat(self.i.payload.input[:lane_bits],
                                      self.i.payload.position.group)),
                    p1_delta.eq(self.i.payload.delta),
                ]
            with m.If(p2_advance):
                y_entry, x_entry = y_read.data, x_read.data
                m.d.sync += [
                    p2_valid.eq(p1_valid),
                    p2.delta.eq(p1_delta),
                    p2.weights.eq(weight_base + y_entry.weights + x_entry.weights + p1_channel),
                    p2.sums.eq(sum_base + y_entry.sums + x_entry.sums),
                    p2.y.eq(y_entry),
                    p2.x.eq(x_entry),
                    p2.channel_first.eq(p1_channel == 0),
                    p2.empty.eq((y_entry.tap >= conv.y.kernel) |
                                (x_entry.tap >= conv.x.kernel)),
                ]
            with m.If(take):
                m.d.sync += [
                    busy.eq(p2_valid),
                    empty.eq(p2.empty),
                    delta.eq(p2.delta),
                    channel_first.eq(p2.channel_first),
                    y_first.eq(p2.y.first),
                    x_first.eq(p2.x.first),
                    out_y.eq(p2.y.out), tap_y.eq(p2.y.tap),
                    out_x.eq(p2.x.out), tap_x.eq(p2.x.tap),
                    start_out_x.eq(p2.x.out), start_tap_x.eq(p2.x.tap),
                    line_weights.eq(p2.weights), line_sums.eq(p2.sums),
                    cell_weights.eq(p2.weights), cell_sums.eq(p2.sums),
                    weight_row.eq(p2.weights), sum_row.eq(p2.sums),
                    group.eq(0),
                    group_last.eq(conv.groups == 1),
                ]
            with m.Elif(emit & self.o.ready):
                with m.If(~group_last):
                    m.d.sync += [
                        group.eq(group + 1),
                        group_last.eq(group + 2 == conv.groups),
                        weight_row.eq(weight_row + conv.group_weights),
                        sum_row.eq(sum_row + 1),
                    ]
                with m.Else():
                    m.d.sync += [group.eq(0), group_last.eq(conv.groups == 1)]
                    with m.If(more_x):
                        next_weights = cell_weights + conv.x.walk_weights
                        next_sums = cell_sums - conv.x.sum_step
                        m.d.sync += [
                            out_x.eq(out_x - 1), tap_x.eq(tap_x + conv.x.stride),
                            cell_weights.eq(next_weights), cell_sums.eq(next_sums),
                            weight_row.eq(next_weights), sum_row.eq(next_sums),
                        ]
                    with m.Else():     # more_y: the last item is taken above
                        next_weights = line_weights + conv.y.walk_weights
                        next_sums = line_sums - conv.y.sum_step
                        m.d.sync += [
                            out_y.eq(out_y - 1), tap_y.eq(tap_y + conv.y.stride),
                            out_x.eq(start_out_x), tap_x.eq(start_tap_x),
                            line_weights.eq(next_weights), line_sums.eq(next_sums),
                            cell_weights.eq(next_weights), cell_sums.eq(next_sums),
                            weight_row.eq(next_weights), sum_row.eq(next_sums),
                        ]
        return m


class PoolWalker(wiring.Component):
    """The readout of a conv layer with a pool: every pooled output's window cells.

    Contract
    --------
    - ``start``: the readout begins; latches ``conv`` and ``base`` (where the layer's sums
      start). For every pooled position ``(py, px)`` in order, for every output group ``g``,
      it issues the window's cells inside the map, row by row, one per cycle, on ``cell``
      (:func:`~reuse_accel.hw.core.layouts.pool_cell_layout`): ``valid`` with the sum row
      ``address`` (the conv output ``(cy, cx)``'s group ``g``), ``first`` and ``last`` for the
      window's first and last cell, ``row``, the output row the window's result goes to
      (``(py * PW + px) * G' + g``), ``average`` for an average pool and ``divisor``, what the
      average divides by (the window's cells inside the map, or all its cells when it counts
      padding). ``done`` comes with the last cell of the last window.
    - One cycle without a cell (the first window's setup) follows ``start``; every next
      window is set up in its predecessor's last cycle and follows it without a gap.
    - No window is empty (a pool's padding is smaller than its kernel).
    """

    setup_latency = 1
    """Cycles without a cell between ``start`` and the first cell: the first window's
    setup."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        _require_conv(config, "the pool walker")
        super().__init__({
            "conv": In(conv_descriptor_layout(config)),
            "base": In(config.sum_row_bits),
            "start": In(1),
            "cell": Out(pool_cell_layout(config)),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        conv = Signal.like(self.conv)
        base = Signal(config.sum_row_bits)
        sums = config.sum_row_bits + 1
        coordinate = max(config.coordinate_bits(config.max_height),
                         config.coordinate_bits(config.max_width)) + 1

        # The window being walked (``walking``): its cells inside the map, where its group-0
        # cells start, its divisor, whether it is the last.
        walking = Signal()
        window = data.StructLayout({
            "rows": config.kernel_bits, "cols": config.kernel_bits,
            "start": config.sum_row_bits, "divisor": range(config.max_pool_cells + 1),
            "last": 1})
        current = Signal(window)
        # The next window: its top-left corner (negative inside the padding), its sum
        # offsets, its pooled position; ``remaining`` while one is left.
        remaining = Signal()
        top, left = Signal(signed(coordinate)), Signal(signed(coordinate))
        top_sums, left_sums = Signal(signed(sums)), Signal(signed(sums))
        py, px = Signal(coordinate), Signal(coordinate)
        # The walk through the current window's cells, group by group.
        cy, cx = Signal(config.kernel_bits), Signal(config.kernel_bits)
        group = Signal(config.group_bits)
        group_base = Signal(config.sum_row_bits)
        line = Signal(config.sum_row_bits)
        address = Signal(config.sum_row_bits)
        row = Signal(config.row_bits)

        oh, ow = conv.y.last_out + 1, conv.x.last_out + 1
        last_cell = (cy == current.rows - 1) & (cx == current.cols - 1)
        last_group = group == conv.groups - 1
        finishing = walking & last_cell & last_group
        m.d.comb += [
            self.cell.valid.eq(walking),
            self.cell.address.eq(address),
            self.cell.first.eq((cy == 0) & (cx == 0)),
            self.cell.last.eq(last_cell),
            self.cell.row.eq(row),
            self.cell.average.eq((conv.pool == PoolCode.AVG) |
                                 (conv.pool == PoolCode.AVG_COUNTING_PADDING)),
            self.cell.divisor.eq(current.divisor),
            self.cell.done.eq(finishing & current.last),
        ]

        def clipped(start, kernel, size):
            """The first cell inside the map and the cells inside it."""
            first = Mux(start[-1], 0, start)
            end = Mux(start + kernel > size, size, start + kernel)
            return first, end - first

        # The next window, set up from its corner.
        _, row_count = clipped(top, conv.pool_y.kernel, oh)
        _, col_count = clipped(left, conv.pool_x.kernel, ow)
        counting_padding = conv.pool == PoolCode.AVG_COUNTING_PADDING
        next_window = Signal(window)
        m.d.comb += [
            next_window.rows.eq(row_count), next_window.cols.eq(col_count),
            next_window.start.eq((base + Mux(top[-1], 0, top_sums) +
                                  Mux(left[-1], 0, left_sums))[:config.sum_row_bits]),
            next_window.divisor.eq(Mux(counting_padding,
                                       conv.pool_y.kernel * conv.pool_x.kernel,
                                       row_count * col_count)),
            next_window.last.eq((px == conv.pool_x.count - 1) & (py == conv.pool_y.count - 1)),
        ]

        def begin(params):
            """Start walking the window ``params`` from its first cell."""
            return [walking.eq(1), current.eq(params), cy.eq(0), cx.eq(0), group.eq(0),
                    group_base.eq(params.start), line.eq(params.start),
                    address.eq(params.start)]

        with m.If(self.start):
            m.d.sync += [
                conv.eq(self.conv), base.eq(self.base), walking.eq(0), remaining.eq(1),
                py.eq(0), px.eq(0), row.eq(0),
                top.eq(-self.conv.pool_y.low), left.eq(-self.conv.pool_x.low),
                top_sums.eq(-self.conv.pool_y.low_sums),
                left_sums.eq(-self.conv.pool_x.low_sums),
            ]
        with m.Else():
            # The walk.
            with m.If(walking):
                with m.If(~last_cell):
                    with m.If(cx == current.cols - 1):
                        m.d.sync += [cx.eq(0), cy.eq(cy + 1),
                                     line.eq(line + conv.y.sum_step),
                                     address.eq(line + conv.y.sum_step)]
                    with m.Else():
                        m.d.sync += [cx.eq(cx + 1), address.eq(address + conv.groups)]
                with m.Else():
                    m.d.sync += row.eq(row + 1)
                    with m.If(~last_group):
                        m.d.sync += [group.eq(group + 1), cy.eq(0), cx.eq(0),
                                     group_base.eq(group_base + 1), line.eq(group_base + 1),
                                     address.eq(group_base + 1)]
            # The next window follows the current one's last cell without a gap (the first
            # takes a cycle to set up), and the corner moves on.
            with m.If(~walking | finishing):
                with m.If(remaining):
                    m.d.sync += begin(next_window)
                    with m.If(next_window.last):
                        m.d.sync += remaining.eq(0)
                    with m.Elif(px != conv.pool_x.count - 1):
                        m.d.sync += [px.eq(px + 1), left.eq(left + conv.pool_x.stride),
                                     left_sums.eq(left_sums + conv.pool_x.step)]
                    with m.Else():
                        m.d.sync += [px.eq(0), left.eq(-conv.pool_x.low),
                                     left_sums.eq(-conv.pool_x.low_sums),
                                     py.eq(py + 1), top.eq(top + conv.pool_y.stride),
                                     top_sums.eq(top_sums + conv.pool_y.step)]
                with m.Else():
                    m.d.sync += walking.eq(0)
        return m


AddressGenerator = ConvAddressGenerator
"""The kind's address generator, under the name every kind module gives it."""


def weight_extent(config: AccelConfig, inputs, outputs):
    """The weight rows SET_LAYER can check for a conv layer: none, since they follow from its
    kernel (set by SET_CONV after it); SET_LAYER checks only that its weights start inside the
    weight memory, and the host that they end inside it."""
    return 0
