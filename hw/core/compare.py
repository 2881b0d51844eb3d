"""Magnitude comparison as the sign of a difference.

``less_than(a, b)`` is ``a < b`` computed as the sign bit of ``a - b``, both widened to signed
values first, so the difference never overflows. A subtraction maps to one carry chain on FPGAs
(ECP5 CCU2C, iCE40 SB_CARRY); Yosys maps a ``<`` or ``>`` cell between two signals to a carry
chain plus a tree of LUTs beside it, several times the logic (measured on the quantizer's
L x (K-1) comparators, ECP5: 9,346 LUT4 and carry-cell LUTs with ``>``, 3,547 with
:func:`less_than`).
"""

from amaranth.hdl import Cat, Const, Value

__all__ = ["less_than"]


def _signed(value):
    value = Value.cast(value)
    if value.shape().signed:
        return value
    return Cat(value, Const(0, 1)).as_signed()


def less_than(a, b):
    """``a < b`` for signed or unsigned values (or integers), as the sign of ``a - b``."""
    return (_signed(a) - _signed(b))[-1]
