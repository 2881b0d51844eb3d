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

__all__ = ["ConvGeometry", "MapLayout", "POOL_LATENCY", "POOL_MODES", "Pool"]

POOL_MODES = ("max", "avg")

POOL_LATENCY = 1
"""Readout cycles a conv layer adds to a dense layer's: the pool stage's register."""


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
