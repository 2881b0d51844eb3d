"""Rows of L lanes: how many a count of values takes, and which lanes of the last are real."""

from amaranth.hdl import Const, Mux
from amaranth.utils import exact_log2

__all__ = ["row_count", "last_row_mask"]


def row_count(count, lanes: int):
    """``ceil(count / lanes)``, for a gateware value ``count`` and a power-of-two ``lanes``."""
    return (count + lanes - 1) >> exact_log2(lanes)


def last_row_mask(count, lanes: int):
    """The lanes that hold real values in the last row of ``count`` values (all of them when
    ``count`` is a multiple of ``lanes``)."""
    lane_bits = exact_log2(lanes)
    remainder = count[:lane_bits] if lane_bits else Const(0, 1)
    return Mux(remainder == 0, Const(-1, lanes), (Const(1, lanes + 1) << remainder) - 1)
