"""Amaranth twins of :mod:`accelgen.numerics`: the same functions on Amaranth values.

Each function is combinational and returns a value of exactly the format's shape
(``signed(w)`` or ``unsigned(w)``); ``tests/test_numerics.py`` checks every twin against its
numpy twin exhaustively for input widths up to 12 bits.
"""

from amaranth.hdl import Cat, Const, Mux, Value

from ...numerics import Overflow, Rounding

__all__ = ["wrap", "saturate", "apply_overflow", "round_shift", "round_up"]


def _extend(value, width):
    """Sign- or zero-extend ``value`` (by its own signedness) to at least ``width`` bits."""
    value = Value.cast(value)
    shape = value.shape()
    pad = width - shape.width
    if pad <= 0:
        return value
    if shape.signed:
        return Cat(value, value[-1].replicate(pad)).as_signed()
    return Cat(value, Const(0, pad))


def _as(value, fmt):
    """The low ``fmt.width`` bits of ``value`` (extended first if narrower), read as ``fmt``."""
    low = _extend(value, fmt.width)[:fmt.width]
    return low.as_signed() if fmt.signed else low


def wrap(value, fmt):
    """Keep the low ``fmt.width`` bits, read as ``fmt``."""
    return _as(value, fmt)


def saturate(value, fmt):
    """Clamp ``value`` to ``[fmt.min, fmt.max]``.

    A signed value into a signed format is out of range exactly when its bits from the
    format's sign bit up are not all copies of its own sign: that test is a LUT tree, not the
    two carry-chain compares (it keeps a saturating accumulator to one carry chain)."""
    value = Value.cast(value)
    w = fmt.width
    if fmt.signed and value.shape().signed:
        if len(value) <= w:
            return _as(value, fmt)
        top, sign = value[w - 1:], value[-1]
        return _as(Mux(~sign & top.any(), fmt.max, Mux(sign & ~top.all(), fmt.min, value)), fmt)
    if not fmt.signed and value.shape().signed and fmt.min == 0:
        # into [0, 2**w - 1]: below when negative, above when a bit from ``w`` up is set
        # (again bit tests, no compares)
        sign = value[-1]
        above = value[w:-1].any() if len(value) > w + 1 else Const(0, 1)
        return _as(Mux(sign, 0, Mux(above, fmt.max, value)), fmt)
    clamped = Mux(value > fmt.max, fmt.max, Mux(value < fmt.min, fmt.min, value))
    return _as(clamped, fmt)


def apply_overflow(value, fmt, policy):
    return wrap(value, fmt) if Overflow(policy) is Overflow.WRAP else saturate(value, fmt)


def round_shift(value, shift, mode):
    """``value / 2**shift`` rounded by ``mode``; ``shift`` is an elaboration-time integer.
    The result is one bit wider than ``value >> shift`` to hold round-up carries."""
    value = Value.cast(value)
    mode = Rounding(mode)
    if shift == 0:
        return value
    signed = value.shape().signed
    value = _extend(value, shift + 1)   # shifts as wide as the value still see a sign bit
    floor = value >> shift
    rem = value[:shift]
    half = rem[shift - 1]
    below_half = rem[:shift - 1].any() if shift > 1 else 0
    negative = value[-1] if signed else 0
    if mode is Rounding.FLOOR:
        return floor
    return floor + round_up(mode, half=half, sticky=below_half, negative=negative,
                            odd=floor[0])


def round_up(mode, *, half, sticky, negative, odd):
    """Whether ``floor(x / 2**s)`` must go up by one under rounding ``mode``, from the bit just
    below the kept ones (``half``), any bit below that (``sticky``), the sign of ``x`` and the
    floor's lowest bit (``odd``)."""
    mode = Rounding(mode)
    if mode is Rounding.FLOOR:
        return Const(0, 1)
    if mode is Rounding.HALF_UP:
        return half
    if mode is Rounding.HALF_AWAY:
        return half & (sticky | ~negative)
    if mode is Rounding.HALF_EVEN:
        return half & (sticky | odd)
    return negative & (half | sticky)       # TOWARD_ZERO
